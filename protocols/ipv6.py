"""IPv6 header, extension headers, addresses, fragmentation and reassembly.

RFC 8200 (the protocol), RFC 4291 (addressing), RFC 5095 (type 0 Routing
headers deprecated), RFC 5722 (overlapping fragments), RFC 6946 (atomic
fragments), RFC 2711 (Router Alert).

What :meth:`IPv6Header.parse` checks, in order, before reading each field:

1. At least 40 bytes (``"short_header"``).
2. Version 6 (``"bad_version"``).
3. The payload length at most the bytes after the header
   (``"bad_length"``). Bytes beyond it are link padding (a 60-byte Ethernet
   minimum, say): the payload is cut to the payload length.
4. Not a jumbogram: payload length 0 with a Hop-by-Hop header next
   (``"jumbogram"``; RFC 2675 is not supported, and no link here has an MTU
   above 65575 bytes).

What it does not check, and why:

- Extension headers: :func:`walk_extensions` walks them, separately, so
  that a router-style caller that only wants the fixed header pays nothing
  for them.
- Addresses (a multicast source, say) and the hop limit: IP input's
  business, as for IPv4.
- The traffic class and flow label: carried, never interpreted.

:meth:`IPv6Header.emit` computes the payload length and ignores the
``payload_length`` of the value.

:func:`walk_extensions` follows the chain of extension headers after the
fixed header with the rules in its "Theory of operation" comment; its
failures are :class:`~trionet.protocols.errors.RemoteProtocolError`, and
those RFC 8200 answers with an ICMPv6 Parameter Problem are the subclass
:class:`ParameterProblem`, carrying the ICMPv6 code and pointer, which the
glue turns into the message (whether a message may be sent at all, RFC 4443
section 2.4 (e), is the ICMPv6 module's rule, not this one's).

Bounds: the fixed header is 40 bytes; parse allocates the header value and a
:class:`memoryview` and nothing else. :func:`walk_extensions` visits at most
``max_headers`` headers of at most 2048 bytes each and allocates only its
result. :class:`Reassembler6` holds at most ``max_datagrams`` datagrams,
``max_bytes`` bytes and ``max_fragments`` pieces per datagram (its
docstring has the rules).

DragonFly: ``sys/netinet6/ip6_input.c`` (``ip6_input``,
``ip6_process_hopopts``, ``ip6_unknown_opt``), ``sys/netinet6/dest6.c``
(``dest6_input``), ``sys/netinet6/route6.c`` (``route6_input``),
``sys/netinet6/frag6.c`` (``frag6_input``, ``frag6_slowtimo``),
``sys/netinet6/ip6_output.c`` (``ip6_output``'s fragmentation,
``ip6_insertfraghdr``), ``sys/netinet6/scope6.c`` (``in6_addrscope``),
``sys/netinet6/in6_ifattach.c`` (``in6_get_hw_ifid``).
"""

from __future__ import annotations

import ipaddress
import struct
from bisect import bisect_right

import attrs

from .errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "ALL_MLDV2_ROUTERS",
    "ALL_NODES",
    "ALL_ROUTERS",
    "IPPROTO_DSTOPTS",
    "IPPROTO_FRAGMENT",
    "IPPROTO_HOPOPTS",
    "IPPROTO_ICMPV6",
    "IPPROTO_NONE",
    "IPPROTO_ROUTING",
    "IPPROTO_TCP",
    "IPPROTO_UDP",
    "IPV6_HDR_LEN",
    "IPV6_MAXPACKET",
    "IPV6_MIN_MTU",
    "LOOPBACK",
    "PARAMPROB_HEADER",
    "PARAMPROB_NEXTHEADER",
    "PARAMPROB_OPTION",
    "SCOPE_GLOBAL",
    "SCOPE_INTERFACE_LOCAL",
    "SCOPE_LINK_LOCAL",
    "SCOPE_ORGANIZATION_LOCAL",
    "SCOPE_SITE_LOCAL",
    "UNSPECIFIED",
    "ExtChain",
    "FragmentHeader",
    "IPv6Header",
    "ParameterProblem",
    "Reassembler6",
    "Reassembly6Statistics",
    "address_from_prefix",
    "eui64_interface_id",
    "fragment6",
    "ip6_aton",
    "ip6_ntoa",
    "is_link_local6",
    "is_loopback6",
    "is_multicast6",
    "is_solicited_node6",
    "is_unique_local6",
    "is_unspecified6",
    "link_local_address",
    "multicast_mac",
    "multicast_scope",
    "router_alert_hop_by_hop",
    "scope6",
    "solicited_node_group",
    "walk_extensions",
]

IPV6_HDR_LEN = 40
IPV6_MIN_MTU = 1280
#: The largest payload length (RFC 8200 section 3; jumbograms excepted).
IPV6_MAXPACKET = 65535

IPPROTO_HOPOPTS = 0
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_ROUTING = 43
IPPROTO_FRAGMENT = 44
IPPROTO_ICMPV6 = 58
IPPROTO_NONE = 59
IPPROTO_DSTOPTS = 60

# ICMPv6 Parameter Problem codes (RFC 4443 3.4), BSD names without ICMP6_.
PARAMPROB_HEADER = 0
"""Erroneous header field encountered."""
PARAMPROB_NEXTHEADER = 1
"""Unrecognized Next Header type encountered."""
PARAMPROB_OPTION = 2
"""Unrecognized IPv6 option encountered."""

# Scopes (RFC 4007 section 5, RFC 7346), the values of scope6().
SCOPE_INTERFACE_LOCAL = 0x1
SCOPE_LINK_LOCAL = 0x2
SCOPE_SITE_LOCAL = 0x5
SCOPE_ORGANIZATION_LOCAL = 0x8
SCOPE_GLOBAL = 0xE

UNSPECIFIED = bytes(16)
LOOPBACK = bytes(15) + b"\x01"
ALL_NODES = b"\xff\x02" + bytes(13) + b"\x01"
ALL_ROUTERS = b"\xff\x02" + bytes(13) + b"\x02"
ALL_MLDV2_ROUTERS = b"\xff\x02" + bytes(13) + b"\x16"

_HDR = struct.Struct("!IHBB16s16s")
_pack = _HDR.pack
_unpack_from = _HDR.unpack_from
_FRAG = struct.Struct("!BBHI")

