"""IPv4 header, fragmentation and reassembly, with scapy as an independent oracle."""

from __future__ import annotations

import tracemalloc

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.all import IP, Raw, raw
from scapy.all import fragment as scapy_fragment
from scapy.layers.inet import IPOption_NOP, defragment

from trionet.protocols.checksum import internet_checksum
from trionet.protocols.errors import RemoteProtocolError
from trionet.protocols.ipv4 import (
    IPPROTO_ICMP,
    IPPROTO_TCP,
    IPPROTO_UDP,
    IPv4Header,
    Reassembler,
    ReassemblyStatistics,
    fragment,
    ip_aton,
    ip_ntoa,
    is_broadcast,
    is_loopback,
    is_multicast,
    is_unspecified,
)

A = ip_aton("10.0.0.1")
B = ip_aton("10.0.0.2")

# The example header from RFC 1071-style walkthroughs: 192.168.0.1 -> .199,
# UDP, 115 bytes, DF, TTL 64, checksum 0xb861.
WIRE = bytes.fromhex("4500007300004000" "4011b861c0a80001" "c0a800c7")
HEADER = IPv4Header(
    ip_aton("192.168.0.1"), ip_aton("192.168.0.199"), IPPROTO_UDP,
    ttl=64, df=True, total_length=0x73,
)

addrs = st.binary(min_size=4, max_size=4)
headers = st.builds(
    IPv4Header,
    src=addrs,
    dst=addrs,
    proto=st.integers(0, 255),
    ttl=st.integers(0, 255),
    tos=st.integers(0, 255),
    ident=st.integers(0, 0xFFFF),
    df=st.booleans(),
    mf=st.booleans(),
    frag_offset=st.integers(0, 1000).map(lambda n: n * 8),
)
payloads = st.binary(max_size=600)


def check(stats: ReassemblyStatistics) -> None:
    """The identity documented on ReassemblyStatistics."""
    assert stats.datagrams == (
        stats.reassembled + stats.timeouts + stats.overlaps + stats.oversize
        + stats.evicted + stats.in_progress
    )
    assert stats.fragments >= stats.malformed + stats.duplicates


def add_all(r: Reassembler, pieces: list[bytes], now: float = 0.0) -> list[tuple[IPv4Header, bytes]]:
    done = []
    for piece in pieces:
        out = r.add(*IPv4Header.parse(piece), now)
        if out is not None:
            done.append(out)
    return done


####################################################################
# Header: byte literals and round trips
####################################################################


def test_parse_byte_literal() -> None:
    hdr, payload = IPv4Header.parse(WIRE + bytes(95))
    assert hdr == HEADER
    assert not hdr.is_fragment
    assert len(payload) == 95


def test_emit_byte_literal() -> None:
    assert HEADER.emit(bytes(95))[:20] == WIRE


def test_link_padding_is_cut_off() -> None:
    packet = IPv4Header(A, B, IPPROTO_UDP).emit(b"abc") + bytes(30)
    hdr, payload = IPv4Header.parse(packet)
    assert hdr.total_length == 23
    assert bytes(payload) == b"abc"


@settings(max_examples=150)
@given(headers, payloads)
def test_emit_then_parse_round_trips(hdr: IPv4Header, payload: bytes) -> None:
    wire = hdr.emit(payload)
    assert internet_checksum(wire[:20]) == 0
    got, data = IPv4Header.parse(wire)
    assert got == attrs.evolve(hdr, total_length=20 + len(payload))
    assert bytes(data) == payload
    assert got.is_fragment == (hdr.mf or hdr.frag_offset != 0)
    assert got.emit(data) == wire


def test_options_are_skipped_and_not_emitted() -> None:
    pkt = IP(src="10.0.0.1", dst="10.0.0.2", proto=IPPROTO_UDP, options=[IPOption_NOP()] * 8)
    hdr, payload = IPv4Header.parse(raw(pkt / Raw(b"data")))
    assert hdr.ihl == 7
    assert bytes(payload) == b"data"
    assert hdr.emit(payload)[0] == 0x45


def test_reserved_flag_is_ignored_on_input_and_cleared_on_output() -> None:
    wire = raw(IP(src="10.0.0.1", dst="10.0.0.2", flags="evil+DF", id=9) / Raw(b"x"))
    assert wire[6] & 0x80
    hdr, payload = IPv4Header.parse(wire)
    assert hdr.df and not hdr.mf
    assert hdr.emit(payload)[6] & 0x80 == 0


