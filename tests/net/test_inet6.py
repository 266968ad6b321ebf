"""IPv6 between trionet hosts: addresses and DAD, neighbour discovery,
ping, UDP, TCP, fragmentation, forwarding, router advertisements."""

from __future__ import annotations

import pathlib

import pytest
import trio
import trio.testing

import trionet
import trionet.protocols.ipv6
from trionet.protocols.ipv6 import link_local_address

pytestmark = pytest.mark.trio

A6, B6 = "fd00::1", "fd00::2"


async def _pair(net: trionet.Network, **link: object) -> tuple[trionet.Host, trionet.Host, trionet.Link]:
    a = await net.add_host("a")
    b = await net.add_host("b")
    lk = await net.link(a, b, **link)
    a.ifconfig(lk.ends[0].name, f"{A6}/64")
    b.ifconfig(lk.ends[1].name, f"{B6}/64")
    await trio.sleep(3)  # DAD: up to 1 s of random delay, then 1 s of listening
    return a, b, lk


def _flags(host: trionet.Host, ifname: str) -> dict[str, tuple[str, ...]]:
    return dict(host.ifconfig(ifname).inet6)


async def test_link_local_and_manual_addresses_pass_dad(autojump_clock: trio.testing.MockClock) -> None:
    async with trionet.open_network(seed=1) as net:
        a = await net.add_host("a")
        b = await net.add_host("b")
        lk = await net.link(a, b)
        name = lk.ends[0].name
        a.ifconfig(name, f"{A6}/64")
        row = a.ifconfig(name)
        ll = str(link_local_address(row.lladdr).hex())
        flags = _flags(a, name)
        assert flags[f"{A6}/64"] == ("tentative",)
        assert any(addr.startswith("fe80::") for addr in flags), flags
        assert ll  # (the EUI-64 link-local of the interface's MAC)
        await trio.sleep(3)
        flags = _flags(a, name)
        assert flags[f"{A6}/64"] == ()
        assert all(f == () for f in flags.values()), flags
        text = trionet.format_ifconfig([a.ifconfig(name)])
        assert f"inet6 {A6} prefixlen 64" in text
        assert "inet6 fe80::" in text and f"%{name}" in text


async def test_ping6_global_and_link_local(autojump_clock: trio.testing.MockClock) -> None:
    async with trionet.open_network(seed=2) as net:
        a, b, lk = await _pair(net, delay=0.01)
        result = await a.ping(B6, count=3, interval=0.1)
        assert result.received == 3, result
        # The first waits for neighbour discovery; the others take the two 10 ms hops.
        assert all(abs(rtt - 0.02) < 0.005 for rtt in result.rtts[1:]), result.rtts
        ll_b = next(addr for addr, _ in b.ifconfig(lk.ends[1].name).inet6 if addr.startswith("fe80"))
        result = await a.ping(f"{ll_b.split('/')[0]}%{lk.ends[0].name}", count=2, interval=0.1)
        assert result.received == 2
        rows = a.ndp()
        assert {r.address for r in rows} >= {B6}
        assert trionet.format_ndp(rows).startswith("Neighbor")


async def test_ping6_fragments_both_ways(autojump_clock: trio.testing.MockClock) -> None:
    async with trionet.open_network(seed=3) as net:
        a, b, _ = await _pair(net)
        result = await a.ping(B6, count=2, size=3000, interval=0.1)
        assert result.received == 2
        assert a.inet6.ip6.statistics().fragmented == 2
        assert b.inet6.ip6.statistics().reassembled == 2
        assert b.inet6.ip6.statistics().fragmented == 2  # the replies, too


async def test_udp_and_tcp_over_ipv6(autojump_clock: trio.testing.MockClock) -> None:
    async with trionet.open_network(seed=4) as net:
        a, b, _ = await _pair(net, delay=0.001)
        server = b.udp_socket()
        server.bind(("::", 5353))
        client = a.udp_socket()
        await client.sendto(b"hello6", (B6, 5353))
        data, (src, port) = await server.recvfrom()
        assert data == b"hello6" and src == A6
        await server.sendto(b"back", (src, port))
        assert await client.recvfrom() == (b"back", (B6, 5353))

        async with trio.open_nursery() as nursery:

            async def handler(stream: trionet.TcpStream) -> None:
                while data := await stream.receive_some():
                    await stream.send_all(data.upper())

            (listener, *_) = await nursery.start(b.serve_tcp, handler, 8080)
            stream = await a.open_tcp_stream(B6, 8080)
            assert stream.getpeername() == (B6, 8080)
            payload = bytes(range(256)) * 400  # 100 KiB: many segments
            await stream.send_all(payload)
            got = bytearray()
            while len(got) < len(payload):
                got += await stream.receive_some()
            assert got == payload.upper()
            # One listener (no host given: both families, shown once).
            states = [(r.local, r.foreign, r.state) for r in b.netstat()]
            assert ((("0.0.0.0", 8080), ("0.0.0.0", 0), "LISTEN")) in states
            assert ((B6, 8080), stream.getsockname(), "ESTABLISHED") in states
            assert len([s for s in states if s[2] == "LISTEN"]) == 1
            await stream.aclose()
            nursery.cancel_scope.cancel()
        assert b.inet.tcp.statistics().drops.get("bad_checksum", 0) == 0


