"""TCP segments over IPv4 (RFC 9293), options (RFC 7323, RFC 2018) and sequence arithmetic.

The connection machine is in :mod:`.tcp_connection`, congestion control in
:mod:`.tcp_cc`; this module holds what they and the glue share.

What :meth:`TcpHeader.parse` checks, in order, before reading each field:

1. At least 20 bytes (``"short_header"``).
2. The data offset is at least 5 words and the header lies within the bytes
   given (``"bad_offset"``). Everything after the header is payload: TCP has
   no length field, so the caller passes exactly the IP payload (cut to the
   IP total length, which :meth:`.ipv4.IPv4Header.parse` does).
3. The checksum over the IPv4 pseudo-header, header and payload
   (``"bad_checksum"``). TCP's checksum is mandatory: 0 is not "none".
4. The options (``"bad_option"``, with a detail): every option other than
   EOL (kind 0) and NOP (kind 1) has a length byte present, at least 2 and
   within the options area; the ones we interpret have their exact lengths
   (MSS 4, window scale 3, SACK-permitted 2, SACK 10/18/26/34, timestamps
   10). Unknown kinds are skipped by their length. Parsing stops at EOL. A
   repeated option: the last one wins (as Linux and the BSDs do).

What it does not check, and why:

- The four reserved bits between the data offset and the flags are ignored
  (RFC 9293 3.1: "must be zero" for senders; AccECN gives one a meaning, and
  a receiver that does not implement it ignores it).
- Flag combinations (SYN+FIN, no flags at all...) and the ports: the
  connection machine decides what a segment means.
- A window scale above 14 is kept as received here;
  :mod:`.tcp_connection` uses 14 (RFC 7323 2.3 says to log and use 14, not
  to reject the segment).

:meth:`TcpHeader.emit` computes the data offset and the checksum and lays
the options out as Linux does (4-byte aligned with NOPs): MSS, then
SACK-permitted and timestamps sharing one 12-byte word run, then window
scale, then SACK blocks. At most 40 bytes of options fit; more is a
``ValueError`` (a bug in the caller: :mod:`.tcp_connection` never asks for
more than 3 SACK blocks with timestamps, 4 without).

Bounds: the header is 20 to 60 bytes; parse allocates the header value, an
options value (shared when there are no options) and a :class:`memoryview`.
At most 4 SACK blocks fit in one option (40 bytes).

Sequence numbers are 32-bit and wrap: compare them with :func:`seq_lt` and
friends (RFC 9293 3.4, "serial number arithmetic", RFC 1982), never with
``<``.

DragonFly: ``sys/netinet/tcp.h``, ``tcp_seq.h`` (``SEQ_LT``...),
``tcp_input.c`` (``tcp_dooptions``), ``tcp_output.c`` (option layout),
``tcp_subr.c`` (``tcp_respond``).
"""

from __future__ import annotations

import enum
import hashlib
import struct

import attrs

from .checksum import ones_complement_sum, pseudo_header_sum
from .errors import RemoteProtocolError

__all__ = [
    "IPPROTO_TCP",
    "MAX_SACK_BLOCKS",
    "NO_OPTIONS",
    "SEQ_MASK",
    "TCP_HDR_LEN",
    "TCP_MAX_OPTIONS_LEN",
    "TcpFlags",
    "TcpHeader",
    "TcpOptions",
    "isn_rfc6528",
    "reset_for",
    "seq_add",
    "seq_diff",
    "seq_ge",
    "seq_gt",
    "seq_le",
    "seq_lt",
    "seq_max",
    "seq_min",
    "syncookie",
    "syncookie_check",
]

IPPROTO_TCP = 6
TCP_HDR_LEN = 20
TCP_MAX_OPTIONS_LEN = 40
#: The most SACK blocks one option holds (2 + 4 * 8 = 34 bytes).
MAX_SACK_BLOCKS = 4
SEQ_MASK = 0xFFFFFFFF

_HDR = struct.Struct("!HHIIBBHHH")

_OPT_EOL = 0
_OPT_NOP = 1
_OPT_MSS = 2
_OPT_WSCALE = 3
_OPT_SACK_PERMITTED = 4
_OPT_SACK = 5
_OPT_TIMESTAMP = 8


####################################################################
# Sequence-space arithmetic (RFC 9293 3.4)
####################################################################


