"""UDP glue and UDP sockets.

Input (:meth:`Udp.input`, on the protocol thread the datagram's 4-tuple
hashes to): check the header and checksum, find the socket (a connected one
matching both ends first, then one bound to the port and the destination
address or to 0.0.0.0), and append the datagram to its receive buffer; with
no socket, answer ICMP port unreachable (not for broadcasts) and count
``noport``. A full receive buffer drops the datagram, counted on the socket
(``drops``) and in ``fullsock``.

ICMP errors (:meth:`Udp.ctlinput`, UDP's entry in IP's protocol switch): a
destination unreachable about a datagram a *connected* socket sent is
reported on that socket's next send or receive, ``ECONNREFUSED`` for port
unreachable and ``EHOSTUNREACH`` for the other codes (BSD reports errors
only to connected sockets, since an unconnected one cannot tell which of
its destinations failed).

Output (:meth:`UdpSocket.sendto`): the socket's route cache
(:meth:`Ip.route_cached <trionet._net._ip.Ip.route_cached>`) gives the
interface, next hop and source in one decision, taken again only after a
route or address change or for another destination; the checksum is
computed with that source, and IP output sends on the same route.

IPv6: the same sockets take IPv6 addresses (``("fd00::1", 53)``). A
socket's family is that of its first bind, connect or send (each family has
its own port space, as with BSD's default ``IPV6_V6ONLY``); IPv6 input
(:meth:`Udp.input6`) also drops a zero checksum, which IPv6 forbids (RFC
8200 section 8.1), and ICMPv6 errors reach :meth:`Udp.ctlinput6`.

Sockets follow Trio's conventions: ``bind``, ``connect`` and ``close`` are
plain calls; ``sendto``/``send`` and ``recvfrom``/``recv`` are async
(``recvfrom`` waits for a datagram; both checkpoint); after ``close`` every
call raises :class:`trio.ClosedResourceError`, and a task waiting in
``recvfrom`` is woken with it. ``async with sock:`` closes it.

Interfaces (what a DHCP server or client needs): :meth:`UdpSocket.recvmsg`
tells the address a datagram was sent to and the interface it arrived on
(``IP_PKTINFO``, BSD's ``IP_RECVDSTADDR`` and ``IP_RECVIF``);
:meth:`UdpSocket.sendmsg` sends one datagram on a named interface and
:meth:`UdpSocket.bind_device` ties the socket to one (``SO_BINDTODEVICE``):
it then hears only that interface, and everything it sends leaves there,
255.255.255.255 included (from 0.0.0.0 while the interface has no address).

Bounds: a socket's receive buffer holds at most ``net.inet.udp.recvspace``
bytes of payload (42080, BSD's default); ephemeral ports come from 49152..
65535 in order, skipping ports in use.

*Divergence:* in DragonFly a socket call is a message to the protocol thread
that owns the connection. Here ``sendto`` runs UDP and IP output in the
caller's task (a plain function between two checkpoints, so it cannot
interleave with protocol input), and receive buffers are read by the
application task directly; the result is the same ordering with one hop less.

DragonFly: ``sys/netinet/udp_usrreq.c`` (``udp_input``, ``udp_output``,
``udp_ctlinput``).
"""

from __future__ import annotations

import errno
from collections import deque
from typing import TYPE_CHECKING, Any

import attrs
import trio

from .._exceptions import NetError
from ..protocols import icmp as icmp_proto
from ..protocols import icmpv6 as icmp6_proto
from ..protocols import udp as udp_proto
from ..protocols.errors import RemoteProtocolError
from ..protocols.ipv4 import IPPROTO_UDP, IPv4Header
from ._ether import Mbuf
from ._inaddr import check_port, inet_ntop, inet_pton
from ._layer import ProtoLayer
from ._ports import EphemeralPorts
from ._route import RouteCache

if TYPE_CHECKING:
    from ._icmp import Icmp
    from ._icmp6 import Icmp6
    from ._if import Ifnet
    from ._ip import Ip
    from ._ip6 import Ip6

__all__ = ["Udp", "UdpDatagram", "UdpSocket", "UdpSocketStatistics", "UdpStatistics"]

Address = tuple[str, int]
ANY = bytes(4)
ANY6 = bytes(16)
BROADCAST = b"\xff\xff\xff\xff"


