"""ICMP for IPv6 (RFC 4443): the message header, echo, errors and their rules.

What :meth:`Icmp6Message.parse` checks, before reading each field:

1. At least the 8-byte header (``"short_header"``).
2. The checksum over the IPv6 pseudo-header (RFC 8200 8.1, next header 58)
   and the whole message (``"bad_checksum"``). Unlike ICMP for IPv4, the
   pseudo-header is covered, so parse needs the packet's addresses.

What it does not check: the type and code (any pair parses; the glue, and
:mod:`.ndp` and :mod:`.mld` for theirs, decide what is handled), and the
body (an error's quoted packet is only as long as the sender chose).

The 4 bytes after the checksum are kept as one integer, ``data``:
``ident << 16 | seq`` for echo, the MTU for Packet Too Big, the pointer for
Parameter Problem, 0 (unused) for the other errors; :mod:`.ndp` and
:mod:`.mld` read their own fields out of it.

:func:`error6` quotes as much of the offending packet as keeps the error
within the IPv6 minimum MTU of 1280 bytes (RFC 4443 2.4(c)).
:func:`error6_allowed` holds RFC 4443 2.4(e)'s list of packets that must
never draw an error, and :class:`Icmp6RateLimiter` its rate limit (2.4(f)).

Bounds: the header is 8 bytes; parse allocates the header value and a
:class:`memoryview` of the body; an error message is at most 1240 bytes
(1280 less the 40-byte IPv6 header); :func:`error6_allowed` reads at most
the bytes given, one extension header at a time.

DragonFly: ``sys/netinet6/icmp6.c`` (``icmp6_input``, ``icmp6_error``,
``icmp6_ratelimit``).
"""

from __future__ import annotations

import struct

import attrs

from .checksum import ones_complement_sum, pseudo_header_sum
from .errors import RemoteProtocolError

__all__ = [
    "DST_UNREACH",
    "ECHO_REPLY",
    "ECHO_REQUEST",
    "ERROR_TYPES",
    "ICMP6_HDR_LEN",
    "IPPROTO_ICMPV6",
    "IPV6_MIN_MTU",
    "MLDV2_LISTENER_REPORT",
    "MLD_LISTENER_DONE",
    "MLD_LISTENER_QUERY",
    "MLD_LISTENER_REPORT",
    "ND_NEIGHBOR_ADVERT",
    "ND_NEIGHBOR_SOLICIT",
    "ND_REDIRECT",
    "ND_ROUTER_ADVERT",
    "ND_ROUTER_SOLICIT",
    "PACKET_TOO_BIG",
    "PARAMPROB_HEADER",
    "PARAMPROB_NEXTHEADER",
    "PARAMPROB_OPTION",
    "PARAM_PROB",
    "TIMXCEED_HOPLIMIT",
    "TIMXCEED_REASS",
    "TIME_EXCEEDED",
    "UNREACH_ADDR",
    "UNREACH_ADMIN",
    "UNREACH_BEYONDSCOPE",
    "UNREACH_NOPORT",
    "UNREACH_NOROUTE",
    "Icmp6Message",
    "Icmp6RateLimiter",
    "Icmp6RateLimiterStatistics",
    "echo6",
    "error6",
    "error6_allowed",
]

IPPROTO_ICMPV6 = 58
ICMP6_HDR_LEN = 8
IPV6_MIN_MTU = 1280
"""The IPv6 minimum link MTU (RFC 8200 5), the bound on an error packet."""

# Types and codes, BSD names (netinet/icmp6.h, without the ICMP6_ prefix).
DST_UNREACH = 1
UNREACH_NOROUTE = 0
UNREACH_ADMIN = 1
UNREACH_BEYONDSCOPE = 2
UNREACH_ADDR = 3
UNREACH_NOPORT = 4
PACKET_TOO_BIG = 2
"""``data`` carries the next-hop MTU."""
TIME_EXCEEDED = 3
TIMXCEED_HOPLIMIT = 0
"""Hop limit reached zero in transit."""
TIMXCEED_REASS = 1
"""Fragment reassembly time exceeded."""
PARAM_PROB = 4
"""``data`` carries the pointer: the offset in the quoted packet of the fault."""
PARAMPROB_HEADER = 0
PARAMPROB_NEXTHEADER = 1
PARAMPROB_OPTION = 2

ECHO_REQUEST = 128
ECHO_REPLY = 129
MLD_LISTENER_QUERY = 130
MLD_LISTENER_REPORT = 131
MLD_LISTENER_DONE = 132
ND_ROUTER_SOLICIT = 133
ND_ROUTER_ADVERT = 134
ND_NEIGHBOR_SOLICIT = 135
ND_NEIGHBOR_ADVERT = 136
ND_REDIRECT = 137
MLDV2_LISTENER_REPORT = 143

