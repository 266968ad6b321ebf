"""Benchmark: frames per second through vnic, as a ratio to a Trio channel hop.

Usage::

    python3 benchmarks/bench_vnic.py [--rounds N] [--frames N]

What is measured
================

a. *vnic -> vnic*: host ``h1``'s vnic sends to host ``h2``'s vnic over an
   in-memory wire, and a protocol handler on ``h2`` counts the frames. Each
   frame takes the whole path: ``ifq_dispatch`` -> send queue -> ``start`` on
   the ``ifnet`` thread -> TX ring -> TX engine -> wire -> RX ring ->
   ``sched_ithd`` -> ithread -> ``intr`` under the serializer -> ``ifp.input``
   -> Ethernet input -> netisr queue -> protocol thread, plus TX completion
   interrupts on the sending side.
b. *receive path only*: the far end of ``h2``'s wire injects frames straight
   into its RX ring (RX ring -> ithread -> ``intr`` -> ``ifp.input`` ->
   netisr -> handler).
c. *baseline*: one bare Trio memory-channel hop per frame, a producer task
   doing ``await send_channel.send(frame)`` and a consumer ``async for``
   over the receive channel (buffer 256): the plain way two Trio tasks hand
   over messages.
d. *batched channel hop*: the same hop with the producer doing 64
   ``send_nowait`` and then yielding until the consumer has taken them, and
   the consumer draining with ``receive_nowait`` before it waits, the way
   our senders and threads batch. This is the floor for one hop between
   two tasks; the stack makes several such hops per frame (sender -> ifnet
   thread -> TX engine -> ithread -> netisr).

Senders put frames in chunks of 64 and then checkpoint; the rings are sized
so that nothing overflows (RX ring 4096, ``rx_budget`` 256, equal to the TX
ring, so one interrupt takes what one TX engine pass sends); every round checks that all frames
arrived in order with no drop counted anywhere, and fails otherwise.

The figure of merit is **ns per frame divided by the baseline's ns per
frame, measured in the same round**: how many channel hops one frame's trip
through the modelled stack costs. Rounds interleave the three contenders in
a rotating order after an unrecorded warm-up; the table gives the median and
min..max over rounds. The garbage collector is disabled inside timed loops.

Only public names are used (``trio``, ``trionet``, ``trionet.drivers``).
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import sys
import time

import structlog
import trio

import trionet
from trionet.drivers.vnic import Vnic
from trionet.lowlevel import Mbuf, ifq_dispatch
from trionet.wires import memory_pair

PROTO = 0x88B5
CHUNK = 64


class Sink:
    """A protocol handler that checks order and wakes the timer at the end."""

    def __init__(self) -> None:
        self.expect = 0
        self.target = 0
        self.done = trio.Event()

    def reset(self, target: int) -> None:
        self.expect = 0
        self.target = target
        self.done = trio.Event()

    def __call__(self, m: Mbuf) -> None:
        seq = int.from_bytes(m.data[:4], "big")
        if seq != self.expect:
            raise SystemExit(f"frame {seq} arrived, expected {self.expect}")
        self.expect += 1
        if self.expect == self.target:
            self.done.set()


def make_frames(dst: bytes, src: bytes, n: int) -> list[bytes]:
    head = dst + src + PROTO.to_bytes(2, "big")
    return [head + i.to_bytes(4, "big") + bytes(42) for i in range(n)]


async def run_vnic(ifa: trionet.Ifnet, sink: Sink, frames: list[bytes]) -> float:
    sink.reset(len(frames))
    t0 = time.perf_counter()
    for i in range(0, len(frames), CHUNK):
        for f in frames[i : i + CHUNK]:
            ifq_dispatch(ifa, f)
        await trio.lowlevel.checkpoint()
    await sink.done.wait()
    return time.perf_counter() - t0


async def run_rx(far: trionet.wires.MemoryEndpoint, sink: Sink, frames: list[bytes]) -> float:
    sink.reset(len(frames))
    send = far.send
    t0 = time.perf_counter()
    for i in range(0, len(frames), CHUNK):
        for f in frames[i : i + CHUNK]:
            send(f)
        await trio.lowlevel.checkpoint()
    await sink.done.wait()
    return time.perf_counter() - t0


async def run_channel(frames: list[bytes], batched: bool = False) -> float:
    send_channel, receive_channel = trio.open_memory_channel[bytes](256 if not batched else CHUNK)
    got = 0

    async def consumer() -> None:
        nonlocal got
        if not batched:
            async for _ in receive_channel:
                got += 1
            return
        receive_nowait = receive_channel.receive_nowait
        while True:
            try:
                receive_nowait()
            except trio.WouldBlock:
                try:
                    await receive_channel.receive()
                except trio.EndOfChannel:
                    return
            except trio.EndOfChannel:
                return
            got += 1

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consumer)
        t0 = time.perf_counter()
        async with send_channel:
            if batched:
                for i in range(0, len(frames), CHUNK):
                    for f in frames[i : i + CHUNK]:
                        send_channel.send_nowait(f)
                    # Wait until the consumer took the chunk.
                    while receive_channel.statistics().current_buffer_used:
                        await trio.lowlevel.checkpoint()
            else:
                for f in frames:
                    await send_channel.send(f)
    elapsed = time.perf_counter() - t0
    if got != len(frames):
        raise SystemExit(f"channel delivered {got} of {len(frames)}")
    return elapsed


def check_no_drops(*ifps: trionet.Ifnet) -> None:
    for ifp in ifps:
        s = ifp.statistics()
        lost = s.iqdrops + s.oqdrops + s.ierrors + s.oerrors + s.noproto
        if lost:
            raise SystemExit(f"{ifp.name} on {ifp.host.name} counted losses: {s}")


async def main(rounds: int, nframes: int) -> None:
    async with trionet.open_host("h1") as h1, trionet.open_host("h2") as h2:
        a, b = memory_pair()
        big = nframes + CHUNK
        # rx_budget = tx_ring: one interrupt can take what one TX engine pass
        # sends (with the default 64 the receiver falls behind a sender that
        # never waits, and its RX ring overflows: counted, but not a rate).
        ifa = await h1.if_attach(
            Vnic(a, tx_ring=256, rx_ring=4096, rx_budget=256, sndq_maxlen=big)
        )
        ifb = await h2.if_attach(
            Vnic(b, tx_ring=256, rx_ring=4096, rx_budget=256, sndq_maxlen=big)
        )
        h2.sysctl("net.netisr.maxqlen", 4096)
        await h1.ifup(ifa)
        await h2.ifup(ifb)
        sink = Sink()
        h2.netisr_register(PROTO, sink)
        frames = make_frames(ifb.lladdr, ifa.lladdr, nframes)
        contenders = {
            "channel hop (baseline)": lambda: run_channel(frames),
            "channel hop, batched": lambda: run_channel(frames, batched=True),
            "vnic -> vnic": lambda: run_vnic(ifa, sink, frames),
            "receive path only": lambda: run_rx(a, sink, frames),
        }
        names = list(contenders)
        per_frame: dict[str, list[float]] = {n: [] for n in names}
        ratios: dict[str, list[float]] = {n: [] for n in names}
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
            if r == 0:
                continue  # warm-up
            base = got["channel hop (baseline)"]
            for name in names:
                per_frame[name].append(got[name])
                ratios[name].append(got[name] / base)
        total = ifb.statistics().ipackets
        expected = nframes * (rounds + 1) * 2
        if total != expected:
            raise SystemExit(f"h2 received {total} frames, expected {expected}")

    print(f"command: python3 benchmarks/bench_vnic.py --rounds {rounds} --frames {nframes}")
    print(f"python:  {platform.python_implementation()} {platform.python_version()}")
    print(f"trio:    {trio.__version__}   trionet: {trionet.__version__}")
    print(f"platform: {platform.platform()} ({platform.machine()})")
    print()
    print(f"{nframes} frames of 60 bytes per contender per round, {rounds} rounds")
    print(f"{'contender':<26} {'ns/frame':>9} {'frames/s':>10}   ratio to channel hop (min..max)")
    print("-" * 80)
    for name in names:
        ns = statistics.median(per_frame[name]) * 1e9
        rs = ratios[name]
        print(
            f"{name:<26} {ns:>9.0f} {1e9 / ns:>10.0f}   "
            f"{statistics.median(rs):6.2f} ({min(rs):.2f}..{max(rs):.2f})"
        )
    print()
    print(f"all {expected} frames arrived in order; no drop counted on either interface")


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
