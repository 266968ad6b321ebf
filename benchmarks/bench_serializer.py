"""Benchmark: :class:`trionet.Serializer` against :class:`trio.Lock`, as ratios.

Usage::

    python3 benchmarks/bench_serializer.py [--rounds N] [--iterations N]
        [--contended-iterations N]

What is measured
================

a. *Uncontended*: one task doing ``async with lock: pass`` in a tight loop, for
   ``trio.Lock()``, ``trionet.Serializer("s", invariants=True)`` and
   ``trionet.Serializer("s", invariants=False)``, plus a loop of bare
   ``await trio.lowlevel.checkpoint()`` as the unit ("cp") that every figure
   is also expressed in: an uncontended ``enter`` yields once, like
   ``trio.Lock.acquire``, so about 1 cp is the floor.
b. *Contended*: two tasks each doing ``async with lock: await checkpoint()``
   N times, so the lock is held across a yield and the other task must wait.
   Total time over the ``2 * N`` acquisitions for ``trio.Lock`` (which hands
   the lock to the longest waiter), ``Serializer`` (racing, DragonFly's
   ``wakeup()``) and ``Serializer(fifo=True)`` (handoff). After every run it
   checks that both tasks finished all their iterations and that the
   serializer's ``statistics()`` show ``enter_cnt == 2 * N`` and
   ``sleep_cnt > 0``; if the contention did not happen the script fails, since
   the numbers would then measure something else. "alternation" is how often
   the holder changed from one task to the other, out of the ``2 * N - 1``
   possible changes: 1.0 is strict turn-taking, near 0 means one task ran all
   its iterations before the other got in (fairness, not speed).

Why ratios
==========

Absolute timings depend on the machine and its load; a ratio against
``trio.Lock`` measured *in the same round* of the same ``trio.run`` does far
less. Contenders are interleaved round by round, in an order rotated so that
none always goes first, after an unrecorded warm-up round, with a
``gc.collect()`` before and the collector disabled during every timed loop.
Within a round each contender's iterations are timed in slices of 1,000 (for
b, runs of two tasks doing 1,000 each), the contenders taking turns slice by
slice, so a round's ratio compares timings taken milliseconds apart; on a
noisy virtual machine that shrinks the min..max spread several times over.
Each round yields one ratio per contender; the table gives the median and the
min/max over rounds. Tests never assert absolute timings.

The acceptance criterion (the serializer rule 5 in
``trionet/_kern/_serializer.py``): the median ratio of the *uncontended*
``Serializer`` (with invariants on and off) to ``trio.Lock`` is at most 1.0,
because its fast path does no parking-lot breaker bookkeeping and records the
owner only under invariants. The script prints the verdict but exits 0 either
way: a benchmark is a measurement, not a test. It exits non-zero only if a
sanity check fails.

Only public names are used (``trio``, ``trionet``), as in ``drivers/``.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Awaitable, Callable

import trio
import trionet
from trio.lowlevel import checkpoint

# A timed loop: given the iteration count, returns elapsed nanoseconds.
Timed = Callable[[int], Awaitable[int]]
AnyLock = trio.Lock | trionet.Serializer

LOCK = "trio.Lock()"
CHECKPOINT = "checkpoint()"
# Loops are timed in slices of this many iterations per task (see _run_rounds).
_CHUNK = 1_000


def _check(condition: bool, message: str) -> None:
    # Not `assert`: the checks must hold under `python3 -O` too.
    if not condition:
        raise AssertionError(message)


####################################################################
# the timed loops
####################################################################


async def _time_checkpoints(n: int) -> int:
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter_ns()
        for _ in range(n):
            await checkpoint()
        return time.perf_counter_ns() - start
    finally:
        gc.enable()


def _uncontended(factory: Callable[[], AnyLock]) -> Timed:
    async def timed(n: int) -> int:
        lock = factory()  # a fresh lock per measurement, made outside the clock
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter_ns()
            for _ in range(n):
                async with lock:
                    pass
            return time.perf_counter_ns() - start
        finally:
            gc.enable()

    return timed


def _contended(
    factory: Callable[[], AnyLock], name: str, alternation: dict[str, list[float]]
) -> Timed:
    async def timed(n: int) -> int:
        lock = factory()
        done = [0, 0]
        # state[0]: the task that last held the lock; state[1]: holder changes.
        state: list[int] = [-1, 0]

        async def worker(me: int) -> None:
            for _ in range(n):
                async with lock:
                    if state[0] != me:
                        state[0] = me
                        state[1] += 1
                    await checkpoint()
                done[me] += 1

        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter_ns()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(worker, 0)
                nursery.start_soon(worker, 1)
            elapsed = time.perf_counter_ns() - start
        finally:
            gc.enable()

        _check(done == [n, n], f"{name}: iterations done {done}, expected {n} each")
        if isinstance(lock, trionet.Serializer):
            stats = lock.statistics()
            _check(
                stats.enter_cnt == 2 * n,
                f"{name}: enter_cnt {stats.enter_cnt}, expected {2 * n}",
            )
            _check(stats.sleep_cnt > 0, f"{name}: sleep_cnt is 0, no contention")
            _check(not stats.held and stats.waiters == 0, f"{name}: left {stats}")
        else:
            _check(not lock.locked(), f"{name}: left locked")
        # Holder changes out of the 2n - 1 possible: 1.0 is strict alternation.
        changes = state[1] - 1
        alternation.setdefault(name, []).append(changes / max(1, 2 * n - 1))
        return elapsed

    return timed


####################################################################
# rounds and ratios
####################################################################


async def _run_rounds(
    contenders: dict[str, Timed], n: int, rounds: int, chunk: int | None = None
) -> dict[str, list[int]]:
    """Time every contender once per round, rotating the order; drop a warm-up round.

    With ``chunk``, a contender's ``n`` iterations in a round are run as slices
    of about ``chunk`` iterations, the contenders taking turns slice by slice
    (again rotating), so that what one round compares was timed within
    milliseconds; the slices' times add up to the round's sample.
    """
    names = list(contenders)
    k = 1 if chunk is None else max(1, n // chunk)
    slices = [n // k + (i < n % k) for i in range(k)]
    samples: dict[str, list[int]] = {name: [] for name in names}
    for r in range(-1, rounds):  # round -1 warms up and is not recorded
        total = dict.fromkeys(names, 0)
        for i, size in enumerate(slices):
            j = (r + i) % len(names)
            for name in names[j:] + names[:j]:
                total[name] += await contenders[name](size)
        if r >= 0:
            for name in names:
                samples[name].append(total[name])
    return samples


def _ratios(samples: dict[str, list[int]], name: str, base: str) -> list[float]:
    return [a / b for a, b in zip(samples[name], samples[base], strict=True)]


def _table(
    title: str,
    samples: dict[str, list[int]],
    ops: int,
    cp_samples: list[int],
    cp_ops: int,
    alternation: dict[str, list[float]] | None = None,
) -> list[str]:
    cp_per_op = [t / cp_ops for t in cp_samples]
    header = f"{'contender':<34}{'ns/op':>8}{'cp':>7}   ratio to trio.Lock (min..max)"
    if alternation is not None:
        header += "   alternation"
    lines = [title, header, "-" * len(header)]
    for name, times in samples.items():
        per_op = [t / ops for t in times]
        cp = statistics.median(a / b for a, b in zip(per_op, cp_per_op, strict=True))
        line = f"{name:<34}{statistics.median(per_op):>8.0f}{cp:>7.2f}"
        if LOCK in samples:
            ratios = _ratios(samples, name, LOCK)
            line += (
                f"   {statistics.median(ratios):5.3f} "
                f"({min(ratios):5.3f}..{max(ratios):5.3f})"
            )
        else:
            line += " " * 29
        if alternation is not None:
            line += f"   {statistics.median(alternation[name]):>11.4f}"
        lines.append(line.rstrip())
    return lines


async def _bench(rounds: int, n: int, n_contended: int) -> list[str]:
    def ser(*, invariants: bool = True, fifo: bool = False) -> Callable[[], AnyLock]:
        return lambda: trionet.Serializer("s", invariants=invariants, fifo=fifo)

    uncontended: dict[str, Timed] = {
        CHECKPOINT: _time_checkpoints,
        LOCK: _uncontended(trio.Lock),
        'Serializer("s", invariants=True)': _uncontended(ser(invariants=True)),
        'Serializer("s", invariants=False)': _uncontended(ser(invariants=False)),
    }
    alternation: dict[str, list[float]] = {}
    contended: dict[str, Timed] = {
        name: _contended(factory, name, alternation)
        for name, factory in [
            (LOCK, trio.Lock),
            ('Serializer("s")  (racing)', ser()),
            ('Serializer("s", fifo=True)', ser(fifo=True)),
        ]
    }
    # Everything alive now (trio, trionet, the run's own state) is moved out of
    # the collector's reach, so the gc.collect() before each timed loop is cheap.
    gc.collect()
    gc.freeze()
    try:
        a = await _run_rounds(uncontended, n, rounds, chunk=_CHUNK)
        b = await _run_rounds(contended, n_contended, rounds, chunk=_CHUNK)
    finally:
        gc.unfreeze()
    # The checkpoint cost of round i, to express contended figures in cp too.
    cp = a[CHECKPOINT]

    lines = _table(
        f"a. uncontended 'async with lock: pass', {n} iterations x {rounds} rounds",
        a,
        n,
        cp,
        n,
    )
    lines.append("")
    lines += _table(
        f"b. two tasks contending, 'async with lock: await checkpoint()', "
        f"{n_contended} iterations each x {rounds} rounds "
        f"(in runs of about 2 x {min(_CHUNK, n_contended)}; ns and cp per acquisition)",
        b,
        2 * n_contended,
        cp,
        n,
        alternation=alternation,
    )
    lines.append("")
    verdict = all(
        statistics.median(_ratios(a, name, LOCK)) <= 1.0
        for name in a
        if name.startswith("Serializer")
    )
    lines.append(
        "acceptance (uncontended Serializer median ratio <= 1.0, both variants): "
        + ("met" if verdict else "NOT met")
    )
    return lines


####################################################################
# main
####################################################################


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Ratio benchmark of trionet.Serializer against trio.Lock."
    )
    parser.add_argument(
        "--rounds", type=int, default=15, help="recorded rounds (default 15)"
    )
    parser.add_argument(
        "--iterations",
        type=int,
        default=20_000,
        help="uncontended loop length (default 20000)",
    )
    parser.add_argument(
        "--contended-iterations",
        type=int,
        default=None,
        help="iterations per task in the contended case (default: --iterations / 4)",
    )
    args = parser.parse_args(argv)
    n_contended = args.contended_iterations
    if n_contended is None:
        n_contended = max(1, args.iterations // 4)
    if args.rounds < 1 or args.iterations < 1 or n_contended < 1:
        parser.error("--rounds and the iteration counts must be positive")

    # The command as typed: interpreter (by name, as pyenv shims hide how it
    # was called) and its options, then the script and its arguments.
    interpreter = sys.orig_argv[: len(sys.orig_argv) - len(sys.argv)]
    interpreter[:1] = [os.path.basename(interpreter[0])] if interpreter else []
    script_args = sys.argv[1:] if argv is None else argv
    print("command: " + shlex.join([*interpreter, sys.argv[0], *script_args]))
    print(f"python:  {platform.python_implementation()} {platform.python_version()}")
    print(f"trio:    {trio.__version__}   trionet: {trionet.__version__}")
    print(f"platform: {platform.platform()} ({platform.machine()})")
    print()
    start = time.perf_counter()
    lines = trio.run(_bench, args.rounds, args.iterations, n_contended)
    print("\n".join(lines))
    print(f"\n(wall time {time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
