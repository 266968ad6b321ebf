"""IPv4 header, fragmentation and reassembly (RFC 791, RFC 815, RFC 1122 3.2-3.3).

What :meth:`IPv4Header.parse` checks, in order, before reading each field:

1. At least 20 bytes (``"short_header"``).
2. Version 4 (``"bad_version"``).
3. IHL at least 5 and the header within the bytes given (``"bad_ihl"``).
4. Total length at least the header and at most the bytes given
   (``"bad_length"``). Bytes beyond the total length are link padding (a
   60-byte Ethernet minimum, say): the payload is cut to the total length.
5. The header checksum (``"bad_checksum"``).
6. The fragment lies inside a 65535-byte datagram: offset plus payload length
   at most 65535 (``"bad_fragment"``; the "ping of death").

What it does not check, and why:

- Options (IHL > 5) are skipped, not interpreted: ``ihl`` keeps their
  presence, the payload starts after them. Source routes and record-route are
  not implemented (RFC 1122 3.2.1.8 makes most options MAY for hosts, and
  RFC 7126 recommends dropping source-routed packets at routers anyway), and
  a host that skips an option it does not understand is what RFC 1122
  3.2.1.8 asks for. :meth:`IPv4Header.emit` never sends options.
- The reserved flag bit (RFC 791 "bit 0: reserved, must be zero") is
  *ignored*, never ``"bad_flags"``: RFC 1122 1.2.2 says to be liberal in
  what we accept, Linux and the BSDs ignore it on input, and it carries
  nothing we act on. :meth:`IPv4Header.emit` always sends it as zero, so a
  forwarded datagram leaves with it cleared.
- Addresses (martians, broadcast sources) and TTL: IP input's business.
- A non-last fragment whose length is not a multiple of 8: a router forwards
  it unchanged; :class:`Reassembler` refuses it (counted ``malformed``).

:meth:`IPv4Header.emit` computes the total length and the checksum; it emits
IHL 5 and ignores the ``total_length`` and ``ihl`` of the value.

Bounds: the header is 20 to 60 bytes; parse allocates the header value and a
:class:`memoryview` and nothing else. :class:`Reassembler` holds at most
``max_datagrams`` datagrams, ``max_bytes`` bytes of fragment data and
``max_fragments`` pieces per datagram (its docstring has the rules).

DragonFly: ``sys/netinet/ip_input.c`` (``ip_input``, ``ip_reass``),
``sys/netinet/ip_output.c`` (``ip_output``, ``ip_fragment``).
"""

from __future__ import annotations

import ipaddress
import struct
from bisect import bisect_right

import attrs

from .errors import RemoteProtocolError

__all__ = [
    "IPPROTO_ICMP",
    "IPPROTO_TCP",
    "IPPROTO_UDP",
    "IPV4_HDR_LEN",
    "IP_MAXPACKET",
    "MIN_FRAGMENT_MTU",
    "IPv4Header",
    "ReassemblyStatistics",
    "Reassembler",
    "fragment",
    "ip_aton",
    "ip_ntoa",
    "is_broadcast",
    "is_loopback",
    "is_multicast",
    "is_unspecified",
]

IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17

IPV4_HDR_LEN = 20
IP_MAXPACKET = 65535

#: The smallest MTU :func:`fragment` accepts: a 20-byte header and 8 bytes of
#: data, the least that makes progress. (RFC 791's minimum link MTU is 68.)
MIN_FRAGMENT_MTU = 28

_HDR = struct.Struct("!BBHHHBBH4s4s")
_pack = _HDR.pack
_unpack_from = _HDR.unpack_from

_RF = 0x8000  # reserved: ignored on input, sent as 0 (module docstring)
_DF = 0x4000
_MF = 0x2000
_OFFMASK = 0x1FFF

_BROADCAST = b"\xff\xff\xff\xff"
_UNSPECIFIED = b"\x00\x00\x00\x00"


