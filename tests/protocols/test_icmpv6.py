"""ICMPv6 messages: literals, round trips, scapy as an oracle, error rules, rate limit, fuzz."""

from __future__ import annotations


import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.all import UDP, Raw, raw
from scapy.layers.inet6 import (
    HBHOptUnknown,
    ICMPv6DestUnreach,
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6ND_Redirect,
    ICMPv6PacketTooBig,
    ICMPv6ParamProblem,
    ICMPv6TimeExceeded,
    IPerror6,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)

from trionet.protocols.errors import RemoteProtocolError
from trionet.protocols.icmpv6 import (
    DST_UNREACH,
    ECHO_REPLY,
    ECHO_REQUEST,
    ERROR_TYPES,
    IPPROTO_ICMPV6,
    PACKET_TOO_BIG,
    PARAM_PROB,
    PARAMPROB_HEADER,
    PARAMPROB_OPTION,
    TIME_EXCEEDED,
    TIMXCEED_HOPLIMIT,
    UNREACH_NOPORT,
    Icmp6Message,
    Icmp6RateLimiter,
    echo6,
    error6,
    error6_allowed,
)

from icmp6_scapy import a6, n6
from protocol_checks import parse_or_reject


LL1 = a6("fe80::1")
LL2 = a6("fe80::2")
G1 = a6("2001:db8::1")
G2 = a6("2001:db8::2")

u8 = st.integers(0, 255)
u16 = st.integers(0, 0xFFFF)
addrs = st.binary(min_size=16, max_size=16)
messages = st.builds(Icmp6Message, u8, u8, st.integers(0, 0xFFFFFFFF))
payloads = st.binary(max_size=100)


def scapy_decode(data: bytes, src: bytes, dst: bytes) -> IPv6:
    """Our message behind a scapy IPv6 header, decoded by scapy; asserts that
    scapy computes the same checksum when it rebuilds the message."""
    pkt = IPv6(raw(IPv6(src=n6(src), dst=n6(dst), nh=IPPROTO_ICMPV6) / Raw(data)))
    icmp = pkt[IPv6].payload
    assert icmp.cksum == int.from_bytes(data[2:4], "big")
    rebuilt = pkt.copy()
    del rebuilt[IPv6].payload.cksum
    assert raw(rebuilt)[40:] == data
    return pkt


def scapy_build(layer: object, src: bytes, dst: bytes) -> bytes:
    """The ICMPv6 message scapy builds (checksum included) for ``layer``."""
    return raw(IPv6(src=n6(src), dst=n6(dst)) / layer)[40:]


#### Byte literals

# An echo request fe80::1 -> fe80::2, ident 0x1234, seq 1, payload "abcd".
# By hand: fe80 + 0001 + fe80 + 0002 (addresses) + 000c (length) + 003a (next
# header) + 8000 + 1234 + 0001 + 6162 + 6364 = 0x35444, folded 0x5447,
# complemented 0xabb8.
ECHO = bytes.fromhex("8000abb812340001" "61626364")


def test_deconstruct() -> None:
    msg, body = Icmp6Message.parse(ECHO, LL1, LL2)
    assert msg == Icmp6Message(ECHO_REQUEST, 0, 0x12340001)
    assert bytes(body) == b"abcd"


def test_construct() -> None:
    assert echo6(0x1234, 1, b"abcd", LL1, LL2) == ECHO
    assert Icmp6Message(ECHO_REQUEST, 0, 0x12340001).emit(LL1, LL2, b"abcd") == ECHO
    assert echo6(0x1234, 1, b"abcd", LL1, LL2, reply=True)[0] == ECHO_REPLY


