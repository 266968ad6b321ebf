"""ICMP errors reach TCP through the protocol switch (virtual time).

- A connect answered by ICMP port unreachable (a filter that rejects instead
  of a host that resets) fails at once with ``ConnectionRefusedError``; host
  unreachable is a soft error, reported when the connect times out.
- Path MTU discovery: segments carry DF; a router whose next link is smaller
  answers "fragmentation needed", the sender lowers its MSS and sends again,
  and nothing is fragmented. The same when our own interface's MTU shrinks.
- An error whose quoted sequence number is not in flight (RFC 5927) is
  ignored and counted, whatever it says.

Topologies: a host facing a "filter" (a receiver function at the far end of
a memory pair that answers every TCP segment with an ICMP error quoting it),
and ``h1 --- r1 ==(mtu 576)== r2 --- h2`` for the paths through routers.
"""

from __future__ import annotations

import errno
import hashlib
import random
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import pytest
import trio
import trio.testing

import trionet
from trionet import Host, IfIoctl
from trionet.drivers.vnic import Vnic
from trionet.protocols import icmp as icmp_proto
from trionet.protocols.ethernet import ETHERTYPE_IP, EthernetHeader
from trionet.protocols.ipv4 import IPPROTO_ICMP, IPv4Header, ip_aton
from trionet.protocols.tcp import SEQ_MASK, TcpFlags, TcpHeader
from trionet.wires import memory_pair

from routed import routed

IPPROTO_TCP = 6

####################################################################
# A host facing a filter that rejects with ICMP
####################################################################

MY_MAC = b"\x02\x00\x00\x00\x00\x01"
FILTER_MAC = b"\x02\x00\x00\x00\x00\x02"
MY_IP = ip_aton("10.0.0.1")
FILTER_IP = ip_aton("10.0.0.2")


@attrs.define(eq=False)
class Filter:
    """The far end of ``h``'s link: answers each TCP segment with ICMP
    ``code`` (destination unreachable) quoting it, from ``FILTER_IP``."""

    host: Host
    code: int
    answered: int = 0

    def receive(self, frame: bytes) -> None:
        eh, packet = EthernetHeader.parse(frame)
        if eh.ethertype != ETHERTYPE_IP:
            return  # ARP: the host has a static entry for us
        hdr, _ = IPv4Header.parse(packet)
        if hdr.proto != IPPROTO_TCP:
            return
        self.answered += 1
        message = icmp_proto.error(icmp_proto.DEST_UNREACH, self.code, bytes(packet))
        reply = IPv4Header(FILTER_IP, hdr.src, IPPROTO_ICMP).emit(message)
        self.end.send(EthernetHeader(MY_MAC, FILTER_MAC, ETHERTYPE_IP).emit(reply))

    end: trionet.wires.MemoryEndpoint = attrs.field(default=None)


@asynccontextmanager
async def facing_a_filter(code: int) -> AsyncIterator[Filter]:
    async with trionet.open_host("h", ncpus=2) as host:
        a, b = memory_pair("w")
        ifp = await host.if_attach(Vnic(a, lladdr=MY_MAC))
        await host.ifup(ifp)
        host.ifconfig(ifp.name, "10.0.0.1/24")
        host.inet.arp.cache.add_static(FILTER_IP, FILTER_MAC)
        flt = Filter(host, code, end=b)
        b.set_receiver(flt.receive)
        await trio.testing.wait_all_tasks_blocked()
        yield flt


async def test_a_connect_answered_by_icmp_port_unreachable_is_refused_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """RFC 1122 4.2.3.9: port (or protocol) unreachable in SYN_SENT is a
    hard error. Without it the connect would go on sending SYNs for two
    minutes and end in TimeoutError."""
    async with facing_a_filter(icmp_proto.UNREACH_PORT) as flt:
        host = flt.host
        start = trio.current_time()
        with pytest.raises(ConnectionRefusedError) as info:
            await host.open_tcp_stream("10.0.0.2", 80)
        assert isinstance(info.value, trionet.NetError)
        assert info.value.errno == errno.ECONNREFUSED
        assert trio.current_time() - start < 0.01  # the first SYN's answer, no retransmission
        assert flt.answered == 1
        tcp = host.inet.tcp.statistics()
        assert (tcp.connects, tcp.icmp_aborts, tcp.connections) == (1, 1, 0)
        icmp = host.inet.icmp.statistics()
        assert icmp.errors_received == 1 and icmp.drops == {}