####################################################################
# Addresses
####################################################################


def ip_aton(text: str) -> bytes:
    """The 4 bytes of the dotted quad ``text`` (``"10.0.0.1"`` -> ``b"\\n\\0\\0\\1"``).

    Raises:
        ValueError: ``text`` is not four decimal numbers 0..255 joined by dots
            (shorthands such as ``"10.1"`` that :func:`socket.inet_aton`
            accepts are refused).
    """
    try:
        return ipaddress.IPv4Address(text).packed
    except ValueError:
        raise ValueError(f"not an IPv4 address (want a dotted quad like 10.0.0.1): {text!r}") from None


def ip_ntoa(addr: bytes) -> str:
    """The dotted quad of the 4-byte address ``addr``.

    Raises:
        ValueError: ``addr`` is not 4 bytes long.
    """
    if len(addr) != 4:
        raise ValueError(f"an IPv4 address is 4 bytes, got {len(addr)}")
    return "%d.%d.%d.%d" % tuple(addr)


def _addr_repr(addr: bytes) -> str:
    # Lenient for repr: a malformed value must still print.
    return ip_ntoa(addr) if len(addr) == 4 else repr(addr)


def is_broadcast(addr: bytes) -> bool:
    """Whether ``addr`` is the limited broadcast 255.255.255.255.

    A subnet's directed broadcast depends on its netmask, which the routing
    glue knows and this module does not.
    """
    return addr == _BROADCAST


def is_multicast(addr: bytes) -> bool:
    """Whether ``addr`` is in 224.0.0.0/4 (class D)."""
    return len(addr) == 4 and addr[0] & 0xF0 == 0xE0


def is_loopback(addr: bytes) -> bool:
    """Whether ``addr`` is in 127.0.0.0/8."""
    return len(addr) == 4 and addr[0] == 127


def is_unspecified(addr: bytes) -> bool:
    """Whether ``addr`` is 0.0.0.0 ("this host", RFC 1122 3.2.1.3)."""
    return addr == _UNSPECIFIED


####################################################################
# Header
####################################################################


