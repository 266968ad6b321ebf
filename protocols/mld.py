"""Multicast Listener Discovery: MLDv2 messages (RFC 3810), MLDv1 input (RFC 2710), and a host-side listener.

Messages
========

:func:`parse_mld` turns an :class:`~.icmpv6.Icmp6Message` already checked by
:meth:`~.icmpv6.Icmp6Message.parse` (length, checksum) into an
:class:`MldQuery` (either version), :class:`MldV1Report`,
:class:`MldV1Done` or :class:`MldV2Report`. It checks, in order, each
failure a :class:`~.errors.RemoteProtocolError`:

1. The IPv6 hop limit is 1: MLD never leaves the link (``"bad_hop_limit"``).
2. The source is link-local; a report (type 131 or 143) may also come from
   :: when its sender has no link-local address yet (RFC 3810 5.2.13)
   (``"bad_source"``).
3. The length (``"short_message"``): 24 bytes at least for MLDv1 messages; a
   query is MLDv1 if exactly 24 bytes long and MLDv2 if at least 28 (RFC
   3810 8.1: lengths 25 to 27 are neither), and then must hold its sources;
   an MLDv2 report must hold all its records, each with its sources and
   auxiliary data.

Not checked: the code (RFC 2710 and 3810: ignored by receivers), the Router
Alert option (the IPv6 header's business, which the caller holds), that
groups are multicast addresses (a listener ignores queries for groups it has
not joined), and record types (kept as received; a router ignores unknown
ones, RFC 3810 5.2.12). Auxiliary data is skipped (RFC 3810 5.2.10).

Times: a query's Maximum Response Code is decoded into
:attr:`MldQuery.max_response_delay` in seconds, with RFC 3810 5.1.3's
exponential form for codes from 32768; :func:`encode_max_response_code`
rounds down to a representable value. The QQIC is kept as received
(:attr:`MldQuery.qqic`), decoded by :attr:`MldQuery.qqi` (RFC 3810 5.1.9).

Theory of operation of the listener
===================================

:class:`MldListener` is the host side of MLDv2 (RFC 3810 6) for one
interface, in EXCLUDE mode with no sources for every group (any-source
membership, what a socket's ``IPV6_JOIN_GROUP`` asks for). It never sends,
sleeps or reads a clock: each method takes ``now`` and returns the
:class:`MldV2Report` values to send (the glue emits them to ff02::16 with
hop limit 1 and a Router Alert), and :meth:`~MldListener.next_deadline`
says when to call :meth:`~MldListener.expire`.

1. Reportable groups: every multicast group except ff02::1 (all nodes, which
   every interface is in and which is never reported) and groups of scope 0
   or 1 (reserved, interface-local) (RFC 3810 6).
2. :meth:`~MldListener.join` of a reportable group returns a state-change
   report CHANGE_TO_EXCLUDE({}) at once and schedules ``robustness - 1``
   repetitions, each at a random delay in [0, ``unsolicited_report_interval``]
   after the previous one (RFC 3810 6.1). :meth:`~MldListener.leave` does the
   same with CHANGE_TO_INCLUDE({}). A new state change for a group replaces
   its pending repetitions (the newer state is the one to repeat).
3. A General Query (group ::) schedules one current-state report, with
   MODE_IS_EXCLUDE({}) for every reportable group joined when it is sent, at
   a random delay in [0, the query's Maximum Response Delay] (RFC 3810 6.2),
   unless a General Query response is already pending sooner. There is at
   most one pending General Query response: a later one replaces it.
4. A Group-Specific Query for a reportable joined group schedules
   MODE_IS_EXCLUDE({}) for that group alone, in the same way; a response
   already pending for the group keeps the earlier of its time and the new
   one; and none is scheduled if a General Query response is pending sooner.
   Queries for other groups are ignored (counted).
5. A query's non-zero QRV becomes the listener's robustness for later state
   changes (RFC 3810 9.1).
6. Bounds: at most ``max_groups`` groups joined (one more raises
   :class:`~.errors.LocalProtocolError`); pending responses at most one per
   joined group plus one general; pending repetitions at most
   ``2 * max_groups`` (past that, the oldest pending repetition of a leave
   is dropped and counted: its first report already went out). A report holds
   at most 61 records, so that it fits the 1280-byte minimum MTU with its
   IPv6 header and Router Alert; more records make more reports.

Divergence: RFC 3810 6.3 answers a Group-and-Source-Specific Query with
the queried sources the host listens to; since every group here is
EXCLUDE({}), that is all of them, and the answer given is the
Group-Specific one, MODE_IS_EXCLUDE({}), which says the same. MLDv1
compatibility mode (RFC 3810 8.2: answering with MLDv1 reports after
hearing an MLDv1 query) is not implemented: MLDv1 queries are answered with
MLDv2 reports.

DragonFly: ``sys/netinet6/mld6.c`` (``mld6_input``, ``mld6_start_listening``,
``mld6_fasttimeo``; DragonFly's is MLDv1 only, this follows RFC 3810 as
FreeBSD's ``mld6.c`` does).
"""

