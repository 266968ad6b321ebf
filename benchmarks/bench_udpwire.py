"""Benchmark: frames per second over a UdpWire pair, as a ratio to plain Trio UDP sockets.

Usage::

    python3 benchmarks/bench_udpwire.py [--rounds N] [--frames N]

What is measured
================

All contenders move the same 60-byte Ethernet frames (a sequence number at
offset 14) through the kernel's UDP on 127.0.0.1, one frame per datagram,
between two sockets in this one process:

a. *baseline*: plain Trio UDP sockets, the plain way a Trio program does
   it: a sender task doing ``await sock.sendto(frame, peer)`` per datagram
   and a receiver task doing ``await sock.recv(2048)`` per datagram.
b. *batched sockets*: the same syscalls without per-datagram awaits, the
   way :class:`UdpWire` works: the sender does 64 non-blocking ``sendto``
   and then checkpoints; the receiver waits with
   ``trio.lowlevel.wait_readable`` and drains up to 64 datagrams with
   non-blocking ``recv``. The floor for a Trio program on this kernel.
c. *UdpWire -> UdpWire*: ``wire.send`` in chunks of 64, and a receiver
   function installed with ``set_receiver`` (the wire alone, no stack).
d. *vnic -> UdpWire -> vnic*: the whole path between two hosts:
   ``ifq_dispatch`` -> send queue -> ``start`` on the ``ifnet`` thread -> TX
   ring -> TX engine -> ``UdpWire.send`` -> kernel UDP -> the other wire's
   receive task -> RX ring -> ``sched_ithd`` -> ithread -> ``intr`` under the
   serializer -> ``ifp.input`` -> Ethernet input -> netisr -> a protocol
   handler, plus TX completion interrupts on the sender.

Pacing and losses: UDP on loopback drops a datagram when the receiving
socket's buffer is full, and every contender has a sender that could outrun
its receiver (they share one CPU). So every sender keeps at most
``WINDOW`` (256) frames in flight: past that it waits until the receiver is
back to half the window. Every receiver checks the sequence numbers; a gap is
counted as lost, a frame going backwards fails the run. If nothing arrives for
0.5 s, whatever is still in flight is counted as lost and the round goes on
(its time then includes the stall, so a round with losses is reported, and
its figure is not comparable). The kernel's own count of UDP receive-buffer
overflows (``RcvbufErrors`` in ``/proc/net/snmp``, machine-wide) is printed
before and after, as an independent check.

All sockets ask for the same receive buffer (``SO_RCVBUF`` 1 MiB, the
UdpWire default). The figure of merit is **ns per frame divided by the
baseline's ns per frame, measured in the same round**. Rounds interleave the
contenders in a rotating order after an unrecorded warm-up; the table gives
the median and min..max over rounds. The garbage collector is disabled
inside timed loops.

Only public names are used, except that ``UdpWire`` is imported from its
private module until ``trionet.wires`` exports it.
"""

from __future__ import annotations

import argparse
import gc
import platform
import socket
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog
import trio

import trionet
from trionet.drivers.vnic import Vnic
from trionet.lowlevel import ifq_dispatch

from trionet.wires import UdpWire, open_udp_wire_pair

PROTO = 0x88B5
CHUNK = 64
WINDOW = 256
STALL = 0.5
RCVBUF = 1 << 20
LOOPBACK = "127.0.0.1"


class Tracker:
    """Counts arrivals by sequence number, paces the sender, detects losses."""

    def __init__(self) -> None:
        self.reset(0)

    def reset(self, n: int) -> None:
        self.n = n
        self.sent = 0
        self.expect = 0  # next sequence number due
        self.lost = 0
        self.sender_waiting = False
        self.lot = trio.lowlevel.ParkingLot()
        self.done = trio.Event()

    def arrived(self, seq: int) -> None:
        """A plain function: frame ``seq`` arrived."""
        if seq < self.expect:
            raise SystemExit(f"frame {seq} arrived after frame {self.expect - 1}: reordered")
        self.lost += seq - self.expect
        self.expect = seq + 1
        if self.expect >= self.n:
            self.done.set()
        if self.sender_waiting and self.sent - self.expect <= WINDOW // 2:
            self.sender_waiting = False
            self.lot.unpark_all()

    async def window(self) -> None:
        """Wait while ``WINDOW`` frames are in flight."""
        while self.sent - self.expect >= WINDOW:
            self.sender_waiting = True
            progress = self.expect
            with trio.move_on_after(STALL):
                await self.lot.park()
            if self.expect == progress:  # stalled: what is in flight is lost
                self.lost += self.sent - self.expect
                self.expect = self.sent

    async def finish(self) -> None:
        """Wait for the last frame; count a stalled tail as lost."""
        while self.expect < self.n:
            progress = self.expect
            with trio.move_on_after(STALL):
                await self.done.wait()
            if self.expect == progress:
                self.lost += self.n - self.expect
                self.expect = self.n


