"""IPv4 glue: input, local delivery, forwarding, route choice, output and
fragmentation.

Input (:meth:`Ip.input`, the netisr handler for EtherType 0x0800, on the
protocol thread the packet's flow hashes to; fragments hash to ``netisr 0``,
which owns the reassembler):

1. parse and check the header (``trionet.protocols.ipv4``); a bad one is a
   drop counted under its reason; so is a multicast, class E or broadcast
   source (``bad_source``), or a 127/8 source from anything but a loopback
   interface (``martian``);
2. for this host (one of its addresses, a subnet broadcast of the receiving
   interface, or 255.255.255.255): reassemble fragments, then hand the
   datagram to its protocol's ``input`` through the protocol switch
   (``protocols[proto] = (input, ctlinput)``, BSD's ``inetsw``); a protocol
   with no entry is answered with ICMP protocol unreachable and counted
   ``noproto``;
3. for another host: dropped (``not_forwarding``) unless
   ``net.inet.ip.forwarding`` is 1; then TTL expiry answers ICMP time
   exceeded, a missing route ICMP net unreachable, a DF datagram too big for
   the next link ICMP fragmentation needed (with the link MTU, RFC 1191), and
   anything else goes out again with its TTL decremented.

Route choice is one call, :meth:`Ip.route` (BSD ``in_pcbladdr`` and
``ip_output``'s lookup): interface, next hop and source address together.
UDP and TCP sockets, ICMP, forwarding and :meth:`Ip.output` all use it, so
the rules are written once:

1. an interface given by the caller (a socket bound to a device, or a
   datagram sent on a named interface, ``IP_PKTINFO``'s ``ipi_ifindex``):
   send on it, through the gateway of the destination's route when that
   route is on this interface, else to the destination on its link; a
   limited broadcast from an interface with no address yet leaves from
   0.0.0.0 (a DHCP client, RFC 2131 section 4.1);
2. 255.255.255.255 (the limited broadcast, which has no route): the first
   interface, by index, that has an address and is not loopback;
3. one of this host's addresses: the loopback interface, if there is one;
4. anything else: the longest-prefix route; its gateway is the next hop
   (for a connected route, the destination itself);
5. the source: the one asked for (a bound socket, a reply from the address
   that was asked, a forwarded datagram's own); else the destination when
   it is ours; else the outgoing interface's primary address.

A socket keeps its choice in a :class:`~trionet._net._route.RouteCache`
(:meth:`Ip.route_cached`, BSD ``inp_route``), valid while the route table's
generation is unchanged: every route added or deleted and every address
added or deleted bumps it. ARP changes do not: the cache holds the next
hop's IP address, and ARP maps it to a MAC per packet. Nor does link state
or the MTU, which route choice does not read (a down interface refuses the
packet, ``ENETDOWN``; the MTU is read per packet). One cache per host
serves forwarding (DragonFly's ``ip_forward`` route cache).

Output (:meth:`Ip.output`): route choice (or the caller's cache), the
header, fragmentation to the interface MTU unless DF (then ``EMSGSIZE``,
counted ``needs_fragmentation``), then ARP, which resolves the next hop and
hands the packet to ``ether_output``.

NAT (:meth:`Ip.nat_enable`, ``host.nat``): a host that masquerades a
network behind its outside interface's address runs every datagram it
forwards out of that interface through the connection table
(:class:`trionet.protocols.nat.Nat`, which says what it translates), and
every datagram that arrives on that interface for that address through it
*before* local delivery: one that belongs to a connection is forwarded to
the inside host, anything else is delivered here as usual. Checksums left
to the card are completed and TCP super-segments cut first (the table
updates checksums incrementally, so they must be whole). What the table
refuses is counted in its own ``drops``. The table follows the outside
address (a new one, from DHCP say, flushes it). Only the forwarding path and
input on that interface pay for it.

Every drop has a counter (``statistics().drops`` by reason). Nothing here
awaits: input is a batch of plain function calls on a protocol thread, and
output is a plain function its caller runs.

DragonFly: ``sys/netinet/ip_input.c`` (``ip_input``, ``ip_forward``,
``ip_reass``), ``ip_output.c`` (``ip_output``, ``ip_fragment``),
``in_pcb.c`` (``in_pcbladdr``), ``in_proto.c`` (``inetsw``).
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs
import trio

from .._exceptions import NetError
from ..protocols import icmp as icmp_proto
from ..protocols.errors import RemoteProtocolError
from ..protocols.ethernet import ETHERTYPE_IP
from ..protocols.flowhash import ipv4_flow_hash
from ..protocols.ipv4 import IPPROTO_TCP, IPPROTO_UDP, IPv4Header, Reassembler, fragment
from ..protocols.nat import Nat
from ..protocols.offload import PendingFrame, fill_checksum, segment
from ._ether import Mbuf
from ._if import IfCap, IfFlags
from ._inaddr import inet_ntoa
from ._route import RouteCache, RouteChooser

if TYPE_CHECKING:
    from ._arp import Arp
    from ._host import Host
    from ._icmp import Icmp
    from ._if import Ifnet

__all__ = ["IpStatistics", "Ip", "ProtoInput", "ProtoCtlInput"]

BROADCAST = b"\xff\xff\xff\xff"
ANY = bytes(4)
_TXCSUM = int(IfCap.TXCSUM)
_TSO = int(IfCap.TSO)

#: A protocol's input routine: ``input(header, payload, mbuf)``.
ProtoInput = Callable[[IPv4Header, memoryview, Mbuf], None]
#: A protocol's control input: ``ctlinput(type, code, src, dst, head, mtu)``,
#: an ICMP error of ``type``/``code`` about a datagram this host sent from
#: ``src`` to ``dst`` whose payload began with ``head`` (8 bytes: a
#: transport header's ports and, for TCP, sequence number); ``mtu`` is the
#: next-hop MTU of "fragmentation needed" (0 otherwise). Returns whether the
#: error concerned one of the protocol's endpoints.
ProtoCtlInput = Callable[[int, int, bytes, bytes, memoryview, int], bool]


def _largest_piece(payload: bytes | memoryview, tso: int) -> int:
    # The largest datagram ``payload`` leaves as: itself, or for a TCP
    # super-segment (``tso``) one of the segments it stands for.
    if tso:
        return 20 + ((payload[12] >> 4) << 2) + tso
    return 20 + len(payload)


@attrs.frozen
class IpStatistics:
    """IPv4 counters (``netstat -s -p ip``).

    Attributes:
        received: datagrams that reached IP input.
        delivered: datagrams handed to a protocol's input.
        forwarded: datagrams sent on towards another host.
        sent: datagrams this host originated (before fragmentation).
        fragmented: datagrams split; ``fragments_sent``: the pieces.
        reassembled: datagrams rebuilt from fragments.
        drops: reason -> count, for every datagram dropped.
        reassembly: the reassembler's own counters.
    """

    received: int
    delivered: int
    forwarded: int
    sent: int
    fragmented: int
    fragments_sent: int
    reassembled: int
    drops: dict[str, int]
    reassembly: Any


class Ip(RouteChooser):
    """A host's IPv4 layer.

    Args:
        arp: resolution for output.
        local_addrs, broadcasts: the Internet layer's address tables (read
            only here).

    Attributes:
        protocols: the protocol switch: protocol number -> ``(input,
            ctlinput)`` (``ctlinput`` may be None). See :data:`ProtoInput`
            and :data:`ProtoCtlInput`.
        icmp: ICMP, for the errors IP sends (set by the Internet layer).
        routes: the host's route table.
    """

    def __init__(
        self,
        host: Host,
        arp: Arp,
        local_addrs: dict[bytes, Ifnet],
        broadcasts: set[bytes],
    ) -> None:
        super().__init__()
        self.host = host
        self.arp = arp
        self.local_addrs = local_addrs
        self.broadcasts = broadcasts
        self.routes = host.routes
        self._sysctls = host.sysctls
        self._ttl = host.sysctls.node("net.inet.ip.ttl")  # read per datagram
        self.icmp: Icmp = None  # type: ignore[assignment]  # set by Inet
        self.reassembler = Reassembler()
        self._received = self._delivered = self._forwarded = self._sent = 0
        self._fragmented = self._fragments_sent = self._reassembled = 0
        self._ident = 0
        self._reass_callout = host.callout(0, thread="netisr")
        self._forward_ro = RouteCache()
        self.nat: Nat | None = None
        self.nat_ifp: Ifnet | None = None
        self._nat_callout = host.callout(0, thread="netisr")
        self.protocols: dict[int, tuple[ProtoInput, ProtoCtlInput | None]] = {}
        host.netisr_register(ETHERTYPE_IP, self.input, lambda m: ipv4_flow_hash(m.data))

    def statistics(self) -> IpStatistics:
        """A snapshot of the counters."""
        return IpStatistics(
            self._received,
            self._delivered,
            self._forwarded,
            self._sent,
            self._fragmented,
            self._fragments_sent,
            self._reassembled,
            self._drop_counts(),
            self.reassembler.statistics(),
        )

    ####################################################################
    # Route choice
    ####################################################################

    def route(
        self, dst: bytes, *, src: bytes | None = None, ifp: Ifnet | None = None
    ) -> tuple[Ifnet, bytes, bytes]:
        """Choose the interface, next hop and source for a datagram to ``dst``
        (the rules are in the module docstring).

        Args:
            src: the source to use (not checked: binding checks a socket's
                address, and a forwarded datagram keeps its own); default
                chosen by the rules.
            ifp: send on this interface (rule 1).

        Returns:
            ``(ifp, nexthop, src)``.

        Raises:
            NetError: ``ENETUNREACH`` (no route; for 255.255.255.255, no
                interface with an address), ``EADDRNOTAVAIL`` (the outgoing
                interface has no address to send from).

        DragonFly: ``in_pcbladdr``, and the route lookup of ``ip_output``.
        """
        local = self.local_addrs
        if ifp is not None:
            rt = self.routes.lookup(dst) if dst != BROADCAST else None
            nexthop = rt.gateway if rt is not None and rt.ifp is ifp and rt.gateway else dst
            if src is None and not ifp.addrs and dst == BROADCAST:
                src = ANY  # no address yet: a DHCP client's broadcasts (RFC 2131 4.1)
        elif dst == BROADCAST:
            ifp = self._broadcast_ifp()
            nexthop = dst
        else:
            lo = self._loopback_ifp() if dst in local else None
            if lo is not None:
                ifp, nexthop = lo, dst
            else:
                rt = self.routes.lookup(dst)
                if rt is None:
                    raise NetError(errno.ENETUNREACH, f"no route to {inet_ntoa(dst)}")
                ifp = rt.ifp
                nexthop = rt.gateway or dst
        if src is None:
            if dst in local:
                src = dst
            elif ifp.addrs:
                src = ifp.addrs[0].addr
            else:
                raise NetError(errno.EADDRNOTAVAIL, f"{ifp.name} has no IPv4 address")
        return ifp, nexthop, src

    def _broadcast_ifp(self) -> Ifnet:
        for ifp in self.host.ifnets():
            if ifp.addrs and not ifp.flags & IfFlags.LOOPBACK:
                return ifp
        raise NetError(errno.ENETUNREACH, "no interface with an address to broadcast on")

    def _loopback_ifp(self) -> Ifnet | None:
        for ifp in self.host.ifnets():
            if ifp.flags & IfFlags.LOOPBACK:
                return ifp
        return None

    ####################################################################
    # Input
    ####################################################################

    def is_local(self, dst: bytes, ifp: Ifnet | None) -> bool:
        """Whether ``dst`` is this host (an address or a broadcast it hears)."""
        if dst in self.local_addrs or dst == BROADCAST:
            return True
        return dst in self.broadcasts and ifp is not None and any(
            ia.broadcast == dst for ia in ifp.addrs
        )

    def input(self, m: Mbuf) -> None:
        """An IPv4 datagram from ``m.rcvif`` (netisr handler)."""
        self._received += 1
        try:
            hdr, payload = IPv4Header.parse(m.data)
        except RemoteProtocolError as exc:
            self.drops[exc.reason] += 1
            return
        src = hdr.src
        if src[0] >= 0xE0 or src in self.broadcasts:
            # RFC 1812 5.3.7: multicast, class E and broadcast sources.
            self.drops["bad_source"] += 1
            return
        if src[0] == 127 and not (m.rcvif is not None and m.rcvif.flags & IfFlags.LOOPBACK):
            self.drops["martian"] += 1  # a loopback address from a wire
            return
        if self.nat is not None and m.rcvif is self.nat_ifp and hdr.dst == self.nat.outside_addr:
            if self._nat_input(hdr, m):
                return
        if not self.is_local(hdr.dst, m.rcvif):
            self._forward(hdr, payload, m)
            return
        if hdr.mf or hdr.frag_offset:
            done = self.reassembler.add(hdr, payload, trio.current_time())
            self._arm_reassembly()
            if done is None:
                return
            self._reassembled += 1
            # From here on the packet is the datagram, not its last fragment:
            # an ICMP error about it quotes m.data (RFC 792).
            hdr, data = done
            m.data = memoryview(hdr.emit(data))
            hdr = attrs.evolve(hdr, ihl=5, total_length=len(m.data))
            payload = m.data[20:]
        pr = self.protocols.get(hdr.proto)
        if pr is None:
            self.drops["noproto"] += 1
            if hdr.dst in self.local_addrs and not m.flags:
                self.icmp.error(m.data, hdr, icmp_proto.DEST_UNREACH, icmp_proto.UNREACH_PROTO)
            return
        self._delivered += 1
        pr[0](hdr, payload, m)

    def _forward(self, hdr: IPv4Header, payload: memoryview, m: Mbuf) -> None:
        dst = hdr.dst
        # Never forwarded: a link-layer broadcast or multicast, an IP
        # multicast or broadcast, or the directed broadcast of another of our
        # subnets (BSD ip_forward, net.inet.ip.directed-broadcast=0).
        if m.flags or dst[0] & 0xF0 == 0xE0 or dst == BROADCAST or dst in self.broadcasts:
            self.drops["not_for_us"] += 1
            return
        if self._sysctls.get("net.inet.ip.forwarding") != 1:
            self.drops["not_forwarding"] += 1
            return
        icmp = self.icmp
        if hdr.ttl <= 1:
            self.drops["ttl_exceeded"] += 1
            icmp.error(m.data, hdr, icmp_proto.TIME_EXCEEDED, icmp_proto.TIMXCEED_INTRANS)
            return
        try:
            # The datagram keeps its source, so only ENETUNREACH can come
            # (counted no_route by route_cached).
            ifp, nexthop, _ = self.route_cached(self._forward_ro, dst, hdr.src)
        except NetError:
            icmp.error(m.data, hdr, icmp_proto.DEST_UNREACH, icmp_proto.UNREACH_NET)
            return
        if ifp is self.nat_ifp and self.nat is not None:
            self._nat_output(ifp, nexthop, hdr, payload, m)
            return
        if not m.tso and hdr.total_length <= ifp.mtu and (not m.csum or int(ifp.capenable) & _TXCSUM):
            # It fits as it is: decrement the TTL in the received bytes and
            # mend the header checksum (RFC 1624), as BSD's ip_forward does.
            packet = bytearray(m.data[: hdr.total_length])
            packet[8] -= 1
            csum = ((packet[10] << 8) | packet[11]) + 0x100
            csum = (csum & 0xFFFF) + (csum >> 16)
            packet[10], packet[11] = csum >> 8, csum & 0xFF
            try:
                self.arp.output(ifp, nexthop, PendingFrame(packet) if m.csum else bytes(packet))
            except NetError as exc:
                self._count_errno("output", exc)
            else:
                self._forwarded += 1
            return
        out = attrs.evolve(hdr, ttl=hdr.ttl - 1)  # (ICMP redirects are not sent)
        if _largest_piece(payload, m.tso) > ifp.mtu and hdr.df:
            self.drops["needs_fragmentation"] += 1
            icmp.error(
                m.data, hdr, icmp_proto.DEST_UNREACH, icmp_proto.UNREACH_NEEDFRAG, mtu=ifp.mtu
            )
            return
        try:
            # A datagram that arrived with its checksum (and segmentation)
            # left to the card leaves the same way, or completed and cut.
            self._transmit(ifp, nexthop, out, bytes(payload), bool(m.csum), m.tso)
        except NetError as exc:
            # BSD ip_forward: ips_cantforward, not ips_forward.
            self._count_errno("output", exc)
        else:
            self._forwarded += 1

    ####################################################################
    # NAT
    ####################################################################

    def nat_enable(self, ifp: Ifnet | None, **limits: Any) -> None:
        """Masquerade what is forwarded out of ``ifp`` behind its primary
        address (``None``: stop, forgetting every connection). ``limits``
        go to :class:`~trionet.protocols.nat.Nat` (``max_entries``, the
        timeouts)."""
        if ifp is None:
            self.nat = self.nat_ifp = None
            self._nat_callout.stop()
            return
        addr = ifp.addrs[0].addr if ifp.addrs else ANY
        self.nat = Nat(addr, **limits)
        self.nat_ifp = ifp

    def _nat_address(self, ifp: Ifnet) -> Nat | None:
        # The table, following the outside interface's primary address.
        nat = self.nat
        assert nat is not None
        addr = ifp.addrs[0].addr if ifp.addrs else None
        if addr is None:
            self.drops["nat_no_address"] += 1
            return None
        if addr != nat.outside_addr:
            nat.outside_addr = addr  # flushes the table
        return nat

    def _nat_output(self, ifp: Ifnet, nexthop: bytes, hdr: IPv4Header, payload: memoryview, m: Mbuf) -> None:
        # A datagram forwarded out of the outside interface (TTL checked).
        nat = self._nat_address(ifp)
        if nat is None:
            return
        out_hdr = attrs.evolve(hdr, ttl=hdr.ttl - 1)
        now = trio.current_time()
        for piece in self._whole(out_hdr.emit(bytes(payload)), m):
            translated = nat.outbound(piece, now)
            if translated is None:
                continue  # counted in nat.drops
            if len(translated) > ifp.mtu and hdr.df:
                self.drops["needs_fragmentation"] += 1
                self.icmp.error(m.data, hdr, icmp_proto.DEST_UNREACH, icmp_proto.UNREACH_NEEDFRAG, mtu=ifp.mtu)
                return
            try:
                if len(translated) <= ifp.mtu:
                    self.arp.output(ifp, nexthop, translated)  # whole, checksums done: as it is
                else:
                    new_hdr, new_payload = IPv4Header.parse(translated)
                    self._transmit(ifp, nexthop, new_hdr, bytes(new_payload))  # fragmented
            except NetError as exc:
                self._count_errno("output", exc)
                return
        self._forwarded += 1
        self._nat_callout.follow(nat.next_deadline(), self._nat_expire)

    def _nat_input(self, hdr: IPv4Header, m: Mbuf) -> bool:
        # A datagram for the outside address: forwarded inside if it belongs
        # to a connection (returns True), else left to local delivery.
        nat = self.nat
        assert nat is not None
        now = trio.current_time()
        for n, piece in enumerate(self._whole(bytes(m.data[: hdr.total_length]), m)):
            translated = nat.inbound(piece, now)
            if translated is None:
                if n == 0:
                    return False  # not a connection's: local delivery
                continue  # counted in nat.drops
            new_hdr, new_payload = IPv4Header.parse(translated)
            self._forward(new_hdr, new_payload, Mbuf(memoryview(translated), m.rcvif, m.flags, m.frame))
        return True

    def _whole(self, packet: bytes, m: Mbuf) -> list[bytes]:
        # Datagrams whose checksums are filled in: the table updates them
        # incrementally. A TCP super-segment (LRO) is cut first.
        if m.tso:
            frame = PendingFrame(packet)
            frame.tso_mss = m.tso
            return [self._completed(bytes(piece)) for piece in segment(frame, 0)]
        return [self._completed(packet)] if m.csum else [packet]

    @staticmethod
    def _completed(packet: bytes) -> bytes:
        # A datagram whose TCP or UDP checksum was left to the card, with it filled.
        hdr, payload = IPv4Header.parse(packet)
        if hdr.proto not in (IPPROTO_TCP, IPPROTO_UDP) or hdr.mf or hdr.frag_offset:
            return packet
        return hdr.emit(fill_checksum(hdr.proto, payload, hdr.src, hdr.dst))

    def _nat_expire(self) -> None:
        nat = self.nat
        if nat is None:
            return
        nat.expire(trio.current_time())
        self._nat_callout.follow(nat.next_deadline(), self._nat_expire)

    def _arm_reassembly(self) -> None:
        self._reass_callout.follow(self.reassembler.next_deadline(), self._reassembly_timeout)

    def _reassembly_timeout(self) -> None:
        for first_hdr, first_data in self.reassembler.expire(trio.current_time()):
            # RFC 792: time exceeded (fragment reassembly), quoting the first
            # fragment, when it had arrived.
            self.icmp.error(
                first_hdr.emit(first_data), first_hdr,
                icmp_proto.TIME_EXCEEDED, icmp_proto.TIMXCEED_REASS,
            )
        self._arm_reassembly()

    ####################################################################
    # Output
    ####################################################################

    def next_ident(self) -> int:
        self._ident = (self._ident + 1) & 0xFFFF
        return self._ident

    def output(
        self,
        dst: bytes,
        proto: int,
        payload: bytes,
        *,
        src: bytes | None = None,
        ttl: int | None = None,
        tos: int = 0,
        df: bool = False,
        ifp: Ifnet | None = None,
        ro: RouteCache | None = None,
        csum: bool = False,
        tso: int = 0,
    ) -> None:
        """Send ``payload`` as an IPv4 datagram to ``dst``.

        Args:
            src: the source address; default chosen by :meth:`route`.
            ttl: default ``net.inet.ip.ttl``.
            df: set Don't Fragment: a datagram too big for the link raises
                ``EMSGSIZE`` instead of being fragmented.
            ifp: send on this interface (:meth:`route`'s rule 1; for
                255.255.255.255, the interface to broadcast on).
            ro: the socket's route cache (:meth:`route_cached`; ``ifp`` is
                then ignored).
            csum: ``payload`` is a TCP or UDP segment whose checksum field is
                0: the outgoing interface fills it in if it can
                (``IfCap.TXCSUM``; the datagram leaves as a
                :class:`~trionet.protocols.offload.PendingFrame`), else it is
                computed here, before any fragmentation (BSD
                ``in_delayed_cksum``).
            tso: ``payload`` is a TCP super-segment that stands for segments
                of this many payload bytes (with ``csum``): an interface with
                ``IfCap.TSO`` takes it whole, whatever its MTU; for one
                without, it is cut here (software GSO), never fragmented.

        Raises:
            NetError: ``ENETUNREACH`` (no route), ``EADDRNOTAVAIL`` (no
                source address), ``EMSGSIZE`` (DF and too big), ``ENOBUFS``
                (send queue full), ``ENETDOWN`` (interface down).
        """
        if ro is not None:
            ifp, nexthop, src = self.route_cached(ro, dst, src)
        else:
            try:
                ifp, nexthop, src = self.route(dst, src=src, ifp=ifp)
            except NetError as exc:
                self._count_route_error(exc)
                raise
        if ttl is None:
            ttl = self._ttl.value  # type: ignore[assignment]
        hdr = IPv4Header(src, dst, proto, ttl=ttl, tos=tos, ident=self.next_ident(), df=df)
        self._sent += 1
        if df and _largest_piece(payload, tso) > ifp.mtu:
            self.drops["needs_fragmentation"] += 1
            raise NetError(errno.EMSGSIZE, f"{len(payload)} bytes with DF exceed {ifp.name} mtu {ifp.mtu}")
        self._transmit(ifp, nexthop, hdr, payload, csum, tso)

    def _transmit(
        self, ifp: Ifnet, nexthop: bytes, hdr: IPv4Header, payload: bytes, csum: bool = False, tso: int = 0
    ) -> None:
        if 20 + len(payload) <= ifp.mtu:
            if csum and int(ifp.capenable) & _TXCSUM:
                self.arp.output(ifp, nexthop, PendingFrame(hdr.emit(payload)))
                return
            if csum:
                payload = fill_checksum(hdr.proto, payload, hdr.src, hdr.dst)
            self.arp.output(ifp, nexthop, hdr.emit(payload))
            return
        if tso and csum:
            # A TCP super-segment: the card cuts it (TSO), or we do (GSO).
            packet = PendingFrame(hdr.emit(payload))
            packet.tso_mss = tso
            capenable = int(ifp.capenable)
            if capenable & _TSO and _largest_piece(payload, tso) <= ifp.mtu:
                self.arp.output(ifp, nexthop, packet)
                return
            for piece in segment(packet, 0):
                # Each segment as a datagram of its own: fragmented if even
                # it does not fit (a router forwarding to a smaller MTU).
                piece_hdr, piece_payload = IPv4Header.parse(piece)
                self._transmit(ifp, nexthop, piece_hdr, bytes(piece_payload), True)
            return
        if csum:
            payload = fill_checksum(hdr.proto, payload, hdr.src, hdr.dst)
        pieces = fragment(hdr, payload, ifp.mtu)
        self._fragmented += 1
        self._fragments_sent += len(pieces)
        for piece in pieces:
            self.arp.output(ifp, nexthop, piece)
