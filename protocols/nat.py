"""IPv4 masquerading (NAPT, RFC 3022) as a sans-IO connection table.

Many inside hosts share one outside address: a datagram leaving through the
outside interface gets the outside address as its source and a mapped source
port (or ICMP echo identifier); the answers coming back are mapped to the
inside host and port again. Behaviour follows RFC 4787 (UDP), RFC 5382 (TCP)
and RFC 5508 (ICMP) where the brief of this module and those agree; the
divergences are marked below.

Theory of operation
===================

The glue calls :meth:`Nat.outbound` on every datagram that IP forwarding
sends out of the outside interface (after the TTL was decremented), and
:meth:`Nat.inbound` on every datagram that arrives on the outside interface
for the outside address, *before* local delivery. ``inbound`` returning
``None`` means "not translated": the glue delivers the datagram locally as
usual (it may be for the router itself).

1. Only whole datagrams are translated: a fragment (MF or a non-zero offset)
   is dropped, ``"fragment"``. The glue reassembles first if it wants
   fragmented traffic to pass (Linux conntrack does so in PREROUTING).
2. Outbound TCP, UDP and ICMP echo requests are looked up by the 5-tuple
   ``(proto, inside addr, inside port, remote addr, remote port)``; an ICMP
   echo's identifier is its "inside port" and its remote port is 0. A miss
   makes a new entry, except for TCP segments that are not a bare SYN
   (``"tcp_no_syn"``; Divergence: Linux conntrack picks up a connection in
   mid-stream, we do not, so a NAT restart breaks old connections cleanly)
   and for other ICMP messages (``"unsupported_icmp"``). Any other protocol
   is ``"unsupported_proto"``.
3. The outside port of a new entry is the inside port if no entry already
   uses ``(proto, remote addr, remote port, that port)`` (port preservation,
   RFC 4787 REQ-4 style); otherwise the next free one in ``ports``, searched
   from a round-robin cursor; none free: ``"no_port"``. The mapping is
   therefore address-and-port dependent (Divergence: RFC 4787 REQ-1 asks for
   an endpoint-independent mapping; this is what Linux MASQUERADE does).
4. Inbound datagrams are looked up by ``(proto, remote addr, remote port,
   outside port)``: only the remote of an entry gets through
   (address-and-port-dependent filtering, as Linux conntrack). An ICMP echo
   *reply* is the only inbound ICMP query translated.
5. ICMP errors (destination unreachable, source quench, time exceeded,
   parameter problem; never redirects) arriving from anywhere whose quoted
   datagram matches an entry (quoted source ``outside addr:outside port``,
   quoted destination the remote) are translated back (RFC 5508 section
   4.2): the outer destination becomes the inside host, the quoted source
   address and port the inside ones; the quoted IP header checksum, the
   quoted transport checksum (if the quote is long enough to hold it) and
   the ICMP checksum are fixed. An ICMP error *from* the inside (an inside
   host's port unreachable, an inside router's time exceeded) about a
   datagram that came in through an entry is translated the other way: the
   outer source becomes the outside address, the quoted destination address
   and port the outside ones. Errors refresh no timer and make no entries.
6. Checksums are updated incrementally (RFC 1624 equation 3), never
   verified or recomputed from scratch: a correct checksum stays correct, a
   wrong one stays wrong and the end host drops the datagram, and a
   translation costs the same for 40 bytes or 64 KiB. A UDP checksum of 0
   ("none") stays 0, and an updated one that comes out 0 is sent as 0xFFFF
   (RFC 768). The ICMP checksum of an error is adjusted by the difference of
   the quote's bytes, which equals recomputing it for a correct message
   (Divergence from "recompute": a corrupted error is not laundered). The IP
   header checksum *is* verified, by :meth:`.ipv4.IPv4Header.parse`.
7. Timers (refreshed by every translated packet in either direction):
   ``udp_timeout`` for UDP, ``icmp_timeout`` for echo. TCP entries start in
   ``"syn_sent"`` with ``tcp_transitory``; a SYN-ACK coming in makes them
   ``"established"`` with ``tcp_established``; a FIN seen in both
   directions makes them ``"closing"`` with ``tcp_transitory``; any RST
   makes them ``"closing"`` with the short ``tcp_close`` (Linux's CLOSE
   timeout, 10 s), so late segments still pass for a moment. A bare SYN
   going out on a ``"closing"`` entry starts it over (port reuse). A FIN in
   one direction only keeps the established timeout (half-close).
8. Expiry is lazy (a lookup that finds an expired entry removes it) and by
   :meth:`Nat.expire`. Entries sit in one queue per timer kind, in the order
   they were last used; all entries of a queue have the same timeout, so
   each queue is also in expiry order, and the earliest deadline is the
   earliest of at most five queue heads: :meth:`Nat.next_deadline` is exact
   and O(1), ``expire`` costs O(expired). This assumes ``now`` never
   decreases.
9. At most ``max_entries`` entries: a new flow when full evicts the least
   recently used entry (the oldest of the queue heads, O(1)), counted
   ``evicted``.

Bad input never raises: a datagram that cannot be parsed is ``None`` and
counted in :attr:`Nat.drops` by reason (for ``inbound`` too, where the glue
then hands it to local IP input, which drops it in its turn). A well-formed
inbound datagram that is not ours is counted ``passed``, not a drop.

Bounds: ``max_entries`` entries, each in three dicts; the port search probes
at most ``min(len(ports), max_entries + 1)`` ports.

What it does not do: endpoint-independent mapping or filtering (RFC 4787
REQ-1, REQ-8), hairpinning, ALGs (FTP, SIP), fragments, ICMP queries other
than echo, TCP sequence tracking (a window check as in pf), port
parity/contiguity, and it does not keep the router's own sockets out of the
port range: the glue should give its own ephemeral ports a range apart from
``ports``, or a NAT entry may shadow a local socket for one remote.

Compare: Linux ``nf_nat_masquerade.c`` and ``nf_conntrack_proto_tcp.c``
(timeouts), OpenBSD pf ``nat-to`` (``pfctl -ss``). DragonFly: ``ipfw nat``
through libalias (``sys/netinet/libalias/alias_db.c``), or pf.
"""

