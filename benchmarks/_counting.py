"""Counting helpers shared by the benchmarks: task wake-ups and Python calls.

Why they count what they count: "Counts" in ``bench_udp.py``'s docstring. A
benchmark imports only this module, the standard library, third-party
packages and public trionet (``tests/test_layout.py``).
"""

from __future__ import annotations

import contextlib
import gc
import os
import random
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import attrs
import trio
import trio.testing

__all__ = [
    "Counts",
    "Meter",
    "count_each",
    "exact_scheduling",
    "loadavg",
    "run_virtual",
    "seed_trio_scheduler",
    "task_kind",
]


def _trio_run_module() -> Any:
    """Trio's scheduler module, or None if Trio moved the names used here."""
    run = getattr(getattr(trio, "_core", None), "_run", None)
    rng = getattr(run, "_r", None)
    if rng is None or not hasattr(rng, "seed") or not hasattr(run, "_ALLOW_DETERMINISTIC_SCHEDULING"):
        return None  # pragma: no cover
    return run


def seed_trio_scheduler(seed: int) -> None:
    """Make Trio's batch-order choices repeat from run to run (timed runs).

    Trio reverses each batch of runnable tasks with probability 1/2, drawing
    from a module-level ``random.Random`` seeded by the OS (Trio seeds it
    only under Hypothesis). This seeds it and costs nothing per batch, but
    tasks woken by deadlines that fall on the same instant still come in
    ``id()`` order (Trio's deadline heap breaks ties by it), which differs
    from process to process: counted runs use :func:`exact_scheduling`.
    Private Trio state, with :func:`exact_scheduling` the only private names
    these benchmarks use: if Trio renames them, this does nothing.
    """
    run = _trio_run_module()
    if run is not None:
        run._r.seed(seed)


@contextlib.contextmanager
def exact_scheduling(seed: int) -> Iterator[None]:
    """Within: Trio orders each batch of runnable tasks by the order they were
    spawned, then shuffles it with a generator seeded by ``seed``.

    The order Hypothesis and ``trionet.testing.deterministic_scheduling``
    ask for (Trio's ``_ALLOW_DETERMINISTIC_SCHEDULING``): it also orders the
    tasks woken by equal deadlines, which :func:`seed_trio_scheduler`
    leaves to ``id()``, so counted runs repeat to the last digit even where
    two hosts' clocks tick at the same instants (polling). It costs a sort
    and a shuffle per batch, so only the untimed counting runs use it; the
    previous setting is restored on the way out.
    """
    run = _trio_run_module()
    if run is None:  # pragma: no cover
        yield
        return
    before = run._ALLOW_DETERMINISTIC_SCHEDULING
    run._ALLOW_DETERMINISTIC_SCHEDULING = True
    run._r.seed(seed)
    try:
        yield
    finally:
        run._ALLOW_DETERMINISTIC_SCHEDULING = before


def run_virtual(fn: Callable[..., Any], *args: Any, counted: bool = False, seed: int = 0) -> Any:
    """``trio.run(fn, *args)`` in virtual time (``MockClock(autojump_threshold=0)``)
    after a collection, with Trio's scheduler seeded with ``seed``.

    A counted run (``counted``) goes in Trio's exact order
    (:func:`exact_scheduling`) and without the collector: when a collection
    happens depends on what ran before in the process, and what it frees can
    wake a task.
    """
    gc.collect()
    seed_trio_scheduler(seed)
    order = exact_scheduling(seed) if counted else contextlib.nullcontext()
    if counted:
        gc.disable()
    try:
        with order:
            return trio.run(fn, *args, clock=trio.testing.MockClock(autojump_threshold=0))
    finally:
        gc.enable()


def count_each(names: Iterable[str], count: Callable[[str], Counts]) -> tuple[dict[str, Counts], dict[str, str]]:
    """``count(name)`` for each path, as ``(counts, skipped)``: the polling
    path may fail where setting ``IfFlags.POLLING`` does (its reason goes in
    ``skipped`` and its cells stay empty); any other failure is raised."""
    counts: dict[str, Counts] = {}
    skipped: dict[str, str] = {}
    for name in names:
        try:
            counts[name] = count(name)
        except Exception as exc:  # noqa: BLE001 - reported, and the cells left empty
            if name != "polling":
                raise
            skipped[name] = f"{type(exc).__name__}: {exc}"
    return counts, skipped


def task_kind(name: str) -> str:
    """A task's name with its numbers folded (``"ithread 5"`` -> ``"ithread N"``),
    and a benchmark's own task by its function's name (``"receiver"``)."""
    if "<locals>" in name or name.startswith(("__main__.", "bench_")):
        name = name.rsplit(".", 1)[-1]
    return re.sub(r"\d+", "N", name)


_SHUFFLE = random.Random.shuffle.__code__


def _ordering(frame: Any) -> bool:
    """Whether a call is Trio ordering a batch for :func:`exact_scheduling`
    (its sort key, ``Random.shuffle`` and what that calls): work a normal run
    does not do, so calls are counted without it."""
    code = frame.f_code
    if code is _SHUFFLE or frame.f_back is not None and frame.f_back.f_code is _SHUFFLE:
        return True
    return code.co_name == "<lambda>" and code.co_filename.endswith(_RUN_PY) and frame.f_back is not None \
        and frame.f_back.f_code.co_name == "unrolled_run"


_RUN_PY = os.path.join("trio", "_core", "_run.py")


class Meter(trio.abc.Instrument):
    """What a transfer starts and stops around its counted window.

    ``Meter()`` counts nothing (timed runs). ``Meter("wakeups")`` is a Trio
    instrument counting ``task_scheduled`` events, in all (``count``) and by
    :func:`task_kind` (``by_task``; Trio's public ``Task.name``, so it shows
    whatever tasks the stack runs). ``Meter("calls")`` counts the
    ``sys.setprofile`` ``"call"`` events of this thread, less Trio's own
    ordering of batches under :func:`exact_scheduling`.
    """

    def __init__(self, what: str | None = None) -> None:
        self.what = what
        self.count = 0
        self.by_task: Counter[str] = Counter()

    def task_scheduled(self, task: trio.lowlevel.Task) -> None:
        self.count += 1
        self.by_task[task_kind(task.name)] += 1

    def _profile(self, frame: Any, event: str, arg: Any) -> None:
        if event == "call" and not _ordering(frame):
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
