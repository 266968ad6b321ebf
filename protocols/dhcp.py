"""BOOTP and DHCP messages (RFC 951, RFC 2131 sections 2 and 3, RFC 2132, RFC 3396).

A :class:`DhcpMessage` is the value of one message: the fixed BOOTP part
(236 bytes) as fields, and the options (the magic cookie's vendor area) as an
ordered tuple of ``(code, value)`` pairs in which a code appears once.

What :meth:`DhcpMessage.parse` checks, in order, before reading each field:

1. At least 236 bytes (``"short_message"``).
2. ``op`` is BOOTREQUEST or BOOTREPLY (``"bad_op"``); ``hlen`` is at most 16
   (``"bad_hlen"``); ``chaddr`` is the first ``hlen`` bytes of the 16-byte
   field. ``sname`` and ``file`` lose their trailing NULs.
3. The vendor area starts with the magic cookie 99.130.83.99 (RFC 2132
   section 2). A message without it is plain BOOTP: ``options=()``, no
   error, unless the caller asks for ``require_cookie`` (``"bad_cookie"``).
4. The options field is walked option by option: PAD is skipped, END (or
   the end of the data: many senders omit END) stops the walk, and every
   other option needs its length byte and its value inside the area
   (``"truncated_option"``).
5. Option overload (52, RFC 2132 section 9.3) must be one byte, 1, 2 or 3
   (``"bad_overload"``); it makes ``file`` (1), ``sname`` (2) or both (3)
   more option space, walked after the options field, ``file`` first, with
   the rules of 4. The overloaded fields then read as empty, and option 52
   is consumed: it is framing, not content, and does not appear in
   ``options``. An option 52 inside ``file`` or ``sname`` is ignored
   (RFC 2131 forbids it there).
6. Instances of one code are joined in the order options, file, sname
   (RFC 3396 section 7), so a long option split by the sender arrives whole.
7. The message type (53), if present, is one byte (``"bad_message_type"``).
   Its value is not checked: :attr:`DhcpMessage.message_type` is ``None``
   for an unknown one, and the machines decide.

What it does not check: option values (the typed helpers
:func:`decode_addresses`, :func:`decode_u32`... raise ``"bad_option"`` for
a wrong length when the caller reads one), ``htype`` (any hardware type is
carried), the ``flags`` bits other than broadcast (RFC 2131 says MBZ; they
are kept as received).

:meth:`DhcpMessage.emit` writes the fixed part, the cookie, each option
(split into instances of at most 255 bytes, RFC 3396), END, and zero
padding up to 300 bytes, the BOOTP minimum that some relays still expect
(RFC 1542 section 2.1). With ``max_size`` (the peer's option 57, RFC 2132
section 9.10) options that do not fit overflow into ``file`` and then
``sname``, when those are empty, with an option 52 saying so.

Bounds: a message is parsed in one pass over its bytes; the joined options
are at most the size of the message.

Compare: DragonFly's ``dhclient`` (``sbin/dhclient/options.c``,
``parse_option_buffer`` and ``cons_options``), which does the same walk
into a table indexed by code.
"""

from __future__ import annotations

import enum
import ipaddress
import struct
from collections.abc import Iterable

import attrs

from .errors import RemoteProtocolError

__all__ = [
    "BOOTREPLY",
    "BOOTREQUEST",
    "CLIENT_PORT",
    "FIXED_LEN",
    "FLAG_BROADCAST",
    "MAGIC_COOKIE",
    "MIN_LEN",
    "SERVER_PORT",
    "DhcpMessage",
    "MessageType",
    "Option",
    "addresses",
    "decode_addresses",
    "decode_text",
    "decode_u16",
    "decode_u32",
    "encode_addresses",
    "encode_text",
    "encode_u16",
    "encode_u32",
    "text",
    "u32",
]

SERVER_PORT = 67
CLIENT_PORT = 68
BOOTREQUEST = 1
BOOTREPLY = 2
FLAG_BROADCAST = 0x8000
MAGIC_COOKIE = b"\x63\x82\x53\x63"

