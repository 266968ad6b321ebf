"""Benchmark: UDP datagrams per second between two trionet hosts, against Trio
UDP sockets over the kernel's loopback, and ping round-trip time.

Usage::

    python3 benchmarks/bench_udp.py [--rounds N] [--datagrams N] [--profile]

What is measured
================

a. *baseline*: two Trio UDP sockets on 127.0.0.1 in this process, the plain
   way a Trio program uses them: a sender task doing ``await
   sock.sendto(payload, peer)`` per datagram, a receiver task doing ``await
   sock.recvfrom(2048)`` per datagram.
b. *trionet*: the same two loops with ``host.udp_socket()`` on two trionet
   hosts joined by ``open_network().link()`` (a MemoryWire, no delay), so
   the whole path runs: socket -> UDP output -> IP output -> ARP -> send
   queue -> ``start`` on the ifnet thread -> vnic TX ring and engine ->
   MemoryWire -> the other vnic's RX ring -> ithread -> ``intr`` under the
   serializer -> Ethernet input -> netisr (hashed by flow) -> IP input ->
   UDP input -> socket buffer -> receiver task; and TX-completion
   interrupts on the sender.

Both move 64-byte payloads, one-way. Both senders keep at most ``WINDOW``
datagrams in flight (a receiver that falls behind would otherwise drop at
its socket buffer): past that the sender waits until the receiver is back
to half the window. Every run checks that all datagrams arrived and that no
counter on the trionet side shows a drop; a run with losses fails the
benchmark. The figure of merit is **datagrams per second divided by the
baseline's datagrams per second in the same round** (above 1.0 means trionet
is faster). Rounds alternate the order of the contenders after an
unrecorded warm-up; the table gives the median and min..max. The garbage
collector is off inside timed loops.

Ping: ``host.ping(addr, count=1)``, N times in a row, between the same two hosts,
in microseconds; for scale, the round trip of one datagram between two Trio
UDP sockets on 127.0.0.1 (one echoes what it receives).

``--profile`` runs the trionet contender once more under ``cProfile`` and
prints the time spent in each layer (self time of the functions in each
module group), then the top functions.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import logging
import platform
import pstats
import socket
import statistics
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable

import structlog
import trio

import trionet

WINDOW = 64
PAYLOAD = bytes(64)
LOOPBACK = "127.0.0.1"
A, B = "10.0.0.1", "10.0.0.2"
PORT = 9


class Pacer:
    """Keeps at most ``WINDOW`` datagrams in flight; counts arrivals."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.sent = 0
        self.got = 0
        self.done = trio.Event()
        self.lot = trio.lowlevel.ParkingLot()

    def arrived(self) -> None:
        self.got += 1
        if self.lot and self.sent - self.got <= WINDOW // 2:
            self.lot.unpark_all()
        if self.got == self.n:
            self.done.set()

    async def window(self) -> None:
        while self.sent - self.got >= WINDOW:
            await self.lot.park()


async def one_way(
    n: int,
    sendto: Callable[[bytes, tuple[str, int]], Awaitable[object]],
    recvfrom: Callable[[], Awaitable[object]],
    dst: tuple[str, int],
) -> float:
    """Seconds to move ``n`` datagrams from ``sendto`` to ``recvfrom``."""
    pacer = Pacer(n)

    async def receiver() -> None:
        for _ in range(n):
            await recvfrom()
            pacer.arrived()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(receiver)
        t0 = time.perf_counter()
        for _ in range(n):
            await pacer.window()
            await sendto(PAYLOAD, dst)
            pacer.sent += 1
        with trio.fail_after(10):
            await pacer.done.wait()
        return time.perf_counter() - t0


async def kernel_pair() -> tuple[trio.socket.SocketType, trio.socket.SocketType]:
    tx = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await tx.bind((LOOPBACK, 0))
    await rx.bind((LOOPBACK, 0))
    return tx, rx


async def run_kernel(n: int) -> float:
    tx, rx = await kernel_pair()
    with tx, rx:
        return await one_way(n, tx.sendto, lambda: rx.recvfrom(2048), rx.getsockname())


async def run_trionet(h1: trionet.Host, h2: trionet.Host, n: int) -> float:
    with h1.udp_socket() as tx, h2.udp_socket() as rx:
        rx.bind((B, PORT))
        before = rx.statistics().drops
        elapsed = await one_way(n, tx.sendto, rx.recvfrom, (B, PORT))
        if rx.statistics().drops != before:
            raise SystemExit(f"the receiving socket dropped datagrams: {rx.statistics()}")
        return elapsed


async def kernel_rtt(n: int) -> list[float]:
    a, b = await kernel_pair()
    rtts = []
    with a, b:

        async def echo() -> None:
            while True:
                data, peer = await b.recvfrom(2048)
                await b.sendto(data, peer)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(echo)
            for _ in range(n):
                t0 = time.perf_counter()
                await a.sendto(PAYLOAD, b.getsockname())
                await a.recvfrom(2048)
                rtts.append(time.perf_counter() - t0)
            nursery.cancel_scope.cancel()
    return rtts


def check_counters(*hosts: trionet.Host) -> None:
    for h in hosts:
        ip = h.inet.ip.statistics()
        udp = h.inet.udp.statistics()
        if ip.drops or udp.drops:
            raise SystemExit(f"{h.name} counted drops: ip {ip.drops}, udp {udp}")
        for row in h.netstat_i():
            if row.ierrors or row.iqdrops or row.oerrors or row.oqdrops:
                raise SystemExit(f"{h.name} {row.name} counted errors or drops: {row}")


