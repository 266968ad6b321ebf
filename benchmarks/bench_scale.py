"""Benchmark: N hosts on one switch, wall time to the first ping.

Usage::

    python3 benchmarks/bench_scale.py [--quick] [--hosts N] [--runs N] [--counts]

What is measured
================

One run, in a fresh ``trio.run`` under ``trio.testing.MockClock(
autojump_threshold=0)`` (virtual time, as the examples and tests run):

1. *build*: ``open_network(seed=1)``, one learning ``Switch`` (``net.
   add_switch``, table sized for N), then for each of N hosts ``h0`` ..
   ``h{N-1}``: ``net.add_host`` (defaults: 2 CPUs, ``lo0``), ``net.link(host,
   switch)`` (a MemoryWire, no delay, a vnic brought up) and ``ifconfig`` of
   the next address of 10.0.0.0/16 (so N may go up to 65534). Setting an
   address sends a gratuitous ARP, which the switch floods to every host
   already there: the build moves about N**2 / 2 frames.
2. *settle*: ``trio.testing.wait_all_tasks_blocked()``: the frames still in
   flight from the build are handled (no virtual time passes).
3. *ping*: ``h0.ping(address of h{N-1}, count=1)`` until its reply: an ARP
   request flooded to every host, the reply, the echo and its reply.

Printed: the wall seconds of each phase and of the whole (the time to the
first ping), the process's CPU seconds (``time.process_time``, which other
processes' load moves less than wall time), and counts that load cannot
move: frames into the switch, frames it flooded, frames it delivered to
hosts, per phase. Every run checks that the ping got its reply, that no
virtual time passed before it, and that no host counted a drop.

These are absolute figures, not ratios: they depend on the machine and on
what else runs on it. So the script prints the load average before and
after, runs ``--runs`` times and gives the median; compare figures only
from the same machine, with similar load.

``--counts`` adds one more run, first and not timed, that counts task
wake-ups (a ``trio.abc.Instrument``'s ``task_scheduled``, in all and by
task) and task spawns per phase, with the garbage collector off and Trio's
scheduler in its exact order (``exact_scheduling``; see "Counts" in
``bench_udp.py``'s docstring), so that they repeat exactly from run to run.

The default (1000 hosts, one run) takes 70 to 115 s on a 2-core VM today,
depending on its load; ``--quick`` is 200 hosts, 3 runs.

Network safety: in-memory wires only.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import platform
import statistics
import time
from collections import Counter
from typing import Any

import structlog
import trio
import trio.testing

import trionet
from _counting import loadavg, run_virtual, task_kind

SUBNET = ipaddress.IPv4Network("10.0.0.0/16")
PHASES = ("build", "settle", "ping")


class PhaseCounter(trio.abc.Instrument):
    """Task wake-ups (in all and by task kind) and spawns, accumulated into
    ``self.phase``'s row."""

    def __init__(self) -> None:
        self.phase = "build"
        self.wakeups = dict.fromkeys(PHASES, 0)
        self.spawns = dict.fromkeys(PHASES, 0)
        self.by_task: dict[str, Counter[str]] = {phase: Counter() for phase in PHASES}

    def task_scheduled(self, task: trio.lowlevel.Task) -> None:
        self.wakeups[self.phase] += 1
        self.by_task[self.phase][task_kind(task.name)] += 1

    def task_spawned(self, task: trio.lowlevel.Task) -> None:
        self.spawns[self.phase] += 1


def switch_totals(sw: Any) -> tuple[int, int, int]:
    """(frames in, floods, frames delivered) of switch ``sw`` so far."""
    st = sw.statistics()
    ports = st.ports.values() if isinstance(st.ports, dict) else st.ports
    return sum(p.rx for p in ports), st.flooded, sum(p.tx for p in ports)


def check_hosts(hosts: list[trionet.Host]) -> None:
    for h in hosts:
        if h.inet.ip.statistics().drops:
            raise SystemExit(f"{h.name} counted IP drops: {h.inet.ip.statistics().drops}")
        for row in h.netstat_i():
            if row.ierrors or row.iqdrops or row.oerrors or row.oqdrops:
                raise SystemExit(f"{h.name} {row.name} counted errors or drops: {row}")


async def one_run(n: int, counter: PhaseCounter | None) -> dict[str, Any]:
    addrs = [str(a) for _, a in zip(range(n), SUBNET.hosts(), strict=False)]
    wall: dict[str, float] = {}
    cpu: dict[str, float] = {}
    frames: dict[str, tuple[int, ...]] = {}
    if counter is not None:
        trio.lowlevel.add_instrument(counter)
    w0, c0 = time.perf_counter(), time.process_time()
    v0 = trio.current_time()
    async with trionet.open_network(seed=1) as net:
        sw = net.add_switch("sw0", max_entries=max(1024, n))
        hosts = []
        for i in range(n):
            h = await net.add_host(f"h{i}")
            link = await net.link(h, sw)
            h.ifconfig(link.ends[0].name, f"{addrs[i]}/{SUBNET.prefixlen}")
            hosts.append(h)
        w1, c1 = time.perf_counter(), time.process_time()
        frames["build"] = switch_totals(sw)
        if counter is not None:
            counter.phase = "settle"
        await trio.testing.wait_all_tasks_blocked()
        w2, c2 = time.perf_counter(), time.process_time()
        f = switch_totals(sw)
        frames["settle"] = tuple(b - a for a, b in zip(frames["build"], f, strict=True))
        if counter is not None:
            counter.phase = "ping"
        v2 = trio.current_time()
        result = await hosts[0].ping(addrs[-1], count=1)
        w3, c3 = time.perf_counter(), time.process_time()
        frames["ping"] = tuple(b - a for a, b in zip(f, switch_totals(sw), strict=True))
        if counter is not None:
            trio.lowlevel.remove_instrument(counter)
        if result.received != 1:
            raise SystemExit(f"h0 got no reply from h{n - 1}: {result}")
        if v2 != v0:
            raise SystemExit(f"{v2 - v0} s of virtual time passed before the ping (expected none)")
        check_hosts(hosts)
        virtual_ping = trio.current_time() - v2
        wall = {"build": w1 - w0, "settle": w2 - w1, "ping": w3 - w2}
        cpu = {"build": c1 - c0, "settle": c2 - c1, "ping": c3 - c2}
    w4 = time.perf_counter()
    return {"wall": wall, "cpu": cpu, "frames": frames, "virtual_ping": virtual_ping,
            "teardown": w4 - w3}


