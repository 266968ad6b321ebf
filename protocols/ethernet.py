"""Ethernet II framing, with at most one IEEE 802.1Q VLAN tag.

Standards: Ethernet II (DIX) framing as carried by IEEE 802.3 (an EtherType
of 0x0600 or more in the type/length field), IEEE 802.1Q for the tag.

What :meth:`EthernetHeader.parse` checks, before reading each field:

1. 14 bytes for the untagged header (``"short_header"``), 18 when the
   EtherType is 0x8100 (a 802.1Q tag follows).
2. The type/length field is an EtherType (>= 0x0600); an 802.3 length field
   (< 0x0600, an LLC frame) is ``"not_ethernet_ii"``. The same holds for the
   EtherType inside a tag.
3. One tag only: an outer 802.1ad service tag (0x88A8) or a second 802.1Q tag
   inside the first (QinQ) is ``"unsupported"``.

What it does not check: the destination (the driver's filter and
``ether_input`` decide whether the frame is ours), the minimum frame size
(60 bytes without FCS: short frames are a wire's business; padding after an IP
packet is cut off by IP using its own length), the maximum size (the
interface's MTU check), and the FCS, which never reaches us (drivers strip
it, as DragonFly's do).

:meth:`EthernetHeader.emit` pads nothing: the minimum-frame padding belongs to
the driver or wire (real NICs pad in hardware), and a frame shorter than 60
bytes is still parsed here.

Bounds: a header is at most 18 bytes; parse copies the two addresses (12
bytes) and nothing else, the payload is a :class:`memoryview` of the input.

DragonFly: ``sys/net/if_ethersubr.c`` (``ether_input_oncpu``,
``ether_output``), ``sys/net/vlan/if_vlan_ether.c`` (``vlan_ether_decap``).
"""

from __future__ import annotations

import struct

import attrs

from .errors import RemoteProtocolError

__all__ = [
    "BROADCAST",
    "ETHERTYPE_ARP",
    "ETHERTYPE_IP",
    "ETHERTYPE_IPV6",
    "ETHERTYPE_QINQ",
    "ETHERTYPE_VLAN",
    "ETHER_ADDR_LEN",
    "ETHER_HDR_LEN",
    "EthernetHeader",
    "format_mac",
    "is_multicast",
    "parse_mac",
]

ETHERTYPE_IP = 0x0800
ETHERTYPE_ARP = 0x0806
ETHERTYPE_IPV6 = 0x86DD
ETHERTYPE_VLAN = 0x8100
"""IEEE 802.1Q customer tag (TPID)."""
ETHERTYPE_QINQ = 0x88A8
"""IEEE 802.1ad service tag (TPID); not supported by :meth:`EthernetHeader.parse`."""

ETHER_ADDR_LEN = 6
"""Bytes in a MAC address."""

ETHER_HDR_LEN = 14
"""Bytes in an untagged header; a tag adds 4."""

BROADCAST = b"\xff" * ETHER_ADDR_LEN

_MIN_ETHERTYPE = 0x0600  # below: an 802.3 length field
_HDR = struct.Struct("!6s6sH")
_TAG = struct.Struct("!HH")  # TCI, inner EtherType
_TAGGED = struct.Struct("!6s6sHHH")


def is_multicast(mac: bytes) -> bool:
    """Whether ``mac`` is a group address (multicast, including broadcast).

    The I/G bit is the least significant bit of the first octet.
    """
    return bool(mac[0] & 1)


def format_mac(mac: bytes) -> str:
    """``mac`` as six lower-case hex pairs joined by colons (``"aa:bb:cc:dd:ee:ff"``)."""
    return mac.hex(":")


def parse_mac(text: str) -> bytes:
    """The 6 bytes of a MAC address written as ``aa:bb:cc:dd:ee:ff``.

    Hyphens are accepted as separators too, and single-digit groups
    (``0:1:2:3:4:5``, as BSD's ``ether_ntoa`` writes them).

    Raises:
        ValueError: ``text`` is not six hex groups of one or two digits.
    """
    parts = text.replace("-", ":").split(":")
    if len(parts) != 6 or not all(
        1 <= len(p) <= 2 and all(c in "0123456789abcdefABCDEF" for c in p) for p in parts
    ):
        raise ValueError(f"not a MAC address (want six hex groups like aa:bb:cc:dd:ee:ff): {text!r}")
    return bytes(int(p, 16) for p in parts)