def seq_diff(a: int, b: int) -> int:
    """``a - b`` in sequence space: a signed distance in -2**31..2**31-1.

    Two numbers 2**31 apart are ambiguous; the result is then -2**31
    (``a`` is taken to be *before* ``b``), which is what BSD's
    ``(int)(a - b)`` gives.
    """
    d = (a - b) & SEQ_MASK
    return d - 0x100000000 if d & 0x80000000 else d


def seq_lt(a: int, b: int) -> bool:
    """``a`` comes before ``b`` (modulo 2**32). DragonFly: ``SEQ_LT``."""
    return seq_diff(a, b) < 0


def seq_le(a: int, b: int) -> bool:
    """``a`` comes before or is ``b``. DragonFly: ``SEQ_LEQ``."""
    return seq_diff(a, b) <= 0


def seq_gt(a: int, b: int) -> bool:
    """``a`` comes after ``b``. DragonFly: ``SEQ_GT``."""
    return seq_diff(a, b) > 0


def seq_ge(a: int, b: int) -> bool:
    """``a`` comes after or is ``b``. DragonFly: ``SEQ_GEQ``."""
    return seq_diff(a, b) >= 0


def seq_add(a: int, n: int) -> int:
    """``a + n`` wrapped to 32 bits (``n`` may be negative)."""
    return (a + n) & SEQ_MASK


def seq_max(a: int, b: int) -> int:
    """The later of ``a`` and ``b``."""
    return b if seq_lt(a, b) else a


def seq_min(a: int, b: int) -> int:
    """The earlier of ``a`` and ``b``."""
    return a if seq_lt(a, b) else b


####################################################################
# Flags and options
####################################################################


class TcpFlags(enum.IntFlag):
    """The eight flag bits of the TCP header (RFC 9293 3.1, RFC 3168 for ECE/CWR)."""

    FIN = 0x01
    SYN = 0x02
    RST = 0x04
    PSH = 0x08
    ACK = 0x10
    URG = 0x20
    ECE = 0x40
    CWR = 0x80


def _fmt_blocks(blocks: tuple[tuple[int, int], ...]) -> str:
    return "(" + ", ".join(f"({s}, {e})" for s, e in blocks) + ")"


