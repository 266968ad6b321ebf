"""DHCP between trionet hosts, in virtual time: ``host.dhcp_server`` and
``host.dhclient`` (leases, renewal, expiry, static bindings, what a lease
configures and takes back), and the server's unicast to a client that has no
address yet (RFC 2131 section 4.1), seen on the wire.

    r 10.0.0.1 (dhcpd) --- switch --- h1, h2, h3 (dhclient)
"""

from __future__ import annotations

import errno
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

import trionet
from trionet import NetError, format_dhcp_leases
from trionet.protocols import dhcp

POOL = "10.0.0.100-10.0.0.200"


@asynccontextmanager
async def _lan(clients: int = 3, pcap: Path | None = None, **server: Any) -> AsyncIterator[dict[str, Any]]:
    async with trionet.open_network(seed=1) as net:
        r = await net.add_host("r")
        sw = net.add_switch("sw")
        up = await net.link(r, sw, delay=0.001, pcap=pcap)
        r.ifconfig(up.ends[0].name, "10.0.0.1/24")
        hosts = {}
        for n in range(1, clients + 1):
            h = await net.add_host(f"h{n}")
            link = await net.link(h, sw, delay=0.001)
            hosts[f"h{n}"] = (h, link.ends[0].name)
        settings = {"pool": POOL, "router": "10.0.0.1", "dns": ["10.0.0.1"], "domain": "lab", **server}
        r.dhcp_server(up.ends[0].name, **settings)
        yield {"net": net, "r": r, "r_if": up.ends[0].name, **hosts}


def _clients(n: dict[str, Any]) -> list[tuple[trionet.Host, str]]:
    return [value for key, value in n.items() if key.startswith("h")]


