"""Callouts: timers kept on the owning thread's heap, fired by its loop.

There is no task per timer. Each service thread (``netisr N``, ``ifnet N``,
``softclock N``) owns a :class:`TimerHeap`; a :class:`Callout` bound to that
heap is armed with :meth:`Callout.reset` and fired by the thread's loop when
its deadline passes, on the thread's own task. Work done by a callout therefore
never runs concurrently with the thread's messages.

Rules:

1. Time is Trio time (``trio.current_time()``), so callouts run in virtual time
   under :class:`trio.testing.MockClock`.
2. :meth:`Callout.reset` and :meth:`Callout.stop` are plain functions and may
   be called from any task of the host. Stale heap entries are discarded
   lazily; the heap is compacted when they outnumber the live ones, so memory
   stays bounded by the number of armed callouts.
3. A callout fires once per reset; to tick, re-arm from the callout function
   (``nge_tick``). The function may be sync or async; an async one is awaited
   by the owning thread, which does no other work meanwhile.
4. Callout functions that need a driver's serializer enter it themselves: the
   callout thread holds nothing (DragonFly: "timeouts must serialize themselves").
5. A thread never sleeps on a deadline of its own. The host's
   :class:`Hardclock` (its clock interrupt) sleeps until the earliest callout
   of all the host's heaps and wakes the threads whose callouts are due,
   which fire them; a thread woken for work also fires whatever is due before
   it sleeps again. Why: in Trio a timed sleep is a cancel scope with a
   deadline, which costs more than two wake-ups, and a protocol thread sleeps
   thousands of times a second while its timers (TCP's retransmit timer, ARP
   expiry) rarely fire. So a sleep costs one cancel scope per timer event of
   the host instead of one per thread sleep.

DragonFly: ``callout_reset``/``callout_stop``, ``sys/kern/kern_timeout.c``;
``hardclock`` and ``softclock`` (``sys/kern/kern_clock.c``).
"""

from __future__ import annotations

import heapq
import inspect
import itertools
import math
from collections.abc import Callable
from typing import Any

import attrs
import trio

__all__ = ["Callout", "Hardclock", "TimerHeap"]

# Compact the heap once this many stale entries pile up (and they outnumber
# the live ones); below it, lazy deletion is cheaper than rebuilding.
_COMPACT_MIN_STALE = 64