ERROR_TYPES = frozenset({DST_UNREACH, PACKET_TOO_BIG, TIME_EXCEEDED, PARAM_PROB})
"""The error types RFC 4443 defines. Every type below 128 is an error
message (RFC 4443 2.1), and :func:`error6_allowed` treats them all so."""

_HDR = struct.Struct("!BBHI")
_pack = _HDR.pack
_unpack_from = _HDR.unpack_from

_IP6_HLEN = 40
_MAX_QUOTE = IPV6_MIN_MTU - _IP6_HLEN - ICMP6_HDR_LEN  # 1232
_FOLD_MIN = 16384  # as in checksum.py


def _pseudo_sum(src: bytes, dst: bytes, length: int) -> int:
    # The IPv6 pseudo-header (RFC 8200 8.1) is src, dst, a 32-bit
    # upper-layer length and 24 zero bits then the next header. Its
    # one's-complement sum equals the IPv4 pseudo-header's for the same
    # fields: the sum is order-independent over 16-bit words, a length below
    # 65536 has a zero high word, and the next header lands in the low byte
    # of a word either way. So checksum.pseudo_header_sum, given 16-byte
    # addresses, is the IPv6 sum too.
    return pseudo_header_sum(src, dst, IPPROTO_ICMPV6, length)


@attrs.frozen
class Icmp6Message:
    """An ICMPv6 header.

    Attributes:
        type: the message type, 0..255 (below 128 an error, else
            informational).
        code: the code, 0..255.
        data: the 4 bytes after the checksum as an unsigned integer
            (``ident << 16 | seq`` for echo, the MTU for Packet Too Big, the
            pointer for Parameter Problem, 0 otherwise).
    """

    type: int
    code: int
    data: int = attrs.field(default=0, repr=hex)

    @classmethod
    def parse(
        cls, data: bytes | bytearray | memoryview, src: bytes, dst: bytes
    ) -> tuple[Icmp6Message, memoryview]:
        """Parse and verify the ICMPv6 message ``data`` (the whole upper-layer payload).

        Args:
            data: the message, from its type byte to the end of the packet.
            src, dst: the IPv6 packet's source and destination, 16 bytes
                each (the final destination, after a routing header), for
                the pseudo-header.

        Returns:
            The header and a view of the body after the 8-byte header.

        Raises:
            RemoteProtocolError: ``"short_header"`` or ``"bad_checksum"``.
        """
        n = len(data)
        if n < 8:
            raise RemoteProtocolError("short_header", f"{n} bytes, need 8")
        # The message read as one integer is congruent, modulo 0xFFFF, to the
        # sum of its 16-bit words (checksum.py); an odd tail is padded with a
        # zero byte, i.e. shifted up by 8 bits. A correct message sums to
        # 0xFFFF with the pseudo-header, never to 0 (next header 58 is in it).
        if n < _FOLD_MIN:
            whole = int.from_bytes(data, "big")
            if n & 1:
                whole <<= 8
            bad = (whole + _pseudo_sum(src, dst, n)) % 0xFFFF
        else:  # checksum.py folds long buffers faster than one division
            bad = ones_complement_sum(data, _pseudo_sum(src, dst, n)) != 0xFFFF
        if bad:
            raise RemoteProtocolError("bad_checksum")
        type_, code, _, rest = _unpack_from(data)
        return cls(type_, code, rest), memoryview(data)[8:]

    def emit(self, src: bytes, dst: bytes, body: bytes | bytearray | memoryview = b"") -> bytes:
        """The message: this header, its checksum computed for ``src`` -> ``dst``, and ``body``.

        Raises:
            ValueError: a field is out of range, an address is not 16 bytes,
                or the message exceeds 65535 bytes.
        """
        type_, code, rest = self.type, self.code, self.data
        if not (0 <= type_ <= 0xFF and 0 <= code <= 0xFF and 0 <= rest <= 0xFFFFFFFF):
            raise ValueError(f"type and code must be 0..255, data 0..2**32-1: {self!r}")
        if len(src) != 16 or len(dst) != 16:
            raise ValueError("src and dst must be 16-byte IPv6 addresses")
        length = 8 + len(body)
        if length > 0xFFFF:
            raise ValueError(f"an ICMPv6 message is at most 65535 bytes here, this one {length}")
        # The 8-byte header's words line up with the body's: add its sum as
        # an integer instead of concatenating first.
        initial = _pseudo_sum(src, dst, length) + (type_ << 8 | code) + (rest >> 16) + (rest & 0xFFFF)
        csum = ~ones_complement_sum(body, initial) & 0xFFFF
        return _pack(type_, code, csum, rest) + body


