"""DHCP glue: a host's server (``dhcpd``) and client (``dhclient``).

Both are what BSD runs as daemons: programs on the host's UDP sockets, here
one kernel thread each (``dhcpd``, ``dhclient``), so they show in ``ps``
and end with the host. The protocol is the sans-IO machines'
(:mod:`trionet.protocols.dhcp_server`, :mod:`trionet.protocols.dhcp_client`);
this module moves their datagrams and timers and does what they decide.

Server (:meth:`Host.dhcp_server <trionet.Host.dhcp_server>` adds a pool on
one interface; the first call starts the thread): one socket on port 67 of
every address (broadcasts included). Each request is handed to the machine
with the interface it arrived on (:meth:`UdpSocket.recvmsg
<trionet.UdpSocket.recvmsg>`); the answer leaves on that interface
(:meth:`UdpSocket.sendmsg <trionet.UdpSocket.sendmsg>`), or by routing when
it goes to a relay. An answer the client must get by unicast before it has
an address (RFC 2131 section 4.1, broadcast bit clear: iPXE, for one) first
teaches ARP the client's MAC for the address offered (``Arp.learn``, a
dynamic entry, as dnsmasq does with ``SIOCSARP``). The machine's leases
expire at its deadlines.

Client (:meth:`Host.dhclient <trionet.Host.dhclient>`, one machine per
interface, one thread and one socket on port 68 for all of them): messages
leave on the machine's interface, from 0.0.0.0 until it has an address, with
the broadcast bit set (this stack, like most, cannot take a unicast to an
address it does not have yet). A lease bound configures the interface: the
address and its subnet (``ifconfig``), a default route through the first
router (unless one exists), and the host's resolver (the first DNS server);
a lease lost (expired, NAK, released) takes back exactly what it set. An
address the host cannot take (another of its interfaces has it) is declined
(DHCPDECLINE), and the client asks again ten seconds later.

Rules: nothing here runs on the packet path; a send that fails (interface
down, queue full) is counted (``send_errors``) and the machine's
retransmission timer covers it. Every datagram reaches a machine, which
counts what it drops (``drops``), or is counted here: a client's datagram
from an interface without a client (``unclaimed``). Only the wait for a
datagram is cut short by a timer, never the answer to one.

DragonFly: ``sbin/dhclient`` (the client daemon); the server is ISC
``dhcpd`` or dnsmasq in ports.
"""

from __future__ import annotations

import errno
import ipaddress
import math
import random
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import attrs
import structlog
import trio

from .._exceptions import NetError
from ..protocols import dhcp
from ..protocols.dhcp_client import Configure, DhcpClient, DhcpLease, Send, Unconfigure
from ..protocols.dhcp_server import DhcpPool, DhcpServer, Reply
from ._inaddr import ether_aton, inet_ntoa

if TYPE_CHECKING:
    from .._kern._thread import KThread
    from ._host import Host
    from ._if import Ifnet
    from ._udp import UdpSocket

__all__ = [
    "DhcpClientLease",
    "DhcpLeaseRow",
    "Dhclient",
    "Dhcpd",
    "format_dhcp_leases",
]

log = structlog.get_logger(__name__)

BROADCAST = "255.255.255.255"


def _aton(text: str, what: str) -> bytes:
    try:
        return ipaddress.IPv4Address(text).packed
    except (ValueError, TypeError):
        raise ValueError(f"{what} must be an IPv4 address such as '10.0.0.1', not {text!r}") from None


def parse_range(text: str) -> tuple[bytes, bytes]:
    """``"10.0.0.100-10.0.0.200"`` -> the first and last address (4 bytes each).

    Raises:
        ValueError: not two IPv4 addresses, first no greater than last.
    """
    first, sep, last = text.partition("-") if isinstance(text, str) else ("", "", "")
    try:
        lo, hi = ipaddress.IPv4Address(first.strip()), ipaddress.IPv4Address(last.strip())
    except ValueError:
        lo = hi = None  # type: ignore[assignment]
    if not sep or lo is None or hi is None or lo > hi:
        raise ValueError(f"a pool is 'first-last' such as '10.0.0.100-10.0.0.200', not {text!r}")
    return lo.packed, hi.packed


####################################################################
# Server
####################################################################