@pytest.mark.parametrize(
    ("data", "src", "dst", "reason"),
    [
        (b"", LL1, LL2, "short_header"),
        (ECHO[:7], LL1, LL2, "short_header"),
        (ECHO[:-1], LL1, LL2, "bad_checksum"),
        (ECHO[:2] + b"\xab\xb9" + ECHO[4:], LL1, LL2, "bad_checksum"),
        # The pseudo-header is covered: other addresses, or swapped words.
        (ECHO, LL1, G2, "bad_checksum"),
        (ECHO, a6("fe80::100"), LL2, "bad_checksum"),
    ],
)
def test_rejects(data: bytes, src: bytes, dst: bytes, reason: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        Icmp6Message.parse(data, src, dst)
    assert info.value.reason == reason


def test_the_pseudo_header_sum_is_order_independent() -> None:
    # Swapping source and destination keeps the sum, as the IPv4 pseudo-header
    # shape does for IPv6 (see _pseudo_sum): a checksum cannot tell them apart.
    Icmp6Message.parse(ECHO, LL2, LL1)


def test_emit_refuses_bad_fields() -> None:
    for msg in (Icmp6Message(256, 0), Icmp6Message(0, -1), Icmp6Message(0, 0, 1 << 32)):
        with pytest.raises(ValueError):
            msg.emit(LL1, LL2)
    with pytest.raises(ValueError, match="16-byte"):
        Icmp6Message(ECHO_REQUEST, 0).emit(bytes(4), LL2)
    with pytest.raises(ValueError, match="65535"):
        Icmp6Message(ECHO_REQUEST, 0).emit(LL1, LL2, bytes(65528))
    with pytest.raises(ValueError):
        echo6(0x10000, 0, b"", LL1, LL2)


@pytest.mark.parametrize("size", [0, 1, 7, 1231, 16383, 16384, 40001, 65527])
def test_odd_and_long_bodies(size: int) -> None:
    body = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    data = Icmp6Message(ECHO_REPLY, 0, 5).emit(G1, G2, body)
    msg, view = Icmp6Message.parse(data, G1, G2)
    assert (msg, bytes(view)) == (Icmp6Message(ECHO_REPLY, 0, 5), body)
    broken = bytearray(data)
    broken[-1] ^= 1 if size else 0
    broken[0] ^= 0 if size else 1
    with pytest.raises(RemoteProtocolError, match="bad_checksum"):
        Icmp6Message.parse(broken, G1, G2)


#### error6()

ORIGINAL = raw(IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=1234, dport=53) / (b"q" * 30))


def test_error_quotes_the_whole_of_a_small_packet() -> None:
    data = error6(DST_UNREACH, UNREACH_NOPORT, ORIGINAL, G2, G1)
    msg, body = Icmp6Message.parse(data, G2, G1)
    assert msg == Icmp6Message(DST_UNREACH, UNREACH_NOPORT, 0)
    assert bytes(body) == ORIGINAL


def test_error_fits_the_minimum_mtu() -> None:
    big = raw(IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP() / bytes(2000 - 48))
    assert len(big) == 2000
    data = error6(PACKET_TOO_BIG, 0, big, G2, G1, data=1400)
    assert 40 + len(data) == 1280
    msg, body = Icmp6Message.parse(data, G2, G1)
    assert msg.data == 1400
    assert bytes(body) == big[:1232]
    # Exactly at the bound, and one under: nothing is cut that fits.
    assert 40 + len(error6(TIME_EXCEEDED, 0, big[:1232], G2, G1)) == 1280
    assert 40 + len(error6(TIME_EXCEEDED, 0, big[:1231], G2, G1)) == 1279


def test_error_refuses_informational_types() -> None:
    with pytest.raises(ValueError):
        error6(ECHO_REQUEST, 0, ORIGINAL, G2, G1)
    with pytest.raises(ValueError):
        error6(PARAM_PROB, 0, ORIGINAL, G2, G1, data=1 << 32)


