"""ICMP for IPv4 (RFC 792), with RFC 1122 section 3.2.2's rules for errors.

What :meth:`IcmpMessage.parse` checks, before reading each field:

1. At least the 8-byte header (``"short_header"``).
2. The checksum over the whole message (``"bad_checksum"``).

What it does not check: the type and code (any pair parses; the glue decides
what it handles and counts the rest), and the body (an error's quoted
datagram is only as long as the sender chose; the glue reads it with length
checks of its own).

The 4-byte "rest of header" after the checksum is kept as one integer,
``rest``: ``ident << 16 | seq`` for echo, the next-hop MTU for "fragmentation
needed" (RFC 1191: the high 16 bits are unused), 0 for the other errors here.

:func:`error` quotes the offending datagram's IP header and the first 8 bytes
of its payload (RFC 792; RFC 1812 allows routers to quote more, DragonFly
quotes 8 by default). :func:`error_allowed` holds RFC 1122 3.2.2's list of
datagrams that must never draw an error.

Bounds: the header is 8 bytes; parse allocates the header value and a
:class:`memoryview` of the body; an error message is at most 8 + 60 + 8 bytes.

DragonFly: ``sys/netinet/ip_icmp.c`` (``icmp_input``, ``icmp_error``).
"""

from __future__ import annotations

import struct

import attrs

from .checksum import internet_checksum, ones_complement_sum
from .errors import RemoteProtocolError

__all__ = [
    "DEST_UNREACH",
    "ECHO_REPLY",
    "ECHO_REQUEST",
    "ERROR_TYPES",
    "ICMP_HDR_LEN",
    "IPPROTO_ICMP",
    "PARAM_PROBLEM",
    "REDIRECT",
    "SOURCE_QUENCH",
    "TIMXCEED_INTRANS",
    "TIMXCEED_REASS",
    "TIME_EXCEEDED",
    "UNREACH_HOST",
    "UNREACH_NEEDFRAG",
    "UNREACH_NET",
    "UNREACH_PORT",
    "UNREACH_PROTO",
    "IcmpMessage",
    "echo",
    "error",
    "error_allowed",
]

IPPROTO_ICMP = 1
ICMP_HDR_LEN = 8

ECHO_REPLY = 0
DEST_UNREACH = 3
SOURCE_QUENCH = 4
REDIRECT = 5
ECHO_REQUEST = 8
TIME_EXCEEDED = 11
PARAM_PROBLEM = 12

# Codes, BSD names (netinet/ip_icmp.h, without the ICMP_ prefix).
UNREACH_NET = 0
UNREACH_HOST = 1
UNREACH_PROTO = 2
UNREACH_PORT = 3
UNREACH_NEEDFRAG = 4
"""Fragmentation needed and DF set; ``rest`` carries the next-hop MTU (RFC 1191)."""
TIMXCEED_INTRANS = 0
"""TTL reached zero in transit."""
TIMXCEED_REASS = 1
"""Fragment reassembly time exceeded."""

ERROR_TYPES = frozenset({DEST_UNREACH, SOURCE_QUENCH, REDIRECT, TIME_EXCEEDED, PARAM_PROBLEM})
"""ICMP error messages (RFC 1122 3.2.2); every other type is a query or reply."""

# DragonFly's ICMP_INFOTYPE: the query/reply types. Any other type counts as
# an error for error_allowed, as in icmp_error(), so an unknown type never
# draws an error either.
_INFO_TYPES = frozenset({0, 8, 9, 10, 13, 14, 15, 16, 17, 18})

_HDR = struct.Struct("!BBHI")
_IP_MIN_HLEN = 20


@attrs.frozen
class IcmpMessage:
    """An ICMP header.

    Attributes:
        type: the message type, 0..255.
        code: the code, 0..255.
        rest: the 4 bytes after the checksum as an unsigned integer.
    """

    type: int
    code: int
    rest: int = attrs.field(default=0, repr=hex)

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> tuple[IcmpMessage, memoryview]:
        """Parse and verify the ICMP message ``data`` (the whole IP payload).

        Returns:
            The header and a view of the body after the 8-byte header (echo
            data, or the quoted datagram of an error).

        Raises:
            RemoteProtocolError: ``"short_header"`` or ``"bad_checksum"``.
        """
        n = len(data)
        if n < 8:
            raise RemoteProtocolError("short_header", f"{n} bytes, need 8")
        if internet_checksum(data):
            raise RemoteProtocolError("bad_checksum")
        type_, code, _, rest = _HDR.unpack_from(data)
        return cls(type_, code, rest), memoryview(data)[8:]

    def emit(self, payload: bytes | bytearray | memoryview = b"") -> bytes:
        """The message: this header, with its checksum computed, and ``payload``.

        Raises:
            ValueError: a field is out of range.
        """
        type_, code, rest = self.type, self.code, self.rest
        if not (0 <= type_ <= 0xFF and 0 <= code <= 0xFF and 0 <= rest <= 0xFFFFFFFF):
            raise ValueError(f"type and code must be 0..255, rest 0..2**32-1: {self!r}")
        # The header is 8 bytes, so its words line up with the payload's; its
        # sum is added as an integer instead of concatenating first.
        initial = (type_ << 8 | code) + (rest >> 16) + (rest & 0xFFFF)
        csum = ~ones_complement_sum(payload, initial) & 0xFFFF
        return _HDR.pack(type_, code, csum, rest) + payload


