"""DNS messages (RFC 1035 section 4), their TCP framing and UDP truncation.

Theory of operation
===================

A :class:`Message` is a value: the header's fields (the four counts are the
lengths of the four section tuples, never stored) and the sections, as
:class:`Question` and :class:`ResourceRecord` values. :meth:`Message.parse`
reads one whole message; :meth:`Message.emit` writes one, compressing names
unless told not to, and truncating for UDP when given a ``limit``. Nothing
here sends, receives, caches or decides what to answer: the server and the
resolver are glue on top (:func:`make_query`, :func:`make_response`,
:func:`formerr_response`).

Rules:

1. Names are sequences of labels of 1 to 63 arbitrary bytes (RFC 2181 11),
   at most 255 bytes in wire form (the length bytes and the root's 0
   included; RFC 1035 2.3.4). :class:`Name` enforces both when built, so an
   emitted name is always legal. Labels keep their case, byte for byte;
   comparison for lookups is ASCII case-insensitive (RFC 4343), through
   :meth:`Name.matches`, :meth:`Name.lower` and :meth:`Name.is_subdomain_of`.
2. Compression on parse (RFC 1035 4.1.4): a pointer must point strictly before
   the start of the run of labels it ends (the name's start, or the previous
   pointer's target). Targets therefore strictly decrease, which rules out
   self pointers, forward pointers and loops without a visited set; BIND's
   ``dns_name_fromwire`` has the same rule. At most :data:`MAX_POINTERS`
   pointers are followed per name, so pointers to pointers cannot make one
   name cost more than a bounded amount of work.
3. Compression on emit: a name's longest suffix already written (compared
   byte for byte, so the case survives a round trip) becomes a pointer, if it
   lies in the first 16 KiB (a pointer has 14 bits). Names are compressed in
   owner names, questions, and the rdata of the RFC 1035 types parsed here
   (NS, CNAME, SOA, PTR, MX); never in opaque rdata (RFC 3597 4).
4. Record data: A (class IN only; RFC 1035 3.4.1), NS, CNAME, SOA, PTR and MX
   are parsed into :class:`ARdata` ... :class:`MxRdata`; every other type,
   and A in another class, is kept as :class:`OpaqueRdata`, copied unchanged
   both ways (RFC 3597). The obsolete RFC 1035 types with names in their
   rdata (MD, MF, MB, MG, MR, MINFO) are opaque too: a compression pointer in
   one would point into the message it came from. A TTL is kept as the
   32-bit value received (RFC 2181 8 says to read a TTL with the top bit set
   as 0; that is the cache's business).
5. Truncation (``emit(limit=...)``): records are dropped whole from the end
   of the message until it fits. TC is set if a record of the answer or
   authority section was dropped; dropping only additional records leaves
   TC clear (RFC 2181 9: TC means required data is missing, and the client
   must retry over TCP). The questions are always kept.
6. TCP (RFC 1035 4.2.2, RFC 7766 8): each message is preceded by its length
   in two bytes (:func:`tcp_frame`); :class:`TcpDeframer` cuts a byte stream
   back into messages, whatever the chunking.

What :meth:`Message.parse` checks, strictly, before reading each field (each
failure is a :class:`~.errors.RemoteProtocolError` with its ``reason``):

- 12 bytes of header (``"short_header"``);
- names: a label type other than 00 (a label) or 11 (a pointer), as the
  extended types of RFC 6891 are not supported (``"bad_label_type"``); a
  pointer breaking rule 2 (``"bad_pointer"``); more than
  :data:`MAX_POINTERS` pointers (``"too_many_pointers"``); a name longer
  than 255 bytes (``"name_too_long"``); the message ending inside a name
  (``"truncated_name"``);
- a question's type and class (``"truncated_question"``), a record's fixed
  10 bytes (``"truncated_record"``) and its rdata (``"truncated_rdata"``)
  being present;
- the rdata of a parsed type filling its RDLENGTH exactly (``"bad_rdata"``);
- no bytes after the last record (``"trailing_data"``).

One leniency: a message with TC set may end, at a record boundary, before
its counts are met; the records present are returned (RFC 2181 9 asks the
sender to fix the counts, but older servers leave them).

What it does not check: QR, the opcode, the rcode, the Z bits (kept as
``z``, which includes RFC 4035's AD and CD), class values, or whether the
sections make sense together (a query with answers, a response without a
question). Those are the glue's decisions.

Bounds: a message is at most 65535 bytes (a TCP frame; UDP's payload is
smaller). Parsing makes one pass over the message; a name costs at most its
255 bytes of labels and :data:`MAX_POINTERS` jumps, and a jump onto a suffix
already read costs one look-up (the parser keeps a memo of suffixes by
offset for the message), so many names sharing one long pointer chain cost
no more than one. :class:`TcpDeframer` holds less than one message
(``max_size`` plus 2 bytes) between calls. Emitting keeps one table entry
per name suffix written in the first 16 KiB.

DragonFly: the kernel has no DNS; the C counterpart is the libc resolver's
``lib/libc/nameser/ns_name.c`` (``ns_name_unpack``, ``ns_name_compress``).
Divergence: ``ns_name_unpack`` catches loops by counting the bytes it has
checked against the message length; here pointers must go strictly
backwards, BIND's rule (``lib/dns/name.c``, ``dns_name_fromwire``), which
refuses them at the first bad pointer. Divergence: ``dn_find`` compresses
a suffix that matches ignoring case, so the case of a later name is lost;
here suffixes match byte for byte, so a parse returns the names emitted
(rule 3). Prior art: dnspython's ``dns.message`` (the value model).
"""

