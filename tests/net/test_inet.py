"""The Internet layer end to end: ARP, IPv4 forwarding and fragmentation,
ICMP, ping and UDP sockets, on a routed topology in virtual time.

    h1 10.0.1.2 --- 10.0.1.1 r1 10.0.2.1 ==(mtu 576)== 10.0.2.2 r2 10.0.3.1 --- 10.0.3.2 h2
"""

from __future__ import annotations

import errno
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing

import trionet
from trionet import Host

from routed import routed


async def test_ping_across_two_routers(autojump_clock: trio.testing.MockClock) -> None:
    async with routed() as n:
        result = await n["h1"].ping("10.0.3.2", count=3)
        assert (result.sent, result.received) == (3, 3)
        assert result.errors == ()
        # Two 1 ms links and one 2 ms link, each way: at least 8 ms.
        assert result.rtt_min is not None and result.rtt_min >= 0.008 - 1e-9
        assert n["r1"].inet.ip.statistics().forwarded >= 3


async def test_ttl_expiry_is_reported_by_the_right_router(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with routed() as n:
        first = await n["h1"].ping("10.0.3.2", count=1, ttl=1)
        assert first.received == 0
        assert [(e.source, e.type, e.code) for e in first.errors] == [("10.0.1.1", 11, 0)]
        second = await n["h1"].ping("10.0.3.2", count=1, ttl=2)
        assert [(e.source, e.type) for e in second.errors] == [("10.0.2.2", 11)]


async def test_big_datagram_is_fragmented_on_the_small_link_and_reassembled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with routed() as n:
        rx = n["h2"].udp_socket()
        rx.bind(("0.0.0.0", 5000))
        tx = n["h1"].udp_socket()
        # 1400 bytes fit the 1500-byte links but not the 576-byte one: r1
        # fragments, h2 reassembles.
        payload = bytes(range(256)) * 6
        await tx.sendto(payload[:1400], ("10.0.3.2", 5000))
        with trio.fail_after(5):
            data, (src, sport) = await rx.recvfrom()
        assert data == payload[:1400]
        assert src == "10.0.1.2" and sport == tx.getsockname()[1]
        assert n["r1"].inet.ip.statistics().fragmented == 1
        assert n["h2"].inet.ip.statistics().reassembled == 1


async def test_df_too_big_draws_fragmentation_needed(autojump_clock: trio.testing.MockClock) -> None:
    async with routed() as n:
        result = await n["h1"].ping("10.0.3.2", count=1, size=1000, df=True)
        assert [(e.source, e.type, e.code) for e in result.errors] == [("10.0.1.1", 3, 4)]


async def test_udp_sockets_both_ways_and_port_unreachable(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with routed() as n:
        server = n["h2"].udp_socket()
        server.bind(("10.0.3.2", 7))
        client = n["h1"].udp_socket()
        client.connect(("10.0.3.2", 7))
        await client.send(b"hello")
        with trio.fail_after(5):
            data, peer = await server.recvfrom()
            await server.sendto(data.upper(), peer)
            assert await client.recv() == b"HELLO"
        lonely = n["h1"].udp_socket()
        lonely.connect(("10.0.3.2", 9999))
        await lonely.send(b"anyone?")
        with trio.fail_after(5), pytest.raises(trionet.NetError) as info:
            await lonely.recv()
        assert info.value.errno == errno.ECONNREFUSED
        assert n["h2"].inet.udp.statistics().drops["noport"] == 1
        server.close()
        with pytest.raises(trio.ClosedResourceError):
            await server.recvfrom()


async def test_socket_errors_and_bounds(autojump_clock: trio.testing.MockClock) -> None:
    async with routed() as n:
        h2 = n["h2"]
        a = h2.udp_socket()
        a.bind(("0.0.0.0", 6000))
        b = h2.udp_socket()
        with pytest.raises(trionet.NetError) as info:
            b.bind(("10.0.3.2", 6000))
        assert info.value.errno == errno.EADDRINUSE
        with pytest.raises(trionet.NetError) as info:
            b.bind(("10.9.9.9", 6001))
        assert info.value.errno == errno.EADDRNOTAVAIL
        with pytest.raises(trionet.NetError) as info:
            await b.sendto(b"x", ("10.0.3.255", 6000))
        assert info.value.errno == errno.EACCES
        with pytest.raises(trionet.NetError) as info:
            await b.sendto(bytes(70000), ("10.0.3.1", 6000))
        assert info.value.errno == errno.EMSGSIZE
        # A full receive buffer drops and counts.
        h2.sysctl("net.inet.udp.recvspace", 3000)
        sender = n["h1"].udp_socket()
        for _ in range(5):
            await sender.sendto(bytes(1000), ("10.0.3.2", 6000))
        await trio.sleep(1)
        assert a.statistics().received == 3 and a.statistics().drops == 2
        assert h2.inet.udp.statistics().drops["fullsock"] == 2


async def test_closing_wakes_a_waiting_receiver() -> None:
    async with trionet.open_host("h") as host:
        sock = host.udp_socket()
        sock.bind(("0.0.0.0", 0))
        assert sock.getsockname()[1] >= 49152
        async with trio.open_nursery() as nursery:

            async def waiter() -> None:
                with pytest.raises(trio.ClosedResourceError):
                    await sock.recvfrom()

            nursery.start_soon(waiter)
            await trio.testing.wait_all_tasks_blocked()
            sock.close()


@asynccontextmanager
async def subnet(n: int = 3) -> AsyncIterator[list[Host]]:
    """``n`` hosts on one switch, 10.0.0.1/24, 10.0.0.2/24..."""
    async with trionet.open_network(seed=2) as net:
        sw = net.add_switch("sw0")
        hosts = []
        for i in range(1, n + 1):
            h = await net.add_host(f"h{i}", ncpus=2)
            link = await net.link(h, sw, delay=0.001)
            h.ifconfig(link.ends[0].name, f"10.0.0.{i}/24")
            hosts.append(h)
        yield hosts


def arp_entry(host: Host, ip: str) -> object:
    packed = bytes(map(int, ip.split(".")))
    return next((e for e in host.inet.arp.cache.entries() if e.ip == packed), None)


async def test_arp_resolves_once_and_queues_packets_meanwhile(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with subnet(2) as (h1, h2):
        rx = h2.udp_socket()
        rx.bind(("0.0.0.0", 7))
        tx = h1.udp_socket()
        for i in range(3):  # all three wait for the one ARP request
            await tx.sendto(bytes([i]), ("10.0.0.2", 7))
        with trio.fail_after(1):
            got = [(await rx.recv()) for _ in range(3)]
        assert got == [b"\x00", b"\x01", b"\x02"]
        stats = h1.inet.arp.cache.statistics()
        assert stats.requests == 1 and stats.learned == 1
        entry = arp_entry(h1, "10.0.0.2")
        assert entry is not None and entry.state == "reachable"
        assert entry.mac == h2.ifunit("vnic0").lladdr


async def test_arp_gives_up_after_its_retries_and_counts_the_waiting_packets(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with subnet(1) as (h1,):
        t0 = trio.current_time()
        result = await h1.ping("10.0.0.99", count=2, interval=0.1, timeout=5)
        assert (result.sent, result.received) == (2, 0)
        await trio.sleep(5)
        stats = h1.inet.arp.cache.statistics()
        assert stats.requests == 3 and stats.failed == 1  # max_requests, 1 s apart
        assert h1.inet.arp.drops["unresolved"] == 2
        assert arp_entry(h1, "10.0.0.99") is None
        assert trio.current_time() - t0 >= 3


async def test_arp_entries_age_out_and_are_learned_again(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with subnet(2) as (h1, h2):
        assert (await h1.ping("10.0.0.2", count=1)).received == 1
        assert h1.inet.arp.cache.statistics().requests == 1
        await trio.sleep(h1.inet.arp.cache.reachable + 1)
        assert h1.inet.arp.cache.statistics().expired == 1
        assert arp_entry(h1, "10.0.0.2") is None
        assert (await h1.ping("10.0.0.2", count=1)).received == 1
        assert h1.inet.arp.cache.statistics().requests == 2


async def test_an_address_moved_to_another_host_is_announced_with_gratuitous_arp(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with subnet(3) as (h1, h2, h3):
        assert (await h1.ping("10.0.0.2", count=1)).received == 1
        assert arp_entry(h1, "10.0.0.2").mac == h2.ifunit("vnic0").lladdr  # type: ignore[attr-defined]
        # 10.0.0.2 moves from h2 to h3; h3's announcement updates h1's entry
        # at once (an announcement only updates entries, as in BSD: nobody
        # learns a new neighbour from it).
        h2.ifconfig("vnic0", "10.0.0.2/24", delete=True)
        h3.ifconfig("vnic0", "10.0.0.2/24")
        await trio.sleep(0.1)
        assert arp_entry(h1, "10.0.0.2").mac == h3.ifunit("vnic0").lladdr  # type: ignore[attr-defined]
        assert h1.inet.arp.cache.statistics().updated == 1
        assert h1.inet.arp.cache.statistics().requests == 1
        assert arp_entry(h1, "10.0.0.3") is None


async def test_udp_broadcast_reaches_the_subnet_and_stays_on_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with subnet(3) as (h1, h2, h3):
        listeners = []
        for h in (h2, h3):
            sock = h.udp_socket()
            sock.bind(("0.0.0.0", 520))
            listeners.append(sock)
        tx = h1.udp_socket()
        tx.broadcast = True
        await tx.sendto(b"subnet", ("10.0.0.255", 520))
        await tx.sendto(b"limited", ("255.255.255.255", 520))
        with trio.fail_after(1):
            for sock in listeners:
                assert await sock.recv() == b"subnet"
                data, (src, _) = await sock.recvfrom()
                assert (data, src) == (b"limited", "10.0.0.1")
        # Nobody listens on 521: broadcasts draw no port unreachable.
        await tx.sendto(b"void", ("10.0.0.255", 521))
        await trio.sleep(1)
        assert h1.inet.icmp.statistics().received == 0
        assert h2.inet.udp.statistics().drops["noport"] == 1


async def test_a_router_does_not_forward_broadcasts(autojump_clock: trio.testing.MockClock) -> None:
    async with routed() as n:
        sock = n["h2"].udp_socket()
        sock.bind(("0.0.0.0", 520))
        tx = n["h1"].udp_socket()
        tx.broadcast = True
        await tx.sendto(b"x", ("255.255.255.255", 520))
        await tx.sendto(b"x", ("10.0.1.255", 520))
        await trio.sleep(1)
        assert sock.statistics().received == 0
        assert n["r1"].inet.ip.statistics().forwarded == 0


async def test_flows_are_spread_over_netisr_threads_and_each_flow_stays_on_one(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with subnet(2) as (h1, h2):
        rx = h2.udp_socket()
        rx.bind(("0.0.0.0", 7))
        assert (await h1.ping("10.0.0.2", count=1)).received == 1  # ARP done
        before = [p.packets for p in h2.netisr_statistics().ports]
        senders = [h1.udp_socket() for _ in range(8)]
        for i, tx in enumerate(senders):
            tx.bind(("0.0.0.0", 40000 + i))  # 4-tuple hashes: even/odd port parity differ
            for _ in range(5):
                await tx.sendto(b"x", ("10.0.0.2", 7))
        with trio.fail_after(1):
            for _ in range(40):
                await rx.recv()
        per_cpu = [p.packets - b for p, b in zip(h2.netisr_statistics().ports, before)]
        assert sum(per_cpu) == 40
        assert all(n % 5 == 0 and n > 0 for n in per_cpu), per_cpu  # whole flows, both CPUs


async def test_ephemeral_ports_are_distinct_and_released(autojump_clock: trio.testing.MockClock) -> None:
    async with subnet(1) as (h1,):
        socks = [h1.udp_socket() for _ in range(50)]
        for s in socks:
            s.bind(("0.0.0.0", 0))
        ports = {s.getsockname()[1] for s in socks}
        assert len(ports) == 50 and all(49152 <= p <= 65535 for p in ports)
        taken = socks[0].getsockname()[1]
        clash = h1.udp_socket()
        with pytest.raises(trionet.NetError) as info:
            clash.bind(("0.0.0.0", taken))
        assert info.value.errno == errno.EADDRINUSE
        for s in socks:
            s.close()
        clash.bind(("0.0.0.0", taken))  # released by close
        assert clash.getsockname() == ("0.0.0.0", taken)


async def test_icmp_errors_are_rate_limited(autojump_clock: trio.testing.MockClock) -> None:
    async with subnet(2) as (h1, h2):
        h2.sysctl("net.inet.icmp.icmplim", 10)
        assert (await h1.ping("10.0.0.2", count=1)).received == 1  # ARP resolved
        await trio.sleep_until(10.0)  # the start of a second
        tx = h1.udp_socket()
        for _ in range(30):  # to a closed port, within one second
            await tx.sendto(b"x", ("10.0.0.2", 9))
        await trio.sleep(0.5)
        icmp = h2.inet.icmp.statistics()
        assert icmp.errors_sent == {(3, 3): 10} and icmp.drops["error_ratelimited"] == 20
        assert h2.inet.udp.statistics().drops["noport"] == 30
        await trio.sleep(1)
        await tx.sendto(b"x", ("10.0.0.2", 9))  # a new second, a new allowance
        await trio.sleep(0.5)
        assert h2.inet.icmp.statistics().errors_sent == {(3, 3): 11}


async def test_impossible_sources_are_counted_drops(autojump_clock: trio.testing.MockClock) -> None:
    from trionet.protocols.ipv4 import IPPROTO_UDP, IPv4Header
    from trionet.protocols.udp import UdpHeader

    async with subnet(1) as (h1,):
        ifp = h1.ifunit("vnic0")
        dst = bytes([10, 0, 0, 1])
        for src, reason in (
            (bytes([224, 0, 0, 1]), "bad_source"),
            (bytes([10, 0, 0, 255]), "bad_source"),
            (bytes([127, 0, 0, 1]), "martian"),
        ):
            udp = UdpHeader(1000, 7).emit(b"x", src, dst)
            packet = IPv4Header(src, dst, IPPROTO_UDP, ttl=64).emit(udp)
            ifp.input(ifp.lladdr + bytes(6) + b"\x08\x00" + packet)
        await trio.testing.wait_all_tasks_blocked()
        assert h1.inet.ip.statistics().drops == {"bad_source": 2, "martian": 1}


async def test_a_host_reaches_itself_over_lo0(autojump_clock: trio.testing.MockClock) -> None:
    async with subnet(1) as (h1,):
        assert h1.ifunit("lo0").addrs[0].addr == bytes([127, 0, 0, 1])
        await trio.sleep(1)
        vnic_out = h1.ifunit("vnic0").statistics().opackets  # the gratuitous ARP
        for target in ("127.0.0.1", "10.0.0.1"):
            result = await h1.ping(target, count=2, interval=0.1)
            assert result.received == 2, target
        with h1.udp_socket() as server, h1.udp_socket() as client:
            server.bind(("127.0.0.1", 53))
            await client.sendto(b"q", ("127.0.0.1", 53))
            data, (src, _) = await server.recvfrom()
            assert (data, src) == (b"q", "127.0.0.1")
        lo = h1.ifunit("lo0").statistics()
        assert lo.ipackets == lo.opackets >= 6
        assert h1.ifunit("vnic0").statistics().opackets == vnic_out  # nothing left the host


async def test_the_protocol_switch_hands_datagrams_to_input_and_icmp_errors_to_ctlinput(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """``ip.protocols[proto] = (input, ctlinput)``: a protocol registered on
    h1 but not on h2 draws ICMP protocol unreachable from h2, which h1's
    ICMP hands to the protocol's ctlinput with the quoted datagram's
    addresses and its first 8 bytes; once h2 has it too, its input gets the
    datagram."""
    proto = 253  # RFC 3692 experimental
    async with subnet(2) as (h1, h2):
        errors: list[tuple[int, int, bytes, bytes, bytes, int]] = []
        received: list[tuple[bytes, bytes]] = []

        def ctlinput(type_: int, code: int, src: bytes, dst: bytes, head: memoryview, mtu: int) -> bool:
            errors.append((type_, code, src, dst, bytes(head), mtu))
            return True

        h1.inet.ip.protocols[proto] = (lambda hdr, payload, m: None, ctlinput)
        addr1, addr2 = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
        assert addr1 in h1.inet.local_addrs and addr2 in h2.inet.local_addrs
        h1.inet.ip.output(addr2, proto, b"first 8 and more")
        await trio.sleep(1)
        assert errors == [(3, 2, addr1, addr2, b"first 8 ", 0)]
        assert h2.inet.ip.statistics().drops == {"noproto": 1}
        assert h1.inet.icmp.statistics().drops == {}  # claimed by ctlinput

        h2.inet.ip.protocols[proto] = (
            lambda hdr, payload, m: received.append((hdr.src, bytes(payload))),
            None,
        )
        h1.inet.ip.output(addr2, proto, b"second")
        await trio.sleep(1)
        assert received == [(addr1, b"second")]
        assert len(errors) == 1


async def test_udp_calls_that_do_not_wait_and_connect_picks_the_source(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with routed() as n:
        server = n["h2"].udp_socket()
        server.bind(("10.0.3.2", 7))
        client = n["h1"].udp_socket()
        with pytest.raises(trionet.NetError) as info:
            client.getpeername()
        assert info.value.errno == errno.ENOTCONN
        client.connect(("10.0.3.2", 7))
        # BSD in_pcbconnect: the route's source, not 0.0.0.0.
        assert client.getsockname()[0] == "10.0.1.2"
        assert client.getpeername() == ("10.0.3.2", 7)
        assert not server.is_readable()
        with pytest.raises(trio.WouldBlock):
            server.recvfrom_nowait()
        await client.send(b"one")
        await client.send(b"two")
        with trio.fail_after(5):
            await server.wait_readable()
        assert server.is_readable()
        assert server.recvfrom_nowait(peek=True) == (b"one", client.getsockname())
        assert server.recvfrom_nowait() == (b"one", client.getsockname())
        with trio.fail_after(5):
            await server.wait_readable()
        assert server.recvfrom_nowait()[0] == b"two"
        server.close()
        assert server.is_readable()  # closed: a read would not wait (it raises)
        with pytest.raises(trio.ClosedResourceError):
            server.recvfrom_nowait()
        with pytest.raises(trio.ClosedResourceError):
            await server.wait_readable()
        client.close()
