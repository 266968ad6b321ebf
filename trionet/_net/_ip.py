"""IPv4 glue: input, local delivery, forwarding, output and fragmentation.

Input (:meth:`Ip.input`, the netisr handler for EtherType 0x0800, on the
protocol thread the packet's flow hashes to; fragments hash to ``netisr 0``,
which owns the reassembler):

1. parse and check the header (``trionet.protocols.ipv4``); a bad one is a
   drop counted under its reason; so is a multicast, class E or broadcast
   source (``bad_source``), or a 127/8 source from anything but a loopback
   interface (``martian``);
2. for this host (one of its addresses, a subnet broadcast of the receiving
   interface, or 255.255.255.255): reassemble fragments, then hand the
   datagram to ICMP or UDP; another protocol is answered with ICMP protocol
   unreachable and counted ``noproto``;
3. for another host: dropped (``not_forwarding``) unless
   ``net.inet.ip.forwarding`` is 1; then TTL expiry answers ICMP time
   exceeded, a missing route ICMP net unreachable, a DF datagram too big for
   the next link ICMP fragmentation needed (with the link MTU), and anything
   else goes out again with its TTL decremented.

Output (:meth:`Ip.output`): route lookup (longest prefix), source address
selection (the outgoing interface's primary address), fragmentation to the
interface MTU unless DF (then ``EMSGSIZE``), and Ethernet output through ARP.

Every drop has a counter (``statistics().drops`` by reason). Nothing here
awaits: input is a batch of plain function calls on a protocol thread, and
output is a plain function its caller runs.

DragonFly: ``sys/netinet/ip_input.c`` (``ip_input``, ``ip_forward``,
``ip_reass``), ``ip_output.c`` (``ip_output``, ``ip_fragment``).
"""

from __future__ import annotations

import errno
from collections import Counter
from typing import TYPE_CHECKING, Any

import attrs
import trio

from .._exceptions import NetError
from ..protocols import icmp as icmp_proto
from ..protocols.errors import RemoteProtocolError
from ..protocols.flowhash import ipv4_flow_hash
from ..protocols.ipv4 import IPv4Header, Reassembler, fragment
from ._ether import ETHERTYPE_IP, Mbuf
from ._if import IfFlags

if TYPE_CHECKING:
    from ._arp import Arp
    from ._host import Host
    from ._if import Ifnet

__all__ = ["IpStatistics", "Ip"]

BROADCAST = b"\xff\xff\xff\xff"