from __future__ import annotations

import ipaddress
import random
import struct

import attrs

from .errors import LocalProtocolError, RemoteProtocolError
from .icmpv6 import (
    MLD_LISTENER_DONE,
    MLD_LISTENER_QUERY,
    MLD_LISTENER_REPORT,
    MLDV2_LISTENER_REPORT,
    Icmp6Message,
)

__all__ = [
    "ALLOW_NEW_SOURCES",
    "BLOCK_OLD_SOURCES",
    "CHANGE_TO_EXCLUDE",
    "CHANGE_TO_INCLUDE",
    "MODE_IS_EXCLUDE",
    "MODE_IS_INCLUDE",
    "MldListener",
    "MldListenerStatistics",
    "MldMessage",
    "MldQuery",
    "MldV1Done",
    "MldV1Report",
    "MldV2Report",
    "MulticastRecord",
    "decode_max_response_code",
    "decode_qqic",
    "encode_max_response_code",
    "encode_qqic",
    "parse_mld",
]

# Multicast address record types (RFC 3810 5.2.12).
MODE_IS_INCLUDE = 1
MODE_IS_EXCLUDE = 2
CHANGE_TO_INCLUDE = 3
CHANGE_TO_EXCLUDE = 4
ALLOW_NEW_SOURCES = 5
BLOCK_OLD_SOURCES = 6

_UNSPECIFIED = bytes(16)
_ALL_NODES = bytes.fromhex("ff020000000000000000000000000001")
_ALL_ROUTERS = bytes.fromhex("ff020000000000000000000000000002")
_ALL_MLDV2_ROUTERS = bytes.fromhex("ff020000000000000000000000000016")

_REC = struct.Struct("!BBH16s")  # record type, aux data length (words), number of sources, group
_QUERY2 = struct.Struct("!16sBBH")  # group, Resv|S|QRV, QQIC, number of sources
_S_FLAG = 0x08

#: Records in one report: 1280 bytes less the IPv6 header (40), a hop-by-hop
#: header with the Router Alert (8) and the ICMPv6 header (8), at 20 bytes a
#: record without sources.
_MAX_RECORDS = (1280 - 40 - 8 - 8) // 20


def _fmt6(addr: bytes) -> str:
    # Lenient for repr: a malformed value must still print.
    return str(ipaddress.IPv6Address(addr)) if len(addr) == 16 else repr(addr)


def _fmt6s(addrs: tuple[bytes, ...]) -> str:
    return "(" + ", ".join(_fmt6(a) for a in addrs) + ")"


def _is_link_local(addr: bytes) -> bool:
    # fe80::/10; any bytes are accepted without raising.
    return len(addr) == 16 and addr[0] == 0xFE and addr[1] & 0xC0 == 0x80


def _check_addr(name: str, addr: bytes) -> None:
    if type(addr) is not bytes or len(addr) != 16:
        raise ValueError(f"{name} must be a 16-byte IPv6 address, got {addr!r}")