####################################################################
# Header: scapy as the oracle, both ways
####################################################################


@settings(max_examples=60)
@given(headers, payloads, st.integers(0, 4), st.booleans())
def test_scapy_packets_parse_to_the_same_fields(
    hdr: IPv4Header, payload: bytes, n_options: int, evil: bool
) -> None:
    flags = (4 if evil else 0) | (2 if hdr.df else 0) | (1 if hdr.mf else 0)
    pkt = IP(
        src=ip_ntoa(hdr.src), dst=ip_ntoa(hdr.dst), proto=hdr.proto, ttl=hdr.ttl, tos=hdr.tos,
        id=hdr.ident, flags=flags, frag=hdr.frag_offset // 8,
        options=[IPOption_NOP()] * (4 * n_options),
    ) / Raw(payload)
    got, data = IPv4Header.parse(raw(pkt))
    assert got == attrs.evolve(
        hdr, ihl=5 + n_options, total_length=20 + 4 * n_options + len(payload)
    )
    assert bytes(data) == payload


@settings(max_examples=60)
@given(headers, payloads)
def test_our_packets_decode_in_scapy(hdr: IPv4Header, payload: bytes) -> None:
    wire = hdr.emit(payload)
    pkt = IP(wire)
    assert (pkt.version, pkt.ihl, pkt.len) == (4, 5, 20 + len(payload))
    assert (pkt.src, pkt.dst) == (ip_ntoa(hdr.src), ip_ntoa(hdr.dst))
    assert (pkt.proto, pkt.ttl, pkt.tos, pkt.id) == (hdr.proto, hdr.ttl, hdr.tos, hdr.ident)
    assert (pkt.flags.DF, pkt.flags.MF, pkt.flags.evil) == (hdr.df, hdr.mf, False)
    assert pkt.frag * 8 == hdr.frag_offset
    ours = pkt.chksum
    # Rebuilt over the payload as raw bytes: scapy's own layers may rewrite
    # the packet when built (IGMP, proto 2, adds a Router Alert option).
    pkt.remove_payload()
    del pkt.chksum
    assert IP(raw(pkt / Raw(payload))).chksum == ours


####################################################################
# Header: every failure is a RemoteProtocolError with its reason
####################################################################


def reason(data: bytes) -> str:
    with pytest.raises(RemoteProtocolError) as info:
        IPv4Header.parse(data)
    return info.value.reason


def with_checksum(data: bytes, hlen: int = 20) -> bytes:
    h = bytearray(data)
    h[10:12] = b"\0\0"
    h[10:12] = internet_checksum(h[:hlen]).to_bytes(2, "big")
    return bytes(h)


def test_parse_reasons_in_order() -> None:
    good = IPv4Header(A, B, IPPROTO_UDP).emit(bytes(8))
    assert reason(good[:19]) == "short_header"
    assert reason(b"\x65" + good[1:]) == "bad_version"
    assert reason(b"\x44" + good[1:]) == "bad_ihl"
    assert reason(b"\x4f" + good[1:]) == "bad_ihl"  # 60 bytes claimed, 28 present
    assert reason(good[:2] + (29).to_bytes(2, "big") + good[4:]) == "bad_length"
    assert reason(good[:2] + (19).to_bytes(2, "big") + good[4:]) == "bad_length"
    assert reason(good[:10] + b"\x12\x34" + good[12:]) == "bad_checksum"
    # Offset 65528 and 8 bytes of data end at 65536.
    assert reason(with_checksum(good[:6] + b"\x1f\xff" + good[8:20]) + good[20:]) == "bad_fragment"
    # The version is checked before the length: a bad version wins.
    assert reason(b"\x6f" + good[1:]) == "bad_version"


@settings(max_examples=300)
@given(st.binary(max_size=80))
def test_parse_raises_only_remote_protocol_error_on_junk(data: bytes) -> None:
    try:
        IPv4Header.parse(data)
    except RemoteProtocolError:
        pass


