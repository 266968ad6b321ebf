"""Addresses, connected routes, static routes and longest-prefix match; the
route choice (``Ip.route``: interface, next hop and source in one call) and
the route cache a socket keeps, with the generation that invalidates it."""

from __future__ import annotations

import errno
import ipaddress

import pytest
import trio
import trio.testing

import trionet
from trionet._net._route import RouteCache
from trionet.drivers.lo import Loopback
from trionet.drivers.vnic import Vnic
from trionet.wires import memory_pair


def ip(s: str) -> bytes:
    return ipaddress.IPv4Address(s).packed


async def two_vnics(host: trionet.Host) -> tuple[trionet.Ifnet, trionet.Ifnet]:
    a, _ = memory_pair()
    c, _ = memory_pair()
    return await host.if_attach(Vnic(a)), await host.if_attach(Vnic(c))


async def test_addresses_add_connected_routes_and_lpm_picks_the_longest() -> None:
    async with trionet.open_host("r1") as host:
        v0, v1 = await two_vnics(host)
        row = host.ifconfig("vnic0", "10.0.0.1/24")
        assert row.inet == ("10.0.0.1/24",)
        host.ifconfig("vnic1", "10.1.0.1/16")
        host.route_add("default", "10.0.0.254")
        host.route_add("10.1.2.0/24", "10.0.0.2")
        host.route_add("10.1.2.3/32", ifname="vnic1")
        lookup = host.routes.lookup
        assert lookup(ip("10.0.0.77")).ifp is v0 and lookup(ip("10.0.0.77")).gateway is None
        assert lookup(ip("10.1.9.9")).ifp is v1
        assert lookup(ip("10.1.2.9")).gateway == ip("10.0.0.2")
        assert lookup(ip("10.1.2.3")).ifp is v1 and lookup(ip("10.1.2.3")).gateway is None
        assert lookup(ip("8.8.8.8")).gateway == ip("10.0.0.254")
        text = trionet.format_netstat_r(host.netstat_r())
        assert "default" in text and "10.1.2.3" in text and "UGS" in text and "UC" in text
        assert [r.destination for r in host.netstat_r()] == [
            "10.1.2.3", "10.0.0.0/24", "10.1.2.0/24", "10.1.0.0/16", "default",
        ]
        out = trionet.format_ifconfig(host.ifconfig())
        assert "inet 10.0.0.1 netmask 0xffffff00 broadcast 10.0.0.255" in out


async def test_route_errors() -> None:
    async with trionet.open_host("r1") as host:
        await two_vnics(host)
        host.ifconfig("vnic0", "10.0.0.1/24")
        with pytest.raises(trionet.NetError) as info:
            host.route_add("default", "192.168.9.9")
        assert info.value.errno == errno.ENETUNREACH
        host.route_add("default", "10.0.0.254")
        with pytest.raises(trionet.NetError) as info:
            host.route_add("default", "10.0.0.253")
        assert info.value.errno == errno.EEXIST
        with pytest.raises(ValueError):
            host.route_add("10.0.0.1/24", "10.0.0.254")  # host bits set
        with pytest.raises(ValueError):
            host.route_add("10.9.0.0/16")
        host.route_delete("default")
        assert host.routes.lookup(ip("8.8.8.8")) is None
        with pytest.raises(trionet.NetError) as info:
            host.route_delete("default")
        assert info.value.errno == errno.ESRCH
        with pytest.raises(trionet.NetError) as info:
            host.ifconfig("vnic1", "10.0.0.1/24")
        assert info.value.errno == errno.EEXIST
        with pytest.raises(ValueError):
            host.ifconfig("vnic1", "10.0.0.300/24")
        with pytest.raises(trionet.NetError) as info:
            host.ifconfig("vnic9", "10.0.0.2/24")
        assert info.value.errno == errno.ENXIO