from __future__ import annotations

import enum
import ipaddress
import struct
from bisect import bisect_right
from itertools import chain
from typing import Any, ClassVar, Union

import attrs

from .dns_name import MAX_LABEL_LEN, MAX_NAME_LEN, MAX_POINTERS, Name, NameWriter, Suffixes, read_name, to_name
from .errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "DNS_PORT",
    "MAX_LABEL_LEN",
    "MAX_NAME_LEN",
    "MAX_POINTERS",
    "UDP_LIMIT",
    "ARdata",
    "CnameRdata",
    "Message",
    "MxRdata",
    "Name",
    "NsRdata",
    "Opcode",
    "OpaqueRdata",
    "PtrRdata",
    "Question",
    "RRClass",
    "RRType",
    "Rcode",
    "Rdata",
    "ResourceRecord",
    "SoaRdata",
    "TcpDeframer",
    "formerr_response",
    "make_query",
    "make_response",
    "reverse_name",
    "reverse_name_to_address",
    "tcp_frame",
]

DNS_PORT = 53
#: The largest DNS message over UDP without EDNS (RFC 1035 2.3.4, 4.2.1).
UDP_LIMIT = 512
_MAX_MESSAGE = 0xFFFF

_HDR = struct.Struct("!HHHHHH")
_QTAIL = struct.Struct("!HH")
_RRTAIL = struct.Struct("!HHIH")
_SOATAIL = struct.Struct("!IIIII")
_U16 = struct.Struct("!H")


class RRType(enum.IntEnum):
    """Record types (RFC 1035 3.2.2, 3.2.3; AAAA RFC 3596; SRV RFC 2782; OPT RFC 6891).
    Only some are parsed (module docstring, rule 4); any 16-bit value is a
    legal type, kept as a plain ``int`` when it has no name here."""

    A = 1
    NS = 2
    CNAME = 5
    SOA = 6
    PTR = 12
    MX = 15
    TXT = 16
    AAAA = 28
    SRV = 33
    OPT = 41
    AXFR = 252
    ANY = 255


class RRClass(enum.IntEnum):
    """Classes (RFC 1035 3.2.4, 3.2.5; NONE RFC 2136)."""

    IN = 1
    CH = 3
    HS = 4
    NONE = 254
    ANY = 255