@settings(max_examples=300)
@given(
    headers,
    payloads,
    st.lists(st.tuples(st.integers(0, 60), st.integers(0, 255)), max_size=4),
    st.integers(0, 700),
    st.booleans(),
)
def test_parse_raises_only_remote_protocol_error_on_mutations(
    hdr: IPv4Header, payload: bytes, edits: list[tuple[int, int]], cut: int, fix: bool
) -> None:
    wire = bytearray(hdr.emit(payload))
    for pos, value in edits:
        if pos < len(wire):
            wire[pos] = value
    data = bytes(wire[:cut])
    hlen = (data[0] & 15) * 4 if data else 0
    if fix and 20 <= hlen <= len(data):
        # Repair the checksum so the checks after it get exercised too.
        data = with_checksum(data, hlen)
    try:
        got, view = IPv4Header.parse(data)
    except RemoteProtocolError:
        return
    assert len(view) == got.total_length - 4 * got.ihl


####################################################################
# Addresses
####################################################################


def test_address_helpers() -> None:
    assert ip_aton("10.0.0.1") == b"\x0a\x00\x00\x01"
    assert ip_ntoa(b"\xc0\xa8\x00\xc7") == "192.168.0.199"
    for bad in ("10.1", "256.0.0.1", "a.b.c.d", ""):
        with pytest.raises(ValueError, match="dotted quad"):
            ip_aton(bad)
    with pytest.raises(ValueError, match="4 bytes"):
        ip_ntoa(b"\x01\x02\x03")
    assert is_broadcast(ip_aton("255.255.255.255")) and not is_broadcast(A)
    assert is_multicast(ip_aton("224.0.0.1")) and is_multicast(ip_aton("239.255.255.255"))
    assert not is_multicast(ip_aton("240.0.0.1"))
    assert is_loopback(ip_aton("127.1.2.3")) and not is_loopback(A)
    assert is_unspecified(ip_aton("0.0.0.0")) and not is_unspecified(A)
    assert (IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP) == (1, 6, 17)
    assert "10.0.0.1" in repr(IPv4Header(A, B, 1))


def test_emit_refuses_impossible_headers() -> None:
    for bad, match in [
        (IPv4Header(b"\x01\x02\x03", B, 1), "4-byte"),
        (IPv4Header(A, B, 1, frag_offset=4), "multiple of 8"),
        (IPv4Header(A, B, 1, frag_offset=65536), "multiple of 8"),
        (IPv4Header(A, B, 256), "out of range"),
        (IPv4Header(A, B, 1, ident=-1), "out of range"),
    ]:
        with pytest.raises(ValueError, match=match):
            bad.emit(b"")
    with pytest.raises(ValueError, match="at most 65535"):
        IPv4Header(A, B, 1).emit(bytes(65516))


####################################################################
# Fragmentation
####################################################################


@settings(max_examples=60)
@given(headers, st.binary(min_size=1, max_size=3000), st.integers(28, 1600))
def test_fragments_fit_and_cover_the_payload(hdr: IPv4Header, payload: bytes, mtu: int) -> None:
    hdr = attrs.evolve(hdr, df=False)
    pieces = fragment(hdr, payload, mtu)
    data = b""
    for i, piece in enumerate(pieces):
        assert len(piece) <= mtu
        got, view = IPv4Header.parse(piece)
        assert got.frag_offset == hdr.frag_offset + len(data)
        last = i == len(pieces) - 1
        assert got.mf == (hdr.mf if last else True)
        assert last or len(view) % 8 == 0
        assert (got.src, got.dst, got.proto, got.ident, got.ttl, got.tos) == (
            hdr.src, hdr.dst, hdr.proto, hdr.ident, hdr.ttl, hdr.tos,
        )
        data += view
    assert data == payload


def test_fragment_errors() -> None:
    hdr = IPv4Header(A, B, IPPROTO_UDP, df=True)
    with pytest.raises(ValueError, match="DF"):
        fragment(hdr, bytes(1481), 1500)
    assert fragment(hdr, bytes(1480), 1500) == [hdr.emit(bytes(1480))]  # fits: no error
    with pytest.raises(ValueError, match="below 28"):
        fragment(attrs.evolve(hdr, df=False), bytes(4), 27)
    with pytest.raises(ValueError, match="does not fit"):
        fragment(IPv4Header(A, B, 1, frag_offset=65000), bytes(1000), 576)


