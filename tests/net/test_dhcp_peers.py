"""DHCP and NAT against independent implementations: iPXE in a QEMU guest
and busybox ``udhcpc`` as clients of our server, ``dnsmasq`` as the server
of our client, and the Linux kernel's ``http.server`` downloaded from
through our NAT.

The topologies::

    (a) QEMU PC, iPXE on an e1000 ==UdpWire 127.0.0.1== gw 10.0.2.1/24: dhcp_server, rtadvd
    (b) udhcpc (namespace) ==TAP== gw 10.0.3.1/24: dhcp_server
    (c) dnsmasq 10.0.4.1/24 (namespace) ==TAP== h: dhclient
    (d) h1 10.0.5.2/24 --memory-- 10.0.5.1/24 gw 172.20.6.1/24 (NAT out) ==TAP== 172.20.6.2/24 http.server (namespace)

What iPXE (1.0.0+git-20190125 in Debian's ipxe-qemu) does, which (a)
relies on: ~2 s after QEMU starts it sends DISCOVER with the broadcast bit
clear (so our offer goes by unicast to the offered address, our ARP entry
taught by the server), a second DISCOVER a second later (it waits ~3 s
for ProxyDHCP offers) and REQUEST at ~5 s. It then waits for IPv6 router
advertisements too: without any it prints "Configuring ... ok" only ~13 s
later, with our ``rtadvd`` at once. With ``next_server`` our own address
(no TFTP server: our port unreachable is ignored) it tries TFTP for ~16 s,
answering pings all along, then gives up ("Connection timed out", "No more
network devices") and hands back to the BIOS, and stops answering.

Network safety: the namespaces (private addresses only) and their TAP
devices are created by each test and removed however it ends; QEMU talks
only to 127.0.0.1. Every wait is bounded by ``trio.fail_after``; every
program is killed when its test ends.
"""

from __future__ import annotations

import hashlib
import random
import re
import time
from pathlib import Path

import pytest
import trio

import trionet
from trionet.drivers.vnic import Vnic
from trionet.testing import command_unavailable, file_unavailable, linux_peer_unavailable
from trionet.wires import UdpWire

from dhcp_peers import (
    IPXE_ROM,
    dnsmasq,
    free_udp_port,
    http_get,
    http_server,
    names,
    netns,
    process,
    qemu_ipxe_argv,
    udhcpc,
    wait_for_text,
)
from kernel_commands import run

pytestmark = pytest.mark.integration


def skip_unless(reason: str | None) -> pytest.MarkDecorator:
    return pytest.mark.skipif(reason is not None, reason=reason or "")


QEMU_REASON = command_unavailable("qemu-system-x86_64") or file_unavailable(IPXE_ROM, "ipxe-qemu")


####################################################################
# (a) iPXE in QEMU, our server
####################################################################

GUEST_MAC = "52:54:00:12:34:56"


