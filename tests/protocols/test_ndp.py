"""Neighbor Discovery messages: literals, RFC 4861 validation, options, scapy as an oracle, fuzz."""

from __future__ import annotations

from functools import partial


import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet6 import (
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6ND_RA,
    ICMPv6ND_Redirect,
    ICMPv6ND_RS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptMTU,
    ICMPv6NDOptPrefixInfo,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
)

from trionet.protocols.errors import LocalProtocolError, RemoteProtocolError
from trionet.protocols.icmpv6 import (
    ECHO_REQUEST,
    ND_NEIGHBOR_ADVERT,
    ND_NEIGHBOR_SOLICIT,
    ND_REDIRECT,
    ND_ROUTER_ADVERT,
    ND_ROUTER_SOLICIT,
    Icmp6Message,
)
from trionet.protocols.ndp import (
    NeighborAdvert,
    NeighborSolicit,
    PrefixInfo,
    Redirect,
    RouterAdvert,
    RouterSolicit,
    parse_nd,
)

import icmp6_scapy
from icmp6_scapy import a6, n6
from protocol_checks import parse_or_reject


def mac(addr: bytes) -> str:
    return ":".join(f"{b:02x}" for b in addr)


LL1 = a6("fe80::1")
LL2 = a6("fe80::2")
G1 = a6("2001:db8::1")
G2 = a6("2001:db8::2")
UNSPEC = bytes(16)
ALL_NODES = a6("ff02::1")
ALL_ROUTERS = a6("ff02::2")
SNODE2 = a6("ff02::1:ff00:2")
MAC1 = bytes.fromhex("020000000001")
MAC2 = bytes.fromhex("020000000002")


def nd(data: bytes, src: bytes, dst: bytes, hop_limit: int = 255) -> object:
    msg, body = Icmp6Message.parse(data, src, dst)
    return parse_nd(msg, body, hop_limit=hop_limit, src=src, dst=dst)


scapy_decode = partial(icmp6_scapy.scapy_decode, hlim=255)
scapy_build = partial(icmp6_scapy.scapy_build, hlim=255)


#### Byte literals

# A Neighbor Solicitation fe80::1 -> ff02::1:ff00:2 for fe80::2, source
# link-layer address 02:00:00:00:00:01 (checksum 0x7a97, as scapy computes it).
NS = bytes.fromhex(
    "87007a97" "00000000"  # type 135, code 0, checksum, reserved
    "fe800000000000000000000000000002"  # target
    "0101" "020000000001"  # option 1, length 1 (8 bytes), the address
)

# A Router Advertisement fe80::1 -> ff02::1: hop limit 64, M set, lifetime
# 1800 s, reachable 30000 ms, retransmit 1000 ms, source link-layer address,
# MTU 1500, and the prefix 2001:db8::/64 with L and A set, valid 1 day and
# preferred 4 hours (checksum 0xb240, as scapy computes it).
RA = bytes.fromhex(
    "8600b240" "40800708"  # type 134, code 0, checksum; hop limit 64, flags M, lifetime 1800
    "00007530" "000003e8"  # reachable time, retrans timer
    "0101" "020000000001"  # source link-layer address
    "0501" "0000" "000005dc"  # MTU
    "0304" "40" "c0" "00015180" "00003840" "00000000"  # prefix: length 64, L|A, valid, preferred, reserved
    "20010db8000000000000000000000000"
)
RA_VALUE = RouterAdvert(
    cur_hop_limit=64, managed=True, router_lifetime=1800, reachable_time=30000, retrans_timer=1000,
    source_lladdr=MAC1, mtu=1500, prefixes=(PrefixInfo(a6("2001:db8::"), 64, True, True, 86400, 14400),),
)


def test_deconstruct() -> None:
    assert nd(NS, LL1, SNODE2) == NeighborSolicit(LL2, MAC1)
    assert nd(RA, LL1, ALL_NODES) == RA_VALUE


def test_construct() -> None:
    assert NeighborSolicit(LL2, MAC1).emit(LL1, SNODE2) == NS
    assert RA_VALUE.emit(LL1, ALL_NODES) == RA


def test_repr_is_readable() -> None:
    assert repr(NeighborSolicit(LL2, MAC1)) == "NeighborSolicit(target=fe80::2, source_lladdr=02:00:00:00:00:01)"


#### RFC 4861 validation


