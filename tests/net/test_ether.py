"""Ethernet output: ``ether_output`` frames with ``trionet.protocols.ethernet``
(through its header cache) and queues with ``ifq_dispatch``; ARP only resolves
and hands its packets, and its own, to it."""

from __future__ import annotations

import errno

import pytest
import trio
import trio.testing

import trionet
from trionet._net import _ether
from trionet._net._ether import HEADER_CACHE_MAX, ether_output
from trionet.drivers.lo import Loopback
from trionet.drivers.vnic import Vnic
from trionet.protocols.arp import ARPOP_REQUEST, ArpPacket
from trionet.protocols.ethernet import BROADCAST, ETHERTYPE_ARP, ETHERTYPE_IP, EthernetHeader
from trionet.protocols.ipv4 import IPv4Header, ip_aton
from trionet.wires import memory_pair

MY_MAC = b"\x02\x00\x00\x00\x00\x01"
PEER_MAC = b"\x02\x00\x00\x00\x00\x02"


async def _vnic_host(host: trionet.Host) -> tuple[trionet.Ifnet, list[bytes]]:
    a, b = memory_pair()
    wire: list[bytes] = []
    b.set_receiver(wire.append)
    ifp = await host.if_attach(Vnic(a, lladdr=MY_MAC))
    await host.ifup(ifp)
    await trio.testing.wait_all_tasks_blocked()
    return ifp, wire


async def test_ether_output_frames_with_the_ethernet_header_and_queues(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trionet.open_host("h") as host:
        ifp, wire = await _vnic_host(host)
        ether_output(ifp, PEER_MAC, ETHERTYPE_IP, b"payload")
        ether_output(ifp, PEER_MAC, ETHERTYPE_IP, b"again")  # the cached header
        ether_output(ifp, BROADCAST, 0x88B5, b"local experimental")
        await trio.testing.wait_all_tasks_blocked()
        parsed = [EthernetHeader.parse(frame) for frame in wire]
        assert [(h, bytes(p)) for h, p in parsed] == [
            (EthernetHeader(PEER_MAC, MY_MAC, ETHERTYPE_IP), b"payload"),
            (EthernetHeader(PEER_MAC, MY_MAC, ETHERTYPE_IP), b"again"),
            (EthernetHeader(BROADCAST, MY_MAC, 0x88B5), b"local experimental"),
        ]
        assert ifp.statistics().opackets == 3
        with pytest.raises(ValueError, match="dst must be 6 bytes"):
            ether_output(ifp, b"\x01\x02", ETHERTYPE_IP, b"x")
        await host.ifdown(ifp)
        with pytest.raises(trionet.NetError) as info:
            ether_output(ifp, PEER_MAC, ETHERTYPE_IP, b"x")  # ifq_dispatch's error
        assert info.value.errno == errno.ENETDOWN


async def test_a_loopback_interface_frames_with_zero_addresses(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trionet.open_host("h") as host:
        lo = await host.if_attach(Loopback())
        await host.ifup(lo)
        host.ifconfig(lo.name, "127.0.0.1/8")
        frames: list[bytes] = []
        lo.input_fn, real_input = (lambda ifp, frame: frames.append(bytes(frame))), lo.input_fn
        try:
            ether_output(lo, bytes(6), ETHERTYPE_IP, b"x")
            await trio.testing.wait_all_tasks_blocked()
        finally:
            lo.input_fn = real_input
        assert frames == [bytes(12) + b"\x08\x00x"]


async def test_the_header_cache_is_bounded() -> None:
    async with trionet.open_host("h") as host:
        a, _ = memory_pair()
        ifp = await host.if_attach(Vnic(a, lladdr=MY_MAC))  # down: every frame refused
        for i in range(HEADER_CACHE_MAX * 2 + 3):
            with pytest.raises(trionet.NetError):
                ether_output(ifp, b"\x02" + i.to_bytes(5, "big"), ETHERTYPE_IP, b"")
            assert len(_ether._headers) <= HEADER_CACHE_MAX
        assert ifp.statistics().oerrors == HEADER_CACHE_MAX * 2 + 3


async def test_arp_resolves_then_hands_the_packet_to_ether_output(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A datagram to an unresolved neighbour waits while ARP asks (a request
    framed by ether_output, broadcast); the reply releases it, framed for
    the neighbour's MAC."""
    async with trionet.open_host("h") as host:
        ifp, wire = await _vnic_host(host)
        host.ifconfig(ifp.name, "10.0.0.1/24")
        await trio.testing.wait_all_tasks_blocked()
        wire.clear()  # the gratuitous ARP
        sock = host.udp_socket()
        await sock.sendto(b"hello", ("10.0.0.2", 9))
        await trio.testing.wait_all_tasks_blocked()
        (request,) = wire
        eh, body = EthernetHeader.parse(request)
        assert (eh.dst, eh.src, eh.ethertype) == (BROADCAST, MY_MAC, ETHERTYPE_ARP)
        pkt, _ = ArpPacket.parse(body)
        assert (pkt.op, pkt.spa, pkt.tpa) == (ARPOP_REQUEST, ip_aton("10.0.0.1"), ip_aton("10.0.0.2"))
        reply = ArpPacket(2, PEER_MAC, ip_aton("10.0.0.2"), MY_MAC, ip_aton("10.0.0.1"))
        ifp.input(EthernetHeader(MY_MAC, PEER_MAC, ETHERTYPE_ARP).emit(reply.emit()))
        await trio.testing.wait_all_tasks_blocked()
        eh, body = EthernetHeader.parse(wire[1])
        assert (eh.dst, eh.src, eh.ethertype) == (PEER_MAC, MY_MAC, ETHERTYPE_IP)
        hdr, _ = IPv4Header.parse(body)
        assert (hdr.src, hdr.dst) == (ip_aton("10.0.0.1"), ip_aton("10.0.0.2"))
