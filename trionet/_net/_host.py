"""The host: a kernel with network interfaces.

:class:`Host` adds to :class:`~trionet._kern._host.Kernel` (threads, sysctls,
interrupts, netisr) what the stack needs of interfaces: attach and detach,
``ifioctl`` with the flag edges and reference counts, the 1 Hz interface
watchdog (``if_slowtimo``) and polling. :func:`open_host` starts one.

Rules:

- Every driver entry point is called with the interface serializer held;
  ``ifioctl`` enters it around the driver's ``ioctl``, never around the
  stack's own work (``if_down`` waits for the protocol threads, which must
  not wait for the serializer in turn).
- The watchdog and the polling clock use ``try_enter``: a busy interface is
  retried a second later (watchdog) or skipped until the next tick (poll);
  neither ever waits for a serializer, so one stuck interface cannot stall
  the others.

DragonFly: ``sys/net/if.c`` (``if_attach``, ``if_detach``, ``if_down``,
``if_up``, ``ifioctl``, ``ifpromisc``, ``if_allmulti``, ``if_addmulti``,
``if_delmulti``, ``if_slowtimo``) and ``sys/kern/kern_poll.c``.
"""

from __future__ import annotations

import errno
import ipaddress
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractContextManager, asynccontextmanager
from typing import Any, overload

import attrs
import structlog
import trio

from .._exceptions import NetError
from .._kern._callout import Callout
from .._kern._host import Kernel, open_kernel
from .._kern._msgport import NetMsg
from ..protocols import addrconf6
from ..protocols.ethernet import ETHER_ADDR_LEN
from ..protocols.dns import DNS_PORT
from ..protocols.nat import NatRow
from ._dhcp import Dhclient, DhcpLeaseRow, Dhcpd, _DhclientAgent
from ._dns import DnsServer, DnsZone
from ._dns import resolve as dns_resolve
from ._driver import Driver
from ._ether import ether_input
from ._if import IFF_CANTCHANGE, IfCap, IfFlags, IfIoctl, Ifnet, PollCmd
from ._ifstart import SCHEDONLY, if_start_dispatch
from ._inaddr import ether_aton
from ._ifviews import IfconfigRow, NetstatIRow, ifconfig_row, netstat_i_row
from ._icmp import PingResult
from ._inet import Inet
from ._arp import ArpRow
from ._inet6 import Inet6
from ._nd6 import NdpRow
from ._route import Route, RouteRow, RouteTable, parse_network
from ._tcp import NetstatRow
from ._tcp_socket import TcpListener, TcpStream, open_tcp_listeners, open_tcp_stream, serve_tcp
from ._trio_socket import host_context
from ._udp import UdpSocket

__all__ = ["Host", "PollStatistics", "open_host"]

log = structlog.get_logger(__name__)

#: IRQs handed out to drivers that do not ask for one.
FIRST_IRQ = 16


@attrs.frozen
class PollStatistics:
    """Counters of one CPU's polling clock.

    Attributes:
        cpu: the CPU (the clock runs on ``netisr {cpu}``).
        ticks: clock ticks.
        polls: ``poll`` calls made.
        busy_skips: interfaces skipped because their serializer was busy.
        interfaces: names of the interfaces registered on this CPU.
    """

    cpu: int
    ticks: int
    polls: int
    busy_skips: int
    interfaces: tuple[str, ...]


@attrs.define(eq=False)
class _PollCtx:
    # One CPU's polling clock (DragonFly: struct pollctx).
    cpu: int
    callout: Callout
    ifps: list[Ifnet] = attrs.field(factory=list)
    ticks: int = 0
    polls: int = 0
    busy_skips: int = 0


