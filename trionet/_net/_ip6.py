"""IPv6 glue: input, local delivery, forwarding, route choice, output and
fragmentation.

Input (:meth:`Ip6.input`, the netisr handler for EtherType 0x86DD, on the
protocol thread the packet's flow hashes to; fragments, extension headers and
ICMPv6 hash to ``netisr 0``, which owns the reassembler and neighbour
discovery):

1. parse the fixed header (``trionet.protocols.ipv6``); a bad one is a drop
   counted under its reason; so is a multicast source (``bad_source``) and a
   loopback source or destination from anything but a loopback interface
   (``martian``);
2. for this host (one of its usable addresses, or a multicast group the
   receiving interface has joined): walk the extension headers (a
   Parameter Problem they raise is answered with ICMPv6), reassemble
   fragments, then hand the packet to its protocol's ``input`` through the
   protocol switch (``protocols[next_header] = (input, ctlinput)``, BSD's
   ``inet6sw``); a protocol with no entry is answered with Parameter Problem
   (unrecognized next header) and counted ``noproto``. A packet for a
   tentative address is dropped (``tentative``; RFC 4862 5.4: only ND uses
   one while DAD runs, and ND reaches ICMPv6 by its multicast destination);
3. for another host: dropped (``not_forwarding``) unless
   ``net.inet6.ip6.forwarding`` is 1; then hop limit expiry answers Time
   Exceeded, a missing route Destination Unreachable (no route), a packet
   bigger than the next link's MTU Packet Too Big (routers never fragment in
   IPv6, RFC 8200 section 5), and anything else goes out again with its hop
   limit decremented. Link-local sources and destinations are never
   forwarded (``beyond_scope``, RFC 4007).

Route choice (:meth:`Ip6.route`): a caller's interface, else a multicast or
link-local destination's zone (the interface of the link-local source asked
for, else the only non-loopback interface when there is one, else
``EINVAL``: such an address needs ``%zone``), else one of this
host's addresses on loopback, else the longest-prefix route. The source is
the one asked for, else the destination when it is ours, else an address of
the outgoing interface of at least the destination's scope, preferring a
non-deprecated one (RFC 6724's rules 2 and 3, enough for one prefix per
link), else any usable global address of the host.

Output (:meth:`Ip6.output`): route choice (or the socket's cache), the
header, fragmentation to the path MTU (the link MTU, lowered by Packet Too
Big messages: :meth:`Ip6.pmtu_update`, kept 10 minutes, RFC 8201), then
neighbour discovery, which resolves the next hop and hands the packet to
``ether_output``. A source never fragments below 1280 bytes (RFC 8200).

Every drop has a counter (``statistics().drops`` by reason). Nothing here
awaits.

DragonFly: ``sys/netinet6/ip6_input.c`` (``ip6_input``), ``ip6_forward.c``,
``ip6_output.c`` (``ip6_output``, ``ip6_fragment``), ``in6_src.c``
(``in6_selectsrc``), ``frag6.c``.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs
import trio

from .._exceptions import NetError
from ..protocols import icmpv6 as icmp6_proto
from ..protocols.errors import RemoteProtocolError
from ..protocols.ethernet import ETHERTYPE_IPV6
from ..protocols.flowhash import ipv6_flow_hash
from ..protocols.ipv6 import (
    ALL_NODES,
    IPV6_MIN_MTU,
    IPv6Header,
    ParameterProblem,
    Reassembler6,
    fragment6,
    ip6_ntoa,
    scope6,
    walk_extensions,
)
from ..protocols.offload import PendingFrame, complete, fill_checksum
from ._ether import Mbuf
from ._if import IfCap, IfFlags, In6Flags
from ._route import RouteCache, RouteChooser

if TYPE_CHECKING:
    from ._host import Host
    from ._icmp6 import Icmp6
    from ._if import Ifnet
    from ._nd6 import Nd6

__all__ = ["Ip6", "Ip6Statistics"]

#: How long a Packet Too Big lowers a path MTU (RFC 8201: at least 5 minutes).
PMTU_EXPIRE = 600.0
#: Destinations with a lowered path MTU kept at most (the oldest go first).
PMTU_MAX = 1024

_LOOPBACK = int(IfFlags.LOOPBACK)
_TXCSUM = int(IfCap.TXCSUM)
_SCOPE_LINK = 2
_SCOPE_GLOBAL = 0xE

#: A protocol's input routine: ``input(header, payload, mbuf)``.
Proto6Input = Callable[[IPv6Header, memoryview, Mbuf], None]
#: ``ctlinput(type, code, src, dst, head, mtu)``: an ICMPv6 error about a
#: packet this host sent from ``src`` to ``dst`` whose upper-layer data began
#: with ``head`` (8 bytes); ``mtu`` is Packet Too Big's (0 otherwise).
Proto6CtlInput = Callable[[int, int, bytes, bytes, memoryview, int], bool]


@attrs.frozen
class Ip6Statistics:
    """IPv6 counters (``netstat -s -p ip6``).

    Attributes:
        received: packets that reached IPv6 input.
        delivered: packets handed to a protocol's input.
        forwarded: packets sent on towards another host.
        sent: packets this host originated (before fragmentation).
        fragmented: packets split; ``fragments_sent``: the pieces.
        reassembled: packets rebuilt from fragments.
        drops: reason -> count, for every packet dropped.
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