from __future__ import annotations

from collections import Counter, OrderedDict

import attrs

from .checksum import ones_complement_sum
from .errors import RemoteProtocolError
from .icmp import DEST_UNREACH, ECHO_REPLY, ECHO_REQUEST, PARAM_PROBLEM, SOURCE_QUENCH, TIME_EXCEEDED
from .ipv4 import IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPv4Header, ip_ntoa

__all__ = ["Nat", "NatRow", "NatStatistics", "format_nat"]

# The errors RFC 5508 section 4 translates (redirects are not: an outside
# router has no business redirecting inside hosts).
_ERRORS = frozenset({DEST_UNREACH, SOURCE_QUENCH, TIME_EXCEEDED, PARAM_PROBLEM})

_FIN, _SYN, _RST, _ACK = 0x01, 0x02, 0x04, 0x10

# Where the transport checksum lies, from the start of the transport header.
_CKSUM_AT = {IPPROTO_TCP: 16, IPPROTO_UDP: 6, IPPROTO_ICMP: 2}

# The timer kinds; entries of one kind share one timeout (rule 8).
_TIMERS = ("tcp_established", "tcp_transitory", "tcp_close", "udp", "icmp")

# The timer of each state, except that a RST makes "closing" use tcp_close.
_STATE_TIMER = {
    "syn_sent": "tcp_transitory",
    "established": "tcp_established",
    "closing": "tcp_transitory",
    "udp": "udp",
    "icmp": "icmp",
}

# Reasons of _quote that describe a datagram we never translate, not a
# malformed one: inbound, such an error is passed, not dropped.
_NOT_TRANSLATED = frozenset({"unsupported_proto", "unsupported_icmp", "quoted_fragment"})

_PROTO_NAMES = {IPPROTO_TCP: "tcp", IPPROTO_UDP: "udp", IPPROTO_ICMP: "icmp"}


####################################################################
# Values
####################################################################


def _fmt_endpoint(endpoint: tuple[bytes, int]) -> str:
    addr, port = endpoint
    return f"{ip_ntoa(addr) if len(addr) == 4 else repr(addr)}:{port}"


