"""ICMP glue: echo, errors, and ``ping``.

- Input answers echo requests to this host's addresses (not broadcast
  echo, as BSD's default ``net.inet.icmp.bmcastecho=0``), and hands echo
  replies and errors about our own echo requests to the ``ping`` that sent
  them.
- An error (destination unreachable, source quench, redirect, time
  exceeded, parameter problem) about another protocol's datagram goes to
  that protocol's ``ctlinput`` through IP's protocol switch, with the
  quoted datagram's addresses, the first 8 bytes of its payload, and for
  "fragmentation needed" the next-hop MTU (when the router sent none, RFC
  1191 section 5's old-style message, the plateau below the quoted
  datagram's length, RFC 1191 section 7). UDP reports unreachables to a
  connected socket; TCP aborts a connection attempt, records a soft error
  or lowers its segment size (see :mod:`trionet._net._tcp`). An error no
  one claims is counted ``error_unmatched``; one too short to tell,
  ``short_quote``.
- :meth:`Icmp.error` sends an error about a received datagram, unless RFC
  1122 section 3.2.2 forbids it (about an ICMP error, a fragment other than
  the first, a broadcast or multicast, or from an unspecified source);
  suppressed errors are counted.
- :meth:`Icmp.ping` is ``ping``: echo requests paced by ``interval``, each
  waiting up to ``timeout`` for its reply; the result has the counts, the
  round-trip times and any errors that came back (time exceeded from a
  router, unreachable...). Sequence numbers wrap modulo 65536, as BSD
  ``ping``'s do; a reply goes to the oldest request with its sequence number
  still waiting for one.

DragonFly: ``sys/netinet/ip_icmp.c`` (``icmp_input``, which calls the
protocol's ``pr_ctlinput``; ``icmp_error``, ``icmp_reflect``), ``ip_input.c``
(``ip_next_mtu``), ``sbin/ping``.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs
import trio

from .._exceptions import NetError
from ..protocols import icmp as icmp_proto
from ..protocols.errors import RemoteProtocolError
from ..protocols.ipv4 import IPPROTO_ICMP, IPv4Header
from ._ether import Mbuf
from ._layer import ProtoLayer

if TYPE_CHECKING:
    from ._if import Ifnet
    from ._ip import Ip

__all__ = ["Icmp", "IcmpStatistics", "PingError", "PingResult"]

_ERROR_TYPES = frozenset({3, 4, 5, 11, 12})

#: The ICMP echo sequence number is 16 bits wide.
SEQ_MOD = 1 << 16
#: Largest ``size`` (bytes of echo data) and ``ttl`` of a ping.
MAX_PING_SIZE = 65507 - 8
MAX_TTL = 255


@attrs.frozen
class PingError:
    """An ICMP error (or a send failure) reported for one echo request.

    Attributes:
        seq: the request's ICMP sequence number (its index modulo 65536).
        source: who sent the error (None for a send failure).
        type, code: the ICMP type and code (-1 and the errno for a send
            failure).
    """

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
    # One ping's requests, by index (0, 1, ... count - 1); request i carries
    # sequence number i % SEQ_MOD.
    timeout: float
    events: dict[int, trio.Event] = attrs.field(factory=dict)
    sent_at: dict[int, float] = attrs.field(factory=dict)
    rtts: dict[int, float] = attrs.field(factory=dict)  # index -> seconds
    errors: list[PingError] = attrs.field(factory=list)
    # sequence number -> indices of the requests carrying it that have no
    # answer yet, oldest first (more than one only after a wrap).
    waiting: dict[int, list[int]] = attrs.field(factory=dict)

    def sent(self, index: int, now: float) -> trio.Event:
        self.sent_at[index] = now
        self.waiting.setdefault(index % SEQ_MOD, []).append(index)
        event = self.events[index] = trio.Event()
        return event

    def unsent(self, index: int) -> None:
        self.waiting[index % SEQ_MOD].remove(index)

    def replied(self, seq: int, now: float) -> bool:
        """An echo reply with ``seq`` arrived: record its round trip and wake
        the ping. False if no request with ``seq`` waits (not counted)."""
        index = self.claim(seq, now)
        if index is None:
            return False
        self.rtts[index] = now - self.sent_at[index]
        self.events[index].set()
        return True

    def failed(self, error: PingError, now: float) -> bool:
        """An ICMP error came back for the request with ``error.seq``:
        record it and wake the ping. False if no such request waits."""
        index = self.claim(error.seq, now)
        if index is None:
            return False
        self.errors.append(error)
        self.events[index].set()
        return True

    def claim(self, seq: int, now: float) -> int | None:
        """The request an answer carrying ``seq`` belongs to, taken off the
        waiting list; None if no request with ``seq`` waits.

        After a wrap two requests may share ``seq``: the answer goes to the
        oldest one still within its ``timeout`` (answers come back in order),
        else to the newest (a late answer, which will not count).
        """
        waiting = self.waiting.get(seq)
        if not waiting:
            return None
        index = next((i for i in waiting if now <= self.sent_at[i] + self.timeout), waiting[-1])
        waiting.remove(index)
        return index


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


#: RFC 1191 section 7's plateau table (BSD ``ip_next_mtu``'s ``mtutab``).
MTU_PLATEAUS = (65535, 32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296, 68)


def next_mtu(rest: int, quoted_length: int) -> int:
    """The next-hop MTU of a "fragmentation needed" message: its own field
    (the low 16 bits of ``rest``) if it is one (at least 68, RFC 791's
    minimum), else the plateau below the quoted datagram's total length
    (RFC 1191 sections 5 and 7)."""
    mtu = rest & 0xFFFF
    if mtu >= 68:
        return mtu
    for plateau in MTU_PLATEAUS:
        if plateau < quoted_length:
            return plateau
    return 68


def _quoted(body: memoryview) -> tuple[int, bytes, bytes, memoryview] | None:
    # The datagram an ICMP error quotes: (proto, src, dst, first 8 bytes of
    # its payload), or None if too short to tell.
    if len(body) < 20:
        return None
    ihl = (body[0] & 0x0F) * 4
    if ihl < 20 or len(body) < ihl + 8:
        return None
    return body[9], bytes(body[12:16]), bytes(body[16:20]), body[ihl : ihl + 8]


@attrs.frozen
class IcmpStatistics:
    """A host's ICMP counters (``netstat -s -p icmp``).

    Attributes:
        received: ICMP messages that reached input.
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