# slots=False on purpose: a frozen *slotted* attrs class sets each field
# through object.__setattr__ in __init__, a frozen dict class writes its
# __dict__ directly, and with eleven fields that is 3x faster (0.7 against
# 2.0 us here), the larger part of parse's cost. Headers are short-lived, so
# the per-instance dict costs little memory.
@attrs.frozen(slots=False)
class IPv4Header:
    """An IPv4 header.

    Attributes:
        src, dst: 4-byte addresses.
        proto: the protocol number (:data:`IPPROTO_UDP`...).
        ttl, tos: time to live and type of service (DSCP and ECN), 0..255.
        ident: the identification field, 0..65535.
        df, mf: the Don't Fragment and More Fragments flags.
        frag_offset: the fragment offset *in bytes* (a multiple of 8,
            0..65528), not in the field's 8-byte units.
        total_length: the total length field as received; ignored by
            :meth:`emit`, which computes it.
        ihl: the header length in 32-bit words as received (5 without
            options); ignored by :meth:`emit`, which sends 5.
    """

    src: bytes = attrs.field(repr=_addr_repr)
    dst: bytes = attrs.field(repr=_addr_repr)
    proto: int
    ttl: int = 64
    tos: int = 0
    ident: int = 0
    df: bool = False
    mf: bool = False
    frag_offset: int = 0
    total_length: int = 0
    ihl: int = 5

    @property
    def is_fragment(self) -> bool:
        """Whether this is a piece of a larger datagram (MF set or a non-zero offset)."""
        return self.mf or self.frag_offset != 0

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> tuple[IPv4Header, memoryview]:
        """Parse and verify the IPv4 datagram ``data``.

        Args:
            data: the datagram, starting at the IP header; it may carry link
                padding after the total length.

        Returns:
            The header and a view of the payload (after any options, cut to
            the total length).

        Raises:
            RemoteProtocolError: ``"short_header"``, ``"bad_version"``,
                ``"bad_ihl"``, ``"bad_length"``, ``"bad_checksum"`` or
                ``"bad_fragment"``, checked in that order (see the module
                docstring).
        """
        n = len(data)
        if n < 20:
            raise RemoteProtocolError("short_header", f"{n} bytes, need 20")
        vihl, tos, total, ident, frag, ttl, proto, _, src, dst = _unpack_from(data)
        if vihl >> 4 != 4:
            raise RemoteProtocolError("bad_version", f"version {vihl >> 4}")
        ihl = vihl & 0x0F
        hlen = ihl << 2
        if ihl < 5 or hlen > n:
            raise RemoteProtocolError("bad_ihl", f"IHL {ihl}, {n} bytes present")
        if total < hlen or total > n:
            raise RemoteProtocolError("bad_length", f"total length {total}, {n} bytes present")
        # The header read as one big-endian integer is congruent, modulo
        # 0xFFFF, to the sum of its 16-bit words (see checksum.py); a correct
        # header sums to 0xFFFF, i.e. 0 modulo 0xFFFF. (Never all zeros: the
        # version nibble is 4.) Inlined for speed.
        if int.from_bytes(data[:hlen], "big") % 0xFFFF:
            raise RemoteProtocolError("bad_checksum")
        offset = (frag & _OFFMASK) << 3
        if offset + total - hlen > IP_MAXPACKET:
            raise RemoteProtocolError(
                "bad_fragment", f"offset {offset} + {total - hlen} bytes exceed {IP_MAXPACKET}"
            )
        return (
            cls(src, dst, proto, ttl, tos, ident, frag & _DF != 0, frag & _MF != 0, offset, total, ihl),
            memoryview(data)[hlen:total],
        )

    def emit(self, payload: bytes | bytearray | memoryview = b"") -> bytes:
        """The datagram: this header (IHL 5, length and checksum computed) and ``payload``.

        Raises:
            ValueError: an address is not 4 bytes, the offset is not a
                multiple of 8 in 0..65528, the datagram would exceed 65535
                bytes, or a field is out of range.
        """
        total = 20 + len(payload)
        off = self.frag_offset
        if total > IP_MAXPACKET:
            raise ValueError(f"a datagram is at most {IP_MAXPACKET} bytes, this one {total}")
        if off & 7 or not 0 <= off <= 65528:
            raise ValueError(f"frag_offset must be a multiple of 8 in 0..65528, got {off}")
        src = self.src
        dst = self.dst
        if len(src) != 4 or len(dst) != 4:
            raise ValueError("src and dst must be 4-byte IPv4 addresses")
        frag = off >> 3
        if self.df:
            frag |= _DF
        if self.mf:
            frag |= _MF
        tos, ident, ttl, proto = self.tos, self.ident, self.ttl, self.proto
        # The one's-complement sum of the header words, modulo 0xFFFF (each
        # address read as an integer is congruent to the sum of its two
        # words), so the checksum costs no second pack. -s % 0xFFFF is the
        # complement, and 0 (not 0xFFFF) when the sum is 0xFFFF.
        s = (
            0x4500 + tos + total + ident + frag + (ttl << 8) + proto
            + int.from_bytes(src, "big") + int.from_bytes(dst, "big")
        )
        try:
            header = _pack(0x45, tos, total, ident, frag, ttl, proto, -s % 0xFFFF, src, dst)
        except struct.error as exc:
            raise ValueError(f"header field out of range: {exc}") from None
        return header + payload


####################################################################
# Fragmentation
####################################################################