def echo6(
    ident: int,
    seq: int,
    payload: bytes | bytearray | memoryview,
    src: bytes,
    dst: bytes,
    reply: bool = False,
) -> bytes:
    """An echo request (or, with ``reply``, an echo reply) message.

    Args:
        ident: the identifier, 0..65535.
        seq: the sequence number, 0..65535.
        payload: the data to echo.
        src, dst: the IPv6 source and destination, for the checksum.
        reply: build an echo reply instead of a request.

    Raises:
        ValueError: ``ident`` or ``seq`` out of range, or a bad address.
    """
    if not (0 <= ident <= 0xFFFF and 0 <= seq <= 0xFFFF):
        raise ValueError(f"ident and seq must be 0..65535, got {ident} and {seq}")
    return Icmp6Message(ECHO_REPLY if reply else ECHO_REQUEST, 0, ident << 16 | seq).emit(src, dst, payload)


def error6(
    type: int,  # noqa: A002
    code: int,
    original: bytes | bytearray | memoryview,
    src: bytes,
    dst: bytes,
    data: int = 0,
) -> bytes:
    """An ICMPv6 error message about the received packet ``original``.

    The body quotes ``original`` from its IPv6 header on, as much of it as
    keeps the error packet (a 40-byte IPv6 header, the 8-byte ICMPv6 header
    and the quote) within 1280 bytes: at most 1232 bytes (RFC 4443 2.4(c)).
    Whether an error may be sent at all is :func:`error6_allowed`'s
    question; ask it first, and then :class:`Icmp6RateLimiter`.

    Args:
        type: an error type, below 128 (:data:`ERROR_TYPES`).
        code: the code.
        original: the offending packet, from its IPv6 header on.
        src, dst: the error's own source and destination (``dst`` is
            normally ``original``'s source), for the checksum.
        data: the MTU for :data:`PACKET_TOO_BIG`, the pointer for
            :data:`PARAM_PROB`, 0 otherwise.

    Raises:
        ValueError: ``type`` is not an error type, or a field is out of range.

    DragonFly: ``icmp6_error`` in ``sys/netinet6/icmp6.c``.
    """
    if not 0 <= type < 128:
        raise ValueError(f"type {type} is not an ICMPv6 error type (0..127)")
    return Icmp6Message(type, code, data).emit(src, dst, memoryview(original)[:_MAX_QUOTE])


####################################################################
# When an error may be sent (RFC 4443 2.4(e))
####################################################################

# Extension headers with the common layout "next header, length in 8-octet
# units not counting the first 8" (RFC 8200 4 and RFC 7045): hop-by-hop,
# routing, destination options, mobility, HIP, shim6, and the experimental
# 253 and 254 (RFC 4727).
_GENERIC_EXT = frozenset({0, 43, 60, 135, 139, 140, 253, 254})
_FRAGMENT = 44
_AH = 51  # length in 4-octet units, not counting the first 8 (RFC 4302 2.2)


def _upper_icmp6_type(packet: bytes | bytearray | memoryview) -> int | None:
    """The ICMPv6 type ``packet`` (an IPv6 packet of at least 40 bytes)
    carries, or ``None`` when it is not ICMPv6 or that cannot be told
    (truncated, ESP, a non-first fragment, an unknown header)."""
    nh = packet[6]
    off = _IP6_HLEN
    n = len(packet)
    # Each header is at least 8 bytes long, so the walk ends within n / 8 steps.
    while True:
        if nh == IPPROTO_ICMPV6:
            return packet[off] if off < n else None
        if off + 8 > n:
            return None
        if nh in _GENERIC_EXT:
            nh, off = packet[off], off + (packet[off + 1] + 1) * 8
        elif nh == _FRAGMENT:
            if (packet[off + 2] << 8 | packet[off + 3]) & 0xFFF8:
                return None  # a later fragment: the upper layer is elsewhere
            nh, off = packet[off], off + 8
        elif nh == _AH:
            nh, off = packet[off], off + (packet[off + 1] + 2) * 4
        else:
            return None  # another upper layer, No Next Header (59), ESP (50)...