def test_refragmenting_a_fragment_reassembles() -> None:
    hdr = IPv4Header(A, B, IPPROTO_UDP, ident=77)
    payload = bytes(range(256)) * 16
    first, middle, *rest = fragment(hdr, payload, 1500)
    smaller = fragment(*IPv4Header.parse(middle), 576)
    assert len(smaller) == 3
    r = Reassembler()
    (done,) = add_all(r, [*rest, *smaller[::-1], first])
    assert done[1] == payload
    assert done[0] == attrs.evolve(hdr, total_length=20 + len(payload))


@settings(max_examples=40)
@given(st.binary(min_size=1, max_size=4000), st.integers(1, 185).map(lambda n: n * 8), st.data())
def test_scapy_fragments_reassemble_in_any_order(payload: bytes, size: int, data) -> None:
    pkt = IP(src="10.0.0.1", dst="10.0.0.2", proto=IPPROTO_UDP, id=4242, ttl=9) / Raw(payload)
    pieces = [raw(p) for p in scapy_fragment(pkt, size)]
    order = data.draw(st.permutations(pieces))
    # Duplicates of pieces already given, before the last one completes it.
    dups = data.draw(st.lists(st.sampled_from(order[:-1]), max_size=3)) if len(order) > 1 else []
    r = Reassembler()
    done = add_all(r, [*order[:-1], *dups, order[-1]])
    assert len(done) == 1
    hdr, out = done[0]
    assert out == payload
    assert (hdr.src, hdr.dst, hdr.proto, hdr.ident, hdr.ttl) == (A, B, IPPROTO_UDP, 4242, 9)
    assert not hdr.is_fragment and hdr.total_length == 20 + len(payload)
    stats = r.statistics()
    assert (stats.reassembled, stats.duplicates, stats.fragments) == (1, len(dups), len(order) + len(dups))
    assert (stats.in_progress, stats.buffered_bytes) == (0, 0)
    check(stats)


@settings(max_examples=40)
@given(st.binary(min_size=1, max_size=4000), st.integers(28, 1500), st.integers(0, 0xFFFF))
def test_our_fragments_reassemble_in_scapy(payload: bytes, mtu: int, ident: int) -> None:
    hdr = IPv4Header(A, B, IPPROTO_UDP, ident=ident, ttl=33)
    pieces = fragment(hdr, payload, mtu)
    (whole,) = defragment([IP(p) for p in pieces])
    assert raw(whole) == hdr.emit(payload)


####################################################################
# Reassembly: policies
####################################################################


def pieces_of(payload: bytes, mtu: int = 36, ident: int = 1) -> list[bytes]:
    return fragment(IPv4Header(A, B, IPPROTO_UDP, ident=ident), payload, mtu)


def test_in_order_and_reversed() -> None:
    payload = bytes(range(100))
    for order in (1, -1):
        r = Reassembler()
        (done,) = add_all(r, pieces_of(payload)[::order])
        assert done[1] == payload
        check(r.statistics())


def test_exact_duplicates_are_counted_and_harmless() -> None:
    a, b, c = pieces_of(bytes(range(40)))
    r = Reassembler()
    assert add_all(r, [a, a, c, c, a]) == []
    (done,) = add_all(r, [b])
    assert done[1] == bytes(range(40))
    stats = r.statistics()
    assert (stats.duplicates, stats.reassembled, stats.overlaps) == (3, 1, 0)
    check(stats)


def frag(offset: int, data: bytes, mf: bool = True, ident: int = 1) -> tuple[IPv4Header, bytes]:
    return IPv4Header(A, B, IPPROTO_UDP, ident=ident, mf=mf, frag_offset=offset), data


def test_overlap_with_same_bytes_keeps_only_the_new_part() -> None:
    payload = bytes(range(48))
    r = Reassembler()
    assert r.add(*frag(8, payload[8:32]), 0) is None
    assert r.add(*frag(0, payload[0:16]), 0) is None  # overlaps [8, 16) identically
    assert r.statistics().buffered_bytes == 32
    assert r.add(*frag(24, payload[24:48], mf=False), 0) == (
        IPv4Header(A, B, IPPROTO_UDP, ident=1, total_length=68), payload
    )
    stats = r.statistics()
    assert (stats.overlaps, stats.duplicates, stats.reassembled) == (0, 0, 1)