class Opcode(enum.IntEnum):
    """Header opcodes (RFC 1035 4.1.1; NOTIFY RFC 1996, UPDATE RFC 2136)."""

    QUERY = 0
    IQUERY = 1
    STATUS = 2
    NOTIFY = 4
    UPDATE = 5


class Rcode(enum.IntEnum):
    """Header response codes (RFC 1035 4.1.1)."""

    NOERROR = 0
    FORMERR = 1
    SERVFAIL = 2
    NXDOMAIN = 3
    NOTIMP = 4
    REFUSED = 5


def _named(kind: type[enum.IntEnum], bits: int) -> Any:
    """A converter to ``kind``'s member when the value has one (for a readable
    repr), else to a plain int, refusing values beyond ``bits`` bits."""
    members = kind._value2member_map_
    top = (1 << bits) - 1

    def convert(value: int) -> int:
        if not isinstance(value, int) or not 0 <= value <= top:
            raise ValueError(f"a {kind.__name__} must be an integer 0..{top}, got {value!r}")
        member = members.get(value)
        return member if member is not None else int(value)  # type: ignore[return-value]

    return convert


def _uint(bits: int) -> Any:
    top = (1 << bits) - 1

    def check(_inst: object, attribute: attrs.Attribute[int], value: int) -> None:
        if not isinstance(value, int) or not 0 <= value <= top:
            raise ValueError(f"{attribute.name} must be an integer 0..{top}, got {value!r}")

    return check


####
#### Record data
####


def _fmt_ip(address: bytes) -> str:
    return ".".join(map(str, address))


