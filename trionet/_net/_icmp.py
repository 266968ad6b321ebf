"""ICMP glue: echo, errors, and ``ping``.

- Input answers echo requests to this host's addresses (not broadcast
  echo, as BSD's default ``net.inet.icmp.bmcastecho=0``), hands echo replies
  and errors about our own echo requests to the ``ping`` that sent them,
  and reports destination-unreachable errors about UDP datagrams to the
  socket that sent them.
- :meth:`Icmp.error` sends an error about a received datagram, unless RFC
  1122 section 3.2.2 forbids it (about an ICMP error, a fragment other than
  the first, a broadcast or multicast, or from an unspecified source);
  suppressed errors are counted.
- :meth:`Icmp.ping` is ``ping``: echo requests paced by ``interval``, each
  waiting up to ``timeout`` for its reply; the result has the counts, the
  round-trip times and any errors that came back (time exceeded from a
  router, unreachable...).

DragonFly: ``sys/netinet/ip_icmp.c`` (``icmp_input``, ``icmp_error``,
``icmp_reflect``), ``sbin/ping``.
"""

from __future__ import annotations

import errno
import ipaddress
from collections import Counter
from typing import TYPE_CHECKING, Any

import attrs
import trio

from .._exceptions import NetError
from ..protocols import icmp as icmp_proto
from ..protocols.errors import RemoteProtocolError
from ..protocols.ipv4 import IPPROTO_ICMP, IPPROTO_UDP, IPv4Header
from ._ether import Mbuf

if TYPE_CHECKING:
    from ._ip import Ip

__all__ = ["Icmp", "PingError", "PingResult"]

_ERROR_TYPES = frozenset({3, 4, 5, 11, 12})

#: Largest ``size`` (bytes of echo data) and ``ttl`` of a ping.
MAX_PING_SIZE = 65507 - 8
MAX_TTL = 255


@attrs.frozen
class PingError:
    """An ICMP error (or a send failure) reported for one echo request."""

    seq: int
    source: str | None
    type: int
    code: int


@attrs.frozen
class PingResult:
    """What :meth:`Host.ping <trionet.Host.ping>` saw.

    Attributes:
        sent, received: echo requests sent and replies received.
        rtts: round-trip times of the replies, in seconds, in sequence order.
        errors: ICMP errors that came back instead of replies.
    """

    sent: int
    received: int
    rtts: tuple[float, ...]
    errors: tuple[PingError, ...]

    @property
    def rtt_min(self) -> float | None:
        return min(self.rtts) if self.rtts else None

    @property
    def rtt_avg(self) -> float | None:
        return sum(self.rtts) / len(self.rtts) if self.rtts else None

    @property
    def rtt_max(self) -> float | None:
        return max(self.rtts) if self.rtts else None


@attrs.define(eq=False)
class _Ping:
    events: dict[int, trio.Event] = attrs.field(factory=dict)
    sent_at: dict[int, float] = attrs.field(factory=dict)
    rtts: dict[int, float] = attrs.field(factory=dict)  # seq -> seconds
    errors: list[PingError] = attrs.field(factory=list)


def _check_ping_arguments(
    count: int, size: int, ttl: int | None, timeout: float, interval: float
) -> None:
    # Each message names the argument and its range (left to the packet
    # code, ttl=300 would end in struct's "ubyte format requires ...").
    _check_int("count", count, 1, None)
    _check_int("size", size, 0, MAX_PING_SIZE)
    if ttl is not None:
        _check_int("ttl", ttl, 0, MAX_TTL)
    _check_seconds("timeout", timeout, zero=False)
    _check_seconds("interval", interval, zero=True)


def _check_int(name: str, value: object, low: int, high: int | None) -> None:
    what = f"an int >= {low}" if high is None else f"an int from {low} to {high}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be {what}, not {value!r}")
    if value < low or (high is not None and value > high):
        raise ValueError(f"{name} must be {what}, not {value!r}")


def _check_seconds(name: str, value: object, *, zero: bool) -> None:
    what = f"a number of seconds {'>=' if zero else '>'} 0"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be {what}, not {value!r}")
    if not (value >= 0 if zero else value > 0):  # also refuses NaN
        raise ValueError(f"{name} must be {what}, not {value!r}")


def _quoted(body: memoryview) -> tuple[int, bytes, bytes, memoryview] | None:
    # The datagram an ICMP error quotes: (proto, src, dst, first 8 bytes of
    # its payload), or None if too short to tell.
    if len(body) < 20:
        return None
    ihl = (body[0] & 0x0F) * 4
    if ihl < 20 or len(body) < ihl + 8:
        return None
    return body[9], bytes(body[12:16]), bytes(body[16:20]), body[ihl : ihl + 8]


