"""BOOTP/DHCP messages: literals, checks, RFC 3396 long options, overload,
typed option values, round trips, fuzz, and scapy's BOOTP/DHCP layers as an
independent oracle both ways."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.all import raw
from scapy.layers.dhcp import BOOTP, DHCP

from trionet.protocols.dhcp import (
    BOOTREPLY,
    BOOTREQUEST,
    FLAG_BROADCAST,
    MAGIC_COOKIE,
    MIN_LEN,
    DhcpMessage,
    MessageType,
    Option,
    addresses,
    decode_addresses,
    decode_text,
    decode_u16,
    decode_u32,
    encode_addresses,
    encode_text,
    encode_u16,
    encode_u32,
    text,
    u32,
)
from trionet.protocols.errors import RemoteProtocolError

from protocol_checks import parse_or_reject

MAC = bytes.fromhex("020000000001")


def _ip(s: str) -> bytes:
    return ipaddress.IPv4Address(s).packed


def _reason(data: bytes, **kwargs: Any) -> str:
    with pytest.raises(RemoteProtocolError) as info:
        DhcpMessage.parse(data, **kwargs)
    return info.value.reason


def _fixed(op: int = 1, hlen: int = 6, sname: bytes = b"", file: bytes = b"") -> bytes:
    """A fixed part by hand: xid 0x01020304, secs 5, broadcast, ciaddr 0,
    yiaddr 10.0.0.5, siaddr 10.0.0.1, giaddr 0, chaddr MAC."""
    return (
        bytes((op, 1, hlen, 0)) + bytes.fromhex("01020304" "0005" "8000")
        + bytes(4) + _ip("10.0.0.5") + _ip("10.0.0.1") + bytes(4)
        + MAC.ljust(16, b"\0") + sname.ljust(64, b"\0") + file.ljust(128, b"\0")
    )  # fmt: skip


#### Byte literals

DISCOVER_OPTIONS = (
    b"\x35\x01\x01"  # message type DISCOVER
    b"\x37\x03\x01\x03\x06"  # parameter request list: mask, router, DNS
    b"\x00\x00"  # PAD
    b"\x0c\x04host"  # host name
    b"\xff"
)
DISCOVER = _fixed() + MAGIC_COOKIE + DISCOVER_OPTIONS
DISCOVER = DISCOVER.ljust(MIN_LEN, b"\0")
DISCOVER_MSG = DhcpMessage(
    op=BOOTREQUEST,
    xid=0x01020304,
    chaddr=MAC,
    secs=5,
    flags=FLAG_BROADCAST,
    yiaddr=_ip("10.0.0.5"),
    siaddr=_ip("10.0.0.1"),
    options=((53, b"\x01"), (55, b"\x01\x03\x06"), (12, b"host")),
)


def test_deconstruct_a_message() -> None:
    msg = DhcpMessage.parse(DISCOVER)
    assert msg == DISCOVER_MSG
    assert msg.message_type is MessageType.DISCOVER
    assert msg.broadcast
    assert msg.option(Option.HOSTNAME) == b"host"
    assert msg.option(Option.ROUTER) is None


def test_construct_a_message() -> None:
    # Ours has no PADs, so it is the literal without them, padded back to 300.
    expected = (_fixed() + MAGIC_COOKIE + DISCOVER_OPTIONS.replace(b"\x00\x00\x0c", b"\x0c")).ljust(300, b"\0")
    assert DISCOVER_MSG.emit() == expected
    assert len(expected) == MIN_LEN


def test_parse_accepts_memoryview_and_bytearray_and_missing_end() -> None:
    assert DhcpMessage.parse(memoryview(DISCOVER)) == DISCOVER_MSG
    assert DhcpMessage.parse(bytearray(DISCOVER)) == DISCOVER_MSG
    no_end = _fixed() + MAGIC_COOKIE + DISCOVER_OPTIONS[:-1]
    assert DhcpMessage.parse(no_end) == DISCOVER_MSG


def test_chaddr_is_hlen_bytes_and_names_lose_trailing_nuls() -> None:
    msg = DhcpMessage.parse(_fixed(hlen=3, sname=b"srv", file=b"boot/pxe") + MAGIC_COOKIE + b"\xff")
    assert msg.chaddr == MAC[:3]
    assert msg.sname == b"srv" and msg.file == b"boot/pxe"
    assert DhcpMessage.parse(_fixed(hlen=16) + MAGIC_COOKIE).chaddr == MAC.ljust(16, b"\0")
    assert DhcpMessage.parse(_fixed(hlen=0)).chaddr == b""


def test_a_message_without_the_cookie_is_plain_bootp() -> None:
    plain = _fixed(op=BOOTREPLY) + bytes(64)
    msg = DhcpMessage.parse(plain)
    assert msg.op == BOOTREPLY and msg.options == () and msg.message_type is None
    assert DhcpMessage.parse(_fixed()).options == ()  # no vendor area at all
    assert _reason(plain, require_cookie=True) == "bad_cookie"
    assert DhcpMessage.parse(DISCOVER, require_cookie=True) == DISCOVER_MSG


#### What parse rejects


def test_rejects_short_messages() -> None:
    assert _reason(DISCOVER[:235]) == "short_message"
    assert _reason(b"") == "short_message"
    DhcpMessage.parse(DISCOVER[:236])


def test_rejects_bad_op_and_hlen() -> None:
    assert _reason(_fixed(op=0)) == "bad_op"
    assert _reason(_fixed(op=3)) == "bad_op"
    assert _reason(_fixed(hlen=17)) == "bad_hlen"


@pytest.mark.parametrize(
    "options",
    [
        b"\x0c",  # no length byte
        b"\x0c\x05abc",  # value past the end
        b"\x35\x01\x01\x0c\x10host",
    ],
)
def test_rejects_truncated_options(options: bytes) -> None:
    assert _reason(_fixed() + MAGIC_COOKIE + options) == "truncated_option"


@pytest.mark.parametrize("value", [b"", b"\x00", b"\x04", b"\x01\x01", b"\xff"])
def test_rejects_bad_overload(value: bytes) -> None:
    data = _fixed() + MAGIC_COOKIE + bytes((52, len(value))) + value + b"\xff"
    assert _reason(data) == "bad_overload"


def test_rejects_a_message_type_that_is_not_one_byte() -> None:
    assert _reason(_fixed() + MAGIC_COOKIE + b"\x35\x02\x01\x01\xff") == "bad_message_type"
    assert _reason(_fixed() + MAGIC_COOKIE + b"\x35\x00\xff") == "bad_message_type"
    # Two one-byte instances join into two bytes (RFC 3396), also rejected.
    assert _reason(_fixed() + MAGIC_COOKIE + b"\x35\x01\x01\x35\x01\x03\xff") == "bad_message_type"


def test_an_unknown_message_type_reads_as_none() -> None:
    msg = DhcpMessage.parse(_fixed() + MAGIC_COOKIE + b"\x35\x01\x09\xff")
    assert msg.option(53) == b"\x09" and msg.message_type is None
    assert DhcpMessage(1, 0, MAC).message_type is None


def test_options_after_end_are_ignored() -> None:
    msg = DhcpMessage.parse(_fixed() + MAGIC_COOKIE + b"\x35\x01\x03\xff\x0c\x01x")
    assert msg.options == ((53, b"\x03"),)


#### RFC 3396 long options and RFC 2132 option overload


def test_split_instances_are_joined_in_order() -> None:
    data = _fixed() + MAGIC_COOKIE + b"\x0c\x02ab\x35\x01\x05\x0c\x03cde\xff"
    assert DhcpMessage.parse(data).options == ((12, b"abcde"), (53, b"\x05"))


def test_a_long_option_is_emitted_as_several_instances() -> None:
    value = bytes(range(256)) * 2 + b"xyz"  # 515 bytes: 255 + 255 + 5
    msg = DhcpMessage(BOOTREPLY, 1, MAC, options=((43, value),))
    data = msg.emit()
    expected = b"\x2b\xff" + value[:255] + b"\x2b\xff" + value[255:510] + b"\x2b\x05" + value[510:] + b"\xff"
    assert data[240:] == expected
    assert DhcpMessage.parse(data) == msg


def test_empty_options_are_kept() -> None:
    msg = DhcpMessage(BOOTREQUEST, 1, MAC, options=((80, b""), (53, b"\x01")))
    assert msg.emit()[240:245] == b"\x50\x00\x35\x01\x01"
    assert DhcpMessage.parse(msg.emit()) == msg


def test_overloaded_file_and_sname_are_read_after_the_options_field() -> None:
    # Option 12 in three pieces: options field, file, sname (RFC 3396 section 7).
    file = b"\x0c\x02cd\x03\x04" + _ip("10.0.0.1") + b"\x34\x01\x02\xff"  # a 52 in file is ignored
    sname = b"\x00\x0c\x01e\xff"
    data = _fixed(sname=sname, file=file) + MAGIC_COOKIE + b"\x35\x01\x02\x34\x01\x03\x0c\x02ab\xff"
    msg = DhcpMessage.parse(data)
    assert msg.options == ((53, b"\x02"), (12, b"abcde"), (3, _ip("10.0.0.1")))
    assert msg.sname == b"" and msg.file == b""


def test_overload_of_file_only_leaves_sname_a_name() -> None:
    data = _fixed(sname=b"server", file=b"\x0c\x01x\xff") + MAGIC_COOKIE + b"\x34\x01\x01\xff"
    msg = DhcpMessage.parse(data)
    assert msg.options == ((12, b"x"),) and msg.sname == b"server" and msg.file == b""


def test_a_truncated_option_in_an_overloaded_field_is_rejected() -> None:
    data = _fixed(file=b"\x00" * 126 + b"\x0c\x05") + MAGIC_COOKIE + b"\x34\x01\x01\xff"
    assert _reason(data) == "truncated_option"


def test_emit_overloads_when_the_options_exceed_max_size() -> None:
    options = ((53, b"\x05"), (12, b"h" * 200), (15, b"d" * 120), (43, b"v" * 600))
    msg = DhcpMessage(BOOTREPLY, 9, MAC, options=options)
    data = msg.emit(max_size=1000)
    assert len(data) <= 1000
    assert data[240:243] == b"\x34\x01\x03"  # overload: file and sname
    assert DhcpMessage.parse(data) == msg
    # With a large enough max_size, nothing is overloaded.
    assert msg.emit(max_size=2000) == msg.emit()


def test_emit_overloads_only_empty_fields() -> None:
    msg = DhcpMessage(BOOTREPLY, 9, MAC, file=b"pxelinux.0", options=((12, b"h" * 200), (15, b"d" * 50)))
    data = msg.emit(max_size=MIN_LEN + 150)
    assert data[240:243] == b"\x34\x01\x02"  # sname only
    assert DhcpMessage.parse(data) == msg
    with pytest.raises(ValueError, match="do not fit"):
        DhcpMessage(BOOTREPLY, 9, MAC, sname=b"s", file=b"f", options=((12, b"h" * 200),)).emit(max_size=400)


def test_emit_rejects_bad_fields() -> None:
    bad = [
        DhcpMessage(1, 0, bytes(17)),
        DhcpMessage(1, 0, MAC, ciaddr=b"\x01"),
        DhcpMessage(1, 0, MAC, sname=b"s" * 65),
        DhcpMessage(1, 2**32, MAC),
        DhcpMessage(1, 0, MAC, flags=0x10000),
        DhcpMessage(1, 0, MAC, options=((0, b""),)),
        DhcpMessage(1, 0, MAC, options=((255, b""),)),
        DhcpMessage(1, 0, MAC, options=((52, b"\x01"),)),
        DhcpMessage(1, 0, MAC, options=((12, b"a"), (12, b"b"))),
    ]
    for msg in bad:
        with pytest.raises(ValueError):
            msg.emit()
    with pytest.raises(ValueError, match="max_size"):
        DISCOVER_MSG.emit(max_size=299)


#### Typed option values


def test_typed_values_round_trip() -> None:
    addrs = [_ip("10.0.0.1"), _ip("8.8.8.8")]
    assert decode_addresses(encode_addresses(addrs)) == addrs
    assert decode_u32(encode_u32(0xFFFFFFFF)) == 0xFFFFFFFF
    assert decode_u16(encode_u16(1500)) == 1500
    assert encode_u32(3600) == b"\x00\x00\x0e\x10"
    assert decode_text(encode_text("host-1")) == "host-1"


@pytest.mark.parametrize(
    ("decode", "value"),
    [
        (decode_addresses, b""),
        (decode_addresses, b"\x01\x02\x03"),
        (decode_addresses, bytes(9)),
        (decode_u32, b"\x01\x02\x03"),
        (decode_u32, bytes(5)),
        (decode_u16, b"\x01"),
    ],
)
def test_typed_decoders_reject_wrong_lengths(decode: Any, value: bytes) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        decode(value)
    assert info.value.reason == "bad_option"


def test_typed_encoders_reject_bad_values() -> None:
    for call in (
        lambda: encode_addresses([]),
        lambda: encode_addresses([b"\x01\x02"]),
        lambda: encode_u32(-1),
        lambda: encode_u32(2**32),
        lambda: encode_u16(65536),
        lambda: encode_text("\u2603"),
    ):
        with pytest.raises(ValueError):
            call()


def test_decode_text_strips_nuls_and_never_raises() -> None:
    assert decode_text(b"example.org\0\0") == "example.org"
    assert decode_text(b"caf\xe9") == "caf\xe9"
    assert decode_text(b"") == ""


def test_message_helpers() -> None:
    msg = DhcpMessage(
        2, 1, MAC, options=((3, encode_addresses([_ip("10.0.0.1")])), (51, encode_u32(60)), (12, b"h\0"))
    )
    assert addresses(msg, Option.ROUTER) == [_ip("10.0.0.1")]
    assert u32(msg, Option.LEASE_TIME) == 60
    assert text(msg, Option.HOSTNAME) == "h"
    assert addresses(msg, Option.DNS) is None and u32(msg, 58) is None and text(msg, 15) is None
    with pytest.raises(RemoteProtocolError):
        u32(DhcpMessage(2, 1, MAC, options=((51, b"\x01"),)), Option.LEASE_TIME)


#### Round trips and fuzz

addr_st = st.binary(min_size=4, max_size=4)
name_st = st.binary(max_size=64).map(lambda b: b.rstrip(b"\0"))
file_st = st.binary(max_size=128).map(lambda b: b.rstrip(b"\0"))
option_codes = st.integers(1, 254).filter(lambda c: c not in (52, 53))
options_st = st.dictionaries(
    option_codes,
    st.one_of(st.binary(max_size=12), st.binary(min_size=250, max_size=700)),
    max_size=6,
).map(lambda d: tuple(d.items()))
messages = st.builds(
    DhcpMessage,
    op=st.sampled_from([BOOTREQUEST, BOOTREPLY]),
    xid=st.integers(0, 2**32 - 1),
    chaddr=st.binary(max_size=16),
    htype=st.integers(0, 255),
    hops=st.integers(0, 255),
    secs=st.integers(0, 0xFFFF),
    flags=st.integers(0, 0xFFFF),
    ciaddr=addr_st,
    yiaddr=addr_st,
    siaddr=addr_st,
    giaddr=addr_st,
    sname=name_st,
    file=file_st,
    options=st.tuples(st.integers(1, 255).map(lambda t: ((53, bytes((t,))),)), options_st).map(
        lambda pair: pair[0] + pair[1]
    ),
)


@settings(max_examples=300, deadline=None)
@given(messages)
def test_round_trip(msg: DhcpMessage) -> None:
    data = msg.emit()
    assert len(data) >= MIN_LEN
    parsed = DhcpMessage.parse(data)
    assert parsed == msg
    assert parsed.emit() == data


@settings(max_examples=200, deadline=None)
@given(messages, st.integers(MIN_LEN, 1500))
def test_round_trip_with_max_size(msg: DhcpMessage, max_size: int) -> None:
    try:
        data = msg.emit(max_size=max_size)
    except ValueError:
        return  # does not fit, even overloaded
    assert len(data) <= max(max_size, MIN_LEN)
    assert DhcpMessage.parse(data) == msg


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=400), st.booleans())
def test_parse_of_arbitrary_bytes_only_rejects(data: bytes, cookie: bool) -> None:
    parse_or_reject(DhcpMessage.parse, data)
    if cookie:  # reach the option walk, not just the length check
        parse_or_reject(DhcpMessage.parse, _fixed() + MAGIC_COOKIE + data)
        parse_or_reject(DhcpMessage.parse, _fixed(sname=data[:64], file=data[64:192]) + MAGIC_COOKIE + b"\x34\x01\x03")


@settings(max_examples=300, deadline=None)
@given(messages, st.data())
def test_parse_of_damaged_messages_only_rejects(msg: DhcpMessage, data: st.DataObject) -> None:
    wire = bytearray(msg.emit())
    for _ in range(data.draw(st.integers(1, 6))):
        i = data.draw(st.integers(0, len(wire) - 1))
        wire[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(wire)))
    parse_or_reject(DhcpMessage.parse, wire[:cut])
    parse_or_reject(DhcpMessage.parse, wire)
    try:
        m = DhcpMessage.parse(wire)
    except RemoteProtocolError:
        return
    m.message_type  # noqa: B018 - must not raise either
    DhcpMessage.parse(m.emit())  # whatever parses emits and parses again


#### scapy's BOOTP/DHCP layers as the oracle


def _s(addr: bytes) -> str:
    return str(ipaddress.IPv4Address(addr))


ascii_st = st.text("abcdefghijklmnopqrstuvwxyz0123456789-.", min_size=1, max_size=30).map(str.encode)
addr_list_st = st.lists(addr_st, min_size=1, max_size=3)

# scapy name -> (code, strategy, our encoding, what scapy decodes to after the name)
TYPED: dict[str, tuple[int, Any, Any, Any]] = {
    "message-type": (53, st.integers(1, 8), lambda v: bytes((v,)), lambda v: (v,)),
    "server_id": (54, addr_st, lambda v: v, lambda v: (_s(v),)),
    "lease_time": (51, st.integers(0, 2**32 - 1), encode_u32, lambda v: (v,)),
    "renewal_time": (58, st.integers(0, 2**32 - 1), encode_u32, lambda v: (v,)),
    "rebinding_time": (59, st.integers(0, 2**32 - 1), encode_u32, lambda v: (v,)),
    "router": (3, addr_list_st, encode_addresses, lambda v: tuple(map(_s, v))),
    "name_server": (6, addr_list_st, encode_addresses, lambda v: tuple(map(_s, v))),
    "subnet_mask": (1, addr_st, lambda v: v, lambda v: (_s(v),)),
    "requested_addr": (50, addr_st, lambda v: v, lambda v: (_s(v),)),
    "domain": (15, ascii_st, lambda v: v, lambda v: (v,)),
    "hostname": (12, ascii_st, lambda v: v, lambda v: (v,)),
    "client_id": (61, st.binary(min_size=2, max_size=20), lambda v: v, lambda v: (v,)),
    "vendor_class_id": (60, ascii_st, lambda v: v, lambda v: (v,)),
    "param_req_list": (55, st.lists(st.integers(1, 254), min_size=1, max_size=10), bytes, lambda v: (list(v),)),
    "interface-mtu": (26, st.integers(68, 0xFFFF), encode_u16, lambda v: (v,)),
}

typed_options = st.lists(st.sampled_from(sorted(TYPED)), max_size=8, unique=True).flatmap(
    lambda names: st.tuples(*(st.tuples(st.just(n), TYPED[n][1]) for n in names))
)


def _scapy_options(opts: tuple[tuple[str, Any], ...]) -> list[Any]:
    return [(name, *TYPED[name][3](v)) for name, v in opts]


def _our_options(opts: tuple[tuple[str, Any], ...]) -> tuple[tuple[int, bytes], ...]:
    return tuple((TYPED[name][0], TYPED[name][2](v)) for name, v in opts)


header_st = st.fixed_dictionaries(
    {
        "op": st.sampled_from([1, 2]),
        "xid": st.integers(0, 2**32 - 1),
        "chaddr": st.binary(min_size=6, max_size=6),
        "secs": st.integers(0, 0xFFFF),
        "flags": st.sampled_from([0, FLAG_BROADCAST]),
        "ciaddr": addr_st,
        "yiaddr": addr_st,
        "siaddr": addr_st,
        "giaddr": addr_st,
        "hops": st.integers(0, 16),
        "sname": st.text("abc.", max_size=20).map(str.encode),
        "file": st.text("abc/.", max_size=40).map(str.encode),
    }
)


def _scapy_bootp(h: dict[str, Any]) -> Any:
    fields = dict(h)
    for name in ("ciaddr", "yiaddr", "siaddr", "giaddr"):
        fields[name] = _s(h[name])
    return BOOTP(**fields)


@settings(max_examples=150, deadline=None)
@given(header_st, typed_options)
def test_scapy_built_messages_parse_to_the_same_fields(h: dict[str, Any], opts: Any) -> None:
    data = raw(_scapy_bootp(h) / DHCP(options=[*_scapy_options(opts), "end"]))
    assert DhcpMessage.parse(data) == DhcpMessage(**h, options=_our_options(opts))


@settings(max_examples=150, deadline=None)
@given(header_st, typed_options)
def test_our_messages_decode_with_scapy_to_the_same_fields(h: dict[str, Any], opts: Any) -> None:
    data = DhcpMessage(**h, options=_our_options(opts)).emit()
    pkt = BOOTP(data)
    expected = _scapy_bootp(h)
    for name in ("op", "xid", "secs", "hops", "ciaddr", "yiaddr", "siaddr", "giaddr"):
        assert getattr(pkt, name) == getattr(expected, name), name
    assert int(pkt.flags) == h["flags"]
    assert pkt.hlen == 6 and pkt.chaddr[:6] == h["chaddr"]
    assert pkt.sname.rstrip(b"\0") == h["sname"] and pkt.file.rstrip(b"\0") == h["file"]
    decoded = [o for o in pkt[DHCP].options if o not in ("end", "pad")]
    assert decoded == _scapy_options(opts)


def test_a_scapy_offer_reads_with_the_helpers() -> None:
    pkt = BOOTP(op=2, xid=7, chaddr=MAC, yiaddr="10.0.0.5") / DHCP(
        options=[
            ("message-type", "offer"),
            ("server_id", "10.0.0.1"),
            ("lease_time", 3600),
            ("router", "10.0.0.1"),
            ("name_server", "8.8.8.8", "1.1.1.1"),
            ("subnet_mask", "255.255.255.0"),
            ("domain", b"example.org"),
            "end",
        ]
    )
    msg = DhcpMessage.parse(raw(pkt))
    assert msg.message_type is MessageType.OFFER
    assert msg.chaddr == MAC  # scapy pads chaddr to 16 bytes; parse cuts it at hlen
    assert addresses(msg, Option.DNS) == [_ip("8.8.8.8"), _ip("1.1.1.1")]
    assert u32(msg, Option.LEASE_TIME) == 3600
    assert text(msg, Option.DOMAIN) == "example.org"
    assert msg.option(Option.SUBNET_MASK) == _ip("255.255.255.0")