@pytest.mark.parametrize(
    ("type_", "code", "data", "cls", "field"),
    [
        (DST_UNREACH, UNREACH_NOPORT, 0, ICMPv6DestUnreach, None),
        (PACKET_TOO_BIG, 0, 1280, ICMPv6PacketTooBig, "mtu"),
        (TIME_EXCEEDED, TIMXCEED_HOPLIMIT, 0, ICMPv6TimeExceeded, None),
        (PARAM_PROB, PARAMPROB_HEADER, 6, ICMPv6ParamProblem, "ptr"),
    ],
)
def test_scapy_agrees_with_our_errors(type_: int, code: int, data: int, cls: type, field: str | None) -> None:
    msg = error6(type_, code, ORIGINAL, G2, G1, data=data)
    pkt = scapy_decode(msg, G2, G1)
    layer = pkt[cls]
    assert (layer.type, layer.code) == (type_, code)
    if field:
        assert getattr(layer, field) == data
    quoted = pkt[IPerror6]
    assert (quoted.src, quoted.dst) == ("2001:db8::1", "2001:db8::2")
    assert raw(quoted) == ORIGINAL


def test_we_decode_scapy_errors() -> None:
    data = scapy_build(ICMPv6PacketTooBig(mtu=1300) / IPerror6(ORIGINAL), G2, G1)
    msg, body = Icmp6Message.parse(data, G2, G1)
    assert msg == Icmp6Message(PACKET_TOO_BIG, 0, 1300)
    assert bytes(body) == ORIGINAL
    assert msg.type in ERROR_TYPES


#### error6_allowed() (RFC 4443 2.4(e))


def pkt6(src: str = "2001:db8::1", dst: str = "2001:db8::2", upper: object = None) -> bytes:
    return raw(IPv6(src=src, dst=dst) / (UDP(dport=9) / b"x" if upper is None else upper))


def allowed(original: bytes, *, link_multicast: bool = False, type: int = DST_UNREACH, code: int = 0, **kw: object) -> bool:  # noqa: A002
    return error6_allowed(original, link_multicast=link_multicast, type=type, code=code, **kw)  # type: ignore[arg-type]


# An unrecognized hop-by-hop option, type 0x80 (high bits 10: "send Parameter
# Problem even to multicast") or 0xC0 (11: "only if not multicast"); its type
# byte is at 40 + 2.
OPT_POINTER = 42


def with_option(otype: int, dst: str = "ff02::1") -> bytes:
    data = raw(
        IPv6(src="2001:db8::1", dst=dst)
        / IPv6ExtHdrHopByHop(options=[HBHOptUnknown(otype=otype, optdata=b"abcd")])
        / UDP()
    )
    assert data[OPT_POINTER] == otype
    return data


ICMP_ERROR = ICMPv6DestUnreach() / IPerror6(ORIGINAL)