async def test_deleting_the_address_and_detaching_remove_routes() -> None:
    async with trionet.open_host("r1") as host:
        v0, v1 = await two_vnics(host)
        host.ifconfig("vnic0", "10.0.0.1/24")
        host.ifconfig("vnic0", "10.0.0.2/24")  # a second address, same subnet
        host.ifconfig("vnic1", "10.5.0.1/24")
        host.route_add("default", "10.5.0.254")
        host.ifconfig("vnic0", "10.0.0.1/24", delete=True)
        assert host.routes.lookup(ip("10.0.0.9")).ifp is v0  # 10.0.0.2 keeps it
        host.ifconfig("vnic0", "10.0.0.2/24", delete=True)
        assert host.routes.lookup(ip("10.0.0.9")).ifp is v1  # now via the default
        with pytest.raises(trionet.NetError) as info:
            host.ifconfig("vnic0", "10.0.0.2/24", delete=True)
        assert info.value.errno == errno.EADDRNOTAVAIL
        await host.if_detach(v1)
        assert host.routes.lookup(ip("10.5.0.9")) is None
        assert host.netstat_r() == []


async def _route_choice_host(host: trionet.Host) -> tuple[trionet.Ifnet, ...]:
    # vnic0 10.0.0.1/24 (+ 10.0.0.2), vnic1 10.0.1.1/24, default via
    # 10.0.1.254, vnic2 without an address (a link route to 10.7.0.0/16),
    # and lo0 127.0.0.1/8 attached after them.
    v0, v1 = await two_vnics(host)
    e, _ = memory_pair()
    v2 = await host.if_attach(Vnic(e))
    lo = await host.if_attach(Loopback())
    host.ifconfig("vnic0", "10.0.0.1/24")
    host.ifconfig("vnic0", "10.0.0.2/24")
    host.ifconfig("vnic1", "10.0.1.1/24")
    host.ifconfig(lo.name, "127.0.0.1/8")
    host.route_add("default", "10.0.1.254")
    host.route_add("10.7.0.0/16", ifname="vnic2")
    return v0, v1, v2, lo


async def test_route_chooses_interface_next_hop_and_source_in_one_call() -> None:
    async with trionet.open_host("h") as host:
        v0, v1, v2, lo = await _route_choice_host(host)
        route = host.inet.ip.route
        # A connected subnet: the destination is the next hop; the source is
        # the interface's primary address.
        assert route(ip("10.0.0.9")) == (v0, ip("10.0.0.9"), ip("10.0.0.1"))
        # Through the default route: its gateway is the next hop.
        assert route(ip("8.8.8.8")) == (v1, ip("10.0.1.254"), ip("10.0.1.1"))
        # A source asked for is kept (a bound socket, a forwarded datagram).
        assert route(ip("8.8.8.8"), src=ip("10.0.0.2")) == (v1, ip("10.0.1.254"), ip("10.0.0.2"))
        # One of our own addresses, even the second one: loopback, from itself.
        assert route(ip("10.0.0.2")) == (lo, ip("10.0.0.2"), ip("10.0.0.2"))
        assert route(ip("127.0.0.1")) == (lo, ip("127.0.0.1"), ip("127.0.0.1"))
        # The limited broadcast has no route: the first interface with an
        # address that is not loopback.
        bcast = b"\xff" * 4
        assert route(bcast) == (v0, bcast, ip("10.0.0.1"))
        # An interface given: on its link, whatever the routes say.
        assert route(ip("8.8.8.8"), ifp=v0) == (v0, ip("8.8.8.8"), ip("10.0.0.1"))
        with pytest.raises(trionet.NetError) as info:
            route(ip("10.7.0.1"))  # vnic2 has no address to send from
        assert info.value.errno == errno.EADDRNOTAVAIL
        assert route(ip("10.7.0.1"), src=ip("10.0.0.1")) == (v2, ip("10.7.0.1"), ip("10.0.0.1"))
        host.route_delete("default")
        with pytest.raises(trionet.NetError) as info:
            route(ip("8.8.8.8"))
        assert info.value.errno == errno.ENETUNREACH
        # Route choice counts nothing; output does.
        assert host.inet.ip.statistics().drops == {}