#: The fixed BOOTP part, before the vendor area (RFC 951).
FIXED_LEN = 236
#: The shortest message :meth:`DhcpMessage.emit` writes (RFC 951's 64-byte
#: vendor area; RFC 1542 section 2.1).
MIN_LEN = 300

_FIXED = struct.Struct("!BBBBIHH4s4s4s4s16s64s128s")
_OPTIONS_AT = FIXED_LEN + 4
_SNAME = slice(44, 108)
_FILE = slice(108, 236)


class MessageType(enum.IntEnum):
    """The DHCP message type, option 53 (RFC 2132 section 9.6)."""

    DISCOVER = 1
    OFFER = 2
    REQUEST = 3
    DECLINE = 4
    ACK = 5
    NAK = 6
    RELEASE = 7
    INFORM = 8


class Option(enum.IntEnum):
    """The option codes this stack reads or writes (RFC 2132; 82 is RFC
    3046). Any other code 1..254 is carried as it comes."""

    PAD = 0
    SUBNET_MASK = 1
    ROUTER = 3
    DNS = 6
    HOSTNAME = 12
    DOMAIN = 15
    MTU = 26
    BROADCAST_ADDRESS = 28
    REQUESTED_IP = 50
    LEASE_TIME = 51
    OVERLOAD = 52
    MESSAGE_TYPE = 53
    SERVER_ID = 54
    PARAMETER_LIST = 55
    MESSAGE = 56
    MAX_MESSAGE_SIZE = 57
    RENEWAL_TIME = 58
    REBINDING_TIME = 59
    VENDOR_CLASS = 60
    CLIENT_ID = 61
    TFTP_SERVER = 66
    BOOTFILE = 67
    RELAY_AGENT = 82
    END = 255


_OVERLOAD = Option.OVERLOAD
_MESSAGE_TYPE = Option.MESSAGE_TYPE
_TYPES = {t.value: t for t in MessageType}


def _fmt_ip(addr: bytes) -> str:
    if len(addr) == 4:
        return str(ipaddress.IPv4Address(bytes(addr)))
    return bytes(addr).hex()


def _fmt_mac(mac: bytes) -> str:
    return bytes(mac).hex(":")


def _walk(data: bytes, i: int, end: int, found: dict[int, bytearray]) -> None:
    # Rule 4: one option area, joining instances into ``found`` (rule 6).
    while i < end:
        code = data[i]
        if code == 0:
            i += 1
            continue
        if code == 255:
            return
        if i + 1 >= end:
            raise RemoteProtocolError("truncated_option", f"option {code} has no length byte")
        j = i + 2 + data[i + 1]
        if j > end:
            raise RemoteProtocolError("truncated_option", f"option {code} runs past its area")
        value = data[i + 2 : j]
        if code in found:
            found[code] += value
        else:
            found[code] = bytearray(value)
        i = j


def _strip(field: bytes) -> bytes:
    return field.rstrip(b"\0")


def _check_address(name: str, value: bytes) -> None:
    if len(value) != 4:
        raise ValueError(f"{name} is a 4-byte IPv4 address, got {len(value)} bytes")