@attrs.frozen
class NatRow:
    """One entry of :meth:`Nat.rows` (a line of ``conntrack -L``).

    Attributes:
        proto: the IP protocol (6 TCP, 17 UDP, 1 ICMP).
        inside: ``(address, port)`` of the inside host (for ICMP the echo
            identifier it chose).
        outside: ``(outside address, mapped port or identifier)``.
        remote: ``(address, port)`` of the remote end (port 0 for ICMP).
        state: ``"syn_sent"``, ``"established"``, ``"closing"``, ``"udp"``
            or ``"icmp"``.
        expires: seconds left until the entry expires, at the ``now`` given
            to :meth:`Nat.rows` (``conntrack -L``'s second column).
        packets_out, packets_in: datagrams translated in each direction
            (ICMP errors included).
    """

    proto: int
    inside: tuple[bytes, int] = attrs.field(repr=_fmt_endpoint)
    outside: tuple[bytes, int] = attrs.field(repr=_fmt_endpoint)
    remote: tuple[bytes, int] = attrs.field(repr=_fmt_endpoint)
    state: str
    expires: float
    packets_out: int
    packets_in: int


@attrs.frozen
class NatStatistics:
    """Counters of a :class:`Nat`, since it was made.

    Attributes:
        translated_out: datagrams translated by :meth:`Nat.outbound`.
        translated_in: datagrams translated by :meth:`Nat.inbound`.
        passed: well-formed inbound datagrams that matched no entry (left to
            local delivery; not a drop).
        entries: entries in the table now.
        max_entries: the bound on ``entries``.
        created: entries made.
        evicted: entries pushed out by the bound (least recently used).
        expired: entries removed because their timer ran out.
        drops: datagrams not translated, by reason (a copy of
            :attr:`Nat.drops`).
    """

    translated_out: int
    translated_in: int
    passed: int
    entries: int
    max_entries: int
    created: int
    evicted: int
    expired: int
    drops: dict[str, int]


@attrs.define(eq=False, slots=True)
class _Entry:
    key: tuple[int, bytes, int, bytes, int]  # proto, inside addr/port, remote addr/port
    rkey: tuple[int, bytes, int, int]  # proto, remote addr/port, outside port
    out_addr: bytes
    out_port: int
    state: str
    timer: str  # the timer kind, hence the queue it sits in
    used: float = 0.0
    expires: float = 0.0
    packets_out: int = 0
    packets_in: int = 0
    fin_out: bool = False
    fin_in: bool = False


####################################################################
# Checksum arithmetic (RFC 1624)
####################################################################


def _fold(x: int) -> int:
    while x >> 16:
        x = (x & 0xFFFF) + (x >> 16)
    return x


def _adjust(checksum: int, old: int, new: int) -> int:
    """RFC 1624 eqn. 3: ``HC' = ~(~HC + ~m + m')``, where ``old`` and ``new``
    are the (unfolded) sums of the words that changed."""
    return ~_fold((~checksum & 0xFFFF) + (0xFFFF - _fold(old)) + _fold(new)) & 0xFFFF


def _addr_sum(addr: bytes | bytearray) -> int:
    a = int.from_bytes(addr, "big")
    return (a >> 16) + (a & 0xFFFF)


def _patch(buf: bytearray, at: int, old: int, new: int, udp: bool = False) -> None:
    """Adjust the checksum field at ``buf[at:at + 2]`` for changed words."""
    checksum = (buf[at] << 8) | buf[at + 1]
    if udp and checksum == 0:
        return  # "no checksum" stays none
    checksum = _adjust(checksum, old, new)
    if udp and checksum == 0:
        checksum = 0xFFFF
    buf[at] = checksum >> 8
    buf[at + 1] = checksum & 0xFF


def _set_addr(buf: bytearray, ip: int, at: int, addr: bytes) -> int:
    """Write ``addr`` at offset ``at`` (12 source, 16 destination) of the IP
    header at ``ip``, fixing its checksum; return the old address's sum."""
    a = ip + at
    old = _addr_sum(buf[a : a + 4])
    buf[a : a + 4] = addr
    _patch(buf, ip + 10, old, _addr_sum(addr))
    return old


