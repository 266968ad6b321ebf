"""ICMPv6 glue: echo, errors, ``ping`` over IPv6, and the hand-off of
neighbour discovery and MLD messages.

- Input checks the checksum (``trionet.protocols.icmpv6``), answers echo
  requests to this host's addresses and to the groups it has joined (as BSD
  and Linux do by default), and hands echo replies and errors about our own
  echo requests to the ``ping`` that sent them.
- An error (destination unreachable, packet too big, time exceeded,
  parameter problem) about another protocol's packet goes to that protocol's
  ``ctlinput`` through IPv6's protocol switch, with the quoted packet's
  addresses and the first 8 bytes of its upper-layer data; a Packet Too Big
  also lowers the path MTU to the quoted destination (RFC 8201). An error no
  one claims is counted ``error_unmatched``; one too short to tell,
  ``short_quote``.
- Neighbour discovery (types 133-137) goes to :class:`~trionet._net._nd6.Nd6`,
  MLD (130-132, 143) to its listener machines.
- :meth:`Icmp6.error` sends an error about a received packet unless RFC 4443
  section 2.4(e) forbids it, and at most ``net.inet6.icmp6.errppslimit``
  per second (a token bucket; 0: no limit); suppressed and rate-limited
  errors are counted.

DragonFly: ``sys/netinet6/icmp6.c`` (``icmp6_input``, ``icmp6_error``,
``icmp6_notify_error``, ``icmp6_ratelimit``), ``sbin/ping6``.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from typing import TYPE_CHECKING, Any

import attrs
import trio

from .._exceptions import NetError
from ..protocols import icmpv6 as icmp6_proto
from ..protocols.errors import RemoteProtocolError
from ..protocols.ipv6 import IPPROTO_ICMPV6, IPv6Header, walk_extensions
from ._ether import Mbuf
from ._icmp import PingError, PingResult, _check_int, _check_ping_arguments, _Ping, run_ping
from ._layer import ProtoLayer

if TYPE_CHECKING:
    from ._if import Ifnet
    from ._ip6 import Ip6

__all__ = ["Icmp6", "Icmp6Statistics", "MAX_PING6_SIZE"]

_ERROR_TYPES = frozenset({1, 2, 3, 4})
_ND_TYPES = frozenset({133, 134, 135, 136, 137})
_MLD_TYPES = frozenset({130, 131, 132, 143})
#: Largest ``size`` of an IPv6 ping (a 65535-byte payload less ICMPv6's 8).
MAX_PING6_SIZE = 65535 - 8


@attrs.frozen
class Icmp6Statistics:
    """A host's ICMPv6 counters (``netstat -s -p icmp6``).

    Attributes:
        received: ICMPv6 messages that reached input.
        echo_requests: echo requests answered.
        echo_replies: echo replies matched to a ping.
        errors_received: error messages received (matched or not).
        errors_sent: ``(type, code)`` -> errors sent.
        drops: reason -> count, for every message not acted on and every
            error not sent (``error_suppressed``, ``error_ratelimited``...).
    """

    received: int
    echo_requests: int
    echo_replies: int
    errors_received: int
    errors_sent: dict[tuple[int, int], int]
    drops: dict[str, int]


def _quoted(body: memoryview) -> tuple[int, bytes, bytes, memoryview] | None:
    # The packet an error quotes: (upper-layer protocol, src, dst, first 8
    # bytes of its upper-layer data), or None if too short to tell.
    if len(body) < 40:
        return None
    try:
        chain = walk_extensions(body[6], body[40:])
    except RemoteProtocolError:
        return None
    if chain.fragment is not None and chain.fragment.offset:
        return None  # not the first fragment: no upper-layer header
    head = body[40 + chain.offset : 40 + chain.offset + 8]
    if len(head) < 8:
        return None
    return chain.proto, bytes(body[8:24]), bytes(body[24:40]), head


class Icmp6(ProtoLayer):
    """A host's ICMPv6."""

    def __init__(self, ip6: Ip6, local_addrs: dict[bytes, Ifnet]) -> None:
        super().__init__()
        self.ip6 = ip6
        self._local_addrs = local_addrs
        self._protocols = ip6.protocols
        self._sysctls = ip6.host.sysctls
        self.counts: Counter[str] = Counter()
        self.errors_sent: Counter[tuple[int, int]] = Counter()
        self._pings: dict[int, _Ping] = {}
        self._ping_ident = 0
        self._received = 0
        self._limiter = icmp6_proto.Icmp6RateLimiter()
        self._limit = -1
        ip6.protocols[IPPROTO_ICMPV6] = (self.input, None)

    def statistics(self) -> Icmp6Statistics:
        """A snapshot of the counters."""
        counts = self.counts
        return Icmp6Statistics(
            self._received,
            counts["echo_requests"],
            counts["echo_replies"],
            counts["errors_received"],
            dict(self.errors_sent),
            self._drop_counts(),
        )

    # input ---------------------------------------------------------------

    def input(self, hdr: IPv6Header, payload: memoryview, m: Mbuf) -> None:
        self._received += 1
        try:
            msg, body = icmp6_proto.Icmp6Message.parse(payload, hdr.src, hdr.dst)
        except RemoteProtocolError as exc:
            self.drops[exc.reason] += 1
            return
        t = msg.type
        if t == icmp6_proto.ECHO_REQUEST:
            if hdr.src == bytes(16):
                self.drops["unspecified_source"] += 1
                return
            self.counts["echo_requests"] += 1
            src = hdr.dst if hdr.dst[0] != 0xFF else None
            ifp = m.rcvif if hdr.src[0] == 0xFE or hdr.dst[0] == 0xFF else None
            try:
                src = src or self.ip6.select_source(hdr.src, m.rcvif)
                reply = icmp6_proto.echo6(msg.data >> 16, msg.data & 0xFFFF, bytes(body), src, hdr.src, reply=True)
                self.ip6.output(hdr.src, IPPROTO_ICMPV6, reply, src=src, ifp=ifp)
            except NetError as exc:
                self._count_errno("reply", exc)
        elif t == icmp6_proto.ECHO_REPLY:
            ping = self._pings.get(msg.data >> 16)
            if ping is None or not ping.replied(msg.data & 0xFFFF, trio.current_time()):
                self.drops["unexpected_reply"] += 1
                return
            self.counts["echo_replies"] += 1
        elif t in _ERROR_TYPES:
            self.counts["errors_received"] += 1
            self._error_input(hdr, msg, body)
        elif t in _ND_TYPES:
            self.ip6.nd6.input(hdr, msg, body, m)
        elif t in _MLD_TYPES:
            self.ip6.nd6.mld_input(hdr, msg, body, m)
        else:
            self.drops["unhandled_type"] += 1

    def _error_input(self, hdr: IPv6Header, msg: Any, body: memoryview) -> None:
        quoted = _quoted(body)
        if quoted is None:
            self.drops["short_quote"] += 1
            return
        proto, src, dst, head = quoted
        mtu = 0
        if msg.type == icmp6_proto.PACKET_TOO_BIG:
            mtu = msg.data
            if src in self._local_addrs:
                self.ip6.pmtu_update(dst, mtu)
        if proto == IPPROTO_ICMPV6:
            if head[0] == icmp6_proto.ECHO_REQUEST:
                ident = (head[4] << 8) | head[5]
                seq = (head[6] << 8) | head[7]
                ping = self._pings.get(ident)
                error = PingError(seq, str(ipaddress.IPv6Address(hdr.src)), msg.type, msg.code)
                if ping is not None and ping.failed(error, trio.current_time()):
                    return
        else:
            pr = self._protocols.get(proto)
            ctlinput = pr[1] if pr is not None else None
            if ctlinput is not None and ctlinput(msg.type, msg.code, src, dst, head, mtu):
                return
        if msg.type == icmp6_proto.PACKET_TOO_BIG:
            return  # the path MTU took it
        self.drops["error_unmatched"] += 1

    # errors --------------------------------------------------------------

    def error(self, m: Mbuf, hdr: IPv6Header, type_: int, code: int, data: int = 0) -> None:
        """Send an ICMPv6 error about the received packet ``m`` (header
        ``hdr``), unless RFC 4443 2.4(e) or the rate limit forbids it; to a
        link-local source, out of the interface it came in by."""
        self.error_about(m.data, hdr, type_, code, data, link_multicast=bool(m.flags), ifp=m.rcvif)

    def error_about(
        self,
        raw: bytes | memoryview,
        hdr: IPv6Header,
        type_: int,
        code: int,
        data: int = 0,
        *,
        link_multicast: bool = False,
        ifp: Ifnet | None = None,
    ) -> None:
        """:meth:`error` for a packet given as bytes (``raw``, from its IPv6
        header on): a reassembly timeout's first fragment. ``ifp``: the
        interface it arrived on (for a link-local source)."""
        pointer = data if type_ == icmp6_proto.PARAM_PROB else None
        if not icmp6_proto.error6_allowed(raw, link_multicast=link_multicast, type=type_, code=code, pointer=pointer):
            self.drops["error_suppressed"] += 1
            return
        limit = self._sysctls.get("net.inet6.icmp6.errppslimit")
        if limit != self._limit:
            self._limit = limit
            self._limiter = icmp6_proto.Icmp6RateLimiter(rate=float(limit or 1), burst=max(1, min(limit, 10)))
        if limit and not self._limiter.allow(trio.current_time()):
            self.drops["error_ratelimited"] += 1
            return
        dst = hdr.src
        link_local = dst[0] == 0xFE and dst[1] & 0xC0 == 0x80
        out_ifp = ifp if link_local else None
        try:
            if out_ifp is None:
                out_ifp = self.ip6.route(dst)[0]
            src = hdr.dst if hdr.dst in self._local_addrs else self.ip6.select_source(dst, out_ifp)
            message = icmp6_proto.error6(type_, code, raw, src, dst, data)
            self.ip6.output(dst, IPPROTO_ICMPV6, message, src=src, ifp=out_ifp if link_local else None)
        except NetError as exc:
            self._count_errno("error", exc)
            return
        self.errors_sent[type_, code] += 1

    # ping ----------------------------------------------------------------

    async def ping(
        self,
        dst: bytes,
        *,
        count: int,
        size: int,
        ttl: int | None,
        timeout: float,
        interval: float,
        df: bool,
        ifp: Ifnet | None = None,
    ) -> PingResult:
        """``Host.ping``'s work for an IPv6 destination (``ttl`` is the hop
        limit; ``ifp`` the interface of a ``%zone``).

        Raises:
            ValueError: an argument out of its range (the message names it
                and the range).
            TypeError: an argument of the wrong type.
        """
        _check_int("size", size, 0, MAX_PING6_SIZE)
        _check_ping_arguments(count, 0, ttl, timeout, interval)
        self._ping_ident = (self._ping_ident + 1) & 0xFFFF

        def send(ident: int, seq: int, payload: bytes) -> None:
            _, _, src = self.ip6.route(dst, ifp=ifp)
            request = icmp6_proto.echo6(ident, seq, payload, src, dst)
            self.ip6.output(dst, IPPROTO_ICMPV6, request, src=src, ttl=ttl, df=df, ifp=ifp)

        return await run_ping(self._pings, self._ping_ident, send, count=count, size=size, timeout=timeout, interval=interval)