def _with(data: bytes, at: int, value: bytes, src: bytes, dst: bytes) -> bytes:
    """``data`` with ``value`` written at ``at``, checksum recomputed."""
    Icmp6Message.parse(data, src, dst)  # a valid message to start from
    raw_ = bytearray(data)
    raw_[at : at + len(value)] = value
    head = Icmp6Message(raw_[0], raw_[1], int.from_bytes(raw_[4:8], "big"))
    return head.emit(src, dst, bytes(raw_[8:]))


NA_SOLICITED = NeighborAdvert(LL2, solicited=True, target_lladdr=MAC2).emit(LL2, LL1)
NA_MULTICAST = NeighborAdvert(LL2, target_lladdr=MAC2).emit(LL2, ALL_NODES)
RS_PLAIN = RouterSolicit().emit(UNSPEC, ALL_ROUTERS)
REDIRECT = Redirect(LL2, G2, MAC2).emit(LL1, G1)

REJECTIONS = [
    # (name, data, src, dst, hop limit, reason)
    ("ns forwarded", NS, LL1, SNODE2, 254, "bad_hop_limit"),
    ("ra forwarded", RA, LL1, ALL_NODES, 64, "bad_hop_limit"),
    ("ns code 1", _with(NS, 1, b"\x01", LL1, SNODE2), LL1, SNODE2, 255, "bad_code"),
    ("ra code 9", _with(RA, 1, b"\x09", LL1, ALL_NODES), LL1, ALL_NODES, 255, "bad_code"),
    ("ns without target", Icmp6Message(ND_NEIGHBOR_SOLICIT, 0).emit(LL1, SNODE2, LL2[:15]), LL1, SNODE2, 255, "short_message"),
    ("na without target", Icmp6Message(ND_NEIGHBOR_ADVERT, 0).emit(LL1, LL2, b""), LL1, LL2, 255, "short_message"),
    ("ra without timers", Icmp6Message(ND_ROUTER_ADVERT, 0).emit(LL1, ALL_NODES, bytes(7)), LL1, ALL_NODES, 255, "short_message"),
    ("redirect without destination", Icmp6Message(ND_REDIRECT, 0).emit(LL1, G1, LL2 + G2[:15]), LL1, G1, 255, "short_message"),
    ("option length 0", _with(NS, 25, b"\x00", LL1, SNODE2), LL1, SNODE2, 255, "bad_option_length"),
    ("option past the end", _with(NS, 25, b"\x02", LL1, SNODE2), LL1, SNODE2, 255, "short_option"),
    ("one byte of option", Icmp6Message(ND_ROUTER_SOLICIT, 0).emit(LL1, ALL_ROUTERS, b"\x01"), LL1, ALL_ROUTERS, 255, "short_option"),
    ("option cut short", Icmp6Message(ND_ROUTER_SOLICIT, 0).emit(LL1, ALL_ROUTERS, b"\x01\x01" + MAC1[:5]), LL1, ALL_ROUTERS, 255, "short_option"),
    ("ns for a multicast target", _with(NS, 8, b"\xff\x02", LL1, SNODE2), LL1, SNODE2, 255, "multicast_target"),
    ("na for a multicast target", _with(NA_SOLICITED, 8, b"\xff\x02", LL2, LL1), LL2, LL1, 255, "multicast_target"),
    ("redirect to a multicast target", _with(REDIRECT, 8, b"\xff\x02", LL1, G1), LL1, G1, 255, "multicast_target"),
    ("dad probe with a source lladdr", NS, UNSPEC, SNODE2, 255, "bad_dad_probe"),
    ("dad probe to all nodes", NeighborSolicit(LL2).emit(LL1, ALL_NODES), UNSPEC, ALL_NODES, 255, "bad_dad_probe"),
    ("dad probe to unicast", NeighborSolicit(LL2).emit(LL1, LL2), UNSPEC, LL2, 255, "bad_dad_probe"),
    ("solicited na to all nodes", NA_SOLICITED, LL2, ALL_NODES, 255, "solicited_to_multicast"),
    ("ra from a global address", RA, G1, ALL_NODES, 255, "ra_not_link_local"),
    ("ra from ::", RA, UNSPEC, ALL_NODES, 255, "ra_not_link_local"),
    ("rs from :: with a source lladdr", RouterSolicit(MAC1).emit(LL1, ALL_ROUTERS), UNSPEC, ALL_ROUTERS, 255, "bad_rs"),
    ("redirect from a global address", REDIRECT, G2, G1, 255, "redirect_not_link_local"),
    ("redirect of a multicast destination", _with(REDIRECT, 24, b"\xff\x0e", LL1, G1), LL1, G1, 255, "bad_redirect"),
    ("redirect to a global target", _with(REDIRECT, 8, b"\x20\x01", LL1, G1), LL1, G1, 255, "bad_redirect"),
]