class Icmp:
    """A host's ICMP."""

    def __init__(self, ip: Ip) -> None:
        self.ip = ip
        self.drops: Counter[str] = Counter()
        self.counts: Counter[str] = Counter()
        self._pings: dict[int, _Ping] = {}
        self._ping_ident = 0
        self._received = 0
        self._lim_second = self._lim_count = 0
        ip.protocols[IPPROTO_ICMP] = self.input

    def statistics(self) -> dict[str, int]:
        """``received``, what was done with it (``echo_requests``,
        ``echo_replies``, ``errors_received``, ``errors_sent``...) and the
        drops by reason."""
        return {"received": self._received, **self.counts, **self.drops}

    # input ---------------------------------------------------------------

    def input(self, hdr: IPv4Header, payload: memoryview, m: Mbuf) -> None:
        self._received += 1
        try:
            msg, body = icmp_proto.IcmpMessage.parse(payload)
        except RemoteProtocolError as exc:
            self.drops[exc.reason] += 1
            return
        t = msg.type
        if t == icmp_proto.ECHO_REQUEST:
            if hdr.dst not in self.ip.host._local_addrs:
                self.drops["broadcast_echo"] += 1
                return
            self.counts["echo_requests"] += 1
            reply = icmp_proto.echo(msg.rest >> 16, msg.rest & 0xFFFF, bytes(body), reply=True)
            try:
                self.ip.output(hdr.src, IPPROTO_ICMP, reply, src=hdr.dst)
            except NetError as exc:
                self.drops[f"reply_{errno.errorcode.get(exc.errno, exc.errno)}".lower()] += 1
        elif t == icmp_proto.ECHO_REPLY:
            ping = self._pings.get(msg.rest >> 16)
            seq = msg.rest & 0xFFFF
            if ping is None or seq not in ping.events or ping.events[seq].is_set():
                self.drops["unexpected_reply"] += 1
                return
            self.counts["echo_replies"] += 1
            ping.rtts[seq] = trio.current_time() - ping.sent_at[seq]
            ping.events[seq].set()
        elif t in _ERROR_TYPES:
            self.counts["errors_received"] += 1
            self._error_input(hdr, msg, body)
        else:
            self.drops["unhandled_type"] += 1

    def _error_input(self, hdr: IPv4Header, msg: Any, body: memoryview) -> None:
        quoted = _quoted(body)
        if quoted is None:
            self.drops["short_quote"] += 1
            return
        proto, _src, dst, head = quoted
        source = str(ipaddress.IPv4Address(hdr.src))
        if proto == IPPROTO_ICMP and head[0] == icmp_proto.ECHO_REQUEST:
            ident = (head[4] << 8) | head[5]
            seq = (head[6] << 8) | head[7]
            ping = self._pings.get(ident)
            if ping is not None and seq in ping.events and not ping.events[seq].is_set():
                ping.errors.append(PingError(seq, source, msg.type, msg.code))
                ping.events[seq].set()
                return
        elif proto == IPPROTO_UDP and msg.type == icmp_proto.DEST_UNREACH:
            sport = (head[0] << 8) | head[1]
            dport = (head[2] << 8) | head[3]
            udp = self.ip.host.inet.udp
            if udp.icmp_unreachable(sport, dst, dport, msg.code):
                return
        self.drops["error_unmatched"] += 1

    # errors --------------------------------------------------------------

    def error(
        self, raw: bytes | memoryview, hdr: IPv4Header, type_: int, code: int, *, mtu: int = 0
    ) -> None:
        """Send an ICMP error about the received datagram ``raw`` (header ``hdr``).

        Callers do not call it for a datagram that came in a link-layer
        broadcast or multicast frame (``m.flags``).
        """
        host = self.ip.host
        src = hdr.src
        ihl = hdr.ihl * 4
        icmp_type = raw[ihl] if hdr.proto == IPPROTO_ICMP and len(raw) > ihl else None
        if not icmp_proto.error_allowed(
            src, hdr.dst, frag_offset=hdr.frag_offset, icmp_type=icmp_type,
            dst_broadcast=hdr.dst in host._broadcasts,
        ):
            # RFC 1122 3.2.2: never about an error, a later fragment, a
            # broadcast or multicast, or a source that is not one host.
            self.drops["error_suppressed"] += 1
            return
        # BSD's badport_bandlim: at most net.inet.icmp.icmplim errors per
        # second (0: no limit), so a flood cannot turn us into an amplifier.
        limit = host.sysctls.get("net.inet.icmp.icmplim")
        second = int(trio.current_time())
        if second != self._lim_second:
            self._lim_second, self._lim_count = second, 0
        if limit and self._lim_count >= limit:
            self.drops["error_ratelimited"] += 1
            return
        self._lim_count += 1
        data = icmp_proto.error(type_, code, bytes(raw), mtu=mtu)
        self.counts[f"errors_sent_{type_}_{code}"] += 1
        try:
            self.ip.output(src, IPPROTO_ICMP, data)
        except NetError as exc:
            self.drops[f"error_{errno.errorcode.get(exc.errno, exc.errno)}".lower()] += 1

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
    ) -> PingResult:
        """``Host.ping``'s work (see there); the arguments are checked here.

        Raises:
            ValueError: an argument out of its range (the message names it
                and the range).
            TypeError: an argument of the wrong type.
        """
        _check_ping_arguments(count, size, ttl, timeout, interval)
        self._ping_ident = (self._ping_ident + 1) & 0xFFFF
        ident = self._ping_ident
        state = self._pings[ident] = _Ping()
        sent = 0
        payload = bytes(i & 0xFF for i in range(size))
        # As BSD ping: requests go out every ``interval`` whatever comes
        # back; a reply counts if it arrives within ``timeout`` of its request.
        try:
            start = trio.current_time()
            for seq in range(count):
                await trio.sleep_until(start + seq * interval)
                state.sent_at[seq] = trio.current_time()
                event = state.events[seq] = trio.Event()
                try:
                    self.ip.output(
                        dst, IPPROTO_ICMP, icmp_proto.echo(ident, seq, payload), ttl=ttl, df=df
                    )
                    sent += 1
                except NetError as exc:
                    state.errors.append(PingError(seq, None, -1, exc.errno))
                    event.set()
            for seq in range(count):
                with trio.move_on_at(state.sent_at[seq] + timeout):
                    await state.events[seq].wait()
        finally:
            del self._pings[ident]
        rtts = tuple(rtt for _, rtt in sorted(state.rtts.items()) if rtt <= timeout)
        return PingResult(sent, len(rtts), rtts, tuple(state.errors))