async def test_a_duplicate_address_is_detected_and_not_used(autojump_clock: trio.testing.MockClock) -> None:
    async with trionet.open_network(seed=5) as net:
        a = await net.add_host("a")
        b = await net.add_host("b")
        lk = await net.link(a, b)
        a.ifconfig(lk.ends[0].name, f"{A6}/64")
        await trio.sleep(3)
        b.ifconfig(lk.ends[1].name, f"{A6}/64")  # the same address: b's DAD hears a's answer
        await trio.sleep(3)
        assert _flags(b, lk.ends[1].name)[f"{A6}/64"] == ("duplicated",)
        assert _flags(a, lk.ends[0].name)[f"{A6}/64"] == ()
        assert b.inet6.nd6.statistics().dad_duplicates == 1
        with pytest.raises(OSError):
            await b.open_tcp_stream(A6, 80, local_address=A6)


async def test_router_advertisements_autoconfigure_a_host(autojump_clock: trio.testing.MockClock) -> None:
    async with trionet.open_network(seed=6) as net:
        r = await net.add_host("r")
        h = await net.add_host("h")
        h.sysctl("net.inet6.ip6.auto_linklocal", 1)  # IPv6 at ifup, without an address of its own
        lk = await net.link(r, h)
        r.sysctl("net.inet6.ip6.forwarding", 1)
        r.ifconfig(lk.ends[0].name, "fd00:1::1/64")
        r.rtadvd(lk.ends[0].name, prefix="fd00:1::/64", mtu=1400)
        await trio.sleep(20)
        addrs = dict(h.ifconfig(lk.ends[1].name).inet6)
        slaac = [a for a in addrs if a.startswith("fd00:1::")]
        assert len(slaac) == 1 and addrs[slaac[0]] == ("autoconf",), addrs
        routes = {(row.destination, row.flags) for row in h.netstat_r() if row.family == "inet6"}
        assert any(dest == "default" and "1" in flags for dest, flags in routes), routes
        result = await h.ping("fd00:1::1", count=2, interval=0.1)
        assert result.received == 2
        assert h.inet6.nd6.link_mtu(h.ifunit(lk.ends[1].name)) == 1400


async def test_forwarding_between_two_links(autojump_clock: trio.testing.MockClock) -> None:
    async with trionet.open_network(seed=7) as net:
        a = await net.add_host("a")
        r = await net.add_host("r")
        b = await net.add_host("b")
        l1 = await net.link(a, r)
        l2 = await net.link(r, b, mtu=1280)
        r.sysctl("net.inet6.ip6.forwarding", 1)
        a.ifconfig(l1.ends[0].name, "fd00:1::2/64")
        r.ifconfig(l1.ends[1].name, "fd00:1::1/64")
        r.ifconfig(l2.ends[0].name, "fd00:2::1/64")
        b.ifconfig(l2.ends[1].name, "fd00:2::2/64")
        a.route_add("::/0", "fd00:1::1")
        b.route_add("::/0", "fd00:2::1")
        await trio.sleep(3)
        result = await a.ping("fd00:2::2", count=2, interval=0.1, ttl=2)
        assert result.received == 2
        result = await a.ping("fd00:2::2", count=1, ttl=1)
        assert result.received == 0 and result.errors[0].type == 3  # time exceeded
        # A TCP transfer across the smaller link (the MSS options make it fit).
        async with trio.open_nursery() as nursery:

            async def sink(stream: trionet.TcpStream) -> None:
                total = 0
                while data := await stream.receive_some():
                    total += len(data)
                await stream.send_all(str(total).encode())

            await nursery.start(b.serve_tcp, sink, 9000)
            stream = await a.open_tcp_stream("fd00:2::2", 9000)
            await stream.send_all(bytes(50000))
            await stream.send_eof()
            assert await stream.receive_some() == b"50000"
            nursery.cancel_scope.cancel()
        # A 1448-byte packet does not fit the 1280-byte link: the router
        # answers Packet Too Big, and the next one leaves in fragments.
        result = await a.ping("fd00:2::2", count=2, size=1400, interval=1)
        assert [(e.seq, e.type) for e in result.errors] == [(0, 2)]
        assert result.received == 1
        assert r.inet6.ip6.statistics().drops["too_big"] == 1
        assert a.inet6.ip6.path_mtu(trionet.protocols.ipv6.ip6_aton("fd00:2::2"), a.ifunit(l1.ends[0].name)) == 1280