class Ip6(RouteChooser):
    """A host's IPv6 layer.

    Args:
        local_addrs: the Internet layer's address table (IPv4 and IPv6
            addresses -> interface; read only here).

    Attributes:
        protocols: the protocol switch: next header -> ``(input, ctlinput)``.
        icmp6: ICMPv6, for the errors IPv6 sends (set by the layer).
        nd6: neighbour discovery, which resolves next hops (set by the layer).
        routes: the host's IPv6 route table (``host.routes6``).
        groups: interface -> the IPv6 multicast groups it has joined.
    """

    def __init__(self, host: Host, local_addrs: dict[bytes, Ifnet]) -> None:
        super().__init__()
        self.host = host
        self.local_addrs = local_addrs
        self.routes = host.routes6
        self._sysctls = host.sysctls
        self._hlim = host.sysctls.node("net.inet6.ip6.hlim")
        self.icmp6: Icmp6 = None  # type: ignore[assignment]
        self.nd6: Nd6 = None  # type: ignore[assignment]
        self.reassembler = Reassembler6()
        self.groups: dict[Ifnet, set[bytes]] = {}
        #: This host's addresses that DAD has not passed yet (kept by the
        #: IPv6 layer and neighbour discovery).
        self.tentative: set[bytes] = set()
        self._pmtu: dict[bytes, tuple[int, float]] = {}
        self._received = self._delivered = self._forwarded = self._sent = 0
        self._fragmented = self._fragments_sent = self._reassembled = 0
        self._ident = 0
        self._reass_callout = host.callout(0, thread="netisr")
        self._forward_ro = RouteCache()
        self.protocols: dict[int, tuple[Proto6Input, Proto6CtlInput | None]] = {}
        host.netisr_register(ETHERTYPE_IPV6, self.input, lambda m: ipv6_flow_hash(m.data))

    def statistics(self) -> Ip6Statistics:
        """A snapshot of the counters."""
        return Ip6Statistics(
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
        """Choose the interface, next hop and source for a packet to ``dst``
        (the rules are in the module docstring).

        Returns:
            ``(ifp, nexthop, src)``.

        Raises:
            NetError: ``ENETUNREACH`` (no route), ``EINVAL`` (a link-local
                or multicast destination whose interface cannot be told),
                ``EADDRNOTAVAIL`` (no usable source address).
        """
        if ifp is not None:
            nexthop = dst
        elif dst[0] == 0xFF or (dst[0] == 0xFE and dst[1] & 0xC0 == 0x80):
            # A link-scoped destination: the zone of a link-local source of
            # ours (a reply, a connection's segments), else the only link.
            owner = self.local_addrs.get(src) if src is not None and src[0] == 0xFE else None
            ifp = owner if owner is not None else self._zone_ifp(dst)
            nexthop = dst
        elif dst in self.local_addrs:
            lo = self._loopback_ifp()
            if lo is None:
                raise NetError(errno.ENETUNREACH, f"no loopback interface for {ip6_ntoa(dst)}")
            ifp, nexthop = lo, dst
        else:
            rt = self.routes.lookup(dst)
            if rt is None:
                raise NetError(errno.ENETUNREACH, f"no route to {ip6_ntoa(dst)}")
            ifp = rt.ifp
            nexthop = rt.gateway or dst
        if src is None:
            src = self.select_source(dst, ifp)
        return ifp, nexthop, src

    def _zone_ifp(self, dst: bytes) -> Ifnet:
        if dst[0] == 0xFF and dst[1] & 0x0F == 1 or dst == b"\x00" * 15 + b"\x01":
            lo = self._loopback_ifp()
            if lo is not None:
                return lo
        candidates = [
            ifp for ifp in self.host.ifnets() if not int(ifp.flags) & _LOOPBACK and ifp.addrs6
        ]
        if len(candidates) == 1:
            return candidates[0]
        raise NetError(
            errno.EINVAL,
            f"{ip6_ntoa(dst)} is link-scoped: name the interface ({ip6_ntoa(dst)}%vnic0)",
        )

    def _loopback_ifp(self) -> Ifnet | None:
        for ifp in self.host.ifnets():
            if int(ifp.flags) & _LOOPBACK:
                return ifp
        return None

    def select_source(self, dst: bytes, ifp: Ifnet) -> bytes:
        """The source address for ``dst`` leaving through ``ifp`` (RFC 6724
        rules 1-3 in their simple form; see the module docstring).

        Raises:
            NetError: ``EADDRNOTAVAIL`` if no usable address fits.
        """
        if dst in self.local_addrs:
            return dst
        want = scope6(dst)
        best: bytes | None = None
        best_rank = (2, 2, 2)
        for ia in ifp.addrs6:
            if not ia.usable:
                continue
            scope = scope6(ia.addr)
            # Rule 2 (a scope at least the destination's, the closest), then
            # rule 3 (avoid deprecated addresses).
            rank = (0 if scope >= want else 1, 1 if ia.flags & In6Flags.DEPRECATED else 0, 0 if scope == want else 1)
            if rank < best_rank:
                best, best_rank = ia.addr, rank
        if best is not None and best_rank[0] == 0:
            return best
        if want > _SCOPE_LINK:
            for other in self.host.ifnets():
                for ia in other.addrs6:
                    if ia.usable and scope6(ia.addr) >= want and not ia.flags & In6Flags.DEPRECATED:
                        return ia.addr
        if best is not None:
            return best
        raise NetError(errno.EADDRNOTAVAIL, f"{ifp.name} has no usable IPv6 address for {ip6_ntoa(dst)}")

    ####################################################################
    # Path MTU
    ####################################################################

    def path_mtu(self, dst: bytes, ifp: Ifnet) -> int:
        """The MTU to ``dst`` through ``ifp``: the link's, or lower after a
        Packet Too Big (never below 1280)."""
        mtu = self.nd6.link_mtu(ifp)
        entry = self._pmtu.get(dst)
        if entry is not None:
            if entry[1] > trio.current_time():
                return min(mtu, entry[0])
            del self._pmtu[dst]
        return mtu

    def pmtu_update(self, dst: bytes, mtu: int) -> None:
        """A Packet Too Big said ``mtu`` for ``dst`` (RFC 8201): remember
        ``max(mtu, 1280)`` for :data:`PMTU_EXPIRE` seconds; only lowers."""
        mtu = max(mtu, IPV6_MIN_MTU)
        old = self._pmtu.get(dst)
        if old is not None and old[0] <= mtu:
            return
        if len(self._pmtu) >= PMTU_MAX and dst not in self._pmtu:
            del self._pmtu[next(iter(self._pmtu))]
        self._pmtu[dst] = (mtu, trio.current_time() + PMTU_EXPIRE)
        self.routes.invalidate()  # connections re-read their segment size

    ####################################################################
    # Input
    ####################################################################

    def is_local(self, dst: bytes, ifp: Ifnet | None) -> bool:
        """Whether ``dst`` is this host: an address (usable or tentative),
        or a group ``ifp`` has joined (all-nodes always)."""
        if dst in self.local_addrs:
            return True
        if dst[0] != 0xFF:
            return False
        if dst == ALL_NODES:
            return True
        groups = self.groups.get(ifp) if ifp is not None else None  # type: ignore[arg-type]
        return groups is not None and dst in groups

    def input(self, m: Mbuf) -> None:
        """An IPv6 packet from ``m.rcvif`` (netisr handler)."""
        self._received += 1
        try:
            hdr, payload = IPv6Header.parse(m.data)
        except RemoteProtocolError as exc:
            self.drops[exc.reason] += 1
            return
        src, dst = hdr.src, hdr.dst
        ifp = m.rcvif
        if src[0] == 0xFF:
            self.drops["bad_source"] += 1
            return
        if not int(ifp.flags) & _LOOPBACK and (src == _LOOPBACK6 or dst == _LOOPBACK6):
            self.drops["martian"] += 1
            return
        if len(m.data) > 40 + hdr.payload_length:
            m.data = m.data[: 40 + hdr.payload_length]  # link padding
        if not self.is_local(dst, ifp):
            if dst[0] == 0xFF:
                self.drops["not_member"] += 1
                return
            self._forward(hdr, payload, m)
            return
        nh = hdr.next_header
        if nh == _TCP or nh == _UDP:
            # No extension header (the common case): straight to the protocol.
            if dst in self.tentative:
                self.drops["tentative"] += 1
                return
            self._delivered += 1
            self.protocols[nh][0](hdr, payload, m)
            return
        try:
            chain = walk_extensions(nh, payload, dst_multicast=dst[0] == 0xFF)
        except ParameterProblem as exc:
            self.drops[exc.reason] += 1
            self.icmp6.error(m, hdr, icmp6_proto.PARAM_PROB, exc.code, exc.pointer)
            return
        except RemoteProtocolError as exc:
            self.drops[exc.reason] += 1
            return
        if chain.fragment is not None:
            try:
                packet = self.reassembler.add(m.data, hdr, chain, trio.current_time())
            except ParameterProblem as exc:
                self.drops[exc.reason] += 1
                self.icmp6.error(m, hdr, icmp6_proto.PARAM_PROB, exc.code, exc.pointer)
                return
            self._arm_reassembly()
            if packet is None:
                return
            if chain.fragment.offset or chain.fragment.more:
                self._reassembled += 1
            m.data = memoryview(packet)
            try:
                hdr, payload = IPv6Header.parse(m.data)
                chain = walk_extensions(hdr.next_header, payload, dst_multicast=dst[0] == 0xFF)
            except RemoteProtocolError as exc:
                self.drops[exc.reason] += 1
                return
            if chain.fragment is not None:
                self.drops["nested_fragment"] += 1
                return
        if dst in self.tentative and chain.proto != _ICMPV6:
            self.drops["tentative"] += 1
            return
        pr = self.protocols.get(chain.proto)
        if pr is None:
            if chain.proto == _NONE:
                self.drops["no_next_header"] += 1  # nothing to deliver (RFC 8200 4.7)
                return
            self.drops["noproto"] += 1
            self.icmp6.error(m, hdr, icmp6_proto.PARAM_PROB, icmp6_proto.PARAMPROB_NEXTHEADER, chain.next_header_at)
            return
        self._delivered += 1
        pr[0](hdr, payload[chain.offset:], m)

    def _forward(self, hdr: IPv6Header, payload: memoryview, m: Mbuf) -> None:
        if m.flags:
            self.drops["not_for_us"] += 1
            return
        if self._sysctls.get("net.inet6.ip6.forwarding") != 1:
            self.drops["not_forwarding"] += 1
            return
        src, dst = hdr.src, hdr.dst
        icmp6 = self.icmp6
        if scope6(src) <= _SCOPE_LINK or scope6(dst) <= _SCOPE_LINK or src == bytes(16):
            self.drops["beyond_scope"] += 1
            if scope6(dst) > _SCOPE_LINK:
                icmp6.error(m, hdr, icmp6_proto.DST_UNREACH, icmp6_proto.UNREACH_BEYONDSCOPE)
            return
        if hdr.hop_limit <= 1:
            self.drops["hop_limit_exceeded"] += 1
            icmp6.error(m, hdr, icmp6_proto.TIME_EXCEEDED, icmp6_proto.TIMXCEED_HOPLIMIT)
            return
        try:
            ifp, nexthop, _ = self.route_cached(self._forward_ro, dst, src)
        except NetError:
            icmp6.error(m, hdr, icmp6_proto.DST_UNREACH, icmp6_proto.UNREACH_NOROUTE)
            return
        size = 40 + hdr.payload_length
        mtu = self.nd6.link_mtu(ifp)
        if size > mtu:
            self.drops["too_big"] += 1
            icmp6.error(m, hdr, icmp6_proto.PACKET_TOO_BIG, 0, mtu)
            return
        packet = bytearray(m.data[:size])
        packet[7] -= 1
        out: bytes = bytes(packet)
        if m.csum:
            # It arrived with its checksum left to the card: it leaves the
            # same way, or completed here for a card that cannot.
            out = PendingFrame(out)
            if not int(ifp.capenable) & _TXCSUM:
                out = complete(out, 0)
        try:
            self.nd6.output(ifp, nexthop, out)
        except NetError as exc:
            self._count_errno("output", exc)
        else:
            self._forwarded += 1

    def _arm_reassembly(self) -> None:
        self._reass_callout.follow(self.reassembler.next_deadline(), self._reassembly_timeout)

    def _reassembly_timeout(self) -> None:
        for first in self.reassembler.expire(trio.current_time()):
            # RFC 8200 4.5: Time Exceeded (reassembly), quoting the first
            # fragment, when it had arrived.
            try:
                hdr, _ = IPv6Header.parse(first)
            except RemoteProtocolError:
                continue
            self.icmp6.error_about(memoryview(first), hdr, icmp6_proto.TIME_EXCEEDED, icmp6_proto.TIMXCEED_REASS)
        self._arm_reassembly()

    ####################################################################
    # Output
    ####################################################################

    def output(
        self,
        dst: bytes,
        proto: int,
        payload: bytes,
        *,
        src: bytes | None = None,
        ttl: int | None = None,
        ifp: Ifnet | None = None,
        ro: RouteCache | None = None,
        csum: bool = False,
        df: bool = False,
        tso: int = 0,
        tos: int = 0,
        ext: bytes = b"",
    ) -> None:
        """Send ``payload`` as an IPv6 packet to ``dst``.

        The keywords match :meth:`Ip.output <trionet._net._ip.Ip.output>` so
        that UDP and TCP call either: ``ttl`` is the hop limit (default
        ``net.inet6.ip6.hlim``); ``df`` refuses fragmentation (``EMSGSIZE``
        above the path MTU, as a socket with ``IPV6_DONTFRAG``); ``csum``
        asks for the TCP or UDP checksum: left to an interface with
        ``IfCap.TXCSUM`` as IPv4's, else computed here; ``tso`` must be 0
        (no TSO for IPv6 yet); ``ext`` is a
        Hop-by-Hop header to put first (MLD's Router Alert), whose first byte
        (its Next Header) is set to ``proto``.

        Raises:
            NetError: ``ENETUNREACH`` (no route), ``EADDRNOTAVAIL`` (no
                source address), ``EINVAL`` (a link-local destination without
                its interface), ``EMSGSIZE`` (``df`` and too big), ``ENOBUFS``
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
            ttl = self._hlim.value  # type: ignore[assignment]
        if csum and (ext or not int(ifp.capenable) & _TXCSUM):
            payload = fill_checksum(proto, payload, src, dst)
            csum = False
        next_header = proto
        if ext:
            payload = bytes((proto,)) + ext[1:] + payload
            next_header = 0
        hdr = IPv6Header(src, dst, next_header, hop_limit=ttl, traffic_class=tos)
        self._sent += 1
        mtu = self.path_mtu(dst, ifp) if dst[0] != 0xFF else self.nd6.link_mtu(ifp)
        if 40 + len(payload) <= mtu:
            # A checksum left to the card (IfCap.TXCSUM, as for IPv4): the
            # packet leaves as a PendingFrame, completed where real bytes
            # are seen (offload rule 2).
            self.nd6.output(ifp, nexthop, PendingFrame(hdr.emit(payload)) if csum else hdr.emit(payload))
            return
        if csum:
            payload = fill_checksum(proto, payload, src, dst)  # fragments carry real bytes
        if df:
            self.drops["needs_fragmentation"] += 1
            raise NetError(errno.EMSGSIZE, f"{len(payload)} bytes exceed the path MTU {mtu} to {ip6_ntoa(dst)}")
        self._ident = (self._ident + 1) & 0xFFFFFFFF
        pieces = fragment6(hdr, b"", next_header, payload, max(mtu, IPV6_MIN_MTU), self._ident)
        self._fragmented += 1
        self._fragments_sent += len(pieces)
        for piece in pieces:
            self.nd6.output(ifp, nexthop, piece)


_LOOPBACK6 = bytes(15) + b"\x01"
_TCP = 6
_UDP = 17
_ICMPV6 = 58
_NONE = 59
