"""Interrupts: registration, IRQ sharing, ithreads, Giant, the livelock limiter.

Theory of operation
===================

Each IRQ that has ever had a handler gets an :class:`_IntrInfo` and one kernel
thread, ``ithread N``. A device "asserts the line" with
:meth:`IntrController.sched_ithd`, a plain function: it counts the interrupt,
sets ``running`` and wakes the ithread unless the IRQ is livelocked. The
ithread runs every handler registered on the IRQ, in registration order, each
through :meth:`Serializer.handler_call <trionet.Serializer.handler_call>` on
its own serializer (or directly when it has none).

Rules:

1. The Giant decision is made at the top of each iteration that has work:
   with ``kern.intr_mpsafe`` = 0 the ithread always holds Giant around the
   chain; with 1 it holds Giant only if some sharer is not MPSAFE
   (``mplock_required``). So a sysctl change, or a sharer added or removed,
   takes effect at the next interrupt, never in the middle of a chain. The
   decision is recorded in the thread's ``mpcount``, which ``ps`` shows as
   the ``M`` flag.
2. A record unregistered while its chain runs is skipped from then on.
3. An interrupt with no handler is *stray*: counted per IRQ, logged at counts
   1, 2, 4, 8... so a storm cannot flood the log.
4. Livelock limiter, in Trio time: ``ill_count`` rises by one per handler
   iteration and decays exponentially with a one-second time constant, so it
   tracks the iteration rate per second (DragonFly decays it by ``1/hz`` per
   tick). Above ``kern.livelock_limit`` the IRQ becomes LIVELOCKED: from then
   on only a limiter ticking at the limit frequency (clamped to 100..500000 Hz)
   runs the chain, whatever ``sched_ithd`` does. Once the rate has stayed below
   ``kern.livelock_lowater`` for a full second the IRQ is NORMAL again.
5. FAST interrupts (``register(..., fast=True)`` on every handler of the
   IRQ): ``sched_ithd`` runs the chain at once, in the task that asserted the
   line, as DragonFly's ``ithread_fast_handler`` runs INTR_FAST handlers in
   interrupt context on whatever thread was interrupted. Each handler runs
   through :meth:`Serializer.handler_try <trionet.Serializer.handler_try>`;
   if one of them is busy (its serializer held, by anyone, the asserting
   task included), or the chain needs Giant, or the IRQ is LIVELOCKED or
   already pending, the ithread is scheduled as for any interrupt and runs
   the whole chain. A fast run counts as a handler iteration for the
   livelock limiter, so a storm still ends up governed by it (DragonFly's
   fast path has no limiter; ours keeps the promise that the limiter governs
   every interrupt path). Divergence: DragonFly's fast path tries the MP lock
   (``try_mplock``); ours leaves a chain that needs Giant to the ithread.

DragonFly: ``register_int``, ``unregister_int``, ``sched_ithd``,
``ithread_handler`` in ``sys/kern/kern_intr.c`` (v1.42).
"""

from __future__ import annotations

import enum
import inspect
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs
import structlog
import trio
from trio.lowlevel import ParkingLot

from . import _ktrace
from ._kthread import KThread
from ._serializer import Serializer

if TYPE_CHECKING:
    from ._host import Kernel as Host

__all__ = ["IntrCookie", "IntrController", "IntrState", "VmstatRow", "format_vmstat_i"]

log = structlog.get_logger(__name__)

LIVELOCK_MIN_HZ = 100
LIVELOCK_MAX_HZ = 500_000


class IntrState(enum.Enum):
    """The state of one IRQ (``i_state``)."""

    #: Interrupts wake the ithread.
    NORMAL = "normal"
    #: Only the limiter wakes the ithread.
    LIVELOCKED = "livelocked"


@attrs.define(eq=False, repr=False)
class IntrCookie:
    """A registered handler (``struct intrec``), returned by
    :meth:`IntrController.register`; pass it to :meth:`IntrController.unregister`.

    Attributes:
        irq: the IRQ line.
        name: shown by ``vmstat -i`` (``"em0"``).
        serializer: the handler's serializer, or None.
        mpsafe: whether the handler may run without Giant.
        calls: how many times the handler ran.
    """

    irq: int
    handler: Callable[..., object]
    args: tuple[Any, ...]
    name: str
    serializer: Serializer | None
    mpsafe: bool
    calls: int = 0
    registered: bool = True
    is_async: bool = False
    fast: bool = False

    def __repr__(self) -> str:
        return f"<IntrCookie irq={self.irq} {self.name!r}>"