def run_once(n: int, counter: PhaseCounter | None = None) -> dict[str, Any]:
    return run_virtual(one_run, n, counter, counted=counter is not None)


def main(args: argparse.Namespace) -> None:
    n = args.hosts
    counter = None
    if args.counts:
        # First, so that the count does not depend on what ran before it in
        # this process (caches fill on first use), in Trio's exact order.
        counter = PhaseCounter()
        run_once(n, counter)
    load_before = loadavg()  # after the count: nothing that varies may run before it
    runs = []
    for i in range(args.runs):
        r = run_once(n)
        runs.append(r)
        total = sum(r["wall"].values())
        print(f"run {i + 1}: {total:.2f} s wall to the first ping (load average now {loadavg()})", flush=True)

    command = "python3 benchmarks/bench_scale.py" + (" --quick" if args.quick else "")
    print()
    print(f"command: {command}  (--hosts {n} --runs {args.runs}{' --counts' if args.counts else ''})")
    print(f"python:  {platform.python_implementation()} {platform.python_version()}")
    print(f"trio:    {trio.__version__}   trionet: {trionet.__version__}   invariants: on")
    print(f"platform: {platform.platform()} ({platform.machine()}), {os.cpu_count()} CPUs")
    print(f"load average (1, 5, 15 min): before {load_before}, after {loadavg()}")
    print()
    print(f"{n} hosts on one switch, addresses in {SUBNET}, MemoryWires without delay, virtual time; "
          f"{args.runs} run(s), median (min..max)")
    print(f"{'phase':<28} {'wall s':>24} {'CPU s':>24}   {'frames in':>10} {'flooded':>9} {'delivered':>10}")
    print("-" * 114)

    def cell(values: list[float]) -> str:
        return f"{statistics.median(values):.2f} ({min(values):.2f}..{max(values):.2f})"

    labels = {
        "build": "build (hosts, links, addrs)",
        "settle": "settle (floods in flight)",
        "ping": "ping h0 -> last, count=1",
    }
    for phase in PHASES:
        fr = runs[0]["frames"][phase]
        print(f"{labels[phase]:<28} {cell([r['wall'][phase] for r in runs]):>24} "
              f"{cell([r['cpu'][phase] for r in runs]):>24}   {fr[0]:>10} {fr[1]:>9} {fr[2]:>10}")
    totals = [sum(r["wall"].values()) for r in runs]
    cpu_totals = [sum(r["cpu"].values()) for r in runs]
    print(f"{'time to first ping':<28} {cell(totals):>24} {cell(cpu_totals):>24}")
    print(f"(per host: {statistics.median(totals) / n * 1e3:.1f} ms wall; the ping's virtual round trip "
          f"{runs[0]['virtual_ping'] * 1e3:.3f} ms; teardown after it {cell([r['teardown'] for r in runs])} s "
          f"wall, not included)")
    if counter is not None:
        print()
        print("counted run (not timed; Trio's scheduler in its exact order, so exact):")
        print(f"{'phase':<28} {'wake-ups':>12} {'tasks spawned':>14}")
        for phase in PHASES:
            print(f"{labels[phase]:<28} {counter.wakeups[phase]:>12} {counter.spawns[phase]:>14}")
        print(f"{'total':<28} {sum(counter.wakeups.values()):>12} {sum(counter.spawns.values()):>14}")
        delivered = max(runs[0]["frames"]["build"][2], 1)
        print("build, wake-ups per frame delivered to a host, by task (numbers in task names folded to N): "
              + ", ".join(f"{k} {v / delivered:.2f}" for k, v in counter.by_task["build"].most_common()
                          if v / delivered >= 0.005))
        print("ping, wake-ups by task: "
              + ", ".join(f"{k} {v}" for k, v in counter.by_task["ping"].most_common()))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="200 hosts, 3 runs")
    parser.add_argument("--hosts", type=int)
    parser.add_argument("--runs", type=int)
    parser.add_argument("--counts", action="store_true", help="one more run, counting wake-ups and spawns")
    args = parser.parse_args()
    defaults = (200, 3) if args.quick else (1000, 1)
    for key, default in zip(("hosts", "runs"), defaults, strict=True):
        if getattr(args, key) is None:
            setattr(args, key, default)
    if not 2 <= args.hosts <= SUBNET.num_addresses - 2 or args.runs < 1:
        raise SystemExit(f"--hosts must be in 2..{SUBNET.num_addresses - 2} and --runs at least 1")
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    t0 = time.perf_counter()
    main(args)
    print(f"(wall time {time.perf_counter() - t0:.1f} s)")