def _translate(
    buf: bytearray, ip: int, end: int, at: int, addr: bytes, port_at: int, port: int, proto: int
) -> None:
    """Rewrite one address of the datagram at ``buf[ip:end]`` (possibly a
    truncated quote) and the port or identifier at ``port_at`` bytes into
    its transport header, fixing the IP header checksum and the transport
    checksum if it lies within ``end``. The caller checked that the IP
    header and the port are there."""
    old_addr = _set_addr(buf, ip, at, addr)
    t = ip + ((buf[ip] & 0x0F) << 2)
    p = t + port_at
    old = (buf[p] << 8) | buf[p + 1]
    buf[p] = port >> 8
    buf[p + 1] = port & 0xFF
    c = t + _CKSUM_AT[proto]
    if c + 2 <= end:
        if proto == IPPROTO_ICMP:  # no pseudo-header
            _patch(buf, c, old, port)
        else:
            _patch(buf, c, old_addr + old, _addr_sum(addr) + port, proto == IPPROTO_UDP)


def _ports(proto: int, seg: bytes | bytearray | memoryview) -> tuple[int, int]:
    """(source port, destination port) of a transport header; for an ICMP
    echo request ``(ident, 0)``, for a reply ``(0, ident)``.

    Raises:
        RemoteProtocolError: ``"truncated"`` or ``"unsupported_icmp"``.
    """
    if len(seg) < 8:
        raise RemoteProtocolError("truncated", f"{len(seg)} bytes of transport header")
    if proto == IPPROTO_ICMP:
        ident = (seg[4] << 8) | seg[5]
        if seg[0] == ECHO_REQUEST:
            return ident, 0
        if seg[0] == ECHO_REPLY:
            return 0, ident
        raise RemoteProtocolError("unsupported_icmp", f"type {seg[0]}")
    return (seg[0] << 8) | seg[1], (seg[2] << 8) | seg[3]


####################################################################
# The table
####################################################################