_SOLICITED_PREFIX = b"\xff\x02" + bytes(9) + b"\x01\xff"  # ff02::1:ff00:0/104
_V4MAPPED_PREFIX = bytes(10) + b"\xff\xff"  # ::ffff:0:0/96
_LINK_LOCAL_PREFIX = b"\xfe\x80" + bytes(6)  # fe80::/64


####################################################################
# Addresses
####################################################################


def ip6_aton(text: str) -> bytes:
    """The 16 bytes of the IPv6 address ``text`` (``"fe80::1"``, ``"::ffff:10.0.0.1"``).

    Raises:
        ValueError: ``text`` is not an IPv6 address in RFC 4291 section 2.2
            text form; a scope id (``"fe80::1%eth0"``) is refused too: a
            zone is an interface, which the caller passes on its own.
    """
    if "%" in text:
        raise ValueError(f"no scope ids here (pass the interface separately): {text!r}")
    try:
        return ipaddress.IPv6Address(text).packed
    except ValueError:
        raise ValueError(f"not an IPv6 address (want text like 2001:db8::1): {text!r}") from None


def ip6_ntoa(addr: bytes) -> str:
    """The RFC 5952 text of the 16-byte address ``addr``.

    Lower-case hex without leading zeros; the longest run of two or more
    zero groups (the first of equal runs) as ``::``; an IPv4-mapped address
    as ``::ffff:192.0.2.1`` (RFC 5952 section 5).

    Raises:
        ValueError: ``addr`` is not 16 bytes long.
    """
    if len(addr) != 16:
        raise ValueError(f"an IPv6 address is 16 bytes, got {len(addr)}")
    if addr[:12] == _V4MAPPED_PREFIX:
        return "::ffff:%d.%d.%d.%d" % tuple(addr[12:])
    words = struct.unpack("!8H", addr)
    best, best_len = 0, 0
    i = 0
    while i < 8:
        if words[i]:
            i += 1
            continue
        j = i
        while j < 8 and not words[j]:
            j += 1
        if j - i > best_len:
            best, best_len = i, j - i
        i = j
    groups = ["%x" % w for w in words]
    if best_len < 2:  # RFC 5952 4.2.2: "::" never stands for one group
        return ":".join(groups)
    return ":".join(groups[:best]) + "::" + ":".join(groups[best + best_len :])


def _addr_repr(addr: bytes) -> str:
    # Lenient for repr: a malformed value must still print.
    return ip6_ntoa(addr) if len(addr) == 16 else repr(addr)


def is_multicast6(addr: bytes) -> bool:
    """Whether ``addr`` is in ff00::/8."""
    return len(addr) == 16 and addr[0] == 0xFF


def is_link_local6(addr: bytes) -> bool:
    """Whether ``addr`` is a link-local unicast address, in fe80::/10."""
    return len(addr) == 16 and addr[0] == 0xFE and addr[1] & 0xC0 == 0x80


def is_unspecified6(addr: bytes) -> bool:
    """Whether ``addr`` is ``::`` (RFC 4291 2.5.2)."""
    return addr == UNSPECIFIED


def is_loopback6(addr: bytes) -> bool:
    """Whether ``addr`` is ``::1`` (RFC 4291 2.5.3)."""
    return addr == LOOPBACK


def is_unique_local6(addr: bytes) -> bool:
    """Whether ``addr`` is a unique local address, in fc00::/7 (RFC 4193)."""
    return len(addr) == 16 and addr[0] & 0xFE == 0xFC


def is_solicited_node6(addr: bytes) -> bool:
    """Whether ``addr`` is a solicited-node multicast group, in ff02::1:ff00:0/104."""
    return len(addr) == 16 and addr[:13] == _SOLICITED_PREFIX


def multicast_scope(addr: bytes) -> int:
    """The 4-bit scope field of the multicast address ``addr`` (RFC 4291 2.7).

    Raises:
        ValueError: ``addr`` is not a 16-byte multicast address (use
            :func:`scope6` for any address).
    """
    if not is_multicast6(addr):
        raise ValueError("multicast_scope() wants a multicast address (ff00::/8); use scope6()")
    return addr[1] & 0x0F


def scope6(addr: bytes) -> int:
    """The scope of ``addr`` (RFC 4007 section 5), for zone checks and source selection.

    Returns:
        For a multicast address, its scope field (:func:`multicast_scope`);
        :data:`SCOPE_INTERFACE_LOCAL` (1) for ``::1``;
        :data:`SCOPE_LINK_LOCAL` (2) for fe80::/10;
        :data:`SCOPE_SITE_LOCAL` (5) for the deprecated site-local
        fec0::/10 (RFC 3879), as ``in6_addrscope`` still reports it;
        :data:`SCOPE_GLOBAL` (0xE) for every other address, unique local
        addresses (fc00::/7, global scope by RFC 4193 section 3.3) and
        ``::`` included.

    Raises:
        ValueError: ``addr`` is not 16 bytes long.

    DragonFly: ``in6_addrscope`` in ``sys/netinet6/scope6.c``.
    Divergence: KAME calls ``::1`` and ``::`` link-local; RFC 4007 makes the
    loopback interface-local, and ``::`` has no scope to speak of.
    """
    if len(addr) != 16:
        raise ValueError(f"an IPv6 address is 16 bytes, got {len(addr)}")
    first = addr[0]
    if first == 0xFF:
        return addr[1] & 0x0F
    if first == 0xFE:
        top = addr[1] & 0xC0
        if top == 0x80:
            return SCOPE_LINK_LOCAL
        if top == 0xC0:
            return SCOPE_SITE_LOCAL
    elif addr == LOOPBACK:
        return SCOPE_INTERFACE_LOCAL
    return SCOPE_GLOBAL


def eui64_interface_id(mac: bytes) -> bytes:
    """The modified EUI-64 interface identifier of a 48-bit MAC (RFC 4291 appendix A).

    ``ff:fe`` goes in the middle and the universal/local bit is flipped:
    52:54:00:12:34:56 gives 50:54:00:ff:fe:12:34:56.

    Raises:
        ValueError: ``mac`` is not 6 bytes long.

    DragonFly: ``in6_get_hw_ifid`` in ``sys/netinet6/in6_ifattach.c``.
    """
    if len(mac) != 6:
        raise ValueError(f"a MAC address is 6 bytes, got {len(mac)}")
    return bytes((mac[0] ^ 0x02, mac[1], mac[2], 0xFF, 0xFE, mac[3], mac[4], mac[5]))