def echo(ident: int, seq: int, payload: bytes | bytearray | memoryview = b"", reply: bool = False) -> bytes:
    """An echo request (or, with ``reply``, an echo reply) message.

    Args:
        ident: the identifier, 0..65535.
        seq: the sequence number, 0..65535.
        payload: the data to echo.
        reply: build an echo reply instead of a request.

    Raises:
        ValueError: ``ident`` or ``seq`` out of range.
    """
    if not (0 <= ident <= 0xFFFF and 0 <= seq <= 0xFFFF):
        raise ValueError(f"ident and seq must be 0..65535, got {ident} and {seq}")
    return IcmpMessage(ECHO_REPLY if reply else ECHO_REQUEST, 0, ident << 16 | seq).emit(payload)


def error(type: int, code: int, original: bytes | bytearray | memoryview, mtu: int = 0) -> bytes:  # noqa: A002
    """An ICMP error message about the received datagram ``original``.

    The body quotes ``original``'s IP header (its length taken from the IHL in
    the first byte) and the first 8 bytes of its payload, or as much of that as
    ``original`` holds. Whether an error may be sent at all is
    :func:`error_allowed`'s question; ask it first.

    Args:
        type: an error type (:data:`ERROR_TYPES`).
        code: the code.
        original: the offending datagram, from its IP header on.
        mtu: the next-hop MTU, for ``DEST_UNREACH``/``UNREACH_NEEDFRAG``
            (RFC 1191); goes into the low 16 bits of ``rest``.

    Raises:
        ValueError: ``type`` is not an error type or ``mtu`` is out of range.

    DragonFly: ``icmp_error`` in ``sys/netinet/ip_icmp.c``.
    """
    if type not in ERROR_TYPES:
        raise ValueError(f"type {type} is not an ICMP error type")
    if not 0 <= mtu <= 0xFFFF:
        raise ValueError(f"mtu must be 0..65535, got {mtu}")
    if len(original):
        quote = memoryview(original)[: max((original[0] & 0x0F) * 4, _IP_MIN_HLEN) + 8]
    else:
        quote = memoryview(b"")
    return IcmpMessage(type, code, mtu).emit(quote)


def _is_multicast_or_class_e(addr: bytes) -> bool:
    # 224.0.0.0/4 multicast, 240.0.0.0/4 reserved (including 255.255.255.255).
    return addr[0] >= 0xE0


def error_allowed(
    src: bytes,
    dst: bytes,
    *,
    frag_offset: int,
    icmp_type: int | None = None,
    link_broadcast: bool = False,
    dst_broadcast: bool = False,
) -> bool:
    """Whether an ICMP error may be sent about a received datagram (RFC 1122 3.2.2).

    An error must not be sent about:

    1. an ICMP error message (``icmp_type`` is the offending datagram's ICMP
       type when it is ICMP; any type that is not a query or reply counts, as
       in DragonFly);
    2. a non-initial fragment (``frag_offset`` non-zero);
    3. a datagram sent to an IP multicast address, to 255.255.255.255 or to a
       subnet broadcast address (``dst_broadcast``: only the glue knows its
       interfaces' broadcast addresses);
    4. a datagram that arrived as a link-layer broadcast or multicast
       (``link_broadcast``);
    5. a datagram whose source is not a single host: 0.0.0.0/8 (including
       0.0.0.0), multicast, or 240.0.0.0/4 (including 255.255.255.255).

    Args:
        src, dst: the datagram's IPv4 source and destination, 4 bytes each.
        frag_offset: its fragment offset (any unit; only zero matters).
        icmp_type: the type of the ICMP message it carries, or ``None`` when
            it is not ICMP or too short to tell.
        link_broadcast: it arrived in a link-layer broadcast or multicast
            frame.
        dst_broadcast: ``dst`` is a directed (subnet) broadcast address of
            the receiving host.

    Divergence: RFC 1122 also names loopback sources (127/8). DragonFly
    does not suppress them (``icmp_reflect``), and neither do we: a UDP
    socket on 127.0.0.1 must learn of an unreachable port.

    DragonFly: ``icmp_error`` and ``icmp_reflect`` in ``sys/netinet/ip_icmp.c``.
    """
    if frag_offset or link_broadcast or dst_broadcast:
        return False
    if icmp_type is not None and icmp_type not in _INFO_TYPES:
        return False
    if _is_multicast_or_class_e(dst) or _is_multicast_or_class_e(src) or src[0] == 0:
        return False
    return True
