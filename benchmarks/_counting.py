"""Counts for the benchmarks that load on the machine cannot move: task
wake-ups and Python function calls, per unit of work.

Imported by ``bench_udp.py``, ``bench_tcp.py``, ``bench_scale.py`` and
``bench_flows.py`` (run as scripts, so this directory is on ``sys.path``).

Wake-ups
========

:class:`WakeupCounter` is a :class:`trio.abc.Instrument` whose
``task_scheduled`` hook counts one each time Trio's ``reschedule`` makes a
task runnable: a task woken by another (a parking lot, an event, a channel,
I/O readiness), a task rescheduling itself at a checkpoint, a new task.
``task_scheduled`` rather than ``before_task_step`` because it is the same
event as the ``reschedule`` calls in the profiles that earlier sections of
BENCHMARKS.md (and issue 14) counted, and it counts a wake-up when it is
decided, so a window closed by the woken task's own step still includes the
wake-up that led to it; the two hooks differ by at most the tasks runnable
at the edges of the window. It also counts by task name, numbers folded
(:func:`task_kind`), which says which hand-over the wake-ups pay for.

Python calls
============

:func:`count_calls` installs a ``sys.setprofile`` hook that counts the
``"call"`` events: a Python function entered, *including a coroutine or
generator resumed* (each ``send`` into a suspended ``async def`` frame is a
call event; that is the price of an ``await`` that suspends, and part of what
the count is meant to show). C functions (``"c_call"``) are not counted.
``sys.monitoring`` would be cheaper but exists only from Python 3.12. The
hook slows Python down several times, so calls are counted in a run of their
own, never in a timed one.

Reproducibility
===============

A count is exactly reproducible only if every choice in the run is: the
network's seed fixes trionet's, ``trio.testing.MockClock`` fixes time (the
in-memory paths run under it, with ``autojump_threshold=0``, in a fresh
``trio.run``), and :func:`seed_trio_scheduler` fixes the one random choice
Trio's scheduler makes (whether to reverse each batch of runnable tasks).
Paths through the kernel (loopback sockets, UdpWire) depend on when the
kernel has data ready, so their counts vary a little from run to run.

Two more conditions. Python fills some caches on first use (``enum`` makes
a composite flag value once, then looks it up), so a count depends on what
ran before it in the process: the scripts count before their timed rounds,
after a warm-up transfer, so that only deterministic work precedes a count.
And virtual time changes what a timer-driven path does: counted in real
time, the MemoryWire UDP path gives the same wake-ups (6.18 against 6.19
per datagram), but the polling path does more (4.8 against 4.5), because its
clock ticks at 2000 Hz of real time whether or not frames wait, while under
autojump a tick comes only when every task is idle.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import attrs
import trio


def seed_trio_scheduler(seed: int) -> None:
    """Make Trio's batch-order choices repeat from run to run.

    Trio reverses each batch of runnable tasks with probability 1/2, drawing
    from a module-level ``random.Random`` that it seeds from the OS (it seeds
    it only under Hypothesis). Private Trio state, the only private access in
    these benchmarks: if Trio renames it, this does nothing and the in-memory
    counts may vary by a few per cent between runs (the check in the scripts
    will show it).
    """
    try:
        from trio._core import _run
    except ImportError:  # pragma: no cover
        return
    rng = getattr(_run, "_r", None)
    if rng is not None and hasattr(rng, "seed"):
        rng.seed(seed)


def task_kind(name: str) -> str:
    """A task's name with its numbers folded (``"ithread 5"`` -> ``"ithread N"``),
    and a benchmark's own task by its function's name (``"receiver"``)."""
    if "<locals>" in name or name.startswith("__main__.") or name.startswith("bench_"):
        name = name.rsplit(".", 1)[-1]
    return re.sub(r"\d+", "N", name)


class WakeupCounter(trio.abc.Instrument):
    """Counts ``task_scheduled`` events while installed, in all (``count``)
    and by :func:`task_kind` (``by_task``, a :class:`collections.Counter`).
    Task names are Trio's public ``Task.name``; which tasks exist is the
    stack's business, so the breakdown simply shows whatever tasks run."""

    def __init__(self) -> None:
        self.count = 0
        self.by_task: Counter[str] = Counter()

    def task_scheduled(self, task: trio.lowlevel.Task) -> None:
        self.count += 1
        self.by_task[task_kind(task.name)] += 1


@contextmanager
def count_calls() -> Iterator[list[int]]:
    """Count Python ``"call"`` events in this thread; yields a one-item list
    that holds the count when the block exits."""
    box = [0]

    def hook(frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            box[0] += 1

    old = sys.getprofile()
    sys.setprofile(hook)
    try:
        yield box
    finally:
        sys.setprofile(old)


class Meter:
    """What a transfer calls at the start and the end of its counted window.

    The plain meter does nothing (timed runs); :class:`WakeupMeter` and
    :class:`CallMeter` count.
    """

    count = 0

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


class WakeupMeter(Meter):
    def start(self) -> None:
        self._instrument = WakeupCounter()
        trio.lowlevel.add_instrument(self._instrument)

    def stop(self) -> None:
        trio.lowlevel.remove_instrument(self._instrument)
        self.count = self._instrument.count
        self.by_task = self._instrument.by_task


class CallMeter(Meter):
    def start(self) -> None:
        self._cm = count_calls()
        self._box = self._cm.__enter__()

    def stop(self) -> None:
        self._cm.__exit__(None, None, None)
        self.count = self._box[0]


@attrs.frozen
class Counts:
    """Wake-ups and Python calls per unit (datagram, chunk) of one path."""

    wakeups: float
    calls: float
    units: int
    exact: bool  # virtual time, seeded: reproducible to the last digit
    #: Wake-ups per unit by task kind, largest first.
    by_task: tuple[tuple[str, float], ...] = ()

    @classmethod
    def of(cls, wakeups: WakeupMeter, calls: CallMeter, units: float, exact: bool) -> Counts:
        by_task = tuple((k, v / units) for k, v in wakeups.by_task.most_common())
        return cls(wakeups.count / units, calls.count / units, round(units), exact, by_task)

    #: What :meth:`cells` gives when there is no count.
    EMPTY = f"{'-':>9} {'-':>9}"

    def cells(self) -> str:
        """The two table cells; ``~`` marks a count that is not exact."""
        mark = "" if self.exact else "~"
        return f"{mark + format(self.wakeups, '.2f'):>9} {mark + format(self.calls, '.1f'):>9}"

    def tasks(self) -> str:
        """The wake-ups by task kind, as ``"ithread N 1.55, receiver 1.00"``."""
        mark = "" if self.exact else "~"
        return ", ".join(f"{name} {mark}{v:.2f}" for name, v in self.by_task if v >= 0.005)