def _check_mac(name: str, mac: bytes) -> None:
    if len(mac) != 6:
        raise ValueError(f"{name} must be 6 bytes, got {len(mac)}")


@attrs.frozen
class EthernetHeader:
    """An Ethernet II header, optionally 802.1Q-tagged.

    Attributes:
        dst: destination MAC, 6 bytes.
        src: source MAC, 6 bytes.
        ethertype: the payload's EtherType (the inner one for a tagged frame).
        vlan: the 12-bit VLAN ID, or ``None`` for an untagged frame (0 is a
            priority-tagged frame, which is not the same as untagged).
        pcp: the 802.1Q priority code point, 0..7 (only with a tag).
        dei: the 802.1Q drop eligible indicator (only with a tag).
    """

    dst: bytes = attrs.field(repr=format_mac)
    src: bytes = attrs.field(repr=format_mac)
    ethertype: int = attrs.field(repr=hex)
    vlan: int | None = None
    pcp: int = 0
    dei: bool = False

    @property
    def header_len(self) -> int:
        """Bytes this header occupies on the wire: 14, or 18 with a tag."""
        return ETHER_HDR_LEN if self.vlan is None else ETHER_HDR_LEN + 4

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> tuple[EthernetHeader, memoryview]:
        """Parse the header at the start of ``data``.

        Returns:
            The header and a view of the rest of ``data`` (the payload, with
            any minimum-frame padding still on it).

        Raises:
            RemoteProtocolError: ``"short_header"``, ``"not_ethernet_ii"`` or
                ``"unsupported"`` (a second tag or an 802.1ad tag).
        """
        n = len(data)
        if n < 14:
            raise RemoteProtocolError("short_header", f"{n} bytes, need 14")
        dst, src, ethertype = _HDR.unpack_from(data)
        if ethertype == ETHERTYPE_VLAN:
            if n < 18:
                raise RemoteProtocolError("short_header", f"{n} bytes, need 18 for a tagged frame")
            tci, ethertype = _TAG.unpack_from(data, 14)
            if ethertype == ETHERTYPE_VLAN or ethertype == ETHERTYPE_QINQ:
                raise RemoteProtocolError("unsupported", "more than one VLAN tag")
            if ethertype < _MIN_ETHERTYPE:
                raise RemoteProtocolError("not_ethernet_ii", f"802.3 length {ethertype} inside a tag")
            return (
                cls(dst, src, ethertype, tci & 0x0FFF, tci >> 13, bool(tci & 0x1000)),
                memoryview(data)[18:],
            )
        if ethertype < _MIN_ETHERTYPE:
            raise RemoteProtocolError("not_ethernet_ii", f"802.3 length {ethertype}")
        if ethertype == ETHERTYPE_QINQ:
            raise RemoteProtocolError("unsupported", "802.1ad service tag")
        return cls(dst, src, ethertype), memoryview(data)[14:]

    def emit(self, payload: bytes | bytearray | memoryview = b"") -> bytes:
        """The header followed by ``payload``, unpadded.

        Raises:
            ValueError: an address is not 6 bytes, ``ethertype`` is not an
                EtherType (0x0600..0xFFFF) or is a tag's TPID (use ``vlan``),
                or a tag field is out of range.
        """
        dst, src, ethertype, vlan = self.dst, self.src, self.ethertype, self.vlan
        _check_mac("dst", dst)
        _check_mac("src", src)
        if not _MIN_ETHERTYPE <= ethertype <= 0xFFFF or ethertype in (ETHERTYPE_VLAN, ETHERTYPE_QINQ):
            raise ValueError(f"ethertype {ethertype:#x} is not a payload EtherType")
        if vlan is None:
            return _HDR.pack(dst, src, ethertype) + payload
        if not 0 <= vlan <= 0x0FFF or not 0 <= self.pcp <= 7:
            raise ValueError(f"vlan must be 0..4095 and pcp 0..7, got {vlan} and {self.pcp}")
        tci = (self.pcp << 13) | (0x1000 if self.dei else 0) | vlan
        return _TAGGED.pack(dst, src, ETHERTYPE_VLAN, tci, ethertype) + payload
