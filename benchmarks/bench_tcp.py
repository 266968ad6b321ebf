"""Benchmark: TCP bulk throughput and connection set-up between two trionet
hosts, against Trio TCP streams over the kernel's loopback.

Usage::

    python3 benchmarks/bench_tcp.py [--quick] [--rounds N] [--megabytes N]
                                    [--connections N] [--profile]

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

b. *Connection set-up rate*: ``N`` times in a row, ``open_tcp_stream`` then
   the listener's ``accept``, then ``aclose`` on the client and the server
   (the client closes first, so TIME_WAIT is on the client's side);
   connections per second, with the same listener for the whole run.
   trionet keeps a closed connection in TIME_WAIT for 2 MSL (60 s by
   default), holding its ephemeral port (16384 of them): the script refuses
   a ``--connections`` and ``--rounds`` that would use more than 12000.

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

import trionet

CHUNK = 65536
LOOPBACK = "127.0.0.1"
A, B = "10.0.0.1", "10.0.0.2"
MTUS = (1500, 9000, 65535)
#: Connections trionet may leave in TIME_WAIT (of 16384 ephemeral ports).
PORT_BUDGET = 12000
#: No transfer or connection loop may run longer than this (seconds).
DEADLINE = 300


####################################################################
# The two measurements, on any pair of streams
####################################################################


async def bulk(client: trio.abc.HalfCloseableStream, server: trio.abc.HalfCloseableStream,
               total: int, check: bytes | None = None) -> float:
    """Seconds to move ``total`` bytes from ``client`` to ``server``.

    With ``check``, sends those bytes instead (any length) and verifies them.
    """
    chunk = bytes(CHUNK)
    got = 0
    received = bytearray()

    async def receiver() -> None:
        nonlocal got
        while True:
            data = await server.receive_some(CHUNK)
            if not data:
                return
            got += len(data)
            if check is not None:
                received.extend(data)

    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(receiver)
            t0 = time.perf_counter()
            if check is not None:
                for i in range(0, len(check), CHUNK):
                    await client.send_all(check[i : i + CHUNK])
            else:
                for _ in range(total // CHUNK):
                    await client.send_all(chunk)
                if total % CHUNK:
                    await client.send_all(chunk[: total % CHUNK])
            await client.send_eof()
    elapsed = time.perf_counter() - t0
    want = len(check) if check is not None else total
    if got != want:
        raise SystemExit(f"received {got} bytes, sent {want}")
    if check is not None and received != check:
        raise SystemExit("the bytes received differ from the bytes sent")
    return elapsed


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

    async def open(self) -> None:
        (self.listener,) = await trio.open_tcp_listeners(0, host=LOOPBACK)
        self.port = self.listener.socket.getsockname()[1]

    async def pair(self) -> tuple[trio.SocketStream, trio.SocketStream]:
        client = await trio.open_tcp_stream(LOOPBACK, self.port)
        server = await self.listener.accept()
        return client, server

    async def bulk(self, total: int, check: bytes | None = None) -> float:
        client, server = await self.pair()
        async with client, server:
            return await bulk(client, server, total, check)

    async def churn(self, n: int) -> float:
        return await churn(lambda: trio.open_tcp_stream(LOOPBACK, self.port), self.listener, n)


class Trionet:
    """Two trionet hosts over a MemoryWire with both vnics at ``mtu``."""

    def __init__(self, net: trionet.Network, mtu: int) -> None:
        self.net = net
        self.mtu = mtu

    async def open(self) -> None:
        net, mtu = self.net, self.mtu
        self.a = a = await net.add_host(f"a{mtu}")
        self.b = b = await net.add_host(f"b{mtu}")
        link = await net.link(a, b, mtu=mtu)
        for host, ifp, addr in ((a, link.ends[0], A), (b, link.ends[1], B)):
            assert isinstance(ifp, trionet.Ifnet) and ifp.mtu == mtu
            host.ifconfig(ifp.name, f"{addr}/24")
        (self.listener,) = await b.open_tcp_listeners(0)
        self.port = self.listener.getsockname()[1]
        self.connections = 0

    async def connect(self) -> trionet.TcpStream:
        self.connections += 1
        return await self.a.open_tcp_stream(B, self.port)

    async def bulk(self, total: int, check: bytes | None = None) -> float:
        client = await self.connect()
        server = await self.listener.accept()
        async with client, server:
            elapsed = await bulk(client, server, total, check)
            stats = client.statistics()
        if stats.retransmits:
            raise SystemExit(f"MTU {self.mtu}: {stats.retransmits} retransmissions on a lossless wire")
        self.per_segment = stats.bytes_sent / stats.segments_sent
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
    ("TCP machine (tcp_connection, tcp_cc)", ("protocols/tcp_connection.py", "protocols/tcp_cc.py")),
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


async def main(args: argparse.Namespace) -> None:
    total = args.megabytes * 1_000_000
    n_conn = args.connections
    if (args.rounds + 1) * n_conn > PORT_BUDGET:
        raise SystemExit(f"(rounds + 1) * connections must be at most {PORT_BUDGET} (TIME_WAIT holds ports)")
    check = random.Random(1).randbytes(1 << 20)
    kernel = Kernel()
    await kernel.open()
    async with trionet.open_network(seed=1, invariants=not args.no_invariants) as net:
        pairs = {mtu: Trionet(net, mtu) for mtu in MTUS}
        for p in pairs.values():
            await p.open()

        # Bulk: name -> run().
        bulk_runs: dict[str, Callable[..., Awaitable[float]]] = {"kernel": kernel.bulk}
        for mtu, p in pairs.items():
            bulk_runs[f"mtu{mtu}"] = p.bulk
        names = list(bulk_runs)
        rate: dict[str, list[float]] = {k: [] for k in names}
        ratio: dict[str, list[float]] = {k: [] for k in names[1:]}
        for r in range(args.rounds + 1):
            got: dict[str, float] = {}
            for name in names if r % 2 else names[::-1]:
                if r == 0:
                    await bulk_runs[name](0, check)  # content check, unrecorded
                got[name] = total / await timed(lambda: bulk_runs[name](total)) / 1e6
            for p in pairs.values():
                check_counters(p.a, p.b)
            if r == 0:
                continue  # warm-up
            for name in names:
                rate[name].append(got[name])
            for name in names[1:]:
                ratio[name].append(got[name] / got["kernel"])

        # Connection set-up: MTU 1500 pair only.
        p1500 = pairs[1500]
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
        time_wait = sum(1 for row in p1500.a.inet.tcp.netstat() if row.state == "TIME_WAIT")

        command = "python3 benchmarks/bench_tcp.py" + (" --quick" if args.quick else "")
        print(f"command: {command}  (--rounds {args.rounds} --megabytes {args.megabytes} "
              f"--connections {n_conn}{' --profile' if args.profile else ''}"
              f"{' --no-invariants' if args.no_invariants else ''})")
        print(f"python:  {platform.python_implementation()} {platform.python_version()}")
        print(f"trio:    {trio.__version__}   trionet: {trionet.__version__}   "
              f"invariants: {'off' if args.no_invariants else 'on'}")
        print(f"platform: {platform.platform()} ({platform.machine()})")
        print()
        print(f"bulk TCP, one connection, {args.megabytes} MB per contender per round in send_all() "
              f"of {CHUNK} bytes, receive_some({CHUNK}); {args.rounds} rounds; byte counts checked, "
              f"1 MiB content checked, 0 retransmissions, 0 drops")
        print(f"{'contender':<40} {'B/seg':>6} {'MB/s':>8}   ratio to the kernel (min..max)")
        print("-" * 90)
        for name in names:
            label = ("trio streams, kernel loopback" if name == "kernel"
                     else f"trionet, MemoryWire, MTU {name[3:]}")
            m = "-" if name == "kernel" else f"{pairs[int(name[3:])].per_segment:.0f}"
            print(f"{label:<40} {m:>6} {statistics.median(rate[name]):>8.2f}   ", end="")
            print("1.000" if name == "kernel" else summary(ratio[name]))
        print()
        print(f"connection set-up: open_tcp_stream + accept + aclose (both), {n_conn} in a row per round")
        print(f"{'contender':<40} {'conn/s':>8}   ratio to the kernel (min..max)")
        print("-" * 90)
        print(f"{'trio streams, kernel loopback':<40} {statistics.median(cps['kernel']):>8.0f}   1.000")
        print(f"{'trionet, MemoryWire, MTU 1500':<40} {statistics.median(cps['trionet']):>8.0f}   "
              f"{summary(cps_ratio)}")
        print(f"(trionet connections left in TIME_WAIT on the client: {time_wait})")
        print()
        med = statistics.median(ratio["mtu65535"])
        verdict = "met" if med >= 0.5 else f"NOT met (median {med:.3f}, {0.5 / med:.0f}x short)"
        print(f"acceptance (MTU 65535 throughput >= 0.5 of the kernel's): {verdict}")

        if args.profile:
            print()
            prof = cProfile.Profile()
            prof.enable()
            await pairs[65535].bulk(total)
            prof.disable()
            print_profile(pstats.Stats(prof), total)
    await kernel.listener.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds, 4 MB, 100 connections")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--megabytes", type=int)
    parser.add_argument("--connections", type=int)
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
    trio.run(main, args)
    print(f"(wall time {time.perf_counter() - t0:.1f} s)")