####################################################################
# Time codes (RFC 3810 5.1.3 and 5.1.9)
####################################################################


def decode_max_response_code(code: int) -> int:
    """The Maximum Response Delay in milliseconds for an MLDv2 Maximum Response Code.

    Below 32768 the code is the delay; from 32768 it is ``1 exp(3) mant(12)``
    and the delay ``(mant | 0x1000) << (exp + 3)`` (RFC 3810 5.1.3).
    """
    if code < 0x8000:
        return code
    return (code & 0xFFF | 0x1000) << ((code >> 12 & 7) + 3)


def encode_max_response_code(ms: int) -> int:
    """The Maximum Response Code for a delay of ``ms`` milliseconds, rounded
    down to the nearest value the code can hold.

    Raises:
        ValueError: ``ms`` is negative or above 8387584 (the largest code's).
    """
    if ms < 0x8000:
        if ms < 0:
            raise ValueError(f"a delay cannot be negative, got {ms} ms")
        return ms
    if ms > 8387584:
        raise ValueError(f"a Maximum Response Delay is at most 8387584 ms, got {ms}")
    exp = ms.bit_length() - 16
    return 0x8000 | exp << 12 | (ms >> (exp + 3)) & 0xFFF


def decode_qqic(code: int) -> int:
    """The Querier's Query Interval in seconds for a QQIC (RFC 3810 5.1.9)."""
    if code < 0x80:
        return code
    return (code & 0xF | 0x10) << ((code >> 4 & 7) + 3)


def encode_qqic(seconds: int) -> int:
    """The QQIC for an interval of ``seconds``, rounded down to a representable value.

    Raises:
        ValueError: negative, or above 31744 (the largest code's).
    """
    if seconds < 0x80:
        if seconds < 0:
            raise ValueError(f"an interval cannot be negative, got {seconds}")
        return seconds
    if seconds > 31744:
        raise ValueError(f"a Querier's Query Interval is at most 31744 s, got {seconds}")
    exp = seconds.bit_length() - 8
    return 0x80 | exp << 4 | (seconds >> (exp + 3)) & 0xF


####################################################################
# Messages
####################################################################


@attrs.frozen
class MulticastRecord:
    """A Multicast Address Record of an MLDv2 report (RFC 3810 5.2.4).

    Attributes:
        type: the record type (:data:`MODE_IS_INCLUDE`... :data:`BLOCK_OLD_SOURCES`).
        group: the 16-byte multicast address.
        sources: the 16-byte source addresses.
    """

    type: int
    group: bytes = attrs.field(repr=_fmt6)
    sources: tuple[bytes, ...] = attrs.field(default=(), converter=tuple, repr=_fmt6s)


@attrs.frozen
class MldV2Report:
    """An MLDv2 Multicast Listener Report (RFC 3810 5.2), ICMPv6 type 143.

    Attributes:
        records: the address records, in order.
    """

    records: tuple[MulticastRecord, ...] = attrs.field(converter=tuple)

    def emit(self, src: bytes, dst: bytes = _ALL_MLDV2_ROUTERS) -> bytes:
        """The whole ICMPv6 message (no auxiliary data), checksum computed for ``src`` -> ``dst``.

        Raises:
            ValueError: a malformed record or address, or more than 65535
                records or sources.
        """
        records = self.records
        if len(records) > 0xFFFF:
            raise ValueError(f"a report holds at most 65535 records, got {len(records)}")
        parts = []
        for rec in records:
            _check_addr("group", rec.group)
            for s in rec.sources:
                _check_addr("source", s)
            try:
                parts.append(_REC.pack(rec.type, 0, len(rec.sources), rec.group))
            except struct.error as exc:
                raise ValueError(f"record field out of range: {exc}") from None
            parts.extend(rec.sources)
        return Icmp6Message(MLDV2_LISTENER_REPORT, 0, len(records)).emit(src, dst, b"".join(parts))