def _addr(address: Address) -> tuple[bytes, int]:
    if not isinstance(address, tuple) or len(address) != 2:
        raise TypeError(f"address must be a (host, port) tuple, not {address!r}")
    host, port = address
    check_port(port)
    if not isinstance(host, str):
        raise TypeError(f"host must be a str, not {host!r}")
    return inet_pton(host), port


def _str(addr: bytes, port: int) -> Address:
    return inet_ntop(addr), port


def _wildcard(addr: bytes) -> bytes:
    # The unspecified address of addr's family.
    return ANY if len(addr) == 4 else ANY6


@attrs.frozen
class UdpDatagram:
    """A datagram as :meth:`UdpSocket.recvmsg` returns it.

    Attributes:
        data: the payload.
        address: the sender's ``(addr, port)``.
        destination: the ``(addr, port)`` it was sent to: one of the host's
            addresses, a subnet broadcast, or 255.255.255.255 (``IP_PKTINFO``'s
            ``ipi_addr``, BSD's ``IP_RECVDSTADDR``).
        ifname: the interface it arrived on (``ipi_ifindex``, ``IP_RECVIF``).
    """

    data: bytes
    address: Address
    destination: Address
    ifname: str


@attrs.frozen
class UdpSocketStatistics:
    """A socket's counters: datagrams received, sent, and dropped (buffer full)."""

    received: int
    sent: int
    drops: int
    queued_bytes: int


@attrs.frozen
class UdpStatistics:
    """A host's UDP counters (``netstat -s -p udp``).

    Attributes:
        received: datagrams that reached UDP input.
        drops: reason -> count, for every one not delivered: the header
            checks' reasons, ``noport`` (no socket; answered with ICMP port
            unreachable unless broadcast) and ``fullsock`` (the socket's
            buffer was full).
    """

    received: int
    drops: dict[str, int]