class Icmp(ProtoLayer):
    """A host's ICMP."""

    def __init__(self, ip: Ip, local_addrs: dict[bytes, Ifnet], broadcasts: set[bytes]) -> None:
        super().__init__()
        self.ip = ip
        self._local_addrs = local_addrs
        self._broadcasts = broadcasts
        self._protocols = ip.protocols
        self._sysctls = ip.host.sysctls
        self.counts: Counter[str] = Counter()
        self.errors_sent: Counter[tuple[int, int]] = Counter()
        self._pings: dict[int, _Ping] = {}
        self._ping_ident = 0
        self._received = 0
        self._lim_second = self._lim_count = 0
        # No ctlinput: errors about echo requests are ping's, handled below.
        ip.protocols[IPPROTO_ICMP] = (self.input, None)

    def statistics(self) -> IcmpStatistics:
        """A snapshot of the counters."""
        counts = self.counts
        return IcmpStatistics(
            self._received,
            counts["echo_requests"],
            counts["echo_replies"],
            counts["errors_received"],
            dict(self.errors_sent),
            self._drop_counts(),
        )

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
            if hdr.dst not in self._local_addrs:
                self.drops["broadcast_echo"] += 1
                return
            self.counts["echo_requests"] += 1
            reply = icmp_proto.echo(msg.rest >> 16, msg.rest & 0xFFFF, bytes(body), reply=True)
            try:
                self.ip.output(hdr.src, IPPROTO_ICMP, reply, src=hdr.dst)
            except NetError as exc:
                self._count_errno("reply", exc)
        elif t == icmp_proto.ECHO_REPLY:
            ping = self._pings.get(msg.rest >> 16)
            if ping is None or not ping.replied(msg.rest & 0xFFFF, trio.current_time()):
                self.drops["unexpected_reply"] += 1
                return
            self.counts["echo_replies"] += 1
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
        proto, src, dst, head = quoted
        if proto == IPPROTO_ICMP:
            if head[0] == icmp_proto.ECHO_REQUEST:
                ident = (head[4] << 8) | head[5]
                seq = (head[6] << 8) | head[7]
                ping = self._pings.get(ident)
                error = PingError(seq, str(ipaddress.IPv4Address(hdr.src)), msg.type, msg.code)
                if ping is not None and ping.failed(error, trio.current_time()):
                    return
        else:
            pr = self._protocols.get(proto)
            ctlinput = pr[1] if pr is not None else None
            if ctlinput is not None:
                mtu = 0
                if msg.type == icmp_proto.DEST_UNREACH and msg.code == icmp_proto.UNREACH_NEEDFRAG:
                    mtu = next_mtu(msg.rest, (body[2] << 8) | body[3])
                if ctlinput(msg.type, msg.code, src, dst, head, mtu):
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
        src = hdr.src
        ihl = hdr.ihl * 4
        icmp_type = raw[ihl] if hdr.proto == IPPROTO_ICMP and len(raw) > ihl else None
        if not icmp_proto.error_allowed(
            src, hdr.dst, frag_offset=hdr.frag_offset, icmp_type=icmp_type,
            dst_broadcast=hdr.dst in self._broadcasts,
        ):
            # RFC 1122 3.2.2: never about an error, a later fragment, a
            # broadcast or multicast, or a source that is not one host.
            self.drops["error_suppressed"] += 1
            return
        # BSD's badport_bandlim: at most net.inet.icmp.icmplim errors per
        # second (0: no limit), so a flood cannot turn us into an amplifier.
        limit = self._sysctls.get("net.inet.icmp.icmplim")
        second = int(trio.current_time())
        if second != self._lim_second:
            self._lim_second, self._lim_count = second, 0
        if limit and self._lim_count >= limit:
            self.drops["error_ratelimited"] += 1
            return
        self._lim_count += 1
        data = icmp_proto.error(type_, code, bytes(raw), mtu=mtu)
        self.errors_sent[type_, code] += 1
        try:
            self.ip.output(src, IPPROTO_ICMP, data)
        except NetError as exc:
            self._count_errno("error", exc)

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

        def send(ident: int, seq: int, payload: bytes) -> None:
            self.ip.output(dst, IPPROTO_ICMP, icmp_proto.echo(ident, seq, payload), ttl=ttl, df=df)

        return await run_ping(self._pings, self._ping_ident, send, count=count, size=size, timeout=timeout, interval=interval)