@skip_unless(QEMU_REASON)
async def test_ipxe_in_qemu_gets_a_lease_and_answers_ping(tmp_path: Path) -> None:
    """A diskless QEMU PC boots iPXE from its NIC: it takes a lease from
    ``dhcp_server`` (shown bound, with the guest's MAC, in
    ``dhcp_leases``), answers three pings out of three, and says on its
    console that it took our mask, router, next server and boot file."""
    started = time.monotonic()
    console = tmp_path / "console.txt"
    async with (
        trionet.open_host("gw") as gw,
        UdpWire(("127.0.0.1", 9), local=("127.0.0.1", 0)) as wire,
    ):
        wire.peer = ("127.0.0.1", free_udp_port())
        ifp = await gw.if_attach(Vnic(wire))
        await gw.ifup(ifp)
        gw.ifconfig(ifp.name, "10.0.2.1/24")
        gw.dhcp_server(
            ifp.name, pool="10.0.2.100-10.0.2.199", router="10.0.2.1", dns=["10.0.2.1"],
            next_server="10.0.2.1", boot_file="pxelinux.0",
        )  # fmt: skip
        # iPXE also waits for IPv6 router advertisements: give it one at
        # once (without, it sits ~13 s in "Configuring").
        gw.sysctl("net.inet6.ip6.forwarding", 1)
        gw.rtadvd(ifp.name, prefix="fd00:2::/64")
        argv = qemu_ipxe_argv(GUEST_MAC, wire.peer[1], wire.local_address[1])
        async with process(argv, console) as qemu:
            with trio.fail_after(20):
                while not (rows := [r for r in gw.dhcp_leases() if r.lladdr == GUEST_MAC and r.state == "bound"]):
                    assert qemu.returncode is None, console.read_text(errors="replace")
                    await trio.sleep(0.1)
            (lease,) = rows
            assert lease.address in {f"10.0.2.{n}" for n in range(100, 200)}
            assert lease.ifname == ifp.name and 3500 < lease.expires <= 3600
            with trio.fail_after(10):
                result = await gw.ping(lease.address, count=3, interval=0.2, timeout=1)
            assert (result.sent, result.received) == (3, 3), result
            seen = await wait_for_text(console, "Filename: pxelinux.0", qemu, timeout=10)
            assert f"net0: {lease.address}/255.255.255.0 gw 10.0.2.1" in seen, seen
            assert "Next server: 10.0.2.1" in seen, seen
    assert time.monotonic() - started < 30


####################################################################
# (b) busybox udhcpc, our server
####################################################################


@skip_unless(linux_peer_unavailable("busybox"))
async def test_udhcpc_gets_the_address_router_and_dns_we_offer(tmp_path: Path) -> None:
    """busybox ``udhcpc`` in a namespace gets a lease from ``dhcp_server``
    through a TAP device: its script is given the address, mask, router,
    DNS servers, domain, lease time and MTU we offered, and the lease shows
    bound with the device's MAC."""
    ns, dev = names("udhcpc")
    async with netns(ns), trionet.open_network(seed=2) as net:
        gw = await net.add_host("gw")
        link = await net.tap_link(gw, device=dev, netns=ns)
        ifname = link.ends[0].name
        gw.ifconfig(ifname, "10.0.3.1/24")
        gw.dhcp_server(
            ifname, pool="10.0.3.50-10.0.3.59", router="10.0.3.1", dns=["10.0.3.53", "10.0.3.54"],
            domain="lab.test", lease_time=1200, mtu=1400,
        )  # fmt: skip
        with trio.fail_after(20):
            got = await udhcpc(ns, dev, tmp_path)
        assert got["ip"] in {f"10.0.3.{n}" for n in range(50, 60)}, got
        assert (got["subnet"], got["mask"], got["router"]) == ("255.255.255.0", "24", "10.0.3.1"), got
        assert got["dns"].split() == ["10.0.3.53", "10.0.3.54"], got
        assert (got["domain"], got["lease"], got["serverid"], got["mtu"]) == ("lab.test", "1200", "10.0.3.1", "1400")
        mac = await _ns_mac(ns, dev)
        (row,) = gw.dhcp_leases()
        assert (row.address, row.lladdr, row.state) == (got["ip"], mac, "bound")


async def _ns_mac(ns: str, dev: str) -> str:
    out = (await run("ip", "-n", ns, "-o", "link", "show", dev)).stdout.decode()
    match = re.search(r"link/ether ([0-9a-f:]{17})", out)
    assert match, out
    return match.group(1)


####################################################################
# (c) dnsmasq, our client
####################################################################