@attrs.frozen
class IpStatistics:
    """IPv4 counters (``netstat -s -p ip``).

    Attributes:
        received: datagrams that reached IP input.
        delivered: datagrams handed to ICMP or UDP.
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


class Ip:
    """A host's IPv4 layer."""

    def __init__(self, host: Host, arp: Arp) -> None:
        self.host = host
        self.arp = arp
        self.reassembler = Reassembler()
        self.drops: Counter[str] = Counter()
        self._received = self._delivered = self._forwarded = self._sent = 0
        self._fragmented = self._fragments_sent = self._reassembled = 0
        self._ident = 0
        self._reass_callout = host.callout(0, thread="netisr")
        # Protocol input routines: proto -> fn(header, payload, mbuf).
        self.protocols: dict[int, Any] = {}
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
            dict(self.drops),
            self.reassembler.statistics(),
        )

    # input ---------------------------------------------------------------

    def is_local(self, dst: bytes, ifp: Ifnet | None) -> bool:
        """Whether ``dst`` is this host (an address or a broadcast it hears)."""
        host = self.host
        if dst in host._local_addrs or dst == BROADCAST:
            return True
        return dst in host._broadcasts and ifp is not None and any(
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
        if src[0] >= 0xE0 or src in self.host._broadcasts:
            # RFC 1812 5.3.7: multicast, class E and broadcast sources.
            self.drops["bad_source"] += 1
            return
        if src[0] == 127 and not (m.rcvif is not None and m.rcvif.flags & IfFlags.LOOPBACK):
            self.drops["martian"] += 1  # a loopback address from a wire
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
        handler = self.protocols.get(hdr.proto)
        if handler is None:
            self.drops["noproto"] += 1
            if hdr.dst in self.host._local_addrs and not m.flags:
                self.host.inet.icmp.error(
                    m.data, hdr, icmp_proto.DEST_UNREACH, icmp_proto.UNREACH_PROTO
                )
            return
        self._delivered += 1
        handler(hdr, payload, m)

    def _forward(self, hdr: IPv4Header, payload: memoryview, m: Mbuf) -> None:
        host = self.host
        dst = hdr.dst
        # Never forwarded: a link-layer broadcast or multicast, an IP
        # multicast or broadcast, or the directed broadcast of another of our
        # subnets (BSD ip_forward, net.inet.ip.directed-broadcast=0).
        if m.flags or dst[0] & 0xF0 == 0xE0 or dst == BROADCAST or dst in host._broadcasts:
            self.drops["not_for_us"] += 1
            return
        if host.sysctls.get("net.inet.ip.forwarding") != 1:
            self.drops["not_forwarding"] += 1
            return
        icmp = host.inet.icmp
        if hdr.ttl <= 1:
            self.drops["ttl_exceeded"] += 1
            icmp.error(m.data, hdr, icmp_proto.TIME_EXCEEDED, icmp_proto.TIMXCEED_INTRANS)
            return
        route = host.routes.lookup(dst)
        if route is None:
            self.drops["no_route"] += 1
            icmp.error(m.data, hdr, icmp_proto.DEST_UNREACH, icmp_proto.UNREACH_NET)
            return
        ifp = route.ifp  # (ICMP redirects are not sent)
        out = attrs.evolve(hdr, ttl=hdr.ttl - 1)
        if 20 + len(payload) > ifp.mtu and hdr.df:
            self.drops["needs_fragmentation"] += 1
            icmp.error(
                m.data, hdr, icmp_proto.DEST_UNREACH, icmp_proto.UNREACH_NEEDFRAG, mtu=ifp.mtu
            )
            return
        try:
            self._transmit(ifp, route.gateway or dst, out, bytes(payload))
        except NetError as exc:
            # BSD ip_forward: ips_cantforward, not ips_forward.
            self.drops[f"output_{errno.errorcode.get(exc.errno, exc.errno)}".lower()] += 1
        else:
            self._forwarded += 1

    def _arm_reassembly(self) -> None:
        self._reass_callout.follow(self.reassembler.next_deadline(), self._reassembly_timeout)

    def _reassembly_timeout(self) -> None:
        for first_hdr, first_data in self.reassembler.expire(trio.current_time()):
            # RFC 792: time exceeded (fragment reassembly), quoting the first
            # fragment, when it had arrived.
            self.host.inet.icmp.error(
                first_hdr.emit(first_data), first_hdr,
                icmp_proto.TIME_EXCEEDED, icmp_proto.TIMXCEED_REASS,
            )
        self._arm_reassembly()

    # output --------------------------------------------------------------

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
    ) -> None:
        """Send ``payload`` as an IPv4 datagram to ``dst``.

        Args:
            src: the source address; default the outgoing interface's
                primary address.
            ttl: default ``net.inet.ip.ttl``.
            df: set Don't Fragment: a datagram too big for the link raises
                ``EMSGSIZE`` instead of being fragmented.
            ifp: send on this interface (for 255.255.255.255, which has no
                route); default by route lookup.

        Raises:
            NetError: ``ENETUNREACH`` (no route), ``EADDRNOTAVAIL`` (no
                source address), ``EMSGSIZE`` (DF and too big), ``ENOBUFS``
                (send queue full), ``ENETDOWN`` (interface down).
        """
        host = self.host
        if ifp is None or dst != BROADCAST:
            route = host.routes.lookup(dst)
            if route is None:
                if dst == BROADCAST and ifp is not None:
                    route = None
                else:
                    self.drops["no_route"] += 1
                    raise NetError(errno.ENETUNREACH, f"no route to {'.'.join(map(str, dst))}")
            if route is not None:
                ifp = route.ifp
                nexthop = route.gateway or dst
            else:
                nexthop = dst
        else:
            nexthop = dst
        assert ifp is not None
        if src is None:
            if dst in host._local_addrs:
                src = dst
            elif not ifp.addrs:
                self.drops["no_source"] += 1
                raise NetError(errno.EADDRNOTAVAIL, f"{ifp.name} has no IPv4 address")
            else:
                src = ifp.addrs[0].addr
        if ttl is None:
            ttl = host.sysctls.get("net.inet.ip.ttl")  # type: ignore[assignment]
        hdr = IPv4Header(src, dst, proto, ttl=ttl, tos=tos, ident=self.next_ident(), df=df)
        if dst in host._local_addrs:
            # To ourselves: through the loopback interface if there is one.
            lo = next((i for i in host.ifnets() if i.flags & IfFlags.LOOPBACK), None)
            if lo is not None:
                ifp, nexthop = lo, dst
        self._sent += 1
        if 20 + len(payload) > ifp.mtu and df:
            self.drops["needs_fragmentation"] += 1
            raise NetError(errno.EMSGSIZE, f"{len(payload)} bytes with DF exceed {ifp.name} mtu {ifp.mtu}")
        self._transmit(ifp, nexthop, hdr, payload)

    def _transmit(self, ifp: Ifnet, nexthop: bytes, hdr: IPv4Header, payload: bytes) -> None:
        if 20 + len(payload) <= ifp.mtu:
            self.arp.output(ifp, nexthop, hdr.emit(payload))
            return
        pieces = fragment(hdr, payload, ifp.mtu)
        self._fragmented += 1
        self._fragments_sent += len(pieces)
        for piece in pieces:
            self.arp.output(ifp, nexthop, piece)