class Nat:
    """A bounded NAPT table for one outside address: see the module's theory
    of operation.

    Args:
        outside_addr: the outside interface's address (4 bytes).
        max_entries: the most entries at once (rule 9).
        ports: the inclusive range of outside ports (and echo identifiers)
            handed out when the inside one is taken.
        tcp_established: seconds an established TCP entry lives after its
            last packet (RFC 5382 REQ-5: at least 2 h 4 min; Linux has 5 days).
        tcp_transitory: seconds for a TCP entry during the handshake and
            after FINs both ways (RFC 5382: at least 4 min).
        tcp_close: seconds a TCP entry lives after a RST.
        udp_timeout: seconds a UDP entry lives after its last packet (RFC
            4787 REQ-5: at least 2 min, 5 min recommended).
        icmp_timeout: seconds an echo entry lives (RFC 5508 REQ-1: 60 s).

    Attributes:
        drops: :class:`collections.Counter` of untranslated datagrams by
            reason: ``"fragment"``, ``"unsupported_proto"``,
            ``"unsupported_icmp"``, ``"tcp_no_syn"``, ``"no_port"``,
            ``"no_entry"`` (an outbound ICMP error about no entry),
            ``"truncated"``, ``"bad_quote"``, ``"quoted_fragment"`` (an
            outbound ICMP error whose quote is malformed or has no ports),
            and the reasons of
            :meth:`.ipv4.IPv4Header.parse` (``"bad_checksum"``...).

    Not thread-safe, like every machine in ``protocols/``. Per datagram the
    work is O(1) plus the datagram copy, except a port search (rule 3).

    Raises:
        ValueError: a bad address, bound, port range or timeout.
    """

    def __init__(
        self,
        outside_addr: bytes,
        *,
        max_entries: int = 4096,
        ports: tuple[int, int] = (1024, 65535),
        tcp_established: float = 7440.0,
        tcp_transitory: float = 240.0,
        tcp_close: float = 10.0,
        udp_timeout: float = 300.0,
        icmp_timeout: float = 60.0,
    ) -> None:
        _check_addr(outside_addr)
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        lo, hi = ports
        if not 0 <= lo <= hi <= 0xFFFF:
            raise ValueError(f"ports must be (low, high) with 0 <= low <= high <= 65535, got {ports}")
        timeouts = {
            "tcp_established": tcp_established,
            "tcp_transitory": tcp_transitory,
            "tcp_close": tcp_close,
            "udp": udp_timeout,
            "icmp": icmp_timeout,
        }
        for name, value in timeouts.items():
            if not value > 0:
                raise ValueError(f"the {name} timeout must be positive, got {value}")
        self._outside_addr = bytes(outside_addr)
        self.max_entries = max_entries
        self.ports = (lo, hi)
        self._timeouts = timeouts
        self._cursor = 0
        self._flows: dict[tuple[int, bytes, int, bytes, int], _Entry] = {}
        self._reverse: dict[tuple[int, bytes, int, int], _Entry] = {}
        # One queue per timer kind, in last-use order (= expiry order).
        self._queues: dict[str, OrderedDict[tuple[int, bytes, int, bytes, int], _Entry]] = {
            name: OrderedDict() for name in _TIMERS
        }
        self.drops: Counter[str] = Counter()
        self._translated_out = self._translated_in = self._passed = 0
        self._created = self._evicted = self._expired = 0

    @property
    def outside_addr(self) -> bytes:
        """The outside address. Setting a different one flushes the table:
        remote peers keep answering the old address, so no entry can carry
        on (Linux MASQUERADE forgets its connections when the address goes).

        Raises:
            ValueError: (on setting) not 4 bytes.
        """
        return self._outside_addr

    @outside_addr.setter
    def outside_addr(self, addr: bytes) -> None:
        _check_addr(addr)
        if addr != self._outside_addr:
            self._outside_addr = bytes(addr)
            self.flush()

    def __len__(self) -> int:
        return len(self._flows)

    def statistics(self) -> NatStatistics:
        """The counters, as a frozen :class:`NatStatistics`."""
        return NatStatistics(
            translated_out=self._translated_out,
            translated_in=self._translated_in,
            passed=self._passed,
            entries=len(self._flows),
            max_entries=self.max_entries,
            created=self._created,
            evicted=self._evicted,
            expired=self._expired,
            drops=dict(self.drops),
        )

    #### Output path

    def outbound(self, packet: bytes | bytearray | memoryview, now: float) -> bytes | None:
        """Translate a datagram leaving through the outside interface.

        Args:
            packet: the whole IPv4 datagram (header and payload; link padding
                after the total length is cut off), TTL already handled.
            now: the current time.

        Returns:
            The translated datagram, or ``None``: drop it (counted in
            :attr:`drops` by reason). Never raises for any input.
        """
        try:
            return self._outbound(packet, now)
        except RemoteProtocolError as exc:
            self.drops[exc.reason] += 1
            return None

    def _outbound(self, packet: bytes | bytearray | memoryview, now: float) -> bytes:
        hdr, seg = IPv4Header.parse(packet)
        if hdr.is_fragment:
            raise RemoteProtocolError("fragment")
        proto = hdr.proto
        if proto not in _CKSUM_AT:
            raise RemoteProtocolError("unsupported_proto", f"protocol {proto}")
        if proto == IPPROTO_ICMP and len(seg) >= 8 and seg[0] in _ERRORS:
            return self._error_out(packet, hdr, seg, now)
        if proto == IPPROTO_TCP and len(seg) < 20:
            raise RemoteProtocolError("truncated", f"{len(seg)} bytes of TCP header")
        sport, dport = _ports(proto, seg)
        if proto == IPPROTO_ICMP and seg[0] != ECHO_REQUEST:
            raise RemoteProtocolError("unsupported_icmp", f"type {seg[0]} going out")
        key = (proto, hdr.src, sport, hdr.dst, dport)
        entry = self._lookup(self._flows.get(key), now)
        if entry is None:
            if proto == IPPROTO_TCP and seg[13] & (_SYN | _ACK | _RST | _FIN) != _SYN:
                raise RemoteProtocolError("tcp_no_syn")
            entry = self._create(key, now)
        if proto == IPPROTO_TCP:
            self._tcp_out(entry, seg[13])
        self._touch(entry, now)
        entry.packets_out += 1
        buf = bytearray(memoryview(packet)[: hdr.total_length])
        port_at = 4 if proto == IPPROTO_ICMP else 0
        _translate(buf, 0, len(buf), 12, entry.out_addr, port_at, entry.out_port, proto)
        self._translated_out += 1
        return bytes(buf)

    def _error_out(
        self, packet: bytes | bytearray | memoryview, hdr: IPv4Header, icmp: memoryview, now: float
    ) -> bytes:
        # An inside host's (or router's) error about a datagram that came in
        # through an entry: the quote goes from the remote to the inside host.
        qhlen, qproto, qsrc, qdst, qsport, qdport = _quote(icmp)
        entry = self._lookup(self._flows.get((qproto, qdst, qdport, qsrc, qsport)), now)
        if entry is None:
            raise RemoteProtocolError("no_entry", "ICMP error about no entry")
        buf = bytearray(memoryview(packet)[: hdr.total_length])
        port_at = 4 if qproto == IPPROTO_ICMP else 2
        self._rewrite_error(buf, hdr.ihl << 2, qhlen, qproto, 16, entry.out_addr, port_at, entry.out_port)
        _set_addr(buf, 0, 12, entry.out_addr)
        entry.packets_out += 1
        self._translated_out += 1
        return bytes(buf)

    #### Input path

    def inbound(self, packet: bytes | bytearray | memoryview, now: float) -> bytes | None:
        """Translate a datagram that arrived on the outside interface.

        Args:
            packet: the whole IPv4 datagram, sent to the outside address.
            now: the current time.

        Returns:
            The translated datagram, for the glue to forward to the inside
            host; ``None``: not translated, deliver it locally as usual
            (counted ``passed`` when well formed and not ours, else in
            :attr:`drops`). Never raises for any input.
        """
        try:
            out = self._inbound(packet, now)
        except RemoteProtocolError as exc:
            self.drops[exc.reason] += 1
            return None
        if out is None:
            self._passed += 1
        return out

    def _inbound(self, packet: bytes | bytearray | memoryview, now: float) -> bytes | None:
        hdr, seg = IPv4Header.parse(packet)
        proto = hdr.proto
        if hdr.dst != self._outside_addr or proto not in _CKSUM_AT:
            return None
        if hdr.is_fragment:
            raise RemoteProtocolError("fragment")
        if proto == IPPROTO_ICMP:
            if len(seg) < 8:
                raise RemoteProtocolError("truncated", f"{len(seg)} bytes of ICMP")
            if seg[0] in _ERRORS:
                return self._error_in(packet, hdr, seg, now)
            if seg[0] != ECHO_REPLY:
                return None  # a query for the router itself
        elif proto == IPPROTO_TCP and len(seg) < 20:
            raise RemoteProtocolError("truncated", f"{len(seg)} bytes of TCP header")
        sport, dport = _ports(proto, seg)
        entry = self._lookup(self._reverse.get((proto, hdr.src, sport, dport)), now)
        if entry is None:
            return None
        if proto == IPPROTO_TCP:
            self._tcp_in(entry, seg[13])
        self._touch(entry, now)
        entry.packets_in += 1
        buf = bytearray(memoryview(packet)[: hdr.total_length])
        inside_addr, inside_port = entry.key[1], entry.key[2]
        port_at = 4 if proto == IPPROTO_ICMP else 2
        _translate(buf, 0, len(buf), 16, inside_addr, port_at, inside_port, proto)
        self._translated_in += 1
        return bytes(buf)

    def _error_in(
        self, packet: bytes | bytearray | memoryview, hdr: IPv4Header, icmp: memoryview, now: float
    ) -> bytes | None:
        # An error about a datagram we translated: the quote goes from
        # outside_addr:outside port to the remote. A well-formed quote of
        # something we never translate is the router's own business.
        try:
            qhlen, qproto, qsrc, qdst, qsport, qdport = _quote(icmp)
        except RemoteProtocolError as exc:
            if exc.reason in _NOT_TRANSLATED:
                return None
            raise
        if qsrc != self._outside_addr:
            return None  # about the router's own traffic
        entry = self._lookup(self._reverse.get((qproto, qdst, qdport, qsport)), now)
        if entry is None:
            return None
        buf = bytearray(memoryview(packet)[: hdr.total_length])
        inside_addr, inside_port = entry.key[1], entry.key[2]
        port_at = 4 if qproto == IPPROTO_ICMP else 0
        self._rewrite_error(buf, hdr.ihl << 2, qhlen, qproto, 12, inside_addr, port_at, inside_port)
        _set_addr(buf, 0, 16, inside_addr)
        entry.packets_in += 1
        self._translated_in += 1
        return bytes(buf)

    @staticmethod
    def _rewrite_error(
        buf: bytearray, icmp: int, qhlen: int, qproto: int, at: int, addr: bytes, port_at: int, port: int
    ) -> None:
        # Translate the quote, then adjust the ICMP checksum by the change in
        # the quote's bytes (rule 6). The region starts at an even offset of
        # the ICMP message and ends after the quoted ports and checksum.
        # The quoted datagram ends at its total length or where the message
        # is cut: RFC 4884 padding and extensions after it are not ours.
        q = icmp + 8
        limit = min(len(buf), q + ((buf[q + 2] << 8) | buf[q + 3]))
        end = min(len(buf), q + qhlen + max(_CKSUM_AT[qproto] + 2, 8))  # ports too
        old = ones_complement_sum(buf[q:end])
        _translate(buf, q, limit, at, addr, port_at, port, qproto)
        _patch(buf, icmp + 2, old, ones_complement_sum(buf[q:end]))

    #### Timers

    def expire(self, now: float) -> None:
        """Remove the entries whose timer ran out at or before ``now``."""
        for queue in self._queues.values():
            while queue:
                entry = next(iter(queue.values()))
                if entry.expires > now:
                    break
                self._remove(entry)
                self._expired += 1

    def next_deadline(self) -> float | None:
        """The earliest expiry of any entry (exact: rule 8), or ``None`` with
        an empty table. The glue arms one timer and calls :meth:`expire`."""
        heads = [next(iter(q.values())).expires for q in self._queues.values() if q]
        return min(heads) if heads else None

    #### Management

    def rows(self, now: float) -> list[NatRow]:
        """The live entries, sorted by protocol, inside and remote endpoint
        (for ``conntrack -L``); ``expires`` counts from ``now``."""
        out = []
        for entry in self._flows.values():
            if entry.expires <= now:
                continue
            proto, in_addr, in_port, rem_addr, rem_port = entry.key
            out.append(
                NatRow(
                    proto,
                    (in_addr, in_port),
                    (entry.out_addr, entry.out_port),
                    (rem_addr, rem_port),
                    entry.state,
                    entry.expires - now,
                    entry.packets_out,
                    entry.packets_in,
                )
            )
        out.sort(key=lambda r: (r.proto, r.inside, r.remote))
        return out

    def flush(self) -> None:
        """Forget every entry (not counted as expired or evicted)."""
        self._flows.clear()
        self._reverse.clear()
        for queue in self._queues.values():
            queue.clear()

    #### Internals

    def _lookup(self, entry: _Entry | None, now: float) -> _Entry | None:
        if entry is not None and entry.expires <= now:
            self._remove(entry)
            self._expired += 1
            return None
        return entry

    def _remove(self, entry: _Entry) -> None:
        del self._flows[entry.key]
        del self._reverse[entry.rkey]
        del self._queues[entry.timer][entry.key]

    def _touch(self, entry: _Entry, now: float) -> None:
        queue = self._queues[entry.timer]
        if entry.key in queue:
            queue.move_to_end(entry.key)
        else:  # new, or its timer kind changed
            queue[entry.key] = entry
        entry.used = now
        entry.expires = now + self._timeouts[entry.timer]

    def _set_state(self, entry: _Entry, state: str, timer: str | None = None) -> None:
        timer = timer or _STATE_TIMER[state]
        if timer != entry.timer:
            self._queues[entry.timer].pop(entry.key, None)
            entry.timer = timer  # _touch puts it in the new queue
        entry.state = state

    def _tcp_out(self, entry: _Entry, flags: int) -> None:
        if flags & _RST:
            self._set_state(entry, "closing", "tcp_close")
        elif entry.state == "closing" and flags & (_SYN | _ACK | _FIN) == _SYN:
            entry.fin_out = entry.fin_in = False  # the port is used again
            self._set_state(entry, "syn_sent")
        elif flags & _FIN:
            entry.fin_out = True
            if entry.fin_in and entry.state != "closing":
                self._set_state(entry, "closing")

    def _tcp_in(self, entry: _Entry, flags: int) -> None:
        if flags & _RST:
            self._set_state(entry, "closing", "tcp_close")
        elif entry.state == "syn_sent" and flags & (_SYN | _ACK) == _SYN | _ACK:
            self._set_state(entry, "established")
        elif flags & _FIN:
            entry.fin_in = True
            if entry.fin_out and entry.state != "closing":
                self._set_state(entry, "closing")

    def _create(self, key: tuple[int, bytes, int, bytes, int], now: float) -> _Entry:
        proto, _, in_port, rem_addr, rem_port = key
        port = self._free_port(proto, rem_addr, rem_port, in_port, now)
        if len(self._flows) >= self.max_entries:
            self.expire(now)  # the expired go first, uncounted as evicted
            if len(self._flows) >= self.max_entries:
                self._evict()
        state = "udp" if proto == IPPROTO_UDP else "icmp" if proto == IPPROTO_ICMP else "syn_sent"
        rkey = (proto, rem_addr, rem_port, port)
        entry = _Entry(key, rkey, self._outside_addr, port, state, _STATE_TIMER[state])
        self._flows[key] = entry
        self._reverse[rkey] = entry
        self._created += 1
        return entry

    def _is_free(self, rkey: tuple[int, bytes, int, int], now: float) -> bool:
        return self._lookup(self._reverse.get(rkey), now) is None

    def _free_port(self, proto: int, rem_addr: bytes, rem_port: int, in_port: int, now: float) -> int:
        if self._is_free((proto, rem_addr, rem_port, in_port), now):
            return in_port  # rule 3: port preservation
        lo, hi = self.ports
        size = hi - lo + 1
        # Each taken port is an entry, so a free one turns up within
        # max_entries + 1 probes if the range is larger than that.
        for i in range(min(size, self.max_entries + 1)):
            candidate = (self._cursor + i) % size
            if self._is_free((proto, rem_addr, rem_port, lo + candidate), now):
                self._cursor = (candidate + 1) % size
                return lo + candidate
        raise RemoteProtocolError("no_port", f"no free port in {lo}..{hi}")

    def _evict(self) -> None:
        heads = [next(iter(q.values())) for q in self._queues.values() if q]
        self._remove(min(heads, key=lambda e: e.used))
        self._evicted += 1