def fragment(
    header: IPv4Header, payload: bytes | bytearray | memoryview, mtu: int
) -> list[bytes]:
    """Split a datagram into fragments of at most ``mtu`` bytes each.

    Every fragment carries ``header``'s addresses, protocol, TTL, TOS and
    ident and no options; each data part is a multiple of 8 bytes except the
    last. Offsets are relative to ``header.frag_offset`` and the last
    fragment keeps ``header.mf``, so fragmenting a fragment again (a router
    with a smaller next hop) gives pieces that reassemble with the rest.

    A datagram that fits is returned as one piece, as :meth:`IPv4Header.emit`
    would send it.

    Raises:
        ValueError: ``mtu`` is below 28 (20 bytes of header and 8 of data);
            or ``header.df`` is set and the datagram does not fit: whether to
            drop it and answer ICMP "fragmentation needed" (RFC 1191) or
            fail with ``EMSGSIZE`` is the caller's decision, so this is a
            programming error, not remote input; or the datagram is
            malformed (see :meth:`IPv4Header.emit`).

    DragonFly: ``ip_fragment`` in ``sys/netinet/ip_output.c``.
    """
    if mtu < MIN_FRAGMENT_MTU:
        raise ValueError(f"mtu {mtu} is below {MIN_FRAGMENT_MTU}: no room for 8 bytes of data")
    n = len(payload)
    if 20 + n <= mtu:
        return [header.emit(payload)]
    if header.df:
        raise ValueError(
            f"{20 + n}-byte datagram with DF set exceeds mtu {mtu}: "
            "send ICMP fragmentation needed (or EMSGSIZE) instead"
        )
    base = header.frag_offset
    if base & 7 or base < 0 or base + n > IP_MAXPACKET:
        raise ValueError(f"fragment at offset {base} with {n} bytes does not fit in a datagram")
    src, dst = header.src, header.dst
    if len(src) != 4 or len(dst) != 4:
        raise ValueError("src and dst must be 4-byte IPv4 addresses")
    tos, ident, ttl, proto = header.tos, header.ident, header.ttl, header.proto
    flags = _DF if header.df else 0
    last_mf = _MF if header.mf else 0
    chunk = (mtu - 20) & ~7
    view = memoryview(payload)
    # The checksum is linear in the words that change per fragment (total
    # length and offset/flags), so sum the others once.
    fixed = (
        0x4500 + tos + ident + (ttl << 8) + proto
        + int.from_bytes(src, "big") + int.from_bytes(dst, "big")
    )
    out = []
    try:
        for start in range(0, n, chunk):
            piece = view[start : start + chunk]
            total = 20 + len(piece)
            frag = flags | ((base + start) >> 3) | (_MF if start + chunk < n else last_mf)
            csum = -(fixed + total + frag) % 0xFFFF
            out.append(_pack(0x45, tos, total, ident, frag, ttl, proto, csum, src, dst) + piece)
    except struct.error as exc:
        raise ValueError(f"header field out of range: {exc}") from None
    return out


####################################################################
# Reassembly
####################################################################

