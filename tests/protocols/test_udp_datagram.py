"""UDP headers: literals, round trips, scapy as an oracle, fuzz."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.all import IP, UDP, raw

from trionet.protocols.checksum import internet_checksum, pseudo_header_sum
from trionet.protocols.errors import RemoteProtocolError
from trionet.protocols.udp import IPPROTO_UDP, UdpHeader

from protocol_checks import parse_or_reject

SRC = bytes([192, 168, 1, 1])
DST = bytes([192, 168, 1, 2])

ports = st.integers(0, 0xFFFF)
addrs = st.binary(min_size=4, max_size=4)
payloads = st.binary(max_size=100)


def _ip(addr: bytes) -> str:
    return ".".join(map(str, addr))


#### Byte literals (smoltcp udp.rs style)


# sport 48896, dport 53, length 12, checksum 0x124d (from smoltcp's udp.rs
# test vector, addresses 192.168.1.1 -> 192.168.1.2), payload aa 00 00 ff.
PACKET = bytes.fromhex("bf00003500 0c124d aa0000ff".replace(" ", ""))


def test_deconstruct() -> None:
    hdr, payload = UdpHeader.parse(PACKET, SRC, DST)
    assert hdr == UdpHeader(48896, 53, 12, 0x124D)
    assert bytes(payload) == b"\xaa\x00\x00\xff"


def test_construct() -> None:
    assert UdpHeader(48896, 53).emit(b"\xaa\x00\x00\xff", SRC, DST) == PACKET


def test_trailing_bytes_are_ignored_and_the_payload_cut() -> None:
    hdr, payload = UdpHeader.parse(PACKET + b"\0\0padding", SRC, DST)
    assert hdr.length == 12
    assert bytes(payload) == b"\xaa\x00\x00\xff"


def test_zero_checksum_means_none() -> None:
    data = UdpHeader(1, 2).emit(b"hello", SRC, DST, checksum=False)
    assert data[6:8] == b"\0\0"
    hdr, payload = UdpHeader.parse(data, bytes(4), bytes(4))  # addresses do not matter
    assert (hdr.checksum, bytes(payload)) == (0, b"hello")


def test_a_computed_zero_checksum_is_sent_as_ffff() -> None:
    # Choose the payload so the checksum comes out as 0: make the sum of
    # everything 0xFFFF with a two-byte payload word.
    base = UdpHeader(1, 2).emit(b"\0\0", SRC, DST)
    word = int.from_bytes(base[6:8], "big")  # the complement of the rest's sum
    data = UdpHeader(1, 2).emit(word.to_bytes(2, "big"), SRC, DST)
    assert data[6:8] == b"\xff\xff"
    UdpHeader.parse(data, SRC, DST)
    assert raw(IP(raw(IP(src=_ip(SRC), dst=_ip(DST)) / UDP(data)))[UDP])[6:8] == b"\xff\xff"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "short_header"),
        (PACKET[:7], "short_header"),
        (PACKET[:4] + b"\x00\x07" + PACKET[6:], "bad_length"),
        (PACKET[:4] + b"\x00\x0d" + PACKET[6:], "bad_length"),
        (PACKET[:11], "bad_length"),
        (PACKET[:-1] + b"\xfe", "bad_checksum"),
        (PACKET[:6] + b"\x12\x4e" + PACKET[8:], "bad_checksum"),
    ],
)
def test_rejects(data: bytes, reason: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        UdpHeader.parse(data, SRC, DST)
    assert info.value.reason == reason


def test_the_checksum_covers_the_pseudo_header() -> None:
    with pytest.raises(RemoteProtocolError, match="bad_checksum"):
        UdpHeader.parse(PACKET, SRC, bytes([192, 168, 1, 3]))


@pytest.mark.parametrize(
    ("hdr", "payload", "src"),
    [
        (UdpHeader(70000, 1), b"", SRC),
        (UdpHeader(1, -1), b"", SRC),
        (UdpHeader(1, 1), bytes(65528), SRC),
        (UdpHeader(1, 1), b"", SRC[:3]),
    ],
)
def test_emit_refuses_bad_arguments(hdr: UdpHeader, payload: bytes, src: bytes) -> None:
    with pytest.raises(ValueError):
        hdr.emit(payload, src, DST)


#### Round trip, the checksum module, and scapy


@settings(max_examples=100)
@given(ports, ports, payloads, addrs, addrs, st.booleans())
def test_round_trip(sport: int, dport: int, payload: bytes, src: bytes, dst: bytes, csum: bool) -> None:
    data = UdpHeader(sport, dport).emit(payload, src, dst, checksum=csum)
    hdr, rest = UdpHeader.parse(bytearray(data), src, dst)
    assert (hdr.sport, hdr.dport, hdr.length) == (sport, dport, 8 + len(payload))
    assert bytes(rest) == payload
    # Against the plain checksum helpers: pseudo-header sum plus the datagram.
    if csum:
        assert internet_checksum(data, pseudo_header_sum(src, dst, IPPROTO_UDP, len(data))) == 0


@settings(max_examples=100)
@given(ports, ports, payloads, addrs, addrs)
def test_scapy_agrees_with_what_we_emit(
    sport: int, dport: int, payload: bytes, src: bytes, dst: bytes
) -> None:
    data = UdpHeader(sport, dport).emit(payload, src, dst)
    udp = IP(raw(IP(src=_ip(src), dst=_ip(dst)) / UDP(data)))[UDP]
    assert (udp.sport, udp.dport, udp.len) == (sport, dport, len(data))
    assert bytes(udp.payload) == payload
    rebuilt = IP(src=_ip(src), dst=_ip(dst)) / UDP(sport=sport, dport=dport, chksum=None) / payload
    assert raw(rebuilt)[20:] == data


@settings(max_examples=100)
@given(ports, ports, payloads, addrs, addrs)
def test_we_decode_what_scapy_builds(sport: int, dport: int, payload: bytes, src: bytes, dst: bytes) -> None:
    ip = raw(IP(src=_ip(src), dst=_ip(dst)) / UDP(sport=sport, dport=dport) / payload)
    hdr, rest = UdpHeader.parse(memoryview(ip)[20:], src, dst)
    assert (hdr.sport, hdr.dport, hdr.length) == (sport, dport, 8 + len(payload))
    assert bytes(rest) == payload


#### Fuzz


def _parse_or_reject(data: bytes | bytearray, src: bytes = SRC, dst: bytes = DST) -> None:
    parse_or_reject(UdpHeader.parse, data, src, dst)


@settings(max_examples=200)
@given(st.binary(max_size=40), addrs, addrs)
def test_arbitrary_bytes_only_raise_remote_protocol_error(data: bytes, src: bytes, dst: bytes) -> None:
    _parse_or_reject(data, src, dst)


@settings(max_examples=100)
@given(ports, ports, payloads, st.data())
def test_mutated_datagrams_only_raise_remote_protocol_error(
    sport: int, dport: int, payload: bytes, data: st.DataObject
) -> None:
    frame = bytearray(UdpHeader(sport, dport).emit(payload, SRC, DST))
    i = data.draw(st.integers(0, len(frame) - 1))
    frame[i] ^= data.draw(st.integers(1, 255))
    # A one-byte change outside the length field always breaks the checksum
    # (it moves the sum by d or 256*d, never a multiple of 0xFFFF), unless it
    # zeroed the checksum itself. (A shorter length could, rarely, cut bytes
    # that compensate.)
    if i not in (4, 5) and frame[6:8] != b"\0\0":
        with pytest.raises(RemoteProtocolError):
            UdpHeader.parse(frame, SRC, DST)
    _parse_or_reject(frame)
    cut = data.draw(st.integers(0, len(frame)))
    _parse_or_reject(frame[:cut])
    _parse_or_reject(frame + bytes(data.draw(st.integers(0, 8))))