@attrs.frozen
class DhcpLeaseRow:
    """One lease as :meth:`Host.dhcp_leases <trionet.Host.dhcp_leases>` shows it.

    Attributes:
        address: the leased IPv4 address.
        lladdr: the client's MAC.
        hostname: the name the client gave (option 12), if any.
        state: ``offered``, ``bound``, ``released``, ``expired`` or ``declined``.
        expires: seconds until the state ends (0 when it has).
        ifname: the interface of the pool.
    """

    address: str
    lladdr: str
    hostname: str | None
    state: str
    expires: float
    ifname: str


def format_dhcp_leases(rows: Sequence[DhcpLeaseRow]) -> str:
    """Rows as a table, one lease a line::

        address          lladdr             state     expires  netif  hostname
        10.0.0.100       52:54:00:12:34:56  bound        3599  vnic0  guest
    """
    lines = [f"{'address':<16} {'lladdr':<18} {'state':<9} {'expires':>7}  {'netif':<6} hostname"]
    for r in rows:
        lines.append(
            f"{r.address:<16} {r.lladdr:<18} {r.state:<9} {r.expires:>7.0f}  {r.ifname:<6} {r.hostname or '-'}"
        )
    return "\n".join(lines) + "\n"


class Dhcpd:
    """A host's DHCP server: its pools, the machine and the thread."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self._pools: dict[str, DhcpPool] = {}
        self.server = DhcpServer([])
        self.send_errors = 0
        self._thread: KThread | None = None

    def add_pool(
        self,
        ifname: str,
        *,
        pool: str,
        router: str | None = None,
        dns: Sequence[str] = (),
        domain: str | None = None,
        lease_time: int = 3600,
        mtu: int | None = None,
        next_server: str | None = None,
        boot_file: str | None = None,
        static: Mapping[str, str] | None = None,
    ) -> None:
        """Serve ``pool`` on ``ifname`` (see :meth:`Host.dhcp_server
        <trionet.Host.dhcp_server>` for the arguments and errors)."""
        host = self.host
        ifp = host.ifunit(ifname)
        first, last = parse_range(pool)
        ia = next((ia for ia in ifp.addrs if ipaddress.IPv4Address(first) in ia.network), None)
        if ia is None:
            have = ", ".join(str(a.network) for a in ifp.addrs) or "none"
            raise NetError(errno.EADDRNOTAVAIL, f"{ifname} has no address on the subnet of {pool} (its subnets: {have})")
        network = ia.network
        if ipaddress.IPv4Address(last) not in network:
            raise ValueError(f"pool {pool} does not fit {network}")
        if not isinstance(lease_time, int) or isinstance(lease_time, bool) or not 60 <= lease_time <= 2**31:
            raise ValueError(f"lease_time must be an int of seconds from 60 to 2**31, not {lease_time!r}")
        if mtu is not None and (not isinstance(mtu, int) or not 68 <= mtu <= 65535):
            raise ValueError(f"mtu must be an int from 68 to 65535, not {mtu!r}")
        if isinstance(dns, str):
            dns = [dns]
        bindings: dict[bytes, bytes] = {}
        for mac, address in (static or {}).items():
            addr = _aton(address, "a static address")
            if ipaddress.IPv4Address(addr) not in network:
                raise ValueError(f"static address {address} is not on {network}")
            bindings[ether_aton(mac)] = addr
        self._pools[ifp.name] = DhcpPool(
            interface=ifp.name,
            server_id=ia.addr,
            network=network,
            first=first,
            last=last,
            routers=() if router is None else (_aton(router, "router"),),
            dns=tuple(_aton(d, "a DNS server") for d in dns),
            domain=domain,
            lease_time=lease_time,
            mtu=mtu,
            next_server=None if next_server is None else _aton(next_server, "next_server"),
            boot_file=boot_file,
            static=bindings,
        )
        # The machine's table is per pool: a new set of pools starts it afresh.
        self.server = DhcpServer(list(self._pools.values()))
        if self._thread is None:
            self._thread = host.kthread_create("dhcpd", self._run)
        log.info("dhcpd_pool_added", host=host.name, ifname=ifp.name, pool=pool, network=str(network))

    def rows(self) -> list[DhcpLeaseRow]:
        now = trio.current_time()
        return [
            DhcpLeaseRow(
                inet_ntoa(lease.address),
                lease.chaddr.hex(":"),
                lease.hostname,
                lease.state,
                max(0.0, lease.expires - now),
                lease.interface,
            )
            for lease in self.server.leases(now)
        ]

    async def _run(self, thread: KThread) -> None:
        with self.host.udp_socket() as sock:
            sock.bind(("0.0.0.0", dhcp.SERVER_PORT))
            sock.broadcast = True
            while True:
                server = self.server
                deadline = server.next_deadline()
                got = None
                # Only the wait is cut short by a lease's deadline, never an answer.
                with trio.move_on_at(math.inf if deadline is None else deadline):
                    got = await sock.recvmsg()
                if got is not None:
                    reply = server.handle(got.data, trio.current_time(), got.ifname)
                    if reply is not None:
                        await self._send(sock, reply, got.ifname)
                server.expire(trio.current_time())

    async def _send(self, sock: UdpSocket, reply: Reply, ifname: str) -> None:
        dst = reply.dst
        if reply.lladdr is not None:
            self.host.inet.arp.learn(dst, reply.lladdr)
        relay = reply.port == dhcp.SERVER_PORT
        try:
            await sock.sendmsg(reply.message.emit(), (inet_ntoa(dst), reply.port), ifname=None if relay else ifname)
        except NetError as exc:
            self.send_errors += 1
            log.debug("dhcpd_send_failed", host=self.host.name, error=exc.strerror)


####################################################################
# Client
####################################################################


@attrs.frozen
class DhcpClientLease:
    """What a client was given (:attr:`Dhclient.lease`).

    Attributes:
        address: ``"a.b.c.d/len"``, as set on the interface.
        routers, dns: the routers and DNS servers offered.
        domain: the domain name offered, if any.
        server: the server that gave the lease.
        expires: seconds until it expires (if not renewed).
    """

    address: str
    routers: tuple[str, ...]
    dns: tuple[str, ...]
    domain: str | None
    server: str
    expires: float


class Dhclient:
    """A DHCP client on one interface (:meth:`Host.dhclient <trionet.Host.dhclient>`).

    Attributes:
        ifname: the interface.
        machine: the protocol machine (its ``state``, ``statistics()``).
    """

    def __init__(self, agent: _DhclientAgent, ifp: Ifnet, hostname: str | None) -> None:
        self._agent = agent
        self.ifname = ifp.name
        self.ifp = ifp
        rng = random.Random(f"dhclient:{agent.host.name}:{ifp.name}")
        self.machine = DhcpClient(ifp.lladdr, rng, hostname=hostname)
        self._bound: DhcpLease | None = None
        self._routes: list[str] = []  # what this lease added, to take back
        self._set_resolver: str | None = None
        self._lot = trio.lowlevel.ParkingLot()

    def __repr__(self) -> str:
        return f"<Dhclient {self.ifname} {self.state}>"

    @property
    def state(self) -> str:
        """The machine's state: ``INIT``, ``SELECTING``, ``REQUESTING``,
        ``BOUND``, ``RENEWING``, ``REBINDING``..."""
        return self.machine.state.name

    @property
    def lease(self) -> DhcpClientLease | None:
        """The lease in force (configured on the interface), or ``None``."""
        lease = self._bound
        if lease is None:
            return None
        return DhcpClientLease(
            f"{inet_ntoa(lease.address)}/{lease.prefixlen}",
            tuple(map(inet_ntoa, lease.routers)),
            tuple(map(inet_ntoa, lease.dns)),
            lease.domain,
            inet_ntoa(lease.server_id),
            max(0.0, lease.expires - trio.current_time()),
        )

    async def wait_bound(self) -> DhcpClientLease:
        """Wait until a lease is in force; return it.

        Cancellation: nothing to undo (the client goes on).
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            lease = self.lease
            if lease is not None:
                await trio.lowlevel.cancel_shielded_checkpoint()
                return lease
            await self._lot.park()

    # What the machine asks of the host ----------------------------------

    def configure(self, lease: DhcpLease) -> bool:
        # Set what the lease gives; False if the address cannot be set here
        # (another interface has it): the caller declines the lease.
        host, ifname = self._agent.host, self.ifname
        old = self._bound
        if old is not None and old.address != lease.address:
            self.unconfigure(old)
        cidr = f"{inet_ntoa(lease.address)}/{lease.prefixlen}"
        if old is None or old.address != lease.address:
            try:
                host.ifconfig(ifname, cidr)
            except NetError as exc:
                log.warning("dhclient_address_refused", host=host.name, ifname=ifname, address=cidr, error=exc.strerror)
                self._agent.refused += 1
                return False
            if lease.routers and host.routes.lookup(bytes(4)) is None:
                try:
                    host.route_add("default", inet_ntoa(lease.routers[0]), ifname=ifname)
                    self._routes.append("default")
                except (NetError, ValueError) as exc:
                    log.warning("dhclient_route_refused", host=host.name, ifname=ifname, error=str(exc))
            if lease.dns:
                self._set_resolver = host.resolver = inet_ntoa(lease.dns[0])
            log.info("dhclient_bound", host=host.name, ifname=ifname, address=cidr, server=inet_ntoa(lease.server_id))
        self._bound = lease
        self._lot.unpark_all()
        return True

    def unconfigure(self, lease: DhcpLease) -> None:
        host, ifname = self._agent.host, self.ifname
        if self._bound is None:
            return
        self._bound = None
        for dest in self._routes:
            try:
                host.route_delete(dest)
            except NetError:
                pass  # gone with the address, or deleted by hand
        self._routes.clear()
        if self._set_resolver is not None and host.resolver == self._set_resolver:
            host.resolver = None
        self._set_resolver = None
        try:
            host.inet.in_delete(self.ifp, lease.address)
        except NetError:
            pass  # deleted by hand
        log.info("dhclient_unbound", host=host.name, ifname=ifname, address=inet_ntoa(lease.address))


