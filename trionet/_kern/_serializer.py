"""The LWKT serializer: the one lock an interface and its interrupt share.

Theory of operation
===================

DragonFly's serializer (``sys/kern/lwkt_serialize.c``) is a word with three
parts: a *held* bit, a *handler disabled* bit and a count of sleepers. It is a
sleep lock that stays held across blocking, which is what lets a driver's
interrupt handler and every ``ifnet`` entry point share it, so one acquisition
covers the whole interrupt path. Our model keeps the same three parts:

``_held``
    bit 31. Taken by :meth:`Serializer.enter` / :meth:`Serializer.try_enter`.
``_handler_disabled``
    bit 30. Checked by :meth:`Serializer.handler_call` before *and again after*
    entering, so a handler queued behind a holder that disables it never runs.
``_lot``
    the sleepers (bits 0-29), a :class:`trio.lowlevel.ParkingLot`.

Rules:

1. Non-recursive. With ``invariants=True`` the owner task is recorded
   (``last_td``) and a recursive enter, an exit by a task that does not hold
   the serializer, or a failed :meth:`~Serializer.assert_serialized` raise
   :class:`~trionet.KernelPanic`. Without invariants the owner is never
   recorded, asserts are no-ops and a recursive enter simply deadlocks, exactly
   as in a kernel built without ``INVARIANTS``.
2. No FIFO and no handoff by default: :meth:`~Serializer.exit` clears the held
   bit and wakes *all* sleepers, who race for it again (DragonFly's
   ``wakeup()``). Racing is unfair under Trio: a task that exits and enters
   again without yielding in between wins every race, and sleepers wait until
   it stops (kernel paths yield between iterations, so they do not starve each
   other). ``fifo=True`` instead hands the serializer directly to the longest
   sleeper, like :class:`trio.Lock`: fair, and deterministic for tests.
3. :meth:`~Serializer.enter` always checkpoints, contended or not (Trio's
   rule: async means checkpoint); :meth:`~Serializer.exit` is synchronous.
4. Cancel safety: a task cancelled while it sleeps leaves the lot without ever
   holding the serializer; in FIFO mode the handoff happens inside
   :meth:`~trio.lowlevel.ParkingLot.unpark`, after which the woken task can no
   longer be cancelled out of its park, so ownership is never lost. ``async
   with`` releases on every exit path, ``Cancelled`` included.
5. The uncontended path does less work than :class:`trio.Lock`: no parking-lot
   breaker bookkeeping, and the owner is recorded only under invariants
   (``benchmarks/bench_serializer.py`` measures it).

Prior art: ``trio._sync.Lock`` (the two-checkpoint acquire), DragonFly
``lwkt_serialize.c`` v1.13 (try, handler_try, the profiling counters).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from types import TracebackType
from typing import Any

import attrs
from trio.lowlevel import (
    ParkingLot,
    Task,
    cancel_shielded_checkpoint,
    checkpoint,
    checkpoint_if_cancelled,
    current_task,
    enable_ki_protection,
)

from .._exceptions import KernelPanic
from . import _ktrace

__all__ = ["Serializer", "SerializerStatistics"]


@attrs.frozen
class SerializerStatistics:
    """A snapshot of a :class:`Serializer`, returned by :meth:`Serializer.statistics`.

    Attributes:
        name: the serializer's name.
        held: whether someone holds it now.
        owner: the holding task (recorded only with invariants on, else None).
        handler_disabled: whether :meth:`Serializer.handler_disable` is in force.
        waiters: tasks sleeping in :meth:`Serializer.enter`.
        enter_cnt: successful acquisitions by :meth:`Serializer.enter`.
        try_cnt: calls of :meth:`Serializer.try_enter` (and of ``handler_try``).
        tryfail_cnt: of those, how many found it held.
        sleep_cnt: times a task went to sleep waiting for it.
    """

    name: str
    held: bool
    owner: Task | None
    handler_disabled: bool
    waiters: int
    enter_cnt: int
    try_cnt: int
    tryfail_cnt: int
    sleep_cnt: int


@attrs.define(eq=False, repr=False)
class Serializer:
    """A non-recursive sleep lock shared by an interrupt handler and an ifnet.

    Args:
        name: shown in statistics, panics and ``repr``.
        invariants: record the owner and check every use (``INVARIANTS``);
            a misuse raises :class:`~trionet.KernelPanic`.
        fifo: hand the serializer to the longest sleeper on exit instead of
            waking every sleeper to race for it (DragonFly's behaviour).

    DragonFly: ``struct lwkt_serialize``, ``sys/kern/lwkt_serialize.c``.
    """

    name: str = ""
    invariants: bool = attrs.field(default=True, kw_only=True)
    fifo: bool = attrs.field(default=False, kw_only=True)
    _held: bool = attrs.field(default=False, init=False)
    _handler_disabled: bool = attrs.field(default=False, init=False)
    _owner: Task | None = attrs.field(default=None, init=False)
    _lot: ParkingLot = attrs.field(factory=ParkingLot, init=False)
    _sleeping: int = attrs.field(default=0, init=False)
    _enter_cnt: int = attrs.field(default=0, init=False)
    _try_cnt: int = attrs.field(default=0, init=False)
    _tryfail_cnt: int = attrs.field(default=0, init=False)
    _sleep_cnt: int = attrs.field(default=0, init=False)

    def __repr__(self) -> str:
        state = "held" if self._held else "free"
        return f"<Serializer {self.name!r} {state} waiters={len(self._lot)}>"

    ####################################################################
    # enter / exit
    ####################################################################

    @enable_ki_protection
    async def enter(self) -> None:
        """Take the serializer, sleeping while someone else holds it.

        Always checkpoints. If ``Cancelled`` arrives while sleeping, the task
        leaves without holding the serializer.

        Raises:
            KernelPanic: with invariants on, if the calling task holds it already.
                Without invariants that mistake deadlocks, as in DragonFly.

        DragonFly: ``lwkt_serialize_enter``, ``sys/kern/lwkt_serialize.c``.
        """
        if self.invariants:
            task = current_task()
            if self._owner is task:
                raise KernelPanic(f"serializer {self.name!r}: recursive enter")
        else:
            task = None
        await checkpoint_if_cancelled()
        if self._held:
            if _ktrace.ACTIVE is not None:
                # a "wait" span, then the hold begins
                await _ktrace.ACTIVE.wait(self, self._sleep)
            else:
                await self._sleep()  # parking was the checkpoint
            self._owner = task
            self._enter_cnt += 1
        else:
            self._held = True
            self._owner = task
            self._enter_cnt += 1
            if _ktrace.ACTIVE is not None:
                _ktrace.ACTIVE.hold_begin(self)
            # Two checkpoints, like trio.Lock.acquire: the first may raise
            # Cancelled (before we took anything), this one only yields.
            await cancel_shielded_checkpoint()

    async def _sleep(self) -> None:
        # Contended path: on return the caller holds the serializer.
        # _sleeping counts the tasks in here (DragonFly's waiter bits), so
        # exit() tests an int instead of asking the lot.
        self._sleeping += 1
        try:
            if self.fifo:
                # exit() hands over: _held stays set and we are its new holder.
                self._sleep_cnt += 1
                await self._lot.park()
                return
            while self._held:
                self._sleep_cnt += 1
                await self._lot.park()
            self._held = True
        finally:
            self._sleeping -= 1

    def try_enter(self) -> bool:
        """Take the serializer if it is free; never sleeps and never checkpoints.

        Returns:
            True if the caller now holds it (and must :meth:`exit`), else False.

        Raises:
            KernelPanic: with invariants on, if the calling task holds it already.

        DragonFly: ``lwkt_serialize_try``.
        """
        self._try_cnt += 1
        if self.invariants:
            task = current_task()
            if self._owner is task:
                raise KernelPanic(f"serializer {self.name!r}: recursive try_enter")
        else:
            task = None
        if self._held:
            self._tryfail_cnt += 1
            return False
        self._held = True
        self._owner = task
        if _ktrace.ACTIVE is not None:
            _ktrace.ACTIVE.hold_begin(self)
        return True

    @enable_ki_protection
    def exit(self) -> None:
        """Release the serializer and wake the tasks sleeping on it.

        Synchronous. In racing mode (the default) every sleeper wakes and they
        race; with ``fifo=True`` the longest sleeper becomes the holder.

        Raises:
            KernelPanic: with invariants on, if the calling task does not hold it.

        DragonFly: ``lwkt_serialize_exit``.
        """
        if self.invariants:
            if not self._held or self._owner is not current_task():
                raise KernelPanic(
                    f"serializer {self.name!r}: exit by a task that does not hold it"
                )
            self._owner = None
        if _ktrace.ACTIVE is not None:
            _ktrace.ACTIVE.hold_end(self)
        if self._sleeping and self._lot:
            if self.fifo:
                (task,) = self._lot.unpark(count=1)
                if self.invariants:
                    self._owner = task
                return
            self._lot.unpark_all()
        self._held = False

    # The same function, so ``async with s`` costs no extra frame.
    __aenter__ = enter

    @enable_ki_protection
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.exit()

    ####################################################################
    # the interrupt handler bit
    ####################################################################

    def handler_disable(self) -> None:
        """Stop :meth:`handler_call` and :meth:`handler_try` from running handlers.

        Does not wait for a handler that is running now: to wait for one,
        enter the serializer (that is what a driver's detach does). Disable and
        enable do not nest.

        DragonFly: ``lwkt_serialize_handler_disable``.
        """
        self._handler_disabled = True

    def handler_enable(self) -> None:
        """Allow handlers to run again. DragonFly: ``lwkt_serialize_handler_enable``."""
        self._handler_disabled = False

    def locked(self) -> bool:
        """Whether anyone holds the serializer (as :meth:`trio.Lock.locked`)."""
        return self._held

    @property
    def handler_enabled(self) -> bool:
        """Whether handlers may run (the handler-disabled bit is clear)."""
        return not self._handler_disabled

    async def handler_call(self, fn: Callable[..., object], *args: Any) -> bool:
        """Run the handler ``fn(*args)`` under the serializer, unless disabled.

        Checks the handler bit before entering and again after, so a handler
        that waited behind a holder who disabled it does not run. Always
        checkpoints (entering does). ``fn`` is normally a plain function (a
        driver's ``intr``: interrupt handlers do not sleep); an async one is
        awaited, still under the serializer. The serializer is released
        however ``fn`` ends; if ``Cancelled`` arrives while waiting to enter,
        ``fn`` has not run.

        Returns:
            True if ``fn`` ran, False if the handler was disabled.

        DragonFly: ``lwkt_serialize_handler_call`` (used by ithreads).
        """
        if self._handler_disabled:
            await checkpoint()
            return False
        await self.enter()
        try:
            if self._handler_disabled:
                return False
            result = fn(*args)
            if inspect.isawaitable(result):
                await result
            return True
        finally:
            self.exit()

    def handler_try(self, fn: Callable[..., object], *args: Any) -> bool:
        """Run the synchronous handler ``fn(*args)`` if the serializer is free.

        Never waits. ``fn`` must be a plain function, since nothing may block.

        Returns:
            True if ``fn`` ran; False when the handler is disabled *or* the
            serializer is busy (DragonFly makes no difference either).

        Raises:
            TypeError: if ``fn`` turned out to be async.

        DragonFly: ``lwkt_serialize_handler_try`` (the INTR_FAST path, emergency
        polling).
        """
        if self._handler_disabled or not self.try_enter():
            return False
        try:
            result = fn(*args)
            if result is not None and inspect.isawaitable(result):
                if inspect.iscoroutine(result):
                    result.close()
                raise TypeError(
                    f"handler_try needs a plain function, {fn!r} is async: "
                    "use 'await handler_call(...)' instead"
                )
        finally:
            self.exit()
        return True

    ####################################################################
    # assertions and statistics
    ####################################################################

    def is_serialized(self) -> bool:
        """Whether the calling task holds the serializer.

        Divergence: without invariants DragonFly never records the owner, so
        ``IS_SERIALIZED`` is meaningless there; we then answer whether anyone
        holds it.
        """
        if self.invariants:
            return self._held and self._owner is current_task()
        return self._held

    def assert_serialized(self) -> None:
        """Panic unless the calling task holds the serializer (invariants only).

        DragonFly: ``ASSERT_SERIALIZED``.
        """
        if self.invariants and not (self._held and self._owner is current_task()):
            raise KernelPanic(f"serializer {self.name!r} is not held by this task")

    def assert_not_serialized(self) -> None:
        """Panic if the calling task holds the serializer (invariants only).

        DragonFly: ``ASSERT_NOT_SERIALIZED``.
        """
        if self.invariants and self._held and self._owner is current_task():
            raise KernelPanic(f"serializer {self.name!r} is held by this task")

    def statistics(self) -> SerializerStatistics:
        """Return a :class:`SerializerStatistics` snapshot."""
        return SerializerStatistics(
            name=self.name,
            held=self._held,
            owner=self._owner,
            handler_disabled=self._handler_disabled,
            waiters=len(self._lot),
            enter_cnt=self._enter_cnt,
            try_cnt=self._try_cnt,
            tryfail_cnt=self._tryfail_cnt,
            sleep_cnt=self._sleep_cnt,
        )

