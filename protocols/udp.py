"""UDP header over IPv4 (RFC 768, RFC 1122 section 4.1).

What :meth:`UdpHeader.parse` checks, in order, before reading each field:

1. At least 8 bytes (``"short_header"``).
2. The length field is at least 8 and at most the bytes given
   (``"bad_length"``). Bytes beyond the length field are ignored (they are IP
   or link padding) and the payload is cut to the length field.
3. A non-zero checksum must verify over the IPv4 pseudo-header, the header
   and the payload (``"bad_checksum"``). A zero checksum means "none was
   computed", which IPv4 allows (RFC 768; RFC 1122 4.1.3.4 says a receiver
   MUST accept it).

What it does not check: the ports (port 0 as a source is legal; as a
destination it simply matches no socket), or whether the addresses are ones a
datagram may come from (IP input's business).

:meth:`UdpHeader.emit` computes the length and checksum fields, ignoring the
ones in the header value; a computed checksum of 0 is sent as 0xFFFF (RFC
768), so 0 on the wire always means "no checksum".

Bounds: the header is 8 bytes; parse allocates the header value and a
:class:`memoryview` and nothing else (the checksum is computed over the view
with ``int.from_bytes``; see :mod:`.checksum`). A datagram is at most 65535
bytes including the header.

DragonFly: ``sys/netinet/udp_usrreq.c`` (``udp_input``, ``udp_output``).
"""

from __future__ import annotations

import struct

import attrs

from .checksum import ones_complement_sum
from .errors import RemoteProtocolError

__all__ = ["IPPROTO_UDP", "UDP_HDR_LEN", "UdpHeader", "emit_datagram", "parse_datagram"]

IPPROTO_UDP = 17
UDP_HDR_LEN = 8

_HDR = struct.Struct("!HHHH")


def _pseudo(src: bytes, dst: bytes, length: int) -> int:
    # The pseudo-header's one's-complement sum, up to a multiple of 0xFFFF:
    # a 4-byte address read as one integer is congruent to the sum of its
    # two 16-bit words modulo 0xFFFF (2**16 == 1), which is all that
    # ones_complement_sum needs of its ``initial``. Same value as
    # checksum.pseudo_header_sum without building the 12-byte header.
    return int.from_bytes(src, "big") + int.from_bytes(dst, "big") + IPPROTO_UDP + length


def emit_datagram(sport: int, dport: int, payload: bytes | bytearray | memoryview) -> bytes:
    """A datagram whose checksum is left to the card (0; see :mod:`.offload`):
    :meth:`UdpHeader.emit` with ``checksum=False``, without the header object
    (the per-datagram output path).

    Raises:
        ValueError: the datagram would exceed 65535 bytes or a port is out of
            range.
    """
    length = 8 + len(payload)
    if length > 0xFFFF:
        raise ValueError(f"a UDP datagram holds at most 65527 bytes of payload, got {length - 8}")
    try:
        return _HDR.pack(sport, dport, length, 0) + payload
    except struct.error:
        raise ValueError(f"ports must be 0..65535, got {sport} and {dport}") from None


def parse_datagram(
    data: bytes | bytearray | memoryview, src: bytes, dst: bytes, verify: bool = True
) -> tuple[int, int, memoryview]:
    """``(sport, dport, payload)`` of the datagram ``data``: :meth:`UdpHeader.parse`
    without the header object (the per-datagram input path); the same checks
    and errors."""
    n = len(data)
    if n < 8:
        raise RemoteProtocolError("short_header", f"{n} bytes, need 8")
    sport, dport, length, checksum = _HDR.unpack_from(data)
    if length < 8 or length > n:
        raise RemoteProtocolError("bad_length", f"length field {length}, {n} bytes present")
    view = memoryview(data)[:length]
    if verify and checksum and ones_complement_sum(view, _pseudo(src, dst, length)) != 0xFFFF:
        raise RemoteProtocolError("bad_checksum")
    return sport, dport, view[8:]


@attrs.frozen
class UdpHeader:
    """A UDP header.

    Attributes:
        sport: source port, 0..65535.
        dport: destination port, 0..65535.
        length: the length field (header plus payload), as received; ignored
            by :meth:`emit`, which computes it.
        checksum: the checksum field, as received (0: none); ignored by
            :meth:`emit`, which computes it.
    """

    sport: int
    dport: int
    length: int = 0
    checksum: int = attrs.field(default=0, repr=hex)

    @classmethod
    def parse(
        cls, data: bytes | bytearray | memoryview, src: bytes, dst: bytes, *, verify: bool = True
    ) -> tuple[UdpHeader, memoryview]:
        """Parse and verify the UDP datagram ``data`` sent from ``src`` to ``dst``.

        Args:
            data: the IP payload, starting at the UDP header.
            src, dst: the source and destination (4 bytes each for IPv4, 16 for IPv6), for the
                pseudo-header.
            verify: ``False`` skips the checksum (the receiving card
                verified it: :data:`.offload.CSUM_DATA_VALID`).

        Returns:
            The header and a view of the payload, cut to the length field.

        Raises:
            RemoteProtocolError: ``"short_header"``, ``"bad_length"`` or
                ``"bad_checksum"``.
        """
        sport, dport, payload = parse_datagram(data, src, dst, verify)
        return cls(sport, dport, len(payload) + 8, (data[6] << 8) | data[7]), payload

    def emit(
        self,
        payload: bytes | bytearray | memoryview,
        src: bytes,
        dst: bytes,
        *,
        checksum: bool = True,
    ) -> bytes:
        """The datagram: this header (length and checksum computed) and ``payload``.

        Args:
            payload: the data.
            src, dst: the IPv4 source and destination the datagram will carry
                (4 bytes each), for the checksum's pseudo-header.
            checksum: compute a checksum; ``False`` sends 0 ("none", allowed
                over IPv4 only).

        Raises:
            ValueError: the datagram would exceed 65535 bytes, a port is out of
                range, or the addresses are not two IPv4 or two IPv6 ones.
        """
        length = 8 + len(payload)
        sport, dport = self.sport, self.dport
        if length > 0xFFFF:
            raise ValueError(f"a UDP datagram holds at most 65527 bytes of payload, got {length - 8}")
        if not (0 <= sport <= 0xFFFF and 0 <= dport <= 0xFFFF):
            raise ValueError(f"ports must be 0..65535, got {sport} and {dport}")
        csum = 0
        if checksum:
            if len(src) not in (4, 16) or len(dst) != len(src):
                raise ValueError("src and dst must be two IPv4 (4-byte) or two IPv6 (16-byte) addresses")
            initial = _pseudo(src, dst, length) + sport + dport + length
            csum = ~ones_complement_sum(payload, initial) & 0xFFFF or 0xFFFF
        return _HDR.pack(sport, dport, length, csum) + payload