class _DhclientAgent:
    # The host's one client thread and socket, for every interface's machine.

    def __init__(self, host: Host) -> None:
        self.host = host
        self.clients: dict[str, Dhclient] = {}
        self.send_errors = 0
        self.refused = 0
        #: Datagrams for port 68 from an interface without a client.
        self.unclaimed = 0
        self._thread: KThread | None = None
        self._wakeup = trio.lowlevel.ParkingLot()

    def add(self, ifp: Ifnet, hostname: str | None) -> Dhclient:
        client = self.clients.get(ifp.name)
        if client is not None:
            return client
        if len(ifp.lladdr) != 6:
            raise NetError(errno.EOPNOTSUPP, f"{ifp.name} has no Ethernet address: DHCP needs one")
        client = self.clients[ifp.name] = Dhclient(self, ifp, hostname)
        if self._thread is None:
            self._thread = self.host.kthread_create("dhclient", self._run)
        else:
            self._wakeup.unpark_all()
        return client

    async def _run(self, thread: KThread) -> None:
        with self.host.udp_socket() as sock:
            sock.bind(("0.0.0.0", dhcp.CLIENT_PORT))
            sock.broadcast = True
            started: set[str] = set()
            while True:
                now = trio.current_time()
                for name, client in list(self.clients.items()):
                    if name not in started:
                        started.add(name)
                        await self._act(sock, client, client.machine.start(now))
                deadline = min((c.machine.next_deadline() for c in self.clients.values()), default=math.inf)
                got = None
                with trio.move_on_at(deadline):
                    async with trio.open_nursery() as race:
                        # A datagram, or a new interface to start (add()).
                        async def receive() -> None:
                            nonlocal got
                            got = await sock.recvmsg()
                            race.cancel_scope.cancel()

                        async def new_client() -> None:
                            await self._wakeup.park()
                            race.cancel_scope.cancel()

                        race.start_soon(receive)
                        race.start_soon(new_client)
                now = trio.current_time()
                if got is not None:
                    client = self.clients.get(got.ifname)
                    if client is None:
                        self.unclaimed += 1
                    else:
                        await self._act(sock, client, client.machine.receive(got.data, now))
                for client in list(self.clients.values()):
                    if client.ifname in started and client.machine.next_deadline() <= now:
                        await self._act(sock, client, client.machine.timeout(now))

    async def _act(self, sock: UdpSocket, client: Dhclient, actions: Sequence[object]) -> None:
        for action in actions:
            if isinstance(action, Send):
                try:
                    await sock.sendmsg(action.message.emit(), (inet_ntoa(action.dst), dhcp.SERVER_PORT), ifname=client.ifname)
                except NetError as exc:
                    self.send_errors += 1
                    log.debug("dhclient_send_failed", host=self.host.name, ifname=client.ifname, error=exc.strerror)
            elif isinstance(action, Configure):
                if not client.configure(action.lease):
                    # In use here already: DHCPDECLINE, and ask again later (RFC 2131 3.1 step 5).
                    await self._act(sock, client, client.machine.decline(trio.current_time()))
            elif isinstance(action, Unconfigure):
                client.unconfigure(action.lease)
