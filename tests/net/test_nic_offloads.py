"""NIC offloads between hosts. Checksums left to the card cross an
in-memory link as marked frames and are never computed; whatever observes
bytes (a capture, a fault injector, a host with offload off) gets them
completed; corruption is still caught end to end. TCP super-segments (TSO)
cross whole between TSO/LRO vnics and are cut into MSS-sized segments
wherever frames are seen one by one."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import trio
import trio.testing
from scapy.all import TCP, UDP, Ether, rdpcap

import trionet
from trionet import IfCap
from trionet.drivers.vnic import Vnic
from trionet.protocols.offload import PendingFrame
from trionet.testing import command_unavailable
from trionet.wires import memory_pair

pytestmark = pytest.mark.trio

A, B = "10.0.0.1", "10.0.0.2"


class TypeRecordingVnic(Vnic):
    """A vnic that keeps every frame the wire hands it, and its type."""

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.kinds: list[type] = []
        self.frames: list[bytes] = []

    def hw_receive(self, frame: bytes) -> None:
        self.kinds.append(type(frame))
        self.frames.append(bytes(frame))
        super().hw_receive(frame)


async def _pair(ha: trionet.Host, hb: trionet.Host) -> tuple[TypeRecordingVnic, TypeRecordingVnic]:
    ea, eb = memory_pair()
    va, vb = TypeRecordingVnic(ea), TypeRecordingVnic(eb)
    ia, ib = await ha.if_attach(va), await hb.if_attach(vb)
    for host, ifp, addr in ((ha, ia, A), (hb, ib, B)):
        await host.ifup(ifp)
        host.ifconfig(ifp.name, f"{addr}/24")
    return va, vb


async def _exchange(ha: trionet.Host, hb: trionet.Host) -> None:
    # UDP one way, then a TCP transfer the other way.
    s, r = ha.udp_socket(), hb.udp_socket()
    r.bind((B, 9))
    await s.sendto(b"datagram", (B, 9))
    assert await r.recv() == b"datagram"
    payload = random.Random(1).randbytes(100_000)
    async with trio.open_nursery() as nursery:
        (listener,) = await ha.open_tcp_listeners(80)

        async def serve() -> None:
            stream = await listener.accept()
            await stream.send_all(payload)
            await stream.aclose()

        nursery.start_soon(serve)
        client = await hb.open_tcp_stream(A, 80)
        got = bytearray()
        while chunk := await client.receive_some():
            got += chunk
        assert got == payload
        await client.aclose()
        await listener.aclose()


async def test_checksums_left_to_the_card_cross_a_memory_link_unchecked(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trionet.open_host("a") as ha, trionet.open_host("b") as hb:
        va, vb = await _pair(ha, hb)
        assert va.ifp.capenable == IfCap.TXCSUM | IfCap.RXCSUM | IfCap.TSO | IfCap.LRO  # in memory: on
        await _exchange(ha, hb)
        # Every UDP and TCP frame went out pending (ARP frames are plain).
        assert PendingFrame in vb.kinds and PendingFrame in va.kinds
        for host in (ha, hb):
            assert host.inet.udp.statistics().drops == {}
            assert host.inet.tcp.statistics().drops == {}


async def test_with_txcsum_off_frames_carry_real_checksums(autojump_clock: trio.testing.MockClock) -> None:
    """``ifconfig -txcsum`` on both ends: every frame is plain bytes, and
    scapy finds each TCP and UDP checksum right."""
    async with trionet.open_host("a") as ha, trionet.open_host("b") as hb:
        va, vb = await _pair(ha, hb)
        for host, vnic in ((ha, va), (hb, vb)):
            # (TSO goes with TXCSUM: segmenting needs the card's checksums)
            assert await host.ifcap(vnic.ifp.name, txcsum=False) == IfCap.RXCSUM | IfCap.LRO
        await _exchange(ha, hb)
        assert set(va.kinds) == set(vb.kinds) == {bytes}
        checked = 0
        for raw in va.frames + vb.frames:
            pkt = Ether(raw)
            for layer in (UDP, TCP):
                if layer in pkt:
                    got = pkt[layer].chksum
                    del pkt[layer].chksum
                    assert Ether(bytes(pkt))[layer].chksum == got
                    checked += 1
        assert checked > 10


async def test_a_receiver_without_rxcsum_gets_completed_frames(autojump_clock: trio.testing.MockClock) -> None:
    async with trionet.open_host("a") as ha, trionet.open_host("b") as hb:
        va, vb = await _pair(ha, hb)
        await hb.ifcap(vb.ifp.name, rxcsum=False)
        await _exchange(ha, hb)  # b verifies in software what a left to the card
        assert hb.inet.tcp.statistics().drops == {} and hb.inet.udp.statistics().drops == {}


async def test_a_corrupted_frame_still_fails_the_receivers_check(autojump_clock: trio.testing.MockClock) -> None:
    """A fault injector on an offload link completes each frame before it
    flips a bit, so the receiver's UDP check catches it."""
    async with trionet.open_network(seed=3) as net:
        ha, hb = await net.add_host("a"), await net.add_host("b")
        link = await net.link(ha, hb, delay=0.001, corrupt=0.0)
        ha.ifconfig(link.ends[0].name, f"{A}/24")
        hb.ifconfig(link.ends[1].name, f"{B}/24")
        assert not link.ends[0].capenable  # the injector is not "in memory"...
        s, r = ha.udp_socket(), hb.udp_socket()
        r.bind((B, 9))
        await ha.ifcap(link.ends[0].name, txcsum=True)  # ...so force it on
        await s.sendto(b"warm up ARP", (B, 9))
        assert await r.recv() == b"warm up ARP"
        link.set_impairments(corrupt=1.0)
        for i in range(50):
            await s.sendto(bytes(1000), (B, 9))  # the bit hits the payload most of the time
        await trio.sleep(1)
        assert r.statistics().received == 1
        drops = hb.inet.udp.statistics().drops
        assert drops.get("bad_checksum", 0) > 0


