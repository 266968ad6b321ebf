"""IPv6 header, extension headers, addresses, fragmentation and reassembly, with scapy as an independent oracle."""

from __future__ import annotations

import ipaddress
import struct
import tracemalloc

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.all import UDP, Raw, raw
from scapy.layers.inet6 import (
    HBHOptUnknown,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    Pad1,
    PadN,
    RouterAlert,
    defragment6,
)
from scapy.layers.inet6 import fragment6 as scapy_fragment6

from trionet.protocols.errors import LocalProtocolError, RemoteProtocolError
from trionet.protocols.ipv6 import (
    ALL_MLDV2_ROUTERS,
    ALL_NODES,
    ALL_ROUTERS,
    IPPROTO_DSTOPTS,
    IPPROTO_FRAGMENT,
    IPPROTO_HOPOPTS,
    IPPROTO_ICMPV6,
    IPPROTO_NONE,
    IPPROTO_ROUTING,
    IPPROTO_TCP,
    IPPROTO_UDP,
    IPV6_HDR_LEN,
    IPV6_MIN_MTU,
    LOOPBACK,
    UNSPECIFIED,
    ExtChain,
    FragmentHeader,
    IPv6Header,
    ParameterProblem,
    Reassembler6,
    Reassembly6Statistics,
    address_from_prefix,
    eui64_interface_id,
    fragment6,
    ip6_aton,
    ip6_ntoa,
    is_link_local6,
    is_loopback6,
    is_multicast6,
    is_solicited_node6,
    is_unique_local6,
    is_unspecified6,
    link_local_address,
    multicast_mac,
    multicast_scope,
    router_alert_hop_by_hop,
    scope6,
    solicited_node_group,
    walk_extensions,
)

A = ip6_aton("2001:db8::1")
B = ip6_aton("2001:db8::2")

# 2001:db8::1 -> 2001:db8::2, traffic class 0xe1, flow label 0x23456, UDP,
# 8 bytes of payload, hop limit 64.
WIRE = bytes.fromhex(
    "6e123456" "0008" "11" "40"
    "20010db8000000000000000000000001"
    "20010db8000000000000000000000002"
)
HEADER = IPv6Header(A, B, IPPROTO_UDP, hop_limit=64, traffic_class=0xE1, flow_label=0x23456, payload_length=8)

addrs = st.binary(min_size=16, max_size=16)
# Addresses with runs of zero groups, to exercise "::" placement.
grouped_addrs = st.lists(
    st.sampled_from([0, 0, 0, 1, 0xFFFF, 0xDB8, 0x2001]) | st.integers(0, 0xFFFF), min_size=8, max_size=8
).map(lambda words: struct.pack("!8H", *words))
headers = st.builds(
    IPv6Header,
    src=addrs,
    dst=addrs,
    next_header=st.integers(0, 255),
    hop_limit=st.integers(0, 255),
    traffic_class=st.integers(0, 255),
    flow_label=st.integers(0, 0xFFFFF),
)
payloads = st.binary(max_size=600)


def check(stats: Reassembly6Statistics) -> None:
    """The identities documented on Reassembly6Statistics."""
    assert stats.datagrams == (
        stats.reassembled + stats.timeouts + stats.overlaps + stats.oversize
        + stats.evicted + stats.in_progress
    )
    assert stats.fragments >= stats.malformed + stats.duplicates + stats.discarded


def add(r: Reassembler6, packet: bytes, now: float = 0.0) -> bytes | None:
    hdr, payload = IPv6Header.parse(packet)
    chain = walk_extensions(hdr.next_header, payload, dst_multicast=is_multicast6(hdr.dst))
    return r.add(packet, hdr, chain, now)


def add_all(r: Reassembler6, pieces: list[bytes], now: float = 0.0) -> list[bytes]:
    return [out for piece in pieces if (out := add(r, piece, now)) is not None]


def frag(
    offset: int, data: bytes, more: bool = True, ident: int = 1, nh: int = IPPROTO_UDP,
    unfragmentable: bytes = b"",
) -> bytes:
    """A fragment packet A -> B; ``unfragmentable`` is whole headers whose
    first byte (their Next Header) is set to 44 here."""
    fh = FragmentHeader(nh, offset, more, ident).emit(data)
    if unfragmentable:
        return IPv6Header(A, B, IPPROTO_HOPOPTS).emit(bytes([IPPROTO_FRAGMENT]) + unfragmentable[1:] + fh)
    return IPv6Header(A, B, IPPROTO_FRAGMENT).emit(fh)


####################################################################
# Header: byte literals and round trips
####################################################################


def test_parse_byte_literal() -> None:
    hdr, payload = IPv6Header.parse(WIRE + b"abcdefgh")
    assert hdr == HEADER
    assert bytes(payload) == b"abcdefgh"


def test_emit_byte_literal() -> None:
    assert HEADER.emit(b"abcdefgh") == WIRE + b"abcdefgh"
    # payload_length is ignored: emit computes it.
    assert attrs.evolve(HEADER, payload_length=999).emit(b"abcdefgh")[:40] == WIRE


def test_link_padding_is_cut_off() -> None:
    packet = IPv6Header(A, B, IPPROTO_UDP).emit(b"abc") + bytes(30)
    hdr, payload = IPv6Header.parse(packet)
    assert hdr.payload_length == 3
    assert bytes(payload) == b"abc"


@settings(max_examples=150)
@given(headers, payloads)
def test_emit_then_parse_round_trips(hdr: IPv6Header, payload: bytes) -> None:
    if hdr.next_header == IPPROTO_HOPOPTS and not payload:
        return  # a jumbogram, refused (test_parse_reasons_in_order)
    wire = hdr.emit(payload)
    got, data = IPv6Header.parse(wire)
    assert got == attrs.evolve(hdr, payload_length=len(payload))
    assert bytes(data) == payload
    assert got.emit(data) == wire
    assert IPv6Header.parse(memoryview(wire))[0] == got
    assert IPv6Header.parse(bytearray(wire))[0] == got


def test_repr_shows_addresses_as_text() -> None:
    assert "src=2001:db8::1" in repr(HEADER)
    assert "b'\\x01'" in repr(IPv6Header(b"\x01", B, 17))  # malformed values still print


####################################################################
# Header: scapy as the oracle, both ways
####################################################################


@settings(max_examples=60)
@given(headers, payloads)
def test_our_packets_decode_in_scapy(hdr: IPv6Header, payload: bytes) -> None:
    pkt = IPv6(hdr.emit(payload))
    assert (pkt.version, pkt.plen, pkt.nh, pkt.hlim) == (6, len(payload), hdr.next_header, hdr.hop_limit)
    assert (pkt.tc, pkt.fl) == (hdr.traffic_class, hdr.flow_label)
    assert (pkt.src, pkt.dst) == (ip6_ntoa(hdr.src), ip6_ntoa(hdr.dst))