def _to_ipv4(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        if len(value) != 4:
            raise ValueError(f"an IPv4 address is 4 bytes, got {len(value)}")
        return bytes(value)
    return ipaddress.IPv4Address(value).packed


def _exact(pos: int, end: int, rtype: int) -> None:
    if pos != end:
        raise RemoteProtocolError("bad_rdata", f"{RRType(rtype).name} rdata does not fill its length")


@attrs.frozen
class ARdata:
    """An A record's data (RFC 1035 3.4.1), class IN only.

    Attributes:
        address: the IPv4 address, 4 bytes (a ``str`` or
            :class:`ipaddress.IPv4Address` is converted).
    """

    rtype: ClassVar[int] = RRType.A
    address: bytes = attrs.field(converter=_to_ipv4, repr=_fmt_ip)

    @classmethod
    def _parse(cls, data: bytes, pos: int, end: int, memo: Suffixes) -> ARdata:
        if end - pos != 4:
            raise RemoteProtocolError("bad_rdata", f"A rdata of {end - pos} bytes, need 4")
        return cls(data[pos:end])

    def _emit(self, w: NameWriter) -> None:
        w.buf += self.address


@attrs.frozen
class _NameRdata:
    """The rdata of the types that hold one name (shared code; the subclasses
    are unrelated types, so ``NsRdata(n) != PtrRdata(n)``)."""

    rtype: ClassVar[int]
    name: Name = attrs.field(converter=to_name)

    @classmethod
    def _parse(cls, data: bytes, pos: int, end: int, memo: Suffixes) -> Any:
        name, pos = read_name(data, pos, memo)
        _exact(pos, end, cls.rtype)
        return cls(name)

    def _emit(self, w: NameWriter) -> None:
        w.name(self.name)


@attrs.frozen
class NsRdata(_NameRdata):
    """An NS record's data (RFC 1035 3.3.11): the name of a name server."""

    rtype: ClassVar[int] = RRType.NS


@attrs.frozen
class CnameRdata(_NameRdata):
    """A CNAME record's data (RFC 1035 3.3.1): the canonical name."""

    rtype: ClassVar[int] = RRType.CNAME


@attrs.frozen
class PtrRdata(_NameRdata):
    """A PTR record's data (RFC 1035 3.3.12): the name pointed to."""

    rtype: ClassVar[int] = RRType.PTR


@attrs.frozen
class MxRdata:
    """An MX record's data (RFC 1035 3.3.9).

    Attributes:
        preference: 0..65535, lower is preferred.
        exchange: the mail exchanger's name.
    """

    rtype: ClassVar[int] = RRType.MX
    preference: int = attrs.field(validator=_uint(16))
    exchange: Name = attrs.field(converter=to_name)

    @classmethod
    def _parse(cls, data: bytes, pos: int, end: int, memo: Suffixes) -> MxRdata:
        if end - pos < 3:
            raise RemoteProtocolError("bad_rdata", f"MX rdata of {end - pos} bytes")
        (preference,) = _U16.unpack_from(data, pos)
        name, pos = read_name(data, pos + 2, memo)
        _exact(pos, end, cls.rtype)
        return cls(preference, name)

    def _emit(self, w: NameWriter) -> None:
        w.buf += _U16.pack(self.preference)
        w.name(self.exchange)


@attrs.frozen(kw_only=True)
class SoaRdata:
    """An SOA record's data (RFC 1035 3.3.13; RFC 2308 for ``minimum`` as
    the negative-caching TTL).

    Attributes:
        mname: the zone's primary name server.
        rname: the mailbox of the person responsible, as a name.
        serial, refresh, retry, expire, minimum: 32-bit unsigned integers.
    """

    rtype: ClassVar[int] = RRType.SOA
    mname: Name = attrs.field(converter=to_name)
    rname: Name = attrs.field(converter=to_name)
    serial: int = attrs.field(default=0, validator=_uint(32))
    refresh: int = attrs.field(default=0, validator=_uint(32))
    retry: int = attrs.field(default=0, validator=_uint(32))
    expire: int = attrs.field(default=0, validator=_uint(32))
    minimum: int = attrs.field(default=0, validator=_uint(32))

    @classmethod
    def _parse(cls, data: bytes, pos: int, end: int, memo: Suffixes) -> SoaRdata:
        mname, pos = read_name(data, pos, memo)
        rname, pos = read_name(data, pos, memo)
        if pos + 20 != end:
            raise RemoteProtocolError("bad_rdata", "SOA rdata does not fill its length")
        serial, refresh, retry, expire, minimum = _SOATAIL.unpack_from(data, pos)
        return cls(
            mname=mname,
            rname=rname,
            serial=serial,
            refresh=refresh,
            retry=retry,
            expire=expire,
            minimum=minimum,
        )

    def _emit(self, w: NameWriter) -> None:
        w.name(self.mname)
        w.name(self.rname)
        w.buf += _SOATAIL.pack(self.serial, self.refresh, self.retry, self.expire, self.minimum)


#: The types whose rdata is parsed: a table, one row per type (rule 4).
_RDATA: dict[int, Any] = {
    cls.rtype: cls for cls in (ARdata, NsRdata, CnameRdata, PtrRdata, MxRdata, SoaRdata)
}


def _fmt_hex(data: bytes) -> str:
    return data.hex() if len(data) <= 32 else data[:32].hex() + "..."


@attrs.frozen
class OpaqueRdata:
    """The data of a record of a type not parsed here, kept as bytes (RFC 3597).

    Attributes:
        rtype: the record type, 0..65535.
        data: the rdata, at most 65535 bytes; never compressed or changed.
    """

    rtype: int = attrs.field(converter=_named(RRType, 16))
    data: bytes = attrs.field(converter=bytes, repr=_fmt_hex)

    def _emit(self, w: NameWriter) -> None:
        w.buf += self.data


Rdata = Union[ARdata, NsRdata, CnameRdata, PtrRdata, MxRdata, SoaRdata, OpaqueRdata]


####
#### Questions, records, messages
####


@attrs.frozen
class Question:
    """An entry of the question section (RFC 1035 4.1.2).

    Attributes:
        name: the name asked about (a ``str`` is converted).
        qtype: a :class:`RRType` or any 16-bit value.
        qclass: a :class:`RRClass` or any 16-bit value; IN by default.
    """

    name: Name = attrs.field(converter=to_name)
    qtype: int = attrs.field(converter=_named(RRType, 16))
    qclass: int = attrs.field(default=RRClass.IN, converter=_named(RRClass, 16))


@attrs.frozen
class ResourceRecord:
    """A resource record (RFC 1035 4.1.3). Its type is its data's:
    ``ResourceRecord("www.example.com", ARdata("10.0.0.1"), ttl=300)``.

    Attributes:
        name: the owner name (a ``str`` is converted).
        rdata: :class:`ARdata`, :class:`NsRdata`, :class:`CnameRdata`,
            :class:`PtrRdata`, :class:`MxRdata`, :class:`SoaRdata`, or
            :class:`OpaqueRdata` for any other type.
        ttl: seconds, 0..2**32-1, as received.
        rclass: a :class:`RRClass` or any 16-bit value; IN by default.

    Raises:
        TypeError: ``rdata`` is not one of the classes above.
        ValueError: :class:`OpaqueRdata` of a type this module parses (it
            would not come back equal from a round trip), or :class:`ARdata`
            outside class IN.
    """

    name: Name = attrs.field(converter=to_name)
    rdata: Rdata
    ttl: int = attrs.field(default=0, validator=_uint(32))
    rclass: int = attrs.field(default=RRClass.IN, converter=_named(RRClass, 16))

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.rdata, (OpaqueRdata, *_RDATA.values())):
            raise TypeError(f"rdata must be one of the Rdata classes, got {self.rdata!r}")
        rtype, in_class = self.rdata.rtype, self.rclass == RRClass.IN
        if isinstance(self.rdata, OpaqueRdata):
            if rtype in _RDATA and (rtype != RRType.A or in_class):
                kind = _RDATA[rtype].__name__
                raise ValueError(f"use {kind} for {RRType(rtype).name} data, not OpaqueRdata")
        elif rtype == RRType.A and not in_class:
            raise ValueError("A data is defined for class IN only; use OpaqueRdata")

    @property
    def rtype(self) -> int:
        """The record's type, from its data."""
        return self.rdata.rtype

    def _emit(self, w: NameWriter) -> None:
        w.name(self.name)
        buf = w.buf
        at = len(buf)
        buf += _RRTAIL.pack(self.rtype, self.rclass, self.ttl, 0)
        self.rdata._emit(w)
        length = len(buf) - at - 10
        if length > 0xFFFF:
            raise ValueError(f"rdata of {length} bytes; at most 65535")
        _U16.pack_into(buf, at + 8, length)