def error6_allowed(
    original: bytes | bytearray | memoryview,
    *,
    link_multicast: bool,
    type: int,  # noqa: A002
    code: int,
    pointer: int | None = None,
    src_anycast: bool = False,
) -> bool:
    """Whether an ICMPv6 error may be sent about the received packet ``original`` (RFC 4443 2.4(e)).

    An error must not be sent about:

    1. an ICMPv6 error message (any type below 128);
    2. an ICMPv6 Redirect;
    3. a packet sent to an IPv6 multicast address;
    4. a packet that arrived as a link-layer multicast, or
    5. as a link-layer broadcast (``link_multicast`` covers both);
    6. a packet whose source is not a single node: unspecified (::),
       multicast, or an address the caller knows to be anycast
       (``src_anycast``).

    Items 3 to 5 have two exceptions: Packet Too Big (path MTU discovery
    for multicast), and Parameter Problem code 2 about an unrecognized
    option whose type has the high-order bits 10 (RFC 8200 4.2). For the
    latter the option type is read from ``original`` at ``pointer``; without
    a pointer, or with one outside ``original``, the exception is not made.

    ``original`` is read defensively: shorter than an IPv6 header, or not
    version 6, gives ``False``. Its extension headers are walked only as far
    as needed to find whether its upper layer is ICMPv6; when that cannot be
    told (truncated, ESP, a non-first fragment, an unknown header) the packet
    is taken not to be an error message. Never raises for any bytes.

    Args:
        original: the offending packet, from its IPv6 header on.
        link_multicast: it arrived in a link-layer multicast or broadcast
            frame.
        type, code: the error that would be sent.
        pointer: for Parameter Problem, the pointer the error would carry.
        src_anycast: ``original``'s source is one of our anycast addresses
            (only the glue knows them).

    DragonFly: ``icmp6_error`` in ``sys/netinet6/icmp6.c``.
    """
    n = len(original)
    if n < _IP6_HLEN or original[0] >> 4 != 6:
        return False
    # Item 6: the source (bytes 8..24) is ::, multicast, or anycast.
    if src_anycast or original[8] == 0xFF or not any(original[8:24]):
        return False
    if link_multicast or original[24] == 0xFF:
        exempt = type == PACKET_TOO_BIG or (
            type == PARAM_PROB
            and code == PARAMPROB_OPTION
            and pointer is not None
            and 0 <= pointer < n
            and original[pointer] >> 6 == 0b10
        )
        if not exempt:
            return False
    upper = _upper_icmp6_type(original)
    return upper is None or (upper >= 128 and upper != ND_REDIRECT)


####################################################################
# Rate limiting (RFC 4443 2.4(f))
####################################################################


@attrs.frozen
class Icmp6RateLimiterStatistics:
    """A snapshot of an :class:`Icmp6RateLimiter`.

    Attributes:
        allowed: errors let through.
        suppressed: errors refused for want of a token.
        tokens: tokens in the bucket at the last :meth:`~Icmp6RateLimiter.allow`.
    """

    allowed: int
    suppressed: int
    tokens: float


class Icmp6RateLimiter:
    """A token bucket for outgoing ICMPv6 errors (RFC 4443 2.4(f)); sans-IO.

    The bucket holds at most ``burst`` tokens and gains ``rate`` per second;
    each error sent takes one. It starts full. Time only moves forward: a
    ``now`` earlier than the last one seen adds nothing.

    Args:
        rate: tokens added per second (errors per second, sustained).
        burst: the bucket's capacity (errors sent back to back).

    :meth:`statistics` fields: see :class:`Icmp6RateLimiterStatistics`.

    DragonFly: ``icmp6_ratelimit`` in ``sys/netinet6/icmp6.c`` (a
    ``ppsratecheck`` of ``icmp6errppslim``, 100 per second). Like Linux's
    ``net.ipv6.icmp.ratelimit`` the bucket allows a burst; Divergence: Linux
    keeps one bucket per destination, this is one per instance, which the
    glue may keep per host or per destination.
    """

    def __init__(self, *, rate: float = 100.0, burst: int = 10) -> None:
        if not rate > 0 or burst < 1:
            raise ValueError(f"rate must be positive and burst at least 1, got {rate} and {burst}")
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._last: float | None = None
        self._allowed = 0
        self._suppressed = 0

    def allow(self, now: float) -> bool:
        """Take a token if there is one: whether an error may be sent at ``now``."""
        last = self._last
        if last is not None and now > last:
            tokens = self._tokens + (now - last) * self.rate
            self._tokens = tokens if tokens < self.burst else float(self.burst)
        if last is None or now > last:
            self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            self._allowed += 1
            return True
        self._suppressed += 1
        return False

    def statistics(self) -> Icmp6RateLimiterStatistics:
        """A snapshot of the counters."""
        return Icmp6RateLimiterStatistics(self._allowed, self._suppressed, self._tokens)