@settings(max_examples=60)
@given(headers, payloads)
def test_scapy_packets_parse_to_the_same_fields(hdr: IPv6Header, payload: bytes) -> None:
    if hdr.next_header == IPPROTO_HOPOPTS and not payload:
        return
    pkt = IPv6(
        src=ip6_ntoa(hdr.src), dst=ip6_ntoa(hdr.dst), nh=hdr.next_header, hlim=hdr.hop_limit,
        tc=hdr.traffic_class, fl=hdr.flow_label,
    ) / Raw(payload)
    got, data = IPv6Header.parse(raw(pkt))
    assert got == attrs.evolve(hdr, payload_length=len(payload))
    assert bytes(data) == payload


####################################################################
# Header: every failure has its reason
####################################################################


def reason(data: bytes) -> str:
    with pytest.raises(RemoteProtocolError) as info:
        IPv6Header.parse(data)
    assert not isinstance(info.value, ParameterProblem)
    return info.value.reason


def test_parse_reasons_in_order() -> None:
    good = IPv6Header(A, B, IPPROTO_UDP).emit(bytes(8))
    assert reason(good[:39]) == "short_header"
    assert reason(b"") == "short_header"
    assert reason(b"\x40" + good[1:]) == "bad_version"
    assert reason(good[:-1]) == "bad_length"  # claims 8 bytes, has 7
    jumbo = IPv6Header(A, B, IPPROTO_HOPOPTS).emit(b"")
    assert reason(jumbo + bytes(8)) == "jumbogram"
    # The version is checked before the length: a bad version wins.
    assert reason(b"\x40" + good[1:-1]) == "bad_version"
    # Payload length 0 with anything else is an empty packet, not a jumbogram.
    assert IPv6Header.parse(IPv6Header(A, B, IPPROTO_NONE).emit())[0].payload_length == 0


def test_emit_refuses_impossible_headers() -> None:
    with pytest.raises(LocalProtocolError, match="at most 65535"):
        IPv6Header(A, B, IPPROTO_UDP).emit(bytes(65536))
    assert len(IPv6Header(A, B, IPPROTO_UDP).emit(bytes(65535))) == 65575
    for bad, match in [
        (IPv6Header(A[:15], B, 17), "16-byte"),
        (IPv6Header(A, B, 256), "out of range"),
        (IPv6Header(A, B, 17, hop_limit=256), "out of range"),
        (IPv6Header(A, B, 17, traffic_class=256), "out of range"),
        (IPv6Header(A, B, 17, flow_label=0x100000), "out of range"),
        (IPv6Header(A, B, 17, flow_label=-1), "out of range"),
    ]:
        with pytest.raises(ValueError, match=match):
            bad.emit(b"")


@settings(max_examples=300)
@given(st.binary(max_size=120))
def test_parse_raises_only_remote_protocol_error_on_junk(data: bytes) -> None:
    try:
        hdr, payload = IPv6Header.parse(data)
    except RemoteProtocolError:
        return
    assert len(payload) == hdr.payload_length <= len(data) - 40


####################################################################
# Addresses
####################################################################


@settings(max_examples=300)
@given(grouped_addrs | addrs)
def test_ntoa_matches_ipaddress_and_round_trips(addr: bytes) -> None:
    text = ip6_ntoa(addr)
    ours = ipaddress.IPv6Address(addr)
    if ours.ipv4_mapped is not None:
        assert text == f"::ffff:{ours.ipv4_mapped}"  # RFC 5952 section 5
    else:
        assert text == str(ours)
    assert ip6_aton(text) == addr
    assert ip6_aton(ours.exploded) == addr


def test_rfc5952_vectors() -> None:
    for text, canonical in [
        ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
        ("2001:db8:0:0:0:0:2:1", "2001:db8::2:1"),
        ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),  # 4.2.2: one zero group stays
        ("2001:0:0:1:0:0:0:1", "2001:0:0:1::1"),  # 4.2.3: the longest run
        ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),  # 4.2.3: the first of equal runs
        ("2001:DB8::AB", "2001:db8::ab"),  # 4.3: lower case
        ("::", "::"),
        ("::1", "::1"),
        ("1::", "1::"),
        ("::ffff:192.0.2.1", "::ffff:192.0.2.1"),
        ("::ffff:c000:0201", "::ffff:192.0.2.1"),
        ("fe80::5054:ff:fe12:3456", "fe80::5054:ff:fe12:3456"),
    ]:
        assert ip6_ntoa(ip6_aton(text)) == canonical


def test_aton_and_ntoa_refuse_bad_input() -> None:
    for bad in ("", "1", "10.0.0.1", "1::2::3", "12345::", "g::1", ":::", " ::1", "1:2:3:4:5:6:7:8:9"):
        with pytest.raises(ValueError, match="not an IPv6 address"):
            ip6_aton(bad)
    with pytest.raises(ValueError, match="scope id"):
        ip6_aton("fe80::1%eth0")
    with pytest.raises(ValueError, match="16 bytes"):
        ip6_ntoa(bytes(15))


def test_well_known_addresses() -> None:
    assert ip6_ntoa(UNSPECIFIED) == "::"
    assert ip6_ntoa(LOOPBACK) == "::1"
    assert ip6_ntoa(ALL_NODES) == "ff02::1"
    assert ip6_ntoa(ALL_ROUTERS) == "ff02::2"
    assert ip6_ntoa(ALL_MLDV2_ROUTERS) == "ff02::16"
    assert (IPV6_HDR_LEN, IPV6_MIN_MTU) == (40, 1280)
    assert (IPPROTO_HOPOPTS, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ROUTING, IPPROTO_FRAGMENT) == (0, 6, 17, 43, 44)
    assert (IPPROTO_ICMPV6, IPPROTO_NONE, IPPROTO_DSTOPTS) == (58, 59, 60)


@settings(max_examples=300)
@given(grouped_addrs | addrs | st.sampled_from([
    LOOPBACK, UNSPECIFIED, ALL_NODES, ip6_aton("fe80::1"), ip6_aton("febf::1"), ip6_aton("fec0::1"),
    ip6_aton("fc00::1"), ip6_aton("fdff::1"), ip6_aton("ff02::1:ff00:1"), ip6_aton("ff05::2"),
]))
def test_predicates_agree_with_ipaddress(addr: bytes) -> None:
    ref = ipaddress.IPv6Address(addr)
    assert is_multicast6(addr) == ref.is_multicast
    assert is_link_local6(addr) == ref.is_link_local
    assert is_unspecified6(addr) == ref.is_unspecified
    assert is_loopback6(addr) == ref.is_loopback
    assert is_unique_local6(addr) == (ref in ipaddress.IPv6Network("fc00::/7"))
    assert is_solicited_node6(addr) == (ref in ipaddress.IPv6Network("ff02::1:ff00:0/104"))
    scope = scope6(addr)
    if ref.is_multicast:
        assert scope == multicast_scope(addr) == addr[1] & 0x0F
    elif ref.is_loopback:
        assert scope == 1
    elif ref.is_link_local:
        assert scope == 2
    elif ref.is_site_local:
        assert scope == 5
    else:
        assert scope == 0xE