def _read_record(data: bytes, pos: int, memo: Suffixes) -> tuple[ResourceRecord, int]:
    name, pos = read_name(data, pos, memo)
    if pos + 10 > len(data):
        raise RemoteProtocolError("truncated_record", f"at offset {pos}")
    rtype, rclass, ttl, length = _RRTAIL.unpack_from(data, pos)
    pos += 10
    end = pos + length
    if end > len(data):
        raise RemoteProtocolError("truncated_rdata", f"{length} bytes at offset {pos}")
    kind = _RDATA.get(rtype)
    if kind is None or (rtype == RRType.A and rclass != RRClass.IN):
        rdata: Rdata = OpaqueRdata(rtype, data[pos:end])
    else:
        rdata = kind._parse(data, pos, end, memo)
    return ResourceRecord(name, rdata, ttl, rclass), end


def _records(value: Any) -> tuple[ResourceRecord, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True)
class Message:
    """A DNS message (RFC 1035 4.1).

    Attributes:
        id: 0..65535, copied from query to response.
        qr: ``True`` for a response.
        opcode: an :class:`Opcode` or any 4-bit value.
        aa: authoritative answer.
        tc: truncated (see :meth:`emit`'s ``limit``).
        rd: recursion desired.
        ra: recursion available.
        z: the three bits between RA and the rcode (RFC 1035's Z; AD and CD
            of RFC 4035), 0..7, carried unchanged.
        rcode: an :class:`Rcode` or any 4-bit value.
        questions, answers, authorities, additionals: the four sections, as
            tuples (any iterable is converted); the header's counts are their
            lengths.
    """

    id: int = attrs.field(default=0, validator=_uint(16))
    qr: bool = attrs.field(default=False, converter=bool)
    opcode: int = attrs.field(default=Opcode.QUERY, converter=_named(Opcode, 4))
    aa: bool = attrs.field(default=False, converter=bool)
    tc: bool = attrs.field(default=False, converter=bool)
    rd: bool = attrs.field(default=False, converter=bool)
    ra: bool = attrs.field(default=False, converter=bool)
    z: int = attrs.field(default=0, validator=_uint(3))
    rcode: int = attrs.field(default=Rcode.NOERROR, converter=_named(Rcode, 4))
    questions: tuple[Question, ...] = attrs.field(default=(), converter=tuple)
    answers: tuple[ResourceRecord, ...] = attrs.field(default=(), converter=_records)
    authorities: tuple[ResourceRecord, ...] = attrs.field(default=(), converter=_records)
    additionals: tuple[ResourceRecord, ...] = attrs.field(default=(), converter=_records)

    def _flags(self, tc: bool) -> int:
        return (
            self.qr << 15
            | self.opcode << 11
            | self.aa << 10
            | tc << 9
            | self.rd << 8
            | self.ra << 7
            | self.z << 4
            | self.rcode
        )

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> Message:
        """Parse the whole of ``data`` as one message (a UDP payload, or one
        message from :class:`TcpDeframer`). The checks are the module
        docstring's.

        Raises:
            RemoteProtocolError: with one of the reasons listed there.
        """
        data = bytes(data)
        n = len(data)
        if n < 12:
            raise RemoteProtocolError("short_header", f"{n} bytes, need 12")
        ident, flags, qdcount, ancount, nscount, arcount = _HDR.unpack_from(data)
        tc = bool(flags & 0x0200)
        pos = 12
        memo: Suffixes = {}
        questions = []
        for _ in range(qdcount):
            name, pos = read_name(data, pos, memo)
            if pos + 4 > n:
                raise RemoteProtocolError("truncated_question", f"at offset {pos}")
            qtype, qclass = _QTAIL.unpack_from(data, pos)
            pos += 4
            questions.append(Question(name, qtype, qclass))
        sections: list[list[ResourceRecord]] = [[], [], []]
        for section, count in zip(sections, (ancount, nscount, arcount)):
            for _ in range(count):
                if tc and pos == n:
                    break  # the leniency for truncated messages
                record, pos = _read_record(data, pos, memo)
                section.append(record)
        if pos != n:
            raise RemoteProtocolError("trailing_data", f"{n - pos} bytes after the last record")
        return cls(
            id=ident,
            qr=bool(flags & 0x8000),
            opcode=(flags >> 11) & 0xF,
            aa=bool(flags & 0x0400),
            tc=tc,
            rd=bool(flags & 0x0100),
            ra=bool(flags & 0x0080),
            z=(flags >> 4) & 0x7,
            rcode=flags & 0xF,
            questions=questions,
            answers=sections[0],
            authorities=sections[1],
            additionals=sections[2],
        )

    def emit(self, *, compress: bool = True, limit: int | None = None) -> bytes:
        """The message on the wire.

        Args:
            compress: compress names (rule 3); ``False`` writes every name
                in full.
            limit: the most bytes the result may have (UDP:
                :data:`UDP_LIMIT`, or the size an EDNS client advertised).
                A longer message loses whole records from its end, and TC is
                set if an answer or authority record went (rule 5). ``None``:
                no truncation (TCP).

        Raises:
            ValueError: the message is longer than 65535 bytes (after any
                truncation), a section holds more than 65535 entries, or the
                header and questions alone exceed ``limit``.
        """
        if limit is not None and limit < 12:
            raise ValueError(f"limit must be at least 12 bytes, got {limit}")
        counts = (len(self.questions), len(self.answers), len(self.authorities), len(self.additionals))
        if max(counts) > 0xFFFF:
            raise ValueError(f"a section holds at most 65535 entries, got {counts}")
        w = NameWriter(compress)
        buf = w.buf
        buf += _HDR.pack(self.id, self._flags(self.tc), *counts)
        for q in self.questions:
            w.name(q.name)
            buf += _QTAIL.pack(q.qtype, q.qclass)
        ends = [len(buf)]  # ends[k]: the length with the first k records
        for record in chain(self.answers, self.authorities, self.additionals):
            record._emit(w)
            ends.append(len(buf))
        if limit is None or len(buf) <= limit:
            if len(buf) > _MAX_MESSAGE:
                raise ValueError(f"a DNS message is at most 65535 bytes, got {len(buf)}")
            return bytes(buf)
        if ends[0] > limit:
            raise ValueError(f"the header and questions take {ends[0]} bytes, more than the limit {limit}")
        if limit > _MAX_MESSAGE:
            raise ValueError(f"a DNS message is at most 65535 bytes, got {len(buf)}")
        # Names only point backwards, so the message up to a record boundary
        # is exactly the message of those records: cut it, fix the header.
        keep = bisect_right(ends, limit) - 1
        na, nn = counts[1], counts[2]
        an = min(keep, na)
        ns = min(keep - an, nn)
        ar = keep - an - ns
        tc = self.tc or keep < na + nn
        header = _HDR.pack(self.id, self._flags(tc), counts[0], an, ns, ar)
        return header + bytes(buf[12 : ends[keep]])