@attrs.define(eq=False)
class _IntrInfo:
    irq: int
    thread: KThread
    records: list[IntrCookie] = attrs.field(factory=list)
    count: int = 0  # i_count: interrupts asserted
    running: bool = False  # i_running
    mplock_required: bool = False
    fast: bool = False  # every record is FAST: sched_ithd may run the chain
    fast_active: bool = False  # a fast run of the chain is on the stack
    fast_count: int = 0  # interrupts handled entirely by the fast path
    state: IntrState = IntrState.NORMAL
    lot: ParkingLot = attrs.field(factory=ParkingLot)
    sleeping: bool = False  # the ithread is parked on lot
    ill_count: float = 0.0
    ill_last: float = 0.0
    low_since: float | None = None
    next_tick: float = 0.0


@attrs.frozen
class VmstatRow:
    """One row of ``vmstat -i``: the IRQ, its handlers' names joined with ``/``,
    the interrupts counted and their average rate per second since boot."""

    irq: int
    name: str
    total: int
    rate: int


def format_vmstat_i(rows: list[VmstatRow]) -> str:
    """Format ``vmstat -i`` rows the way ``vmstat -i`` prints them."""
    lines = [f"{'interrupt':<30} {'total':>12} {'rate':>8}"]
    for r in rows:
        lines.append(f"{f'irq{r.irq}: {r.name}':<30} {r.total:>12} {r.rate:>8}")
    total = sum(r.total for r in rows)
    rate = sum(r.rate for r in rows)
    lines.append(f"{'Total':<30} {total:>12} {rate:>8}")
    return "\n".join(lines) + "\n"