def test_scopes_of_known_addresses() -> None:
    for text, scope in [
        ("::1", 1), ("ff01::1", 1), ("fe80::1", 2), ("ff02::1", 2), ("ff05::2", 5), ("ff08::1", 8),
        ("ff0e::1", 0xE), ("2001:db8::1", 0xE), ("fd00::1", 0xE), ("fec0::1", 5), ("::", 0xE),
    ]:
        assert scope6(ip6_aton(text)) == scope, text
    assert multicast_scope(ip6_aton("ff15::1")) == 5  # flags do not matter
    with pytest.raises(ValueError, match="multicast"):
        multicast_scope(A)
    with pytest.raises(ValueError, match="16 bytes"):
        scope6(bytes(4))


def test_predicates_refuse_wrong_lengths_quietly() -> None:
    for pred in (is_multicast6, is_link_local6, is_unspecified6, is_loopback6, is_unique_local6, is_solicited_node6):
        assert pred(b"\xff\x02\xfe\x80") is False


def test_interface_identifiers_and_link_local_addresses() -> None:
    mac = bytes.fromhex("525400123456")
    assert eui64_interface_id(mac) == bytes.fromhex("505400fffe123456")
    assert ip6_ntoa(link_local_address(mac)) == "fe80::5054:ff:fe12:3456"
    # The U/L bit flips both ways (RFC 4291 appendix A).
    assert eui64_interface_id(bytes.fromhex("020000000001"))[0] == 0x00
    assert is_link_local6(link_local_address(mac))
    with pytest.raises(ValueError, match="6 bytes"):
        eui64_interface_id(bytes(8))


def test_address_from_prefix() -> None:
    iid = eui64_interface_id(bytes.fromhex("525400123456"))
    prefix = ip6_aton("2001:db8:1:2:ffff::")  # bits past /64 are ignored
    assert ip6_ntoa(address_from_prefix(prefix, 64, iid)) == "2001:db8:1:2:5054:ff:fe12:3456"
    assert address_from_prefix(prefix, 96, bytes(4)) == prefix[:12] + bytes(4)
    for plen in (48, 63, 65, 128, -64):
        with pytest.raises(ValueError, match="128 bits"):
            address_from_prefix(prefix, plen, iid)
    with pytest.raises(ValueError, match="16-byte"):
        address_from_prefix(prefix[:8], 64, iid)


def test_solicited_node_groups_and_multicast_macs() -> None:
    group = solicited_node_group(ip6_aton("2001:db8::1:2:3"))
    assert ip6_ntoa(group) == "ff02::1:ff02:3"
    assert is_solicited_node6(group) and scope6(group) == 2
    assert multicast_mac(ALL_NODES) == bytes.fromhex("333300000001")
    assert multicast_mac(group) == bytes.fromhex("3333ff020003")
    with pytest.raises(ValueError, match="multicast"):
        multicast_mac(A)
    with pytest.raises(ValueError, match="16 bytes"):
        solicited_node_group(bytes(4))


####################################################################
# Extension headers: scapy chains
####################################################################


def chain_of(pkt) -> tuple[IPv6Header, memoryview, ExtChain]:
    hdr, payload = IPv6Header.parse(raw(pkt))
    return hdr, payload, walk_extensions(hdr.next_header, payload, dst_multicast=is_multicast6(hdr.dst))


def test_a_full_chain_from_scapy() -> None:
    pkt = (
        IPv6(src="2001:db8::1", dst="2001:db8::2")
        / IPv6ExtHdrHopByHop(options=[RouterAlert(value=2)])  # 0..8
        / IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\x00" * 4)])  # 8..16
        / IPv6ExtHdrRouting(type=0, segleft=0, addresses=["2001:db8::3"])  # 16..40
        / IPv6ExtHdrDestOpt(options=[HBHOptUnknown(otype=0x1E, optdata=b"xyz")])  # 40..48
        / UDP(sport=1, dport=2)
        / Raw(b"hello")
    )
    _, payload, chain = chain_of(pkt)
    assert chain == ExtChain(
        proto=IPPROTO_UDP, offset=48, router_alert=2, fragment=None, fragment_at=-1,
        unfragmentable_end=40, next_header_at=40 + 40,
    )
    upper = bytes(payload[chain.offset :])
    assert upper[:6] == struct.pack("!HHH", 1, 2, 13) and upper[8:] == b"hello"


def test_chain_ends() -> None:
    # No extension headers at all.
    assert walk_extensions(IPPROTO_TCP, b"") == ExtChain(IPPROTO_TCP, 0)
    # No Next Header.
    _, _, chain = chain_of(IPv6(src="::1", dst="::2") / IPv6ExtHdrDestOpt() / Raw(b"ignored"))
    assert (chain.proto, chain.offset, chain.unfragmentable_end, chain.next_header_at) == (IPPROTO_NONE, 8, 0, 40)
    # A Fragment header stops the walk.
    _, _, chain = chain_of(
        IPv6(src="::1", dst="::2") / IPv6ExtHdrHopByHop()
        / IPv6ExtHdrFragment(nh=IPPROTO_DSTOPTS, offset=2, m=1, id=0xDEADBEEF) / Raw(bytes(16))
    )
    assert chain == ExtChain(
        proto=IPPROTO_DSTOPTS, offset=16, router_alert=None,
        fragment=FragmentHeader(IPPROTO_DSTOPTS, 16, True, 0xDEADBEEF),
        fragment_at=8, unfragmentable_end=8, next_header_at=40,
    )


def test_router_alert_only_counts_in_hop_by_hop() -> None:
    _, _, chain = chain_of(IPv6(src="::1", dst="::2") / IPv6ExtHdrDestOpt(options=[RouterAlert(value=7)]) / UDP())
    assert chain.router_alert is None and chain.proto == IPPROTO_UDP


def test_router_alert_hop_by_hop_as_mld_sends_it() -> None:
    assert router_alert_hop_by_hop(IPPROTO_ICMPV6) == bytes.fromhex("3a00050200000100")
    assert router_alert_hop_by_hop(IPPROTO_ICMPV6, 0x1234)[4:6] == b"\x12\x34"
    hbh = IPv6ExtHdrHopByHop(router_alert_hop_by_hop(IPPROTO_ICMPV6))
    assert hbh.nh == IPPROTO_ICMPV6 and hbh.len == 0
    assert isinstance(hbh.options[0], RouterAlert) and hbh.options[0].value == 0
    assert isinstance(hbh.options[1], PadN) and hbh.options[1].optlen == 0
    wire = IPv6Header(A, ALL_MLDV2_ROUTERS, IPPROTO_HOPOPTS, hop_limit=1).emit(
        router_alert_hop_by_hop(IPPROTO_ICMPV6) + bytes(8)
    )
    _, _, chain = chain_of(IPv6(wire))
    assert (chain.proto, chain.router_alert, chain.offset) == (IPPROTO_ICMPV6, 0, 8)
    with pytest.raises(ValueError):
        router_alert_hop_by_hop(256)


skippable_options = st.one_of(
    st.just(Pad1()),
    st.binary(max_size=6).map(lambda d: PadN(optdata=d)),
    st.tuples(st.integers(0x02, 0x3F).filter(lambda t: t != 0x05), st.binary(max_size=9)).map(
        lambda t: HBHOptUnknown(otype=t[0], optdata=t[1])
    ),
)


