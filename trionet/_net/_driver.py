"""The driver API: a :class:`Driver` base class with serialized entry points.

A driver subclasses :class:`Driver` and is attached with ``await
host.if_attach(driver)``. The framework calls its entry points as follows
(DragonFly's rules, from em(4)'s header):

======================  ====================================  ==================
entry point             called by                             serializer
======================  ====================================  ==================
``async attach(ifp)``   ``if_attach``, before anything else    not held: nothing
                                                               can reach the
                                                               interface yet
``async init()``        the driver's own ``ioctl`` (going      held
                        up, MTU change)
``async stop()``        ``ioctl`` (going down), ``if_detach``  held
``async ioctl(cmd,      ``host.ifioctl``, ``ifpromisc``,       held
arg)``                  ``if_allmulti``
``start()``             ``ifq_dispatch`` (inline, when the     held
                        serializer was free), the ``ifnet N``
                        thread, ``if_devstart``
``intr()``              the interface's ithread                held (the ithread
                        (``handler_call``)                     enters it)
``watchdog()``          ``if_slowtimo`` when ``ifp.timer``     held (taken with
                        reaches 0                              ``try_enter``)
``poll(cmd, count)``    the polling clock on the netisr        held (the clock
                        thread; (de)registration               uses ``try_enter``
                                                               and skips a busy
                                                               interface)
``async detach()``      ``if_detach``, last                    not held
======================  ====================================  ==================

**Entry points that never sleep are plain functions.** In DragonFly
``if_start``, the interrupt handler, ``if_poll`` and ``if_watchdog`` run under
the serializer and must not block; here ``start``, ``intr``, ``poll`` and
``watchdog`` are plain ``def`` methods, so the stack can call them in the
middle of a packet's path: ``ifq_dispatch`` runs ``start`` inline in the
sending thread when the serializer is free, and the polling clock runs
``poll`` on the protocol thread. The ones that may sleep (``attach``,
``detach``, ``init``, ``stop``, ``ioctl``) are ``async``. A driver that needs
to re-initialise from ``watchdog`` or ``intr`` does its hardware reset there
synchronously (as em does with ``em_init``) or asks for an asynchronous one
with :meth:`Driver.request_reinit`. :func:`trionet.testing.check_driver`
fails a driver whose ``start``, ``intr``, ``poll`` or ``watchdog`` is
``async``.

The driver's own timers (callouts) are called with nothing held: they must
enter ``ifp.serializer`` themselves. A driver calls ``ifp.input(frame)`` with
or without the serializer held; it only queues.

Interrupts: if ``uses_intr`` is true, ``if_attach`` hooks ``intr`` to an IRQ
*after* ``attach`` returns, with the interface serializer, so the handler and
every entry point are one serialized path. The hardware interrupt must stay
masked until ``init`` calls :meth:`Driver.enable_intr`, which enables the
serializer's handler *before* unmasking; :meth:`Driver.disable_intr` masks
*before* disabling the handler.

Lifecycle of ``if_detach``: enter the serializer (this waits for an interrupt
handler in flight), ``stop``, unhook the interrupt, exit; then the stack takes
the interface down (clears UP, purges the send queue) and runs
``netmsg_service_sync``; then ``detach``.

DragonFly: ``sys/dev/netif/em/if_em.c`` v1.80 (2008) and its header comment.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any, ClassVar

import structlog

from .._exceptions import NetError
from .._kern._msgport import NetMsg
from ._if import IfCap, IfFlags, IfIoctl, PollCmd
from ._ifstart import if_devstart

if TYPE_CHECKING:
    from ._if import Ifnet

__all__ = ["Driver"]

log = structlog.get_logger(__name__)


class Driver:
    """Base class of a network interface driver.

    Subclasses override the entry points they need; ``start`` (and ``intr``
    when ``uses_intr``) are required. The defaults implement the generic
    Ethernet behaviour (``ether_ioctl``), so a simple driver stays small.

    Class attributes:
        name_prefix: interfaces are named ``{name_prefix}{unit}``.
        uses_intr: hook :meth:`intr` to an IRQ at attach.
        intr_fast: hook it as a FAST interrupt (INTR_FAST): an assertion
            runs :meth:`intr` at once, in the asserting task, when the
            serializer is free, and wakes the ithread only when it is not
            (see :mod:`trionet._kern._intr`, rule 5). May be set per instance
            before attach.
        supports_polling: the driver implements :meth:`poll`;
            ``IfFlags.POLLING`` is refused otherwise.
        min_mtu, max_mtu: the MTU range ``SIOCSIFMTU`` accepts.

    Attributes:
        ifp: the interface, set by ``if_attach`` before :meth:`attach`.
    """

    name_prefix: ClassVar[str] = "if"
    uses_intr: ClassVar[bool] = True
    intr_fast: bool = False
    supports_polling: ClassVar[bool] = False
    min_mtu: ClassVar[int] = 68
    max_mtu: ClassVar[int] = 1500

    ifp: Ifnet
    _reinit_msg: NetMsg | None = None

    async def attach(self, ifp: Ifnet) -> None:
        """Set up the interface (MTU, address, flags, send queue length).

        Called once, before the interface is visible and before the
        interrupt is hooked; leave the hardware interrupt masked.
        """

    async def detach(self) -> None:
        """Release what :meth:`attach` took. Called last by ``if_detach``."""

    async def init(self) -> None:
        """Bring the hardware up: set ``RUNNING``, clear ``OACTIVE``.

        Serializer held. The default only changes the flags.
        """
        ifp = self.ifp
        ifp.serializer.assert_serialized()
        ifp.flags = (ifp.flags | IfFlags.RUNNING) & ~IfFlags.OACTIVE

    async def stop(self) -> None:
        """Stop the hardware: clear ``RUNNING`` and ``OACTIVE``, stop the watchdog.

        Serializer held. The default only changes the flags and the timer.
        """
        ifp = self.ifp
        ifp.serializer.assert_serialized()
        ifp.flags &= ~(IfFlags.RUNNING | IfFlags.OACTIVE)
        ifp.timer = 0

    def start(self) -> None:
        """Move frames from ``ifp.snd`` to the hardware until it is full.

        Serializer held; a plain function (it must not sleep). Protocol:
        return unless RUNNING and not OACTIVE; dequeue while the queue has
        frames and the hardware has room; when it has none, set ``OACTIVE``
        and return (TX completion clears it and calls ``if_devstart``); set
        ``ifp.timer`` so a lost completion reaches ``watchdog``.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement start()")

    def intr(self) -> None:
        """The interrupt handler. Serializer held (by the ithread); a plain
        function (it must not sleep)."""
        raise NotImplementedError(f"{type(self).__name__} must implement intr()")

    async def ioctl(self, cmd: IfIoctl, arg: Any) -> None:
        """Apply an interface ioctl. Serializer held.

        The default is ``ether_ioctl``'s: ``SIOCSIFFLAGS`` calls :meth:`init`
        when the interface is UP but not RUNNING, :meth:`stop` when RUNNING
        but not UP, and :meth:`set_filter` otherwise (promiscuous or
        all-multicast may have changed); ``SIOCSIFMTU`` checks the range, sets
        the MTU and re-inits a running interface; ``SIOCADDMULTI`` and
        ``SIOCDELMULTI`` call :meth:`set_filter` when RUNNING;
        ``SIOCSIFCAP`` enables the requested offloads the driver offers
        (``TSO`` only with ``TXCSUM``).

        Raises:
            NetError: ``EINVAL`` for an MTU out of range.
        """
        ifp = self.ifp
        ifp.serializer.assert_serialized()
        flags = ifp.flags
        if cmd is IfIoctl.SIOCSIFFLAGS:
            if flags & IfFlags.UP:
                if flags & IfFlags.RUNNING:
                    await self.set_filter()
                else:
                    await self.init()
            elif flags & IfFlags.RUNNING:
                await self.stop()
        elif cmd is IfIoctl.SIOCSIFMTU:
            if not self.min_mtu <= arg <= self.max_mtu:
                raise NetError(
                    errno.EINVAL,
                    f"{ifp.name}: mtu {arg} outside {self.min_mtu}..{self.max_mtu}",
                )
            ifp.mtu = arg
            if flags & IfFlags.RUNNING:
                await self.init()
        elif cmd in (IfIoctl.SIOCADDMULTI, IfIoctl.SIOCDELMULTI):
            if flags & IfFlags.RUNNING:
                await self.set_filter()
        elif cmd is IfIoctl.SIOCSIFCAP:
            want = IfCap(arg) & ifp.capabilities
            if not want & IfCap.TXCSUM:
                want &= ~IfCap.TSO  # segmenting needs the card's checksums
            ifp.capenable = want

    async def set_filter(self) -> None:
        """Program the receive filter from ``ifp.flags`` (``PROMISC``,
        ``ALLMULTI``) and ``ifp.multiaddrs``. Serializer held. Default: nothing.
        """

    def watchdog(self) -> None:
        """A transmission did not complete in time (``ifp.timer`` ran out).

        Serializer held; a plain function. The default counts ``oerrors``
        and asks for a re-init (:meth:`request_reinit`), which then restarts
        output; a driver that can reset its hardware without sleeping does
        it here instead, as em does.
        """
        ifp = self.ifp
        ifp.serializer.assert_serialized()
        log.warning("watchdog_timeout", ifname=ifp.name)
        ifp.data.oerrors += 1
        self.request_reinit()

    def request_reinit(self) -> None:
        """Re-initialise the interface soon: on the ``ifnet`` thread of its
        CPU, enter the serializer, ``await init()`` if the interface is
        still UP, then restart output (``if_devstart``). Coalesced: one
        request is pending at most. A plain function, callable from any
        entry point or task.
        """
        msg = self._reinit_msg
        if msg is None:
            msg = self._reinit_msg = NetMsg(_reinit_dispatch, self)
        if msg.done:
            ifp = self.ifp
            ifp.host.port("ifnet", ifp.cpuid).sendmsg(msg)

    def poll(self, cmd: PollCmd, count: int) -> None:
        """Polling: handle up to ``count`` frames without the interrupt.

        Serializer held; a plain function. ``POLL_REGISTER`` must mask the
        hardware interrupt, ``POLL_DEREGISTER`` unmask it. Drivers that
        implement it set ``supports_polling``.
        """
        raise NetError(errno.EOPNOTSUPP, f"{self.ifp.name} does not support polling")

    # Interrupt enable/disable, in the order DragonFly requires.

    def enable_intr(self) -> None:
        """Enable the serializer's handler, *then* unmask the hardware interrupt."""
        self.ifp.serializer.handler_enable()
        self.intr_unmask()

    def disable_intr(self) -> None:
        """Mask the hardware interrupt, *then* disable the serializer's handler."""
        self.intr_mask()
        self.ifp.serializer.handler_disable()

    def intr_mask(self) -> None:
        """Hardware hook: mask the device's interrupt. Default: nothing."""

    def intr_unmask(self) -> None:
        """Hardware hook: unmask the device's interrupt (and raise it again if
        a cause is pending). Default: nothing."""


async def _reinit_dispatch(msg: NetMsg) -> None:
    # Driver.request_reinit's message, on the ifnet thread: reply first (so a
    # later request may be sent while this one runs), then re-init.
    driver: Driver = msg.arg
    msg.reply()
    ifp = driver.ifp
    if not ifp.attached or ifp.in_detach:
        return
    async with ifp.serializer:
        if ifp.flags & IfFlags.UP and not ifp.in_detach:
            await driver.init()
            if_devstart(ifp)
