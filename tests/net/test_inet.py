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


@asynccontextmanager
async def routed(seed: int = 1) -> AsyncIterator[dict[str, Host]]:
    async with trionet.open_network(seed=seed) as net:
        h1, r1, r2, h2 = [await net.add_host(n, ncpus=2) for n in ("h1", "r1", "r2", "h2")]
        l1 = await net.link(h1, r1, delay=0.001)
        l2 = await net.link(r1, r2, delay=0.002, mtu=576)
        l3 = await net.link(r2, h2, delay=0.001)
        h1.ifconfig(l1.ends[0].name, "10.0.1.2/24")
        r1.ifconfig(l1.ends[1].name, "10.0.1.1/24")
        r1.ifconfig(l2.ends[0].name, "10.0.2.1/24")
        r2.ifconfig(l2.ends[1].name, "10.0.2.2/24")
        r2.ifconfig(l3.ends[0].name, "10.0.3.1/24")
        h2.ifconfig(l3.ends[1].name, "10.0.3.2/24")
        h1.route_add("default", "10.0.1.1")
        h2.route_add("default", "10.0.3.1")
        r1.route_add("10.0.3.0/24", "10.0.2.2")
        r2.route_add("10.0.1.0/24", "10.0.2.1")
        for r in (r1, r2):
            r.sysctl("net.inet.ip.forwarding", 1)
        yield {"h1": h1, "r1": r1, "r2": r2, "h2": h2}


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
        payload = bytes(range(256)) * 6  # 1536 bytes: fits 1500? no: fragmented at h1 too
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
        assert n["h2"].inet.udp.statistics()["noport"] == 1
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
        assert h2.inet.udp.statistics()["fullsock"] == 2


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