@attrs.define(eq=False)
class IntrController:
    """The interrupt controller of one host (``host.intr``)."""

    host: Host
    _infos: dict[int, _IntrInfo] = attrs.field(factory=dict, init=False)
    _stray: dict[int, int] = attrs.field(factory=dict, init=False)

    ####################################################################
    # registration
    ####################################################################

    def register(
        self,
        irq: int,
        handler: Callable[..., object],
        *args: Any,
        name: str,
        serializer: Serializer | None = None,
        mpsafe: bool = True,
        fast: bool = False,
    ) -> IntrCookie:
        """Hook ``handler(*args)`` to ``irq``: a plain function, as interrupt
        handlers do not sleep (an async one is awaited, for tests that model
        a handler in flight).

        The first handler on an IRQ creates its ithread. Several handlers may
        share an IRQ; each runs under its own serializer (a driver passes its
        interface serializer, so the interrupt and the ifnet entry points are
        one serialized path). A handler that is not ``mpsafe`` makes the whole
        chain take Giant. When every handler of the IRQ is ``fast``
        (INTR_FAST), an assertion runs the chain at once when it can (rule 5
        of the module docstring).

        Returns:
            the cookie for :meth:`unregister`.

        Raises:
            ValueError: for a bad ``irq``, or a ``fast`` handler that is async.

        DragonFly: ``register_int``.
        """
        if not isinstance(irq, int) or irq < 0:
            raise ValueError(f"irq must be a non-negative int, not {irq!r}")
        if not callable(handler):
            raise TypeError(f"handler must be a function, not {handler!r}")
        is_async = inspect.iscoroutinefunction(handler)
        if fast and is_async:
            raise ValueError(f"a fast interrupt handler must be a plain function: {handler!r}")
        info = self._infos.get(irq)
        if info is None:
            thread = self.host.kthread_create(
                f"ithread {irq}", self._ithread, irq, cpu=irq % self.host.ncpus
            )
            info = self._infos[irq] = _IntrInfo(irq, thread, ill_last=trio.current_time())
        cookie = IntrCookie(irq, handler, args, name, serializer, mpsafe)
        cookie.is_async = is_async
        cookie.fast = fast
        info.records.append(cookie)
        self._chain_changed(info)
        if len(info.records) == 1:
            info.thread.mpcount = int(self._need_giant(info))
        log.info("intr_registered", host=self.host.name, irq=irq, name=name, mpsafe=mpsafe)
        return cookie

    def unregister(self, cookie: IntrCookie) -> None:
        """Unhook a handler. A chain running now skips it from here on.

        DragonFly: ``unregister_int``.

        Raises:
            ValueError: if the cookie is not registered.
        """
        info = self._infos.get(cookie.irq)
        if not cookie.registered or info is None:
            raise ValueError(f"{cookie!r} is not registered")
        info.records.remove(cookie)
        cookie.registered = False
        self._chain_changed(info)
        log.info("intr_unregistered", host=self.host.name, irq=cookie.irq, name=cookie.name)

    @staticmethod
    def _chain_changed(info: _IntrInfo) -> None:
        records = info.records
        info.mplock_required = not all(r.mpsafe for r in records)
        info.fast = bool(records) and all(r.fast for r in records)

    def _need_giant(self, info: _IntrInfo) -> bool:
        return self.host._sysctl_intr_mpsafe.value == 0 or info.mplock_required

    ####################################################################
    # the interrupt line
    ####################################################################

    def sched_ithd(self, irq: int) -> None:
        """Assert ``irq``: count it and wake its ithread (unless livelocked),
        or, for a FAST IRQ, run its handlers now when they can run (rule 5).

        A plain function, callable from any task; it never blocks. A fast
        handler's exception propagates to the caller.

        DragonFly: ``sched_ithd``, ``ithread_fast_handler``.
        """
        info = self._infos.get(irq)
        if info is None or not info.records:
            n = self._stray[irq] = self._stray.get(irq, 0) + 1
            if n & (n - 1) == 0:
                log.warning("stray_interrupt", host=self.host.name, irq=irq, count=n)
            if info is not None:
                info.count += 1
            return
        info.count += 1
        if _ktrace.ACTIVE is not None:
            _ktrace.ACTIVE.intr(self.host, info.thread, irq)
        if not info.running:
            if (
                info.fast
                and info.state is IntrState.NORMAL
                and not info.fast_active
                and self._fast_chain(info)
            ):
                return
            info.running = True
            if info.state is IntrState.NORMAL and info.sleeping:
                info.lot.unpark_all()

    async def _ithread(self, thread: KThread, irq: int) -> None:
        info = self._infos[irq]
        giant = self.host.giant
        while True:
            if info.state is IntrState.LIVELOCKED:
                thread.state, thread.wchan = "S", "livelk"
                await trio.sleep_until(info.next_tick)
                thread.state, thread.wchan = "R", ""
                info.next_tick += 1.0 / _limiter_hz(self.host)
                ran = info.running
                if ran:
                    await self._run_chain(thread, info, giant)
                self._livelock_tick(info, ran)
                continue
            if not info.running:
                thread.state, thread.wchan = "S", "intr"
                info.sleeping = True
                try:
                    await info.lot.park()
                finally:
                    info.sleeping = False
                thread.state, thread.wchan = "R", ""
                continue
            await self._run_chain(thread, info, giant)
            self._livelock_tick(info, True)
            if info.running:
                # Asserted again already (a handler left work for another
                # round): let the rest of the host run first. Otherwise the
                # park above is this iteration's yield.
                await trio.lowlevel.checkpoint()

    async def _run_chain(self, thread: KThread, info: _IntrInfo, giant: Any) -> None:
        tr = _ktrace.ACTIVE  # a trace's hooks: the chain, each handler
        if tr is not None:
            t_chain = tr.now()
        # Rule 1: decide on Giant once, at the top of the iteration.
        need_giant = self._need_giant(info)
        thread.mpcount = int(need_giant)
        info.running = False
        if need_giant:
            thread.wchan = "mplock"
            await giant.acquire()
            thread.wchan = ""
        try:
            for rec in tuple(info.records):
                if not rec.registered:
                    continue  # rule 2
                if tr is not None:
                    t0 = tr.now()
                serializer = rec.serializer
                if serializer is not None:
                    # A disabled handler is skipped and not counted. An
                    # uncontended serializer is entered without a yield, as
                    # DragonFly's enter takes the bit without sleeping; only
                    # a busy one, or an async handler, goes through the
                    # waiting handler_call.
                    if not serializer.handler_enabled:
                        continue
                    if not rec.is_async and serializer.handler_try(rec.handler, *rec.args):
                        rec.calls += 1
                    elif await serializer.handler_call(rec.handler, *rec.args):
                        rec.calls += 1
                else:
                    result = rec.handler(*rec.args)
                    if inspect.isawaitable(result):
                        await result
                    rec.calls += 1
                if tr is not None:
                    tr.handler_ran(rec, t0)
        finally:
            if need_giant:
                giant.release()
            if tr is not None:
                tr.chain_ran(self.host, info.irq, t_chain, False)

    def _fast_chain(self, info: _IntrInfo) -> bool:
        # Rule 5: run the chain in the asserting task if nothing in it is
        # busy; True when it ran, False to leave it to the ithread.
        if info.mplock_required or self.host._sysctl_intr_mpsafe.value == 0:
            return False  # needs Giant (_need_giant)
        records = tuple(info.records)
        for rec in records:
            serializer = rec.serializer
            if serializer is not None and serializer.locked():
                return False
        info.thread.mpcount = 0  # rule 1's decision for this interrupt: no Giant
        info.fast_active = True
        leftover = False
        tr = _ktrace.ACTIVE  # a trace's hooks: the chain, each handler
        if tr is not None:
            t_chain = tr.now()
        try:
            for rec in records:
                if not rec.registered:
                    continue
                if tr is not None:
                    t0 = tr.now()
                serializer = rec.serializer
                if serializer is None:
                    rec.handler(*rec.args)
                    rec.calls += 1
                elif serializer.handler_try(rec.handler, *rec.args):
                    rec.calls += 1
                else:
                    if serializer.handler_enabled:
                        leftover = True  # an earlier handler left it held
                    continue  # it did not run
                if tr is not None:
                    tr.handler_ran(rec, t0)
        finally:
            info.fast_active = False
            if tr is not None:
                tr.chain_ran(self.host, info.irq, t_chain, True)
        if not leftover:
            info.fast_count += 1
        self._livelock_tick(info, True)
        if info.state is IntrState.LIVELOCKED and info.sleeping:
            info.lot.unpark_all()  # the limiter's ticks are the ithread's job
        return not leftover

    ####################################################################
    # livelock
    ####################################################################

    def _livelock_tick(self, info: _IntrInfo, ran: bool) -> None:
        now = trio.current_time()
        info.ill_count *= math.exp(-(now - info.ill_last))
        info.ill_last = now
        if ran:
            info.ill_count += 1.0
        host = self.host
        if info.state is IntrState.NORMAL:
            limit = host._sysctl_livelock_limit.value
            if info.ill_count > limit:  # type: ignore[operator]
                info.state = IntrState.LIVELOCKED
                info.low_since = None
                info.next_tick = now + 1.0 / _limiter_hz(self.host)
                log.warning(
                    "livelock_entered",
                    host=self.host.name,
                    irq=info.irq,
                    rate=int(info.ill_count),
                    limit=limit,
                )
            return
        if info.ill_count < host._sysctl_livelock_lowater.value:  # type: ignore[operator]
            if info.low_since is None:
                info.low_since = now
            elif now - info.low_since >= 1.0:
                info.state = IntrState.NORMAL
                log.info("livelock_removed", host=self.host.name, irq=info.irq)
        else:
            info.low_since = None

    ####################################################################
    # views
    ####################################################################

    def state(self, irq: int) -> IntrState:
        """The limiter state of ``irq``.

        Raises:
            ValueError: if nothing was ever registered on ``irq``.
        """
        try:
            return self._infos[irq].state
        except KeyError:
            raise ValueError(f"no handler was ever registered on irq {irq}") from None

    def fast(self, irq: int) -> int:
        """How many interrupts on ``irq`` the fast path handled (``i_fast``)."""
        info = self._infos.get(irq)
        return info.fast_count if info is not None else 0

    def stray(self, irq: int) -> int:
        """How many stray interrupts ``irq`` has had."""
        return self._stray.get(irq, 0)

    def names(self, irq: int) -> str:
        """The handler names of ``irq`` joined with ``/`` (``hw.intrnames``)."""
        info = self._infos.get(irq)
        if info is None or not info.records:
            return f"irq{irq}"
        return "/".join(r.name for r in info.records)

    def vmstat_i(self) -> list[VmstatRow]:
        """Rows for ``vmstat -i``, one per IRQ with an ithread, in IRQ order."""
        uptime = trio.current_time() - self.host.boot_time
        rows = []
        for irq in sorted(self._infos):
            info = self._infos[irq]
            rate = int(info.count / uptime) if uptime > 0 else 0
            rows.append(VmstatRow(irq, self.names(irq), info.count, rate))
        return rows


def _limiter_hz(host: Host) -> int:
    limit: int = host.sysctls.get("kern.livelock_limit")  # type: ignore[assignment]
    return min(max(limit, LIVELOCK_MIN_HZ), LIVELOCK_MAX_HZ)