def _check_addr(addr: bytes) -> None:
    if not isinstance(addr, (bytes, bytearray)) or len(addr) != 4:
        raise ValueError(f"an IPv4 address is 4 bytes, got {addr!r}")


def _quote(icmp: memoryview) -> tuple[int, int, bytes, bytes, int, int]:
    """(header length, proto, src, dst, source port, destination port) of the
    datagram quoted in the ICMP error ``icmp``; the quote may be truncated but
    must hold the header and 8 bytes of transport header.

    Raises:
        RemoteProtocolError: ``"truncated"``, ``"bad_quote"`` (not IPv4,
            a bad IHL), ``"quoted_fragment"`` (a non-initial one: no ports),
            ``"unsupported_proto"`` or ``"unsupported_icmp"``.
    """
    q = icmp[8:]
    if len(q) < 20:
        raise RemoteProtocolError("truncated", f"quote of {len(q)} bytes")
    if q[0] >> 4 != 4 or q[0] & 0x0F < 5:
        raise RemoteProtocolError("bad_quote", f"version/IHL {q[0]:#x}")
    qhlen = (q[0] & 0x0F) << 2
    if (q[6] & 0x1F) | q[7]:
        raise RemoteProtocolError("quoted_fragment", "quotes a non-initial fragment")
    qproto = q[9]
    if qproto not in _CKSUM_AT:
        raise RemoteProtocolError("unsupported_proto", f"quoted protocol {qproto}")
    if len(q) < qhlen:
        raise RemoteProtocolError("truncated", f"quote of {len(q)} bytes, IHL {qhlen}")
    sport, dport = _ports(qproto, q[qhlen:])
    return qhlen, qproto, bytes(q[12:16]), bytes(q[16:20]), sport, dport


def format_nat(rows: list[NatRow]) -> str:
    """Format rows as a table, like ``conntrack -L`` or ``pfctl -ss``::

        proto inside            outside           remote              state        expires
        tcp   10.0.0.2:40000    192.0.2.1:40000   198.51.100.7:80     established     7438
    """
    head = ("proto", "inside", "outside", "remote", "state", "expires")
    lines = [head]
    for r in rows:
        lines.append(
            (
                _PROTO_NAMES.get(r.proto, str(r.proto)),
                _fmt_endpoint(r.inside),
                _fmt_endpoint(r.outside),
                _fmt_endpoint(r.remote),
                r.state,
                f"{r.expires:.0f}",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(6)]
    out = []
    for line in lines:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(line[:5])]
        out.append(" ".join(cells) + " " + line[5].rjust(widths[5]))
    return "\n".join(out) + "\n"