async def test_route_cache_is_reused_until_a_route_or_address_changes() -> None:
    async with trionet.open_host("h") as host:
        v0, v1, _, _ = await _route_choice_host(host)
        ip_layer = host.inet.ip
        ro = RouteCache()
        first = ip_layer.route_cached(ro, ip("8.8.8.8"))
        assert first == (v1, ip("10.0.1.254"), ip("10.0.1.1"))
        assert ip_layer.route_cached(ro, ip("8.8.8.8")) is first  # reused, not chosen again
        # Each kind of change bumps the generation, and the next use chooses again.
        changes = [
            lambda: host.route_add("8.8.0.0/16", "10.0.0.254"),  # a route added...
            lambda: host.ifconfig("vnic1", "10.0.9.1/24"),  # ...an address added...
            lambda: host.ifconfig("vnic1", "10.0.9.1/24", delete=True),  # ...and deleted
            lambda: host.route_delete("8.8.0.0/16"),  # a route deleted
        ]
        expected = [v0, v0, v0, v1]
        for change, ifp in zip(changes, expected):
            generation = host.routes.generation
            change()
            assert host.routes.generation > generation
            assert ip_layer.route_cached(ro, ip("8.8.8.8"))[0] is ifp
        # Another destination or another source asked for: chosen again.
        assert ip_layer.route_cached(ro, ip("10.0.0.9"))[0] is v0
        assert ip_layer.route_cached(ro, ip("10.0.0.9"), ip("10.0.0.2"))[2] == ip("10.0.0.2")
        # A failure is counted as an output drop, and not remembered.
        host.route_delete("default")
        for _ in range(2):
            with pytest.raises(trionet.NetError):
                ip_layer.route_cached(ro, ip("8.8.8.8"))
        assert ip_layer.statistics().drops == {"no_route": 2}


async def test_arp_changes_do_not_invalidate_cached_routes(autojump_clock: trio.testing.MockClock) -> None:
    # The cache holds the next hop's IP address; ARP maps it per packet.
    async with trionet.open_network(seed=1) as net:
        a = await net.add_host("a")
        b = await net.add_host("b")
        ln = await net.link(a, b)
        a.ifconfig(ln.ends[0].name, "10.0.0.1/24")
        b.ifconfig(ln.ends[1].name, "10.0.0.2/24")
        generation = a.routes.generation
        assert (await a.ping("10.0.0.2", count=2, interval=0.1)).received == 2  # ARP resolved
        a.inet.arp.cache.add_static(ip("10.0.0.9"), b"\x02\x00\x00\x00\x00\x09")
        assert a.routes.generation == generation


async def test_a_udp_socket_follows_a_route_change(autojump_clock: trio.testing.MockClock) -> None:
    """h reaches 10.9.0.0/16 through g1, then (the route replaced) through
    g2: the socket's cached route is dropped with the change, and the next
    datagram takes the new way."""
    async with trionet.open_network(seed=1) as net:
        h, g1, g2 = [await net.add_host(name) for name in ("h", "g1", "g2")]
        l1 = await net.link(h, g1)
        l2 = await net.link(h, g2)
        h.ifconfig(l1.ends[0].name, "10.0.1.1/24")
        g1.ifconfig(l1.ends[1].name, "10.0.1.2/24")
        h.ifconfig(l2.ends[0].name, "10.0.2.1/24")
        g2.ifconfig(l2.ends[1].name, "10.0.2.2/24")
        h.route_add("10.9.0.0/16", "10.0.1.2")
        tx = h.udp_socket()
        for _ in range(3):
            await tx.sendto(b"x", ("10.9.0.5", 9))
        await trio.sleep(1)
        h.route_delete("10.9.0.0/16")
        h.route_add("10.9.0.0/16", "10.0.2.2")
        for _ in range(2):
            await tx.sendto(b"x", ("10.9.0.5", 9))
        await trio.sleep(1)
        # g1 and g2 do not forward: each counts what reached it.
        assert g1.inet.ip.statistics().drops == {"not_forwarding": 3}
        assert g2.inet.ip.statistics().drops == {"not_forwarding": 2}
