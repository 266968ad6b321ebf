"""Benchmark: the simulation users run. 10 TCP flows over a chain of 5 routed
links, in virtual time: wall seconds per virtual second.

Usage::

    python3 benchmarks/bench_flows.py [--quick] [--seconds S] [--runs N]
                                      [--flows N] [--counts]

What is measured
================

The topology, in one ``open_network(seed=1)`` under
``trio.testing.MockClock(autojump_threshold=0)``::

    h0 -- r1 -- r2 -- r3 -- r4 -- h5        link k: 10.0.k.0/24
      10 Mbit/s, 1 ms each; r2 -- r3 loses 1 % of frames (both ways)

Six hosts (defaults: 2 CPUs each), five MemoryWire links made by
``net.link(a, b, bandwidth=10e6, delay=0.001)`` (the middle one with
``loss=0.01``: a seeded fault injector on each side), ``net.inet.ip.
forwarding=1`` on r1..r4, a default route on h0 and h5 and a route for each
subnet that is not directly attached on each router.

``--flows`` (10) TCP connections from h0 to one listener on h5, opened at
the same time; each client does ``await stream.send_all(64 KiB)`` in a loop
and each server task ``receive_some(65536)`` in a loop, until ``--seconds``
(60) of virtual time have passed since the flows started; then everything
is cancelled. Default sysctls (256 KiB buffers, delayed ACKs, SACK, NewReno).

Printed: wall seconds and the process's CPU seconds (``time.process_time``,
less moved by other processes' load) per virtual second, the build time, and
what shows it really ran: bytes received by h5 (all flows, and the smallest
and largest flow), goodput in Mbit/s (at most 10 less headers), segments
sent and retransmitted by h0, frames lost by the fault injector. Every
choice in a run comes from the seed and Trio's scheduler is seeded too
(``seed_trio_scheduler``), so the bytes and segment counts are the same
on every run; only the time moves.

These are absolute figures: they depend on the machine and its load. So the
script prints the load average before and after and, with ``--runs``, gives
the median of several runs. ``--counts`` adds one more run, first and not
timed, that counts task wake-ups (``task_scheduled``) per virtual second and
per data segment, in all and by task (as ``bench_udp.py``'s docstring
explains), with the garbage collector off and Trio's scheduler in its exact
order (``exact_scheduling``: timed runs do without its cost per batch, and
their order can differ, so the counted run prints its own segment count).

The default (60 virtual seconds, one run) takes 80 to 150 s on a 2-core VM
today, depending on its load (the counted run about 100 s more); ``--quick``
is 10 virtual seconds.

Network safety: in-memory wires only.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import time
from typing import Any

import structlog
import trio

import trionet
from _counting import Meter, loadavg, run_virtual

CHUNK = 65536
PORT = 5001
NAMES = ("h0", "r1", "r2", "r3", "r4", "h5")
BANDWIDTH = 10e6  # bits/s
DELAY = 0.001  # s
LOSSY_LINK = 2  # r2 -- r3


async def build(net: trionet.Network, loss: float) -> tuple[list[trionet.Host], list[trionet.Link]]:
    nodes = [await net.add_host(name) for name in NAMES]
    for router in nodes[1:-1]:
        router.sysctl("net.inet.ip.forwarding", 1)
    links = []
    for k in range(len(nodes) - 1):
        impairments = {"loss": loss} if k == LOSSY_LINK else {}
        link = await net.link(nodes[k], nodes[k + 1], bandwidth=BANDWIDTH, delay=DELAY, **impairments)
        nodes[k].ifconfig(link.ends[0].name, f"10.0.{k}.1/24")  # type: ignore[union-attr]
        nodes[k + 1].ifconfig(link.ends[1].name, f"10.0.{k}.2/24")  # type: ignore[union-attr]
        links.append(link)
    last = len(links) - 1
    nodes[0].route_add("0.0.0.0/0", "10.0.0.2")
    nodes[-1].route_add("0.0.0.0/0", f"10.0.{last}.1")
    for i in range(1, len(nodes) - 1):  # router i sits on links i-1 and i
        for j in range(len(links)):
            if j < i - 1:
                nodes[i].route_add(f"10.0.{j}.0/24", f"10.0.{i - 1}.1")
            elif j > i:
                nodes[i].route_add(f"10.0.{j}.0/24", f"10.0.{i}.2")
    return nodes, links


async def one_run(args: argparse.Namespace, counter: Meter | None) -> dict[str, Any]:
    w0 = time.perf_counter()
    async with trionet.open_network(seed=1) as net:
        nodes, links = await build(net, args.loss)
        h0, h5 = nodes[0], nodes[-1]
        (listener,) = await h5.open_tcp_listeners(PORT)
        received = [0] * args.flows
        clients: list[trionet.TcpStream] = []
        chunk = bytes(CHUNK)

        async def server(i: int, stream: trionet.TcpStream) -> None:
            while data := await stream.receive_some(CHUNK):
                received[i] += len(data)

        async def acceptor(nursery: trio.Nursery) -> None:
            for i in range(args.flows):
                nursery.start_soon(server, i, await listener.accept())

        async def client() -> None:
            stream = await h0.open_tcp_stream(f"10.0.{len(links) - 1}.2", PORT)
            clients.append(stream)
            while True:
                await stream.send_all(chunk)

        w1, c1 = time.perf_counter(), time.process_time()
        v1 = trio.current_time()
        if counter is not None:
            trio.lowlevel.add_instrument(counter)
        # A microsecond past the end, so that the end never ties with the
        # stack's timers (1 Hz callouts fire on whole seconds): Trio orders
        # equal deadlines by id(), which would make the count vary by one.
        with trio.move_on_at(v1 + args.seconds + 1e-6):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(acceptor, nursery)
                for _ in range(args.flows):
                    nursery.start_soon(client)
        if counter is not None:
            trio.lowlevel.remove_instrument(counter)
        w2, c2 = time.perf_counter(), time.process_time()
        virtual = trio.current_time() - v1
        stats = [s.statistics() for s in clients]
        faults = links[LOSSY_LINK].faults
        lost = sum(f.statistics().lost for f in faults if f is not None)
    w3 = time.perf_counter()
    return {
        "build": w1 - w0,
        "wall": w2 - w1,
        "cpu": c2 - c1,
        "virtual": virtual,
        "teardown": w3 - w2,
        "received": received,
        "flows_up": len(clients),
        "segments": sum(s.segments_sent for s in stats),
        "retransmits": sum(s.retransmits for s in stats),
        "lost": lost,
    }


def run_once(args: argparse.Namespace, counter: Meter | None = None) -> dict[str, Any]:
    return run_virtual(one_run, args, counter, counted=counter is not None)


def cell(values: list[float], fmt: str = ".3f") -> str:
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}..{max(values):{fmt}})"


def main(args: argparse.Namespace) -> None:
    counter = None
    if args.counts:
        # First, so that the count does not depend on what ran before it in
        # this process (caches fill on first use), in Trio's exact order.
        counter = Meter("wakeups")
        counted = run_once(args, counter)
    load_before = loadavg()  # after the count: nothing that varies may run before it
    runs = []
    for i in range(args.runs):
        r = run_once(args)
        runs.append(r)
        print(f"run {i + 1}: {r['wall'] / r['virtual']:.3f} wall s per virtual s "
              f"(load average now {loadavg()})", flush=True)

    r0 = runs[0]
    for r in runs[1:]:
        if r["received"] != r0["received"] or r["segments"] != r0["segments"]:
            print("WARNING: runs moved different bytes; the run is not deterministic")
    command = "python3 benchmarks/bench_flows.py" + (" --quick" if args.quick else "")
    print()
    print(f"command: {command}  (--seconds {args.seconds:g} --runs {args.runs} --flows {args.flows} "
          f"--loss {args.loss:g}{' --counts' if args.counts else ''})")
    print(f"python:  {platform.python_implementation()} {platform.python_version()}")
    print(f"trio:    {trio.__version__}   trionet: {trionet.__version__}   invariants: on")
    print(f"platform: {platform.platform()} ({platform.machine()}), {os.cpu_count()} CPUs")
    print(f"load average (1, 5, 15 min): before {load_before}, after {loadavg()}")
    print()
    print(f"{args.flows} TCP flows h0 -> h5 over {' - '.join(NAMES)}: 5 MemoryWire links of "
          f"{BANDWIDTH / 1e6:g} Mbit/s and {DELAY * 1e3:g} ms, {args.loss:.0%} loss on "
          f"{NAMES[LOSSY_LINK]} - {NAMES[LOSSY_LINK + 1]}; "
          f"{args.seconds:g} s of virtual time; {args.runs} run(s), median (min..max)")
    print("-" * 100)
    print(f"{'wall s per virtual s':<34} {cell([r['wall'] / r['virtual'] for r in runs])}")
    print(f"{'CPU s per virtual s':<34} {cell([r['cpu'] / r['virtual'] for r in runs])}")
    print(f"{'wall s for the run':<34} {cell([r['wall'] for r in runs], '.1f')}   "
          f"({r0['virtual']:g} virtual s)")
    print(f"{'wall s to build the network':<34} {cell([r['build'] for r in runs])}")
    print(f"{'wall s to tear it down':<34} {cell([r['teardown'] for r in runs])}")
    total = sum(r0["received"])
    print(f"{'bytes received by h5':<34} {total} ({total * 8 / r0['virtual'] / 1e6:.2f} Mbit/s goodput; "
          f"{r0['flows_up']} flows, each {min(r0['received'])}..{max(r0['received'])} bytes)")
    print(f"{'segments sent by h0':<34} {r0['segments']} ({r0['retransmits']} retransmitted; "
          f"{r0['lost']} frames lost on the lossy link)")
    if counter is not None:
        segments = max(counted["segments"], 1)
        print(f"{'task wake-ups (counted run)':<34} {counter.count} "
              f"({counter.count / counted['virtual']:.0f} per virtual s, "
              f"{counter.count / segments:.1f} per segment sent by h0 in that run, "
              f"which sent {counted['segments']})")
        print("  per segment sent by h0, by task (numbers in task names folded to N): "
              + ", ".join(f"{k} {v / segments:.2f}" for k, v in counter.by_task.most_common()
                          if v / segments >= 0.005))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 virtual seconds")
    parser.add_argument("--seconds", type=float, help="virtual seconds the flows run (default 60)")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--flows", type=int, default=10)
    parser.add_argument("--loss", type=float, default=0.01, help="loss probability on r2 - r3")
    parser.add_argument("--counts", action="store_true", help="one more run, counting task wake-ups")
    args = parser.parse_args()
    if args.seconds is None:
        args.seconds = 10.0 if args.quick else 60.0
    if not args.seconds > 0 or args.runs < 1 or args.flows < 1 or not 0 <= args.loss < 1:
        raise SystemExit("--seconds must be positive, --runs and --flows at least 1, --loss in [0, 1)")
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    t0 = time.perf_counter()
    main(args)
    print(f"(wall time {time.perf_counter() - t0:.1f} s)")
