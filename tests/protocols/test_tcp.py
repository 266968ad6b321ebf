"""TCP headers and options: literals, reasons, round trips, scapy as an oracle, fuzz; sequence arithmetic."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.all import IP, TCP, raw

from trionet.protocols.checksum import internet_checksum, pseudo_header_sum
from trionet.protocols.errors import RemoteProtocolError
from trionet.protocols.tcp import (
    IPPROTO_TCP,
    SEQ_MASK,
    TcpFlags,
    TcpHeader,
    TcpOptions,
    isn_rfc6528,
    reset_for,
    seq_add,
    seq_diff,
    seq_ge,
    seq_gt,
    seq_le,
    seq_lt,
    seq_max,
    seq_min,
)

from protocol_checks import parse_or_reject

SRC = bytes([198, 18, 0, 1])
DST = bytes([198, 18, 0, 2])

# Both built by scapy (an independent encoder), addresses SRC -> DST for the
# first, DST -> SRC for the second.
SYN_WIRE = bytes.fromhex(
    "9c400050000003e800000000a002ffff138d0000"
    "020405b40402080a000007d50000000001030305"
)
SYN_HDR = TcpHeader(
    40000, 80, 1000, 0, TcpFlags.SYN, 65535, 0,
    TcpOptions(mss=1460, wscale=5, sack_permitted=True, timestamps=(2005, 0)),
)
DATA_WIRE = bytes.fromhex(
    "00509c400000c351000003e9b01801f6536a0000"
    "0101080a000003090000080701010" "50a0000c3b50000c419" "6869"
)
DATA_HDR = TcpHeader(
    80, 40000, 50001, 1001, TcpFlags.PSH | TcpFlags.ACK, 502, 0,
    TcpOptions(sack_blocks=((50101, 50201),), timestamps=(777, 2055)),
)

u32 = st.integers(0, SEQ_MASK)
ports = st.integers(0, 0xFFFF)
addrs = st.binary(min_size=4, max_size=4)
options = st.builds(
    TcpOptions,
    mss=st.none() | st.integers(0, 0xFFFF),
    wscale=st.none() | st.integers(0, 14),
    sack_permitted=st.booleans(),
    timestamps=st.none() | st.tuples(u32, u32),
    sack_blocks=st.lists(st.tuples(u32, u32), max_size=2).map(tuple),
)
headers = st.builds(
    TcpHeader,
    sport=ports, dport=ports, seq=u32, ack=u32,
    flags=st.integers(0, 255).map(TcpFlags), window=ports, urgent=ports, options=options,
)
payloads = st.binary(max_size=64)


def _ip(addr: bytes) -> str:
    return ".".join(map(str, addr))


####################################################################
# Byte literals
####################################################################


def test_deconstruct_syn() -> None:
    hdr, payload = TcpHeader.parse(SYN_WIRE, SRC, DST)
    assert hdr == SYN_HDR
    assert hdr.syn and not hdr.has_ack and bytes(payload) == b""


def test_construct_syn() -> None:
    assert SYN_HDR.emit(b"", SRC, DST) == SYN_WIRE


def test_deconstruct_and_construct_data_with_sack() -> None:
    hdr, payload = TcpHeader.parse(DATA_WIRE, DST, SRC)
    assert hdr == DATA_HDR and bytes(payload) == b"hi"
    assert DATA_HDR.emit(b"hi", DST, SRC) == DATA_WIRE


def test_options_parse_skips_unknown_kinds_and_stops_at_eol() -> None:
    area = bytes([1, 30, 4, 0xAA, 0xBB, 2, 4, 0x05, 0xB4, 0, 3, 3, 9])
    assert TcpOptions.parse(area) == TcpOptions(mss=1460)


def test_repeated_option_last_wins_and_big_wscale_is_kept() -> None:
    area = bytes([2, 4, 0, 100, 2, 4, 0, 200, 3, 3, 15, 1])
    assert TcpOptions.parse(area) == TcpOptions(mss=200, wscale=15)


@pytest.mark.parametrize(
    "area",
    [
        bytes([2]),  # no length byte
        bytes([2, 1, 0, 0]),  # length below 2
        bytes([2, 8, 0, 0]),  # beyond the area
        bytes([2, 3, 0, 1]),  # MSS is 4 bytes
        bytes([3, 4, 1, 1]),  # window scale is 3
        bytes([4, 3, 0, 1]),  # SACK-permitted is 2
        bytes([5, 2, 1, 1]),  # SACK with no block
        bytes([5, 6, 0, 0, 0, 0, 1, 1]),  # SACK not a whole block
        bytes([8, 6, 0, 0, 0, 0, 1, 1]),  # timestamps are 10
        bytes([99, 0, 1, 1]),  # unknown kind, bad length
    ],
)
def test_malformed_options_are_rejected_with_a_reason(area: bytes) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        TcpOptions.parse(area)
    assert info.value.reason == "bad_option"


def test_parse_reasons_in_order() -> None:
    def reason(data: bytes) -> str:
        with pytest.raises(RemoteProtocolError) as info:
            TcpHeader.parse(data, SRC, DST)
        return info.value.reason

    assert reason(SYN_WIRE[:19]) == "short_header"
    assert reason(SYN_WIRE[:12] + b"\x40" + SYN_WIRE[13:]) == "bad_offset"  # 4 words
    assert reason(SYN_WIRE[:20]) == "bad_offset"  # 10 words claimed, 5 present
    assert reason(SYN_WIRE[:16] + b"\0\0" + SYN_WIRE[18:]) == "bad_checksum"
    bad = TcpHeader(1, 2, 3, 4, TcpFlags.ACK).emit(b"", SRC, DST)
    # Options with a correct checksum but a bad MSS length.
    h = bytearray(bad[:12] + b"\x60" + bad[13:] + bytes([2, 3, 0, 0]))
    h[16:18] = b"\0\0"
    h[16:18] = internet_checksum(h, pseudo_header_sum(SRC, DST, IPPROTO_TCP, len(h))).to_bytes(2, "big")
    assert reason(bytes(h)) == "bad_option"
    assert TcpHeader.parse(SYN_WIRE, SRC, DST)  # and the original is fine


def test_the_checksum_covers_the_pseudo_header() -> None:
    with pytest.raises(RemoteProtocolError, match="bad_checksum"):
        TcpHeader.parse(SYN_WIRE, SRC, bytes([198, 18, 0, 3]))


@pytest.mark.parametrize(
    ("hdr", "payload", "src"),
    [
        (TcpHeader(70000, 1, 0, 0, TcpFlags.ACK), b"", SRC),
        (TcpHeader(1, 1, 1 << 32, 0, TcpFlags.ACK), b"", SRC),
        (TcpHeader(1, 1, 0, 0, TcpFlags.ACK, 65536), b"", SRC),
        (TcpHeader(1, 1, 0, 0, TcpFlags.ACK), bytes(65516), SRC),
        (TcpHeader(1, 1, 0, 0, TcpFlags.ACK), b"", SRC[:3]),
        (TcpHeader(1, 1, 0, 0, TcpFlags.ACK, options=TcpOptions(mss=70000)), b"", SRC),
        (TcpHeader(1, 1, 0, 0, TcpFlags.ACK, options=TcpOptions(sack_blocks=((1, 2),) * 5)), b"", SRC),
        # 4 SACK blocks (36 bytes) and timestamps (12) do not fit in 40.
        (TcpHeader(1, 1, 0, 0, TcpFlags.ACK, options=TcpOptions(sack_blocks=((1, 2),) * 4, timestamps=(1, 2))), b"", SRC),
    ],
)
def test_emit_refuses_bad_values(hdr: TcpHeader, payload: bytes, src: bytes) -> None:
    with pytest.raises(ValueError):
        hdr.emit(payload, src, DST)


def test_four_sack_blocks_fit_without_timestamps() -> None:
    hdr = TcpHeader(1, 2, 3, 4, TcpFlags.ACK, options=TcpOptions(sack_blocks=((1, 2), (3, 4), (5, 6), (7, 8))))
    wire = hdr.emit(b"", SRC, DST)
    assert len(wire) == 56  # 20 + NOP NOP kind len + 4 * 8
    assert TcpHeader.parse(wire, SRC, DST)[0] == hdr


####################################################################
# Round trips and scapy
####################################################################


@settings(max_examples=100)
@given(headers, payloads, addrs, addrs)
def test_round_trip(hdr: TcpHeader, payload: bytes, src: bytes, dst: bytes) -> None:
    wire = hdr.emit(payload, src, dst)
    assert internet_checksum(wire, pseudo_header_sum(src, dst, IPPROTO_TCP, len(wire))) == 0
    got, rest = TcpHeader.parse(bytearray(wire), src, dst)
    assert got == hdr and bytes(rest) == payload


@settings(max_examples=50)
@given(headers, payloads, addrs, addrs)
def test_scapy_decodes_what_we_emit(hdr: TcpHeader, payload: bytes, src: bytes, dst: bytes) -> None:
    wire = hdr.emit(payload, src, dst)
    pkt = IP(raw(IP(src=_ip(src), dst=_ip(dst), proto=6) / wire))
    tcp = pkt[TCP]
    assert (tcp.sport, tcp.dport, tcp.seq, tcp.ack) == (hdr.sport, hdr.dport, hdr.seq, hdr.ack)
    assert (int(tcp.flags), tcp.window, tcp.urgptr) == (int(hdr.flags), hdr.window, hdr.urgent)
    opts = dict((k, v) for k, v in tcp.options if k != "NOP")
    o = hdr.options
    assert opts.get("MSS") == o.mss and opts.get("WScale") == o.wscale
    assert ("SAckOK" in opts) == o.sack_permitted
    assert opts.get("Timestamp") == o.timestamps
    assert tuple(opts.get("SAck", ())) == tuple(x for block in o.sack_blocks for x in block)
    assert bytes(tcp.payload) == payload
    ours = tcp.chksum
    del tcp.chksum
    assert IP(raw(pkt))[TCP].chksum == ours


@settings(max_examples=50)
@given(headers, payloads, addrs, addrs)
def test_we_decode_what_scapy_builds(hdr: TcpHeader, payload: bytes, src: bytes, dst: bytes) -> None:
    o = hdr.options
    scapy_opts: list = []
    if o.mss is not None:
        scapy_opts.append(("MSS", o.mss))
    if o.wscale is not None:
        scapy_opts.append(("WScale", o.wscale))
    if o.sack_permitted:
        scapy_opts.append(("SAckOK", b""))
    if o.timestamps is not None:
        scapy_opts.append(("Timestamp", o.timestamps))
    if o.sack_blocks:
        scapy_opts.append(("SAck", tuple(x for block in o.sack_blocks for x in block)))
    pkt = IP(src=_ip(src), dst=_ip(dst)) / TCP(
        sport=hdr.sport, dport=hdr.dport, seq=hdr.seq, ack=hdr.ack, flags=int(hdr.flags),
        window=hdr.window, urgptr=hdr.urgent, options=scapy_opts,
    ) / payload
    wire = raw(pkt)
    if len(wire) - 20 - len(payload) > 60:
        return  # scapy does not refuse options over 40 bytes; we never build them
    got, rest = TcpHeader.parse(memoryview(wire)[20:], src, dst)
    assert got == hdr and bytes(rest) == payload


####################################################################
# Fuzz
####################################################################


@settings(max_examples=300)
@given(st.binary(max_size=80), addrs, addrs)
def test_arbitrary_bytes_only_raise_remote_protocol_error(data: bytes, src: bytes, dst: bytes) -> None:
    parse_or_reject(TcpHeader.parse, data, src, dst)


@settings(max_examples=300)
@given(st.binary(max_size=40))
def test_arbitrary_options_only_raise_remote_protocol_error(area: bytes) -> None:
    parse_or_reject(TcpOptions.parse, area)


@settings(max_examples=200)
@given(headers, payloads, st.data())
def test_mutated_segments_only_raise_remote_protocol_error(hdr: TcpHeader, payload: bytes, data: st.DataObject) -> None:
    frame = bytearray(hdr.emit(payload, SRC, DST))
    i = data.draw(st.integers(0, len(frame) - 1))
    frame[i] ^= data.draw(st.integers(1, 255))
    # One changed byte always breaks the checksum (it moves the sum by d or
    # 256 d, never a multiple of 0xFFFF), except in the data offset, which
    # changes what is header, not the sum.
    if i != 12:
        with pytest.raises(RemoteProtocolError):
            TcpHeader.parse(frame, SRC, DST)
    parse_or_reject(TcpHeader.parse, frame, SRC, DST)
    cut = data.draw(st.integers(0, len(frame)))
    parse_or_reject(TcpHeader.parse, frame[:cut], SRC, DST)


####################################################################
# Sequence arithmetic
####################################################################


def test_sequence_comparisons_wrap() -> None:
    assert seq_lt(SEQ_MASK, 0) and seq_gt(0, SEQ_MASK)
    assert seq_lt(0xFFFFFF00, 0x100) and not seq_lt(0x100, 0xFFFFFF00)
    assert seq_le(5, 5) and seq_ge(5, 5) and not seq_lt(5, 5)
    assert seq_diff(3, SEQ_MASK) == 4 and seq_diff(SEQ_MASK, 3) == -4
    assert seq_add(SEQ_MASK, 2) == 1 and seq_add(1, -2) == SEQ_MASK
    assert seq_max(SEQ_MASK, 1) == 1 and seq_min(SEQ_MASK, 1) == SEQ_MASK
    assert seq_diff(0, 1 << 31) == -(1 << 31)  # the ambiguous distance


@settings(max_examples=200)
@given(u32, st.integers(1, (1 << 31) - 1))
def test_a_number_is_before_anything_less_than_half_the_space_ahead(a: int, n: int) -> None:
    b = seq_add(a, n)
    assert seq_lt(a, b) and seq_gt(b, a) and seq_le(a, b) and not seq_ge(a, b)
    assert seq_diff(b, a) == n and seq_diff(a, b) == -n


####################################################################
# Helpers for the glue
####################################################################


def test_reset_for_follows_rfc9293_closed_state() -> None:
    syn = TcpHeader(5, 6, 100, 0, TcpFlags.SYN)
    assert reset_for(syn, 0) == TcpHeader(6, 5, 0, 101, TcpFlags.RST | TcpFlags.ACK)
    data = TcpHeader(5, 6, SEQ_MASK, 7, TcpFlags.ACK | TcpFlags.FIN)
    assert reset_for(data, 10) == TcpHeader(6, 5, 7, 0, TcpFlags.RST)
    nack = TcpHeader(5, 6, SEQ_MASK, 0, TcpFlags.FIN)
    assert reset_for(nack, 10).ack == 10
    assert reset_for(TcpHeader(5, 6, 1, 2, TcpFlags.RST), 0) is None


def test_rfc6528_isns_grow_with_time_and_differ_by_connection() -> None:
    key = bytes(range(32))
    a = isn_rfc6528(key, SRC, 1000, DST, 80, 10.0)
    assert isn_rfc6528(key, SRC, 1000, DST, 80, 11.0) == seq_add(a, 250_000)
    assert isn_rfc6528(key, SRC, 1001, DST, 80, 10.0) != a
    assert isn_rfc6528(bytes(32), SRC, 1000, DST, 80, 10.0) != a
    with pytest.raises(ValueError):
        isn_rfc6528(b"short", SRC, 1, DST, 2, 0.0)


def test_headers_are_frozen_values() -> None:
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        SYN_HDR.seq = 5  # type: ignore[misc]