@attrs.frozen(kw_only=True)
class MldQuery:
    """A Multicast Listener Query, MLDv1 (RFC 2710 3) or MLDv2 (RFC 3810 5.1).

    Attributes:
        max_response_delay: seconds a listener may wait before it answers.
        group: :: for a General Query, else the group queried.
        version: 1 (24 bytes long) or 2 (28 bytes or more).
        sources: the sources of a Group-and-Source-Specific Query (MLDv2).
        s_flag: Suppress Router-Side Processing (MLDv2).
        qrv: the Querier's Robustness Variable, 0..7 (MLDv2; 0 in MLDv1).
        qqic: the Querier's Query Interval Code as sent, 0..255 (MLDv2; 0
            in MLDv1); :attr:`qqi` decodes it.
    """

    max_response_delay: float = 10.0
    group: bytes = attrs.field(default=_UNSPECIFIED, repr=_fmt6)
    version: int = 2
    sources: tuple[bytes, ...] = attrs.field(default=(), converter=tuple, repr=_fmt6s)
    s_flag: bool = False
    qrv: int = 2
    qqic: int = 125

    @property
    def qqi(self) -> int:
        """The Querier's Query Interval in seconds."""
        return decode_qqic(self.qqic)

    @property
    def is_general(self) -> bool:
        """Whether this is a General Query (group ::)."""
        return self.group == _UNSPECIFIED

    def emit(self, src: bytes, dst: bytes | None = None) -> bytes:
        """The whole ICMPv6 message, checksum computed for ``src`` -> ``dst``.

        Args:
            src: a link-local address.
            dst: by default ff02::1 for a General Query, else the group.

        An MLDv1 query has no sources, S flag, QRV or QQIC: ``qrv`` and
        ``qqic`` are not sent, and sources or the S flag are refused.

        Raises:
            ValueError: a malformed field, a delay the version cannot carry
                (MLDv1: 65.535 s; MLDv2: 8387.584 s), or MLDv2 fields in an
                MLDv1 query.
        """
        group = self.group
        _check_addr("group", group)
        if dst is None:
            dst = _ALL_NODES if group == _UNSPECIFIED else group
        ms = round(self.max_response_delay * 1000)
        if self.version == 1:
            if self.sources or self.s_flag:
                raise ValueError("an MLDv1 query has no sources and no S flag")
            if not 0 <= ms <= 0xFFFF:
                raise ValueError(f"an MLDv1 delay is 0..65535 ms, got {ms}")
            return Icmp6Message(MLD_LISTENER_QUERY, 0, ms << 16).emit(src, dst, group)
        if self.version != 2:
            raise ValueError(f"version must be 1 or 2, got {self.version}")
        if not 0 <= self.qrv <= 7:
            raise ValueError(f"qrv must be 0..7, got {self.qrv}")
        for s in self.sources:
            _check_addr("source", s)
        try:
            head = _QUERY2.pack(group, (_S_FLAG if self.s_flag else 0) | self.qrv, self.qqic, len(self.sources))
        except struct.error as exc:
            raise ValueError(f"query field out of range: {exc}") from None
        code = encode_max_response_code(ms)
        return Icmp6Message(MLD_LISTENER_QUERY, 0, code << 16).emit(src, dst, head + b"".join(self.sources))


@attrs.frozen
class MldV1Report:
    """An MLDv1 Multicast Listener Report (RFC 2710 3), ICMPv6 type 131.

    Attributes:
        group: the group listened to.
    """

    group: bytes = attrs.field(repr=_fmt6)

    def emit(self, src: bytes, dst: bytes | None = None) -> bytes:
        """The whole ICMPv6 message to ``dst`` (by default the group itself).

        Raises:
            ValueError: a malformed address.
        """
        _check_addr("group", self.group)
        return Icmp6Message(MLD_LISTENER_REPORT, 0).emit(src, self.group if dst is None else dst, self.group)