@pytest.mark.parametrize(
    ("data", "src", "dst", "hop_limit", "reason"), [r[1:] for r in REJECTIONS], ids=[r[0] for r in REJECTIONS]
)
def test_rejects(data: bytes, src: bytes, dst: bytes, hop_limit: int, reason: str) -> None:
    # Some rows were built for other addresses than they are parsed with:
    # recompute the checksum for the ones under test.
    msg = Icmp6Message(data[0], data[1], int.from_bytes(data[4:8], "big"))
    data = msg.emit(src, dst, data[8:])
    with pytest.raises(RemoteProtocolError) as info:
        nd(data, src, dst, hop_limit)
    assert info.value.reason == reason


def test_the_accepted_cousins_of_the_rejections() -> None:
    assert nd(NeighborSolicit(LL2).emit(UNSPEC, SNODE2), UNSPEC, SNODE2) == NeighborSolicit(LL2)
    assert nd(NA_MULTICAST, LL2, ALL_NODES) == NeighborAdvert(LL2, target_lladdr=MAC2)
    assert nd(NA_SOLICITED, LL2, LL1) == NeighborAdvert(LL2, solicited=True, target_lladdr=MAC2)
    assert nd(RS_PLAIN, UNSPEC, ALL_ROUTERS) == RouterSolicit()
    assert nd(RouterSolicit(MAC1).emit(LL1, ALL_ROUTERS), LL1, ALL_ROUTERS) == RouterSolicit(MAC1)
    assert nd(REDIRECT, LL1, G1) == Redirect(LL2, G2, MAC2)
    # A redirect to an on-link destination: the target is the destination.
    assert nd(Redirect(G2, G2).emit(LL1, G1), LL1, G1) == Redirect(G2, G2)


def test_a_type_that_is_not_nd_is_the_callers_bug() -> None:
    with pytest.raises(ValueError, match="not a Neighbor Discovery"):
        parse_nd(Icmp6Message(ECHO_REQUEST, 0), memoryview(bytes(40)), hop_limit=255, src=LL1, dst=LL2)


@pytest.mark.parametrize(
    ("message", "src", "dst"),
    [
        (NeighborSolicit(ALL_NODES), LL1, SNODE2),
        (NeighborSolicit(LL2, MAC1), UNSPEC, SNODE2),
        (NeighborSolicit(LL2), UNSPEC, ALL_NODES),
        (NeighborAdvert(ALL_NODES), LL1, LL2),
        (NeighborAdvert(LL2, solicited=True), LL2, ALL_NODES),
        (RouterAdvert(), G1, ALL_NODES),
        (RouterSolicit(MAC1), UNSPEC, ALL_ROUTERS),
        (Redirect(LL2, G2), G1, G2),
        (Redirect(G1, G2), LL1, G2),
        (Redirect(LL2, ALL_NODES), LL1, G2),
    ],
)
def test_emit_refuses_what_parse_would_reject(message: object, src: bytes, dst: bytes) -> None:
    with pytest.raises(LocalProtocolError):
        message.emit(src, dst)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "make",
    [
        lambda: NeighborSolicit(LL2[:15]).emit(LL1, SNODE2),
        lambda: NeighborSolicit(LL2, MAC1[:5]).emit(LL1, SNODE2),
        lambda: NeighborAdvert(LL2, target_lladdr=b"1234567").emit(LL1, LL2),
        lambda: RouterAdvert(cur_hop_limit=256).emit(LL1, ALL_NODES),
        lambda: RouterAdvert(router_lifetime=65536).emit(LL1, ALL_NODES),
        lambda: RouterAdvert(reachable_time=1 << 32).emit(LL1, ALL_NODES),
        lambda: RouterAdvert(mtu=-1).emit(LL1, ALL_NODES),
        lambda: RouterAdvert(prefixes=[PrefixInfo(G1, 129)]).emit(LL1, ALL_NODES),
        lambda: RouterAdvert(prefixes=[PrefixInfo(G1, 64, valid_lifetime=1 << 32)]).emit(LL1, ALL_NODES),
        lambda: RouterSolicit().emit(LL1[:4], ALL_ROUTERS),
    ],
)
def test_emit_refuses_malformed_fields(make: object) -> None:
    with pytest.raises(ValueError):
        make()  # type: ignore[operator]


