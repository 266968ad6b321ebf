"""Benchmark: TCP bulk throughput and connection set-up between two trionet
hosts, against Trio TCP streams over the kernel's loopback.

Usage::

    python3 benchmarks/bench_tcp.py [--quick] [--rounds N] [--megabytes N]
                                    [--connections N] [--no-counts] [--profile]
                                    [--no-invariants]

What is measured
================

a. *Bulk throughput*, one connection, one way: the sender does
   ``await stream.send_all(chunk)`` with 64 KiB chunks, then
   ``send_eof()``; the receiver loops on ``await stream.receive_some(65536)``
   until ``b""``. The time runs from the first ``send_all`` to the
   receiver's end of file, and the figure is megabytes (10**6 bytes) per
   second. Every run checks the byte count; the unrecorded warm-up round of
   every contender also sends 1 MiB of seeded random bytes and checks that
   they arrive unchanged. Contenders:

   - *baseline*: ``trio.open_tcp_stream`` to a ``trio.open_tcp_listeners``
     listener on 127.0.0.1 in this process (Trio sets ``TCP_NODELAY``; the
     kernel's default buffers);
   - *trionet* at each MTU: two hosts joined by ``open_network().link(a, b,
     mtu=M)`` (a MemoryWire, no delay), which sets both vnics to MTU ``M``,
     so TCP's MSS is ``M - 40``. Default sysctls:
     ``net.inet.tcp.sendspace``/``recvspace`` 256 KiB, delayed ACKs, SACK,
     window scaling and timestamps, NewReno. Every round uses a new
     connection, like the baseline, so slow start is part of every run.
   - *trionet, polling*: the MTU 65535 pair again (its own two hosts) with
     ``IfFlags.POLLING`` set on both vnics (``host.ifioctl(ifp,
     IfIoctl.SIOCSIFFLAGS, ifp.flags | IfFlags.POLLING)``) for the length of
     each run and cleared after it, so that its polling clock (2000 Hz) does
     not wake anything during the other contenders' runs. If setting the
     flag fails, the row is skipped with the reason printed.
   - *trionet, UdpWire*: two hosts joined by ``net.link(a, b, kind="udp",
     mtu=65493)``: two UdpWires on 127.0.0.1, one kernel datagram per frame,
     at the largest MTU one datagram holds. The kernel may drop a datagram
     (its socket buffers are finite), so TCP may retransmit here; the
     retransmissions are printed instead of failing the run.

b. *Connection set-up rate*: ``N`` times in a row, ``open_tcp_stream`` then
   the listener's ``accept``, then ``aclose`` on the client and the server
   (the client closes first, so TIME_WAIT is on the client's side);
   connections per second, with the same listener for the whole run.
   trionet keeps a closed connection in TIME_WAIT for 2 MSL (60 s by
   default), holding its ephemeral port (16384 of them): the script refuses
   a ``--connections`` and ``--rounds`` that would use more than 12000.

Counts (columns ``wakeups`` and ``calls``, per 64 KiB chunk of bulk
transfer): for each bulk contender, in runs of their own before the timed
rounds (so that nothing run in real time has filled a cache first), each in
a fresh ``trio.run`` and network (seed 1): a 1 MiB warm-up transfer, then
one transfer of the round's size counting task wake-ups (``task_scheduled``)
and one counting Python ``"call"`` events (``sys.setprofile``), from the
first ``send_all`` to the receiver's end of file, divided by the bytes over
65536. The MemoryWire contenders run these under
``trio.testing.MockClock(autojump_threshold=0)`` with Trio's scheduler
seeded, so their counts are the same to the last digit on every run of the
same command; the kernel and UdpWire contenders run in real time and their
counts (marked ``~``) move a little. Below the table, the wake-ups per chunk
by task. How and why: "Counts" in ``bench_udp.py``'s docstring.

The figure of merit is **trionet's figure divided by the baseline's in the
same round** (above 1.0 means trionet is faster). Rounds alternate the order
of the contenders after an unrecorded warm-up; the tables give the median
and min..max over rounds. The garbage collector is off inside timed runs.
The hosts run with ``invariants`` on, as ``open_network`` makes them
(``--no-invariants`` turns them off).

``--profile`` runs the MTU 65535 transfer once more under ``cProfile`` and
prints the time spent in each layer, then the top functions by self time.
A built-in function's time (``int.from_bytes`` in the checksum, the copies
in ``bytes(...)``) is charged to the layers of its callers, in proportion to
the time each caller spent in it.

Network safety: only 127.0.0.1 and in-memory wires; every loop is bounded.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import logging
import os
import platform
import pstats
import random
import statistics
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
import trio
import trio.testing

import trionet
from _counting import Counts, Meter, count_each, exact_scheduling
from _transfer import CHUNK, DEADLINE, bulk

LOOPBACK = "127.0.0.1"
A, B = "10.0.0.1", "10.0.0.2"
MTUS = (1500, 9000, 65535)
#: The polling pair's MTU; the UdpWire pair's is the largest one datagram holds.
POLLING_MTU = 65535
UDP_MTU = 65507 - 14
#: Bulk contenders, in table order (see make_contenders).
CONTENDERS = ("kernel", *(f"mtu{m}" for m in MTUS), "polling", "udp")
#: Contenders through the kernel: counted in real time (the others under MockClock).
REAL_TIME = ("kernel", "udp")
#: Connections trionet may leave in TIME_WAIT (of 16384 ephemeral ports).
PORT_BUDGET = 12000


####################################################################
# The two measurements, on any pair of streams
####################################################################


async def churn(connect: Callable[[], Awaitable[Any]], listener: trio.abc.Listener[Any], n: int) -> float:
    """Seconds to open, accept and close ``n`` connections one after another."""
    with trio.fail_after(DEADLINE):
        t0 = time.perf_counter()
        for _ in range(n):
            client = await connect()
            server = await listener.accept()
            await client.aclose()
            await server.aclose()
        return time.perf_counter() - t0


####################################################################
# Contenders
####################################################################


class Kernel:
    """Trio TCP streams over 127.0.0.1."""

    label = "trio streams, kernel loopback"
    virtual = False  # counted in real time
    per_segment: float | None = None
    retransmits = 0

    def __init__(self, net: trionet.Network | None = None) -> None:
        pass

    async def open(self) -> None:
        (self.listener,) = await trio.open_tcp_listeners(0, host=LOOPBACK)
        self.port = self.listener.socket.getsockname()[1]

    async def aclose(self) -> None:
        await self.listener.aclose()

    async def pair(self) -> tuple[trio.SocketStream, trio.SocketStream]:
        client = await trio.open_tcp_stream(LOOPBACK, self.port)
        server = await self.listener.accept()
        return client, server

    async def bulk(self, total: int, check: bytes | None = None, meter: Meter | None = None) -> float:
        client, server = await self.pair()
        async with client, server:
            return await bulk(client, server, total, check, meter)

    async def churn(self, n: int) -> float:
        return await churn(lambda: trio.open_tcp_stream(LOOPBACK, self.port), self.listener, n)


class Trionet:
    """Two trionet hosts on one link with both vnics at ``mtu``: a
    MemoryWire (``kind="memory"``), optionally with both vnics polling, or
    two UdpWires on 127.0.0.1 (``kind="udp"``)."""

    def __init__(self, net: trionet.Network, mtu: int, kind: str = "memory", polling: bool = False) -> None:
        self.net = net
        self.mtu = mtu
        self.kind = kind
        self.polling = polling
        self.virtual = kind == "memory"  # counted in virtual time (see REAL_TIME)
        self.per_segment: float | None = None
        self.retransmits = 0
        wire = "UdpWire (loopback)" if kind == "udp" else "MemoryWire"
        self.label = f"trionet, {wire}, MTU {mtu}" + (", polling" if polling else "")
        self.tag = f"{'p' if polling else ''}{kind[0]}{mtu}"

    async def open(self) -> None:
        net, mtu = self.net, self.mtu
        self.a = a = await net.add_host(f"a{self.tag}")
        self.b = b = await net.add_host(f"b{self.tag}")
        link = await net.link(a, b, mtu=mtu, kind=self.kind)
        self.ends: list[tuple[trionet.Host, trionet.Ifnet]] = []
        for host, ifp, addr in ((a, link.ends[0], A), (b, link.ends[1], B)):
            assert isinstance(ifp, trionet.Ifnet) and ifp.mtu == mtu
            host.ifconfig(ifp.name, f"{addr}/24")
            self.ends.append((host, ifp))
        (self.listener,) = await b.open_tcp_listeners(0)
        self.port = self.listener.getsockname()[1]
        self.connections = 0

    async def aclose(self) -> None:
        pass  # the network owns everything

    async def connect(self) -> trionet.TcpStream:
        self.connections += 1
        return await self.a.open_tcp_stream(B, self.port)

    async def set_polling(self, on: bool) -> None:
        for host, ifp in self.ends:
            flags = ifp.flags | trionet.IfFlags.POLLING if on else ifp.flags & ~trionet.IfFlags.POLLING
            await host.ifioctl(ifp, trionet.IfIoctl.SIOCSIFFLAGS, flags)
            if bool(ifp.flags & trionet.IfFlags.POLLING) != on:
                raise RuntimeError(f"{host.name} {ifp.name}: SIOCSIFFLAGS left POLLING {'off' if on else 'on'}")

    async def bulk(self, total: int, check: bytes | None = None, meter: Meter | None = None) -> float:
        # Polling only while this pair runs: its clock (2000 Hz) would
        # otherwise wake the netisrs during the other contenders' rounds.
        if self.polling:
            await self.set_polling(True)
        try:
            client = await self.connect()
            server = await self.listener.accept()
            async with client, server:
                elapsed = await bulk(client, server, total, check, meter)
                stats = client.statistics()
        finally:
            if self.polling:
                await self.set_polling(False)
        if stats.retransmits and self.kind == "memory":
            raise SystemExit(f"{self.label}: {stats.retransmits} retransmissions on a lossless wire")
        self.retransmits += stats.retransmits  # UdpWire: the kernel may drop a datagram
        self.per_segment = stats.bytes_sent / stats.segments_sent
        check_counters(self.a, self.b)
        return elapsed

    async def churn(self, n: int) -> float:
        self.connections += n
        return await churn(lambda: self.a.open_tcp_stream(B, self.port), self.listener, n)


def check_counters(*hosts: trionet.Host) -> None:
    for h in hosts:
        ip = h.inet.ip.statistics()
        tcp = h.inet.tcp.statistics()
        if ip.drops or tcp.drops or tcp.output_errors:
            raise SystemExit(f"{h.name} counted drops: ip {ip.drops}, tcp {tcp.drops}, {tcp.output_errors}")
        for row in h.netstat_i():
            if row.ierrors or row.iqdrops or row.oerrors or row.oqdrops:
                raise SystemExit(f"{h.name} {row.name} counted errors or drops: {row}")


async def timed(fn: Callable[[], Awaitable[float]]) -> float:
    gc.collect()
    gc.disable()
    try:
        return await fn()
    finally:
        gc.enable()


####################################################################
# Profile
####################################################################

GROUPS = (
    ("trio scheduler", ("trio/_core", "outcome/", "sniffio", "trio/_highlevel", "trio/_timeouts")),
    ("socket calls (TcpStream, messages to netisr)", ("_net/_tcp_socket.py", "_kern/_msgport.py")),
    ("TCP machine (protocols/tcp_*.py)", ("protocols/tcp_",)),
    ("TCP header, options, checksum", ("protocols/tcp.py", "protocols/checksum.py")),
    ("TCP glue (input, pcb, output)", ("_net/_tcp.py",)),
    ("IP", ("_net/_ip.py", "protocols/ipv4.py", "protocols/flowhash.py", "_net/_route.py")),
    ("ARP and Ethernet", ("_net/_arp.py", "protocols/arp.py", "_net/_ether.py", "protocols/ethernet.py")),
    ("send queue and start", ("_net/_ifstart.py", "_net/_ifq.py", "_net/_if.py")),
    ("vnic driver", ("drivers/vnic.py",)),
    ("MemoryWire", ("wires/",)),
    ("kernel threads (intr, netisr, callout, serializer)", ("_kern/",)),
    ("enum flags", ("enum.py",)),
    ("the benchmark itself", ("bench_tcp.py",)),
)
OTHER = "other (structlog, built-ins called elsewhere)"


def group_of(filename: str) -> str:
    if filename.startswith("<attrs generated"):
        # "<attrs generated init trionet.protocols.tcp.TcpHeader>": the class's module.
        module = filename.rstrip(">").split()[-1].rsplit(".", 1)[0]
        filename = module.replace(".", "/") + ".py"
    for group, needles in GROUPS:
        if any(needle in filename for needle in needles):
            return group
    return OTHER


def print_profile(stats: pstats.Stats, total_bytes: int) -> None:
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    by_group: dict[str, float] = defaultdict(float)
    builtins: dict[str, float] = defaultdict(float)
    total = 0.0
    for func, (_, _, tottime, _, callers) in raw.items():
        filename = func[0]
        total += tottime
        if filename == "~" and callers:
            # A built-in: charge its time to its callers' layers.
            spent = sum(c[2] for c in callers.values()) or 1.0
            for caller, c in callers.items():
                by_group[group_of(caller[0])] += tottime * c[2] / spent
            builtins[func[2]] += tottime
        else:
            by_group[group_of(filename)] += tottime
    mb = total_bytes / 1e6
    print(f"profile of one trionet MTU 65535 transfer ({mb:.0f} MB; cProfile inflates Python time):")
    print(f"{'layer (self time, with the built-ins it calls)':<52} {'ms/MB':>8} {'share':>7}")
    for group, t in sorted(by_group.items(), key=lambda kv: -kv[1]):
        print(f"{group:<52} {t / mb * 1e3:>8.2f} {t / total:>7.1%}")
    print()
    print("built-ins by self time:")
    for name, t in sorted(builtins.items(), key=lambda kv: -kv[1])[:8]:
        print(f"  {t / total:>6.1%}  {name}")
    print()
    stats.sort_stats("tottime").print_stats(20)
    stats.sort_stats("cumulative").print_stats(25)


####################################################################
# Main
####################################################################


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}..{max(values):.3f})"


def make_contenders(net: trionet.Network) -> dict[str, Kernel | Trionet]:
    """Every bulk contender, by name, in table order (not yet opened)."""
    contenders: dict[str, Kernel | Trionet] = {"kernel": Kernel()}
    for mtu in MTUS:
        contenders[f"mtu{mtu}"] = Trionet(net, mtu)
    contenders["polling"] = Trionet(net, POLLING_MTU, polling=True)
    contenders["udp"] = Trionet(net, UDP_MTU, kind="udp")
    return contenders


async def timed_rounds(args: argparse.Namespace) -> dict[str, Any]:
    """The timed bulk rounds and connection set-up rounds, in real time."""
    total = args.megabytes * 1_000_000
    n_conn = args.connections
    check = random.Random(1).randbytes(1 << 20)
    out: dict[str, Any] = {"skipped": {}}
    async with trionet.open_network(seed=1, invariants=not args.no_invariants) as net:
        contenders = make_contenders(net)
        for name, c in list(contenders.items()):
            try:
                await c.open()
                await c.bulk(0, check)  # content check, unrecorded
            except Exception as exc:  # noqa: BLE001 - reported, and the row skipped
                if name != "polling":
                    raise
                out["skipped"][name] = f"{type(exc).__name__}: {exc}"
                del contenders[name]
        kernel = contenders["kernel"]
        names = list(contenders)
        rate: dict[str, list[float]] = {k: [] for k in names}
        ratio: dict[str, list[float]] = {k: [] for k in names[1:]}
        for r in range(args.rounds + 1):
            got: dict[str, float] = {}
            for name in names if r % 2 else names[::-1]:
                got[name] = total / await timed(lambda: contenders[name].bulk(total)) / 1e6  # noqa: B023
            if r == 0:
                continue  # warm-up
            for name in names:
                rate[name].append(got[name])
            for name in names[1:]:
                ratio[name].append(got[name] / got["kernel"])
        out |= {"contenders": contenders, "names": names, "rate": rate, "ratio": ratio}

        # Connection set-up: MTU 1500 pair only.
        p1500 = contenders["mtu1500"]
        assert isinstance(p1500, Trionet)
        cps: dict[str, list[float]] = {"kernel": [], "trionet": []}
        cps_ratio: list[float] = []
        for r in range(args.rounds + 1):
            got = {}
            order = (("kernel", kernel.churn), ("trionet", p1500.churn))
            for name, fn in order if r % 2 else order[::-1]:
                got[name] = n_conn / await timed(lambda: fn(n_conn))  # noqa: B023
            check_counters(p1500.a, p1500.b)
            if r == 0:
                continue
            for name in cps:
                cps[name].append(got[name])
            cps_ratio.append(got["trionet"] / got["kernel"])
        out["time_wait"] = sum(1 for row in p1500.a.inet.tcp.netstat() if row.state == "TIME_WAIT")
        out |= {"cps": cps, "cps_ratio": cps_ratio}

        if args.profile:
            prof = cProfile.Profile()
            prof.enable()
            await contenders["mtu65535"].bulk(total)
            prof.disable()
            out["profile"] = pstats.Stats(prof)
        await kernel.aclose()
    return out


def count_contender(name: str, total: int, invariants: bool) -> Counts:
    """Wake-ups and calls per 64 KiB chunk for contender ``name``, in a
    fresh ``trio.run`` and network (virtual time for the in-memory paths)."""
    chunks = total / CHUNK

    async def sender() -> Counts:  # this task sends; bulk() starts the receiver
        async with trionet.open_network(seed=1, invariants=invariants) as net:
            c = make_contenders(net)[name]
            await c.open()
            await c.bulk(1 << 20)  # warm-up: caches, enum pseudo-members
            wakeups, calls = Meter("wakeups"), Meter("calls")
            for meter in (wakeups, calls):
                await timed(lambda: c.bulk(total, meter=meter))  # noqa: B023
            await c.aclose()
        return Counts.of(wakeups, calls, chunks, c.virtual)

    clock = None if name in REAL_TIME else trio.testing.MockClock(autojump_threshold=0)
    with exact_scheduling(0):
        return trio.run(sender, clock=clock)


def main(args: argparse.Namespace) -> None:
    total = args.megabytes * 1_000_000
    n_conn = args.connections
    if (args.rounds + 1) * n_conn > PORT_BUDGET:
        raise SystemExit(f"(rounds + 1) * connections must be at most {PORT_BUDGET} (TIME_WAIT holds ports)")
    # Counts first, while nothing but deterministic work has run in this
    # process (caches such as enum's composite flags fill on first use).
    counts, skipped = ({}, {}) if args.no_counts else count_each(
        CONTENDERS, lambda name: count_contender(name, total, not args.no_invariants)
    )
    res = trio.run(timed_rounds, args)
    res["skipped"] = skipped | res["skipped"]
    names: list[str] = res["names"]
    contenders: dict[str, Kernel | Trionet] = res["contenders"]

    command = "python3 benchmarks/bench_tcp.py" + (" --quick" if args.quick else "")
    print(f"command: {command}  (--rounds {args.rounds} --megabytes {args.megabytes} "
          f"--connections {n_conn}{' --no-counts' if args.no_counts else ''}"
          f"{' --profile' if args.profile else ''}{' --no-invariants' if args.no_invariants else ''})")
    print(f"python:  {platform.python_implementation()} {platform.python_version()}")
    print(f"trio:    {trio.__version__}   trionet: {trionet.__version__}   "
          f"invariants: {'off' if args.no_invariants else 'on'}")
    print(f"platform: {platform.platform()} ({platform.machine()}), {os.cpu_count()} CPUs, "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print()
    print(f"bulk TCP, one connection, {args.megabytes} MB per contender per round in send_all() "
          f"of {CHUNK} bytes, receive_some({CHUNK}); {args.rounds} rounds; byte counts checked, "
          f"1 MiB content checked, 0 drops")
    print(f"{'contender':<44} {'B/seg':>6} {'MB/s':>8}   {'ratio to the kernel':<21} "
          f"{'wakeups':>9} {'calls':>9}")
    print(f"{'':<44} {'':>6} {'':>8}   {'(min..max)':<21} {'/chunk':>9} {'/chunk':>9}")
    print("-" * 102)
    retransmits = []
    for name in CONTENDERS:
        if name not in names:
            label = f"trionet, MemoryWire, MTU {POLLING_MTU}, polling" if name == "polling" else name
            print(f"{label:<44} skipped: {res['skipped'].get(name, 'not run')}")
            continue
        c = contenders[name]
        m = "-" if c.per_segment is None else f"{c.per_segment:.0f}"
        r = "1.000" if name == "kernel" else summary(res["ratio"][name])
        cells = counts[name].cells() if name in counts else Counts.EMPTY
        print(f"{c.label:<44} {m:>6} {statistics.median(res['rate'][name]):>8.2f}   {r:<21} {cells}")
        if c.retransmits:
            retransmits.append(f"{c.label}: {c.retransmits}")
    print("retransmissions: " + ("; ".join(retransmits) if retransmits else "none")
          + " (a MemoryWire is lossless and checked to be; the kernel may drop a UdpWire datagram)")
    for name in names:
        if name in res["skipped"]:
            print(f"({contenders[name].label}: counting run failed: {res['skipped'][name]})")
    if counts:
        print(f"(counts: per {CHUNK}-byte chunk, one transfer of {args.megabytes} MB per path after a "
              f"1 MiB warm-up, from the first send_all to the end of file; exact, virtual time and "
              f"seeded, except ~: real time through the kernel)")
    if counts:
        print()
        print(f"wake-ups per {CHUNK}-byte chunk by task (numbers in task names folded to N):")
        for name in names:
            if name in counts:
                print(f"  {contenders[name].label}: {counts[name].tasks()}")
    print()
    cps, cps_ratio = res["cps"], res["cps_ratio"]
    print(f"connection set-up: open_tcp_stream + accept + aclose (both), {n_conn} in a row per round")
    print(f"{'contender':<44} {'conn/s':>8}   ratio to the kernel (min..max)")
    print("-" * 102)
    print(f"{'trio streams, kernel loopback':<44} {statistics.median(cps['kernel']):>8.0f}   1.000")
    print(f"{'trionet, MemoryWire, MTU 1500':<44} {statistics.median(cps['trionet']):>8.0f}   "
          f"{summary(cps_ratio)}")
    print(f"(trionet connections left in TIME_WAIT on the client: {res['time_wait']})")
    print()
    # Issue 14's floors, then the older goal for bulk TCP, which still stands.
    medians = {name: statistics.median(res["ratio"][name]) for name in ("mtu65535", "mtu1500")}
    medians["connections"] = statistics.median(cps_ratio)
    for what, name, floor in (("MTU 65535 throughput", "mtu65535", 0.15),
                              ("MTU 1500 throughput", "mtu1500", 0.10),
                              ("connection set-up", "connections", 0.30),
                              ("MTU 65535 throughput, the goal", "mtu65535", 0.5)):
        med = medians[name]
        verdict = "met" if med >= floor else f"NOT met ({floor / med:.1f}x short)"
        print(f"target: {what} >= {floor:.2f} of the kernel's: {verdict} (median {med:.3f})")
    if args.profile:
        print()
        print_profile(res["profile"], total)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds, 4 MB, 100 connections")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--megabytes", type=int)
    parser.add_argument("--connections", type=int)
    parser.add_argument("--no-counts", action="store_true", help="skip the counting runs")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--no-invariants", action="store_true")
    args = parser.parse_args()
    defaults = (3, 4, 100) if args.quick else (5, 24, 500)
    for key, default in zip(("rounds", "megabytes", "connections"), defaults, strict=True):
        if getattr(args, key) is None:
            setattr(args, key, default)
    if args.rounds < 1 or args.megabytes < 1 or args.connections < 1:
        raise SystemExit("--rounds, --megabytes and --connections must be at least 1")
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    t0 = time.perf_counter()
    main(args)
    print(f"(wall time {time.perf_counter() - t0:.1f} s)")
