"""ICMP messages: literals, round trips, scapy as an oracle, errors, fuzz."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.all import ICMP, IP, UDP, IPerror, raw
from scapy.utils import checksum as scapy_checksum

from trionet.protocols.errors import RemoteProtocolError
from trionet.protocols.icmp import (
    DEST_UNREACH,
    ECHO_REPLY,
    ECHO_REQUEST,
    ERROR_TYPES,
    PARAM_PROBLEM,
    TIME_EXCEEDED,
    TIMXCEED_INTRANS,
    UNREACH_NEEDFRAG,
    UNREACH_PORT,
    IcmpMessage,
    echo,
    error,
    error_allowed,
)

from protocol_checks import parse_or_reject

u8 = st.integers(0, 255)
u16 = st.integers(0, 0xFFFF)
messages = st.builds(IcmpMessage, u8, u8, st.integers(0, 0xFFFFFFFF))
payloads = st.binary(max_size=100)

DATAGRAM = raw(IP(src="10.0.0.1", dst="10.0.0.2", id=7) / UDP(sport=1234, dport=53) / b"0123456789abcdef")


#### Byte literals


# An echo request, ident 0x1234, seq 1, payload "abcd": the checksum by
# hand is the complement of 0x0800 + 0x1234 + 0x0001 + 0x6162 + 0x6364 =
# 0xDEFB, 0x2104.
ECHO = bytes.fromhex("0800210412340001" "61626364")


def test_deconstruct() -> None:
    msg, body = IcmpMessage.parse(ECHO)
    assert msg == IcmpMessage(ECHO_REQUEST, 0, 0x12340001)
    assert bytes(body) == b"abcd"


def test_construct() -> None:
    assert echo(0x1234, 1, b"abcd") == ECHO
    assert IcmpMessage(ECHO_REQUEST, 0, 0x12340001).emit(b"abcd") == ECHO
    assert echo(0x1234, 1, b"abcd", reply=True)[0] == ECHO_REPLY


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "short_header"),
        (ECHO[:7], "short_header"),
        (ECHO[:-1], "bad_checksum"),
        (ECHO[:2] + b"\x21\x05" + ECHO[4:], "bad_checksum"),
        (bytes(8), "bad_checksum"),  # +0 is not a valid checksum for zeros
    ],
)
def test_rejects(data: bytes, reason: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        IcmpMessage.parse(data)
    assert info.value.reason == reason


def test_emit_refuses_bad_fields() -> None:
    for msg in (IcmpMessage(256, 0), IcmpMessage(0, -1), IcmpMessage(0, 0, 1 << 32)):
        with pytest.raises(ValueError):
            msg.emit()
    with pytest.raises(ValueError):
        echo(0x10000, 0)


#### error()


def test_error_quotes_the_header_and_8_bytes() -> None:
    data = error(DEST_UNREACH, UNREACH_PORT, DATAGRAM)
    msg, body = IcmpMessage.parse(data)
    assert msg == IcmpMessage(DEST_UNREACH, UNREACH_PORT, 0)
    assert bytes(body) == DATAGRAM[:28]


def test_error_quotes_ip_options() -> None:
    with_options = raw(IP(dst="10.0.0.2", options=b"\x01\x01\x01\x00") / UDP() / (b"x" * 20))
    assert with_options[0] & 0x0F == 6
    _, body = IcmpMessage.parse(error(TIME_EXCEEDED, TIMXCEED_INTRANS, with_options))
    assert bytes(body) == with_options[:32]


def test_error_clamps_to_what_is_there() -> None:
    _, body = IcmpMessage.parse(error(TIME_EXCEEDED, TIMXCEED_INTRANS, DATAGRAM[:24]))
    assert bytes(body) == DATAGRAM[:24]
    _, body = IcmpMessage.parse(error(TIME_EXCEEDED, TIMXCEED_INTRANS, b""))
    assert bytes(body) == b""
    # A bogus IHL below 5 still quotes a minimum header's worth.
    _, body = IcmpMessage.parse(error(TIME_EXCEEDED, TIMXCEED_INTRANS, b"\x41" + bytes(40)))
    assert len(body) == 28


def test_frag_needed_carries_the_mtu() -> None:
    data = error(DEST_UNREACH, UNREACH_NEEDFRAG, DATAGRAM, mtu=1400)
    msg, _ = IcmpMessage.parse(data)
    assert msg.rest == 1400
    pkt = ICMP(data)
    assert (pkt.type, pkt.code, pkt.nexthopmtu) == (3, 4, 1400)
    quoted = pkt[IPerror]
    assert (quoted.src, quoted.dst, quoted.id) == ("10.0.0.1", "10.0.0.2", 7)
    assert (pkt[IPerror].payload.sport, pkt[IPerror].payload.dport) == (1234, 53)


def test_error_refuses_non_error_types() -> None:
    with pytest.raises(ValueError):
        error(ECHO_REQUEST, 0, DATAGRAM)
    with pytest.raises(ValueError):
        error(DEST_UNREACH, UNREACH_NEEDFRAG, DATAGRAM, mtu=70000)


#### error_allowed() (RFC 1122 3.2.2)

HOST_A = bytes([10, 0, 0, 1])
HOST_B = bytes([10, 0, 0, 2])


def test_an_ordinary_datagram_may_draw_an_error() -> None:
    assert error_allowed(HOST_A, HOST_B, frag_offset=0)
    assert error_allowed(HOST_A, HOST_B, frag_offset=0, icmp_type=ECHO_REQUEST)
    assert error_allowed(bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]), frag_offset=0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"icmp_type": DEST_UNREACH},
        {"icmp_type": TIME_EXCEEDED},
        {"icmp_type": PARAM_PROBLEM},
        {"icmp_type": 200},  # unknown: treated as an error, as DragonFly does
        {"frag_offset": 185},
        {"link_broadcast": True},
        {"dst_broadcast": True},
        {"dst": bytes([224, 0, 0, 1])},
        {"dst": b"\xff\xff\xff\xff"},
        {"src": bytes(4)},
        {"src": bytes([0, 1, 2, 3])},
        {"src": bytes([239, 1, 1, 1])},
        {"src": b"\xff\xff\xff\xff"},
        {"src": bytes([250, 0, 0, 1])},
    ],
)
def test_datagrams_that_must_not_draw_an_error(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"src": HOST_A, "dst": HOST_B, "frag_offset": 0}
    args.update(kwargs)
    assert not error_allowed(**args)  # type: ignore[arg-type]


#### Round trip and scapy


@settings(max_examples=100)
@given(messages, payloads)
def test_round_trip(msg: IcmpMessage, payload: bytes) -> None:
    data = msg.emit(payload)
    assert scapy_checksum(data) == 0
    parsed, body = IcmpMessage.parse(bytearray(data))
    assert parsed == msg
    assert bytes(body) == payload


@settings(max_examples=100)
@given(u16, u16, payloads, st.booleans())
def test_scapy_agrees_with_our_echo(ident: int, seq: int, payload: bytes, reply: bool) -> None:
    data = echo(ident, seq, payload, reply=reply)
    pkt = ICMP(data)
    assert (pkt.type, pkt.code, pkt.id, pkt.seq) == (0 if reply else 8, 0, ident, seq)
    assert bytes(pkt.payload) == payload
    pkt.chksum = None
    assert raw(pkt) == data


@settings(max_examples=60)
@given(st.sampled_from([(3, 0), (3, 1), (3, 2), (3, 3), (3, 4), (11, 0), (11, 1)]), u16)
def test_scapy_agrees_with_our_errors(type_code: tuple[int, int], mtu: int) -> None:
    type_, code = type_code
    mtu = mtu if type_code == (3, 4) else 0
    data = error(type_, code, DATAGRAM, mtu=mtu)
    pkt = ICMP(data)
    assert (pkt.type, pkt.code) == type_code
    assert raw(pkt[IPerror]) == DATAGRAM[:28]
    pkt.chksum = None
    assert raw(pkt) == data


@settings(max_examples=100)
@given(u16, u16, payloads, st.booleans())
def test_we_decode_what_scapy_builds(ident: int, seq: int, payload: bytes, reply: bool) -> None:
    data = raw(ICMP(type=0 if reply else 8, id=ident, seq=seq) / payload)
    msg, body = IcmpMessage.parse(data)
    assert msg == IcmpMessage(0 if reply else 8, 0, ident << 16 | seq)
    assert bytes(body) == payload


def test_we_decode_scapy_errors() -> None:
    data = raw(ICMP(type=3, code=4, nexthopmtu=576) / IPerror(DATAGRAM[:20]) / DATAGRAM[20:28])
    msg, body = IcmpMessage.parse(data)
    assert msg == IcmpMessage(DEST_UNREACH, UNREACH_NEEDFRAG, 576)
    assert bytes(body) == DATAGRAM[:28]
    assert ERROR_TYPES >= {msg.type}


#### Fuzz


def _parse_or_reject(data: bytes | bytearray) -> None:
    parse_or_reject(IcmpMessage.parse, data)


@settings(max_examples=200)
@given(st.binary(max_size=40))
def test_arbitrary_bytes_only_raise_remote_protocol_error(data: bytes) -> None:
    _parse_or_reject(data)


@settings(max_examples=100)
@given(messages, payloads, st.data())
def test_mutated_messages_are_rejected(msg: IcmpMessage, payload: bytes, data: st.DataObject) -> None:
    frame = bytearray(msg.emit(payload))
    i = data.draw(st.integers(0, len(frame) - 1))
    frame[i] ^= data.draw(st.integers(1, 255))
    # One changed byte moves the sum by d or 256*d: never a multiple of
    # 0xFFFF, except a checksum flipped between its two encodings of zero.
    if frame[2:4] not in (b"\0\0", b"\xff\xff"):
        with pytest.raises(RemoteProtocolError, match="bad_checksum"):
            IcmpMessage.parse(frame)
    cut = data.draw(st.integers(0, len(frame)))
    _parse_or_reject(frame[:cut])