#### Options


def opt(type_: int, payload: bytes) -> bytes:
    assert (len(payload) + 2) % 8 == 0
    return bytes((type_, (len(payload) + 2) // 8)) + payload


def ra_with(options: bytes) -> RouterAdvert:
    data = Icmp6Message(ND_ROUTER_ADVERT, 0, 64 << 24).emit(LL1, ALL_NODES, bytes(8) + options)
    result = nd(data, LL1, ALL_NODES)
    assert isinstance(result, RouterAdvert)
    return result


def test_unknown_and_foreign_options_are_skipped() -> None:
    unknown = opt(200, bytes(14)) + opt(ND_NEIGHBOR_SOLICIT, bytes(6))
    tlla = opt(2, MAC2)  # a target address has no place in an RA
    ra = ra_with(unknown + tlla + opt(1, MAC1) + unknown)
    assert ra == RouterAdvert(cur_hop_limit=64, router_lifetime=0, source_lladdr=MAC1)
    # And an MTU option means nothing in a solicitation.
    body = LL2 + opt(5, bytes(2) + (1500).to_bytes(4, "big")) + opt(1, MAC1)
    assert nd(Icmp6Message(ND_NEIGHBOR_SOLICIT, 0).emit(LL1, SNODE2, body), LL1, SNODE2) == NeighborSolicit(LL2, MAC1)


def test_the_first_copy_of_a_single_option_counts() -> None:
    ra = ra_with(opt(1, MAC1) + opt(1, MAC2) + opt(5, bytes(2) + b"\0\0\5\xdc") + opt(5, bytes(6)))
    assert (ra.source_lladdr, ra.mtu) == (MAC1, 1500)


def test_options_of_other_shapes_are_ignored() -> None:
    # A 14-byte link-layer address (another link type), a prefix option of
    # length 3, a prefix longer than 128 bits, an MTU option of length 2.
    prefix = PrefixInfo(G1, 64).emit()
    ra = ra_with(
        opt(1, bytes(14)) + bytes((3, 3)) + prefix[2:24] + prefix[:2] + b"\x81" + prefix[3:]
        + opt(5, bytes(14))
    )
    assert ra.source_lladdr is None and ra.prefixes == () and ra.mtu is None


def test_prefix_bits_after_the_length_are_zeroed() -> None:
    ra = ra_with(PrefixInfo(a6("2001:db8:1:2:3:4:5:6"), 48).emit())
    assert ra.prefixes == (PrefixInfo(a6("2001:db8:1::"), 48),)
    sent = bytearray(PrefixInfo(a6("2001:db8:1::"), 48).emit())
    sent[-10:] = b"\xff" * 10  # bits the receiver must ignore
    assert ra_with(bytes(sent)).prefixes == ra.prefixes
    assert ra_with(PrefixInfo(G1, 128).emit()).prefixes[0].prefix == G1
    assert ra_with(PrefixInfo(G1, 0).emit()).prefixes[0].prefix == UNSPEC


def test_many_prefixes_in_order() -> None:
    prefixes = tuple(PrefixInfo(a6(f"2001:db8:{i:x}::"), 64, i % 2 == 0, i % 3 == 0, i, i) for i in range(30))
    ra = RouterAdvert(prefixes=list(prefixes))
    assert ra.prefixes == prefixes
    assert nd(ra.emit(LL1, ALL_NODES), LL1, ALL_NODES) == ra


#### Scapy


def test_scapy_decodes_our_messages() -> None:
    pkt = scapy_decode(NeighborSolicit(LL2, MAC1).emit(LL1, SNODE2), LL1, SNODE2)
    assert pkt[ICMPv6ND_NS].tgt == "fe80::2"
    assert pkt[ICMPv6NDOptSrcLLAddr].lladdr == mac(MAC1)

    pkt = scapy_decode(NeighborAdvert(LL2, True, True, False, MAC2).emit(LL2, LL1), LL2, LL1)
    na = pkt[ICMPv6ND_NA]
    assert (na.tgt, na.R, na.S, na.O) == ("fe80::2", 1, 1, 0)
    assert pkt[ICMPv6NDOptDstLLAddr].lladdr == mac(MAC2)

    pkt = scapy_decode(RouterSolicit(MAC1).emit(LL1, ALL_ROUTERS), LL1, ALL_ROUTERS)
    assert pkt[ICMPv6ND_RS].type == ND_ROUTER_SOLICIT
    assert pkt[ICMPv6NDOptSrcLLAddr].lladdr == mac(MAC1)

    pkt = scapy_decode(RA_VALUE.emit(LL1, ALL_NODES), LL1, ALL_NODES)
    ra = pkt[ICMPv6ND_RA]
    assert (ra.chlim, ra.M, ra.O, ra.routerlifetime, ra.reachabletime, ra.retranstimer) == (
        64, 1, 0, 1800, 30000, 1000,
    )
    assert pkt[ICMPv6NDOptMTU].mtu == 1500
    pi = pkt[ICMPv6NDOptPrefixInfo]
    assert (pi.prefix, pi.prefixlen, pi.L, pi.A, pi.validlifetime, pi.preferredlifetime) == (
        "2001:db8::", 64, 1, 1, 86400, 14400,
    )

    pkt = scapy_decode(Redirect(LL2, G2, MAC2).emit(LL1, G1), LL1, G1)
    assert (pkt[ICMPv6ND_Redirect].tgt, pkt[ICMPv6ND_Redirect].dst) == ("fe80::2", "2001:db8::2")
    assert pkt[ICMPv6NDOptDstLLAddr].lladdr == mac(MAC2)


#### Hypothesis: round trips, scapy both ways

u32 = st.integers(0, 0xFFFFFFFF)
macs = st.binary(min_size=6, max_size=6)
opt_macs = st.none() | macs
addrs = st.binary(min_size=16, max_size=16)
unicast = addrs.filter(lambda a: a[0] != 0xFF)
link_local = st.binary(min_size=14, max_size=14).map(lambda b: b"\xfe\x80" + b)


def _masked(p: PrefixInfo) -> PrefixInfo:
    bits = int.from_bytes(p.prefix, "big") >> (128 - p.prefix_len) << (128 - p.prefix_len)
    return attrs.evolve(p, prefix=bits.to_bytes(16, "big"))


# Parsed prefixes have the bits after the length cleared: generate them so.
prefix_infos = st.builds(PrefixInfo, addrs, st.integers(0, 128), st.booleans(), st.booleans(), u32, u32).map(_masked)


router_adverts = st.builds(
    RouterAdvert,
    cur_hop_limit=st.integers(0, 255),
    managed=st.booleans(),
    other=st.booleans(),
    router_lifetime=st.integers(0, 0xFFFF),
    reachable_time=u32,
    retrans_timer=u32,
    source_lladdr=opt_macs,
    mtu=st.none() | u32,
    prefixes=st.lists(prefix_infos, max_size=4).map(tuple),
)


@st.composite
def nd_cases(draw: st.DrawFn) -> tuple[object, bytes, bytes]:
    """A message with addresses it may be sent with."""
    kind = draw(st.sampled_from(["rs", "ra", "ns", "na", "redirect"]))
    if kind == "rs":
        src = draw(st.just(UNSPEC) | link_local | unicast)
        lladdr = None if src == UNSPEC else draw(opt_macs)
        return RouterSolicit(lladdr), src, draw(addrs)
    if kind == "ra":
        return draw(router_adverts), draw(link_local), draw(addrs)
    if kind == "ns":
        src = draw(st.just(UNSPEC) | unicast)
        if src == UNSPEC:
            dst = b"\xff\x02" + bytes(9) + b"\x01\xff" + draw(st.binary(min_size=3, max_size=3))
            return NeighborSolicit(draw(unicast)), src, dst
        return NeighborSolicit(draw(unicast), draw(opt_macs)), src, draw(addrs)
    if kind == "na":
        dst = draw(addrs)
        solicited = dst[0] != 0xFF and draw(st.booleans())
        na = NeighborAdvert(draw(unicast), draw(st.booleans()), solicited, draw(st.booleans()), draw(opt_macs))
        return na, draw(unicast), dst
    destination = draw(unicast)
    target = draw(st.just(destination) | link_local)
    return Redirect(target, destination, draw(opt_macs)), draw(link_local), draw(addrs)


@settings(max_examples=300)
@given(nd_cases())
def test_round_trip(case: tuple[object, bytes, bytes]) -> None:
    message, src, dst = case
    data = message.emit(src, dst)  # type: ignore[attr-defined]
    assert nd(data, src, dst) == message


def _scapy_layer(message: object) -> object:
    lladdr = getattr(message, "source_lladdr", None) or getattr(message, "target_lladdr", None)
    if isinstance(message, RouterSolicit):
        layer = ICMPv6ND_RS()
    elif isinstance(message, RouterAdvert):
        layer = ICMPv6ND_RA(
            chlim=message.cur_hop_limit, M=message.managed, O=message.other, prf=0,
            routerlifetime=message.router_lifetime, reachabletime=message.reachable_time,
            retranstimer=message.retrans_timer,
        )
    elif isinstance(message, NeighborSolicit):
        layer = ICMPv6ND_NS(tgt=n6(message.target))
    elif isinstance(message, NeighborAdvert):
        layer = ICMPv6ND_NA(tgt=n6(message.target), R=message.router, S=message.solicited, O=message.override)
    else:
        assert isinstance(message, Redirect)
        layer = ICMPv6ND_Redirect(tgt=n6(message.target), dst=n6(message.destination))
    if lladdr is not None:
        cls = ICMPv6NDOptSrcLLAddr if hasattr(message, "source_lladdr") else ICMPv6NDOptDstLLAddr
        layer = layer / cls(lladdr=mac(lladdr))
    if isinstance(message, RouterAdvert):
        if message.mtu is not None:
            layer = layer / ICMPv6NDOptMTU(mtu=message.mtu)
        for p in message.prefixes:
            layer = layer / ICMPv6NDOptPrefixInfo(
                prefix=n6(p.prefix), prefixlen=p.prefix_len, L=p.on_link, A=p.autonomous,
                validlifetime=p.valid_lifetime, preferredlifetime=p.preferred_lifetime,
            )
    return layer


@settings(max_examples=200)
@given(nd_cases())
def test_we_decode_what_scapy_builds(case: tuple[object, bytes, bytes]) -> None:
    message, src, dst = case
    data = scapy_build(_scapy_layer(message), src, dst)
    assert nd(data, src, dst) == message
    # Same option order as ours, so the same bytes.
    assert data == message.emit(src, dst)  # type: ignore[attr-defined]


@settings(max_examples=200)
@given(nd_cases())
def test_scapy_decodes_and_checksums_what_we_build(case: tuple[object, bytes, bytes]) -> None:
    message, src, dst = case
    pkt = scapy_decode(message.emit(src, dst), src, dst)  # type: ignore[attr-defined]
    assert pkt[IPv6].payload.type == {
        RouterSolicit: 133, RouterAdvert: 134, NeighborSolicit: 135, NeighborAdvert: 136, Redirect: 137,
    }[type(message)]


#### Fuzz

nd_types = st.sampled_from([ND_ROUTER_SOLICIT, ND_ROUTER_ADVERT, ND_NEIGHBOR_SOLICIT, ND_NEIGHBOR_ADVERT, ND_REDIRECT])
any_addr = addrs | st.sampled_from([UNSPEC, ALL_NODES, SNODE2, LL1]) | st.binary(max_size=17)


def _parse_nd(data: bytes, type_: int, code: int, rest: int, hop_limit: int, src: bytes, dst: bytes) -> None:
    parse_nd(Icmp6Message(type_, code, rest), memoryview(data), hop_limit=hop_limit, src=src, dst=dst)


@settings(max_examples=500)
@given(
    st.binary(max_size=80),
    nd_types,
    st.integers(0, 1) | st.integers(0, 255),
    u32,
    st.just(255) | st.integers(0, 255),
    any_addr,
    any_addr,
)
def test_arbitrary_input_only_raises_remote_protocol_error(
    data: bytes, type_: int, code: int, rest: int, hop_limit: int, src: bytes, dst: bytes
) -> None:
    parse_or_reject(_parse_nd, data, type_, code, rest, hop_limit, src, dst)


@settings(max_examples=300)
@given(nd_cases(), st.data())
def test_cut_and_mutated_messages_only_raise_remote_protocol_error(
    case: tuple[object, bytes, bytes], data: st.DataObject
) -> None:
    message, src, dst = case
    frame = bytearray(message.emit(src, dst))  # type: ignore[attr-defined]
    i = data.draw(st.integers(1, len(frame) - 1))  # any byte but the type
    frame[i] ^= data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(8, len(frame)))
    parse_or_reject(_parse_nd, bytes(frame[8:cut]), frame[0], frame[1], int.from_bytes(frame[4:8], "big"), 255, src, dst)