####
#### Helpers for servers and resolvers
####


def make_query(
    id: int, name: Name | str, qtype: int, *, rd: bool = True, qclass: int = RRClass.IN
) -> Message:
    """A standard query (opcode QUERY) for ``name`` and ``qtype``, with RD
    set by default, as a stub resolver sends it.

    Raises:
        ValueError: a field out of range, or a bad name.
    """
    return Message(id=id, rd=rd, questions=(Question(name, qtype, qclass),))


def make_response(
    query: Message,
    *,
    rcode: int = Rcode.NOERROR,
    aa: bool = True,
    ra: bool = False,
    answers: Any = (),
    authorities: Any = (),
    additionals: Any = (),
) -> Message:
    """The response to ``query``: its id, opcode, questions and RD copied
    (RFC 1035 4.1.1), QR set, and the given flags, rcode and sections.
    NXDOMAIN is ``rcode=Rcode.NXDOMAIN`` with the zone's SOA in
    ``authorities`` (RFC 2308 3).

    Raises:
        ValueError: ``query`` is itself a response (answering responses is
            how two servers loop).
    """
    if query.qr:
        raise ValueError("that message is a response, not a query")
    return Message(
        id=query.id,
        qr=True,
        opcode=query.opcode,
        aa=aa,
        rd=query.rd,
        ra=ra,
        rcode=rcode,
        questions=query.questions,
        answers=answers,
        authorities=authorities,
        additionals=additionals,
    )