def test_overlap_with_different_bytes_drops_the_datagram() -> None:
    r = Reassembler()
    r.add(*frag(0, bytes(16)), 0)
    assert r.add(*frag(8, b"\x01" * 16), 0) is None
    stats = r.statistics()
    assert (stats.overlaps, stats.in_progress, stats.buffered_bytes) == (1, 0, 0)
    # The rest cannot complete it: the remaining fragment starts afresh.
    assert r.add(*frag(16, bytes(8), mf=False), 0) is None
    assert r.statistics().in_progress == 1
    check(r.statistics())


def test_fragments_disagreeing_about_the_end_drop_the_datagram() -> None:
    for second in (frag(16, bytes(16), mf=False), frag(40, bytes(8)), frag(0, bytes(8), mf=False)):
        r = Reassembler()
        r.add(*frag(16, bytes(8), mf=False), 0)  # the datagram ends at 24
        assert r.add(*second, 0) is None
        assert r.statistics().overlaps == 1
        check(r.statistics())


def test_malformed_fragments_are_dropped_alone() -> None:
    r = Reassembler()
    r.add(*frag(0, bytes(8)), 0)
    for bad in (frag(8, bytes(7)), frag(8, b""), frag(12, bytes(8)), frag(-8, bytes(8))):
        assert r.add(*bad, 0) is None
    stats = r.statistics()
    assert (stats.malformed, stats.in_progress, stats.fragments) == (4, 1, 5)
    # A last fragment may have any length.
    assert r.add(*frag(8, b"xyz", mf=False), 0) == (
        IPv4Header(A, B, IPPROTO_UDP, ident=1, total_length=31), bytes(8) + b"xyz"
    )


def test_oversize_datagrams_are_dropped() -> None:
    # Parses (65512 + 16 <= 65535), but with a 20-byte header the datagram
    # would be 65548 bytes: the ping of death.
    wire = IPv4Header(A, B, IPPROTO_UDP, ident=3, frag_offset=65512).emit(bytes(16))
    r = Reassembler()
    r.add(*frag(0, bytes(8), ident=3), 0)
    assert r.add(*IPv4Header.parse(wire), 0) is None  # drops the datagram
    assert r.add(*IPv4Header.parse(wire), 0) is None  # alone, it drops at once
    stats = r.statistics()
    assert (stats.oversize, stats.datagrams, stats.in_progress) == (2, 2, 0)
    check(stats)
    # The header counts too: options make a datagram that fits without them oversize.
    r = Reassembler()
    r.add(attrs.evolve(frag(0, b"")[0], ihl=15), bytes(8), 0)
    r.add(*frag(8, bytes(65500), mf=False), 0)
    assert r.statistics().oversize == 1
    check(r.statistics())


def test_too_many_pieces_evicts_the_datagram() -> None:
    r = Reassembler(max_fragments=4)
    for i in range(4):
        r.add(*frag(16 * i, bytes(8)), 0)
    assert r.statistics().in_progress == 1
    r.add(*frag(200, bytes(8)), 0)
    stats = r.statistics()
    assert (stats.evicted, stats.in_progress, stats.buffered_bytes) == (1, 0, 0)


####################################################################
# Reassembly: time
####################################################################


def test_timeout_returns_the_first_fragment_for_icmp() -> None:
    r = Reassembler(timeout=30.0)
    assert r.next_deadline() is None
    first_hdr, first_data = frag(0, b"A" * 16)
    r.add(first_hdr, first_data, now=5.0)
    r.add(*frag(8, b"B" * 8, ident=2), now=10.0)  # no first fragment
    r.add(*frag(16, b"C" * 8, ident=1), now=20.0)  # does not extend the timer
    assert r.next_deadline() == 35.0
    assert r.expire(34.9) == []
    assert r.expire(35.0) == [(first_hdr, b"A" * 16)]
    assert r.next_deadline() == 40.0
    assert r.expire(100.0) == []
    assert r.next_deadline() is None
    stats = r.statistics()
    assert (stats.timeouts, stats.in_progress, stats.buffered_bytes) == (2, 0, 0)
    check(stats)
    # What the glue sends back quotes it: the fragment re-emitted parses.
    again, data = IPv4Header.parse(first_hdr.emit(first_data))
    assert again.mf and bytes(data) == b"A" * 16