@attrs.frozen
class MldV1Done:
    """An MLDv1 Multicast Listener Done (RFC 2710 3), ICMPv6 type 132.

    Attributes:
        group: the group left.
    """

    group: bytes = attrs.field(repr=_fmt6)

    def emit(self, src: bytes, dst: bytes = _ALL_ROUTERS) -> bytes:
        """The whole ICMPv6 message to ``dst`` (by default ff02::2, all routers).

        Raises:
            ValueError: a malformed address.
        """
        _check_addr("group", self.group)
        return Icmp6Message(MLD_LISTENER_DONE, 0).emit(src, dst, self.group)


MldMessage = MldQuery | MldV1Report | MldV1Done | MldV2Report
"""Any of the messages :func:`parse_mld` returns."""

_MLD_TYPES = frozenset({MLD_LISTENER_QUERY, MLD_LISTENER_REPORT, MLD_LISTENER_DONE, MLDV2_LISTENER_REPORT})
_REPORTS = frozenset({MLD_LISTENER_REPORT, MLDV2_LISTENER_REPORT})


def parse_mld(msg: Icmp6Message, body: memoryview, *, hop_limit: int, src: bytes) -> MldMessage:
    """The MLD message in ``msg`` and ``body``, validated.

    Args:
        msg, body: what :meth:`~.icmpv6.Icmp6Message.parse` returned (the
            checksum is already verified).
        hop_limit: the IPv6 header's hop limit.
        src: the IPv6 source address.

    Returns:
        An :class:`MldQuery`, :class:`MldV1Report`, :class:`MldV1Done` or
        :class:`MldV2Report`.

    Raises:
        RemoteProtocolError: ``"bad_hop_limit"``, ``"bad_source"`` or
            ``"short_message"``, checked in that order (module docstring).
        ValueError: ``msg.type`` is not an MLD type (130, 131, 132, 143):
            the caller's bug.
    """
    type_ = msg.type
    if type_ not in _MLD_TYPES:
        raise ValueError(f"ICMPv6 type {type_} is not an MLD message")
    if hop_limit != 1:
        raise RemoteProtocolError("bad_hop_limit", f"hop limit {hop_limit}, need 1")
    if not (_is_link_local(src) or (type_ in _REPORTS and src == _UNSPECIFIED)):
        raise RemoteProtocolError("bad_source", f"type {type_} from {_fmt6(src)}")
    body = memoryview(body)
    n = 8 + len(body)

    if type_ == MLDV2_LISTENER_REPORT:
        return MldV2Report(_parse_records(body, msg.data & 0xFFFF))
    if n < 24:
        raise RemoteProtocolError("short_message", f"{n} bytes, need 24")
    if type_ == MLD_LISTENER_REPORT:
        return MldV1Report(bytes(body[:16]))
    if type_ == MLD_LISTENER_DONE:
        return MldV1Done(bytes(body[:16]))
    code = msg.data >> 16
    if n == 24:
        return MldQuery(max_response_delay=code / 1000, group=bytes(body), version=1, qrv=0, qqic=0)
    if n < 28:
        raise RemoteProtocolError("short_message", f"{n} bytes: neither MLDv1 (24) nor MLDv2 (28 or more)")
    group, flags, qqic, nsrc = _QUERY2.unpack_from(body)
    if 20 + 16 * nsrc > len(body):
        raise RemoteProtocolError("short_message", f"{nsrc} sources need {28 + 16 * nsrc} bytes, have {n}")
    raw = body[20 : 20 + 16 * nsrc].tobytes()
    return MldQuery(
        max_response_delay=decode_max_response_code(code) / 1000,
        group=group,
        version=2,
        sources=tuple(raw[i : i + 16] for i in range(0, len(raw), 16)),
        s_flag=bool(flags & _S_FLAG),
        qrv=flags & 7,
        qqic=qqic,
    )


