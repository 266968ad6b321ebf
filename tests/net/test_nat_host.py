"""NAT between trionet hosts, in virtual time: ``host.nat`` masquerades an
inside network behind the outside interface's address (TCP, UDP, ICMP echo,
ICMP errors back), the table view, and its bound under a flood.

    h1 10.0.1.2 --- 10.0.1.1 gw 172.16.0.1 (nat outside) --- 172.16.0.2 srv

``srv`` has no route to 10.0.1.0/24: only translated traffic can come back.
"""

from __future__ import annotations

import errno
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

import trionet
from trionet.protocols.nat import format_nat


@asynccontextmanager
async def _nat(max_entries: int = 4096, **link: Any) -> AsyncIterator[dict[str, Any]]:
    async with trionet.open_network(seed=1) as net:
        h1, gw, srv = [await net.add_host(n) for n in ("h1", "gw", "srv")]
        inside = await net.link(h1, gw, delay=0.001)
        outside = await net.link(gw, srv, delay=0.002, **link)
        h1.ifconfig(inside.ends[0].name, "10.0.1.2/24")
        gw.ifconfig(inside.ends[1].name, "10.0.1.1/24")
        gw.ifconfig(outside.ends[0].name, "172.16.0.1/24")
        srv.ifconfig(outside.ends[1].name, "172.16.0.2/24")
        h1.route_add("default", "10.0.1.1")
        gw.sysctl("net.inet.ip.forwarding", 1)
        gw.nat(outside.ends[0].name, max_entries=max_entries)
        yield {"h1": h1, "gw": gw, "srv": srv, "outside": outside.ends[0].name}


async def test_ping_udp_and_tcp_through_the_nat_come_from_its_address(autojump_clock: trio.testing.MockClock) -> None:
    async with _nat() as n:
        h1, gw, srv = n["h1"], n["gw"], n["srv"]
        assert (await h1.ping("172.16.0.2", count=3)).received == 3
        # UDP: the server sees the NAT's address; its answer comes back.
        server = srv.udp_socket()
        server.bind(("0.0.0.0", 53))
        client = h1.udp_socket()
        client.connect(("172.16.0.2", 53))
        await client.send(b"query")
        with trio.fail_after(5):
            data, peer = await server.recvfrom()
        assert peer[0] == "172.16.0.1"
        await server.sendto(b"answer", peer)
        with trio.fail_after(5):
            assert await client.recv() == b"answer"
        # TCP: a transfer both ways, whole.
        seen = []

        async def echo(stream: trionet.TcpStream) -> None:
            seen.append(stream.getpeername())
            async with stream:
                async for chunk in stream:
                    await stream.send_all(chunk)

        payload = bytes(range(256)) * 400
        async with trio.open_nursery() as nursery:
            await nursery.start(srv.serve_tcp, echo, 8080)
            async with await h1.open_tcp_stream("172.16.0.2", 8080) as stream:
                await stream.send_all(payload)
                got = bytearray()
                with trio.fail_after(30):
                    while len(got) < len(payload):
                        got += await stream.receive_some()
            assert bytes(got) == payload
            nursery.cancel_scope.cancel()
        assert seen[0][0] == "172.16.0.1"
        rows = gw.nat_table()
        assert {row.proto for row in rows} == {1, 6, 17}
        text = format_nat(rows)
        assert "10.0.1.2" in text and "172.16.0.2" in text
        stats = gw.inet.ip.nat.statistics()
        assert stats.translated_out > 0 and stats.translated_in > 0


async def test_an_icmp_error_about_a_translated_datagram_reaches_the_inside_host(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with _nat() as n:
        client = n["h1"].udp_socket()
        client.connect(("172.16.0.2", 9))  # nobody listens: port unreachable
        await client.send(b"x")
        await trio.sleep(1)
        with pytest.raises(ConnectionRefusedError):
            await client.send(b"y")


async def test_the_outside_cannot_open_connections_in(autojump_clock: trio.testing.MockClock) -> None:
    async with _nat() as n:
        n["srv"].route_add("10.0.1.0/24", "172.16.0.1")
        listener = n["h1"].udp_socket()
        listener.bind(("0.0.0.0", 7))
        probe = n["srv"].udp_socket()
        # To the NAT's address: no connection, so it is the router's own
        # (and nobody listens there).
        await probe.sendto(b"in?", ("172.16.0.1", 7))
        await trio.sleep(1)
        assert listener.statistics().received == 0
        assert n["gw"].inet.udp.statistics().drops["noport"] == 1
        assert n["gw"].inet.ip.nat.statistics().passed >= 1


async def test_a_flood_of_flows_stays_within_the_bound(autojump_clock: trio.testing.MockClock) -> None:
    async with _nat(max_entries=100) as n:
        h1, gw, srv = n["h1"], n["gw"], n["srv"]
        server = srv.udp_socket()
        server.bind(("0.0.0.0", 9000))
        # ARP first (a burst would overflow ARP's pending queue, not the NAT).
        assert (await h1.ping("10.0.1.1", count=1)).received == 1
        assert (await gw.ping("172.16.0.2", count=1)).received == 1
        socks = []
        for i in range(300):
            sock = h1.udp_socket()
            sock.bind(("0.0.0.0", 20000 + i))
            await sock.sendto(b"f", ("172.16.0.2", 9000))
            socks.append(sock)
        await trio.sleep(1)
        stats = gw.inet.ip.nat.statistics()
        assert len(gw.nat_table()) == 100
        assert stats.created == 300 and stats.evicted == 200
        assert server.statistics().received == 300
        # The table expires: empty after the UDP timeout.
        await trio.sleep(301)
        assert gw.nat_table() == []


async def test_nat_misuse(autojump_clock: trio.testing.MockClock) -> None:
    async with _nat() as n:
        gw = n["gw"]
        with pytest.raises(trionet.NetError) as info:
            gw.nat("vnic99")
        assert info.value.errno == errno.ENXIO
        with pytest.raises(ValueError):
            gw.nat(n["outside"], max_entries=0)
        gw.nat(None)
        assert gw.nat_table() == []
        assert (await n["h1"].ping("172.16.0.2", count=1, timeout=1)).received == 0  # no way back now