def test_constructor_checks_its_bounds() -> None:
    with pytest.raises(ValueError):
        Reassembler(max_datagrams=0)
    with pytest.raises(ValueError):
        Reassembler(timeout=0)


####################################################################
# Reassembly: bounds under floods, and arbitrary input
####################################################################


def test_a_flood_of_incomplete_datagrams_stays_bounded_and_counted() -> None:
    r = Reassembler(max_datagrams=64, max_bytes=1 << 20)
    tracemalloc.start()
    try:
        for i in range(10_000):
            hdr = IPv4Header(A, B, IPPROTO_UDP, ident=i, mf=True)
            r.add(hdr, bytes([i & 0xFF]) * 1480, now=i * 0.001)
            stats = r.statistics()
            assert stats.in_progress <= 64 and stats.buffered_bytes <= 1 << 20
            if i == 5000:
                # Evicting the oldest keeps reassembly live: back-to-back
                # fragments still complete mid-flood.
                assert len(add_all(r, fragment(IPv4Header(A, B, 17, ident=60000), bytes(3000), 1500), i * 0.001)) == 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20  # 64 * 1480 bytes of data plus bookkeeping
    stats = r.statistics()
    assert stats.datagrams == 10_001 and stats.reassembled == 1
    assert stats.evicted == 10_000 - 64
    check(stats)


def test_the_byte_bound_evicts_oldest_first() -> None:
    r = Reassembler(max_datagrams=1000, max_bytes=10_000)
    for i in range(100):
        r.add(*frag(0, bytes(1000), ident=i), 0)
        assert r.statistics().buffered_bytes <= 10_000
    stats = r.statistics()
    assert (stats.in_progress, stats.buffered_bytes, stats.evicted) == (10, 10_000, 90)
    # The survivors are the newest; a datagram larger than the bound is refused alone.
    r.add(*frag(0, bytes(10_008), ident=500), 0)
    r.add(*frag(1000, bytes(8), ident=95), 0)
    assert r.add(*frag(1008, bytes(8), mf=False, ident=95), 0) is not None
    stats = r.statistics()
    assert (stats.in_progress, stats.evicted, stats.reassembled) == (8, 92, 1)
    check(stats)


fragments = st.tuples(
    st.integers(0, 3),  # ident
    st.one_of(st.integers(0, 40).map(lambda n: n * 8), st.integers(-16, 400)),
    st.one_of(st.integers(1, 8).map(lambda n: n * 8), st.integers(0, 64)),  # length
    st.booleans(),  # mf
    st.sampled_from([0, 0, 0, 1]),  # 0: the bytes every fragment agrees on
    st.floats(0, 20),  # time step
)


@settings(max_examples=200)
@given(
    st.lists(fragments, max_size=40),
    st.integers(1, 4),
    st.integers(1, 300),
    st.integers(1, 8),
)
def test_arbitrary_fragment_sequences_never_raise_and_balance(
    seq, max_datagrams: int, max_bytes: int, max_fragments: int
) -> None:
    r = Reassembler(
        max_datagrams=max_datagrams, max_bytes=max_bytes, timeout=30, max_fragments=max_fragments
    )
    now = 0.0
    for ident, offset, length, mf, fill, step in seq:
        now += step
        hdr = IPv4Header(A, B, IPPROTO_UDP, ident=ident, mf=mf, frag_offset=offset)
        data = bytes(((offset + k) & 0xFF) ^ fill for k in range(length))
        done = r.add(hdr, memoryview(data), now)
        if done is not None:
            out_hdr, out = done
            assert not out_hdr.is_fragment and out_hdr.total_length == 20 + len(out)
            if not any(f[4] for f in seq):
                assert out == bytes(k & 0xFF for k in range(len(out)))
        if step > 10:
            for first_hdr, first_data in r.expire(now):
                assert first_hdr.frag_offset == 0 and first_data
        stats = r.statistics()
        check(stats)
        assert stats.in_progress <= max_datagrams
        assert stats.buffered_bytes <= max_bytes
        deadline = r.next_deadline()
        assert (deadline is None) == (stats.in_progress == 0)
    r.expire(now + 31)
    stats = r.statistics()
    assert (stats.in_progress, stats.buffered_bytes) == (0, 0)
    check(stats)