@st.composite
def chains(draw):
    """(scapy layers, expected ExtChain) for a valid chain of up to 8 headers."""
    layers = []
    at, off = 6, 0
    ra = None
    unfrag_end = 0
    if draw(st.booleans()):
        opts = draw(st.lists(skippable_options, max_size=3))
        if draw(st.booleans()):
            ra = draw(st.integers(0, 0xFFFF))
            opts.insert(draw(st.integers(0, len(opts))), RouterAlert(value=ra))
        layers.append(IPv6ExtHdrHopByHop(options=opts))
    for _ in range(draw(st.integers(0, 6))):
        if draw(st.booleans()):
            layers.append(IPv6ExtHdrDestOpt(options=draw(st.lists(skippable_options, max_size=3))))
        else:
            n = draw(st.integers(0, 3))
            layers.append(IPv6ExtHdrRouting(type=draw(st.sampled_from([0, 2, 3, 4, 253])), segleft=0,
                                            addresses=[f"2001:db8::{i + 1}" for i in range(n)]))
    for layer in layers:
        at = 40 + off
        off += len(raw(layer))
        if isinstance(layer, (IPv6ExtHdrHopByHop, IPv6ExtHdrRouting)):
            unfrag_end = off
    end = draw(st.sampled_from(["udp", "none", "fragment"]))
    if end == "fragment":
        fh = FragmentHeader(
            draw(st.sampled_from([IPPROTO_UDP, IPPROTO_DSTOPTS, IPPROTO_ICMPV6])),
            draw(st.integers(0, 8191)) * 8, draw(st.booleans()), draw(st.integers(0, 2**32 - 1)),
        )
        layers.append(IPv6ExtHdrFragment(nh=fh.next_header, offset=fh.offset // 8, m=fh.more, id=fh.ident))
        layers.append(Raw(bytes(16)))
        expected = ExtChain(fh.next_header, off + 8, ra, fh, off, off, at)
    elif end == "udp":
        layers.append(UDP(sport=1000, dport=53) / Raw(b"q"))
        expected = ExtChain(IPPROTO_UDP, off, ra, None, -1, unfrag_end, at)
    else:
        layers.append(Raw(b"ignored"))
        expected = ExtChain(IPPROTO_NONE, off, ra, None, -1, unfrag_end, at)
    return layers, expected


@settings(max_examples=120)
@given(chains(), st.booleans())
def test_generated_scapy_chains_walk_as_built(case, multicast: bool) -> None:
    layers, expected = case
    pkt = IPv6(src="2001:db8::1", dst="ff02::1" if multicast else "2001:db8::2")
    for layer in layers:
        pkt = pkt / layer
    _, payload, chain = chain_of(pkt)
    assert chain == expected
    # The chain tells where each part is: the named header is where it says.
    wire = raw(pkt)
    assert wire[chain.next_header_at] == (IPPROTO_FRAGMENT if chain.fragment else chain.proto)
    if chain.fragment is None and chain.proto == IPPROTO_UDP:
        assert bytes(payload[chain.offset : chain.offset + 6]) == struct.pack("!HHH", 1000, 53, 9)


@settings(max_examples=60)
@given(chains())
def test_chain_prefixes_are_short_not_anything_else(case) -> None:
    layers, expected = case
    pkt = IPv6(src="2001:db8::1", dst="2001:db8::2")
    for layer in layers:
        pkt = pkt / layer
    hdr, payload = IPv6Header.parse(raw(pkt))
    end = expected.offset if expected.fragment is None else expected.fragment_at + 8
    for cut in range(end):
        with pytest.raises(RemoteProtocolError) as info:
            walk_extensions(hdr.next_header, payload[:cut])
        assert info.value.reason == "short_ext"


####################################################################
# Extension headers: every failure has its reason
####################################################################


def walk_error(next_header: int, data: bytes, **kw) -> RemoteProtocolError:
    with pytest.raises(RemoteProtocolError) as info:
        walk_extensions(next_header, data, **kw)
    return info.value


def options_header(nh: int, options: bytes) -> bytes:
    """A Hop-by-Hop or Destination Options header holding ``options``, padded with Pad1."""
    body = bytes([nh, 0]) + options
    body += bytes(-len(body) % 8)
    return bytes([nh, len(body) // 8 - 1]) + body[2:]


def test_hop_by_hop_must_come_first() -> None:
    hbh = options_header(IPPROTO_UDP, b"")
    dst = options_header(IPPROTO_HOPOPTS, b"")
    err = walk_error(IPPROTO_DSTOPTS, dst + hbh)
    assert isinstance(err, ParameterProblem)
    assert (err.reason, err.code, err.pointer) == ("hbh_not_first", 1, 40)
    # Twice in a row: the second is not first either.
    err = walk_error(IPPROTO_HOPOPTS, options_header(IPPROTO_HOPOPTS, b"") + hbh)
    assert (err.reason, err.code, err.pointer) == ("hbh_not_first", 1, 40)
    assert walk_extensions(IPPROTO_HOPOPTS, hbh).proto == IPPROTO_UDP


def test_routing_headers_with_segments_left_are_refused() -> None:
    for rtype in (0, 2, 3, 4, 255):
        rh = bytes([IPPROTO_UDP, 2, rtype, 1, 0, 0, 0, 0]) + ip6_aton("2001:db8::9")
        err = walk_error(IPPROTO_ROUTING, rh)
        assert isinstance(err, ParameterProblem)
        assert (err.reason, err.code, err.pointer) == ("routing_header", 0, 42)
        # Behind a Hop-by-Hop header the pointer moves with it.
        err = walk_error(IPPROTO_HOPOPTS, options_header(IPPROTO_ROUTING, b"") + rh)
        assert (err.reason, err.code, err.pointer) == ("routing_header", 0, 50)
        # With Segments Left 0 it is ignored.
        done = bytes([IPPROTO_UDP, 2, rtype, 0]) + rh[4:]
        assert walk_extensions(IPPROTO_ROUTING, done) == ExtChain(IPPROTO_UDP, 24, unfragmentable_end=24, next_header_at=40)
    # The same from scapy: a type 0 header in flight.
    pkt = IPv6(src="::1", dst="::2") / IPv6ExtHdrRouting(type=0, segleft=1, addresses=["::3"]) / UDP()
    hdr, payload = IPv6Header.parse(raw(pkt))
    assert walk_error(hdr.next_header, payload).reason == "routing_header"


@pytest.mark.parametrize("next_header", [IPPROTO_HOPOPTS, IPPROTO_DSTOPTS])
def test_unknown_options_act_by_their_high_bits(next_header: int) -> None:
    def walk(otype: int, multicast: bool = False) -> ExtChain:
        # Pad1 first, so the unknown option sits at data offset 3.
        data = options_header(IPPROTO_UDP, bytes([0, otype, 2, 0xAA, 0xBB]))
        return walk_extensions(next_header, data, dst_multicast=multicast)

    for multicast in (False, True):
        assert walk(0x1E, multicast).proto == IPPROTO_UDP  # 00: skip
        err = walk_error(next_header, options_header(IPPROTO_UDP, bytes([0, 0x5E, 0])), dst_multicast=multicast)
        assert err.reason == "unknown_option" and not isinstance(err, ParameterProblem)  # 01: silent
        with pytest.raises(ParameterProblem) as info:  # 10: ICMP, multicast or not
            walk(0x9E, multicast)
        assert (info.value.reason, info.value.code, info.value.pointer) == ("unknown_option", 2, 43)
    with pytest.raises(ParameterProblem) as info:  # 11: ICMP for unicast...
        walk(0xDE)
    assert (info.value.code, info.value.pointer) == (2, 43)
    with pytest.raises(RemoteProtocolError) as info:  # ...silent for multicast
        walk(0xDE, multicast=True)
    assert info.value.reason == "unknown_option" and not isinstance(info.value, ParameterProblem)
    # A jumbo payload option (0xC2) is unknown here: we do not do jumbograms.
    with pytest.raises(ParameterProblem):
        walk_extensions(next_header, options_header(IPPROTO_UDP, bytes([0xC2, 4, 0, 1, 0, 0])))


def test_malformed_options() -> None:
    # Router Alert of the wrong length: Parameter Problem at its length byte.
    err = walk_error(IPPROTO_HOPOPTS, options_header(IPPROTO_UDP, bytes([1, 0, 5, 3, 0, 0, 0])))
    assert isinstance(err, ParameterProblem)
    assert (err.reason, err.code, err.pointer) == ("bad_option", 0, 40 + 5)
    # An option running past its header, or with no room for its length: silent.
    for options in (bytes([1, 0, 0x1E, 9, 0, 0]), bytes([0, 0, 0, 0, 0, 0x1E])):
        data = bytes([IPPROTO_UDP, 0]) + options
        assert len(data) == 8
        err = walk_error(IPPROTO_DSTOPTS, data)
        assert err.reason == "bad_option" and not isinstance(err, ParameterProblem)
    # PadN contents are not checked.
    assert walk_extensions(IPPROTO_DSTOPTS, bytes([IPPROTO_TCP, 0, 1, 4, 1, 2, 3, 4])).proto == IPPROTO_TCP


def test_truncated_headers_are_short_ext() -> None:
    for next_header, data in [
        (IPPROTO_HOPOPTS, b""),
        (IPPROTO_HOPOPTS, b"\x11"),
        (IPPROTO_DSTOPTS, options_header(IPPROTO_UDP, b"")[:7]),
        (IPPROTO_DSTOPTS, bytes([IPPROTO_UDP, 1]) + bytes(13)),  # says 16 bytes, has 15
        (IPPROTO_ROUTING, bytes([IPPROTO_UDP, 2, 0, 0]) + bytes(12)),
        (IPPROTO_FRAGMENT, bytes(7)),
        (IPPROTO_HOPOPTS, options_header(IPPROTO_FRAGMENT, b"") + bytes(7)),
    ]:
        err = walk_error(next_header, data)
        assert err.reason == "short_ext" and not isinstance(err, ParameterProblem)
    # FragmentHeader.parse agrees.
    with pytest.raises(RemoteProtocolError, match="short_ext"):
        FragmentHeader.parse(bytes(7))


def test_too_many_extension_headers() -> None:
    def dsts(count: int) -> bytes:
        return b"".join(options_header(IPPROTO_DSTOPTS, b"") for _ in range(count - 1)) + options_header(
            IPPROTO_UDP, b""
        )

    assert walk_extensions(IPPROTO_DSTOPTS, dsts(8)) == ExtChain(IPPROTO_UDP, 64, next_header_at=40 + 56)
    err = walk_error(IPPROTO_DSTOPTS, dsts(9))
    assert err.reason == "too_many_ext" and not isinstance(err, ParameterProblem)
    assert walk_error(IPPROTO_DSTOPTS, dsts(3), max_headers=2).reason == "too_many_ext"
    # A Fragment header counts.
    assert walk_error(IPPROTO_DSTOPTS, dsts(8)[:-8] + options_header(IPPROTO_FRAGMENT, b"") + bytes(8)).reason == (
        "too_many_ext"
    )
    # Even 64 KiB of them costs at most max_headers steps.
    assert walk_error(IPPROTO_DSTOPTS, dsts(8000)).reason == "too_many_ext"


@settings(max_examples=500)
@given(st.integers(0, 255), st.binary(max_size=120), st.booleans())
def test_walk_raises_only_remote_protocol_error_on_junk(next_header: int, data: bytes, multicast: bool) -> None:
    try:
        chain = walk_extensions(next_header, data, dst_multicast=multicast)
    except ParameterProblem as exc:
        assert exc.code in (0, 1, 2) and 40 <= exc.pointer < 40 + len(data)
        return
    except RemoteProtocolError:
        return
    assert 0 <= chain.offset <= len(data)
    assert chain.unfragmentable_end <= chain.offset


@settings(max_examples=200)
@given(chains(), st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), min_size=1, max_size=4))
def test_walk_raises_only_remote_protocol_error_on_mutated_chains(case, edits) -> None:
    layers, _ = case
    pkt = IPv6(src="2001:db8::1", dst="2001:db8::2")
    for layer in layers:
        pkt = pkt / layer
    wire = bytearray(raw(pkt))
    for pos, value in edits:
        if pos < len(wire):
            wire[pos] = value
    try:
        hdr, payload = IPv6Header.parse(bytes(wire))
        walk_extensions(hdr.next_header, payload, dst_multicast=is_multicast6(hdr.dst))
    except RemoteProtocolError:
        pass


####################################################################
# Fragment header
####################################################################

fragment_headers = st.builds(
    FragmentHeader,
    next_header=st.integers(0, 255),
    offset=st.integers(0, 8191).map(lambda n: n * 8),
    more=st.booleans(),
    ident=st.integers(0, 2**32 - 1),
)


def test_fragment_header_byte_literal() -> None:
    fh = FragmentHeader(IPPROTO_UDP, 1232, True, 0x01020304)
    assert fh.emit(b"xy") == bytes.fromhex("1100" "04d1" "01020304") + b"xy"
    # The reserved fields are ignored.
    assert FragmentHeader.parse(bytes.fromhex("11ff" "04d7" "01020304"))[0] == fh


@settings(max_examples=150)
@given(fragment_headers, st.binary(max_size=40))
def test_fragment_header_round_trips_and_matches_scapy(fh: FragmentHeader, data: bytes) -> None:
    wire = fh.emit(data)
    got, rest = FragmentHeader.parse(wire)
    assert got == fh and bytes(rest) == data
    # (The header alone: scapy would also decode the data as the next
    # header's, and fails on a byte of "Routing header" with IndexError.)
    theirs = IPv6ExtHdrFragment(wire[:8])
    assert (theirs.nh, theirs.offset * 8, theirs.m, theirs.id) == (fh.next_header, fh.offset, fh.more, fh.ident)
    built = raw(IPv6ExtHdrFragment(nh=fh.next_header, offset=fh.offset // 8, m=fh.more, id=fh.ident) / Raw(data))
    assert built == wire


def test_fragment_header_emit_refuses_bad_values() -> None:
    for bad in (FragmentHeader(17, 4), FragmentHeader(17, 65536), FragmentHeader(17, -8)):
        with pytest.raises(ValueError, match="multiple of 8"):
            bad.emit()
    with pytest.raises(ValueError, match="out of range"):
        FragmentHeader(17, ident=2**32).emit()


####################################################################
# Fragmentation
####################################################################


@settings(max_examples=60)
@given(
    headers, st.binary(min_size=1, max_size=5000), st.integers(1280, 2000), st.integers(0, 2**32 - 1),
    st.booleans(),
)
def test_fragments_fit_and_cover_the_payload(hdr: IPv6Header, payload: bytes, mtu: int, ident: int, hbh: bool) -> None:
    unfragmentable = router_alert_hop_by_hop(99) if hbh else b""
    if hbh:
        hdr = attrs.evolve(hdr, next_header=IPPROTO_HOPOPTS)
    pieces = fragment6(hdr, unfragmentable, IPPROTO_UDP, payload, mtu, ident)
    if 40 + len(unfragmentable) + len(payload) <= mtu:
        # It fits: sent whole, no atomic fragment (RFC 8021).
        expected_unfrag = router_alert_hop_by_hop(IPPROTO_UDP) if hbh else b""
        next_header = IPPROTO_HOPOPTS if hbh else IPPROTO_UDP
        assert pieces == [attrs.evolve(hdr, next_header=next_header).emit(expected_unfrag + payload)]
        return
    data = b""
    for i, piece in enumerate(pieces):
        assert len(piece) <= mtu
        got, view = IPv6Header.parse(piece)
        chain = walk_extensions(got.next_header, view)
        assert chain.fragment is not None
        assert chain.fragment_at == len(unfragmentable)
        assert bytes(view[: chain.fragment_at]) == (router_alert_hop_by_hop(IPPROTO_FRAGMENT) if hbh else b"")
        assert (chain.fragment.offset, chain.fragment.ident, chain.proto) == (len(data), ident, IPPROTO_UDP)
        last = i == len(pieces) - 1
        assert chain.fragment.more == (not last)
        assert last or (len(view) - chain.offset) % 8 == 0
        assert (got.src, got.dst, got.hop_limit, got.traffic_class, got.flow_label) == (
            hdr.src, hdr.dst, hdr.hop_limit, hdr.traffic_class, hdr.flow_label,
        )
        data += view[chain.offset :]
    assert data == payload


def test_fragment6_errors() -> None:
    hdr = IPv6Header(A, B, IPPROTO_UDP)
    with pytest.raises(LocalProtocolError, match="below the IPv6 minimum"):
        fragment6(hdr, b"", IPPROTO_UDP, bytes(2000), 1279, 1)
    with pytest.raises(LocalProtocolError, match="exceed"):
        fragment6(hdr, b"", IPPROTO_UDP, bytes(65536), 1500, 1)
    with pytest.raises(LocalProtocolError, match="exceed"):
        fragment6(hdr, router_alert_hop_by_hop(17), IPPROTO_UDP, bytes(65530), 1500, 1)
    # The largest payload goes: 53 pieces of 1232 bytes and one of 239.
    largest = fragment6(hdr, b"", IPPROTO_UDP, bytes(65535), 1280, 1)
    assert len(largest) == 54 and len(largest[-1]) == 40 + 8 + 239
    assert add_all(Reassembler6(), largest) == [hdr.emit(bytes(65535))]
    big_unfrag = bytes([IPPROTO_UDP, 154]) + bytes(1238)  # a 1240-byte header leaves no room
    with pytest.raises(LocalProtocolError, match="no room"):
        fragment6(hdr, big_unfrag, IPPROTO_UDP, bytes(2000), 1280, 1)
    for bad in (b"\x11", b"\x11\x00\x00", b"\x11\x01" + bytes(6)):
        with pytest.raises(ValueError, match="whole extension headers"):
            fragment6(hdr, bad, IPPROTO_UDP, bytes(2000), 1280, 1)
    with pytest.raises(ValueError, match="out of range"):
        fragment6(hdr, b"", IPPROTO_UDP, bytes(2000), 1280, 2**32)


@settings(max_examples=40)
@given(st.binary(min_size=1, max_size=6000), st.integers(1280, 1500), st.integers(0, 2**32 - 1), st.booleans())
def test_our_fragments_reassemble_in_scapy(payload: bytes, mtu: int, ident: int, hbh: bool) -> None:
    hdr = IPv6Header(A, B, IPPROTO_HOPOPTS if hbh else IPPROTO_UDP, hop_limit=9, flow_label=77)
    unfragmentable = router_alert_hop_by_hop(IPPROTO_UDP) if hbh else b""
    pieces = fragment6(hdr, unfragmentable, 253, payload, mtu, ident)
    # What the packet is unfragmented: 253 (experimental) named after the
    # unfragmentable part, so that scapy keeps the payload as raw bytes.
    expected = attrs.evolve(hdr, next_header=IPPROTO_HOPOPTS if hbh else 253).emit(
        (router_alert_hop_by_hop(253) if hbh else b"") + payload
    )
    if len(pieces) == 1:
        assert pieces == [expected]
        return
    assert raw(defragment6([IPv6(p) for p in pieces])) == expected
    # And by us.
    r = Reassembler6()
    assert add_all(r, pieces[::-1]) == [expected]


@settings(max_examples=40, deadline=None)
@given(
    st.binary(min_size=1, max_size=5000), st.integers(9, 190).map(lambda n: n * 8), st.booleans(),
    st.integers(0, 2**32 - 1), st.data(),
)
def test_scapy_fragments_reassemble_in_any_order(payload: bytes, size: int, hbh: bool, ident: int, data) -> None:
    base = IPv6(src="2001:db8::1", dst="2001:db8::2", hlim=9, fl=5)
    if hbh:
        base = base / IPv6ExtHdrHopByHop(options=[RouterAlert(value=0)])
    upper = UDP(sport=5000, dport=53) / Raw(payload)
    pieces = [raw(p) for p in scapy_fragment6(base / IPv6ExtHdrFragment(id=ident) / upper, size)]
    order = data.draw(st.permutations(pieces))
    # Exact duplicates of pieces already given, before the last one completes it.
    dups = data.draw(st.lists(st.sampled_from(order[:-1]), max_size=3)) if len(order) > 1 else []
    r = Reassembler6()
    done = add_all(r, [*order[:-1], *dups, order[-1]])
    assert done == [raw(base / upper)]
    hdr, view = IPv6Header.parse(done[0])
    chain = walk_extensions(hdr.next_header, view)
    assert chain.fragment is None and chain.proto == IPPROTO_UDP
    assert chain.router_alert == (0 if hbh else None)
    stats = r.statistics()
    assert (stats.reassembled, stats.duplicates, stats.fragments) == (1, len(dups), len(order) + len(dups))
    assert (stats.in_progress, stats.buffered_bytes, stats.overlaps) == (0, 0, 0)
    check(stats)


####################################################################
# Reassembly: policies
####################################################################


def test_atomic_fragments_come_back_at_once_and_alone() -> None:
    r = Reassembler6()
    add(r, frag(0, bytes(16), ident=7))  # a packet in progress with the same key
    atomic = frag(0, b"whole", more=False, ident=7)
    assert add(r, atomic) == IPv6Header(A, B, IPPROTO_UDP).emit(b"whole")
    stats = r.statistics()
    assert (stats.in_progress, stats.reassembled, stats.buffered_bytes) == (1, 1, 16 + 48)
    check(stats)
    # With a Hop-by-Hop header in front, that header's Next Header is rewritten.
    atomic = frag(0, b"x", more=False, unfragmentable=router_alert_hop_by_hop(0))
    assert add(r, atomic) == IPv6Header(A, B, IPPROTO_HOPOPTS).emit(router_alert_hop_by_hop(IPPROTO_UDP) + b"x")
    # Even an empty one.
    assert add(r, frag(0, b"", more=False, nh=IPPROTO_NONE)) == IPv6Header(A, B, IPPROTO_NONE).emit()


def test_non_last_fragment_length_must_be_a_multiple_of_8() -> None:
    r = Reassembler6()
    with pytest.raises(ParameterProblem) as info:
        add(r, frag(8, bytes(12)))
    assert (info.value.reason, info.value.code, info.value.pointer) == ("bad_fragment_length", 0, 4)
    assert add(r, frag(8, bytes(12), more=False)) is None  # a last fragment may be any length
    stats = r.statistics()
    assert (stats.malformed, stats.in_progress) == (1, 1)
    check(stats)


def test_fragments_past_65535_bytes_point_at_the_offset() -> None:
    r = Reassembler6()
    with pytest.raises(ParameterProblem) as info:
        add(r, frag(65528, bytes(8)))
    assert (info.value.reason, info.value.code, info.value.pointer) == ("bad_fragment_offset", 0, 42)
    assert add(r, frag(65520, bytes(15), more=False)) is None  # ends at 65535 exactly: fine
    # The unfragmentable headers count, and move the pointer.
    with pytest.raises(ParameterProblem) as info:
        add(r, frag(65520, bytes(8), unfragmentable=router_alert_hop_by_hop(0)))
    assert (info.value.reason, info.value.pointer) == ("bad_fragment_offset", 50)
    stats = r.statistics()
    assert (stats.malformed, stats.in_progress) == (2, 1)
    check(stats)


def test_a_later_first_fragment_with_longer_headers_makes_the_packet_oversize() -> None:
    r = Reassembler6()
    assert add(r, frag(65520, bytes(8))) is None
    # Parses (its own headers fit), but with them the packet would be 65536 bytes.
    assert add(r, frag(0, bytes(8), unfragmentable=router_alert_hop_by_hop(0))) is None
    stats = r.statistics()
    assert (stats.oversize, stats.in_progress, stats.buffered_bytes) == (1, 0, 0)
    check(stats)
    # Once the first fragment is known, its headers count for the ParameterProblem.
    add(r, frag(0, bytes(8), unfragmentable=router_alert_hop_by_hop(0), ident=2))
    with pytest.raises(ParameterProblem, match="bad_fragment_offset"):
        add(r, frag(65520, bytes(8), ident=2))


def test_empty_fragments_are_dropped() -> None:
    r = Reassembler6()
    assert add(r, frag(8, b"")) is None
    assert add(r, frag(8, b"", more=False)) is None
    stats = r.statistics()
    assert (stats.malformed, stats.datagrams, stats.fragments) == (2, 0, 2)


def test_exact_duplicates_are_counted_and_harmless() -> None:
    a, b, c = frag(0, bytes(range(16))), frag(16, bytes(16)), frag(32, b"end", more=False)
    r = Reassembler6()
    assert add_all(r, [a, a, c, c, a]) == []
    assert add_all(r, [b]) == [IPv6Header(A, B, IPPROTO_UDP).emit(bytes(range(16)) + bytes(16) + b"end")]
    stats = r.statistics()
    assert (stats.duplicates, stats.reassembled, stats.overlaps) == (3, 1, 0)
    check(stats)


@pytest.mark.parametrize(
    "second",
    [
        frag(16, bytes(16)),  # overlaps with the same bytes: still an overlap (RFC 5722)
        frag(8, b"\x01" * 16),  # same range, other bytes
        frag(8, bytes(8)),  # inside
        frag(0, bytes(16)),  # over the start
        frag(8, bytes(16), more=False),  # same range, says it is the last
        frag(16, bytes(8), more=False),  # ends inside held data
    ],
    ids=["same-bytes", "other-bytes", "inside", "start", "same-range-last", "ends-inside"],
)
def test_an_overlap_discards_the_packet_and_its_later_fragments(second: bytes) -> None:
    r = Reassembler6(timeout=60.0)
    assert add(r, frag(8, bytes(16)), now=1.0) is None
    assert add(r, second, now=2.0) is None
    stats = r.statistics()
    assert (stats.overlaps, stats.in_progress, stats.abandoned, stats.buffered_bytes) == (1, 0, 1, 0)
    check(stats)
    # Every later fragment of it is dropped, until its deadline.
    for later in (frag(16, bytes(8), more=False), frag(0, bytes(16)), frag(16, bytes(8), more=False)):
        assert add(r, later, now=30.0) is None
    stats = r.statistics()
    assert (stats.discarded, stats.in_progress, stats.reassembled) == (3, 0, 0)
    check(stats)
    assert r.next_deadline() == 61.0
    assert r.expire(61.0) == []  # no ICMP for it, and not a timeout
    stats = r.statistics()
    assert (stats.abandoned, stats.timeouts) == (0, 0)
    # Afterwards the key starts afresh.
    assert add_all(r, [frag(0, bytes(16)), frag(16, b"z", more=False)], now=62.0) == [
        IPv6Header(A, B, IPPROTO_UDP).emit(bytes(16) + b"z")
    ]
    check(r.statistics())


def test_fragments_disagreeing_about_the_end_abandon_the_packet() -> None:
    # (Offset 0 with M clear would be an atomic fragment, outside reassembly.)
    for second in (frag(16, bytes(16), more=False), frag(40, bytes(8)), frag(16, bytes(8)), frag(8, bytes(8), more=False)):
        r = Reassembler6()
        add(r, frag(16, bytes(8), more=False))  # the packet ends at 24
        assert add(r, second) is None
        assert r.statistics().overlaps == 1
        check(r.statistics())


def test_other_keys_are_other_packets() -> None:
    r = Reassembler6()
    other_dst = IPv6Header(A, ALL_NODES, IPPROTO_FRAGMENT).emit(FragmentHeader(17, 0, True, 1).emit(bytes(8)))
    add_all(r, [frag(0, bytes(8), ident=1), frag(0, bytes(8), ident=2), other_dst])
    assert r.statistics().in_progress == 3
    # The Next Header of later fragments does not matter: the first one's counts.
    assert add(r, frag(8, b"!", more=False, ident=1, nh=IPPROTO_TCP)) == IPv6Header(A, B, IPPROTO_UDP).emit(
        bytes(8) + b"!"
    )


def test_too_many_pieces_evicts_the_packet() -> None:
    r = Reassembler6(max_fragments=4)
    for i in range(4):
        add(r, frag(16 * i, bytes(8)))
    assert r.statistics().in_progress == 1
    add(r, frag(200, bytes(8)))
    stats = r.statistics()
    assert (stats.evicted, stats.in_progress, stats.buffered_bytes) == (1, 0, 0)
    check(stats)


def test_add_wants_a_fragment_header() -> None:
    packet = IPv6Header(A, B, IPPROTO_UDP).emit(bytes(8))
    hdr, payload = IPv6Header.parse(packet)
    with pytest.raises(ValueError, match="Fragment header"):
        Reassembler6().add(packet, hdr, walk_extensions(hdr.next_header, payload), 0.0)


def test_constructor_checks_its_bounds() -> None:
    for kw in ({"max_datagrams": 0}, {"max_bytes": 0}, {"max_fragments": 0}, {"timeout": 0}):
        with pytest.raises(ValueError):
            Reassembler6(**kw)
    assert Reassembler6().timeout == 60.0


####################################################################
# Reassembly: time
####################################################################


def test_timeout_returns_the_first_fragment_for_icmp() -> None:
    r = Reassembler6()
    assert r.next_deadline() is None
    first = frag(0, b"A" * 16, unfragmentable=router_alert_hop_by_hop(0))
    add(r, first + bytes(10), now=5.0)  # link padding is not quoted
    add(r, frag(8, b"B" * 8, ident=2), now=10.0)  # no first fragment
    add(r, frag(24, b"C" * 8), now=20.0)  # does not extend the timer
    assert r.next_deadline() == 65.0
    assert r.expire(64.9) == []
    assert r.expire(65.0) == [first]
    assert r.next_deadline() == 70.0
    assert r.expire(100.0) == []
    assert r.next_deadline() is None
    stats = r.statistics()
    assert (stats.timeouts, stats.in_progress, stats.buffered_bytes) == (2, 0, 0)
    check(stats)


####################################################################
# Reassembly: bounds under floods, and arbitrary input
####################################################################


def test_a_flood_of_incomplete_packets_stays_bounded_and_counted() -> None:
    r = Reassembler6(max_datagrams=64, max_bytes=1 << 20)
    tracemalloc.start()
    try:
        for i in range(10_000):
            add(r, frag(0, bytes([i & 0xFF]) * 1232, ident=i), now=i * 0.001)
            stats = r.statistics()
            assert stats.in_progress <= 64 and stats.buffered_bytes <= 1 << 20
            if i == 5000:
                # Evicting the oldest keeps reassembly live mid-flood.
                pieces = fragment6(IPv6Header(A, B, 17), b"", 17, bytes(3000), 1280, 1 << 31)
                assert len(add_all(r, pieces, i * 0.001)) == 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20  # 64 * 1280 bytes plus bookkeeping
    stats = r.statistics()
    assert stats.datagrams == 10_001 and stats.reassembled == 1
    assert stats.evicted == 10_000 - 64
    check(stats)


def test_the_byte_bound_evicts_oldest_first() -> None:
    r = Reassembler6(max_datagrams=1000, max_bytes=10_000)
    for i in range(100):
        add(r, frag(8, bytes(1000), ident=i))
        assert r.statistics().buffered_bytes <= 10_000
    stats = r.statistics()
    assert (stats.in_progress, stats.buffered_bytes, stats.evicted) == (10, 10_000, 90)
    # A packet larger than the bound is refused alone; the survivors are the newest.
    add(r, frag(8, bytes(10_008), ident=500))
    assert add_all(r, [frag(0, bytes(8), ident=95), frag(1008, b"x", more=False, ident=95)]) != []
    stats = r.statistics()
    assert stats.reassembled == 1 and stats.buffered_bytes <= 10_000
    check(stats)


def test_tombstones_take_slots_but_no_bytes() -> None:
    r = Reassembler6(max_datagrams=4)
    for i in range(4):
        add(r, frag(0, bytes(16), ident=i))
        add(r, frag(8, bytes(16), ident=i))  # overlap: a tombstone
    stats = r.statistics()
    assert (stats.abandoned, stats.in_progress, stats.buffered_bytes, stats.overlaps) == (4, 0, 0, 4)
    # A new packet takes the oldest tombstone's slot; that is not an eviction.
    add(r, frag(0, bytes(16), ident=99))
    stats = r.statistics()
    assert (stats.abandoned, stats.in_progress, stats.evicted) == (3, 1, 0)
    check(stats)


fragments = st.tuples(
    st.integers(0, 3),  # ident
    st.one_of(st.integers(0, 40).map(lambda n: n * 8), st.integers(0, 8191).map(lambda n: n * 8)),
    st.one_of(st.integers(1, 8).map(lambda n: n * 8), st.integers(0, 64)),  # length
    st.booleans(),  # more
    st.sampled_from([0, 0, 0, 1]),  # 0: the bytes every fragment agrees on
    st.floats(0, 40),  # time step
    st.booleans(),  # a Hop-by-Hop header in front
)


@settings(max_examples=200)
@given(st.lists(fragments, max_size=40), st.integers(1, 4), st.integers(1, 400), st.integers(1, 8))
def test_arbitrary_fragment_sequences_never_raise_and_balance(
    seq, max_datagrams: int, max_bytes: int, max_fragments: int
) -> None:
    r = Reassembler6(max_datagrams=max_datagrams, max_bytes=max_bytes, timeout=60, max_fragments=max_fragments)
    now = 0.0
    for ident, offset, length, more, fill, step, hbh in seq:
        now += step
        data = bytes(((offset + k) & 0xFF) ^ fill for k in range(length))
        packet = frag(offset, data, more, ident, unfragmentable=router_alert_hop_by_hop(0) if hbh else b"")
        try:
            done = add(r, packet, now)
        except ParameterProblem as exc:
            assert exc.reason in ("bad_fragment_length", "bad_fragment_offset")
            done = None
        if done is not None:
            hdr, view = IPv6Header.parse(done)
            chain = walk_extensions(hdr.next_header, view)
            assert chain.fragment is None and chain.proto == IPPROTO_UDP
            out = bytes(view[chain.offset :])
            if not any(f[4] for f in seq):
                assert out == bytes(k & 0xFF for k in range(len(out)))
        if step > 20:
            for first in r.expire(now):
                hdr, view = IPv6Header.parse(first)
                chain = walk_extensions(hdr.next_header, view)
                assert chain.fragment is not None and chain.fragment.offset == 0
        stats = r.statistics()
        check(stats)
        assert stats.in_progress + stats.abandoned <= max_datagrams
        assert stats.buffered_bytes <= max_bytes
        assert (r.next_deadline() is None) == (stats.in_progress + stats.abandoned == 0)
    r.expire(now + 61)
    stats = r.statistics()
    assert (stats.in_progress, stats.abandoned, stats.buffered_bytes) == (0, 0, 0)
    check(stats)