@attrs.frozen
class DhcpMessage:
    """One BOOTP/DHCP message.

    Attributes:
        op: :data:`BOOTREQUEST` (client to server) or :data:`BOOTREPLY`.
        xid: the transaction id the client chose, 32 bits.
        chaddr: the client hardware address, ``hlen`` bytes (6 for
            Ethernet); at most 16.
        htype: the hardware type (1: Ethernet, RFC 1700).
        hops: relay agents crossed so far.
        secs: seconds since the client began acquiring or renewing.
        flags: 16 bits; only :data:`FLAG_BROADCAST` means something.
        ciaddr: the client's address, when it has one it can answer ARP for
            (BOUND, RENEWING, REBINDING, INFORM).
        yiaddr: "your" address: the one the server offers or assigns.
        siaddr: the next server in the boot process (TFTP).
        giaddr: the relay agent's address, 0 when there is none.
        sname: the server host name, without trailing NULs; at most 64 bytes.
        file: the boot file name, without trailing NULs; at most 128 bytes.
        options: ``(code, value)`` pairs in the order they first appeared; a
            code appears once; never PAD, END or OVERLOAD (rule 5).
    """

    op: int
    xid: int
    chaddr: bytes = attrs.field(repr=_fmt_mac)
    htype: int = 1
    hops: int = 0
    secs: int = 0
    flags: int = attrs.field(default=0, repr=hex)
    ciaddr: bytes = attrs.field(default=bytes(4), repr=_fmt_ip)
    yiaddr: bytes = attrs.field(default=bytes(4), repr=_fmt_ip)
    siaddr: bytes = attrs.field(default=bytes(4), repr=_fmt_ip)
    giaddr: bytes = attrs.field(default=bytes(4), repr=_fmt_ip)
    sname: bytes = b""
    file: bytes = b""
    options: tuple[tuple[int, bytes], ...] = attrs.field(default=(), converter=tuple)

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview, *, require_cookie: bool = False) -> DhcpMessage:
        """Parse one message (a UDP payload).

        Args:
            data: the bytes, starting at ``op``.
            require_cookie: reject a message without the magic cookie
                (plain BOOTP) instead of returning it with no options.

        Raises:
            RemoteProtocolError: ``"short_message"``, ``"bad_op"``,
                ``"bad_hlen"``, ``"bad_cookie"`` (only with
                ``require_cookie``), ``"truncated_option"``,
                ``"bad_overload"`` or ``"bad_message_type"``.
        """
        if not isinstance(data, bytes):
            data = bytes(data)
        n = len(data)
        if n < FIXED_LEN:
            raise RemoteProtocolError("short_message", f"{n} bytes, need {FIXED_LEN}")
        (op, htype, hlen, hops, xid, secs, flags, ciaddr, yiaddr, siaddr, giaddr, chaddr, sname, file) = (
            _FIXED.unpack_from(data)
        )
        if op != BOOTREQUEST and op != BOOTREPLY:
            raise RemoteProtocolError("bad_op", f"op {op}")
        if hlen > 16:
            raise RemoteProtocolError("bad_hlen", f"hlen {hlen}")
        options: tuple[tuple[int, bytes], ...] = ()
        if data[FIXED_LEN:_OPTIONS_AT] == MAGIC_COOKIE:
            found: dict[int, bytearray] = {}
            _walk(data, _OPTIONS_AT, n, found)
            overload = found.pop(_OVERLOAD, None)
            if overload is not None:
                if len(overload) != 1 or not 1 <= overload[0] <= 3:
                    raise RemoteProtocolError("bad_overload", f"value {bytes(overload).hex()}")
                if overload[0] & 1:
                    _walk(data, _FILE.start, _FILE.stop, found)
                    file = b""
                if overload[0] & 2:
                    _walk(data, _SNAME.start, _SNAME.stop, found)
                    sname = b""
                found.pop(_OVERLOAD, None)
            mtype = found.get(_MESSAGE_TYPE)
            if mtype is not None and len(mtype) != 1:
                raise RemoteProtocolError("bad_message_type", f"{len(mtype)} bytes")
            options = tuple((code, bytes(value)) for code, value in found.items())
        elif require_cookie:
            raise RemoteProtocolError("bad_cookie", data[FIXED_LEN:_OPTIONS_AT].hex())
        return cls(
            op, xid, chaddr[:hlen], htype, hops, secs, flags, ciaddr, yiaddr, siaddr, giaddr,
            _strip(sname), _strip(file), options,
        )  # fmt: skip

    def emit(self, max_size: int | None = None) -> bytes:
        """The message's bytes.

        Args:
            max_size: the longest message the receiver accepts (its option
                57, at least 576 by RFC 2132; at least :data:`MIN_LEN`
                here). Options beyond it go into ``file`` and then
                ``sname`` (rule 5), if those are empty. ``None``: no limit.

        Raises:
            ValueError: a field is out of range or the wrong size, an option
                code is PAD, END or OVERLOAD or appears twice, or the
                options do not fit in ``max_size``.
        """
        for name in ("ciaddr", "yiaddr", "siaddr", "giaddr"):
            _check_address(name, getattr(self, name))
        if len(self.chaddr) > 16 or len(self.sname) > 64 or len(self.file) > 128:
            raise ValueError("chaddr, sname and file hold at most 16, 64 and 128 bytes")
        instances = []
        seen = set()
        for code, value in self.options:
            if not 0 < code < 255 or code == _OVERLOAD or code in seen:
                raise ValueError(f"option code {code} cannot be emitted (PAD, END, OVERLOAD or a repeat)")
            seen.add(code)
            instances.append((code, bytes(value)))
        body = bytearray()
        for code, value in instances:
            body += bytes((code, min(len(value), 255))) + value[:255]
            for k in range(255, len(value), 255):  # RFC 3396: split, in order
                chunk = value[k : k + 255]
                body += bytes((code, len(chunk))) + chunk
        sname, file = self.sname, self.file
        if max_size is not None:
            if max_size < MIN_LEN:
                raise ValueError(f"max_size must be at least {MIN_LEN}, got {max_size}")
            if _OPTIONS_AT + len(body) + 1 > max_size:
                body, file, sname = self._overload(instances, max_size)
        try:
            fixed = _FIXED.pack(
                self.op, self.htype, len(self.chaddr), self.hops, self.xid, self.secs, self.flags,
                self.ciaddr, self.yiaddr, self.siaddr, self.giaddr, self.chaddr, sname, file,
            )  # fmt: skip
        except struct.error as exc:
            raise ValueError(f"a field is out of range: {exc}") from None
        out = fixed + MAGIC_COOKIE + body + b"\xff"
        if len(out) < MIN_LEN:
            out += bytes(MIN_LEN - len(out))
        return out

    def _overload(self, instances: list[tuple[int, bytes]], max_size: int) -> tuple[bytearray, bytes, bytes]:
        # Rule 5 on the way out: fill the options field (keeping 3 bytes for
        # option 52 and 1 for END), then file, then sname (each keeping 1 for
        # END). An option of at most 255 bytes moves whole to the next area;
        # a longer one, already split by RFC 3396, is cut to fill each area.
        rooms = [max_size - _OPTIONS_AT - 4]
        names = ["options"]
        if not self.file:
            rooms.append(127)
            names.append("file")
        if not self.sname:
            rooms.append(63)
            names.append("sname")
        areas = [bytearray() for _ in rooms]
        a = 0
        for code, value in instances:
            splittable = len(value) > 255
            rest = value
            first = True
            while first or rest:
                first = False
                need = 2 + (min(len(rest), 1) if splittable else len(rest))
                while a < len(areas) and rooms[a] - len(areas[a]) < need:
                    a += 1
                if a == len(areas):
                    raise ValueError(f"the options do not fit in {max_size} bytes, even overloaded")
                take = min(len(rest), 255, rooms[a] - len(areas[a]) - 2)
                areas[a] += bytes((code, take)) + rest[:take]
                rest = rest[take:]
        used = dict(zip(names, areas))
        overload = (1 if used.get("file") else 0) | (2 if used.get("sname") else 0)
        body = bytes((_OVERLOAD, 1, overload)) + used["options"]
        file = used["file"] + b"\xff" if used.get("file") else self.file
        sname = used["sname"] + b"\xff" if used.get("sname") else self.sname
        return bytearray(body), bytes(file), bytes(sname)

    def option(self, code: int) -> bytes | None:
        """The value of option ``code``, or ``None`` if absent."""
        for c, value in self.options:
            if c == code:
                return value
        return None

    @property
    def message_type(self) -> MessageType | None:
        """The DHCP message type (option 53); ``None`` if absent or unknown
        (a plain BOOTP message has none)."""
        value = self.option(_MESSAGE_TYPE)
        if value is None or len(value) != 1:
            return None
        return _TYPES.get(value[0])

    @property
    def broadcast(self) -> bool:
        """The client asked for broadcast replies (it cannot receive unicast
        before it has an address, RFC 2131 section 4.1)."""
        return bool(self.flags & FLAG_BROADCAST)