async def test_three_clients_get_distinct_addresses_and_their_configuration(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with _lan() as n:
        clients = [h.dhclient(ifname, hostname=h.name) for h, ifname in _clients(n)]
        with trio.fail_after(60):
            leases = [await c.wait_bound() for c in clients]
        addresses = [lease.address for lease in leases]
        assert len(set(addresses)) == 3
        for (h, ifname), lease, client in zip(_clients(n), leases, clients, strict=True):
            ip = lease.address.split("/")[0]
            assert lease.address.endswith("/24") and 100 <= int(ip.split(".")[-1]) <= 200
            assert (lease.routers, lease.dns, lease.domain, lease.server) == (("10.0.0.1",), ("10.0.0.1",), "lab", "10.0.0.1")
            assert client.state == "BOUND"
            assert h.ifconfig(ifname).inet == (lease.address,)  # the address is set
            (default,) = [row for row in h.netstat_r() if row.destination == "default"]
            assert default.gateway == "10.0.0.1"
            assert h.resolver == "10.0.0.1"
            assert (await h.ping("10.0.0.1", count=1)).received == 1
        rows = n["r"].dhcp_leases()
        assert sorted(row.address for row in rows) == sorted(a.split("/")[0] for a in addresses)
        macs = {h.ifunit(ifname).lladdr.hex(":"): h.name for h, ifname in _clients(n)}
        assert {row.lladdr: row.hostname for row in rows} == macs
        assert {row.state for row in rows} == {"bound"} and {row.ifname for row in rows} == {n["r_if"]}
        table = format_dhcp_leases(rows)
        assert "bound" in table and rows[0].address in table


async def test_leases_are_renewed_and_an_expired_lease_is_taken_back(autojump_clock: trio.testing.MockClock) -> None:
    async with _lan(clients=1, lease_time=120) as n:
        (h, ifname), = _clients(n)
        client = h.dhclient(ifname)
        with trio.fail_after(60):
            lease = await client.wait_bound()
        # Ten lease times: renewed at T1 each time, the same address kept.
        await trio.sleep(1200)
        assert client.state == "BOUND" and client.lease is not None
        assert client.lease.address == lease.address
        assert client.machine.statistics().acks >= 10
        (row,) = n["r"].dhcp_leases()
        assert row.state == "bound" and 0 < row.expires <= 120
        # The server goes: renewing, rebinding, then the lease expires and
        # everything it set is taken back.
        await n["r"].ifdown(n["r"].ifunit(n["r_if"]))
        await trio.sleep(121)
        assert client.lease is None and client.state in ("INIT", "SELECTING")
        assert h.ifconfig(ifname).inet == ()
        assert not [row for row in h.netstat_r() if row.destination == "default"]
        assert h.resolver is None


async def test_a_static_binding_gives_the_same_address(autojump_clock: trio.testing.MockClock) -> None:
    async with trionet.open_network(seed=1) as net:
        r, h = await net.add_host("r"), await net.add_host("h")
        link = await net.link(r, h, delay=0.001)
        r.ifconfig(link.ends[0].name, "10.0.0.1/24")
        mac = h.ifunit(link.ends[1].name).lladdr.hex(":")
        r.dhcp_server(link.ends[0].name, pool=POOL, static={mac: "10.0.0.7"})
        with trio.fail_after(60):
            lease = await h.dhclient(link.ends[1].name).wait_bound()
        assert lease.address == "10.0.0.7/24"
        assert lease.routers == () and h.resolver is None  # none offered


async def test_server_configuration_errors(autojump_clock: trio.testing.MockClock) -> None:
    async with _lan(clients=1) as n:
        r, r_if = n["r"], n["r_if"]
        with pytest.raises(NetError) as info:
            r.dhcp_server(r_if, pool="10.9.0.1-10.9.0.9")
        assert info.value.errno == errno.EADDRNOTAVAIL
        with pytest.raises(NetError) as info:
            r.dhcp_server("vnic99", pool=POOL)
        assert info.value.errno == errno.ENXIO
        for bad in ({"pool": "10.0.0.200-10.0.0.100"}, {"pool": "x"}, {"pool": POOL, "router": "10.0.0"},
                    {"pool": POOL, "static": {"01:00:00:00:00:01": "10.0.0.5"}}, {"pool": "10.0.0.100-10.0.1.5"},
                    {"pool": POOL, "lease_time": 5}):  # fmt: skip
            with pytest.raises(ValueError):
                r.dhcp_server(r_if, **bad)
        with pytest.raises(NetError) as info:
            n["h1"][0].dhclient("vnic99")
        assert info.value.errno == errno.ENXIO


async def test_an_offer_to_a_client_without_the_broadcast_bit_is_unicast_to_its_mac(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    # A DISCOVER without the broadcast bit (iPXE's): the OFFER goes to the
    # offered address at the client's MAC, with no ARP request (the client
    # could not answer one).
    scapy = pytest.importorskip("scapy.all")
    capture = tmp_path / "lan.pcap"
    async with _lan(clients=1, pcap=capture) as n:
        (h, ifname), = _clients(n)
        mac = h.ifunit(ifname).lladdr
        sock = h.udp_socket()
        sock.bind(("0.0.0.0", 68))
        sock.bind_device(ifname)
        sock.broadcast = True
        discover = dhcp.DhcpMessage(
            op=dhcp.BOOTREQUEST, xid=0x1234, chaddr=mac,
            options=((dhcp.Option.MESSAGE_TYPE, bytes([dhcp.MessageType.DISCOVER])),),
        )  # fmt: skip
        await sock.sendto(discover.emit(), ("255.255.255.255", 67))
        await trio.sleep(5)
        assert n["r"].inet.arp.cache.statistics().requests == 0
    frames = scapy.rdpcap(str(capture))
    offers = [f for f in frames if f.haslayer(scapy.BOOTP) and f[scapy.BOOTP].op == 2]
    assert len(offers) == 1
    offer = offers[0]
    assert offer[scapy.Ether].dst == mac.hex(":")
    assert offer[scapy.IP].dst == offer[scapy.BOOTP].yiaddr and offer[scapy.IP].dst.startswith("10.0.0.")
    assert (offer[scapy.IP].src, offer[scapy.UDP].dport) == ("10.0.0.1", 68)


async def test_dhcpd_and_dhclient_threads_show_in_ps(autojump_clock: trio.testing.MockClock) -> None:
    async with _lan(clients=1) as n:
        (h, ifname), = _clients(n)
        assert h.dhclient(ifname) is h.dhclient(ifname)
        assert "dhcpd" in [t.name for t in n["r"].threads()]
        assert "dhclient" in [t.name for t in h.threads()]


async def test_garbage_and_a_discover_flood_are_counted_and_leave_the_service_working(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # A stranger on the LAN broadcasts 300 random or mangled datagrams to
    # both DHCP ports and then DISCOVERs from 2000 made-up MACs: nothing
    # crashes, every datagram ends in the server's counters, the table stays
    # within its 11-address pool, and a real client still gets its lease
    # once the flood's offers are released (60 s).
    import random

    rng = random.Random(7)
    async with _lan(clients=2, pool="10.0.0.100-10.0.0.110") as n:
        (stranger, s_if), (h, ifname) = _clients(n)
        client = h.dhclient(ifname)
        with trio.fail_after(60):
            first = await client.wait_bound()
        sock = stranger.udp_socket()
        sock.bind(("0.0.0.0", 68))
        sock.bind_device(s_if)
        sock.broadcast = True
        valid = dhcp.DhcpMessage(
            op=dhcp.BOOTREQUEST, xid=1, chaddr=bytes(6),
            options=((dhcp.Option.MESSAGE_TYPE, bytes([dhcp.MessageType.DISCOVER])),),
        ).emit()  # fmt: skip
        for i in range(300):
            if i % 2:
                data = rng.randbytes(rng.randrange(0, 600))
            else:
                data = bytearray(valid)
                for _ in range(rng.randrange(1, 8)):
                    data[rng.randrange(len(data))] = rng.randrange(256)
            await sock.sendto(bytes(data), ("255.255.255.255", 67 if i % 3 else 68))
            await trio.sleep(0.001)  # at a pace the server keeps up with (no fullsock drops)
        for i in range(2000):
            mac = bytes([2, 0]) + i.to_bytes(4, "big")
            flood = dhcp.DhcpMessage(
                op=dhcp.BOOTREQUEST, xid=i, chaddr=mac, flags=dhcp.FLAG_BROADCAST,
                options=((dhcp.Option.MESSAGE_TYPE, bytes([dhcp.MessageType.DISCOVER])),),
            )  # fmt: skip
            await sock.sendto(flood.emit(), ("255.255.255.255", 67))
            await trio.sleep(0.001)
        await trio.sleep(1)
        server = n["r"]._dhcpd.server
        stats = server.statistics()
        # Every datagram to port 67 ended in an answer or a counted drop.
        assert n["r"].inet.udp.statistics().drops.get("fullsock", 0) == 0
        to_server = 2 + 200 + 2000  # the client's DISCOVER and REQUEST, the garbage, the flood
        answered = stats.offers + stats.acks + stats.naks
        assert answered + sum(server.drops.values()) == to_server, (stats, server.drops)
        assert server.drops["pool_exhausted"] >= 2000 - 11
        assert len(n["r"].dhcp_leases()) <= 11
        # The client heard the garbage on port 68 (and every reply to the
        # flood's broadcast DISCOVERs), dropped it all, counted, and kept its
        # lease; its renewals go on.
        assert sum(client.machine.drops.values()) >= 100
        await trio.sleep(3600)
        assert client.state == "BOUND" and client.lease is not None
        assert client.lease.address == first.address
        assert "dhcpd" in [t.name for t in n["r"].threads()]


async def test_an_address_the_host_already_has_is_declined_and_another_taken(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The pool's first address is already on the client's other interface:
    # the client declines it, the server holds it out, the next is leased.
    async with _lan(clients=1) as n:
        (h, ifname), = _clients(n)
        other = await n["net"].link(h, await n["net"].add_host("x"))
        h.ifconfig(other.ends[0].name, "10.0.0.100/32")
        client = h.dhclient(ifname)
        with trio.fail_after(120):
            lease = await client.wait_bound()
        assert lease.address == "10.0.0.101/24"
        assert client.machine.statistics().declines == 1
        states = {row.address: row.state for row in n["r"].dhcp_leases()}
        assert states == {"10.0.0.100": "declined", "10.0.0.101": "bound"}