# Theory of operation
# -------------------
#
# A datagram in progress is an _Entry keyed by (src, dst, proto, ident)
# (RFC 791). It holds its data as sorted, non-overlapping pieces
# (parallel lists of starts, ends and bytes) and joins them once, when
# complete: one copy per fragment on arrival (the frame's buffer is not
# ours to keep) and one for the datagram.
#
# 1. A fragment is `malformed` (dropped alone, counted) if its offset is not
#    a multiple of 8, it carries no data, or it has MF set and a length that
#    is not a multiple of 8 (FreeBSD's ips_toosmall; Linux also drops empty
#    fragments).
# 2. A fragment ending past 65535 - 20, or a complete datagram longer than
#    65535 with its first fragment's header, drops the datagram: `oversize`.
# 3. Fragments that disagree about where the datagram ends (two different
#    last fragments, data past a known end) or that overlap stored data
#    with *different* bytes drop the whole datagram: `overlaps`. This is
#    RFC 5722's rule for IPv6, which Linux applies to IPv4 since 4.19: an
#    overlap with other bytes is an attack (IDS evasion, teardrop) or a
#    corruption, never something to resolve by picking a winner.
#    Divergence: Linux drops *any* overlap except an exact duplicate range;
#    we compare bytes, so overlaps that repeat the same bytes (a datagram
#    re-fragmented differently on two paths) are harmless and keep only the
#    new parts.
# 4. A fragment all of whose bytes are already held (and that says nothing
#    new about the end) is a `duplicate`, dropped alone.
# 5. Bounds, checked before anything is stored:
#    a. a datagram that would hold more than max_fragments pieces, or more
#       than max_bytes alone, is dropped;
#    b. otherwise, while the new bytes would push the total over max_bytes,
#       or a new datagram would be one more than max_datagrams, the oldest
#       *other* datagram in progress is dropped.
#    All of these count `evicted`. Dropping the oldest (FreeBSD's
#    ipq_reuse, lwIP's ip_reass_remove_oldest_datagram) rather than the
#    newcomer (Linux since 4.17) keeps the stack live under a flood: a
#    legitimate datagram whose fragments arrive back to back still
#    completes, where refusing newcomers would block all reassembly for a
#    whole timeout.
# 6. A datagram is complete when its last fragment (MF clear) has arrived
#    and its pieces cover [0, end) with no hole: `reassembled`.
# 7. The timer starts with the first fragment and is never extended (RFC
#    1122 3.3.2: a fixed timeout, not one taken from the TTL). `expire`
#    drops datagrams whose deadline has passed (`timeouts`) and returns,
#    for those whose offset-0 fragment had arrived, that fragment's header
#    and data, so the glue can send ICMP time exceeded, code 1 (RFC 792).
#    Datagrams are kept in creation order, which is deadline order, so the
#    oldest and the next deadline are found in O(1) (this needs `now` not to
#    go backwards, which one monotonic clock guarantees).
#
# Every datagram started ends in exactly one way, so at all times
#
#     datagrams == reassembled + timeouts + overlaps + oversize + evicted
#                  + in_progress
#
# and every fragment given to add() is counted in `fragments`; those not
# counted in `malformed` or `duplicates` belong to one of those datagrams.
#
# Divergence: RFC 3168 5.3's ECN rules for fragments (propagate CE, drop a
# mix of not-ECT and ECT) are not applied; the datagram takes its first
# fragment's TOS.


