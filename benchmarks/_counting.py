"""Counting helpers shared by the benchmarks: task wake-ups and Python calls.

Why they count what they count: "Counts" in ``bench_udp.py``'s docstring. A
benchmark imports only this module, the standard library, third-party
packages and public trionet (``tests/test_layout.py``).
"""

from __future__ import annotations

import os
import re
import sys
from collections import Counter
from typing import Any

import attrs
import trio

__all__ = ["Counts", "Meter", "loadavg", "seed_trio_scheduler", "task_kind"]


def seed_trio_scheduler(seed: int) -> None:
    """Make Trio's batch-order choices repeat from run to run.

    Trio reverses each batch of runnable tasks with probability 1/2, drawing
    from a module-level ``random.Random`` seeded by the OS (Trio seeds it
    only under Hypothesis). Private Trio state, the one private name these
    benchmarks use: if Trio renames it, this does nothing, and counts of the
    in-memory paths vary by about 0.5 % from run to run.
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
    if "<locals>" in name or name.startswith(("__main__.", "bench_")):
        name = name.rsplit(".", 1)[-1]
    return re.sub(r"\d+", "N", name)


class Meter(trio.abc.Instrument):
    """What a transfer starts and stops around its counted window.

    ``Meter()`` counts nothing (timed runs). ``Meter("wakeups")`` is a Trio
    instrument counting ``task_scheduled`` events, in all (``count``) and by
    :func:`task_kind` (``by_task``; Trio's public ``Task.name``, so it shows
    whatever tasks the stack runs). ``Meter("calls")`` counts the
    ``sys.setprofile`` ``"call"`` events of this thread.
    """

    def __init__(self, what: str | None = None) -> None:
        self.what = what
        self.count = 0
        self.by_task: Counter[str] = Counter()

    def task_scheduled(self, task: trio.lowlevel.Task) -> None:
        self.count += 1
        self.by_task[task_kind(task.name)] += 1

    def _profile(self, frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            self.count += 1

    def start(self) -> None:
        if self.what == "wakeups":
            trio.lowlevel.add_instrument(self)
        elif self.what == "calls":
            sys.setprofile(self._profile)

    def stop(self) -> None:
        if self.what == "wakeups":
            trio.lowlevel.remove_instrument(self)
        elif self.what == "calls":
            sys.setprofile(None)


@attrs.frozen
class Counts:
    """Wake-ups and Python calls per unit (datagram, chunk) of one path."""

    wakeups: float
    calls: float
    exact: bool  # counted in virtual time, seeded: the same on every run
    #: Wake-ups per unit by task kind, largest first.
    by_task: tuple[tuple[str, float], ...]

    #: The two table cells when there is no count.
    EMPTY = f"{'-':>9} {'-':>9}"

    @classmethod
    def of(cls, wakeups: Meter, calls: Meter, units: float, exact: bool) -> Counts:
        by_task = tuple((k, v / units) for k, v in wakeups.by_task.most_common())
        return cls(wakeups.count / units, calls.count / units, exact, by_task)

    def cells(self) -> str:
        """The two table cells; ``~`` marks a count that is not exact."""
        mark = "" if self.exact else "~"
        return f"{mark + format(self.wakeups, '.2f'):>9} {mark + format(self.calls, '.1f'):>9}"

    def tasks(self) -> str:
        """The wake-ups by task kind, as ``"ithread N 1.55, receiver 1.00"``."""
        mark = "" if self.exact else "~"
        return ", ".join(f"{name} {mark}{v:.2f}" for name, v in self.by_task if v >= 0.005)


def loadavg() -> str:
    """The 1, 5 and 15 minute load averages, as ``"0.91 0.77 1.23"``."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())