@attrs.frozen
class TcpOptions:
    """The TCP options we understand; ``None``/``False``/``()`` means absent.

    Attributes:
        mss: maximum segment size (RFC 9293 3.7.1), 0..65535; SYN only.
        wscale: window scale shift (RFC 7323 2), 0..255 as received (the
            machine uses at most 14); SYN only.
        sack_permitted: SACK-permitted (RFC 2018 2); SYN only.
        sack_blocks: up to 4 ``(left, right)`` edges (RFC 2018 3), each the
            first sequence number of a received block and the one after it.
        timestamps: ``(tsval, tsecr)`` (RFC 7323 3), each 0..2**32-1.
    """

    mss: int | None = None
    wscale: int | None = None
    sack_permitted: bool = False
    sack_blocks: tuple[tuple[int, int], ...] = attrs.field(default=(), repr=_fmt_blocks)
    timestamps: tuple[int, int] | None = None

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> TcpOptions:
        """Parse the options area of a TCP header (the bytes after the 20 fixed ones).

        Raises:
            RemoteProtocolError: ``"bad_option"`` (see the module docstring).
        """
        n = len(data)
        if not n:
            return NO_OPTIONS
        mss = wscale = timestamps = None
        sack_permitted = False
        sack_blocks: tuple[tuple[int, int], ...] = ()
        i = 0
        while i < n:
            kind = data[i]
            if kind == _OPT_EOL:
                break
            if kind == _OPT_NOP:
                i += 1
                continue
            if i + 1 >= n:
                raise RemoteProtocolError("bad_option", f"kind {kind} has no length byte")
            length = data[i + 1]
            if length < 2 or i + length > n:
                raise RemoteProtocolError("bad_option", f"kind {kind} length {length}, {n - i} bytes left")
            if kind == _OPT_MSS:
                if length != 4:
                    raise RemoteProtocolError("bad_option", f"MSS length {length}")
                mss = (data[i + 2] << 8) | data[i + 3]
            elif kind == _OPT_WSCALE:
                if length != 3:
                    raise RemoteProtocolError("bad_option", f"window scale length {length}")
                wscale = data[i + 2]
            elif kind == _OPT_SACK_PERMITTED:
                if length != 2:
                    raise RemoteProtocolError("bad_option", f"SACK-permitted length {length}")
                sack_permitted = True
            elif kind == _OPT_SACK:
                if (length - 2) % 8 or length == 2:
                    raise RemoteProtocolError("bad_option", f"SACK length {length}")
                words = struct.unpack_from(f"!{(length - 2) // 4}I", data, i + 2)
                sack_blocks = tuple(zip(words[::2], words[1::2]))
            elif kind == _OPT_TIMESTAMP:
                if length != 10:
                    raise RemoteProtocolError("bad_option", f"timestamps length {length}")
                timestamps = struct.unpack_from("!II", data, i + 2)
            i += length
        return cls(mss, wscale, sack_permitted, sack_blocks, timestamps)

    def emit(self) -> bytes:
        """The options area, padded to a multiple of 4 bytes.

        Raises:
            ValueError: more than 40 bytes, more than 4 SACK blocks, or a
                value out of range.
        """
        out = bytearray()
        try:
            if self.mss is not None:
                out += struct.pack("!BBH", _OPT_MSS, 4, self.mss)
            if self.timestamps is not None:
                out += b"\x04\x02" if self.sack_permitted else b"\x01\x01"
                out += struct.pack("!BBII", _OPT_TIMESTAMP, 10, *self.timestamps)
            elif self.sack_permitted:
                out += b"\x01\x01\x04\x02"
            if self.wscale is not None:
                out += struct.pack("!BBBB", _OPT_NOP, _OPT_WSCALE, 3, self.wscale)
            if self.sack_blocks:
                count = len(self.sack_blocks)
                if count > MAX_SACK_BLOCKS:
                    raise ValueError(f"at most {MAX_SACK_BLOCKS} SACK blocks fit, got {count}")
                out += struct.pack("!BBBB", _OPT_NOP, _OPT_NOP, _OPT_SACK, 2 + 8 * count)
                for left, right in self.sack_blocks:
                    out += struct.pack("!II", left, right)
        except struct.error as exc:
            raise ValueError(f"TCP option value out of range: {exc}") from None
        if len(out) > TCP_MAX_OPTIONS_LEN:
            raise ValueError(f"TCP options take at most 40 bytes, these take {len(out)}")
        if len(out) & 3:
            out += bytes(4 - (len(out) & 3))
        return bytes(out)


#: The options value of a header without options (shared, it is immutable).
NO_OPTIONS = TcpOptions()


####################################################################
# Header
####################################################################