@attrs.frozen
class ReassemblyStatistics:
    """Counters of a :class:`Reassembler` (``netstat -s -p ip``'s fragment lines).

    Attributes:
        fragments: fragments given to :meth:`Reassembler.add`.
        malformed: fragments dropped alone: offset not a multiple of 8, no
            data, or MF set with a length not a multiple of 8.
        duplicates: fragments dropped alone because all their data was
            already held.
        datagrams: datagrams whose reassembly started.
        reassembled: datagrams completed.
        timeouts: datagrams dropped by :meth:`Reassembler.expire`.
        overlaps: datagrams dropped for conflicting fragments (overlapping
            different bytes, or disagreeing about the end).
        oversize: datagrams dropped for exceeding 65535 bytes.
        evicted: datagrams dropped to keep a bound (``max_datagrams``,
            ``max_bytes``, ``max_fragments``).
        in_progress: datagrams being reassembled now.
        buffered_bytes: bytes of fragment data held now.

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


class _Entry:
    __slots__ = ("deadline", "starts", "ends", "datas", "covered", "end", "first")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.datas: list[bytes] = []
        self.covered = 0  # bytes held (the pieces never overlap)
        self.end: int | None = None  # datagram data length, once the last fragment is in
        self.first: IPv4Header | None = None  # header of the offset-0 fragment


_Key = tuple[bytes, bytes, int, int]


class Reassembler:
    """Rebuilds datagrams from fragments; sans-IO, bounded, time passed in.

    Args:
        max_datagrams: datagrams in progress at once.
        max_bytes: bytes of fragment data held in total.
        timeout: seconds from a datagram's first fragment until it is
            given up (Linux ``ipfrag_time`` and BSD ``IPFRAGTTL`` are 30).
        max_fragments: pieces held per datagram (FreeBSD's
            ``maxfragsperpacket``, there 16; 128 lets a 64 KiB datagram
            through a 576-byte MTU path).

    Drops, overlaps and bounds follow the numbered rules in the "Theory of
    operation" comment above this class; :meth:`statistics` counts every one.
    The caller calls :meth:`expire` at :meth:`next_deadline`.

    DragonFly: ``ip_reass`` and ``ipfrag_slowtimo`` in ``sys/netinet/ip_input.c``.
    """

    def __init__(
        self,
        *,
        max_datagrams: int = 64,
        max_bytes: int = 1 << 20,
        timeout: float = 30.0,
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
        self._fragments = self._malformed = self._duplicates = self._datagrams = 0
        self._reassembled = self._timeouts = self._overlaps = self._oversize = 0
        self._evicted = 0

    def statistics(self) -> ReassemblyStatistics:
        """A snapshot of the counters."""
        return ReassemblyStatistics(
            fragments=self._fragments,
            malformed=self._malformed,
            duplicates=self._duplicates,
            datagrams=self._datagrams,
            reassembled=self._reassembled,
            timeouts=self._timeouts,
            overlaps=self._overlaps,
            oversize=self._oversize,
            evicted=self._evicted,
            in_progress=len(self._entries),
            buffered_bytes=self._buffered,
        )

    def next_deadline(self) -> float | None:
        """When :meth:`expire` next has work, or ``None`` with nothing in progress."""
        for entry in self._entries.values():
            return entry.deadline
        return None

    def _drop(self, key: _Key) -> None:
        self._buffered -= self._entries.pop(key).covered

    def add(
        self, header: IPv4Header, payload: bytes | bytearray | memoryview, now: float
    ) -> tuple[IPv4Header, bytes] | None:
        """Take one fragment; return the datagram if this one completed it.

        Args:
            header: the fragment's parsed header.
            payload: its data (copied if kept: the buffer may be reused).
            now: the current time, for a new datagram's deadline.

        Returns:
            ``(header, data)`` for a completed datagram: the first
            fragment's header with ``mf`` clear, offset 0 and
            ``total_length`` set; ``None`` otherwise. Never raises for any
            header and payload: bad fragments are counted and dropped.
        """
        self._fragments += 1
        start = header.frag_offset
        n = len(payload)
        end = start + n
        mf = header.mf
        if n == 0 or start & 7 or start < 0 or (mf and n & 7):
            self._malformed += 1
            return None
        key = (header.src, header.dst, header.proto, header.ident)
        entries = self._entries
        entry = entries.get(key)
        if entry is None:
            self._datagrams += 1
            if end > IP_MAXPACKET - 20:
                self._oversize += 1
                return None
            if n > self.max_bytes:
                self._evicted += 1
                return None
            # Rule 5b: make room for one more datagram and n more bytes.
            while entries and (
                len(entries) >= self.max_datagrams or self._buffered + n > self.max_bytes
            ):
                self._drop(next(iter(entries)))
                self._evicted += 1
            entry = entries[key] = _Entry(now + self.timeout)
            entry.starts.append(start)
            entry.ends.append(end)
            entry.datas.append(payload if type(payload) is bytes else bytes(payload))
            entry.covered = n
            self._buffered += n
            if not mf:
                entry.end = end
            if start == 0:
                entry.first = header
                if not mf:  # not a fragment after all: complete at once
                    return self._complete(key, entry)
            return None

        if end > IP_MAXPACKET - 20:
            self._drop(key)
            self._oversize += 1
            return None
        starts, ends, datas = entry.starts, entry.ends, entry.datas
        known = entry.end
        if mf:
            conflict = known is not None and end > known
        else:
            conflict = (known is not None and end != known) or end < ends[-1]
        if conflict:
            self._drop(key)
            self._overlaps += 1
            return None

        # Which parts of [start, end) are new; do held bytes agree?
        i = bisect_right(ends, start)
        if i == len(starts) or starts[i] >= end:
            gaps = [(start, end)]  # the common case: no overlap at all
        else:
            view = memoryview(payload)
            gaps = []
            cursor = start
            j = i
            count = len(starts)
            while j < count and starts[j] < end:
                s, e = starts[j], ends[j]
                lo = s if s > start else start
                hi = e if e < end else end
                if memoryview(datas[j])[lo - s : hi - s] != view[lo - start : hi - start]:
                    self._drop(key)
                    self._overlaps += 1
                    return None
                if s > cursor:
                    gaps.append((cursor, s))
                if e > cursor:
                    cursor = e
                j += 1
            if cursor < end:
                gaps.append((cursor, end))
        if not gaps:
            if mf or known is not None:
                self._duplicates += 1
                return None
            # Only news: where the datagram ends.
            entry.end = end
            return self._complete(key, entry) if entry.covered == end else None

        # Rule 5: bounds, before storing anything.
        need = sum(e - s for s, e in gaps)
        if len(starts) + len(gaps) > self.max_fragments or entry.covered + need > self.max_bytes:
            self._drop(key)
            self._evicted += 1
            return None
        while self._buffered + need > self.max_bytes:
            oldest = next(iter(entries))
            if oldest == key:  # ours is the oldest: drop the next one instead
                it = iter(entries)
                next(it)
                oldest = next(it)
            self._drop(oldest)
            self._evicted += 1

        if len(gaps) == 1 and gaps[0] == (start, end):
            data = payload if type(payload) is bytes else bytes(payload)
            if i == len(starts):
                starts.append(start)
                ends.append(end)
                datas.append(data)
            else:
                starts.insert(i, start)
                ends.insert(i, end)
                datas.insert(i, data)
        else:
            view = memoryview(payload)
            for s, e in gaps:
                k = bisect_right(starts, s)
                starts.insert(k, s)
                ends.insert(k, e)
                datas.insert(k, bytes(view[s - start : e - start]))
        entry.covered += need
        self._buffered += need
        if not mf:
            entry.end = end
        if start == 0 and entry.first is None:
            entry.first = header
        if entry.end is not None and entry.covered == entry.end:
            return self._complete(key, entry)
        return None

    def _complete(self, key: _Key, entry: _Entry) -> tuple[IPv4Header, bytes] | None:
        self._drop(key)
        first = entry.first
        assert first is not None  # covered == end > 0 means a piece at offset 0
        hlen = first.ihl * 4 if first.ihl >= 5 else 20
        if hlen + entry.covered > IP_MAXPACKET:
            self._oversize += 1
            return None
        self._reassembled += 1
        header = attrs.evolve(
            first, mf=False, frag_offset=0, total_length=hlen + entry.covered
        )
        datas = entry.datas
        return header, datas[0] if len(datas) == 1 else b"".join(datas)

    def expire(self, now: float) -> list[tuple[IPv4Header, bytes]]:
        """Drop the datagrams whose deadline is at or before ``now``.

        Returns:
            For each dropped datagram whose offset-0 fragment had arrived,
            that fragment's header and the data held from offset 0 (all of
            that fragment's data unless an earlier fragment already held part
            of it), for ICMP time exceeded, code 1, quoting it; the others
            are only counted (``timeouts``).
        """
        entries = self._entries
        out = []
        while entries:
            key, entry = next(iter(entries.items()))
            if entry.deadline > now:
                break
            self._drop(key)
            self._timeouts += 1
            if entry.first is not None:
                out.append((entry.first, entry.datas[0]))
        return out