GROUPS = (
    ("trio scheduler", ("trio/_core", "outcome/", "sniffio")),
    ("sockets and UDP", ("_net/_udp.py", "protocols/udp.py")),
    ("IP and ICMP", ("_net/_ip.py", "_net/_icmp.py", "protocols/ipv4.py", "protocols/flowhash.py",
                     "protocols/checksum.py", "_net/_route.py")),
    ("ARP and Ethernet", ("_net/_arp.py", "protocols/arp.py", "_net/_ether.py")),
    ("send queue and start", ("_net/_ifstart.py", "_net/_ifq.py", "_net/_if.py")),
    ("vnic driver", ("drivers/vnic.py",)),
    ("MemoryWire", ("wires/",)),
    ("kernel threads (msgport, intr, netisr, serializer)", ("_kern/",)),
    ("enum flags", ("enum.py",)),
    ("the benchmark itself", ("bench_udp.py",)),
)


def print_profile(stats: pstats.Stats, n: int) -> None:
    by_group: dict[str, float] = defaultdict(float)
    total = 0.0
    for (filename, _, _), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        total += tottime
        for group, needles in GROUPS:
            if any(needle in filename for needle in needles):
                by_group[group] += tottime
                break
        else:
            by_group["built-ins (len, int.from_bytes...) and other"] += tottime
    print(f"profile of one trionet run ({n} datagrams; cProfile inflates Python time):")
    print(f"{'layer (self time)':<52} {'us/dgram':>9} {'share':>7}")
    for group, t in sorted(by_group.items(), key=lambda kv: -kv[1]):
        print(f"{group:<52} {t / n * 1e6:>9.1f} {t / total:>7.1%}")
    print()
    stats.sort_stats("tottime").print_stats(15)


async def main(rounds: int, n: int, profile: bool) -> None:
    async with trionet.open_network(seed=1) as net:
        h1 = await net.add_host("h1")
        h2 = await net.add_host("h2")
        link = await net.link(h1, h2)
        h1.ifconfig(link.ends[0].name, f"{A}/24")
        h2.ifconfig(link.ends[1].name, f"{B}/24")
        # Resolve ARP before timing anything.
        if (await h1.ping(B, count=1)).received != 1:
            raise SystemExit("h1 cannot reach h2")

        contenders: dict[str, Callable[[], Awaitable[float]]] = {
            "trio UDP sockets, kernel loopback": lambda: run_kernel(n),
            "trionet hosts over a MemoryWire": lambda: run_trionet(h1, h2, n),
        }
        names = list(contenders)
        per_dgram: dict[str, list[float]] = {k: [] for k in names}
        ratios: list[float] = []
        for r in range(rounds + 1):
            got = {}
            for name in names if r % 2 else names[::-1]:
                gc.collect()
                gc.disable()
                try:
                    got[name] = await contenders[name]() / n
                finally:
                    gc.enable()
            check_counters(h1, h2)
            if r == 0:
                continue  # warm-up
            for name in names:
                per_dgram[name].append(got[name])
            ratios.append(got[names[0]] / got[names[1]])

        gc.disable()
        try:
            ping_rtts: list[float] = []
            for _ in range(n // 10):  # one at a time: a round trip, not a burst
                ping = await h1.ping(B, count=1, timeout=1)
                if ping.received != 1:
                    raise SystemExit(f"ping lost a reply: {ping}")
                ping_rtts.extend(ping.rtts)
            krtt = await kernel_rtt(n // 10)
        finally:
            gc.enable()

        print(f"command: python3 benchmarks/bench_udp.py --rounds {rounds} --datagrams {n}"
              + (" --profile" if profile else ""))
        print(f"python:  {platform.python_implementation()} {platform.python_version()}")
        print(f"trio:    {trio.__version__}   trionet: {trionet.__version__}")
        print(f"platform: {platform.platform()} ({platform.machine()})")
        print()
        print(f"one-way UDP, {len(PAYLOAD)}-byte payloads, {n} datagrams per contender per round, "
              f"{rounds} rounds, at most {WINDOW} in flight, 0 lost (checked)")
        print(f"{'contender':<36} {'us/dgram':>9} {'dgrams/s':>9}   speed ratio to the kernel (min..max)")
        print("-" * 90)
        for name in names:
            s = statistics.median(per_dgram[name])
            print(f"{name:<36} {s * 1e6:>9.1f} {1 / s:>9.0f}", end="")
            if name == names[0]:
                print("   1.00")
            else:
                print(f"   {statistics.median(ratios):.2f} ({min(ratios):.2f}..{max(ratios):.2f})")
        print()
        print("round trip, microseconds      median      min      max   (samples)")
        for name, rtts in (
            ("trionet ping (ICMP echo)", ping_rtts),
            ("trio UDP echo, kernel loopback", krtt),
        ):
            print(f"{name:<30} {statistics.median(rtts) * 1e6:>6.0f} {min(rtts) * 1e6:>8.0f} "
                  f"{max(rtts) * 1e6:>8.0f}   ({len(rtts)})")

        if profile:
            print()
            prof = cProfile.Profile()
            prof.enable()
            await run_trionet(h1, h2, n)
            prof.disable()
            print_profile(pstats.Stats(prof), n)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--datagrams", type=int, default=10000)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    t0 = time.perf_counter()
    trio.run(main, args.rounds, args.datagrams, args.profile)
    print(f"(wall time {time.perf_counter() - t0:.1f} s)")
