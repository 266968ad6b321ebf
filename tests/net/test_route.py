"""Addresses, connected routes, static routes and longest-prefix match."""

from __future__ import annotations

import errno
import ipaddress

import pytest

import trionet
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
        (row,) = host.ifconfig("vnic0", "10.0.0.1/24")
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
