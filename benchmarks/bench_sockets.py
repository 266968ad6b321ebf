"""Benchmark: what trio.socket over trionet costs, against trionet's own streams.

Usage::

    python3 benchmarks/bench_sockets.py [--quick] [--rounds N] [--megabytes N] [--no-counts] [--seeds N]

What is measured
================

Bulk TCP, one connection, one way, between two trionet hosts joined by
``open_network(trio_sockets=True).link(a, b, mtu=65535)`` (a MemoryWire, no
delay): ``send_all`` of 64 KiB chunks, then ``send_eof``, against a
``receive_some(65536)`` loop until end of file; megabytes (10**6 bytes) per
second from the first ``send_all`` to the receiver's end of file. Two
contenders, on the same two hosts, in the same run:

- *direct*: the stack's own streams, ``b.open_tcp_listeners`` and
  ``a.open_tcp_stream("10.0.0.2", port)``;
- *trio.socket*: what an unmodified Trio program gets, ``trio.open_tcp_listeners``
  inside ``b.as_current()`` and ``trio.open_tcp_stream("b", port)`` inside
  ``a.as_current()``: Trio's ``SocketStream`` over trionet's socket layer
  (``trionet.TrioSocket``), the host found by name.

The figure of merit is the socket layer's throughput divided by the direct
one's in the same round (issue 16: the layer should cost under 10 %, a ratio
above 0.90). Rounds alternate the order after an unrecorded warm-up round that
also sends 1 MiB of seeded random bytes and checks they arrive unchanged; the
table gives the median and min..max over rounds. Every run checks the byte
count. The garbage collector is off inside timed runs.

Counts (``--no-counts`` skips them): task wake-ups and Python calls per 64 KiB
chunk for each contender, in a run of their own under
``MockClock(autojump_threshold=0)`` in Trio's exact order (see "Counts" in
``bench_udp.py``'s docstring), so they repeat to the last digit. Which
segments a TCP transfer sends moves with the order the scheduler picks for
each batch, so one seed's counts can sit a few percent off the typical ones;
``--seeds N`` gives their mean over scheduler seeds 0..N-1.

Network safety: in-memory wires only.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import platform
import random
import statistics
from collections.abc import AsyncIterator, Awaitable, Callable

import structlog
import trio

import trionet
from _counting import Counts, Meter, count_each, loadavg, run_virtual
from _transfer import CHUNK, bulk

A, B = "10.0.0.1", "10.0.0.2"
MTU = 65535
CONTENDERS = ("direct", "socket")
LABELS = {"direct": "trionet streams (host.open_tcp_stream)", "socket": "trio.open_tcp_stream over trionet"}

Pair = tuple[trio.abc.HalfCloseableStream, trio.abc.HalfCloseableStream]


async def open_pair(net: trionet.Network, name: str, port: int) -> tuple[Pair, Callable[[], Awaitable[None]]]:
    """A connected (client on a, server on b) pair for ``name``, and its closer."""
    a, b = net.hosts["a"], net.hosts["b"]
    if name == "direct":
        listeners = await b.open_tcp_listeners(port, host=B)
        client = await a.open_tcp_stream(B, port)
    else:
        with b.as_current():
            listeners = await trio.open_tcp_listeners(port, host=B)
        with a.as_current():
            client = await trio.open_tcp_stream("b", port)
    server = await listeners[0].accept()

    async def close() -> None:
        await client.aclose()
        await server.aclose()
        for listener in listeners:
            await listener.aclose()

    return (client, server), close


@contextlib.asynccontextmanager
async def network() -> AsyncIterator[trionet.Network]:
    """Hosts ``a`` and ``b`` on one link, trio sockets installed."""
    async with trionet.open_network(seed=1, trio_sockets=True) as net:
        a = await net.add_host("a")
        b = await net.add_host("b")
        link = await net.link(a, b, mtu=MTU)
        a.ifconfig(link.ends[0].name, f"{A}/24")
        b.ifconfig(link.ends[1].name, f"{B}/24")
        yield net


async def one_transfer(net: trionet.Network, name: str, port: int, total: int,
                       check: bytes | None = None, meter: Meter | None = None) -> float:
    (client, server), close = await open_pair(net, name, port)
    try:
        return await bulk(client, server, total, check, meter)
    finally:
        with trio.move_on_after(5):
            await close()


async def timed_rounds(args: argparse.Namespace) -> dict[str, list[float]]:
    total = args.megabytes * 1_000_000
    rates: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    async with network() as net:
        check = random.Random(1).randbytes(1 << 20)
        port = 8000
        for name in CONTENDERS:  # warm-up, content checked
            port += 1
            await one_transfer(net, name, port, 0, check=check)
        for r in range(args.rounds):
            for name in CONTENDERS if r % 2 == 0 else CONTENDERS[::-1]:
                port += 1
                gc.collect()
                gc.disable()
                try:
                    seconds = await one_transfer(net, name, port, total)
                finally:
                    gc.enable()
                rates[name].append(total / seconds / 1e6)
    return rates


def count_contender(name: str, total: int, seeds: int = 1) -> Counts:
    """Exact counts for ``name``; with ``seeds > 1``, their mean over the
    scheduler seeds 0..seeds-1 (a TCP transfer's segments, and so its
    counts, move with the order in which the scheduler runs a batch)."""

    async def run() -> Counts:
        async with network() as net:
            await one_transfer(net, name, 9000, 1 << 20)  # warm-up: caches
            wakeups, calls = Meter("wakeups"), Meter("calls")
            await one_transfer(net, name, 9001, total, meter=wakeups)
            await one_transfer(net, name, 9002, total, meter=calls)
        return Counts.of(wakeups, calls, total / CHUNK, True)

    each = [run_virtual(run, counted=True, seed=seed) for seed in range(seeds)]
    if seeds == 1:
        return each[0]
    return Counts(statistics.mean(c.wakeups for c in each), statistics.mean(c.calls for c in each), True, ())


def main(args: argparse.Namespace) -> None:
    total = args.megabytes * 1_000_000
    counts, skipped = ({}, {}) if args.no_counts else count_each(
        CONTENDERS, lambda name: count_contender(name, total, args.seeds))
    rates = trio.run(timed_rounds, args)
    ratios = [s / d for s, d in zip(rates["socket"], rates["direct"], strict=True)]
    command = "python3 benchmarks/bench_sockets.py" + (" --quick" if args.quick else "")
    print(f"command: {command}  (--rounds {args.rounds} --megabytes {args.megabytes} --seeds {args.seeds})")
    print(f"python:  {platform.python_implementation()} {platform.python_version()}")
    print(f"trio:    {trio.__version__}   trionet: {trionet.__version__}   invariants: on")
    print(f"platform: {platform.platform()} ({platform.machine()}), {os.cpu_count()} CPUs, "
          f"load average {loadavg()}")
    print()
    print(f"bulk TCP between two trionet hosts (MemoryWire, MTU {MTU}), {args.megabytes} MB per contender per "
          f"round in send_all() of {CHUNK} bytes; {args.rounds} rounds; byte counts checked, 1 MiB content checked")
    print(f"{'contender':<44} {'MB/s':>8}   {'ratio to direct (min..max)':<26} {'wakeups':>9} {'calls':>9}")
    print(f"{'':<44} {'':>8}   {'':<26} {'/chunk':>9} {'/chunk':>9}")
    print("-" * 102)
    for name in CONTENDERS:
        ratio = "1.000" if name == "direct" else (
            f"{statistics.median(ratios):.3f} ({min(ratios):.3f}..{max(ratios):.3f})")
        cells = counts[name].cells() if name in counts else Counts.EMPTY
        print(f"{LABELS[name]:<44} {statistics.median(rates[name]):>8.2f}   {ratio:<26} {cells}")
    for name, reason in skipped.items():
        print(f"({LABELS[name]}: counting run failed: {reason})")
    if counts:
        seeds = "" if args.seeds == 1 else f", mean over {args.seeds} scheduler seeds"
        print(f"(counts: per {CHUNK}-byte chunk, one transfer of {args.megabytes} MB after a 1 MiB warm-up; "
              f"exact: virtual time, Trio's scheduler in its exact order{seeds})")
    med = statistics.median(ratios)
    verdict = "met" if med >= 0.90 else f"NOT met (the layer costs {1 - med:.0%})"
    print(f"target: the socket layer costs under 10 % (ratio >= 0.90): {verdict} (median {med:.3f})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds, 4 MB")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--megabytes", type=int)
    parser.add_argument("--no-counts", action="store_true", help="skip the counting runs")
    parser.add_argument("--seeds", type=int, default=1, help="count over this many scheduler seeds (mean)")
    args = parser.parse_args()
    args.rounds = args.rounds or (3 if args.quick else 7)
    args.megabytes = args.megabytes or (4 if args.quick else 24)
    if args.rounds < 1 or args.megabytes < 1 or args.seeds < 1:
        raise SystemExit("--rounds, --megabytes and --seeds must be at least 1")
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    main(args)