TRUTH_TABLE = [
    # (name, original, keywords, allowed)
    ("udp", pkt6(), {}, True),
    ("echo request", pkt6(upper=ICMPv6EchoRequest()), {}, True),
    ("echo reply", pkt6(upper=ICMPv6EchoReply()), {}, True),
    ("icmp error", pkt6(upper=ICMP_ERROR), {}, False),
    ("packet too big", pkt6(upper=ICMPv6PacketTooBig() / IPerror6(ORIGINAL)), {}, False),
    ("unknown error type 100", pkt6(upper=ICMPv6EchoRequest(type=100)), {}, False),
    ("redirect", pkt6(upper=ICMPv6ND_Redirect(tgt="fe80::1", dst="2001:db8::9")), {}, False),
    ("error behind hop-by-hop and dest opts",
     pkt6(upper=IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / ICMP_ERROR), {}, False),
    ("error behind routing header", pkt6(upper=IPv6ExtHdrRouting() / ICMP_ERROR), {}, False),
    ("error in a first fragment", pkt6(upper=IPv6ExtHdrFragment(m=1) / ICMP_ERROR), {}, False),
    ("a later fragment: cannot tell", pkt6(upper=IPv6ExtHdrFragment(offset=8) / raw(ICMPv6DestUnreach(cksum=0) / IPerror6(ORIGINAL))), {}, True),
    ("esp: cannot tell", raw(IPv6(src="2001:db8::1", dst="2001:db8::2", nh=50) / bytes(16)), {}, True),
    ("no next header", raw(IPv6(src="2001:db8::1", dst="2001:db8::2", nh=59)), {}, True),
    ("truncated in an extension header: cannot tell",
     pkt6(upper=IPv6ExtHdrDestOpt() / ICMP_ERROR)[:44], {}, True),
    ("icmpv6 with no type byte: cannot tell", pkt6(upper=ICMP_ERROR)[:40], {}, True),
    ("shorter than an IPv6 header", pkt6()[:39], {}, False),
    ("empty", b"", {}, False),
    ("not version 6", b"\x45" + pkt6()[1:], {}, False),
    ("source unspecified", pkt6(src="::"), {}, False),
    ("source multicast", pkt6(src="ff02::1"), {}, False),
    ("source anycast", pkt6(), {"src_anycast": True}, False),
    ("multicast destination", pkt6(dst="ff02::1"), {}, False),
    ("link-layer multicast", pkt6(), {"link_multicast": True}, False),
    ("packet too big to multicast", pkt6(dst="ff05::2"), {"type": PACKET_TOO_BIG}, True),
    ("packet too big, link multicast", pkt6(), {"type": PACKET_TOO_BIG, "link_multicast": True}, True),
    ("packet too big about an error to multicast",
     pkt6(dst="ff05::2", upper=ICMP_ERROR), {"type": PACKET_TOO_BIG}, False),
    ("option 10 to multicast", with_option(0x80),
     {"type": PARAM_PROB, "code": PARAMPROB_OPTION, "pointer": OPT_POINTER}, True),
    ("option 10, link multicast", with_option(0x80, dst="2001:db8::2"),
     {"type": PARAM_PROB, "code": PARAMPROB_OPTION, "pointer": OPT_POINTER, "link_multicast": True}, True),
    ("option 11 to multicast", with_option(0xC0),
     {"type": PARAM_PROB, "code": PARAMPROB_OPTION, "pointer": OPT_POINTER}, False),
    ("option 11 to unicast", with_option(0xC0, dst="2001:db8::2"),
     {"type": PARAM_PROB, "code": PARAMPROB_OPTION, "pointer": OPT_POINTER}, True),
    ("option 10 but no pointer", with_option(0x80), {"type": PARAM_PROB, "code": PARAMPROB_OPTION}, False),
    ("option 10, pointer outside", with_option(0x80),
     {"type": PARAM_PROB, "code": PARAMPROB_OPTION, "pointer": 5000}, False),
    ("parameter problem code 0 to multicast", with_option(0x80),
     {"type": PARAM_PROB, "code": PARAMPROB_HEADER, "pointer": OPT_POINTER}, False),
]


@pytest.mark.parametrize(("original", "kw", "expected"), [row[1:] for row in TRUTH_TABLE], ids=[row[0] for row in TRUTH_TABLE])
def test_error6_allowed(original: bytes, kw: dict[str, object], expected: bool) -> None:
    assert allowed(original, **kw) is expected
    assert allowed(memoryview(original), **kw) is expected


@settings(max_examples=300)
@given(st.binary(max_size=120), st.booleans(), u8, u8, st.none() | st.integers(-5, 200), st.booleans())
def test_error6_allowed_never_raises(
    data: bytes, link_multicast: bool, type_: int, code: int, pointer: int | None, anycast: bool
) -> None:
    # Give the walk something to chew on: version 6 most of the time.
    data = b"\x60" + data[1:] if data and data[0] & 1 else data
    result = error6_allowed(
        data, link_multicast=link_multicast, type=type_, code=code, pointer=pointer, src_anycast=anycast
    )
    assert isinstance(result, bool)


#### Rate limiter


def test_rate_limiter_allows_a_burst_then_the_rate() -> None:
    limiter = Icmp6RateLimiter()
    assert [limiter.allow(0.0) for _ in range(12)] == [True] * 10 + [False] * 2
    assert not limiter.allow(0.005)  # half a token
    assert limiter.allow(0.010)  # 100 per second: one token per 10 ms
    assert not limiter.allow(0.010)
    stats = limiter.statistics()
    assert (stats.allowed, stats.suppressed) == (11, 4)