async def run_ping(
    pings: dict[int, _Ping],
    ident: int,
    send: Callable[[int, int, bytes], None],
    *,
    count: int,
    size: int,
    timeout: float,
    interval: float,
) -> PingResult:
    """``ping``'s loop, for ICMP and ICMPv6: ``count`` requests ``interval``
    seconds apart, ``send(ident, seq, payload)`` for each (a
    :class:`NetError` it raises is the request's error), then wait for each
    reply up to ``timeout`` after its request. Input finds the requests in
    ``pings[ident]`` while it runs.

    Cancellation: the requests sent stay sent; their replies are dropped.
    """
    state = pings[ident] = _Ping(timeout)
    sent = 0
    payload = bytes(i & 0xFF for i in range(size))
    # As BSD ping: requests go out every ``interval`` whatever comes
    # back; a reply counts if it arrives within ``timeout`` of its
    # request. Request i carries sequence number i % 65536 (DragonFly:
    # ping.c stores ntransmitted with htons()).
    try:
        start = trio.current_time()
        for index in range(count):
            await trio.sleep_until(start + index * interval)
            event = state.sent(index, trio.current_time())
            seq = index % SEQ_MOD
            try:
                send(ident, seq, payload)
                sent += 1
            except NetError as exc:
                state.unsent(index)
                state.errors.append(PingError(seq, None, -1, exc.errno))
                event.set()
        for index in range(count):
            with trio.move_on_at(state.sent_at[index] + timeout):
                await state.events[index].wait()
    finally:
        del pings[ident]
    rtts = tuple(rtt for _, rtt in sorted(state.rtts.items()) if rtt <= timeout)
    return PingResult(sent, len(rtts), rtts, tuple(state.errors))