def formerr_response(data: bytes | bytearray | memoryview) -> Message | None:
    """The answer to a query that :meth:`Message.parse` refused: a header
    with its id, opcode and RD, QR set, rcode FORMERR, and no sections (the
    question could not be read; BIND answers the same way). ``None`` if
    ``data`` has no header or is itself a response, which must never be
    answered.
    """
    if len(data) < 12:
        return None
    ident, flags = struct.unpack_from("!HH", data)
    if flags & 0x8000:
        return None
    return Message(
        id=ident, qr=True, opcode=(flags >> 11) & 0xF, rd=bool(flags & 0x0100), rcode=Rcode.FORMERR
    )


_IN_ADDR_ARPA = (b"in-addr", b"arpa")


def reverse_name(address: Any) -> Name:
    """The PTR name of an IPv4 address (RFC 1035 3.5): ``10.0.2.1`` gives
    ``1.2.0.10.in-addr.arpa``.

    Args:
        address: 4 bytes, a dotted-quad ``str``, an int or an
            :class:`ipaddress.IPv4Address`.

    Raises:
        ValueError: not an IPv4 address.
    """
    octets = _to_ipv4(address)
    return Name(tuple(str(b).encode() for b in reversed(octets)) + _IN_ADDR_ARPA)


def reverse_name_to_address(name: Name | str) -> bytes | None:
    """The IPv4 address (4 bytes) whose PTR name ``name`` is, ignoring case;
    ``None`` if it is not exactly four decimal octets (0..255, no leading
    zeros) under ``in-addr.arpa`` (a shorter name is a reverse zone, not an
    address).
    """
    labels = to_name(name).labels
    if len(labels) != 6 or tuple(label.lower() for label in labels[4:]) != _IN_ADDR_ARPA:
        return None
    octets = []
    for label in labels[3::-1]:
        if not label.isdigit() or (len(label) > 1 and label[0] == 0x30) or len(label) > 3:
            return None
        value = int(label)
        if value > 255:
            return None
        octets.append(value)
    return bytes(octets)