async def test_host_unreachable_during_connect_is_a_soft_error_reported_at_the_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Host unreachable is soft (it may be transient): the SYNs go on, and
    when they run out the connect fails with that error instead of
    ETIMEDOUT (BSD ``t_softerror``)."""
    async with facing_a_filter(icmp_proto.UNREACH_HOST) as flt:
        host = flt.host
        start = trio.current_time()
        with pytest.raises(trionet.NetError) as info:
            await host.open_tcp_stream("10.0.0.2", 80)
        assert info.value.errno == errno.EHOSTUNREACH
        assert trio.current_time() - start > 60  # the whole SYN back-off
        tcp = host.inet.tcp.statistics()
        assert flt.answered == 7  # the SYN and its 6 retransmissions
        assert (tcp.icmp_aborts, tcp.icmp_soft_errors, tcp.connections) == (0, 7, 0)


####################################################################
# Through routers
####################################################################


def read_pcap(data: bytes) -> list[bytes]:
    """The frames of a libpcap file (little-endian, as PcapTap writes it)."""
    assert struct.unpack_from("<I", data)[0] == 0xA1B2C3D4
    frames, offset = [], 24
    while offset < len(data):
        incl = struct.unpack_from("<IIII", data, offset)[2]
        frames.append(data[offset + 16 : offset + 16 + incl])
        offset += 16 + incl
    return frames


async def _transfer(client: trionet.TcpStream, server: trionet.TcpStream, payload: bytes) -> bytes:
    got = bytearray()

    async def reader() -> None:
        while chunk := await server.receive_some():
            got.extend(chunk)

    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            await client.send_all(payload)
            await client.send_eof()
    return bytes(got)


async def test_path_mtu_discovery_through_a_router_with_a_smaller_link(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """Both ends have 1500-byte links (MSS 1460) and the middle one is 576:
    h1's full segments carry DF, so r1 answers "fragmentation needed" (MTU
    576) instead of fragmenting; h1 lowers its MSS to 536 and sends the lost
    data again; 1 MB arrives intact and nothing was fragmented."""
    pcap = tmp_path / "h1.pcap"
    async with routed(3, pcap) as n:
        h1, r1, h2 = n["h1"], n["r1"], n["h2"]
        (listener,) = await h2.open_tcp_listeners(80)
        client = await h1.open_tcp_stream("10.0.3.2", 80)
        server = await listener.accept()
        conn = client._pcb.peek()
        assert conn.smss == 1460 - 12  # from the SYN exchange (timestamps on)
        payload = random.Random(7).randbytes(1_000_000)
        got = await _transfer(client, server, payload)
        assert hashlib.sha256(got).hexdigest() == hashlib.sha256(payload).hexdigest()
        assert conn.smss == 576 - 40 - 12
        assert h1.inet.tcp.statistics().mtu_resent == 1
        assert r1.inet.icmp.statistics().errors_sent.get((3, 4), 0) >= 1
        assert r1.inet.ip.statistics().drops.get("needs_fragmentation", 0) >= 1
        assert r1.inet.ip.statistics().fragmented == 0
        assert h2.inet.ip.statistics().reassembled == 0
        await client.aclose()
        await server.aclose()
    # Every segment h1 sent carried DF; after the first "fragmentation
    # needed" came back, none was larger than 576 bytes.
    sizes_after_icmp = []
    icmp_seen = False
    for frame in read_pcap(pcap.read_bytes()):
        eh, packet = EthernetHeader.parse(frame)
        if eh.ethertype != ETHERTYPE_IP:
            continue
        hdr, _ = IPv4Header.parse(packet)
        if hdr.proto == IPPROTO_ICMP and hdr.dst == ip_aton("10.0.1.2"):
            icmp_seen = True
        elif hdr.proto == IPPROTO_TCP and hdr.src == ip_aton("10.0.1.2"):
            assert hdr.df, hdr
            if icmp_seen:
                sizes_after_icmp.append(hdr.total_length)
    assert icmp_seen and sizes_after_icmp and max(sizes_after_icmp) <= 576


async def test_a_smaller_mtu_on_our_own_interface_lowers_the_mss(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """IP output refuses a DF segment too big for the interface (EMSGSIZE):
    the connection fits its MSS to the new MTU and goes on (BSD tcp_output
    calls tcp_mtudisc)."""
    async with trionet.open_network(seed=1) as net:
        a = await net.add_host("a")
        b = await net.add_host("b")
        ln = await net.link(a, b, delay=0.001)
        a.ifconfig(ln.ends[0].name, "10.0.0.1/24")
        b.ifconfig(ln.ends[1].name, "10.0.0.2/24")
        (listener,) = await b.open_tcp_listeners(80)
        client = await a.open_tcp_stream("10.0.0.2", 80)
        server = await listener.accept()
        payload = random.Random(1).randbytes(300_000)
        got = bytearray()

        async def reader() -> None:
            while chunk := await server.receive_some():
                got.extend(chunk)

        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(reader)
                await client.send_all(payload[:100_000])
                await a.ifioctl(ln.ends[0], IfIoctl.SIOCSIFMTU, 1000)
                await client.send_all(payload[100_000:])
                await client.send_eof()
        assert got == payload
        tcp = a.inet.tcp.statistics()
        assert tcp.mtu_resent == 1 and tcp.output_errors >= 1
        assert client._pcb.peek().smss == 1000 - 40 - 12
        assert a.inet.ip.statistics().fragmented == 0
        await client.aclose()
        await server.aclose()


def _quote(src: bytes, dst: bytes, sport: int, dport: int, seq: int) -> bytes:
    """The start of a datagram we might have sent, as an ICMP error quotes it."""
    th = TcpHeader(sport, dport, seq & SEQ_MASK, 0, TcpFlags.ACK, 1000).emit(b"", src, dst)
    return IPv4Header(src, dst, IPPROTO_TCP, df=True).emit(th)


async def test_icmp_errors_quoting_a_sequence_number_not_in_flight_are_ignored(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """RFC 5927 4.1: a blind attacker knows the 4-tuple but not the window.
    Forged "fragmentation needed" (MTU 68) and port unreachable messages,
    sent by r1, name the connection but quote sequence numbers outside
    snd_una..snd_max: counted and ignored; the MSS and the connection stay.
    The same messages quoting a segment in flight are obeyed."""
    async with routed(3) as n:
        h1, r1, h2 = n["h1"], n["r1"], n["h2"]
        (listener,) = await h2.open_tcp_listeners(80)
        client = await h1.open_tcp_stream("10.0.3.2", 80)
        server = await listener.accept()
        pcb = client._pcb
        conn = pcb.peek()
        smss = conn.smss
        src, dst = ip_aton("10.0.1.2"), ip_aton("10.0.3.2")
        sport, dport = client.getsockname()[1], 80

        def forge(seq: int, code: int, mtu: int = 0) -> None:
            quote = _quote(src, dst, sport, dport, seq)
            message = icmp_proto.error(icmp_proto.DEST_UNREACH, code, quote, mtu=mtu)
            r1.inet.ip.output(src, IPPROTO_ICMP, message)

        una = conn.snd_una
        for seq in (una, una - 1, una + 1_000_000, una - 2**31):  # nothing is in flight
            forge(seq, icmp_proto.UNREACH_NEEDFRAG, mtu=68)
            forge(seq, icmp_proto.UNREACH_PORT)
        await trio.sleep(1)
        tcp = h1.inet.tcp.statistics()
        assert tcp.icmp_out_of_window == 8
        assert (tcp.mtu_resent, tcp.icmp_soft_errors) == (0, 0)
        assert h1.inet.icmp.statistics().errors_received == 8
        assert h1.inet.icmp.statistics().drops == {}  # claimed by TCP, not unmatched
        assert conn.smss == smss and pcb.soft_error is None
        await client.send_all(b"still fine")
        assert await server.receive_some() == b"still fine"

        # An error about another connection is nobody's.
        quote = _quote(src, dst, sport + 1, dport, una)
        r1.inet.ip.output(src, IPPROTO_ICMP, icmp_proto.error(3, 3, quote))
        await trio.sleep(1)
        assert h1.inet.icmp.statistics().drops == {"error_unmatched": 1}

        # In flight (h2's link cut, so data waits for its ACK): obeyed.
        n["l3"].partition(True)
        await client.send_all(bytes(3000))
        await trio.sleep(0.01)
        assert conn.snd_max != conn.snd_una
        forge(conn.snd_una, icmp_proto.UNREACH_NEEDFRAG, mtu=576)
        forge(conn.snd_una + 100, icmp_proto.UNREACH_PORT)  # established: soft
        await trio.sleep(0.01)
        tcp = h1.inet.tcp.statistics()
        assert (tcp.mtu_resent, tcp.icmp_soft_errors, tcp.icmp_out_of_window) == (1, 1, 8)
        assert conn.smss == 576 - 40 - 12
        assert pcb.soft_error == errno.ECONNREFUSED and conn.state.name == "ESTABLISHED"
        n["l3"].partition(False)
        got = bytearray()
        with trio.fail_after(30):
            while len(got) < 3000:
                got += await server.receive_some()
        assert bytes(got) == bytes(3000)
        await client.aclose()
        await server.aclose()


async def test_a_soft_error_is_reported_when_the_connection_times_out(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """h2 vanished; r1 says host unreachable about the data h1 keeps
    sending. The user timeout ends the connection, and the error it reports
    is that one, not ETIMEDOUT."""
    async with routed(3) as n:
        h1, r1, h2 = n["h1"], n["r1"], n["h2"]
        (listener,) = await h2.open_tcp_listeners(80)
        client = await h1.open_tcp_stream("10.0.3.2", 80)
        server = await listener.accept()
        client.setsockopt_user_timeout(10)
        n["l3"].partition(True)
        await client.send_all(b"into the void")
        await trio.sleep(0.01)
        conn = client._pcb.peek()
        quote = _quote(ip_aton("10.0.1.2"), ip_aton("10.0.3.2"), client.getsockname()[1], 80, conn.snd_una)
        r1.inet.ip.output(ip_aton("10.0.1.2"), IPPROTO_ICMP, icmp_proto.error(3, 1, quote))
        with pytest.raises(trio.BrokenResourceError) as info:
            await client.receive_some()
        assert isinstance(info.value.__cause__, trionet.NetError)
        assert info.value.__cause__.errno == errno.EHOSTUNREACH
        assert h1.inet.tcp.statistics().icmp_soft_errors == 1
        await client.aclose()
        await server.aclose()
