"""The kernel of a host: the nursery its kernel threads run in.

A :class:`Kernel` stands for one DragonFly kernel: it owns a sysctl tree, a
Giant lock, an interrupt controller, and per-CPU service threads. All of its
threads are tasks in the nursery of :func:`open_host`, so leaving the ``async
with`` block cancels and joins every one of them: nothing outlives the host.

Per CPU ``N`` (``0 <= N < ncpus``) a host runs three service threads, each a
message port with a callout heap (:func:`msgport_service_loop`):

- ``netisr N``: protocol input, fed by :meth:`Host.netisr_queue`;
- ``ifnet N``: deferred ``if_start`` and other interface work;
- ``softclock N``: callouts that belong to no protocol thread (driver timers,
  the interface watchdog).

``ithread N`` threads appear as IRQs get handlers (:attr:`Kernel.intr`).
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import attrs
import structlog
import trio
from trio.lowlevel import current_task

from .._nursery import service_nursery
from . import _ktrace
from ._callout import Callout, Hardclock, TimerHeap
from ._giant import Giant
from ._intr import IntrController, VmstatRow
from ._kthread import KThread, PsRow
from ._msgport import MsgPort, msgport_service_loop
from ._netisr import Netisr
from ._serializer import Serializer
from ._sysctl import SysctlNode, SysctlTable, SysctlValue

__all__ = ["Kernel", "open_kernel"]

log = structlog.get_logger(__name__)

_UNSET: Any = object()

#: The kinds of service thread a host runs on every CPU.
SERVICE_THREADS = ("netisr", "ifnet", "softclock")


@attrs.define(eq=False)
class _Service:
    thread: KThread
    port: MsgPort
    timers: TimerHeap


@attrs.define(eq=False, repr=False)
class Kernel(Netisr):
    """The kernel of one network node. Made by :func:`open_kernel`, never directly.

    The netisr calls (``netisr_register``, ``netisr_queue``,
    ``schednetisr``, ``netmsg_service_sync``, ``netisr_statistics``...) are
    methods of the kernel itself, inherited from
    :class:`~trionet._kern._netisr.Netisr`, where they are documented.

    Attributes:
        name: the host name (``kern.hostname``).
        ncpus: how many CPUs the host models; one netisr, ifnet and softclock
            thread run per CPU.
        invariants: ``INVARIANTS``: serializers made by :meth:`serializer`
            record owners and panic on misuse.
        giant: the Big Giant Lock.
        intr: the interrupt controller.
        sysctls: the sysctl tree (prefer :meth:`sysctl`).
        boot_time: the Trio time the host started.

    Once the host is shut down (its :func:`open_kernel` block has exited),
    every method that acts raises :exc:`trio.ClosedResourceError`; views
    (:meth:`ps`, reading a sysctl...) still answer.
    """

    name: str
    ncpus: int
    invariants: bool
    _nursery: trio.Nursery
    sysctls: SysctlTable = attrs.field(factory=SysctlTable, init=False)
    giant: Giant = attrs.field(factory=Giant, init=False)
    intr: IntrController = attrs.field(init=False)
    boot_time: float = attrs.field(init=False)
    _threads: list[KThread] = attrs.field(factory=list, init=False)
    _tids: itertools.count[int] = attrs.field(factory=lambda: itertools.count(1), init=False)
    _services: dict[str, list[_Service]] = attrs.field(factory=dict, init=False)
    _hardclock: Hardclock = attrs.field(factory=Hardclock, init=False)
    _closed: bool = attrs.field(default=False, init=False)
    _sysctl_intr_mpsafe: SysctlNode = attrs.field(init=False)
    _sysctl_livelock_limit: SysctlNode = attrs.field(init=False)
    _sysctl_livelock_lowater: SysctlNode = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.boot_time = trio.current_time()
        self.intr = IntrController(self)
        self._declare_sysctls()
        batch = self.sysctls.node("net.netisr.batch")
        maxqlen = self.sysctls.node("net.netisr.maxqlen")
        rollups: list[Callable[[], object]] = []
        for kind in SERVICE_THREADS:
            services = self._services[kind] = []
            for cpu in range(self.ncpus):
                thread = KThread(f"{kind} {cpu}", cpu, next(self._tids))
                port = MsgPort(thread, maxqlen)
                timers = TimerHeap(self._hardclock.armed)
                self._hardclock.heaps.append((timers, port.wakeup))
                services.append(_Service(thread, port, timers))
                self._start(
                    thread,
                    msgport_service_loop,
                    port,
                    timers,
                    batch,
                    rollups if kind == "netisr" else [],
                )
        self._nursery.start_soon(self._hardclock.run, name="hardclock")
        self._netisr_init(
            [s.port for s in self._services["netisr"]],
            [s.port for kind in ("netisr", "ifnet") for s in self._services[kind]],
            rollups,
        )
        if _ktrace.ACTIVE is not None:
            _ktrace.ACTIVE.host_created(self)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} ncpus={self.ncpus}>"

    def _declare_sysctls(self) -> None:
        add = self.sysctls.add
        add("kern.ostype", str, "trionet", readonly=True, description="Operating system type")
        add("kern.hostname", str, self.name, description="Hostname")
        add("kern.ncpus", int, self.ncpus, readonly=True, description="Number of CPUs")
        add(
            "kern.invariants",
            int,
            int(self.invariants),
            readonly=True,
            description="Kernel assertions (INVARIANTS) are checked",
        )
        self._sysctl_intr_mpsafe = add(
            "kern.intr_mpsafe",
            int,
            1,
            min=0,
            max=1,
            description="Run INTR_MPSAFE handlers without the BGL",
        )
        self._sysctl_livelock_limit = add(
            "kern.livelock_limit",
            int,
            50000,
            min=1,
            description="Interrupt iterations per second that engage the livelock limiter",
        )
        self._sysctl_livelock_lowater = add(
            "kern.livelock_lowater",
            int,
            20000,
            min=0,
            description="Rate below which (for one second) the limiter is removed",
        )
        add(
            "net.netisr.maxqlen",
            int,
            1024,
            min=1,
            description="Packets a netisr, ifnet or softclock port may hold",
        )
        add(
            "net.netisr.batch",
            int,
            512,
            min=1,
            description="Messages a protocol thread handles before its rollups",
        )
        add(
            "hw.intrnames",
            str,
            getter=lambda: " ".join(r.name for r in self.intr.vmstat_i()),
            description="Interrupt names, one per IRQ with an ithread",
        )
        add(
            "hw.intrcnt",
            str,
            getter=lambda: " ".join(str(r.total) for r in self.intr.vmstat_i()),
            description="Interrupt counts, in the order of hw.intrnames",
        )

    ####################################################################
    # threads
    ####################################################################

    def _check_open(self) -> None:
        # The one closed-host check: every public method that acts (starts a
        # thread, sets a sysctl, and Host's address, route, socket and ping
        # calls) begins with it; read-only views still answer afterwards.
        if self._closed:
            raise trio.ClosedResourceError(
                f"host {self.name!r} is shut down (removed from its network, or its block has exited)"
            )

    def _start(
        self, thread: KThread, fn: Callable[..., Awaitable[object]], *args: Any
    ) -> None:
        # Runs fn(thread, *args) in the host's nursery.
        self._check_open()
        self._threads.append(thread)
        self._nursery.start_soon(self._kthread_main, thread, fn, args, name=thread.name)

    def kthread_create(
        self,
        name: str,
        fn: Callable[..., Awaitable[object]],
        *args: Any,
        cpu: int = 0,
    ) -> KThread:
        """Start ``await fn(thread, *args)`` as a kernel thread of this host.

        The thread is a task in the host's nursery, listed by :meth:`ps` until
        it returns. End it early with :meth:`KThread.cancel
        <trionet.lowlevel.KThread.cancel>`; otherwise it ends with the host.
        An exception escaping ``fn`` crashes the host, as a panic would.

        Raises:
            ValueError: if ``cpu`` is not one of the host's CPUs.
            trio.ClosedResourceError: if the host is shutting down.

        DragonFly: ``lwkt_create`` / ``kthread_create``.
        """
        if not 0 <= cpu < self.ncpus:
            raise ValueError(f"cpu must be in 0..{self.ncpus - 1}, not {cpu!r}")
        thread = KThread(name, cpu, next(self._tids))
        self._start(thread, fn, *args)
        return thread

    async def _kthread_main(
        self, thread: KThread, fn: Callable[..., Awaitable[object]], args: tuple[Any, ...]
    ) -> None:
        thread.task = current_task()
        if _ktrace.ACTIVE is not None:
            _ktrace.ACTIVE.kthread_started(self, thread)
        # System-style tasks do not inherit their creator's log context.
        with structlog.contextvars.bound_contextvars(host=self.name, thread=thread.name):
            try:
                with thread.cancel_scope:
                    await fn(thread, *args)
            finally:
                thread.state = "Z"
                self._threads.remove(thread)

    def threads(self) -> list[KThread]:
        """The host's live kernel threads, oldest first."""
        return list(self._threads)

    def ps(self) -> list[PsRow]:
        """One row per kernel thread: ``ps axl`` for this host.

        Flag ``M`` marks a thread that runs without Giant.
        """
        return [
            PsRow(t.tid, t.name, t.cpu, t.state, t.flags, t.wchan) for t in self._threads
        ]

    def vmstat_i(self) -> list[VmstatRow]:
        """``vmstat -i``: one row per IRQ (names joined with ``/``, total, rate)."""
        return self.intr.vmstat_i()

    ####################################################################
    # sysctl
    ####################################################################

    def sysctl(self, name: str, value: Any = _UNSET) -> SysctlValue:
        """Read a sysctl, or write it and return the old value.

        Raises:
            NetError: ``ENOENT`` for an unknown name, ``EPERM`` for a
                read-only one.
            TypeError: for a value of the wrong type.
            ValueError: for a value out of the node's range.
            trio.ClosedResourceError: for a write once the host is shut
                down (a read still answers).
        """
        if value is _UNSET:
            return self.sysctls.get(name)
        self._check_open()
        old = self.sysctls.set(name, value)
        log.info("sysctl_changed", host=self.name, name=name, old=old, new=value)
        return old

    ####################################################################
    # factories
    ####################################################################

    def serializer(self, name: str, *, fifo: bool = False) -> Serializer:
        """A :class:`~trionet.Serializer` checked by this host's ``invariants``."""
        serializer = Serializer(name, invariants=self.invariants, fifo=fifo)
        if _ktrace.ACTIVE is not None:
            _ktrace.ACTIVE.serializer_created(serializer, self)
        return serializer

    def callout(self, cpu: int = 0, *, thread: str = "softclock") -> Callout:
        """A :class:`~trionet.lowlevel.Callout` fired by ``{thread} {cpu}``.

        Args:
            cpu: which CPU's thread owns the timer.
            thread: ``"softclock"`` (default), ``"netisr"`` (protocol timers,
                so they never race the protocol's packets) or ``"ifnet"``.
        """
        return Callout(self._service(thread, cpu).timers)

    def port(self, thread: str, cpu: int) -> MsgPort:
        """The message port of ``{thread} {cpu}`` (``"netisr"``, ``"ifnet"``, ``"softclock"``)."""
        return self._service(thread, cpu).port

    def _service(self, thread: str, cpu: int) -> _Service:
        try:
            services = self._services[thread]
        except KeyError:
            raise ValueError(
                f"thread must be one of {', '.join(SERVICE_THREADS)}, not {thread!r}"
            ) from None
        if not 0 <= cpu < self.ncpus:
            raise ValueError(f"cpu must be in 0..{self.ncpus - 1}, not {cpu!r}")
        return services[cpu]