async def test_an_unresolved_neighbour_is_answered_with_address_unreachable(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # RFC 4861 7.2.2: a router whose neighbour never answers tells the
    # sender with ICMPv6 destination unreachable, code 3 (address).
    async with trionet.open_network(seed=8) as net:
        a = await net.add_host("a")
        r = await net.add_host("r")
        lk = await net.link(a, r)
        lk2 = await net.link(r, await net.add_host("silent"))
        r.sysctl("net.inet6.ip6.forwarding", 1)
        a.ifconfig(lk.ends[0].name, "fd00:1::2/64")
        r.ifconfig(lk.ends[1].name, "fd00:1::1/64")
        r.ifconfig(lk2.ends[0].name, "fd00:2::1/64")  # nobody else has an address there
        a.route_add("::/0", "fd00:1::1")
        await trio.sleep(3)
        result = await a.ping("fd00:2::9", count=1, timeout=5)
        assert result.received == 0
        assert [(e.type, e.code, e.source) for e in result.errors] == [(1, 3, "fd00:1::1")]
        assert r.inet6.nd6.statistics().drops["unresolved"] == 1


async def test_joined_groups_are_reported_with_mldv2(
    autojump_clock: trio.testing.MockClock, tmp_path: pathlib.Path
) -> None:
    # Each address's solicited-node group is reported (RFC 3810): an MLDv2
    # report to ff02::16 with hop limit 1 and a Router Alert; all-nodes
    # never is. Read back by scapy, an independent decoder.
    from scapy.layers.inet6 import ICMPv6MLReport2, IPv6, IPv6ExtHdrHopByHop, RouterAlert
    from scapy.utils import rdpcap

    capture = tmp_path / "link.pcap"
    async with trionet.open_network(seed=9) as net:
        a = await net.add_host("a")
        b = await net.add_host("b")
        lk = await net.link(a, b, pcap=capture)
        a.ifconfig(lk.ends[0].name, f"{A6}/64")
        await trio.sleep(5)
    reported = set()
    for frame in rdpcap(str(capture)):
        if ICMPv6MLReport2 in frame:
            ip = frame[IPv6]
            assert (ip.dst, ip.hlim) == ("ff02::16", 1)
            assert RouterAlert in frame[IPv6ExtHdrHopByHop]
            reported |= {rec.dst for rec in frame[ICMPv6MLReport2].records}
    assert "ff02::1:ff00:1" in reported  # fd00::1's solicited-node group
    assert "ff02::1" not in reported


async def test_down_and_up_keeps_the_filter_counts_and_rtadvd(autojump_clock: trio.testing.MockClock) -> None:
    async with trionet.open_network(seed=10) as net:
        r = await net.add_host("r")
        h = await net.add_host("h")
        h.sysctl("net.inet6.ip6.auto_linklocal", 1)
        r.sysctl("net.inet6.ip6.forwarding", 1)
        lk = await net.link(r, h)
        ifp = r.ifunit(lk.ends[0].name)
        r.ifconfig(ifp.name, "fd00:1::1/64")
        r.rtadvd(ifp.name, prefix="fd00:1::/64")
        await trio.sleep(3)
        groups = dict(ifp.multiaddrs)
        for _ in range(2):
            await r.ifdown(ifp)
            await trio.sleep(1)
            await r.ifup(ifp)
            await trio.sleep(3)
        assert ifp.multiaddrs == groups  # each group once: left at down, joined again at up
        assert all(n == 1 for n in groups.values()), groups
        # The advertisements outlive the cycle: the host, its address gone,
        # solicits again and gets it back from them.
        hname = lk.ends[1].name
        (slaac,) = [a for a, _ in h.ifconfig(hname).inet6 if a.startswith("fd00:1::")]
        h.ifconfig(hname, slaac, delete=True)
        await h.ifdown(h.ifunit(hname))
        await h.ifup(h.ifunit(hname))
        await trio.sleep(10)
        assert slaac in dict(h.ifconfig(hname).inet6)