class UdpSocket:
    """A UDP socket of a host. Made by :meth:`Host.udp_socket <trionet.Host.udp_socket>`.

    Attributes:
        broadcast: ``SO_BROADCAST``: allow sending to a broadcast address.
    """

    def __init__(self, udp: Udp) -> None:
        self._udp = udp
        self.broadcast = False
        self._local: tuple[bytes, int] | None = None
        self._remote: tuple[bytes, int] | None = None
        # (payload, (source, sport), destination, arrival interface)
        self._queue: deque[tuple[bytes, tuple[bytes, int], bytes, Ifnet]] = deque()
        self._device: Ifnet | None = None  # SO_BINDTODEVICE
        self._queued_bytes = 0
        self._lot = trio.lowlevel.ParkingLot()
        self._sleeping = False  # the receiver is parked on _lot
        self._receiving = False
        self._closed = False
        self._error: int | None = None
        self._received = self._sent = self._drops = 0
        self._ro = RouteCache()

    def __repr__(self) -> str:
        local = _str(*self._local) if self._local else None
        return f"<UdpSocket {local}>"

    def _check_open(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the socket is closed")

    def bind(self, address: Address) -> None:
        """Bind to ``(addr, port)``; port 0 picks an ephemeral port.

        Raises:
            NetError: ``EADDRINUSE``, ``EADDRNOTAVAIL`` (not this host's
                address), ``EINVAL`` (already bound).
        """
        self._check_open()
        if self._local is not None:
            raise NetError(errno.EINVAL, "the socket is already bound")
        addr, port = _addr(address)
        self._udp._bind(self, addr, port)

    def connect(self, address: Address) -> None:
        """Set the default destination and accept datagrams only from it.

        A socket not bound to an address gets the source its route to
        ``address`` gives (then :meth:`getsockname` shows it), as BSD's
        ``in_pcbconnect`` does; without a route it stays on 0.0.0.0.
        """
        self._check_open()
        addr, port = _addr(address)
        if port == 0:
            raise NetError(errno.EADDRNOTAVAIL, "cannot connect to port 0")
        udp = self._udp
        if self._local is None:
            udp._bind(self, _wildcard(addr), 0)
        local = self._local
        assert local is not None
        udp._check_family(local[0], addr)
        if local[0] == _wildcard(addr) and addr != BROADCAST and addr not in udp._broadcasts:
            try:
                _, _, src = udp.ip_for(addr).route(addr)
            except NetError:
                pass
            else:
                self._local = (src, local[1])  # DragonFly: in_pcbladdr()
        self._remote = (addr, port)

    def bind_device(self, ifname: str | None) -> None:
        """``SO_BINDTODEVICE``: hear and send on interface ``ifname`` only
        (``None``: any interface again).

        Datagrams that arrive on another interface are not this socket's
        (another socket, or an ICMP port unreachable, takes them). Every
        datagram it sends leaves through ``ifname``: to the gateway of the
        destination's route when that route is on ``ifname``, else to the
        destination on its link; 255.255.255.255 is broadcast there, from
        0.0.0.0 if the interface has no address yet (a DHCP client).

        Raises:
            NetError: ``ENXIO`` (no such interface).
            trio.ClosedResourceError: after ``close``.
        """
        self._check_open()
        self._device = None if ifname is None else self._udp.ip.host.ifunit(ifname)

    def getsockname(self) -> Address:
        """The bound ``(addr, port)`` (``("0.0.0.0", 0)`` if not bound)."""
        return _str(*self._local) if self._local else ("0.0.0.0", 0)

    def getpeername(self) -> Address:
        """The connected ``(addr, port)``.

        Raises:
            NetError: ``ENOTCONN`` (not connected).
        """
        if self._remote is None:
            raise NetError(errno.ENOTCONN, "the socket is not connected")
        return _str(*self._remote)

    async def sendto(self, data: bytes, address: Address) -> None:
        """Send one datagram to ``address``.

        Cancellation: if cancelled, nothing was sent; otherwise the datagram
        went to IP output (which may still drop it, counted, as any
        datagram).

        Raises:
            NetError: ``ECONNREFUSED`` (or ``EHOSTUNREACH``) if a connected
                socket's earlier datagram drew an ICMP unreachable not yet
                reported (reporting clears it), ``EACCES`` (broadcast
                without ``broadcast``), ``EMSGSIZE`` (over 65507 bytes), and
                what IP output raises (``ENETUNREACH``, ``ENOBUFS``...).
                Each is also the builtin :class:`OSError` subclass for its
                errno (:class:`ConnectionRefusedError`, :class:`PermissionError`...).
            trio.ClosedResourceError: after ``close``.
        """
        addr, port = _addr(address)
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._closed:
            raise trio.ClosedResourceError("the socket is closed")
        if self._error is not None:
            self._check_error()
        self._output(bytes(data), addr, port)
        await trio.lowlevel.cancel_shielded_checkpoint()

    async def sendmsg(self, data: bytes, address: Address, *, ifname: str | None = None) -> None:
        """:meth:`sendto`, on interface ``ifname`` if given (``IP_PKTINFO``'s
        ``ipi_ifindex``): the datagram leaves there as from a socket bound
        to it (:meth:`bind_device`); a DHCP server answers each client on
        the interface its request came in on.

        Errors and cancellation as :meth:`sendto`, and ``ENXIO`` (no such
        interface).
        """
        addr, port = _addr(address)
        await trio.lowlevel.checkpoint_if_cancelled()
        self._check_open()
        device = None if ifname is None else self._udp.ip.host.ifunit(ifname)
        self._check_error()
        self._output(bytes(data), addr, port, device)
        await trio.lowlevel.cancel_shielded_checkpoint()

    async def send(self, data: bytes) -> None:
        """Send one datagram to the connected address (errors and
        cancellation as :meth:`sendto`)."""
        await trio.lowlevel.checkpoint_if_cancelled()
        self._check_open()
        self._check_error()
        if self._remote is None:
            raise NetError(errno.EDESTADDRREQ, "the socket is not connected")
        self._output(bytes(data), *self._remote)
        await trio.lowlevel.cancel_shielded_checkpoint()

    def _check_error(self) -> None:
        # DragonFly: sosendudp() returns a pending so_error, and clears it,
        # before sending anything (Linux does the same, sock_error()).
        if self._error is not None:
            err, self._error = self._error, None
            raise NetError(err)

    def _output(self, data: bytes, addr: bytes, port: int, device: Ifnet | None = None) -> None:
        if port == 0:
            raise NetError(errno.EADDRNOTAVAIL, "cannot send to port 0")
        if len(data) > 65507:
            raise NetError(errno.EMSGSIZE, f"{len(data)} bytes do not fit a UDP datagram")
        udp = self._udp
        if self._local is None:
            udp._bind(self, _wildcard(addr), 0)
        local = self._local
        assert local is not None
        if len(addr) == 16:
            udp._check_family(local[0], addr)
            ip = udp.ip6
            want = local[0] if local[0] != ANY6 else None
        else:
            if len(local[0]) != 4:
                udp._check_family(local[0], addr)
            if (addr == BROADCAST or addr in udp._broadcasts) and not self.broadcast:
                raise NetError(errno.EACCES, "sending to a broadcast address needs broadcast=True")
            ip = udp.ip
            want = local[0] if local[0] != ANY else None
        # The checksum is left to IP output (csum=True): the interface's
        # card, or IP itself once its route choice (cached in the socket,
        # BSD's inp_route) fixed the source the pseudo-header covers.
        datagram = udp_proto.emit_datagram(local[1], port, data)
        device = device or self._device
        if device is None:
            ip.output(addr, IPPROTO_UDP, datagram, src=want, ro=self._ro, csum=True)
        else:
            ip.output(addr, IPPROTO_UDP, datagram, src=want, ifp=device, csum=True)
        self._sent += 1

    async def recvfrom(self) -> tuple[bytes, Address]:
        """Wait for and return one datagram and its sender.

        One task receives at a time, as on a Trio socket: a second one
        raises :class:`trio.BusyResourceError` (several readers would race
        for each datagram; give each its own socket or hand datagrams out
        from one reader).

        Cancellation: if cancelled, no datagram was taken; the next call
        returns it.

        Raises:
            NetError: ``ECONNREFUSED`` (a :class:`ConnectionRefusedError`)
                if a connected socket's earlier datagram drew an ICMP port
                unreachable, once the datagrams queued before it were read.
            trio.ClosedResourceError: after ``close`` (also when closed
                while waiting).
            trio.BusyResourceError: another task is receiving on this socket.
        """
        data, (addr, port), _, _ = await self._take()
        return data, _str(addr, port)

    async def recv(self) -> bytes:
        """:meth:`recvfrom` without the address (the same errors and
        cancellation)."""
        return (await self._take())[0]

    async def recvmsg(self) -> UdpDatagram:
        """:meth:`recvfrom`, with the address the datagram was sent to and
        the interface it arrived on (a :class:`UdpDatagram`). Errors and
        cancellation as :meth:`recvfrom`."""
        data, (addr, port), dst, ifp = await self._take()
        local_port = self._local[1] if self._local is not None else 0
        return UdpDatagram(data, _str(addr, port), _str(dst, local_port), ifp.name)

    def recvfrom_nowait(self, *, peek: bool = False) -> tuple[bytes, Address]:
        """:meth:`recvfrom` without waiting: the next datagram and its
        sender. With ``peek=True`` it stays queued (``MSG_PEEK``).

        Raises:
            trio.WouldBlock: no datagram is queued.
            NetError: as :meth:`recvfrom`.
            trio.ClosedResourceError: after ``close``.
            trio.BusyResourceError: another task is in :meth:`recvfrom`.
        """
        if self._receiving:
            raise trio.BusyResourceError("another task is receiving on this socket")
        self._check_open()
        queue = self._queue
        if queue:
            if peek:
                data, (addr, port), _, _ = queue[0]
            else:
                data, (addr, port), _, _ = queue.popleft()
                self._queued_bytes -= len(data)
            return data, _str(addr, port)
        self._check_error()
        raise trio.WouldBlock

    def is_readable(self) -> bool:
        """Whether :meth:`recvfrom` would return without waiting: a datagram
        or an error is queued, or the socket is closed (then it raises)."""
        return bool(self._closed or self._queue or self._error is not None)

    async def wait_readable(self) -> None:
        """Return when :meth:`is_readable` is true.

        Cancellation: nothing to undo; the socket is unchanged.

        Raises:
            trio.ClosedResourceError: after ``close`` (also while waiting).
            trio.BusyResourceError: another task is receiving.
        """
        if self._receiving:
            raise trio.BusyResourceError("another task is receiving on this socket")
        self._receiving = True
        try:
            self._check_open()
            await trio.lowlevel.checkpoint_if_cancelled()
            parked = False
            while not self.is_readable():
                self._sleeping = True
                try:
                    await self._lot.park()
                finally:
                    self._sleeping = False
                parked = True
            self._check_open()
        finally:
            self._receiving = False
        if not parked:  # a park is a checkpoint already
            await trio.lowlevel.cancel_shielded_checkpoint()

    async def _take(self) -> tuple[bytes, tuple[bytes, int], bytes, Ifnet]:
        # recvfrom's body; the sender's address stays raw.
        if self._receiving:
            raise trio.BusyResourceError("another task is receiving on this socket")
        self._receiving = True
        try:
            self._check_open()
            await trio.lowlevel.checkpoint_if_cancelled()
            queue = self._queue
            parked = False
            while True:
                if self._closed:
                    raise trio.ClosedResourceError("the socket is closed")
                if queue:
                    item = queue.popleft()
                    self._queued_bytes -= len(item[0])
                    break
                if self._error is not None:
                    err, self._error = self._error, None
                    raise NetError(err)
                self._sleeping = True
                try:
                    await self._lot.park()
                finally:
                    self._sleeping = False
                parked = True
        finally:
            self._receiving = False
        if not parked:  # a park is a checkpoint already
            await trio.lowlevel.cancel_shielded_checkpoint()
        return item

    def close(self) -> None:
        """Close the socket; waiting receivers get ``ClosedResourceError``."""
        if self._closed:
            return
        self._closed = True
        self._udp._unbind(self)
        self._queue.clear()
        self._queued_bytes = 0
        self._lot.unpark_all()

    def __enter__(self) -> UdpSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> UdpSocket:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def statistics(self) -> UdpSocketStatistics:
        """A snapshot of the socket's counters."""
        return UdpSocketStatistics(self._received, self._sent, self._drops, self._queued_bytes)

    def _deliver(self, data: bytes, src: bytes, sport: int, dst: bytes, rcvif: Ifnet, limit: int) -> bool:
        if self._queued_bytes + len(data) > limit:
            self._drops += 1
            return False
        self._queue.append((data, (src, sport), dst, rcvif))
        self._queued_bytes += len(data)
        self._received += 1
        if self._sleeping:  # cheaper than asking the lot
            self._lot.unpark_all()
        return True


class Udp(ProtoLayer):
    """A host's UDP: the port table and input."""

    def __init__(
        self, ip: Ip, icmp: Icmp, local_addrs: dict[bytes, Ifnet], broadcasts: set[bytes]
    ) -> None:
        super().__init__()
        self.ip = ip
        self._icmp = icmp
        self._local_addrs = local_addrs
        self._broadcasts = broadcasts
        self._sysctls = ip.host.sysctls
        self._recvspace = ip.host.sysctls.node("net.inet.udp.recvspace")
        self._received = 0
        self._ports: dict[int, list[UdpSocket]] = {}
        self._ephemeral_ports = EphemeralPorts()
        ip.protocols[IPPROTO_UDP] = (self.input, self.ctlinput)

    def socket(self) -> UdpSocket:
        return UdpSocket(self)

    def attach6(self, ip6: Ip6, icmp6: Icmp6) -> None:
        """Take IPv6 datagrams too (the IPv6 layer is made after this one)."""
        self.ip6 = ip6
        self._icmp6 = icmp6
        ip6.protocols[IPPROTO_UDP] = (self.input6, self.ctlinput6)

    def ip_for(self, addr: bytes) -> Any:
        """The IP layer for ``addr``'s family."""
        return self.ip6 if len(addr) == 16 else self.ip

    @staticmethod
    def _check_family(local: bytes, addr: bytes) -> None:
        if len(local) != len(addr):
            raise NetError(
                errno.EAFNOSUPPORT,
                f"the socket is bound to {inet_ntop(local)}: it cannot reach {inet_ntop(addr)}",
            )

    def statistics(self) -> UdpStatistics:
        """A snapshot of the counters."""
        return UdpStatistics(self._received, self._drop_counts())

    def _bind(self, sock: UdpSocket, addr: bytes, port: int) -> None:
        wild = _wildcard(addr)
        if addr != wild and addr not in self._local_addrs:
            raise NetError(errno.EADDRNOTAVAIL, f"{_str(addr, port)[0]} is not an address of this host")
        if port == 0:
            port = self._ephemeral()
        for other in self._ports.get(port, ()):
            # Each family has its own port space (IPV6_V6ONLY, as BSD's default).
            theirs = other._local[0] if other._local is not None else None
            if theirs is not None and len(theirs) == len(addr) and (theirs in (wild, addr) or addr == wild):
                raise NetError(errno.EADDRINUSE, f"port {port} is in use")
        sock._local = (addr, port)
        self._ports.setdefault(port, []).append(sock)

    def _unbind(self, sock: UdpSocket) -> None:
        if sock._local is None:
            return
        socks = self._ports.get(sock._local[1], [])
        if sock in socks:
            socks.remove(sock)
            if not socks:
                del self._ports[sock._local[1]]

    def _ephemeral(self) -> int:
        return self._ephemeral_ports.allocate(self._ports)

    def _lookup(self, dst: bytes, dport: int, src: bytes, sport: int, rcvif: Ifnet) -> UdpSocket | None:
        best = None
        wild = ANY if len(dst) == 4 else ANY6
        for sock in self._ports.get(dport, ()):
            local = sock._local
            assert local is not None
            if local[0] != dst and local[0] != wild and (dst != BROADCAST or len(local[0]) != 4):
                continue
            if sock._device is not None and sock._device is not rcvif:
                continue
            if sock._remote is not None:
                if sock._remote == (src, sport):
                    return sock
                continue
            best = sock
        return best

    def input(self, hdr: IPv4Header, payload: memoryview, m: Mbuf) -> None:
        self._received += 1
        try:
            sport, dport, data = udp_proto.parse_datagram(payload, hdr.src, hdr.dst, not m.csum)
        except RemoteProtocolError as exc:
            self.drops[exc.reason] += 1
            return
        sock = self._lookup(hdr.dst, dport, hdr.src, sport, m.rcvif)
        if sock is None:
            self.drops["noport"] += 1
            if hdr.dst in self._local_addrs and not m.flags:
                if len(hdr.dst) == 16:
                    self._icmp6.error(m, hdr, icmp6_proto.DST_UNREACH, icmp6_proto.UNREACH_NOPORT)
                else:
                    self._icmp.error(m.data, hdr, icmp_proto.DEST_UNREACH, icmp_proto.UNREACH_PORT)
            return
        limit: int = self._recvspace.value  # type: ignore[assignment]
        if not sock._deliver(bytes(data), hdr.src, sport, hdr.dst, m.rcvif, limit):
            self.drops["fullsock"] += 1

    def input6(self, hdr: Any, payload: memoryview, m: Mbuf) -> None:
        """An IPv6 datagram: as :meth:`input`, but a zero checksum, which
        IPv6 does not allow (RFC 8200 section 8.1), is a drop."""
        if not m.csum and len(payload) >= 8 and not payload[6] and not payload[7]:
            # (With m.csum the card vouched for a checksum it was left to fill.)
            self._received += 1
            self.drops["zero_checksum"] += 1
            return
        self.input(hdr, payload, m)

    def ctlinput6(
        self, type_: int, code: int, src: bytes, dst: bytes, head: memoryview, mtu: int
    ) -> bool:
        """:meth:`ctlinput` for ICMPv6: a destination unreachable (port
        unreachable: ``ECONNREFUSED``; the others ``EHOSTUNREACH``)."""
        if type_ != icmp6_proto.DST_UNREACH:
            return False
        return self._report_unreachable(
            src, dst, head, errno.ECONNREFUSED if code == icmp6_proto.UNREACH_NOPORT else errno.EHOSTUNREACH
        )

    def ctlinput(
        self, type_: int, code: int, src: bytes, dst: bytes, head: memoryview, mtu: int
    ) -> bool:
        """An ICMP error about a datagram we sent from ``src`` to ``dst``
        (``head``: its UDP header). A destination unreachable reaches the
        socket connected to ``dst`` from the quoted source port, which gets
        ``ECONNREFUSED`` (port unreachable) or ``EHOSTUNREACH`` on its next
        send or receive. Returns whether a socket took it.

        DragonFly: ``udp_ctlinput``.
        """
        if type_ != icmp_proto.DEST_UNREACH:
            return False
        return self._report_unreachable(
            src, dst, head, errno.ECONNREFUSED if code == icmp_proto.UNREACH_PORT else errno.EHOSTUNREACH
        )

    def _report_unreachable(self, src: bytes, dst: bytes, head: memoryview, err: int) -> bool:
        sport = (head[0] << 8) | head[1]
        dport = (head[2] << 8) | head[3]
        for sock in self._ports.get(sport, ()):
            if sock._remote == (dst, dport):
                sock._error = err
                if sock._lot:
                    sock._lot.unpark_all()
                return True
        return False