def _parse_records(body: memoryview, count: int) -> tuple[MulticastRecord, ...]:
    n = len(body)
    # Every record is at least 20 bytes: refuse an impossible count before
    # building anything.
    if 20 * count > n:
        raise RemoteProtocolError("short_message", f"{count} records cannot fit in {n + 8} bytes")
    records = []
    off = 0
    for _ in range(count):
        if off + 20 > n:
            raise RemoteProtocolError("short_message", f"record at offset {off + 8} is cut short")
        type_, aux_words, nsrc, group = _REC.unpack_from(body, off)
        start = off + 20
        end = start + 16 * nsrc
        off = end + 4 * aux_words
        if off > n:
            raise RemoteProtocolError("short_message", f"record needs {off + 8} bytes, have {n + 8}")
        raw = body[start:end].tobytes()
        records.append(MulticastRecord(type_, group, tuple(raw[i : i + 16] for i in range(0, len(raw), 16))))
    return tuple(records)


####################################################################
# Host-side listener (RFC 3810 6)
####################################################################


@attrs.frozen
class MldListenerStatistics:
    """A snapshot of an :class:`MldListener`.

    Attributes:
        groups: groups joined now.
        reports: reports returned for sending.
        records: records in those reports.
        queries: queries given to :meth:`~MldListener.input`.
        queries_ignored: group-specific queries for groups not joined (or
            never reported).
        repetitions_dropped: pending repetitions of a leave dropped to keep
            the bound (rule 6).
    """

    groups: int
    reports: int
    records: int
    queries: int
    queries_ignored: int
    repetitions_dropped: int


class _Change:
    """A state change still to be repeated."""

    __slots__ = ("deadline", "record_type", "remaining")

    def __init__(self, record_type: int, remaining: int, deadline: float) -> None:
        self.record_type = record_type
        self.remaining = remaining
        self.deadline = deadline


def _reportable(group: bytes) -> bool:
    # Rule 1: not ff02::1, not scope 0 (reserved) or 1 (interface-local).
    return group != _ALL_NODES and group[1] & 0x0F > 1