@attrs.frozen
class TcpHeader:
    """A TCP header.

    Attributes:
        sport, dport: source and destination ports, 0..65535.
        seq, ack: sequence and acknowledgment numbers, 0..2**32-1 (``ack``
            is meaningful only with :attr:`TcpFlags.ACK`).
        flags: the flag bits, :class:`TcpFlags` (a parsed header holds them
            as a plain int, which the members mask and compare with alike:
            ``h.flags & TcpFlags.SYN``).
        window: the window field as sent (unscaled), 0..65535.
        urgent: the urgent pointer, 0..65535.
        options: the parsed options.
    """

    sport: int
    dport: int
    seq: int
    ack: int
    flags: TcpFlags | int
    window: int = 0
    urgent: int = 0
    options: TcpOptions = NO_OPTIONS

    @classmethod
    def parse(
        cls, data: bytes | bytearray | memoryview, src: bytes, dst: bytes, *, verify: bool = True
    ) -> tuple[TcpHeader, memoryview]:
        """Parse and verify the TCP segment ``data`` sent from ``src`` to ``dst``.

        Args:
            data: the whole IP payload, starting at the TCP header.
            src, dst: the source and destination (4 bytes each for IPv4, 16 for IPv6), for the
                pseudo-header.
            verify: ``False`` skips the checksum (the receiving card
                verified it: :data:`.offload.CSUM_DATA_VALID`).

        Returns:
            The header and a view of the payload.

        Raises:
            RemoteProtocolError: ``"short_header"``, ``"bad_offset"``,
                ``"bad_checksum"`` or ``"bad_option"``, checked in that order.
        """
        n = len(data)
        if n < 20:
            raise RemoteProtocolError("short_header", f"{n} bytes, need 20")
        sport, dport, seq, ack, off, flags, window, _, urgent = _HDR.unpack_from(data)
        hlen = (off >> 4) << 2
        if hlen < 20 or hlen > n:
            raise RemoteProtocolError("bad_offset", f"data offset {hlen >> 2} words, {n} bytes present")
        view = memoryview(data)
        if verify and ones_complement_sum(view, pseudo_header_sum(src, dst, IPPROTO_TCP, n)) != 0xFFFF:
            raise RemoteProtocolError("bad_checksum")
        options = TcpOptions.parse(view[20:hlen]) if hlen > 20 else NO_OPTIONS
        # flags as a plain int: TcpFlags members compare and mask with it,
        # and an int's & costs no Python call (per segment).
        return cls(sport, dport, seq, ack, flags, window, urgent, options), view[hlen:]

    def emit(
        self,
        payload: bytes | bytearray | memoryview,
        src: bytes,
        dst: bytes,
        *,
        checksum: bool = True,
    ) -> bytes:
        """The segment: this header (offset and checksum computed) and ``payload``.

        Args:
            payload: the data.
            src, dst: the addresses the segment will carry (4 or 16 bytes
                each), for the checksum's pseudo-header.
            checksum: ``False`` leaves the checksum field 0 for the network
                card to fill in (:mod:`.offload`).

        Raises:
            ValueError: a field is out of range, the options do not fit in 40
                bytes, the segment would not fit in an IPv4 datagram, or the
                addresses are not two IPv4 or two IPv6 ones.
        """
        opts = self.options.emit() if self.options is not NO_OPTIONS else b""
        hlen = 20 + len(opts)
        total = hlen + len(payload)
        if total > 65535 - 20:
            raise ValueError(f"a TCP segment over IPv4 is at most 65515 bytes, this one {total}")
        if len(src) not in (4, 16) or len(dst) != len(src):
            raise ValueError("src and dst must be two IPv4 (4-byte) or two IPv6 (16-byte) addresses")
        try:
            header = _HDR.pack(
                self.sport, self.dport, self.seq, self.ack, (hlen >> 2) << 4, int(self.flags),
                self.window, 0, self.urgent,
            ) + opts
        except struct.error as exc:
            raise ValueError(f"TCP header field out of range: {exc}") from None
        if not checksum:
            return header + bytes(payload)
        partial = ones_complement_sum(header, pseudo_header_sum(src, dst, IPPROTO_TCP, total))
        csum = ~ones_complement_sum(payload, partial) & 0xFFFF
        return header[:16] + csum.to_bytes(2, "big") + header[18:] + bytes(payload)

    @property
    def syn(self) -> bool:
        return bool(self.flags & TcpFlags.SYN)

    @property
    def has_ack(self) -> bool:
        return bool(self.flags & TcpFlags.ACK)

    @property
    def rst(self) -> bool:
        return bool(self.flags & TcpFlags.RST)

    @property
    def fin(self) -> bool:
        return bool(self.flags & TcpFlags.FIN)


####################################################################
# Helpers for the glue
####################################################################


def reset_for(header: TcpHeader, payload_len: int) -> TcpHeader | None:
    """The RST to answer a segment that reached no connection (RFC 9293 3.10.7.1).

    Args:
        header: the received segment's header.
        payload_len: its payload length.

    Returns:
        ``None`` for a RST (never answer one); else ``<SEQ=SEG.ACK><CTL=RST>``
        if the segment has ACK, ``<SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>``
        if not (SEG.LEN counts SYN and FIN). Ports are swapped.

    DragonFly: ``tcp_respond`` called from ``dropwithreset`` in ``tcp_input.c``.
    """
    flags = header.flags
    if flags & TcpFlags.RST:
        return None
    if flags & TcpFlags.ACK:
        return TcpHeader(header.dport, header.sport, header.ack, 0, TcpFlags.RST)
    seglen = payload_len + bool(flags & TcpFlags.SYN) + bool(flags & TcpFlags.FIN)
    return TcpHeader(
        header.dport, header.sport, 0, seq_add(header.seq, seglen), TcpFlags.RST | TcpFlags.ACK
    )