#### Typed option values (RFC 2132 section 2: lengths in bytes, big-endian)


def encode_addresses(addrs: Iterable[bytes]) -> bytes:
    """A list of IPv4 addresses as one option value.

    Raises:
        ValueError: an address is not 4 bytes, or there is none.
    """
    out = bytearray()
    for addr in addrs:
        _check_address("an address", addr)
        out += addr
    if not out:
        raise ValueError("an address list option holds at least one address")
    return bytes(out)


def decode_addresses(value: bytes) -> list[bytes]:
    """The IPv4 addresses in an option value.

    Raises:
        RemoteProtocolError: ``"bad_option"``: the length is 0 or not a
            multiple of 4.
    """
    n = len(value)
    if n == 0 or n % 4:
        raise RemoteProtocolError("bad_option", f"an address list of {n} bytes")
    return [bytes(value[i : i + 4]) for i in range(0, n, 4)]


def encode_u32(n: int) -> bytes:
    """A 32-bit unsigned option value (lease and renewal times).

    Raises:
        ValueError: ``n`` is not in 0..2**32-1.
    """
    if not 0 <= n <= 0xFFFFFFFF:
        raise ValueError(f"a 32-bit option holds 0..4294967295, got {n}")
    return n.to_bytes(4, "big")


def decode_u32(value: bytes) -> int:
    """Raises: RemoteProtocolError: ``"bad_option"``: not 4 bytes."""
    if len(value) != 4:
        raise RemoteProtocolError("bad_option", f"a 32-bit value of {len(value)} bytes")
    return int.from_bytes(value, "big")