@attrs.define(eq=False, repr=False)
class Host(Kernel):
    """One network node: a kernel with interfaces. Made by :func:`open_host`.

    See :class:`~trionet._kern._host.Kernel` for threads, sysctls,
    interrupts and netisr.

    Once the host is shut down (removed from its network, or its
    :func:`open_host` or ``open_network`` block has exited), every method
    that acts raises :exc:`trio.ClosedResourceError`: attaching, detaching
    and ``ifioctl`` (``ifup``...), setting or deleting an address, routes,
    sysctl writes, new sockets, connections and listeners, ``ping``. Views
    (``ifconfig()``, ``netstat_r()``, reading a sysctl...) still answer.
    """

    _ifnets: dict[str, Ifnet] = attrs.field(factory=dict, init=False)
    _ifindex: itertools.count[int] = attrs.field(
        factory=lambda: itertools.count(1), init=False
    )
    _next_irq: int = attrs.field(default=FIRST_IRQ, init=False)
    _slowtimo: Callout | None = attrs.field(default=None, init=False)
    _watchdog_busy: int = attrs.field(default=0, init=False)
    _pollctx: dict[int, _PollCtx] = attrs.field(factory=dict, init=False)
    routes: RouteTable = attrs.field(factory=RouteTable, init=False)
    #: The IPv6 routes.
    routes6: RouteTable = attrs.field(factory=lambda: RouteTable(bits=128), init=False)
    #: The Internet layer; it owns the address tables (``inet.local_addrs``,
    #: ``inet.broadcasts``).
    inet: Inet = attrs.field(init=False)
    #: The IPv6 layer (its addresses share ``inet.local_addrs``).
    inet6: Inet6 = attrs.field(init=False)
    #: The DNS server this host asks (an IPv4 address, ``resolv.conf``'s
    #: ``nameserver``), or ``None``: :meth:`resolve`, and
    #: ``trio.socket.getaddrinfo`` under :meth:`as_current` for names the
    #: network's table does not have.
    resolver: str | None = attrs.field(default=None, init=False)
    _dns_rng: Any = attrs.field(default=None, init=False)
    _dhcpd: Dhcpd | None = attrs.field(default=None, init=False)
    _dhclient: _DhclientAgent | None = attrs.field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.inet = Inet(self)
        self.inet6 = Inet6(self, self.inet.local_addrs)
        self.inet.udp.attach6(self.inet6.ip6, self.inet6.icmp6)
        self.inet.tcp.attach6(self.inet6.ip6, self.inet6.icmp6)
        add = self.sysctls.add
        add(
            SCHEDONLY,
            int,
            0,
            min=0,
            max=1,
            description="ifq_dispatch never runs start itself: always schedules the ifnet thread",
        )
        add(
            "kern.polling.pollhz",
            int,
            2000,
            min=1,
            max=100000,
            description="Polling clock frequency (Hz)",
        )
        add(
            "kern.polling.burst_max",
            int,
            150,
            min=1,
            description="Frames a driver's poll may handle per tick",
        )
        add(
            "kern.polling.reg_frac",
            int,
            20,
            min=1,
            description="Every reg_frac-th poll also checks status",
        )

    ####################################################################
    # attach / detach
    ####################################################################

    async def if_attach(
        self, driver: Driver, *, name: str | None = None, irq: int | None = None
    ) -> Ifnet:
        """Attach ``driver`` as a new interface and return it.

        Calls ``driver.attach(ifp)``; then, if the driver ``uses_intr``, hooks
        ``driver.intr`` to ``irq`` (a fresh one if None; pass the same IRQ to
        share a line) with the interface serializer. The interface starts
        down: bring it up with :meth:`ifup` or ``SIOCSIFFLAGS``.

        Args:
            name: the interface name; default ``{driver.name_prefix}{unit}``
                with the smallest free unit.
            irq: the interrupt line.

        Raises:
            NetError: ``EEXIST`` if the name is taken.
            TypeError: if ``driver`` is not a :class:`~trionet.lowlevel.Driver`.

        Cancellation: if cancelled inside ``driver.attach``, nothing is
        attached.

        DragonFly: the driver's attach, ``if_attach``/``ether_ifattach`` and
        ``bus_setup_intr``.
        """
        self._check_open()
        if not isinstance(driver, Driver):
            raise TypeError(f"driver must be a trionet.lowlevel.Driver, not {driver!r}")
        if getattr(driver, "ifp", None) is not None:
            raise ValueError(f"{driver!r} is already attached as {driver.ifp.name}")
        if name is None:
            name = self._unit_name(driver.name_prefix)
        elif not isinstance(name, str) or not name or len(name) > 15:
            raise ValueError(f"interface name must be 1..15 characters, not {name!r}")
        if name in self._ifnets:
            raise NetError(errno.EEXIST, f"interface {name} exists")
        ifp = Ifnet(name, next(self._ifindex), self, driver, self.serializer(name))
        ifp.input_fn = ether_input
        ifp.netisr_enqueue = self.netisr_enqueue
        ifp._start_msgs = [NetMsg(if_start_dispatch, ifp) for _ in range(self.ncpus)]
        ifp.schedonly = self.sysctls.node(SCHEDONLY)
        driver.ifp = ifp
        # Reserve the name while the driver attaches.
        self._ifnets[name] = ifp
        try:
            await driver.attach(ifp)
            if driver.uses_intr:
                if irq is None:
                    irq = self._next_irq
                    self._next_irq += 1
                ifp.irq = irq
                ifp.cpuid = irq % self.ncpus
                ifp._intr_cookie = self.intr.register(
                    irq,
                    driver.intr,
                    name=name,
                    serializer=ifp.serializer,
                    fast=driver.intr_fast,
                )
        except BaseException:
            del self._ifnets[name]
            del driver.ifp
            raise
        ifp.attached = True
        if self._slowtimo is None:
            self._slowtimo = self.callout(0)
            self._slowtimo.reset(1.0, self._if_slowtimo)
        log.info("if_attached", host=self.name, ifname=name, irq=ifp.irq, cpu=ifp.cpuid)
        return ifp

    def _unit_name(self, prefix: str) -> str:
        for unit in itertools.count():
            name = f"{prefix}{unit}"
            if name not in self._ifnets:
                return name
        raise AssertionError("unreachable")

    async def if_detach(self, ifp: Ifnet) -> None:
        """Detach an interface (the driver's detach, then ``if_detach``).

        Order: enter the serializer, which waits for an interrupt handler in
        flight; ``stop``; unhook the interrupt; exit. Then polling is
        dropped, the interface is taken down (send queue purged) and
        ``netmsg_service_sync`` waits until the protocol and ifnet threads have
        handled every packet and start request queued for it. Last,
        ``driver.detach()``. No handler runs after the serializer is left.

        Raises:
            NetError: ``ENXIO`` if ``ifp`` is not attached (or already being
                detached).

        Cancellation: if cancelled while waiting for the serializer, nothing
        has changed. Once the serializer is held, the interface is gone from
        the host; a cancel after that may leave ``driver.detach()`` unrun
        (the host's nursery still owns anything the driver started).
        """
        self._check_attached(ifp)
        # Claim the detach before the first checkpoint, so a second caller
        # gets ENXIO instead of detaching twice.
        ifp.in_detach = True
        serializer = ifp.serializer
        try:
            await serializer.enter()
        except BaseException:
            ifp.in_detach = False  # cancelled while waiting: nothing changed
            raise
        try:
            await ifp.driver.stop()
            if ifp._intr_cookie is not None:
                self.intr.unregister(ifp._intr_cookie)
                ifp._intr_cookie = None
        finally:
            serializer.exit()
        ifp.attached = False
        del self._ifnets[ifp.name]
        self.inet.if_detached(ifp)
        self.inet6.if_detached(ifp)
        self.routes.delete_interface(ifp)
        self.routes6.delete_interface(ifp)
        if ifp.flags & IfFlags.POLLING:
            self._poll_remove(ifp)
            ifp.flags &= ~IfFlags.POLLING
        await self._if_down(ifp)
        log.info("if_detached", host=self.name, ifname=ifp.name)
        await ifp.driver.detach()

    def _check_attached(self, ifp: Ifnet) -> None:
        # Every call that acts on an interface (ifioctl and its wrappers,
        # if_detach) starts here, so the closed check is made here too.
        if not isinstance(ifp, Ifnet):
            raise TypeError(f"expected an Ifnet, not {ifp!r}")
        self._check_open()
        if ifp.host is not self or not ifp.attached or ifp.in_detach:
            raise NetError(errno.ENXIO, f"{ifp.name} is not attached to {self.name}")

    def ifunit(self, name: str) -> Ifnet:
        """The interface called ``name``.

        Raises:
            NetError: ``ENXIO`` if there is none.
        """
        ifp = self._ifnets.get(name)
        if ifp is None or not ifp.attached:
            raise NetError(errno.ENXIO, f"no interface {name!r} on {self.name}")
        return ifp

    def ifnets(self) -> list[Ifnet]:
        """The attached interfaces, by index."""
        return [ifp for ifp in self._ifnets.values() if ifp.attached]

    ####################################################################
    # ioctl
    ####################################################################

    async def _driver_ioctl(self, ifp: Ifnet, cmd: IfIoctl, arg: Any) -> None:
        async with ifp.serializer:
            if ifp.in_detach:
                raise NetError(errno.ENXIO, f"{ifp.name} is being detached")
            await ifp.driver.ioctl(cmd, arg)

    async def ifioctl(self, ifp: Ifnet, cmd: IfIoctl, arg: Any) -> None:
        """Apply an interface ioctl (``ifconfig``'s system call).

        - ``SIOCSIFFLAGS``, ``arg`` the wanted :class:`~trionet.IfFlags`: the
          UP edge runs ``if_up``/``if_down`` (down purges the send queue and
          syncs the protocol threads); a change of ``POLLING`` registers or
          deregisters polling; a change of ``PROMISC`` takes or drops the
          user's promiscuous reference; bits in ``IFF_CANTCHANGE`` are kept;
          then the driver's ``ioctl`` runs (which calls ``init`` or ``stop``).
        - ``SIOCSIFMTU``, ``arg`` an int: the driver checks and applies it.
        - ``SIOCADDMULTI`` / ``SIOCDELMULTI``, ``arg`` a 6-byte group address:
          reference-counted; the driver hears of the first add and last delete.
        - ``SIOCSIFCAP``, ``arg`` the :class:`~trionet.IfCap` bits wanted: the
          driver enables those it offers (``ifp.capenable``).

        The driver's ``ioctl`` runs with the serializer held; the stack's own
        steps run without it.

        Raises:
            NetError: ``ENXIO`` (not attached), ``EINVAL`` (bad argument),
                ``EOPNOTSUPP`` (polling on a driver without it),
                ``EADDRNOTAVAIL`` (deleting a group never added), or what the
                driver raises.
            TypeError: for an argument of the wrong type.

        DragonFly: ``ifioctl``.
        """
        self._check_attached(ifp)
        if not isinstance(cmd, IfIoctl):
            raise TypeError(f"cmd must be an IfIoctl, not {cmd!r}")
        if cmd is IfIoctl.SIOCSIFFLAGS:
            await self._set_flags(ifp, arg)
        elif cmd is IfIoctl.SIOCSIFMTU:
            if isinstance(arg, bool) or not isinstance(arg, int):
                raise TypeError(f"mtu must be an int, not {arg!r}")
            if arg <= 0:
                raise NetError(errno.EINVAL, f"mtu must be positive, not {arg}")
            await self._driver_ioctl(ifp, cmd, arg)
        elif cmd is IfIoctl.SIOCSIFCAP:
            if isinstance(arg, bool) or not isinstance(arg, int):
                raise TypeError(f"capabilities must be IfCap, not {arg!r}")
            await self._driver_ioctl(ifp, cmd, IfCap(arg))
        elif cmd is IfIoctl.SIOCADDMULTI:
            addr = _group_address(arg)
            n = ifp.multiaddrs.get(addr, 0)
            ifp.multiaddrs[addr] = n + 1
            if n == 0:
                try:
                    await self._driver_ioctl(ifp, cmd, addr)
                except BaseException:
                    del ifp.multiaddrs[addr]
                    raise
        else:
            addr = _group_address(arg)
            n = ifp.multiaddrs.get(addr, 0)
            if n == 0:
                raise NetError(errno.EADDRNOTAVAIL, f"{ifp.name} is not in group {addr.hex(':')}")
            if n > 1:
                ifp.multiaddrs[addr] = n - 1
            else:
                del ifp.multiaddrs[addr]
                await self._driver_ioctl(ifp, cmd, addr)

    async def _set_flags(self, ifp: Ifnet, arg: Any) -> None:
        if isinstance(arg, bool) or not isinstance(arg, int):
            raise TypeError(f"flags must be IfFlags, not {arg!r}")
        new = IfFlags(arg)
        old = ifp.flags
        if new & IfFlags.POLLING and not old & IfFlags.POLLING:
            if not ifp.driver.supports_polling:
                raise NetError(errno.EOPNOTSUPP, f"{ifp.name} does not support polling")
        if old & IfFlags.UP and not new & IfFlags.UP:
            await self._if_down(ifp)
        elif new & IfFlags.UP and not old & IfFlags.UP:
            ifp.flags |= IfFlags.UP
            log.info("if_up", host=self.name, ifname=ifp.name)
        if new & IfFlags.POLLING and not ifp.flags & IfFlags.POLLING:
            await self._poll_register(ifp)
        elif ifp.flags & IfFlags.POLLING and not new & IfFlags.POLLING:
            await self._poll_deregister(ifp)
        ifp.flags = (ifp.flags & IFF_CANTCHANGE) | (new & ~IFF_CANTCHANGE)
        # Only a *change* of PROMISC is a user request: flags read back from
        # the interface (ifup passes ifp.flags) carry PROMISC set by others.
        if new & IfFlags.PROMISC and not old & IfFlags.PROMISC:
            ifp.flags |= IfFlags.PPROMISC
            await self.ifpromisc(ifp, True)
        elif not new & IfFlags.PROMISC and ifp.flags & IfFlags.PPROMISC:
            ifp.flags &= ~IfFlags.PPROMISC
            await self.ifpromisc(ifp, False)
        await self._driver_ioctl(ifp, IfIoctl.SIOCSIFFLAGS, ifp.flags)
        if new & IfFlags.UP and not old & IfFlags.UP:
            self.inet6.if_up(ifp)  # DragonFly: in6_if_up, from if_up
        elif old & IfFlags.UP and not new & IfFlags.UP:
            self.inet6.if_down(ifp)

    async def _if_down(self, ifp: Ifnet) -> None:
        # DragonFly if_down: clear UP, purge the send queue, then wait until
        # the protocol and ifnet threads hold nothing queued for the ifp.
        ifp.flags &= ~IfFlags.UP
        purged = ifp.snd.purge()
        log.info("if_down", host=self.name, ifname=ifp.name, purged=purged)
        await self.netmsg_service_sync()

    async def ifup(self, ifp: Ifnet) -> None:
        """``ifconfig NAME up``: ``SIOCSIFFLAGS`` with ``UP`` added."""
        await self.ifioctl(ifp, IfIoctl.SIOCSIFFLAGS, ifp.flags | IfFlags.UP)

    async def ifdown(self, ifp: Ifnet) -> None:
        """``ifconfig NAME down``: ``SIOCSIFFLAGS`` with ``UP`` removed."""
        await self.ifioctl(ifp, IfIoctl.SIOCSIFFLAGS, ifp.flags & ~IfFlags.UP)

    async def ifcap(self, ifname: str, **caps: bool) -> IfCap:
        """Switch offloads on or off, as ``ifconfig vnic0 -txcsum`` does:
        ``await host.ifcap("vnic0", txcsum=False)``. Keywords are
        :class:`~trionet.IfCap` names in lower case; the driver enables only
        what it offers.

        Returns:
            the interface's ``capenable`` afterwards.

        Raises:
            TypeError: for an unknown capability name.
            NetError: ``ENXIO`` (no such interface).
        """
        ifp = self.ifunit(ifname)
        want = IfCap(ifp.capenable)
        for name, on in caps.items():
            try:
                cap = IfCap[name.upper()]
            except KeyError:
                names = ", ".join(c.name.lower() for c in IfCap if c.name)  # type: ignore[union-attr]
                raise TypeError(f"no capability {name!r} (known: {names})") from None
            want = want | cap if on else want & ~cap
        await self.ifioctl(ifp, IfIoctl.SIOCSIFCAP, want)
        return ifp.capenable

    async def ifpromisc(self, ifp: Ifnet, on: bool) -> None:
        """Take (``on``) or drop a promiscuous-mode reference.

        The first reference sets ``PROMISC`` and the last clears it; each edge
        tells the driver with ``SIOCSIFFLAGS``.

        Raises:
            NetError: ``EINVAL`` when dropping a reference nobody holds.

        DragonFly: ``ifpromisc``.
        """
        await self._flag_reference(ifp, "pcount", IfFlags.PROMISC, on)

    async def if_allmulti(self, ifp: Ifnet, on: bool) -> None:
        """Take (``on``) or drop an all-multicast reference (as :meth:`ifpromisc`).

        DragonFly: ``if_allmulti``.
        """
        await self._flag_reference(ifp, "amcount", IfFlags.ALLMULTI, on)

    async def _flag_reference(self, ifp: Ifnet, counter: str, flag: IfFlags, on: bool) -> None:
        # A reference-counted flag: the 0 -> 1 and 1 -> 0 edges set or clear
        # it and tell the driver.
        self._check_attached(ifp)
        count: int = getattr(ifp, counter)
        if on:
            setattr(ifp, counter, count + 1)
            if count:
                return
            ifp.flags |= flag
        else:
            if count == 0:
                raise NetError(errno.EINVAL, f"{ifp.name}: no {flag.name} reference to drop")
            setattr(ifp, counter, count - 1)
            if count > 1:
                return
            ifp.flags &= ~flag
        log.info("if_flag_reference", host=self.name, ifname=ifp.name, flag=flag.name, on=on)
        await self._driver_ioctl(ifp, IfIoctl.SIOCSIFFLAGS, ifp.flags)

    ####################################################################
    # watchdog
    ####################################################################

    def _if_slowtimo(self) -> None:
        # DragonFly if_slowtimo: once a second, count every interface's
        # if_timer down; at 0, run its watchdog if the serializer can be had
        # without waiting, else put the second back and retry next time.
        assert self._slowtimo is not None
        self._slowtimo.reset(1.0, self._if_slowtimo)
        for ifp in self.ifnets():
            if ifp.timer <= 0:
                continue
            ifp.timer -= 1
            if ifp.timer:
                continue
            if not ifp.serializer.try_enter():
                ifp.timer = 1
                self._watchdog_busy += 1
                log.debug("watchdog_busy", host=self.name, ifname=ifp.name)
                continue
            try:
                if ifp.attached and not ifp.in_detach:
                    ifp.driver.watchdog()
            finally:
                ifp.serializer.exit()

    ####################################################################
    # polling
    ####################################################################

    async def _poll_register(self, ifp: Ifnet) -> None:
        # DragonFly ether_poll_register: under the serializer set POLLING and,
        # if RUNNING, tell the driver (which masks its interrupt); then add the
        # interface to its CPU's polling list.
        async with ifp.serializer:
            ifp.flags |= IfFlags.POLLING
            if ifp.flags & IfFlags.RUNNING:
                try:
                    ifp.driver.poll(PollCmd.POLL_REGISTER, 0)
                except BaseException:
                    ifp.flags &= ~IfFlags.POLLING
                    raise
        ctx = self._pollctx.get(ifp.cpuid)
        if ctx is None:
            ctx = self._pollctx[ifp.cpuid] = _PollCtx(
                ifp.cpuid, self.callout(ifp.cpuid, thread="netisr")
            )
        ctx.ifps.append(ifp)
        if not ctx.callout.pending:
            ctx.callout.reset(self._poll_interval(), self._poll_tick, ctx)
        log.info("poll_registered", host=self.name, ifname=ifp.name, cpu=ifp.cpuid)

    async def _poll_deregister(self, ifp: Ifnet) -> None:
        self._poll_remove(ifp)
        async with ifp.serializer:
            ifp.flags &= ~IfFlags.POLLING
            if ifp.flags & IfFlags.RUNNING:
                ifp.driver.poll(PollCmd.POLL_DEREGISTER, 0)
        log.info("poll_deregistered", host=self.name, ifname=ifp.name)

    def _poll_remove(self, ifp: Ifnet) -> None:
        ctx = self._pollctx.get(ifp.cpuid)
        if ctx is not None and ifp in ctx.ifps:
            ctx.ifps.remove(ifp)
            if not ctx.ifps:
                ctx.callout.stop()

    def _poll_interval(self) -> float:
        return 1.0 / self.sysctls.get("kern.polling.pollhz")  # type: ignore[operator]

    def _poll_tick(self, ctx: _PollCtx) -> None:
        # The polling clock, on netisr {cpu}: poll every registered interface
        # whose serializer is free; skip (never wait for) a busy one.
        if ctx.ifps:
            ctx.callout.reset(self._poll_interval(), self._poll_tick, ctx)
        ctx.ticks += 1
        frac: int = self.sysctls.get("kern.polling.reg_frac")  # type: ignore[assignment]
        burst: int = self.sysctls.get("kern.polling.burst_max")  # type: ignore[assignment]
        cmd = PollCmd.POLL_AND_CHECK_STATUS if ctx.ticks % frac == 0 else PollCmd.POLL_ONLY
        want = IfFlags.UP | IfFlags.RUNNING | IfFlags.POLLING
        port = self.port("netisr", ctx.cpu)
        for ifp in tuple(ctx.ifps):
            if not ifp.serializer.try_enter():
                ctx.busy_skips += 1
                continue
            # Packets for this thread are handled right after the poll, once
            # the serializer is released (direct dispatch; netisr rule 6).
            port.direct_begin()
            try:
                if ifp.flags & want == want:
                    ctx.polls += 1
                    ifp.driver.poll(cmd, burst)
            finally:
                ifp.serializer.exit()
                port.direct_end()

    def poll_statistics(self) -> list[PollStatistics]:
        """One row per CPU that has had a polling clock."""
        return [
            PollStatistics(c.cpu, c.ticks, c.polls, c.busy_skips, tuple(i.name for i in c.ifps))
            for c in sorted(self._pollctx.values(), key=lambda c: c.cpu)
        ]

    @property
    def watchdog_busy(self) -> int:
        """Watchdog runs put off a second because the serializer was busy."""
        return self._watchdog_busy

    ####################################################################
    # views
    ####################################################################

    @overload
    def ifconfig(self) -> list[IfconfigRow]: ...

    @overload
    def ifconfig(self, ifname: str, address: str | None = None, *, delete: bool = False) -> IfconfigRow: ...

    def ifconfig(
        self, ifname: str | None = None, address: str | None = None, *, delete: bool = False
    ) -> list[IfconfigRow] | IfconfigRow:
        """``ifconfig``: list interfaces, or show one, or set or delete an address.

        - ``ifconfig()``: a list of rows, one per interface (``ifconfig -a``).
        - ``ifconfig("vnic0")``: that interface's row (an :class:`IfconfigRow`).
        - ``ifconfig("vnic0", "10.0.0.1/24")``: add the address (the first
          becomes primary) and the connected route of its subnet, and
          announce it with a gratuitous ARP if the interface is running;
          returns the interface's row afterwards.
        - ``ifconfig("vnic0", "10.0.0.1/24", delete=True)``: remove both.
        - ``ifconfig("vnic0", "fd00::1/64")``: add an IPv6 address and the
          connected route of its prefix; on a running interface it is
          tentative until duplicate address detection passes (about a
          second; ``ifconfig`` shows ``tentative``). ``delete=True``
          removes it.

        Format rows with ``format_ifconfig`` (a list; ``[row]`` for one).

        Raises:
            NetError: ``ENXIO`` (no such interface), ``EEXIST`` (the
                address is already on this host), ``EADDRNOTAVAIL``
                (deleting an address the interface does not have).
            ValueError: for an address that is not ``a.b.c.d/len`` or an
                IPv6 ``addr/len``.
            TypeError: for an address that is not a str.
            trio.ClosedResourceError: setting or deleting an address once
                the host is shut down.
        """
        if ifname is None:
            return [ifconfig_row(ifp) for ifp in self.ifnets()]
        if address is None:
            return ifconfig_row(self.ifunit(ifname))
        if not isinstance(address, str):
            # ipaddress would take 5 as 0.0.0.5, or 4 bytes as an address.
            raise TypeError(f"address must be a str such as '10.0.0.1/24', not {address!r}")
        self._check_open()
        ifp = self.ifunit(ifname)
        if ":" in address:
            try:
                iface6 = ipaddress.IPv6Interface(address)
            except ValueError as exc:
                raise ValueError(f"not an IPv6 address/prefix: {address!r} ({exc})") from None
            if delete:
                self.inet6.in6_delete(ifp, iface6.ip.packed)
            else:
                self.inet6.in6_add(ifp, iface6.ip.packed, iface6.network.prefixlen)
            return ifconfig_row(ifp)
        try:
            iface = ipaddress.IPv4Interface(address)
        except ValueError as exc:
            raise ValueError(f"not an IPv4 address/prefix: {address!r} ({exc})") from None
        if delete:
            self.inet.in_delete(ifp, iface.ip.packed)
        else:
            self.inet.in_add(ifp, iface)
        return ifconfig_row(ifp)

    async def ping(
        self,
        address: str,
        *,
        count: int = 3,
        size: int = 56,
        ttl: int | None = None,
        timeout: float = 1.0,
        interval: float = 1.0,
        df: bool = False,
    ) -> PingResult:
        """``ping``: send ``count`` ICMP echo requests to ``address``; an
        IPv6 address (``"fd00::2"``, ``"fe80::1%vnic0"``) sends ICMPv6 ones
        (``ttl`` is then the hop limit).

        Requests go out ``interval`` seconds apart whatever comes back, as
        BSD ``ping`` does; a reply counts if it arrives within ``timeout``
        seconds of its request. The call returns when every request has its
        reply or error, or its ``timeout`` has passed. Errors that come back
        instead (time exceeded, unreachable) are in the result.

        Raises:
            ValueError: for a bad address, or an argument out of its range
                (the message names it and the range).
            TypeError: for an argument of the wrong type.
            trio.ClosedResourceError: if the host is shut down.
        """
        self._check_open()
        if isinstance(address, str) and ":" in address:
            dst6, ifp = self._scoped6(address)
            return await self.inet6.icmp6.ping(
                dst6, count=count, size=size, ttl=ttl, timeout=timeout, interval=interval, df=df, ifp=ifp
            )
        dst = ipaddress.IPv4Address(address).packed
        return await self.inet.icmp.ping(
            dst, count=count, size=size, ttl=ttl, timeout=timeout, interval=interval, df=df
        )

    def _scoped6(self, address: str) -> tuple[bytes, Ifnet | None]:
        # "fe80::1%vnic0" -> (16 bytes, vnic0); "fd00::1" -> (16 bytes, None).
        text, _, zone = address.partition("%")
        try:
            addr = ipaddress.IPv6Address(text).packed
        except ValueError as exc:
            raise ValueError(f"not an IPv6 address: {address!r} ({exc})") from None
        return addr, self.ifunit(zone) if zone else None

    def rtadvd(
        self,
        ifname: str,
        *,
        prefix: str | Sequence[str],
        router_lifetime: int = 1800,
        valid_lifetime: int = 2592000,
        preferred_lifetime: int = 604800,
        mtu: int | None = None,
        min_interval: float = 200.0,
        max_interval: float = 600.0,
    ) -> None:
        """Send router advertisements on ``ifname`` (``rtadvd``): the
        ``prefix`` (or prefixes, ``"fd00:1::/64"``) for hosts to
        autoconfigure from, this host as their default router for
        ``router_lifetime`` seconds (0: not a default router), and ``mtu``
        when given. Advertisements go out every ``min_interval`` to
        ``max_interval`` seconds (the first three sooner) and in answer to
        router solicitations. It enables IPv6 on the interface (its
        link-local address is the advertisements' source), and survives the
        interface going down and up. Hosts act on them only with
        ``net.inet6.ip6.accept_rtadv`` 1 and forwarding off; the router
        itself should have ``net.inet6.ip6.forwarding`` 1.

        Raises:
            ValueError: a bad prefix or interval (the message says which).
            NetError: ``ENXIO`` (no such interface).
            trio.ClosedResourceError: if the host is shut down.
        """
        self._check_open()
        ifp = self.ifunit(ifname)
        prefixes = [prefix] if isinstance(prefix, str) else list(prefix)
        options = []
        for text in prefixes:
            try:
                network = ipaddress.IPv6Network(text)
            except ValueError as exc:
                raise ValueError(f"not an IPv6 prefix: {text!r} ({exc})") from None
            options.append(
                addrconf6.PrefixOption(
                    network.network_address.packed, network.prefixlen, True, True, valid_lifetime, preferred_lifetime
                )
            )
        config = addrconf6.RaConfig(
            prefixes=tuple(options),
            min_interval=min_interval,
            max_interval=max_interval,
            router_lifetime=router_lifetime,
            mtu=mtu,
        )
        self.inet6.nd6.rtadvd(ifp, config)
        if ifp.flags & (IfFlags.UP | IfFlags.RUNNING) == IfFlags.UP | IfFlags.RUNNING:
            self.inet6.enable(ifp)  # an advertising interface speaks IPv6 (a link-local source)
        log.info("rtadvd_started", host=self.name, ifname=ifname, prefixes=prefixes)

    def dhcp_server(
        self,
        ifname: str,
        *,
        pool: str,
        router: str | None = None,
        dns: str | Sequence[str] = (),
        domain: str | None = None,
        lease_time: int = 3600,
        mtu: int | None = None,
        next_server: str | None = None,
        boot_file: str | None = None,
        static: Mapping[str, str] | None = None,
    ) -> None:
        """Serve DHCP (RFC 2131) on ``ifname``: lease addresses of ``pool``
        (``"10.0.0.100-10.0.0.200"``, on a subnet of the interface) with
        the options given; BOOTP and relayed requests (``giaddr``) are
        served too. The first call starts the host's ``dhcpd`` thread;
        another call adds the pool of another interface (or replaces this
        one's) and starts the lease table afresh, forgetting the leases
        given so far: set every pool up before clients ask. Leases are in
        :meth:`dhcp_leases`.

        Args:
            router: offered as the default router (option 3).
            dns: DNS servers (option 6).
            domain: the domain name (option 15).
            lease_time: seconds (option 51; renewal at half, rebinding at
                seven eighths).
            mtu: the interface MTU (option 26).
            next_server, boot_file: the boot server (``siaddr``) and file
                (``file``, option 67) for network boot (PXE, iPXE).
            static: MAC -> address bindings (``"52:54:00:12:34:56":
                "10.0.0.10"``), on the subnet, inside or outside the pool.

        Raises:
            ValueError: a bad pool, address, MAC or value (the message says which).
            NetError: ``ENXIO`` (no such interface), ``EADDRNOTAVAIL`` (the
                interface has no address on the pool's subnet).
            trio.ClosedResourceError: if the host is shut down.
        """
        self._check_open()
        if self._dhcpd is None:
            self._dhcpd = Dhcpd(self)
        self._dhcpd.add_pool(
            ifname, pool=pool, router=router, dns=dns, domain=domain, lease_time=lease_time, mtu=mtu,
            next_server=next_server, boot_file=boot_file, static=static,
        )  # fmt: skip

    def dhcp_leases(self) -> list[DhcpLeaseRow]:
        """The DHCP server's leases, by address (format with
        ``format_dhcp_leases``); empty if it serves nothing."""
        return [] if self._dhcpd is None else self._dhcpd.rows()

    def dhclient(self, ifname: str, *, hostname: str | None = None) -> Dhclient:
        """Run a DHCP client (RFC 2131) on ``ifname`` (``dhclient``): it
        needs no address; once a lease is bound the interface has its
        address, the host a default route through the first router offered
        (unless it has one) and :attr:`resolver` the first DNS server. It
        renews and rebinds in time and takes all of it back if the lease is
        lost; an address the host already has on another interface is
        declined (DHCPDECLINE) and another asked for. Calling it again for the same interface returns the same
        client. Wait for the lease with ``await client.wait_bound()``.

        Args:
            hostname: sent to the server (option 12).

        Raises:
            NetError: ``ENXIO`` (no such interface), ``EOPNOTSUPP`` (it has
                no Ethernet address).
            trio.ClosedResourceError: if the host is shut down.
        """
        self._check_open()
        ifp = self.ifunit(ifname)
        if self._dhclient is None:
            self._dhclient = _DhclientAgent(self)
        return self._dhclient.add(ifp, hostname)

    def nat(self, outside: str | None, *, max_entries: int = 4096) -> None:
        """Masquerade (NAPT, RFC 3022): what this host forwards out of
        interface ``outside`` leaves from that interface's address, with
        TCP and UDP ports and ICMP echo identifiers mapped, and the answers
        find their way back; ICMP errors about those connections are
        translated both ways. ``None`` stops it. The host must forward
        (``net.inet.ip.forwarding`` 1). The rules, timeouts and what is not
        translated: :mod:`trionet.protocols.nat`; the connections:
        :meth:`nat_table`.

        Args:
            max_entries: the most connections at once; a new one past it
                evicts the least recently used (counted ``evicted``).

        Raises:
            NetError: ``ENXIO`` (no such interface).
            ValueError: ``max_entries`` below 1.
            trio.ClosedResourceError: if the host is shut down.
        """
        self._check_open()
        ip = self.inet.ip
        if outside is None:
            ip.nat_enable(None)
            return
        if not isinstance(max_entries, int) or isinstance(max_entries, bool) or max_entries < 1:
            raise ValueError(f"max_entries must be an int of at least 1, not {max_entries!r}")
        ip.nat_enable(self.ifunit(outside), max_entries=max_entries)
        log.info("nat_enabled", host=self.name, outside=outside, max_entries=max_entries)

    def nat_table(self) -> list[NatRow]:
        """The NAT's connections, as :class:`trionet.protocols.nat.NatRow`
        (format with :func:`trionet.protocols.nat.format_nat`); empty
        without NAT. Its counters: ``host.inet.ip.nat.statistics()``."""
        nat = self.inet.ip.nat
        return [] if nat is None else nat.rows(trio.current_time())

    def arp_add(self, address: str, lladdr: str, ifname: str | None = None) -> None:
        """``arp -s``: a permanent ARP entry, ``address`` at ``lladdr``
        (``"02:00:00:00:00:05"``): never aged, never replaced by what the
        network says (a server can reach a client's MAC before the client
        has an address, RFC 2131 4.1). Packets waiting for ``address`` go
        out at once. It replaces any entry for ``address``.

        Args:
            ifname: the interface ``address`` must be on (a connected
                subnet of it); default any interface's.

        Raises:
            ValueError: a bad address or MAC (a group MAC included).
            NetError: ``ENETUNREACH`` (``address`` is on no connected
                subnet, or not on ``ifname``'s), ``ENXIO`` (no such
                interface).
            trio.ClosedResourceError: if the host is shut down.
        """
        self._check_open()
        ip = ipaddress.IPv4Address(address).packed
        mac = ether_aton(lladdr)
        route = self.routes.lookup(ip)
        ifp = self.ifunit(ifname) if ifname is not None else None
        if route is None or route.gateway is not None or (ifp is not None and route.ifp is not ifp):
            where = f"{ifname}'s subnets" if ifname is not None else "a connected subnet"
            raise NetError(errno.ENETUNREACH, f"{address} is not on {where}")
        self.inet.arp.add_static(ip, mac)
        log.info("arp_added", host=self.name, address=address, lladdr=mac.hex(":"), ifname=route.ifp.name)

    def arp_delete(self, address: str) -> None:
        """``arp -d``: remove the entry for ``address`` (static or learned;
        packets waiting for it are dropped, counted).

        Raises:
            ValueError: a bad address.
            NetError: ``ESRCH`` (no entry).
            trio.ClosedResourceError: if the host is shut down.
        """
        self._check_open()
        if not self.inet.arp.cache.remove(ipaddress.IPv4Address(address).packed):
            raise NetError(errno.ESRCH, f"no ARP entry for {address}")

    def arp(self) -> list[ArpRow]:
        """``arp -an``: the ARP table, static entries marked ``permanent``
        (format with ``format_arp``)."""
        return self.inet.arp.rows()

    def ndp(self) -> list[NdpRow]:
        """``ndp -an``: the IPv6 neighbour caches (format with ``format_ndp``)."""
        return self.inet6.nd6.ndp_rows()

    def as_current(self) -> AbstractContextManager[Host]:
        """``with host.as_current():`` makes ``trio.socket`` use this host:
        ``trio.socket.socket``, ``trio.open_tcp_stream``,
        ``trio.serve_tcp``, ``trio.open_tcp_listeners``,
        ``trio.open_ssl_over_tcp_stream`` and ``trio.socket.getaddrinfo``,
        in this task and in every task started inside the block (Trio copies
        the spawning task's context into a new task).

        It takes effect once trionet's socket factory and resolver are
        installed for the run (:meth:`Network.install_trio_sockets
        <trionet.Network.install_trio_sockets>`). Blocks nest; the inner
        host wins.
        """
        return host_context(self)

    def udp_socket(self) -> UdpSocket:
        """A new, unbound UDP socket on this host.

        Raises:
            trio.ClosedResourceError: if the host is shut down.
        """
        self._check_open()
        return self.inet.udp.socket()

    async def open_tcp_stream(
        self, address: str, port: int, *, local_address: str | None = None
    ) -> TcpStream:
        """Connect to ``address:port`` over TCP, like :func:`trio.open_tcp_stream`.

        Args:
            address: an IPv4 address (there is no resolver).
            local_address: the source address; default the outgoing
                interface's.

        Raises:
            ConnectionRefusedError: the peer answered with a RST.
            TimeoutError: no answer after the SYN retries (about 2 minutes
                of Trio time).
            NetError: ``ENETUNREACH`` (no route), ``EADDRNOTAVAIL`` (no
                address, or no ephemeral port left); each error above is a
                :class:`NetError` too.
            ValueError: a malformed address or port.
            trio.ClosedResourceError: if the host is shut down.

        Cancellation: the half-open connection is reset.
        """
        self._check_open()
        return await open_tcp_stream(self.inet.tcp, address, port, local_address=local_address)

    async def open_tcp_listeners(
        self, port: int, *, host: str | None = None, backlog: int | None = None
    ) -> list[TcpListener]:
        """Listen on ``port`` (0: an ephemeral one), like :func:`trio.open_tcp_listeners`.

        Args:
            host: the local address to listen on; default all (0.0.0.0).
            backlog: established connections waiting for ``accept`` at most;
                capped by ``kern.ipc.somaxconn``.

        Raises:
            NetError: ``EADDRINUSE``, ``EADDRNOTAVAIL``.
            trio.ClosedResourceError: if the host is shut down.
        """
        self._check_open()
        return await open_tcp_listeners(self.inet.tcp, port, host=host, backlog=backlog)

    async def serve_tcp(
        self,
        handler: Callable[[TcpStream], Awaitable[object]],
        port: int,
        *,
        host: str | None = None,
        backlog: int | None = None,
        handler_nursery: Any = None,
        task_status: Any = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve ``handler(stream)`` per connection on ``port``, like
        :func:`trio.serve_tcp`: runs until cancelled, and ``nursery.start``
        gives the listeners.

        Raises:
            trio.ClosedResourceError: if the host is shut down.
        """
        self._check_open()
        await serve_tcp(
            self.inet.tcp,
            handler,
            port,
            host=host,
            backlog=backlog,
            handler_nursery=handler_nursery,
            task_status=task_status,
        )

    async def serve_dns(
        self,
        zone: DnsZone | Mapping[str, Any],
        *,
        port: int = DNS_PORT,
        task_status: Any = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve ``zone`` over DNS (RFC 1035) on UDP and TCP ``port`` of
        every address of this host, until cancelled; ``nursery.start``
        returns the :class:`~trionet.DnsServer` (its ``statistics()``).
        What it answers: :mod:`trionet._net._dns`'s rules.

        Args:
            zone: a :class:`~trionet.DnsZone`, or a mapping name ->
                address(es), taken as ``DnsZone(zone)`` (names under the root).

        Cancellation: the server's sockets are closed.

        Raises:
            OSError: ``EADDRINUSE`` (the port is taken).
            trio.ClosedResourceError: if the host is shut down.
        """
        self._check_open()
        if not isinstance(zone, DnsZone):
            zone = DnsZone(zone)
        await DnsServer(self, zone, port).serve(task_status=task_status)

    async def resolve(self, name: str) -> list[str]:
        """The IPv4 addresses of ``name`` from the DNS server
        :attr:`resolver` (UDP, retried; TCP if the answer is truncated).

        Cancellation: nothing remains (the query's sockets are closed).

        Raises:
            socket.gaierror: ``EAI_NONAME`` (NXDOMAIN, or no address),
                ``EAI_AGAIN`` (no resolver, no answer in time, SERVFAIL or
                REFUSED), ``EAI_FAIL`` (another error).
            trio.ClosedResourceError: if the host is shut down.
        """
        self._check_open()
        return await dns_resolve(self, name)

    def netstat(self) -> list[NetstatRow]:
        """``netstat -an -p tcp``: listeners and connections with their
        states (format with :func:`~trionet.format_netstat`)."""
        return self.inet.tcp.netstat()

    def route_add(self, dest: str, gateway: str | None = None, *, ifname: str | None = None) -> None:
        """``route add``: a route to ``dest`` (``"10.1.0.0/16"``, ``"default"``,
        or IPv6: ``"fd00:2::/64"``, with an IPv6 ``gateway``, which may be
        link-local with its interface, ``"fe80::1%vnic0"``; an IPv6
        ``"default"`` needs an IPv6 gateway or ``ifname`` and a ``:`` in
        ``dest``, so write ``"::/0"``).

        Args:
            gateway: the next hop; it must be on a connected subnet (its
                interface is found by lookup) unless ``ifname`` is given.
            ifname: the interface, for a route with no gateway (a link
                route) or to pin the gateway's interface.

        Raises:
            NetError: ``ENETUNREACH`` (gateway not on a connected subnet),
                ``EEXIST`` (a route to ``dest`` exists), ``ENXIO`` (bad
                interface).
            ValueError: for a malformed ``dest`` or ``gateway``.
            trio.ClosedResourceError: if the host is shut down.
        """
        self._check_open()
        inet6 = (isinstance(dest, str) and ":" in dest) or (isinstance(gateway, str) and ":" in gateway)
        network = parse_network(dest, inet6=inet6)
        table = self.routes6 if inet6 else self.routes
        zone_ifp = None
        if gateway is None:
            gw = None
        elif inet6:
            gw, zone_ifp = self._scoped6(gateway)
        else:
            gw = ipaddress.IPv4Address(gateway).packed
        if ifname is not None:
            ifp = self.ifunit(ifname)
        elif zone_ifp is not None:
            ifp = zone_ifp
        elif gw is not None:
            via = table.lookup(gw)
            if via is None or via.gateway is not None:
                raise NetError(errno.ENETUNREACH, f"gateway {gateway} is not on a connected subnet")
            ifp = via.ifp
        else:
            raise ValueError("route_add needs a gateway or an ifname")
        table.add(Route(network, gw, ifp, static=True))
        log.info("route_added", host=self.name, dest=str(network), gateway=gateway, ifname=ifp.name)

    def route_delete(self, dest: str) -> None:
        """``route delete``.

        Raises:
            NetError: ``ESRCH`` if there is no such route.
            trio.ClosedResourceError: if the host is shut down.
        """
        self._check_open()
        network = parse_network(dest)
        (self.routes6 if network.version == 6 else self.routes).delete(network)

    def netstat_r(self) -> list[RouteRow]:
        """``netstat -rn``: the IPv4 routes, then the IPv6 ones (format with
        ``format_netstat_r``)."""
        return self.routes.rows() + self.routes6.rows()

    def netstat_i(self) -> list[NetstatIRow]:
        """``netstat -i``: one row per interface (format with ``format_netstat_i``)."""
        return [netstat_i_row(ifp) for ifp in self.ifnets()]


def _group_address(arg: Any) -> bytes:
    if not isinstance(arg, (bytes, bytearray, memoryview)):
        raise TypeError(f"group address must be bytes, not {arg!r}")
    addr = bytes(arg)
    if len(addr) != ETHER_ADDR_LEN or not addr[0] & 1:
        raise NetError(errno.EINVAL, f"{addr.hex(':')} is not a multicast address")
    return addr


@asynccontextmanager
async def open_host(
    name: str, *, ncpus: int = 2, invariants: bool = True
) -> AsyncIterator[Host]:
    """Start a host whose kernel threads run in a nursery this block owns.

    Leaving the block, normally or by an exception, cancels every thread of
    the host (and of its drivers) and waits for them all to finish.

    Args:
        name: the host name.
        ncpus: CPUs to model (netisr, ifnet and softclock threads per CPU).
        invariants: check kernel assertions; misuse raises
            :class:`~trionet.KernelPanic`.

    Raises:
        ValueError: if ``ncpus`` is not a positive int.
    """
    async with open_kernel(Host, name, ncpus=ncpus, invariants=invariants) as host:
        yield host