def test_rate_limiter_caps_at_the_burst() -> None:
    limiter = Icmp6RateLimiter(rate=1.0, burst=3)
    assert limiter.allow(0.0)
    # An hour of silence still allows only a burst of 3.
    assert [limiter.allow(3600.0) for _ in range(4)] == [True, True, True, False]
    assert limiter.statistics().tokens == pytest.approx(0.0)


def test_rate_limiter_ignores_time_going_backwards() -> None:
    limiter = Icmp6RateLimiter(rate=4.0, burst=1)  # times exact in binary
    assert limiter.allow(10.0)
    assert not limiter.allow(5.0)  # no tokens from the past
    assert not limiter.allow(10.125)
    assert limiter.allow(10.25)


def test_rate_limiter_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError):
        Icmp6RateLimiter(rate=0)
    with pytest.raises(ValueError):
        Icmp6RateLimiter(burst=0)


#### Round trips and scapy


@settings(max_examples=100)
@given(messages, payloads, addrs, addrs)
def test_round_trip(msg: Icmp6Message, payload: bytes, src: bytes, dst: bytes) -> None:
    data = msg.emit(src, dst, payload)
    parsed, body = Icmp6Message.parse(bytearray(data), src, dst)
    assert parsed == msg
    assert bytes(body) == payload
    parsed, body = Icmp6Message.parse(memoryview(data), src, dst)
    assert parsed == msg


@settings(max_examples=100)
@given(u16, u16, payloads, st.booleans(), addrs, addrs)
def test_scapy_agrees_with_our_echo(ident: int, seq: int, payload: bytes, reply: bool, src: bytes, dst: bytes) -> None:
    data = echo6(ident, seq, payload, src, dst, reply=reply)
    pkt = scapy_decode(data, src, dst)
    layer = pkt[ICMPv6EchoReply if reply else ICMPv6EchoRequest]
    assert (layer.type, layer.code, layer.id, layer.seq) == (129 if reply else 128, 0, ident, seq)
    assert layer.data == payload


@settings(max_examples=100)
@given(u16, u16, payloads, st.booleans(), addrs, addrs)
def test_we_decode_what_scapy_builds(ident: int, seq: int, payload: bytes, reply: bool, src: bytes, dst: bytes) -> None:
    cls = ICMPv6EchoReply if reply else ICMPv6EchoRequest
    data = scapy_build(cls(id=ident, seq=seq, data=payload), src, dst)
    msg, body = Icmp6Message.parse(data, src, dst)
    assert msg == Icmp6Message(129 if reply else 128, 0, ident << 16 | seq)
    assert bytes(body) == payload


#### Fuzz


@settings(max_examples=300)
@given(st.binary(max_size=40), addrs, addrs)
def test_arbitrary_bytes_only_raise_remote_protocol_error(data: bytes, src: bytes, dst: bytes) -> None:
    parse_or_reject(Icmp6Message.parse, data, src, dst)


@settings(max_examples=100)
@given(messages, payloads, addrs, addrs, st.data())
def test_mutated_messages_are_rejected(
    msg: Icmp6Message, payload: bytes, src: bytes, dst: bytes, data: st.DataObject
) -> None:
    frame = bytearray(msg.emit(src, dst, payload))
    i = data.draw(st.integers(0, len(frame) - 1))
    frame[i] ^= data.draw(st.integers(1, 255))
    # One changed byte moves the sum by d or 256*d: never a multiple of
    # 0xFFFF, except a checksum flipped between its two encodings of zero.
    if frame[2:4] not in (b"\0\0", b"\xff\xff"):
        with pytest.raises(RemoteProtocolError, match="bad_checksum"):
            Icmp6Message.parse(frame, src, dst)
    cut = data.draw(st.integers(0, len(frame)))
    parse_or_reject(Icmp6Message.parse, frame[:cut], src, dst)