class MldListener:
    """The host side of MLDv2 (RFC 3810 6) for one interface; sans-IO.

    The "Theory of operation" in the module docstring has the rules.

    Args:
        rng: the random source for report delays (seeded by the caller).
        robustness: the Robustness Variable: how many times a state-change
            report is sent (RFC 3810 9.1, default 2); a query's QRV replaces
            it (rule 5).
        unsolicited_report_interval: seconds, the upper bound of the random
            interval between repetitions (RFC 3810 9.11, default 1).
        max_groups: the most groups joined at once.

    ``now`` must never decrease.

    DragonFly: ``sys/netinet6/mld6.c``.
    """

    def __init__(
        self,
        rng: random.Random,
        *,
        robustness: int = 2,
        unsolicited_report_interval: float = 1.0,
        max_groups: int = 256,
    ) -> None:
        if not 1 <= robustness <= 7:
            raise ValueError(f"robustness must be 1..7, got {robustness}")
        if not unsolicited_report_interval >= 0:
            raise ValueError(f"unsolicited_report_interval must be >= 0, got {unsolicited_report_interval}")
        if max_groups < 1:
            raise ValueError(f"max_groups must be at least 1, got {max_groups}")
        self._rng = rng
        self.robustness = robustness
        self.unsolicited_report_interval = unsolicited_report_interval
        self.max_groups = max_groups
        self._joined: dict[bytes, None] = {}  # an ordered set
        self._changes: dict[bytes, _Change] = {}
        self._general: float | None = None
        self._group_responses: dict[bytes, float] = {}
        self._reports = self._records = self._queries = self._ignored = self._dropped = 0

    def groups(self) -> frozenset[bytes]:
        """The groups joined."""
        return frozenset(self._joined)

    def statistics(self) -> MldListenerStatistics:
        """A snapshot of the counters."""
        return MldListenerStatistics(
            groups=len(self._joined),
            reports=self._reports,
            records=self._records,
            queries=self._queries,
            queries_ignored=self._ignored,
            repetitions_dropped=self._dropped,
        )

    def _reports_of(self, records: list[MulticastRecord]) -> list[MldV2Report]:
        out = [MldV2Report(records[i : i + _MAX_RECORDS]) for i in range(0, len(records), _MAX_RECORDS)]
        self._reports += len(out)
        self._records += len(records)
        return out

    def _state_change(self, group: bytes, record_type: int, now: float) -> list[MldV2Report]:
        # Rule 2: send now, repeat robustness - 1 times; replaces what was pending.
        self._changes.pop(group, None)
        if self.robustness > 1:
            if len(self._changes) >= 2 * self.max_groups:
                for old in self._changes:
                    if old not in self._joined:  # a leave: at least max_groups of them
                        del self._changes[old]
                        self._dropped += 1
                        break
            delay = self._rng.uniform(0, self.unsolicited_report_interval)
            self._changes[group] = _Change(record_type, self.robustness - 1, now + delay)
        return self._reports_of([MulticastRecord(record_type, group)])

    def join(self, group: bytes, now: float) -> list[MldV2Report]:
        """Start listening to ``group``.

        Returns:
            The CHANGE_TO_EXCLUDE({}) report to send now (none for a group
            never reported, or one already joined).

        Raises:
            ValueError: ``group`` is not a 16-byte multicast address.
            LocalProtocolError: ``max_groups`` groups are joined already.
        """
        _check_addr("group", group)
        if group[0] != 0xFF:
            raise ValueError(f"{_fmt6(group)} is not a multicast address")
        if group in self._joined:
            return []
        if len(self._joined) >= self.max_groups:
            raise LocalProtocolError(f"already listening to {self.max_groups} groups (max_groups)")
        self._joined[group] = None
        if not _reportable(group):
            return []
        return self._state_change(group, CHANGE_TO_EXCLUDE, now)

    def leave(self, group: bytes, now: float) -> list[MldV2Report]:
        """Stop listening to ``group``.

        Returns:
            The CHANGE_TO_INCLUDE({}) report to send now (none for a group
            never reported, or one not joined).
        """
        if group not in self._joined:
            return []
        del self._joined[group]
        self._group_responses.pop(group, None)
        if not _reportable(group):
            return []
        return self._state_change(group, CHANGE_TO_INCLUDE, now)

    def input(self, query: MldQuery, now: float) -> None:
        """Take a query (rules 3 to 5), validated by :func:`parse_mld`.

        Returns nothing: every response is delayed (by a random time that
        may be 0) and comes from :meth:`expire` at :meth:`next_deadline`.
        """
        self._queries += 1
        if query.version == 2 and query.qrv:
            self.robustness = query.qrv
        deadline = now + self._rng.uniform(0, max(query.max_response_delay, 0.0))
        general = self._general
        group = query.group
        if group == _UNSPECIFIED:
            if general is None or general > deadline:
                self._general = deadline
            return
        if group not in self._joined or not _reportable(group):
            self._ignored += 1
            return
        if general is not None and general <= deadline:
            return
        pending = self._group_responses.get(group)
        if pending is None or deadline < pending:
            self._group_responses[group] = deadline

    def next_deadline(self) -> float | None:
        """When :meth:`expire` next has work, or ``None``."""
        times = [c.deadline for c in self._changes.values()]
        times.extend(self._group_responses.values())
        if self._general is not None:
            times.append(self._general)
        return min(times) if times else None

    def expire(self, now: float) -> list[MldV2Report]:
        """The reports due at ``now``: state-change repetitions first, then
        query responses, in reports of at most 61 records."""
        out = []
        changes = []
        for group, change in list(self._changes.items()):
            if change.deadline <= now:
                changes.append(MulticastRecord(change.record_type, group))
                change.remaining -= 1
                if change.remaining:
                    change.deadline = now + self._rng.uniform(0, self.unsolicited_report_interval)
                else:
                    del self._changes[group]
        if changes:
            out.extend(self._reports_of(changes))

        current: dict[bytes, None] = {}
        if self._general is not None and self._general <= now:
            self._general = None
            current.update((g, None) for g in self._joined if _reportable(g))
        for group, deadline in list(self._group_responses.items()):
            if deadline <= now:
                del self._group_responses[group]
                current[group] = None  # joined: leave() drops a group's response
        if current:
            out.extend(self._reports_of([MulticastRecord(MODE_IS_EXCLUDE, g) for g in current]))
        return out