TSHARK_SKIP_REASON = command_unavailable("tshark")


@pytest.mark.skipif(TSHARK_SKIP_REASON is not None, reason=TSHARK_SKIP_REASON or "")
async def test_a_capture_of_an_offload_link_has_no_bad_checksum(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """tshark, told to check TCP and UDP checksums, finds none wrong in a
    capture of a link whose frames carry their checksums left to the card."""
    async with trionet.open_network(seed=1) as net:
        net.pcap_dir = tmp_path
        ha, hb = await net.add_host("a"), await net.add_host("b")
        link = await net.link(ha, hb, delay=0.001)
        ha.ifconfig(link.ends[0].name, f"{A}/24")
        hb.ifconfig(link.ends[1].name, f"{B}/24")
        for host, ifp in zip((ha, hb), link.ends, strict=True):
            # (a tap is not "in memory"): checksums and TSO left to the card
            await host.ifcap(ifp.name, txcsum=True, rxcsum=True, tso=True, lro=True)
        await _exchange(ha, hb)
        assert ha.inet.tcp.statistics().segments_sent < 40  # super-segments
    (path,) = tmp_path.glob("*.pcap")
    frames = rdpcap(str(path))
    assert len(frames) > 80  # 100 kB in MSS-sized segments and their ACKs
    assert max(len(f) for f in frames) <= 1514  # the capture shows them cut
    result = await trio.run_process(
        [
            "tshark", "-r", str(path), "-o", "udp.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE",
            "-Y", "udp.checksum.status == 0 || tcp.checksum.status == 0",  # 0: Bad
        ],
        capture_stdout=True,
        capture_stderr=True,
    )
    assert result.stdout.decode().strip() == ""
    good = await trio.run_process(
        [
            "tshark", "-r", str(path), "-o", "udp.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE",
            "-Y", "udp.checksum.status == 1 || tcp.checksum.status == 1",  # 1: Good
        ],
        capture_stdout=True,
        capture_stderr=True,
    )
    assert len(good.stdout.decode().strip().splitlines()) > 20


####################################################################
# TSO and LRO
####################################################################


async def _bulk(ha: trionet.Host, hb: trionet.Host, size: int = 1_000_000) -> None:
    payload = random.Random(2).randbytes(size)
    async with trio.open_nursery() as nursery:
        (listener,) = await hb.open_tcp_listeners(80)

        async def sink() -> None:
            stream = await listener.accept()
            got = bytearray()
            while chunk := await stream.receive_some():
                got += chunk
            assert got == payload
            await stream.aclose()

        nursery.start_soon(sink)
        client = await ha.open_tcp_stream(B, 80)
        await client.send_all(payload)
        await client.send_eof()
    await listener.aclose()


async def test_super_segments_cross_whole_between_tso_and_lro_vnics(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trionet.open_host("a") as ha, trionet.open_host("b") as hb:
        va, vb = await _pair(ha, hb)
        await _bulk(ha, hb)
        sent = ha.inet.tcp.statistics().segments_sent
        assert sent < 1_000_000 // 1448 // 4  # far fewer than MSS-sized ones
        assert max(len(f) for f in vb.frames) > 30_000  # whole, as virtio-net carries them
        assert vb.ifp.statistics().ierrors == 0


async def test_a_receiver_without_lro_gets_mss_sized_segments(autojump_clock: trio.testing.MockClock) -> None:
    async with trionet.open_host("a") as ha, trionet.open_host("b") as hb:
        va, vb = await _pair(ha, hb)
        await hb.ifcap(vb.ifp.name, lro=False)
        await _bulk(ha, hb)
        assert ha.inet.tcp.statistics().segments_sent < 1_000_000 // 1448 // 4
        # The wire handed b's card super-segments; it cut them (rule 4).
        assert max(len(f) for f in vb.frames) > 30_000
        assert vb.ifp.statistics().ipackets > 1_000_000 // 1448
        assert vb.ifp.statistics().ierrors == 0


async def test_without_tso_segments_are_mss_sized(autojump_clock: trio.testing.MockClock) -> None:
    async with trionet.open_host("a") as ha, trionet.open_host("b") as hb:
        va, vb = await _pair(ha, hb)
        await ha.ifcap(va.ifp.name, tso=False)
        await _bulk(ha, hb)
        assert ha.inet.tcp.statistics().segments_sent > 1_000_000 // 1448
        assert max(len(f) for f in vb.frames) <= 1514


async def test_a_lossy_link_sees_every_segment_of_a_super_segment(autojump_clock: trio.testing.MockClock) -> None:
    """A fault injector meets MSS-sized segments one by one (so loss hits
    segments, not whole super-segments), and TCP recovers what it lost."""
    async with trionet.open_network(seed=5) as net:
        ha, hb = await net.add_host("a"), await net.add_host("b")
        link = await net.link(ha, hb, delay=0.001, loss=0.02)
        ha.ifconfig(link.ends[0].name, f"{A}/24")
        hb.ifconfig(link.ends[1].name, f"{B}/24")
        for host, ifp in zip((ha, hb), link.ends, strict=True):
            await host.ifcap(ifp.name, txcsum=True, rxcsum=True, tso=True, lro=True)
        await _bulk(ha, hb)
        offered = link.faults[0].statistics().offered
        sent = ha.inet.tcp.statistics().segments_sent
        assert offered > 1_000_000 // 1448 > sent
        assert link.faults[0].statistics().lost > 0
