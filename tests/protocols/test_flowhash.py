"""Flow hashing of IPv4 and IPv6 packets to protocol threads."""

import struct

from hypothesis import given
from hypothesis import strategies as st

from trionet.protocols.flowhash import ipv4_flow_hash, ipv6_flow_hash, tuple_hash


def ipv4(src: int, dst: int, proto: int, payload: bytes, *, frag: int = 0, ihl: int = 5) -> bytes:
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x40 | ihl, 0, 20 + len(payload), 1, frag, 64, proto, 0,
        src.to_bytes(4, "big"), dst.to_bytes(4, "big"),
    )
    return header + b"\x00" * (ihl * 4 - 20) + payload


def ports(sport: int, dport: int) -> bytes:
    return struct.pack("!HH", sport, dport) + b"\x00" * 16


addr = st.integers(0, 2**32 - 1)
port = st.integers(0, 65535)


def test_hash_of_a_known_tcp_packet() -> None:
    pkt = ipv4(0x0A000001, 0x0A000002, 6, ports(1234, 80))
    assert ipv4_flow_hash(pkt) == tuple_hash(0x0A000001, 1234, 0x0A000002, 80)
    # 10.0.0.1 ^ 10.0.0.2 ^ 1234 ^ 80 = 0x0481; folded: 0x04 ^ 0x81 = 0x85
    assert tuple_hash(0x0A000001, 1234, 0x0A000002, 80) == 0x85


@given(addr, port, addr, port, st.sampled_from([6, 17]))
def test_both_directions_of_a_flow_hash_alike(src: int, sp: int, dst: int, dp: int, proto: int) -> None:
    if proto == 17 and (dst >> 28 == 0xE or dst == 0xFFFFFFFF or src >> 28 == 0xE or src == 0xFFFFFFFF):
        return
    there = ipv4(src, dst, proto, ports(sp, dp))
    back = ipv4(dst, src, proto, ports(dp, sp))
    assert ipv4_flow_hash(there) == ipv4_flow_hash(back) == tuple_hash(src, sp, dst, dp)


def test_fragments_other_protocols_and_udp_broadcast_go_to_cpu_0() -> None:
    src, dst = 0x0A000001, 0x0A000002
    assert ipv4_flow_hash(ipv4(src, dst, 6, ports(1234, 80))) != 0
    assert ipv4_flow_hash(ipv4(src, dst, 6, ports(1234, 80), frag=0x2000)) == 0  # MF
    assert ipv4_flow_hash(ipv4(src, dst, 6, ports(1234, 80), frag=0x0010)) == 0  # offset
    assert ipv4_flow_hash(ipv4(src, dst, 6, ports(1234, 80), frag=0x4000)) != 0  # DF is fine
    assert ipv4_flow_hash(ipv4(src, dst, 1, ports(1234, 80))) == 0  # ICMP
    assert ipv4_flow_hash(ipv4(src, 0xE0000001, 17, ports(1234, 80))) == 0  # multicast
    assert ipv4_flow_hash(ipv4(src, 0xFFFFFFFF, 17, ports(1234, 80))) == 0  # broadcast


def test_ip_options_move_the_ports() -> None:
    with_opts = ipv4(0x0A000001, 0x0A000002, 17, ports(5000, 53), ihl=7)
    assert ipv4_flow_hash(with_opts) == tuple_hash(0x0A000001, 5000, 0x0A000002, 53)


@given(st.binary(max_size=80))
def test_any_bytes_hash_without_raising(data: bytes) -> None:
    h = ipv4_flow_hash(data)
    assert 0 <= h <= 255
    assert ipv4_flow_hash(memoryview(data)) == h


@given(st.binary(min_size=20, max_size=60), st.integers(0, 15))
def test_truncated_and_bad_headers_go_to_cpu_0(data: bytes, ihl: int) -> None:
    pkt = bytes([0x40 | ihl]) + data[1:]
    if ihl < 5 or len(pkt) < ihl * 4 + 4:
        assert ipv4_flow_hash(pkt) == 0
    v6 = bytes([0x60]) + data[1:]
    assert ipv4_flow_hash(v6) == 0


####################################################################
# IPv6
####################################################################


