"""Ethernet II and 802.1Q headers: literals, round trips, scapy as an oracle, fuzz."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.all import Dot1AD, Dot1Q, Ether, raw

from trionet.protocols.errors import RemoteProtocolError
from trionet.protocols.ethernet import (
    BROADCAST,
    ETHERTYPE_ARP,
    ETHERTYPE_IP,
    ETHERTYPE_QINQ,
    ETHERTYPE_VLAN,
    EthernetHeader,
    format_mac,
    is_multicast,
    parse_mac,
)

from protocol_checks import parse_or_reject

DST = bytes.fromhex("ffffffffffff")
SRC = bytes.fromhex("020000000001")

macs = st.binary(min_size=6, max_size=6)
ethertypes = st.integers(0x0600, 0xFFFF).filter(lambda t: t not in (ETHERTYPE_VLAN, ETHERTYPE_QINQ))
headers = st.builds(
    EthernetHeader,
    macs,
    macs,
    ethertypes,
    st.none() | st.integers(0, 4095),
    st.integers(0, 7),
    st.booleans(),
).map(lambda h: h if h.vlan is not None else EthernetHeader(h.dst, h.src, h.ethertype))
payloads = st.binary(max_size=64)


#### Byte literals


def test_deconstruct_an_untagged_frame() -> None:
    frame = DST + SRC + b"\x08\x06" + b"payload"
    hdr, payload = EthernetHeader.parse(frame)
    assert hdr == EthernetHeader(DST, SRC, ETHERTYPE_ARP)
    assert hdr.vlan is None and hdr.header_len == 14
    assert bytes(payload) == b"payload"


def test_deconstruct_a_tagged_frame() -> None:
    # PCP 5, DEI set, VID 0x123.
    frame = DST + SRC + b"\x81\x00" + b"\xb1\x23" + b"\x08\x00" + b"ip"
    hdr, payload = EthernetHeader.parse(memoryview(frame))
    assert hdr == EthernetHeader(DST, SRC, ETHERTYPE_IP, vlan=0x123, pcp=5, dei=True)
    assert hdr.header_len == 18
    assert bytes(payload) == b"ip"


def test_construct() -> None:
    assert EthernetHeader(DST, SRC, ETHERTYPE_IP).emit(b"x") == DST + SRC + b"\x08\x00x"
    tagged = EthernetHeader(DST, SRC, ETHERTYPE_IP, vlan=0, pcp=7).emit()
    assert tagged == DST + SRC + b"\x81\x00\xe0\x00\x08\x00"


def test_emit_pads_nothing() -> None:
    assert len(EthernetHeader(DST, SRC, ETHERTYPE_ARP).emit(bytes(28))) == 42


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"", "short_header"),
        (DST + SRC + b"\x08", "short_header"),
        (DST + SRC + b"\x81\x00\x00\x01\x08", "short_header"),
        (DST + SRC + b"\x05\xdc" + bytes(46), "not_ethernet_ii"),
        (DST + SRC + b"\x81\x00\x00\x01\x00\x2e" + bytes(46), "not_ethernet_ii"),
        (DST + SRC + b"\x88\xa8\x00\x01\x81\x00\x00\x02\x08\x00", "unsupported"),
        (DST + SRC + b"\x81\x00\x00\x01\x81\x00\x00\x02\x08\x00", "unsupported"),
    ],
)
def test_rejects(frame: bytes, reason: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        EthernetHeader.parse(frame)
    assert info.value.reason == reason


@pytest.mark.parametrize(
    "hdr",
    [
        EthernetHeader(DST[:5], SRC, ETHERTYPE_IP),
        EthernetHeader(DST, SRC + b"\0", ETHERTYPE_IP),
        EthernetHeader(DST, SRC, 0x05DC),
        EthernetHeader(DST, SRC, ETHERTYPE_VLAN),
        EthernetHeader(DST, SRC, ETHERTYPE_IP, vlan=4096),
        EthernetHeader(DST, SRC, ETHERTYPE_IP, vlan=1, pcp=8),
    ],
)
def test_emit_refuses_bad_fields(hdr: EthernetHeader) -> None:
    with pytest.raises(ValueError):
        hdr.emit()


def test_mac_helpers() -> None:
    assert format_mac(SRC) == "02:00:00:00:00:01"
    assert parse_mac("02:00:00:00:00:01") == SRC
    assert parse_mac("2-0-0-0-0-1") == SRC
    assert parse_mac(format_mac(BROADCAST)) == BROADCAST
    for bad in ["", "02:00:00:00:00", "02:00:00:00:00:001", "0g:00:00:00:00:01", "02::00:00:00:01"]:
        with pytest.raises(ValueError):
            parse_mac(bad)
    assert is_multicast(BROADCAST)
    assert is_multicast(bytes.fromhex("01005e000001"))
    assert not is_multicast(SRC)


def test_repr_shows_macs() -> None:
    assert "02:00:00:00:00:01" in repr(EthernetHeader(DST, SRC, ETHERTYPE_IP))


#### Round trip and scapy


@settings(max_examples=100)
@given(headers, payloads)
def test_round_trip(hdr: EthernetHeader, payload: bytes) -> None:
    parsed, rest = EthernetHeader.parse(hdr.emit(payload))
    assert parsed == hdr
    assert bytes(rest) == payload


@settings(max_examples=100)
@given(headers, payloads)
def test_scapy_decodes_what_we_emit(hdr: EthernetHeader, payload: bytes) -> None:
    pkt = Ether(hdr.emit(payload))
    assert pkt.dst == format_mac(hdr.dst) and pkt.src == format_mac(hdr.src)
    if hdr.vlan is None:
        assert pkt.type == hdr.ethertype
        assert not pkt.haslayer(Dot1Q)
    else:
        assert pkt.type == ETHERTYPE_VLAN
        tag = pkt[Dot1Q]
        assert (tag.vlan, tag.prio, tag.dei, tag.type) == (hdr.vlan, hdr.pcp, int(hdr.dei), hdr.ethertype)


@settings(max_examples=100)
@given(headers, payloads)
def test_we_decode_what_scapy_builds(hdr: EthernetHeader, payload: bytes) -> None:
    dst, src = format_mac(hdr.dst), format_mac(hdr.src)
    if hdr.vlan is None:
        pkt = Ether(dst=dst, src=src, type=hdr.ethertype) / payload
    else:
        pkt = Ether(dst=dst, src=src) / Dot1Q(
            vlan=hdr.vlan, prio=hdr.pcp, dei=int(hdr.dei), type=hdr.ethertype
        ) / payload
    parsed, rest = EthernetHeader.parse(raw(pkt))
    assert parsed == hdr
    assert bytes(rest) == payload


def test_scapy_qinq_is_unsupported() -> None:
    frame = raw(Ether(dst="ff:ff:ff:ff:ff:ff") / Dot1AD(vlan=1) / Dot1Q(vlan=2) / b"x")
    with pytest.raises(RemoteProtocolError, match="unsupported"):
        EthernetHeader.parse(frame)


#### Fuzz


def _parse_or_reject(data: bytes) -> None:
    parse_or_reject(EthernetHeader.parse, data)


@settings(max_examples=200)
@given(st.binary(max_size=40))
def test_arbitrary_bytes_only_raise_remote_protocol_error(data: bytes) -> None:
    _parse_or_reject(data)


@settings(max_examples=100)
@given(headers, payloads, st.data())
def test_mutated_frames_only_raise_remote_protocol_error(
    hdr: EthernetHeader, payload: bytes, data: st.DataObject
) -> None:
    frame = bytearray(hdr.emit(payload))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(frame) - 1))
        frame[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(frame)))
    _parse_or_reject(bytes(frame[:cut]))
    _parse_or_reject(frame)