@skip_unless(linux_peer_unavailable("dnsmasq", "ping"))
async def test_dhclient_gets_a_lease_from_dnsmasq(tmp_path: Path) -> None:
    """``dhclient`` against ``dnsmasq`` in a namespace, through a TAP
    device: bound with an address of dnsmasq's range (on the interface),
    its router as our default route, its first DNS server as our
    resolver; dnsmasq's lease file has our MAC, address and hostname, and
    the kernel reaches us at the address."""
    ns, dev = names("dnsmasq")
    async with netns(ns), trionet.open_network(seed=3) as net:
        h = await net.add_host("h")
        link = await net.tap_link(h, device=dev, netns=ns, address="10.0.4.1/24")
        ifname = link.ends[0].name
        async with dnsmasq(
            ns, dev, tmp_path, dhcp_range="10.0.4.50,10.0.4.59,255.255.255.0,1h", router="10.0.4.1",
            dns=["10.0.4.53", "10.0.4.54"], domain="lab.test",
        ) as leases:  # fmt: skip
            client = h.dhclient(ifname, hostname="tnclient")
            with trio.fail_after(15):
                lease = await client.wait_bound()
            assert client.state == "BOUND"
            address = lease.address.split("/")[0]
            assert address in {f"10.0.4.{n}" for n in range(50, 60)}, lease
            assert lease.address.endswith("/24")
            assert (lease.routers, lease.dns, lease.domain, lease.server) == (
                ("10.0.4.1",), ("10.0.4.53", "10.0.4.54"), "lab.test", "10.0.4.1"
            )
            assert 3500 < lease.expires <= 3600
            assert lease.address in h.ifconfig(ifname).inet
            default = [r for r in h.netstat_r() if r.family == "inet" and r.destination == "default"]
            assert [(r.gateway, r.netif) for r in default] == [("10.0.4.1", ifname)], h.netstat_r()
            assert h.resolver == "10.0.4.53"
            mac = ":".join(f"{b:02x}" for b in h.ifconfig(ifname).lladdr)
            with trio.fail_after(5):
                while not leases.exists() or mac not in leases.read_text():
                    await trio.sleep(0.05)
            (line,) = leases.read_text().splitlines()
            assert line.split()[1:4] == [mac, address, "tnclient"], line
            pinged = await run("ip", "netns", "exec", ns, "ping", "-c", "2", "-W", "2", "-i", "0.2", address, check=False)
            assert b"2 received" in pinged.stdout, pinged.stdout


####################################################################
# (d) NAT
####################################################################


@skip_unless(linux_peer_unavailable())
async def test_nat_download_from_a_namespace_that_sees_only_the_gateway(tmp_path: Path) -> None:
    """h1 (10.0.5.2) downloads 300 KB through gw, which masquerades out of
    its TAP interface, from ``http.server`` in a namespace that has no
    route to 10.0.5.0/24: without NAT the connection cannot even open;
    with it the body has the same SHA-256, and the server logged the
    request as coming from gw's outside address, 172.20.6.1."""
    blob = random.Random(5).randbytes(300_000)
    www = tmp_path / "www"
    www.mkdir()
    (www / "blob.bin").write_bytes(blob)
    ns, dev = names("nat")
    async with netns(ns), trionet.open_network(seed=4) as net:
        h1 = await net.add_host("h1")
        gw = await net.add_host("gw")
        inside = await net.link(h1, gw)
        h1.ifconfig(inside.ends[0].name, "10.0.5.2/24")
        gw.ifconfig(inside.ends[1].name, "10.0.5.1/24")
        h1.route_add("default", "10.0.5.1")
        outside = await net.tap_link(gw, device=dev, netns=ns, address="172.20.6.2/24")
        out_if = outside.ends[0].name
        gw.ifconfig(out_if, "172.20.6.1/24")
        gw.sysctl("net.inet.ip.forwarding", 1)
        async with http_server(ns, "172.20.6.2", 8080, www, tmp_path / "http.log") as log:
            # The control: forwarded but not translated, the SYN reaches the
            # namespace from 10.0.5.2, which it has no route back to.
            with trio.move_on_after(2) as control:
                await h1.open_tcp_stream("172.20.6.2", 8080)
            assert control.cancelled_caught
            gw.nat(out_if)
            head, body = await http_get(h1, "172.20.6.2", 8080, "/blob.bin")
            assert head.startswith(b"HTTP/1.0 200"), head
            assert hashlib.sha256(body).hexdigest() == hashlib.sha256(blob).hexdigest()
            requests = [line for line in log.read_text().splitlines() if "GET /blob.bin" in line]
            assert len(requests) == 1 and requests[0].startswith("172.20.6.1 - - "), log.read_text()
            assert "10.0.5.2" not in log.read_text()
            assert gw.nat_table(), "no NAT connection"