def isn_rfc6528(
    secret: bytes, src: bytes, sport: int, dst: bytes, dport: int, now: float
) -> int:
    """An initial sequence number per RFC 6528: ``M + F(4-tuple, secret)``.

    ``M`` is a 4-microsecond timer (``now`` in seconds) and ``F`` the first
    32 bits of a keyed BLAKE2s hash of the connection's addresses and ports,
    so ISNs of one 4-tuple increase with time and those of different 4-tuples
    are unrelated and, without ``secret``, unpredictable.

    Args:
        secret: at least 16 random bytes, fixed for the host's life (from the
            network's seeded generator in tests, from :func:`os.urandom` in
            real use). At most 32 bytes are used as the key.
        src, sport: the local address and port.
        dst, dport: the remote address and port.
        now: the current time in seconds.
    """
    if len(secret) < 16:
        raise ValueError("the ISN secret must be at least 16 bytes")
    digest = hashlib.blake2s(
        src + sport.to_bytes(2, "big") + dst + dport.to_bytes(2, "big"),
        key=secret[:32],
        digest_size=4,
    ).digest()
    return (int(now * 250_000) + int.from_bytes(digest, "big")) & SEQ_MASK


####################################################################
# SYN cookies
####################################################################

#: The MSS values a cookie can carry (3 bits); a SYN's MSS is rounded down
#: to one of them (Linux's IPv4 table, plus jumbo and loopback sizes).
SYNCOOKIE_MSS = (536, 1300, 1440, 1460, 4036, 8960, 16344, 65495)
#: A cookie's time counter ticks every this many seconds; a cookie is
#: accepted during the tick it was made in and the next one (64 to 128 s).
SYNCOOKIE_PERIOD = 64.0


def _cookie_hash(secret: bytes, src: bytes, sport: int, dst: bytes, dport: int, irs: int, t: int) -> int:
    digest = hashlib.blake2s(
        b"cookie" + src + sport.to_bytes(2, "big") + dst + dport.to_bytes(2, "big")
        + irs.to_bytes(4, "big") + t.to_bytes(4, "big"),
        key=secret[:32],
        digest_size=4,
    ).digest()
    return int.from_bytes(digest, "big")


def syncookie(
    secret: bytes, src: bytes, sport: int, dst: bytes, dport: int, irs: int, mss: int, now: float
) -> int:
    """A SYN cookie: the ISN of a SYN-ACK that keeps no state (RFC 4987 3.6).

    The 32 bits are a keyed hash of the 4-tuple, the peer's ISN ``irs`` and
    a coarse time counter (24 bits), the counter's low 5 bits, and the index
    of the largest :data:`SYNCOOKIE_MSS` value not above ``mss`` (3 bits).
    :func:`syncookie_check` gives the MSS back from the handshake's ACK.
    Window scale, SACK and timestamps are not encoded: a connection set up
    from a cookie does without them (as in BSD without timestamps).

    Args:
        src, sport: the local end (the listener's address and port).
        dst, dport: the peer.
        irs: the sequence number of the peer's SYN.
        mss: the MSS the peer offered (or the default when it offered none).
    """
    index = max(i for i, m in enumerate(SYNCOOKIE_MSS) if m <= max(mss, SYNCOOKIE_MSS[0]))
    t = int(now // SYNCOOKIE_PERIOD) & 0xFFFFFFFF
    h = _cookie_hash(secret, src, sport, dst, dport, irs & SEQ_MASK, t)
    return ((h & 0xFFFFFF00) | ((t & 0x1F) << 3) | index) & SEQ_MASK


def syncookie_check(
    secret: bytes, src: bytes, sport: int, dst: bytes, dport: int, irs: int, cookie: int, now: float
) -> int | None:
    """The MSS a valid cookie carries, or ``None`` (forged, or too old).

    Args:
        irs: the peer's ISN, the ACK's sequence number minus one.
        cookie: our ISN, the ACK's acknowledgment number minus one.
    """
    t_now = int(now // SYNCOOKIE_PERIOD)
    for t in (t_now, t_now - 1):
        t &= 0xFFFFFFFF
        if (cookie >> 3) & 0x1F != t & 0x1F:
            continue
        h = _cookie_hash(secret, src, sport, dst, dport, irs & SEQ_MASK, t)
        if (h ^ cookie) & 0xFFFFFF00 == 0:
            return SYNCOOKIE_MSS[cookie & 7]
    return None