def seq_of(frame: bytes | memoryview) -> int:
    return int.from_bytes(frame[14:18], "big")


def make_frames(dst: bytes, src: bytes, n: int) -> list[bytes]:
    head = dst + src + PROTO.to_bytes(2, "big")
    return [head + i.to_bytes(4, "big") + bytes(42) for i in range(n)]


def rcvbuf_errors() -> int | None:
    # The kernel's UDP receive-buffer overflow counter (all sockets, all processes).
    try:
        lines = Path("/proc/net/snmp").read_text().splitlines()
    except OSError:
        return None
    udp = [line.split()[1:] for line in lines if line.startswith("Udp:")]
    if len(udp) < 2 or "RcvbufErrors" not in udp[0]:
        return None
    return int(udp[1][udp[0].index("RcvbufErrors")])


####################################################################
# contenders
####################################################################


async def run_trio_sockets(tr: Tracker, frames: list[bytes]) -> float:
    tr.reset(len(frames))
    tx = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with tx, rx:
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        await tx.bind((LOOPBACK, 0))
        await rx.bind((LOOPBACK, 0))
        dst = rx.getsockname()

        async def receiver() -> None:
            while True:
                tr.arrived(seq_of(await rx.recv(2048)))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(receiver)
            t0 = time.perf_counter()
            for f in frames:
                await tr.window()
                await tx.sendto(f, dst)
                tr.sent += 1
            await tr.finish()
            elapsed = time.perf_counter() - t0
            nursery.cancel_scope.cancel()
    return elapsed


async def run_batched_sockets(tr: Tracker, frames: list[bytes]) -> float:
    tr.reset(len(frames))
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with tx, rx:
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        tx.setblocking(False)
        rx.setblocking(False)
        tx.bind((LOOPBACK, 0))
        rx.bind((LOOPBACK, 0))
        dst = rx.getsockname()

        async def receiver() -> None:
            recv = rx.recv
            arrived = tr.arrived
            while True:
                await trio.lowlevel.wait_readable(rx)
                while True:
                    n = 0
                    while n < CHUNK:
                        try:
                            data = recv(2048)
                        except BlockingIOError:
                            break
                        n += 1
                        arrived(seq_of(data))
                    if n < CHUNK:
                        break
                    await trio.lowlevel.checkpoint()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(receiver)
            sendto = tx.sendto
            t0 = time.perf_counter()
            for i in range(0, len(frames), CHUNK):
                await tr.window()
                for f in frames[i : i + CHUNK]:
                    try:
                        sendto(f, dst)
                    except BlockingIOError:
                        raise SystemExit("sendto would block on loopback") from None
                    tr.sent += 1
                await trio.lowlevel.checkpoint()
            await tr.finish()
            elapsed = time.perf_counter() - t0
            nursery.cancel_scope.cancel()
    return elapsed


async def run_wires(tr: Tracker, a: UdpWire, frames: list[bytes]) -> float:
    tr.reset(len(frames))
    send = a.send
    t0 = time.perf_counter()
    for i in range(0, len(frames), CHUNK):
        await tr.window()
        for f in frames[i : i + CHUNK]:
            if not send(f):
                raise SystemExit(f"UdpWire refused a frame: {a.statistics()}")
            tr.sent += 1
        await trio.lowlevel.checkpoint()
    await tr.finish()
    return time.perf_counter() - t0


async def run_vnic(tr: Tracker, ifa: trionet.Ifnet, frames: list[bytes]) -> float:
    tr.reset(len(frames))
    snd = ifa.snd
    t0 = time.perf_counter()
    for i in range(0, len(frames), CHUNK):
        await tr.window()
        while len(snd) > snd.maxlen - CHUNK:  # never let the send queue refuse
            await trio.lowlevel.checkpoint()
        for f in frames[i : i + CHUNK]:
            ifq_dispatch(ifa, f)
            tr.sent += 1
        await trio.lowlevel.checkpoint()
    await tr.finish()
    return time.perf_counter() - t0


def check_no_drops(*ifps: trionet.Ifnet) -> None:
    for ifp in ifps:
        s = ifp.statistics()
        lost = s.iqdrops + s.oqdrops + s.ierrors + s.oerrors + s.noproto
        if lost:
            raise SystemExit(f"{ifp.name} on {ifp.host.name} counted losses: {s}")


####################################################################
# main
####################################################################