K = TypeVar("K", bound=Kernel)


@asynccontextmanager
async def open_kernel(
    cls: type[K], name: str, *, ncpus: int = 2, invariants: bool = True
) -> AsyncIterator[K]:
    """Start a ``cls`` kernel whose threads run in a nursery this block owns.

    Leaving the block, normally or by an exception, cancels every thread of
    the host and waits for them all to finish. ``trionet.open_host`` is this
    with ``cls=trionet.Host``.

    Args:
        cls: :class:`Kernel` or a subclass.
        name: the host name.
        ncpus: CPUs to model (netisr, ifnet and softclock threads per CPU).
        invariants: check kernel assertions; misuse raises
            :class:`~trionet.KernelPanic`.

    Raises:
        ValueError: if ``ncpus`` is not a positive int.
    """
    if isinstance(ncpus, bool) or not isinstance(ncpus, int) or ncpus < 1:
        raise ValueError(f"ncpus must be a positive int, not {ncpus!r}")
    # service_nursery: the caller sees the body's own exception rather than
    # an ExceptionGroup wrapping it; a kernel thread that crashed at the
    # same time still propagates, with that exception as its context.
    try:
        async with service_nursery() as nursery:
            host = cls(name, ncpus, invariants, nursery)
            log.info("host_started", host=name, ncpus=ncpus, invariants=invariants)
            try:
                yield host
            finally:
                host._closed = True  # before its threads are cancelled
    finally:
        log.info("host_stopped", host=name)