####
#### TCP framing (RFC 1035 4.2.2, RFC 7766 8)
####


def tcp_frame(message: bytes | bytearray | memoryview) -> bytes:
    """``message`` preceded by its length in two bytes, for a TCP stream.

    Raises:
        ValueError: the message is longer than 65535 bytes.
    """
    if len(message) > _MAX_MESSAGE:
        raise ValueError(f"a DNS message is at most 65535 bytes, got {len(message)}")
    return _U16.pack(len(message)) + bytes(message)


def _max_size(_inst: object, _attribute: object, value: int) -> None:
    if not 12 <= value <= _MAX_MESSAGE:
        raise ValueError(f"max_size must be 12..65535, got {value}")


@attrs.define(eq=False)
class TcpDeframer:
    """Cuts a TCP byte stream into DNS messages, however it is chunked.

    Feed it the bytes read from the stream, in order; it returns the whole
    messages they complete (without the length prefix, ready for
    :meth:`Message.parse`) and keeps the rest. Between calls it holds less
    than ``max_size + 2`` bytes. A length prefix under 12 (no header fits)
    or over ``max_size`` is a :class:`~.errors.RemoteProtocolError`; the
    stream has then lost its framing, so the deframer refuses further input
    and the glue closes the connection (messages completed earlier in the
    same chunk are lost with it).

    Attributes:
        max_size: the longest message accepted, 12..65535 (a server may
            accept smaller queries than it sends responses).
    """

    max_size: int = attrs.field(default=_MAX_MESSAGE, validator=_max_size)
    _buf: bytearray = attrs.field(init=False, factory=bytearray)
    _broken: bool = attrs.field(init=False, default=False)

    @property
    def pending(self) -> int:
        """Bytes held of a message not yet complete."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Add ``data``, the next bytes of the stream; return the messages
        completed, in order (possibly none).

        Raises:
            RemoteProtocolError: ``"short_frame"`` (a length under 12) or
                ``"frame_too_long"`` (over ``max_size``).
            LocalProtocolError: called again after that error.
        """
        if self._broken:
            raise LocalProtocolError("the stream lost its framing; close the connection")
        buf = self._buf
        buf += data
        out = []
        pos, n = 0, len(buf)
        while n - pos >= 2:
            (length,) = _U16.unpack_from(buf, pos)
            if not 12 <= length <= self.max_size:
                self._broken = True
                buf.clear()
                if length < 12:
                    raise RemoteProtocolError("short_frame", f"length prefix {length}, need 12")
                raise RemoteProtocolError("frame_too_long", f"length prefix {length}, max {self.max_size}")
            if n - pos - 2 < length:
                break
            out.append(bytes(buf[pos + 2 : pos + 2 + length]))
            pos += 2 + length
        del buf[:pos]
        return out

    def eof(self) -> None:
        """The stream ended: check that it ended between messages.

        Raises:
            RemoteProtocolError: ``"truncated_frame"``, part of a message
                was left.
        """
        if self._buf:
            raise RemoteProtocolError("truncated_frame", f"{len(self._buf)} bytes of a message left at EOF")
