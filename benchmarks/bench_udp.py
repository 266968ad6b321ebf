"""Benchmark: UDP datagrams per second between two trionet hosts, against Trio
UDP sockets over the kernel's loopback; task wake-ups and Python calls per
datagram; and ping round-trip time.

Usage::

    python3 benchmarks/bench_udp.py [--quick] [--rounds N] [--datagrams N]
                                    [--no-counts] [--profile]

What is measured
================

Five paths, each moving ``N`` datagrams one way in a round:

a. *kernel* (the baseline): two Trio UDP sockets on 127.0.0.1 in this
   process, the plain way a Trio program uses them: a sender task doing
   ``await sock.sendto(payload, peer)`` per datagram, a receiver task doing
   ``await sock.recvfrom(2048)`` per datagram.
b. *MemoryWire* (and *MemoryWire, IPv6*, the same over IPv6 between
   fd00::1 and fd00::2, neighbour discovery in place of ARP; the line
   under the table gives its time per datagram over IPv4's, round by
   round: issue 17 wants at most 1.2): the same two loops with ``host.udp_socket()`` on two
   trionet hosts joined by ``open_network().link()`` (a MemoryWire, no
   delay), so the whole path runs: socket -> UDP output -> IP output -> ARP
   -> send queue -> ``start`` -> vnic TX ring -> MemoryWire -> the other
   vnic's RX ring -> ithread -> ``intr`` under the serializer -> Ethernet
   input -> netisr (hashed by flow) -> IP input -> UDP input -> socket
   buffer -> receiver task; and TX-completion interrupts on the sender.
c. *polling*: the same as (b) on another pair of hosts whose vnics have
   ``IfFlags.POLLING`` set (``host.ifioctl(ifp, IfIoctl.SIOCSIFFLAGS,
   ifp.flags | IfFlags.POLLING)``, before each run, cleared after it, so the
   polling clock does not run during the other paths' rounds): no
   interrupts; the netisr's polling clock (``kern.polling.pollhz``, 2000 Hz)
   drains RX and TX completions. If setting the flag fails, the row is
   skipped with the reason printed.
d. *UdpWire*: the same as (b) on two hosts joined by ``net.link(a, b,
   kind="udp")``: two UdpWires on 127.0.0.1, one real datagram through the
   kernel per frame (behind the fault injectors such a link always has).

All move 64-byte payloads. Every sender keeps at most ``WINDOW`` datagrams
in flight (a receiver that falls behind would otherwise drop at its socket
buffer): past that it waits until the receiver is back to half the window.
Every run checks that all datagrams arrived and that no counter on the
trionet hosts shows a drop; a run with losses fails the benchmark. The
figure of merit is **datagrams per second divided by the kernel path's in
the same round** (above 1.0 means trionet is faster). Rounds alternate the
order of the contenders after an unrecorded warm-up; the table gives the
median and min..max. The garbage collector is off inside timed loops.

Counts
======

Columns ``wakeups`` and ``calls``, per datagram, for each path; below the
table, the wake-ups per datagram by task. They are made in runs of their
own before the timed rounds, each in a fresh ``trio.run`` and a fresh
network (seed 1): one warm-up transfer, then one transfer of ``N``
datagrams counting task wake-ups and one counting Python calls, from the
first ``sendto`` to the last arrival, divided by ``N``. They include the
benchmark's own (the sender and the receiver, the window's parking lot),
which are the kernel path's whole count. ``bench_tcp.py`` counts the same
way per 64 KiB chunk, ``bench_scale.py`` and ``bench_flows.py`` wake-ups
per phase and per segment.

*Wake-ups*: a :class:`trio.abc.Instrument` whose ``task_scheduled`` hook
counts each time Trio's ``reschedule`` makes a task runnable (a task woken
by another, one rescheduling itself at a checkpoint, a new task).
``task_scheduled`` rather than ``before_task_step`` because it is the event
the earlier profiles counted (``reschedule`` calls, the source of issue 14's
figures), and it counts a wake-up when it is decided, so a window closed by
the woken task's own step still includes it; the two differ by at most the
tasks runnable at the window's edges. It also counts by task name, numbers
folded (``task_kind``), which says which hand-over each wake-up pays for.

*Python calls*: ``sys.setprofile`` ``"call"`` events: a Python function
entered, *including a coroutine resumed* (each ``send`` into a suspended
``async def`` frame of an ``await`` chain is one: the price of an ``await``
that suspends). C functions (``"c_call"``) are not counted.
``sys.monitoring`` would be cheaper but needs Python 3.12. The hook slows
Python several times, so calls are counted in a run of their own. The calls
Trio makes to order each batch under ``exact_scheduling`` (below: its sort
key and ``random.shuffle``, about 5 per datagram) are left out, since a
normal run does not make them.

*Exact counts*: a count repeats only if every choice in the run does. The
network's seed fixes trionet's; ``trio.testing.MockClock(
autojump_threshold=0)`` fixes time (the in-memory paths, b and c, are
counted under it); ``exact_scheduling`` fixes the order of Trio's
scheduler: each batch of runnable tasks sorted by spawn order and shuffled
by a seeded generator (the order Hypothesis asks Trio for). Seeding only
Trio's coin (whether to reverse each batch; ``seed_trio_scheduler``, what
the timed runs get, as it costs nothing per batch) is not enough: tasks
woken by deadlines on the same instant, such as two hosts' clocks, come in
``id()`` order, which moves from process to process. And
Python fills some caches on first use (``enum`` makes a composite flag
value once, then looks it up), so the counts come after a warm-up and
before anything else runs in the process. So counted, paths b and c give
the same counts to the last digit on every run of the same command; paths a
and d go through the kernel, run in real time, and are marked ``~``.
Counted in real time, path b gives the same wake-ups (6.18 against 6.19 per
datagram) but path c more (4.8 against 4.5): its clock then ticks at 2000 Hz
whether or not frames wait, where under autojump a tick comes only when
every task is idle.

Ping and profile
================

Ping: ``host.ping(addr, count=1)``, N/10 times in a row, between the
MemoryWire hosts, in microseconds; for scale, the round trip of one datagram
between two Trio UDP sockets on 127.0.0.1 (one echoes what it receives).

``--profile`` runs the MemoryWire contender once more under ``cProfile``
and prints the time spent in each layer (self time of the functions in each
module group), then the top functions.

Network safety: only 127.0.0.1 and in-memory wires; every wait is bounded.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import logging
import os
import platform
import pstats
import socket
import statistics
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import structlog
import trio
import trio.testing

import trionet
from _counting import Counts, Meter, count_each, exact_scheduling

WINDOW = 64
PAYLOAD = bytes(64)
LOOPBACK = "127.0.0.1"
A, B = "10.0.0.1", "10.0.0.2"
A6, B6 = "fd00::1", "fd00::2"
PORT = 9

#: A transfer: ``await transfer(n, meter)`` moves ``n`` datagrams and
#: returns the seconds it took; ``meter`` is started and stopped around it.
Transfer = Callable[[int, Meter], Awaitable[float]]


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
    meter: Meter,
) -> float:
    """Seconds to move ``n`` datagrams from ``sendto`` to ``recvfrom``."""
    pacer = Pacer(n)

    async def receiver() -> None:
        for _ in range(n):
            await recvfrom()
            pacer.arrived()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(receiver)
        await trio.testing.wait_all_tasks_blocked()  # the receiver is waiting
        meter.start()
        t0 = time.perf_counter()
        for _ in range(n):
            await pacer.window()
            await sendto(PAYLOAD, dst)
            pacer.sent += 1
        with trio.fail_after(10):
            await pacer.done.wait()
        elapsed = time.perf_counter() - t0
        meter.stop()
        return elapsed


####################################################################
# The paths
####################################################################


async def kernel_pair() -> tuple[trio.socket.SocketType, trio.socket.SocketType]:
    tx = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await tx.bind((LOOPBACK, 0))
    await rx.bind((LOOPBACK, 0))
    return tx, rx


@asynccontextmanager
async def kernel_path(net: trionet.Network) -> AsyncIterator[Transfer]:
    async def transfer(n: int, meter: Meter) -> float:
        tx, rx = await kernel_pair()
        with tx, rx:
            return await one_way(n, tx.sendto, lambda: rx.recvfrom(2048), rx.getsockname(), meter)

    yield transfer


def check_counters(*hosts: trionet.Host) -> None:
    for h in hosts:
        ip = h.inet.ip.statistics()
        ip6 = h.inet6.ip6.statistics()
        udp = h.inet.udp.statistics()
        if ip.drops or ip6.drops or udp.drops:
            raise SystemExit(f"{h.name} counted drops: ip {ip.drops}, ip6 {ip6.drops}, udp {udp}")
        for row in h.netstat_i():
            if row.ierrors or row.iqdrops or row.oerrors or row.oqdrops:
                raise SystemExit(f"{h.name} {row.name} counted errors or drops: {row}")


async def host_pair(net: trionet.Network, prefix: str, **link: Any) -> tuple[trionet.Host, trionet.Host, trionet.Link]:
    """Two hosts ``{prefix}1`` and ``{prefix}2`` on one link, addresses A and
    B, ARP resolved (by one ping)."""
    h1 = await net.add_host(f"{prefix}1")
    h2 = await net.add_host(f"{prefix}2")
    ln = await net.link(h1, h2, **link)
    h1.ifconfig(ln.ends[0].name, f"{A}/24")  # type: ignore[union-attr]
    h2.ifconfig(ln.ends[1].name, f"{B}/24")  # type: ignore[union-attr]
    if (await h1.ping(B, count=1)).received != 1:
        raise SystemExit(f"{prefix}1 cannot reach {prefix}2")
    return h1, h2, ln


def trionet_transfer(h1: trionet.Host, h2: trionet.Host, dst: str = B) -> Transfer:
    async def transfer(n: int, meter: Meter) -> float:
        with h1.udp_socket() as tx, h2.udp_socket() as rx:
            rx.bind((dst, PORT))
            before = rx.statistics().drops
            elapsed = await one_way(n, tx.sendto, rx.recvfrom, (dst, PORT), meter)
            if rx.statistics().drops != before:
                raise SystemExit(f"the receiving socket dropped datagrams: {rx.statistics()}")
        check_counters(h1, h2)
        return elapsed

    return transfer


@asynccontextmanager
async def memory_path(net: trionet.Network) -> AsyncIterator[Transfer]:
    h1, h2, _ = await host_pair(net, "m")
    yield trionet_transfer(h1, h2)


@asynccontextmanager
async def memory6_path(net: trionet.Network) -> AsyncIterator[Transfer]:
    # The same as memory_path over IPv6: fd00::1/64 and fd00::2/64, DAD off
    # (dad_count 0: the addresses are ours), the neighbour resolved by a ping.
    h1 = await net.add_host("v1")
    h2 = await net.add_host("v2")
    for h in (h1, h2):
        h.sysctl("net.inet6.ip6.dad_count", 0)
    ln = await net.link(h1, h2)
    h1.ifconfig(ln.ends[0].name, f"{A6}/64")  # type: ignore[union-attr]
    h2.ifconfig(ln.ends[1].name, f"{B6}/64")  # type: ignore[union-attr]
    await trio.sleep(0.1)  # the multicast filters take the new groups (an ioctl on a kernel thread)
    if (await h1.ping(B6, count=1, timeout=3)).received != 1:
        raise SystemExit("v1 cannot reach v2 over IPv6")
    yield trionet_transfer(h1, h2, B6)


async def set_polling(host: trionet.Host, ifp: trionet.Ifnet, on: bool) -> None:
    flags = ifp.flags | trionet.IfFlags.POLLING if on else ifp.flags & ~trionet.IfFlags.POLLING
    await host.ifioctl(ifp, trionet.IfIoctl.SIOCSIFFLAGS, flags)
    if bool(ifp.flags & trionet.IfFlags.POLLING) != on:
        raise RuntimeError(f"{host.name} {ifp.name}: SIOCSIFFLAGS left POLLING {'off' if on else 'on'}")


@asynccontextmanager
async def polling_path(net: trionet.Network) -> AsyncIterator[Transfer]:
    h1, h2, ln = await host_pair(net, "p")
    sides = ((h1, ln.ends[0]), (h2, ln.ends[1]))
    inner = trionet_transfer(h1, h2)

    async def transfer(n: int, meter: Meter) -> float:
        # Polling only while this path runs: its clock (2000 Hz) would
        # otherwise wake the netisrs during the other paths' rounds.
        for host, ifp in sides:
            await set_polling(host, ifp, True)  # type: ignore[arg-type]
        try:
            return await inner(n, meter)
        finally:
            for host, ifp in sides:
                await set_polling(host, ifp, False)  # type: ignore[arg-type]

    yield transfer


@asynccontextmanager
async def udpwire_path(net: trionet.Network) -> AsyncIterator[Transfer]:
    h1, h2, _ = await host_pair(net, "u", kind="udp")
    yield trionet_transfer(h1, h2)


#: name -> (label, path, counted in virtual time)
PATHS: dict[str, tuple[str, Callable[[trionet.Network], Any], bool]] = {
    "kernel": ("trio UDP sockets, kernel loopback", kernel_path, False),
    "memory": ("trionet hosts, MemoryWire", memory_path, True),
    "memory6": ("trionet hosts, MemoryWire, IPv6", memory6_path, True),
    "polling": ("trionet hosts, MemoryWire, polling", polling_path, True),
    "udpwire": ("trionet hosts, UdpWire (loopback)", udpwire_path, False),
}


####################################################################
# Counting runs
####################################################################


def count_path(name: str, n: int) -> Counts:
    """Wake-ups and calls per datagram on path ``name``, in a fresh
    ``trio.run`` (virtual time for the in-memory paths)."""
    _, path, virtual = PATHS[name]

    async def sender() -> Counts:  # this task sends; one_way starts the receiver
        async with trionet.open_network(seed=1) as net, path(net) as transfer:
            await transfer(min(n, 500), Meter())  # warm-up: caches, enum pseudo-members
            wakeups, calls = Meter("wakeups"), Meter("calls")
            for meter in (wakeups, calls):
                gc.collect()
                gc.disable()
                try:
                    await transfer(n, meter)
                finally:
                    gc.enable()
        return Counts.of(wakeups, calls, n, virtual)

    clock = trio.testing.MockClock(autojump_threshold=0) if virtual else None
    with exact_scheduling(0):
        return trio.run(sender, clock=clock)


####################################################################
# Timed rounds, ping, profile
####################################################################


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


async def timed_rounds(args: argparse.Namespace) -> dict[str, Any]:
    """The timed rounds and the ping, in real time."""
    n, rounds = args.datagrams, args.rounds
    out: dict[str, Any] = {"skipped": {}}
    async with trionet.open_network(seed=1) as net, AsyncExitStack() as stack:
        transfers: dict[str, Transfer] = {}
        for name, (_, path, _) in PATHS.items():
            try:
                transfers[name] = await stack.enter_async_context(path(net))
                if name == "polling":
                    await transfers[name](min(n, 500), Meter())  # does polling work at all?
            except Exception as exc:  # noqa: BLE001 - reported, and the row skipped
                if name != "polling":
                    raise
                out["skipped"][name] = f"{type(exc).__name__}: {exc}"
                transfers.pop(name, None)
        names = [name for name in PATHS if name in transfers]
        per_dgram: dict[str, list[float]] = {k: [] for k in names}
        ratios: dict[str, list[float]] = {k: [] for k in names[1:]}
        for r in range(rounds + 1):
            got = {}
            for name in names if r % 2 else names[::-1]:
                gc.collect()
                gc.disable()
                try:
                    got[name] = await transfers[name](n, Meter()) / n
                finally:
                    gc.enable()
            if r == 0:
                continue  # warm-up
            for name in names:
                per_dgram[name].append(got[name])
            for name in names[1:]:
                ratios[name].append(got["kernel"] / got[name])
        out["names"], out["per_dgram"], out["ratios"] = names, per_dgram, ratios
        # IPv6 against IPv4, each round's own pair (time per datagram).
        out["v6_over_v4"] = [v6 / v4 for v6, v4 in zip(per_dgram["memory6"], per_dgram["memory"], strict=True)]

        h1 = net.hosts["m1"]
        gc.disable()
        try:
            ping_rtts: list[float] = []
            for _ in range(max(n // 10, 1)):  # one at a time: a round trip, not a burst
                ping = await h1.ping(B, count=1, timeout=1)
                if ping.received != 1:
                    raise SystemExit(f"ping lost a reply: {ping}")
                ping_rtts.extend(ping.rtts)
            out["ping"] = ping_rtts
            out["krtt"] = await kernel_rtt(max(n // 10, 1))
        finally:
            gc.enable()

        if args.profile:
            prof = cProfile.Profile()
            prof.enable()
            await transfers["memory"](n, Meter())
            prof.disable()
            out["profile"] = pstats.Stats(prof)
    return out


def main(args: argparse.Namespace) -> None:
    n, rounds = args.datagrams, args.rounds
    # Counts first, while nothing but deterministic work has run in this
    # process (caches such as enum's composite flags fill on first use).
    counts, skipped = ({}, {}) if args.no_counts else count_each(PATHS, lambda name: count_path(name, n))
    res = trio.run(timed_rounds, args)
    res["skipped"] = skipped | res["skipped"]

    command = "python3 benchmarks/bench_udp.py" + (" --quick" if args.quick else "")
    print(f"command: {command}  (--rounds {rounds} --datagrams {n}"
          f"{' --no-counts' if args.no_counts else ''}{' --profile' if args.profile else ''})")
    print(f"python:  {platform.python_implementation()} {platform.python_version()}")
    print(f"trio:    {trio.__version__}   trionet: {trionet.__version__}")
    print(f"platform: {platform.platform()} ({platform.machine()}), {os.cpu_count()} CPUs, "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print()
    print(f"one-way UDP, {len(PAYLOAD)}-byte payloads, {n} datagrams per contender per round, "
          f"{rounds} rounds, at most {WINDOW} in flight, 0 lost (checked)")
    print(f"{'contender':<38} {'us/dgram':>9} {'dgrams/s':>9}   {'ratio to the kernel':<19} "
          f"{'wakeups':>9} {'calls':>9}")
    print(f"{'':<38} {'':>9} {'':>9}   {'(min..max)':<19} {'/dgram':>9} {'/dgram':>9}")
    print("-" * 100)
    names = res["names"]
    for name in PATHS:
        label = PATHS[name][0]
        if name not in names:
            print(f"{label:<38} skipped: {res['skipped'].get(name, 'not run')}")
            continue
        s = statistics.median(res["per_dgram"][name])
        if name == "kernel":
            ratio = "1.00"
        else:
            rs = res["ratios"][name]
            ratio = f"{statistics.median(rs):.2f} ({min(rs):.2f}..{max(rs):.2f})"
        c = counts.get(name)
        cells = c.cells() if c else Counts.EMPTY
        print(f"{label:<38} {s * 1e6:>9.1f} {1 / s:>9.0f}   {ratio:<19} {cells}")
    for name in names:
        if name in res["skipped"]:
            print(f"({PATHS[name][0]}: counting run failed: {res['skipped'][name]})")
    v6 = res["v6_over_v4"]
    verdict = "met" if statistics.median(v6) <= 1.2 else "NOT met"
    print(f"IPv6 / IPv4 time per datagram (MemoryWire, same rounds): {statistics.median(v6):.2f} "
          f"({min(v6):.2f}..{max(v6):.2f}); target at most 1.2x: {verdict}")
    if counts:
        print(f"(counts: one run of {n} datagrams per path after a warm-up, from the first sendto to "
              f"the last arrival; exact, virtual time and seeded, except ~: real time through the kernel)")
    if counts:
        print()
        print("wake-ups per datagram by task (numbers in task names folded to N):")
        for name in names:
            if name in counts:
                print(f"  {PATHS[name][0]}: {counts[name].tasks()}")
    print()
    print("round trip, microseconds      median      min      max   (samples)")
    for label, rtts in (
        ("trionet ping (ICMP echo)", res["ping"]),
        ("trio UDP echo, kernel loopback", res["krtt"]),
    ):
        print(f"{label:<30} {statistics.median(rtts) * 1e6:>6.0f} {min(rtts) * 1e6:>8.0f} "
              f"{max(rtts) * 1e6:>8.0f}   ({len(rtts)})")
    if args.profile:
        print()
        print_profile(res["profile"], n)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds of 2000 datagrams")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--datagrams", type=int)
    parser.add_argument("--no-counts", action="store_true", help="skip the counting runs")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    defaults = (3, 2000) if args.quick else (7, 10000)
    for key, default in zip(("rounds", "datagrams"), defaults, strict=True):
        if getattr(args, key) is None:
            setattr(args, key, default)
    if args.rounds < 1 or args.datagrams < 1:
        raise SystemExit("--rounds and --datagrams must be at least 1")
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    t0 = time.perf_counter()
    main(args)
    print(f"(wall time {time.perf_counter() - t0:.1f} s)")