def ipv6(src: int, dst: int, next_header: int, payload: bytes, *, version: int = 6) -> bytes:
    header = struct.pack(
        "!IHBB16s16s", version << 28, len(payload), next_header, 64,
        src.to_bytes(16, "big"), dst.to_bytes(16, "big"),
    )
    return header + payload


def fold(addr: int) -> int:
    """XOR of the four 32-bit words of a 128-bit address."""
    return (addr >> 96) ^ (addr >> 64 & 0xFFFFFFFF) ^ (addr >> 32 & 0xFFFFFFFF) ^ (addr & 0xFFFFFFFF)


addr6 = st.integers(0, 2**128 - 1)
A6 = 0x20010DB8_00000000_00000000_00000001  # 2001:db8::1
B6 = 0x20010DB8_00000000_00000000_00000002  # 2001:db8::2
MCAST6 = 0xFF020000_00000000_00000000_00000001  # ff02::1


def test_ipv6_hash_of_a_known_tcp_packet() -> None:
    pkt = ipv6(A6, B6, 6, ports(1234, 80))
    assert fold(A6) == 0x20010DB8 ^ 1
    assert ipv6_flow_hash(pkt) == tuple_hash(fold(A6), 1234, fold(B6), 80)
    # 0x20010db9 ^ 0x20010dba ^ 1234 ^ 80 = 0x0481; folded: 0x04 ^ 0x81 = 0x85
    assert ipv6_flow_hash(pkt) == 0x85
    assert ipv6_flow_hash(memoryview(pkt)) == ipv6_flow_hash(bytearray(pkt)) == 0x85


@given(addr6, port, addr6, port, st.sampled_from([6, 17]))
def test_ipv6_both_directions_of_a_flow_hash_alike(src: int, sp: int, dst: int, dp: int, proto: int) -> None:
    if proto == 17 and (src >> 120 == 0xFF or dst >> 120 == 0xFF):
        return
    there = ipv6(src, dst, proto, ports(sp, dp))
    back = ipv6(dst, src, proto, ports(dp, sp))
    assert ipv6_flow_hash(there) == ipv6_flow_hash(back) == tuple_hash(fold(src), sp, fold(dst), dp)


def test_ipv6_extension_headers_fragments_icmp_and_udp_multicast_go_to_cpu_0() -> None:
    assert ipv6_flow_hash(ipv6(A6, B6, 17, ports(1234, 53))) != 0
    assert ipv6_flow_hash(ipv6(A6, MCAST6, 6, ports(1234, 80))) != 0  # only UDP multicast is special
    hop_by_hop = bytes([17, 0, 1, 4, 0, 0, 0, 0])
    assert ipv6_flow_hash(ipv6(A6, B6, 0, hop_by_hop + ports(1234, 53))) == 0
    fragment = bytes([17, 0, 0, 0, 0, 0, 0, 1])
    assert ipv6_flow_hash(ipv6(A6, B6, 44, fragment + ports(1234, 53))) == 0
    assert ipv6_flow_hash(ipv6(A6, B6, 58, ports(1234, 80))) == 0  # ICMPv6
    assert ipv6_flow_hash(ipv6(A6, MCAST6, 17, ports(1234, 53))) == 0
    # Short, or not what it says.
    good = ipv6(A6, B6, 6, ports(1234, 80))
    assert ipv6_flow_hash(good[:43]) == 0
    assert ipv6_flow_hash(good[:-1]) == 0  # payload length past the end
    assert ipv6_flow_hash(ipv6(A6, B6, 6, ports(1234, 80), version=4)) == 0
    assert ipv6_flow_hash(ipv6(A6, B6, 6, b"\x04\xd2")) == 0  # no room for both ports
    assert ipv4_flow_hash(good) == 0


@given(st.binary(max_size=100))
def test_ipv6_any_bytes_hash_without_raising(data: bytes) -> None:
    h = ipv6_flow_hash(data)
    assert 0 <= h <= 255
    assert ipv6_flow_hash(memoryview(data)) == h
    v6 = bytes([0x60 | (data[0] & 0x0F if data else 0)]) + data[1:]
    assert 0 <= ipv6_flow_hash(v6) <= 255