@attrs.define(eq=False)
class TimerHeap:
    """The callouts of one thread, ordered by deadline.

    Args:
        wakeup: called with the new deadline when an armed callout becomes
            the earliest one (:meth:`Hardclock.armed`), so the clock can
            shorten its sleep.
    """

    wakeup: Callable[[float], None]
    _heap: list[tuple[float, int, int, Callout]] = attrs.field(factory=list, init=False)
    _seq: itertools.count[int] = attrs.field(factory=itertools.count, init=False)
    _stale: int = attrs.field(default=0, init=False)
    fired: int = attrs.field(default=0, init=False)

    def _push(self, deadline: float, callout: Callout) -> None:
        early = not self._heap or deadline < self._heap[0][0]
        heapq.heappush(self._heap, (deadline, next(self._seq), callout._gen, callout))
        if early:
            self.wakeup(deadline)

    def _discard(self) -> None:
        self._stale += 1
        if self._stale > _COMPACT_MIN_STALE and self._stale * 2 > len(self._heap):
            heap = self._heap  # in place: the owning thread's loop holds it
            heap[:] = [e for e in heap if e[2] == e[3]._gen]
            heapq.heapify(heap)
            self._stale = 0

    def next_deadline(self) -> float:
        """The earliest live deadline, or ``inf``."""
        heap = self._heap
        while heap and heap[0][2] != heap[0][3]._gen:
            heapq.heappop(heap)
            self._stale -= 1
        return heap[0][0] if heap else math.inf

    def __len__(self) -> int:
        """The number of armed callouts."""
        return len(self._heap) - self._stale

    async def run_expired(self, now: float) -> None:
        """Fire every callout whose deadline is at or before ``now``, in order."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, _, gen, callout = heapq.heappop(heap)
            if gen != callout._gen:
                self._stale -= 1
                continue
            callout._gen += 1  # no longer pending; a reset inside fn re-arms it
            callout._deadline = None
            self.fired += 1
            result = callout._fn(*callout._args)
            if inspect.isawaitable(result):
                await result
        # Tell the clock when to come back (it left this heap out while
        # callouts were due).
        due = self.next_deadline()
        if due != math.inf:
            self.wakeup(due)


def _no_fn() -> None:
    raise AssertionError("callout fired without a function")  # pragma: no cover


@attrs.define(eq=False, repr=False)
class Callout:
    """A timer that fires a function once on its owning thread.

    Made by :meth:`Host.callout() <trionet.Host.callout>`; thread-owned heaps
    come from the host, never from user code.
    """

    _timers: TimerHeap
    _gen: int = attrs.field(default=0, init=False)
    _deadline: float | None = attrs.field(default=None, init=False)
    _fn: Callable[..., Any] = attrs.field(default=_no_fn, init=False)
    _args: tuple[Any, ...] = attrs.field(default=(), init=False)

    def __repr__(self) -> str:
        return f"<Callout deadline={self._deadline} fn={self._fn!r}>"

    def reset(self, delay: float, fn: Callable[..., Any], *args: Any) -> None:
        """Arm the callout to run ``fn(*args)`` after ``delay`` seconds of Trio time.

        Re-arming an armed callout moves it. DragonFly: ``callout_reset``.
        """
        if not delay >= 0:
            raise ValueError(f"callout delay must be >= 0, not {delay!r}")
        self.reset_at(trio.current_time() + delay, fn, *args)

    def reset_at(self, deadline: float, fn: Callable[..., Any], *args: Any) -> None:
        """Arm the callout for an absolute Trio time."""
        self._gen += 1  # before _discard, which may compact on _gen
        if self._deadline is not None:
            self._timers._discard()
        self._deadline = deadline
        self._fn = fn
        self._args = args
        self._timers._push(deadline, self)

    def follow(self, deadline: float | None, fn: Callable[..., Any], *args: Any) -> None:
        """Arm for ``deadline``, or disarm for None: how glue keeps one callout
        on a sans-IO machine's ``next_deadline()``. Already armed for that
        deadline, it is left alone."""
        if deadline is None:
            self.stop()
        elif deadline != self._deadline:
            self.reset_at(deadline, fn, *args)

    def stop(self) -> bool:
        """Disarm the callout. Returns whether it was pending.

        A callout already firing is not interrupted. DragonFly: ``callout_stop``.
        """
        if self._deadline is None:
            return False
        self._gen += 1
        self._deadline = None
        self._timers._discard()
        return True

    @property
    def pending(self) -> bool:
        """Whether the callout is armed and has not fired yet."""
        return self._deadline is not None

    @property
    def deadline(self) -> float | None:
        """The Trio time it will fire at, or None."""
        return self._deadline


@attrs.define(eq=False)
class Hardclock:
    """A host's clock interrupt: wakes the threads whose callouts are due.

    It sleeps until the earliest deadline of its heaps (one cancel scope),
    then wakes the owning thread of every heap with a callout due; the
    threads fire them (rule 5 of the module docstring). :meth:`armed` moves
    the sleep earlier when a callout becomes the earliest of its heap.

    Run :meth:`run` as a task of the host; it is not a kernel thread (``ps``
    does not list it: in DragonFly it is an interrupt).
    """

    #: (heap, wake its thread) pairs, one per service thread.
    heaps: list[tuple[TimerHeap, Callable[[], None]]] = attrs.field(factory=list)
    _scope: trio.CancelScope | None = attrs.field(default=None, init=False)
    ticks: int = attrs.field(default=0, init=False)

    def armed(self, deadline: float) -> None:
        """A callout became the earliest of its heap, due at ``deadline``."""
        scope = self._scope
        # With no scope the clock is awake, and it looks at every heap
        # before it sleeps again.
        if scope is not None and deadline < scope.deadline:
            scope.deadline = deadline

    async def run(self) -> None:
        """Tick forever: never returns; cancelled with the host.

        A heap with a callout due is left out of the next sleep's deadline
        until its thread has fired what is due and reported its next
        deadline (:meth:`TimerHeap.run_expired` does), so a busy thread
        never makes the clock spin.
        """
        heaps = self.heaps
        while True:
            now = trio.current_time()
            deadline = math.inf
            for timers, wake in heaps:
                due = timers.next_deadline()
                if due <= now:
                    wake()  # its thread fires them, now or when it is done
                elif due < deadline:
                    deadline = due
            with trio.CancelScope(deadline=deadline) as self._scope:
                await trio.sleep_forever()
            self._scope = None
            self.ticks += 1