def encode_u16(n: int) -> bytes:
    """A 16-bit unsigned option value (MTU, maximum message size).

    Raises:
        ValueError: ``n`` is not in 0..65535.
    """
    if not 0 <= n <= 0xFFFF:
        raise ValueError(f"a 16-bit option holds 0..65535, got {n}")
    return n.to_bytes(2, "big")


def decode_u16(value: bytes) -> int:
    """Raises: RemoteProtocolError: ``"bad_option"``: not 2 bytes."""
    if len(value) != 2:
        raise RemoteProtocolError("bad_option", f"a 16-bit value of {len(value)} bytes")
    return int.from_bytes(value, "big")


def encode_text(s: str) -> bytes:
    """A text option value (host name, domain, message): ASCII, or latin-1
    for what is not (so :func:`decode_text` gives ``s`` back).

    Raises:
        ValueError: ``s`` has characters beyond latin-1.
    """
    try:
        return s.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"{s!r} has characters beyond latin-1") from None


def decode_text(value: bytes) -> str:
    """A text option value: RFC 2132's NVT ASCII, trailing NULs stripped
    (some senders count a C string's terminator). Bytes above 127 read as
    latin-1, so this never raises."""
    return bytes(value).rstrip(b"\0").decode("latin-1")


def addresses(msg: DhcpMessage, code: int) -> list[bytes] | None:
    """:func:`decode_addresses` of option ``code`` of ``msg``; ``None`` if absent."""
    value = msg.option(code)
    return None if value is None else decode_addresses(value)


def u32(msg: DhcpMessage, code: int) -> int | None:
    """:func:`decode_u32` of option ``code`` of ``msg``; ``None`` if absent."""
    value = msg.option(code)
    return None if value is None else decode_u32(value)


def text(msg: DhcpMessage, code: int) -> str | None:
    """:func:`decode_text` of option ``code`` of ``msg``; ``None`` if absent."""
    value = msg.option(code)
    return None if value is None else decode_text(value)
