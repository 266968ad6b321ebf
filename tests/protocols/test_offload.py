"""Checksum offload: a PendingFrame completed gives the bytes a full
checksum computation gives; scapy as the oracle; anything else untouched."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from scapy.all import TCP, UDP, Ether

from trionet.protocols.ethernet import EthernetHeader
from trionet.protocols.ipv4 import IPv4Header
from trionet.protocols.offload import PendingFrame, complete, fill_checksum, is_pending
from trionet.protocols.tcp import TcpFlags, TcpHeader
from trionet.protocols.udp import UdpHeader

ETH = EthernetHeader(b"\x02\x00\x00\x00\x00\x02", b"\x02\x00\x00\x00\x00\x01", 0x0800).emit()
addrs = st.binary(min_size=4, max_size=4)
payloads = st.binary(max_size=300)
ports = st.integers(0, 0xFFFF)


@given(addrs, addrs, ports, ports, payloads)
def test_a_completed_udp_frame_is_the_one_computed_in_full(src: bytes, dst: bytes, sp: int, dp: int, data: bytes) -> None:
    full = ETH + IPv4Header(src, dst, 17).emit(UdpHeader(sp, dp).emit(data, src, dst))
    lazy = PendingFrame(ETH + IPv4Header(src, dst, 17).emit(UdpHeader(sp, dp).emit(data, src, dst, checksum=False)))
    assert is_pending(lazy) and not is_pending(full)
    done = complete(lazy)
    assert done == full and type(done) is bytes


@given(addrs, addrs, st.integers(0, 2**32 - 1), payloads)
def test_a_completed_tcp_frame_is_the_one_computed_in_full(src: bytes, dst: bytes, seq: int, data: bytes) -> None:
    h = TcpHeader(1234, 80, seq, 0, TcpFlags.ACK | TcpFlags.PSH, window=1000)
    full = ETH + IPv4Header(src, dst, 6).emit(h.emit(data, src, dst))
    lazy = PendingFrame(ETH + IPv4Header(src, dst, 6).emit(h.emit(data, src, dst, checksum=False)))
    assert complete(lazy) == full
    # and a bare IP packet (offset 0) the same way
    assert complete(PendingFrame(lazy[14:]), 0) == full[14:]
    assert fill_checksum(6, h.emit(data, src, dst, checksum=False), src, dst) == h.emit(data, src, dst)


def test_scapy_finds_the_completed_checksums_right() -> None:
    src, dst = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
    for proto, segment in (
        (17, UdpHeader(5000, 53).emit(b"abc" * 33, src, dst, checksum=False)),
        (6, TcpHeader(5000, 80, 7, 9, TcpFlags.ACK).emit(b"xyz" * 100, src, dst, checksum=False)),
    ):
        frame = complete(PendingFrame(ETH + IPv4Header(src, dst, proto).emit(segment)))
        pkt = Ether(frame)
        layer = pkt[UDP] if proto == 17 else pkt[TCP]
        got = layer.chksum
        del layer.chksum
        assert Ether(bytes(pkt))[UDP if proto == 17 else TCP].chksum == got != 0


def test_plain_frames_and_other_protocols_pass_unchanged() -> None:
    frame = ETH + IPv4Header(bytes(4), bytes(4), 1).emit(b"\x08\x00" + bytes(10))  # ICMP
    assert complete(frame) is frame
    assert complete(PendingFrame(frame)) == frame
    short = PendingFrame(ETH + b"\x45")
    assert complete(short) == bytes(short)