async def main(rounds: int, nframes: int) -> None:
    kernel_drops_before = rcvbuf_errors()
    async with (
        trionet.open_host("h1") as h1,
        trionet.open_host("h2") as h2,
        open_udp_wire_pair(name="full") as (wa, wb),
        open_udp_wire_pair(name="bare") as (ba, bb),
    ):
        ifa = await h1.if_attach(
            Vnic(wa, tx_ring=256, rx_ring=4096, rx_budget=256, sndq_maxlen=4 * WINDOW)
        )
        ifb = await h2.if_attach(
            Vnic(wb, tx_ring=256, rx_ring=4096, rx_budget=256, sndq_maxlen=4 * WINDOW)
        )
        h2.sysctl("net.netisr.maxqlen", 4096)
        await h1.ifup(ifa)
        await h2.ifup(ifb)
        tr = Tracker()
        h2.netisr_register(PROTO, lambda m: tr.arrived(int.from_bytes(m.data[:4], "big")))
        bb.set_receiver(lambda f: tr.arrived(seq_of(f)))
        frames = make_frames(ifb.lladdr, ifa.lladdr, nframes)

        contenders: dict[str, Callable[[], Awaitable[float]]] = {
            "trio UDP sockets (baseline)": lambda: run_trio_sockets(tr, frames),
            "batched sockets": lambda: run_batched_sockets(tr, frames),
            "UdpWire -> UdpWire": lambda: run_wires(tr, ba, frames),
            "vnic -> UdpWire -> vnic": lambda: run_vnic(tr, ifa, frames),
        }
        names = list(contenders)
        per_frame: dict[str, list[float]] = {n: [] for n in names}
        ratios: dict[str, list[float]] = {n: [] for n in names}
        losses: dict[str, int] = dict.fromkeys(names, 0)
        lossy_rounds: dict[str, int] = dict.fromkeys(names, 0)
        for r in range(rounds + 1):
            order = names[r % len(names) :] + names[: r % len(names)]
            got: dict[str, float] = {}
            for name in order:
                gc.collect()
                gc.disable()
                try:
                    got[name] = await contenders[name]() / nframes
                finally:
                    gc.enable()
                check_no_drops(ifa, ifb)
                losses[name] += tr.lost
                lossy_rounds[name] += bool(tr.lost)
            if r == 0:
                continue  # warm-up
            base = got["trio UDP sockets (baseline)"]
            for name in names:
                per_frame[name].append(got[name])
                ratios[name].append(got[name] / base)
        ws, fs = bb.statistics(), wb.statistics()
        sent = nframes * (rounds + 1)
        # Every datagram the receiving wires read was a good frame, and each
        # frame sent either arrived or was counted lost by the tracker.
        for name, s in (("UdpWire -> UdpWire", ws), ("vnic -> UdpWire -> vnic", fs)):
            if s.rx_datagrams != s.rx_frames or s.rx_frames + losses[name] != sent:
                raise SystemExit(f"{name}: receiving wire's counters do not add up: {s}")
    kernel_drops_after = rcvbuf_errors()

    print(f"command: python3 benchmarks/bench_udpwire.py --rounds {rounds} --frames {nframes}")
    print(f"python:  {platform.python_implementation()} {platform.python_version()}")
    print(f"trio:    {trio.__version__}   trionet: {trionet.__version__}")
    print(f"platform: {platform.platform()} ({platform.machine()})")
    print()
    print(
        f"{nframes} frames of 60 bytes per contender per round, {rounds} rounds, "
        f"one datagram each over 127.0.0.1, at most {WINDOW} in flight"
    )
    print(f"{'contender':<28} {'ns/frame':>9} {'frames/s':>10}   ratio to trio sockets (min..max)   lost")
    print("-" * 92)
    for name in names:
        ns = statistics.median(per_frame[name]) * 1e9
        rs = ratios[name]
        print(
            f"{name:<28} {ns:>9.0f} {1e9 / ns:>10.0f}   "
            f"{statistics.median(rs):6.2f} ({min(rs):.2f}..{max(rs):.2f})"
            f"{'':>16}{losses[name]:>5}"
        )
    print()
    print(
        f"receiving UdpWire, mean datagrams per drain (batch {bb.batch}): "
        f"bare {ws.rx_datagrams / max(1, ws.rx_batches):.1f}, "
        f"full path {fs.rx_datagrams / max(1, fs.rx_batches):.1f}"
    )
    total_lost = sum(losses.values())
    if total_lost:
        rounds_text = ", ".join(f"{n}: {k}" for n, k in lossy_rounds.items() if k)
        print(f"LOST {total_lost} frames (rounds with losses: {rounds_text}); their times include a stall")
    else:
        print(f"all {sent * len(names)} frames arrived in order; no drop counted on either interface")
    if kernel_drops_before is not None and kernel_drops_after is not None:
        print(
            f"kernel UDP RcvbufErrors (machine-wide) during the run: "
            f"{kernel_drops_after - kernel_drops_before}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--frames", type=int, default=20_000)
    args = parser.parse_args()
    if not 1 <= args.rounds <= 100 or not 1 <= args.frames <= 1_000_000:
        sys.exit("rounds must be 1..100 and frames 1..1000000")
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(30)  # warnings and up
    )
    t0 = time.perf_counter()
    trio.run(main, args.rounds, args.frames)
    print(f"(wall time {time.perf_counter() - t0:.1f} s)")