def link_local_address(mac: bytes) -> bytes:
    """fe80::/64 with the EUI-64 interface identifier of ``mac`` (RFC 4862 5.3).

    Raises:
        ValueError: ``mac`` is not 6 bytes long.
    """
    return _LINK_LOCAL_PREFIX + eui64_interface_id(mac)


def address_from_prefix(prefix: bytes, prefix_len: int, iid: bytes) -> bytes:
    """The first ``prefix_len`` bits of ``prefix`` followed by the interface identifier ``iid``.

    Args:
        prefix: a 16-byte address; bits past ``prefix_len`` are ignored.
        prefix_len: the prefix length in bits.
        iid: the interface identifier, usually 8 bytes (then ``prefix_len``
            must be 64).

    Raises:
        ValueError: ``prefix`` is not 16 bytes, or ``prefix_len`` plus the
            bits of ``iid`` is not 128 (RFC 4862 5.5.3 (d): such a prefix
            must be ignored for autoconfiguration).
    """
    if len(prefix) != 16:
        raise ValueError(f"a prefix is a 16-byte address, got {len(prefix)} bytes")
    if not 0 <= prefix_len <= 128 or prefix_len + 8 * len(iid) != 128:
        raise ValueError(
            f"a /{prefix_len} prefix and a {8 * len(iid)}-bit interface identifier "
            "do not make 128 bits (an 8-byte identifier needs a /64)"
        )
    return prefix[: prefix_len // 8] + iid


def solicited_node_group(addr: bytes) -> bytes:
    """The solicited-node multicast group of ``addr``: ff02::1:ff00:0/104 and its low 24 bits.

    Raises:
        ValueError: ``addr`` is not 16 bytes long.
    """
    if len(addr) != 16:
        raise ValueError(f"an IPv6 address is 16 bytes, got {len(addr)}")
    return _SOLICITED_PREFIX + addr[13:]


def multicast_mac(group: bytes) -> bytes:
    """The Ethernet address of the multicast group ``group``: 33:33 and its low 32 bits (RFC 2464 7).

    Raises:
        ValueError: ``group`` is not a 16-byte multicast address.
    """
    if not is_multicast6(group):
        raise ValueError("multicast_mac() wants a multicast address (ff00::/8)")
    return b"\x33\x33" + group[12:]


####################################################################
# Header
####################################################################


# slots=False on purpose, as for IPv4Header: a frozen dict class builds
# faster than a frozen slotted one, and parse is on the per-packet path.
@attrs.frozen(slots=False)
class IPv6Header:
    """The fixed IPv6 header (RFC 8200 section 3).

    Attributes:
        src, dst: 16-byte addresses.
        next_header: the type of the header after this one
            (:data:`IPPROTO_UDP`, :data:`IPPROTO_HOPOPTS`...).
        hop_limit: 0..255.
        traffic_class: DSCP and ECN, 0..255.
        flow_label: 0..0xFFFFF.
        payload_length: the field as received; ignored by :meth:`emit`,
            which computes it.
    """

    src: bytes = attrs.field(repr=_addr_repr)
    dst: bytes = attrs.field(repr=_addr_repr)
    next_header: int
    hop_limit: int = 64
    traffic_class: int = 0
    flow_label: int = 0
    payload_length: int = 0

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> tuple[IPv6Header, memoryview]:
        """Parse and check the fixed header of the IPv6 packet ``data``.

        Args:
            data: the packet, starting at the IPv6 header; it may carry link
                padding after the payload.

        Returns:
            The header and a view of the payload (everything after the fixed
            header, extension headers included, cut to the payload length).

        Raises:
            RemoteProtocolError: ``"short_header"``, ``"bad_version"``,
                ``"bad_length"`` or ``"jumbogram"``, checked in that order
                (see the module docstring).
        """
        n = len(data)
        if n < 40:
            raise RemoteProtocolError("short_header", f"{n} bytes, need 40")
        vtf, plen, nh, hlim, src, dst = _unpack_from(data)
        if vtf >> 28 != 6:
            raise RemoteProtocolError("bad_version", f"version {vtf >> 28}")
        if plen > n - 40:
            raise RemoteProtocolError("bad_length", f"payload length {plen}, {n - 40} bytes present")
        if plen == 0 and nh == IPPROTO_HOPOPTS:
            raise RemoteProtocolError("jumbogram", "payload length 0 with Hop-by-Hop options")
        return (
            cls(src, dst, nh, hlim, (vtf >> 20) & 0xFF, vtf & 0xFFFFF, plen),
            memoryview(data)[40 : 40 + plen],
        )

    def emit(self, payload: bytes | bytearray | memoryview = b"") -> bytes:
        """The packet: this header (payload length computed) and ``payload``.

        Args:
            payload: everything after the fixed header (extension headers and
                upper-layer data).

        Raises:
            LocalProtocolError: the payload is longer than 65535 bytes
                (jumbograms are not supported).
            ValueError: an address is not 16 bytes or a field is out of range.
        """
        plen = len(payload)
        if plen > IPV6_MAXPACKET:
            raise LocalProtocolError(f"an IPv6 payload is at most {IPV6_MAXPACKET} bytes, this one {plen}")
        return _emit_fixed(self, plen, self.next_header) + payload


def _emit_fixed(hdr: IPv6Header, plen: int, next_header: int) -> bytes:
    tc, flow = hdr.traffic_class, hdr.flow_label
    if not 0 <= tc <= 0xFF or not 0 <= flow <= 0xFFFFF:
        raise ValueError(f"traffic class {tc} or flow label {flow} out of range (0..255, 0..0xFFFFF)")
    if len(hdr.src) != 16 or len(hdr.dst) != 16:
        raise ValueError("src and dst must be 16-byte IPv6 addresses")
    try:
        return _pack(0x60000000 | tc << 20 | flow, plen, next_header, hdr.hop_limit, hdr.src, hdr.dst)
    except struct.error as exc:
        raise ValueError(f"header field out of range: {exc}") from None


####################################################################
# Extension headers
####################################################################


class ParameterProblem(RemoteProtocolError):
    """Bad input that RFC 8200 answers with an ICMPv6 Parameter Problem (RFC 4443 3.4).

    Attributes:
        reason: as for :class:`~trionet.protocols.errors.RemoteProtocolError`.
        code: :data:`PARAMPROB_HEADER`, :data:`PARAMPROB_NEXTHEADER` or
            :data:`PARAMPROB_OPTION`.
        pointer: the offset of the offending byte from the start of the
            IPv6 header, for the message's Pointer field.
    """

    def __init__(self, reason: str, *, code: int, pointer: int, detail: str = "") -> None:
        super().__init__(reason, detail)
        self.code = code
        self.pointer = pointer


@attrs.frozen
class FragmentHeader:
    """The Fragment header (RFC 8200 section 4.5).

    Attributes:
        next_header: the type of the header that starts the fragmentable
            part (only the offset-0 fragment's value counts).
        offset: the fragment offset *in bytes* (a multiple of 8, 0..65528),
            not in the field's 8-byte units.
        more: the M flag: more fragments follow.
        ident: the 32-bit identification.

    The two reserved fields are ignored on input and sent as zero.
    """

    next_header: int
    offset: int = 0
    more: bool = False
    ident: int = 0

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> tuple[FragmentHeader, memoryview]:
        """Parse a Fragment header at the start of ``data``.

        Returns:
            The header and a view of the fragment data after it.

        Raises:
            RemoteProtocolError: ``"short_ext"``: fewer than 8 bytes.
        """
        if len(data) < 8:
            raise RemoteProtocolError("short_ext", f"Fragment header in {len(data)} bytes")
        nh, _, offlg, ident = _FRAG.unpack_from(data)
        return cls(nh, offlg & 0xFFF8, offlg & 1 == 1, ident), memoryview(data)[8:]

    def emit(self, payload: bytes | bytearray | memoryview = b"") -> bytes:
        """The 8-byte header followed by ``payload``.

        Raises:
            ValueError: ``offset`` is not a multiple of 8 in 0..65528, or a
                field is out of range.
        """
        off = self.offset
        if off & 7 or not 0 <= off <= 65528:
            raise ValueError(f"offset must be a multiple of 8 in 0..65528, got {off}")
        try:
            return _FRAG.pack(self.next_header, 0, off | self.more, self.ident) + payload
        except struct.error as exc:
            raise ValueError(f"header field out of range: {exc}") from None


@attrs.define(slots=True)
class ExtChain:
    """Where :func:`walk_extensions` got to; offsets are into the ``data`` it was given.

    Not frozen: one is made per packet and never shared.

    Attributes:
        proto: the upper-layer protocol, :data:`IPPROTO_NONE` for an empty
            chain end, or, with a Fragment header, the fragment header's
            next header (the fragment data is not walked).
        offset: where the upper-layer data (or the fragment data) starts.
        router_alert: the value of a Hop-by-Hop Router Alert option (RFC
            2711: 0 is MLD), or ``None``.
        fragment: the Fragment header, or ``None``.
        fragment_at: where the Fragment header starts, -1 without one.
        unfragmentable_end: where the fragmentable part starts. With a
            Fragment header that is ``fragment_at`` (the sender chose);
            without one, the end of the headers RFC 8200 4.5 keeps in every
            fragment: up to the last Routing header, else the Hop-by-Hop
            header, else 0. ``data[:unfragmentable_end]`` is what
            :func:`fragment6` takes as ``unfragmentable``.
        next_header_at: the offset *from the start of the IPv6 header* of
            the Next Header field that named where the walk stopped: the
            upper layer (6 when it is the fixed header's), for a Parameter
            Problem code 1 when ``proto`` is unknown; or, with a Fragment
            header, the field that named the Fragment header, which
            reassembly rewrites.
    """

    proto: int
    offset: int
    router_alert: int | None = None
    fragment: FragmentHeader | None = None
    fragment_at: int = -1
    unfragmentable_end: int = 0
    next_header_at: int = 6


# Theory of operation: walk_extensions
# ------------------------------------
#
# The walk is a loop over headers, each named by the Next Header field of
# the one before (the fixed header's for the first). Pointers in
# ParameterProblem count from the IPv6 header, so they are 40 more than the
# offsets into `data`.
#
# 1. More than max_headers extension headers: "too_many_ext", no ICMP (the
#    bound on the work; RFC 8504 5.3 lets a host limit the chain).
# 2. Hop-by-Hop anywhere but first: Parameter Problem code 1 at the Next
#    Header field that named it ("hbh_not_first", RFC 8200 4.1).
# 3. A header (or its length byte) running past the data: "short_ext", no
#    ICMP.
# 4. Hop-by-Hop and Destination Options hold options, walked to the end of
#    the header: Pad1 and PadN are skipped (PadN's contents unchecked); in
#    Hop-by-Hop, Router Alert with length 2 records its value, and with
#    another length is Parameter Problem code 0 at the length byte
#    ("bad_option", as ip6_process_hopopts does); an option running past
#    its header is "bad_option" without ICMP. Any other option acts by its
#    two high bits (RFC 8200 4.2): 00 skip; 01 "unknown_option", silently;
#    10 Parameter Problem code 2 at the option type; 11 the same unless the
#    destination is multicast, then silently.
# 5. A Routing header with Segments Left 0 is ignored (RFC 8200 4.4). Any
#    other is Parameter Problem code 0 at the Routing Type field
#    ("routing_header"): no routing type is supported, type 0 included
#    (RFC 5095). Divergence: the KAME route6_input in DragonFly's tree
#    still forwards type 0.
# 6. A Fragment header ends the walk: what follows is fragment data, for
#    Reassembler6 (or, offset 0 and M clear, an atomic fragment).
# 7. IPPROTO_NONE or any other number ends the walk as the upper layer
#    (including AH and ESP, which are not supported: the glue answers an
#    unknown `proto` with Parameter Problem code 1 at `next_header_at`).
#
# Work: at most max_headers headers of at most 2048 bytes each, every option
# step advancing at least one byte.

_EXT_HEADERS = frozenset((IPPROTO_HOPOPTS, IPPROTO_ROUTING, IPPROTO_FRAGMENT, IPPROTO_DSTOPTS))

_OPT_PAD1 = 0x00
_OPT_PADN = 0x01
_OPT_ROUTER_ALERT = 0x05


def _walk_options(
    data: bytes | bytearray | memoryview, start: int, end: int, dst_multicast: bool, hop_by_hop: bool
) -> int | None:
    router_alert = None
    p = start + 2
    while p < end:
        kind = data[p]
        if kind == _OPT_PAD1:
            p += 1
            continue
        if p + 2 > end:
            raise RemoteProtocolError("bad_option", f"option at {40 + p} has no length byte")
        length = data[p + 1]
        after = p + 2 + length
        if after > end:
            raise RemoteProtocolError("bad_option", f"option at {40 + p} runs past its header")
        if kind == _OPT_PADN:
            pass
        elif kind == _OPT_ROUTER_ALERT and hop_by_hop:
            if length != 2:
                raise ParameterProblem(
                    "bad_option", code=PARAMPROB_HEADER, pointer=40 + p + 1,
                    detail=f"Router Alert of length {length}",
                )
            router_alert = (data[p + 2] << 8) | data[p + 3]
        else:
            action = kind >> 6
            if action == 1 or (action == 3 and dst_multicast):
                raise RemoteProtocolError("unknown_option", f"option type {kind:#04x}")
            if action:
                raise ParameterProblem(
                    "unknown_option", code=PARAMPROB_OPTION, pointer=40 + p,
                    detail=f"option type {kind:#04x}",
                )
        p = after
    return router_alert


def walk_extensions(
    next_header: int,
    data: bytes | bytearray | memoryview,
    *,
    dst_multicast: bool = False,
    max_headers: int = 8,
) -> ExtChain:
    """Walk the extension headers at the start of ``data`` (RFC 8200 section 4).

    Args:
        next_header: the fixed header's Next Header field.
        data: the payload after the fixed header (as
            :meth:`IPv6Header.parse` returns it).
        dst_multicast: whether the packet's destination is multicast (an
            unknown option of type 11 is then dropped without ICMP).
        max_headers: the most extension headers accepted.

    Returns:
        Where the upper layer (or the fragment data) starts, and what the
        walk found on the way.

    Raises:
        ParameterProblem: ``"hbh_not_first"`` (code 1), ``"routing_header"``
            (code 0), ``"unknown_option"`` (code 2) or ``"bad_option"``
            (code 0, a Router Alert of the wrong length).
        RemoteProtocolError: ``"short_ext"``, ``"too_many_ext"``,
            ``"unknown_option"`` (dropped without ICMP) or ``"bad_option"``.

    The rules are in the "Theory of operation" comment above this function.

    DragonFly: the ``nxt`` loop of ``ip6_input`` with ``ip6_hopopts_input``,
    ``dest6_input``, ``route6_input`` and ``frag6_input``.
    """
    n = len(data)
    nh = next_header
    off = 0
    at = 6  # the Next Header field that named nh, from the IPv6 header start
    count = 0
    router_alert = None
    unfragmentable_end = 0
    while nh in _EXT_HEADERS:
        if count == max_headers:
            raise RemoteProtocolError("too_many_ext", f"more than {max_headers} extension headers")
        count += 1
        if nh == IPPROTO_HOPOPTS and count != 1:
            raise ParameterProblem(
                "hbh_not_first", code=PARAMPROB_NEXTHEADER, pointer=at,
                detail="Hop-by-Hop options after another header",
            )
        if nh == IPPROTO_FRAGMENT:
            if off + 8 > n:
                raise RemoteProtocolError("short_ext", f"Fragment header at {40 + off}, {n - off} bytes left")
            fnh, _, offlg, ident = _FRAG.unpack_from(data, off)
            frag = FragmentHeader(fnh, offlg & 0xFFF8, offlg & 1 == 1, ident)
            return ExtChain(fnh, off + 8, router_alert, frag, off, off, at)
        if off + 2 > n:
            raise RemoteProtocolError("short_ext", f"header {nh} at {40 + off}, {n - off} bytes left")
        end = off + ((data[off + 1] + 1) << 3)
        if end > n:
            raise RemoteProtocolError("short_ext", f"header {nh} at {40 + off} ends past {40 + n}")
        if nh == IPPROTO_ROUTING:
            if data[off + 3]:
                raise ParameterProblem(
                    "routing_header", code=PARAMPROB_HEADER, pointer=40 + off + 2,
                    detail=f"routing type {data[off + 2]}, segments left {data[off + 3]}",
                )
            unfragmentable_end = end
        else:
            hop_by_hop = nh == IPPROTO_HOPOPTS
            ra = _walk_options(data, off, end, dst_multicast, hop_by_hop)
            if hop_by_hop:
                router_alert = ra
                unfragmentable_end = end
        at = 40 + off
        nh = data[off]
        off = end
    return ExtChain(nh, off, router_alert, None, -1, unfragmentable_end, at)


def router_alert_hop_by_hop(next_header: int, value: int = 0) -> bytes:
    """The 8-byte Hop-by-Hop header with a Router Alert option (RFC 2711), as MLD sends it.

    Router Alert (type 5, length 2, ``value``; 0 means MLD), then PadN of
    length 0 to fill 8 bytes.

    Raises:
        ValueError: ``next_header`` is not 0..255 or ``value`` not 0..65535.
    """
    if not 0 <= next_header <= 0xFF or not 0 <= value <= 0xFFFF:
        raise ValueError(f"next_header {next_header} or value {value} out of range")
    return bytes((next_header, 0, _OPT_ROUTER_ALERT, 2, value >> 8, value & 0xFF, _OPT_PADN, 0))


####################################################################
# Fragmentation
####################################################################


def fragment6(
    hdr: IPv6Header,
    unfragmentable: bytes | bytearray | memoryview,
    next_header: int,
    payload: bytes | bytearray | memoryview,
    mtu: int,
    ident: int,
) -> list[bytes]:
    """Split a packet into fragments of at most ``mtu`` bytes each (RFC 8200 4.5).

    The packet is passed in three parts, as :func:`walk_extensions` divides
    it (``unfragmentable = data[:chain.unfragmentable_end]``):

    Args:
        hdr: the fixed header. With ``unfragmentable`` empty its
            ``next_header`` is ignored (the fragments say 44); otherwise it
            names the first header of ``unfragmentable``.
        unfragmentable: the extension headers that every fragment repeats
            (Hop-by-Hop, Routing and the Destination Options before it),
            usually ``b""``. Its headers chain as sent; the Next Header
            field of the last one is overwritten with 44.
        next_header: the type of the first header of ``payload``: it goes
            into the Fragment header.
        payload: the fragmentable part (further extension headers and the
            upper-layer data).
        mtu: the path MTU.
        ident: the Fragment header's identification (the caller chooses it,
            unpredictably: RFC 7739).

    Returns:
        Whole packets, each the fixed header, ``unfragmentable``, a Fragment
        header and a piece of ``payload``, every piece a multiple of 8 bytes
        but the last. A packet that fits in ``mtu`` comes back whole as one
        packet *without* a Fragment header (RFC 8021: no atomic fragments),
        ``next_header`` written into the last unfragmentable Next Header.

    Raises:
        LocalProtocolError: ``mtu`` is below 1280, or the packet cannot be
            sent in fragments of that size: the unfragmentable part leaves
            no room for 8 bytes of data, or the reassembled payload would
            exceed 65535 bytes.
        ValueError: ``unfragmentable`` is not whole extension headers, or a
            field is out of range.

    DragonFly: the fragmentation in ``ip6_output`` and ``ip6_insertfraghdr``
    in ``sys/netinet6/ip6_output.c``.
    """
    if mtu < IPV6_MIN_MTU:
        raise LocalProtocolError(f"mtu {mtu} is below the IPv6 minimum {IPV6_MIN_MTU}")
    u = len(unfragmentable)
    n = len(payload)
    # Find the last Next Header field of the unfragmentable headers.
    last = -1
    o = 0
    while o < u:
        if o + 2 > u:
            raise ValueError("unfragmentable is not whole extension headers")
        last = o
        o += (unfragmentable[o + 1] + 1) << 3
    if o != u:
        raise ValueError("unfragmentable is not whole extension headers")
    if not 0 <= next_header <= 0xFF:
        raise ValueError(f"next_header {next_header} out of range")
    if u + n > IPV6_MAXPACKET:
        raise LocalProtocolError(
            f"{u} + {n} bytes exceed the {IPV6_MAXPACKET}-byte payload of a reassembled packet"
        )
    unfrag = bytearray(unfragmentable)
    if 40 + u + n <= mtu:
        if last < 0:
            return [_emit_fixed(hdr, n, next_header) + payload]
        unfrag[last] = next_header
        return [_emit_fixed(hdr, u + n, hdr.next_header) + unfrag + payload]
    chunk = (mtu - 40 - u - 8) & ~7
    if chunk < 8:
        raise LocalProtocolError(f"{u} bytes of unfragmentable headers leave no room in mtu {mtu}")
    if last < 0:
        fixed_nh = IPPROTO_FRAGMENT
    else:
        fixed_nh = hdr.next_header
        unfrag[last] = IPPROTO_FRAGMENT
    prefix = bytes(unfrag)
    view = memoryview(payload)
    pack = _FRAG.pack
    out = []
    try:
        for start in range(0, n, chunk):
            piece = view[start : start + chunk]
            more = 1 if start + chunk < n else 0
            out.append(
                _emit_fixed(hdr, u + 8 + len(piece), fixed_nh)
                + prefix + pack(next_header, 0, start | more, ident) + piece
            )
    except struct.error as exc:
        raise ValueError(f"header field out of range: {exc}") from None
    return out


####################################################################
# Reassembly
####################################################################

# Theory of operation
# -------------------
#
# A packet in progress is an _Entry keyed by (src, dst, ident) (RFC 8200
# 4.5). It holds its fragment data as sorted, non-overlapping pieces
# (parallel lists of starts, ends and bytes), each exactly one fragment's
# data, and, once the offset-0 fragment is in, that fragment's bytes from
# the IPv6 header through its Fragment header (`head`): the unfragmentable
# part the reassembled packet keeps. Its data is joined once, on
# completion.
#
# 1. An atomic fragment (offset 0, M clear; RFC 6946) is returned at once,
#    its Fragment header removed, without looking at or touching the
#    packets in progress (even one with the same key). It counts as a
#    datagram that was reassembled.
# 2. A fragment with M set and a length not a multiple of 8 raises
#    ParameterProblem code 0 pointing at the Payload Length (4)
#    ("bad_fragment_length"); one whose data would end a reassembled
#    payload past 65535 bytes (its own unfragmentable length, or the
#    offset-0 fragment's once known, plus offset plus length) raises
#    ParameterProblem code 0 pointing at its Fragment Offset field
#    ("bad_fragment_offset"). A fragment with no data is dropped. All three
#    count `malformed` and leave the packet in progress alone.
# 3. An overlap (RFC 5722): a fragment that overlaps held data, except an
#    exact duplicate, or that disagrees about where the packet ends (a
#    second, different last fragment; data past a known end) abandons the
#    packet: its data is freed, it counts `overlaps`, and its entry stays
#    as a tombstone until its deadline, so that every later fragment of it
#    is dropped too (`discarded`), never an ICMP error. A tombstone holds
#    no bytes but one of the max_datagrams slots; it counts in `abandoned`.
#    Divergence: KAME's frag6_input drops only the overlapping fragment.
# 4. An exact duplicate (same range, same bytes) is dropped alone:
#    `duplicates` (RFC 5722 section 4 allows this).
# 5. Bounds, checked before anything is stored (as Reassembler's rule 5):
#    a. a packet that would hold more than max_fragments pieces, or more
#       than max_bytes alone, is dropped;
#    b. otherwise, while the new bytes would push the total over max_bytes,
#       the oldest *other* live packet is dropped; while a new packet would
#       be one more than max_datagrams, the oldest entry (live or
#       tombstone) is dropped.
#    Live packets dropped so count `evicted`; a tombstone dropped early was
#    already counted in `overlaps`.
# 6. A packet is complete when its last fragment (M clear) is in and its
#    pieces cover [0, end) (they never overlap, so their total is `end`):
#    `reassembled`, unless the offset-0 fragment's unfragmentable part and
#    the data exceed 65535 bytes together: `oversize` (checked as soon as
#    both are known).
# 7. The timer starts with the first fragment and is never extended (RFC
#    8200: 60 seconds). `expire` drops packets whose deadline has passed
#    (`timeouts`) and returns, for those whose offset-0 fragment had
#    arrived, that fragment (head and data, as received), for ICMPv6 Time
#    Exceeded code 1; tombstones go silently. Creation order is deadline
#    order, so the oldest and the next deadline are found in O(1).
#
# Every packet started ends in exactly one way, so at all times
#
#     datagrams == reassembled + timeouts + overlaps + oversize + evicted
#                  + in_progress
#
# and fragments >= malformed + duplicates + discarded.
#
# Divergence: RFC 3168 5.3's ECN rules for fragments are not applied; the
# packet takes its offset-0 fragment's traffic class, as Reassembler does.


@attrs.frozen
class Reassembly6Statistics:
    """Counters of a :class:`Reassembler6` (``netstat -s -p ip6``'s fragment lines).

    The fields of :class:`~trionet.protocols.ipv4.ReassemblyStatistics`,
    with the same meanings, and two for RFC 5722's abandoned packets.

    Attributes:
        fragments: fragments given to :meth:`Reassembler6.add`.
        malformed: fragments dropped alone: a bad length or offset (these
            raise :class:`ParameterProblem`) or no data.
        duplicates: exact duplicates dropped alone.
        datagrams: packets whose reassembly started (atomic fragments
            included).
        reassembled: packets completed (atomic fragments included).
        timeouts: packets dropped by :meth:`Reassembler6.expire`.
        overlaps: packets abandoned for an overlap or a disagreement about
            their end.
        oversize: packets dropped for exceeding 65535 bytes of payload.
        evicted: packets dropped to keep a bound.
        in_progress: packets being reassembled now (tombstones excluded).
        buffered_bytes: bytes held now: fragment data plus the offset-0
            fragments' headers.
        discarded: fragments dropped because their packet had been
            abandoned for an overlap.
        abandoned: tombstones held now: abandoned packets whose later
            fragments are still being discarded.

    ``datagrams == reassembled + timeouts + overlaps + oversize + evicted +
    in_progress`` always holds.
    """

    fragments: int
    malformed: int
    duplicates: int
    datagrams: int
    reassembled: int
    timeouts: int
    overlaps: int
    oversize: int
    evicted: int
    in_progress: int
    buffered_bytes: int
    discarded: int
    abandoned: int


class _Entry:
    __slots__ = (
        "deadline", "starts", "ends", "datas", "covered", "held", "end",
        "head", "frag_at", "nh_at", "dead",
    )

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.datas: list[bytes] = []
        self.covered = 0  # data bytes held (the pieces never overlap)
        self.held = 0  # bytes counted in buffered: covered plus len(head)
        self.end: int | None = None  # data length, once the last fragment is in
        self.head: bytes | None = None  # offset-0 fragment, IPv6 header to Fragment header
        self.frag_at = -1  # its Fragment header's offset after the fixed header
        self.nh_at = 6  # its Next Header field naming the Fragment header
        self.dead = False  # abandoned for an overlap: a tombstone


_Key = tuple[bytes, bytes, int]


class Reassembler6:
    """Rebuilds IPv6 packets from fragments; sans-IO, bounded, time passed in.

    Args:
        max_datagrams: packets in progress (and tombstones) at once.
        max_bytes: bytes held in total.
        timeout: seconds from a packet's first fragment until it is given
            up (RFC 8200 4.5: 60; DragonFly's ``IPV6_FRAGTTL``).
        max_fragments: pieces held per packet.

    Drops, overlaps and bounds follow the numbered rules in the "Theory of
    operation" comment above this class; :meth:`statistics` counts every
    one. The caller calls :meth:`expire` at :meth:`next_deadline`.

    DragonFly: ``frag6_input`` and ``frag6_slowtimo`` in ``sys/netinet6/frag6.c``.
    """

    def __init__(
        self,
        *,
        max_datagrams: int = 64,
        max_bytes: int = 1 << 20,
        timeout: float = 60.0,
        max_fragments: int = 128,
    ) -> None:
        if max_datagrams < 1 or max_bytes < 1 or max_fragments < 1:
            raise ValueError("max_datagrams, max_bytes and max_fragments must be at least 1")
        if not timeout > 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self.max_datagrams = max_datagrams
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.max_fragments = max_fragments
        # Insertion (creation) order is deadline order: the first is the oldest.
        self._entries: dict[_Key, _Entry] = {}
        self._buffered = 0
        self._dead = 0
        self._fragments = self._malformed = self._duplicates = self._datagrams = 0
        self._reassembled = self._timeouts = self._overlaps = self._oversize = 0
        self._evicted = self._discarded = 0

    def statistics(self) -> Reassembly6Statistics:
        """A snapshot of the counters."""
        return Reassembly6Statistics(
            fragments=self._fragments,
            malformed=self._malformed,
            duplicates=self._duplicates,
            datagrams=self._datagrams,
            reassembled=self._reassembled,
            timeouts=self._timeouts,
            overlaps=self._overlaps,
            oversize=self._oversize,
            evicted=self._evicted,
            in_progress=len(self._entries) - self._dead,
            buffered_bytes=self._buffered,
            discarded=self._discarded,
            abandoned=self._dead,
        )

    def next_deadline(self) -> float | None:
        """When :meth:`expire` next has work, or ``None`` with nothing held."""
        for entry in self._entries.values():
            return entry.deadline
        return None

    def _drop(self, key: _Key) -> _Entry:
        entry = self._entries.pop(key)
        if entry.dead:
            self._dead -= 1
        else:
            self._buffered -= entry.held
        return entry

    def _abandon(self, entry: _Entry) -> None:
        # Rule 3: free the data, keep the slot until the deadline.
        self._overlaps += 1
        self._buffered -= entry.held
        self._dead += 1
        entry.dead = True
        entry.starts = []
        entry.ends = []
        entry.datas = []
        entry.head = None
        entry.covered = entry.held = 0

    def _evict_for_bytes(self, need: int, keep: _Key | None) -> None:
        # Rule 5b: the oldest other live packet goes first. One exists:
        # the caller checked that `keep` plus `need` fits alone.
        entries = self._entries
        while self._buffered + need > self.max_bytes:
            for key, entry in entries.items():
                if key != keep and not entry.dead:
                    break
            self._drop(key)
            self._evicted += 1

    def add(
        self,
        packet: bytes | bytearray | memoryview,
        hdr: IPv6Header,
        chain: ExtChain,
        now: float,
    ) -> bytes | None:
        """Take one fragment; return the packet if this one completed it.

        Args:
            packet: the whole fragment packet, from its IPv6 header on (the
                bytes needed are copied if kept: the buffer may be reused).
            hdr: its parsed fixed header.
            chain: :func:`walk_extensions`'s result for it, with a Fragment
                header.
            now: the current time, for a new packet's deadline.

        Returns:
            The reassembled packet, starting at a fresh IPv6 header (payload
            length recomputed) with the offset-0 fragment's unfragmentable
            headers, the Fragment header removed and the Next Header field
            that named it set to the Fragment header's next header; the
            caller parses it again. ``None`` if the packet is incomplete or
            the fragment was dropped (see :meth:`statistics`).

        Raises:
            ParameterProblem: ``"bad_fragment_length"`` or
                ``"bad_fragment_offset"`` (rule 2), for the glue to answer.
            ValueError: ``chain`` has no Fragment header.
        """
        frag = chain.fragment
        if frag is None:
            raise ValueError("Reassembler6.add() wants a chain with a Fragment header")
        self._fragments += 1
        view = memoryview(packet)
        data_start = 40 + chain.offset
        data_end = 40 + hdr.payload_length
        n = data_end - data_start
        start = frag.offset
        more = frag.more
        frag_at = chain.fragment_at

        if start == 0 and not more:  # rule 1: an atomic fragment
            self._datagrams += 1
            self._reassembled += 1
            return _splice(view[:data_start], frag_at, chain.next_header_at, [view[data_start:data_end]])

        # Rule 2.
        if more and n & 7:
            self._malformed += 1
            raise ParameterProblem(
                "bad_fragment_length", code=PARAMPROB_HEADER, pointer=4,
                detail=f"{n} bytes with M set, not a multiple of 8",
            )
        end = start + n
        key = (hdr.src, hdr.dst, frag.ident)
        entries = self._entries
        entry = entries.get(key)
        unfrag = frag_at if entry is None or entry.head is None else entry.frag_at
        if unfrag + end > IPV6_MAXPACKET:
            self._malformed += 1
            raise ParameterProblem(
                "bad_fragment_offset", code=PARAMPROB_HEADER, pointer=40 + frag_at + 2,
                detail=f"{unfrag} + {start} + {n} bytes exceed {IPV6_MAXPACKET}",
            )
        if n == 0:
            self._malformed += 1
            return None
        size = n + data_start if start == 0 else n  # the head is kept with the first

        if entry is None:
            self._datagrams += 1
            if size > self.max_bytes:
                self._evicted += 1
                return None
            while len(entries) >= self.max_datagrams:  # rule 5b
                if not self._drop(next(iter(entries))).dead:
                    self._evicted += 1
            self._evict_for_bytes(size, None)
            entry = entries[key] = _Entry(now + self.timeout)
            i = 0
        elif entry.dead:  # rule 3: a tombstone
            self._discarded += 1
            return None
        else:
            starts, ends = entry.starts, entry.ends
            known = entry.end
            if more:
                conflict = known is not None and end >= known
            elif known is not None:
                conflict = end != known
            else:
                conflict = end <= ends[-1]
            i = bisect_right(ends, start)
            if not conflict and i < len(starts) and starts[i] < end:
                if starts[i] == start and ends[i] == end and entry.datas[i] == view[data_start:data_end]:
                    self._duplicates += 1  # rule 4
                    return None
                conflict = True
            if conflict:
                self._abandon(entry)
                return None
            # Rule 5, before storing anything.
            if len(starts) >= self.max_fragments or entry.held + size > self.max_bytes:
                self._drop(key)
                self._evicted += 1
                return None
            self._evict_for_bytes(size, key)

        entry.starts.insert(i, start)
        entry.ends.insert(i, end)
        entry.datas.insert(i, bytes(view[data_start:data_end]))
        entry.covered += n
        entry.held += size
        self._buffered += size
        if not more:
            entry.end = end
        if start == 0:
            entry.head = bytes(view[:data_start])
            entry.frag_at = frag_at
            entry.nh_at = chain.next_header_at
            if frag_at + entry.ends[-1] > IPV6_MAXPACKET:  # rule 6: oversize
                self._drop(key)
                self._oversize += 1
                return None
        if entry.end is not None and entry.covered == entry.end:
            self._drop(key)
            head = entry.head
            assert head is not None  # covered == end > 0 means a piece at offset 0
            self._reassembled += 1
            return _splice(head, entry.frag_at, entry.nh_at, entry.datas)
        return None

    def expire(self, now: float) -> list[bytes]:
        """Drop the packets whose deadline is at or before ``now``.

        Returns:
            For each dropped packet whose offset-0 fragment had arrived, that
            fragment as received (from its IPv6 header, link padding cut),
            for ICMPv6 Time Exceeded code 1 quoting it; the others are only
            counted (``timeouts``). Tombstones of abandoned packets go
            silently (they were counted in ``overlaps``).
        """
        entries = self._entries
        out = []
        while entries:
            key, entry = next(iter(entries.items()))
            if entry.deadline > now:
                break
            self._drop(key)
            if entry.dead:
                continue
            self._timeouts += 1
            if entry.head is not None:
                out.append(entry.head + entry.datas[0])
        return out


def _splice(
    head: bytes | memoryview, frag_at: int, nh_at: int, datas: list[bytes] | list[memoryview]
) -> bytes:
    # The fixed header and unfragmentable headers of `head`, without the
    # Fragment header at frag_at, its next header written where the
    # Fragment header was named, and the payload length recomputed.
    prefix = bytearray(head[: 40 + frag_at])
    plen = frag_at + sum(len(d) for d in datas)
    prefix[4] = plen >> 8
    prefix[5] = plen & 0xFF
    prefix[nh_at] = head[40 + frag_at]
    return b"".join([prefix, *datas])
