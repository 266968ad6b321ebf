"""The Big Giant Lock (BGL, the "MP lock").

Before the 2005 MPSAFE work every interrupt thread ran under one global,
per-thread recursive lock. A host keeps one, :attr:`Host.giant
<trionet.Host.giant>`; ithreads take it or not according to
``kern.intr_mpsafe`` (see :mod:`trionet._kern._intr`).

Rules:

1. Recursive per task: each :meth:`Giant.acquire` by the holder bumps a count
   (``td_mpcount``), each :meth:`Giant.release` drops it, and the lock is free
   when the count reaches zero.
2. Handoff is FIFO: a release that frees the lock gives it to the longest
   waiter, so no thread starves behind a busy one.
3. Cancel safety as :class:`trio.Lock`: a waiter cancelled while parked never
   holds the lock.

DragonFly: ``get_mplock``/``rel_mplock``, ``sys/kern/lwkt_thread.c``
(``td_mpcount``), ``sys/sys/mplock2.h``.
"""

from __future__ import annotations

from types import TracebackType

import attrs
from trio.lowlevel import (
    ParkingLot,
    Task,
    cancel_shielded_checkpoint,
    checkpoint_if_cancelled,
    current_task,
    enable_ki_protection,
)

from . import _ktrace

__all__ = ["Giant"]


@attrs.define(eq=False, repr=False)
class Giant:
    """A recursive, per-task lock: the host's Big Giant Lock.

    ``async with host.giant:`` nests freely within one task.
    """

    _owner: Task | None = attrs.field(default=None, init=False)
    _count: int = attrs.field(default=0, init=False)
    _lot: ParkingLot = attrs.field(factory=ParkingLot, init=False)
    _acquire_cnt: int = attrs.field(default=0, init=False)
    _contended_cnt: int = attrs.field(default=0, init=False)

    def __repr__(self) -> str:
        return f"<Giant owner={self._owner!r} count={self._count}>"

    @enable_ki_protection
    async def acquire(self) -> None:
        """Take Giant (or take it once more if this task holds it). Always checkpoints.

        DragonFly: ``get_mplock``.
        """
        task = current_task()
        await checkpoint_if_cancelled()
        self._acquire_cnt += 1
        if self._owner is task:
            self._count += 1
        elif self._owner is None:
            self._owner = task
            self._count = 1
            if _ktrace.ACTIVE is not None:
                _ktrace.ACTIVE.hold_begin(self)
        else:
            self._contended_cnt += 1
            if _ktrace.ACTIVE is not None:
                # a "wait" span, then the hold begins
                await _ktrace.ACTIVE.wait(self, self._lot.park)
            else:
                await self._lot.park()  # release() hands the lock to us
            return
        await cancel_shielded_checkpoint()

    @enable_ki_protection
    def release(self) -> None:
        """Drop one count; when the last goes, hand Giant to the next waiter.

        Raises:
            RuntimeError: if the calling task does not hold Giant.

        DragonFly: ``rel_mplock``.
        """
        if self._owner is not current_task():
            raise RuntimeError("can't release Giant: this task does not hold it")
        self._count -= 1
        if self._count:
            return
        if _ktrace.ACTIVE is not None:
            _ktrace.ACTIVE.hold_end(self)
        if self._lot:
            (self._owner,) = self._lot.unpark(count=1)
            self._count = 1
        else:
            self._owner = None

    def held_by(self, task: Task | None = None) -> bool:
        """Whether ``task`` (default: the calling task) holds Giant."""
        return self._owner is (task if task is not None else current_task())

    @property
    def owner(self) -> Task | None:
        """The task holding Giant, or None."""
        return self._owner

    @property
    def count(self) -> int:
        """The holder's recursion depth (0 when free)."""
        return self._count

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
