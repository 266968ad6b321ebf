"""What a DHCP server or client needs of UDP sockets: the destination and
arrival interface of a datagram (``recvmsg``), sending on a named interface
(``sendmsg(ifname=)``, ``bind_device``, ``SO_BINDTODEVICE``), broadcasts from
an interface with no address, and a learned ARP entry for a client.

    a 10.0.1.1 --- 10.0.1.2 r 10.0.2.2 --- 10.0.2.3 b      (r: two interfaces)
    c (no address) --- r's third interface 10.0.3.2
"""

from __future__ import annotations

import errno
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import pytest
import trio
import trio.testing

import trionet
from trionet import NetError

from cancel_points import cancel_after, each_checkpoint


@asynccontextmanager
async def _star() -> AsyncIterator[dict[str, Any]]:
    async with trionet.open_network(seed=1) as net:
        a, r, b, c = [await net.add_host(n) for n in ("a", "r", "b", "c")]
        la = await net.link(a, r, delay=0.001)
        lb = await net.link(r, b, delay=0.001)
        lc = await net.link(c, r, delay=0.001)
        a.ifconfig(la.ends[0].name, "10.0.1.1/24")
        r.ifconfig(la.ends[1].name, "10.0.1.2/24")
        r.ifconfig(lb.ends[0].name, "10.0.2.2/24")
        b.ifconfig(lb.ends[1].name, "10.0.2.3/24")
        r.ifconfig(lc.ends[1].name, "10.0.3.2/24")
        b.route_add("default", "10.0.2.2")
        yield {
            "net": net, "a": a, "r": r, "b": b, "c": c,
            "r_a": la.ends[1].name, "r_b": lb.ends[0].name, "r_c": lc.ends[1].name,
            "c_if": lc.ends[0].name, "b_if": lb.ends[1].name,
        }


async def test_recvmsg_tells_destination_and_arrival_interface(autojump_clock: trio.testing.MockClock) -> None:
    async with _star() as n:
        server = n["r"].udp_socket()
        server.bind(("0.0.0.0", 67))
        a = n["a"].udp_socket()
        a.broadcast = True
        await a.sendto(b"unicast", ("10.0.1.2", 67))
        await a.sendto(b"limited", ("255.255.255.255", 67))
        await a.sendto(b"subnet", ("10.0.1.255", 67))
        b = n["b"].udp_socket()
        await b.sendto(b"other side", ("10.0.1.2", 67))  # to r's address on the a link
        with trio.fail_after(5):
            got = [await server.recvmsg() for _ in range(4)]
        port = a.getsockname()[1]
        # (The unicast waits for ARP: the broadcasts overtake it.)
        seen = {d.data: (d.address, d.destination, d.ifname) for d in got}
        assert seen == {
            b"unicast": (("10.0.1.1", port), ("10.0.1.2", 67), n["r_a"]),
            b"limited": (("10.0.1.1", port), ("255.255.255.255", 67), n["r_a"]),
            b"subnet": (("10.0.1.1", port), ("10.0.1.255", 67), n["r_a"]),
            b"other side": (("10.0.2.3", b.getsockname()[1]), ("10.0.1.2", 67), n["r_b"]),
        }


async def test_a_socket_bound_to_a_device_hears_only_that_interface(autojump_clock: trio.testing.MockClock) -> None:
    async with _star() as n:
        r = n["r"]
        on_b = r.udp_socket()
        on_b.bind(("0.0.0.0", 67))
        on_b.bind_device(n["r_b"])
        a, b = n["a"].udp_socket(), n["b"].udp_socket()
        await a.sendto(b"from a", ("10.0.1.2", 67))
        await b.sendto(b"from b", ("10.0.2.2", 67))
        with trio.fail_after(5):
            got = await on_b.recvmsg()
        assert (got.data, got.ifname) == (b"from b", n["r_b"])
        with trio.move_on_after(5):
            await on_b.recv()
            pytest.fail("a datagram from another interface reached the socket")
        assert r.inet.udp.statistics().drops["noport"] == 1  # a's, answered port unreachable
        on_b.bind_device(None)
        await a.sendto(b"again", ("10.0.1.2", 67))
        with trio.fail_after(5):
            assert (await on_b.recvmsg()).ifname == n["r_a"]
        with pytest.raises(NetError) as info:
            on_b.bind_device("vnic99")
        assert info.value.errno == errno.ENXIO


async def test_a_broadcast_leaves_on_the_named_interface(autojump_clock: trio.testing.MockClock) -> None:
    # Without an interface it would leave on the first with an address (the a link).
    async with _star() as n:
        heard = {}
        for name in ("a", "b"):
            sock = n[name].udp_socket()
            sock.bind(("0.0.0.0", 68))
            heard[name] = sock
        server = n["r"].udp_socket()
        server.bind(("0.0.0.0", 67))
        server.broadcast = True
        await server.sendmsg(b"offer", ("255.255.255.255", 68), ifname=n["r_b"])
        with trio.fail_after(5):
            got = await heard["b"].recvmsg()
        assert (got.data, got.address, got.destination) == (b"offer", ("10.0.2.2", 67), ("255.255.255.255", 68))
        with trio.move_on_after(5):
            await heard["a"].recv()
            pytest.fail("the broadcast left on another interface")
        with pytest.raises(PermissionError):  # EACCES without SO_BROADCAST, on any interface
            server.broadcast = False
            await server.sendmsg(b"x", ("255.255.255.255", 68), ifname=n["r_b"])
        with pytest.raises(NetError) as info:
            await server.sendmsg(b"x", ("10.0.2.3", 68), ifname="vnic99")
        assert info.value.errno == errno.ENXIO


async def test_an_interface_without_an_address_broadcasts_from_0_0_0_0(autojump_clock: trio.testing.MockClock) -> None:
    async with _star() as n:
        server = n["r"].udp_socket()
        server.bind(("0.0.0.0", 67))
        client = n["c"].udp_socket()
        client.bind(("0.0.0.0", 68))
        client.broadcast = True
        with pytest.raises(NetError) as info:  # no address, no interface: nowhere to go
            await client.sendto(b"discover", ("255.255.255.255", 67))
        assert info.value.errno == errno.ENETUNREACH
        client.bind_device(n["c_if"])
        await client.sendto(b"discover", ("255.255.255.255", 67))
        with trio.fail_after(5):
            got = await server.recvmsg()
        assert (got.data, got.address, got.destination, got.ifname) == (
            b"discover", ("0.0.0.0", 68), ("255.255.255.255", 67), n["r_c"]
        )
        # The server's broadcast answer reaches the client before it has an address.
        server.broadcast = True
        await server.sendmsg(b"offer", ("255.255.255.255", 68), ifname=got.ifname)
        with trio.fail_after(5):
            answer = await client.recvmsg()
        assert (answer.data, answer.ifname) == (b"offer", n["c_if"])
        # A unicast from no address has no source to use.
        with pytest.raises(NetError) as info:
            await client.sendto(b"x", ("10.0.3.2", 67))
        assert info.value.errno == errno.EADDRNOTAVAIL


async def test_a_learned_arp_entry_reaches_a_client_without_a_request(autojump_clock: trio.testing.MockClock) -> None:
    async with _star() as n:
        r, b = n["r"], n["b"]
        mac = b.ifunit(n["b_if"]).lladdr
        r.inet.arp.learn(bytes([10, 0, 2, 3]), mac)
        (row,) = [row for row in r.arp() if row.address == "10.0.2.3"]
        assert (row.lladdr, row.permanent, row.netif) == (mac.hex(":"), False, n["r_b"])
        assert row.expires is not None and row.expires > 0
        rx = b.udp_socket()
        rx.bind(("0.0.0.0", 68))
        tx = r.udp_socket()
        await tx.sendmsg(b"ack", ("10.0.2.3", 68), ifname=n["r_b"])
        with trio.fail_after(5):
            assert await rx.recv() == b"ack"
        assert r.inet.arp.cache.statistics().requests == 0
        # A static entry is not replaced by a learned one.
        r.arp_add("10.0.2.9", "02:00:00:00:00:09")
        r.inet.arp.learn(bytes([10, 0, 2, 9]), bytes.fromhex("020000000010"))
        assert [row.lladdr for row in r.arp() if row.address == "10.0.2.9"] == ["02:00:00:00:00:09"]
        with pytest.raises(ValueError):
            r.inet.arp.learn(bytes([10, 0, 2, 3]), b"\x01" * 6)


async def test_so_bindtodevice_on_a_trio_socket(autojump_clock: trio.testing.MockClock) -> None:
    import socket as stdlib_socket

    async with _star() as n:
        n["net"].install_trio_sockets()
        with n["r"].as_current():
            sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        assert isinstance(sock, trionet.TrioSocket)
        sock.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_BROADCAST, 1)
        sock.setsockopt(stdlib_socket.SOL_SOCKET, 25, n["r_b"].encode() + b"\0")
        await sock.bind(("0.0.0.0", 67))
        rx = n["b"].udp_socket()
        rx.bind(("0.0.0.0", 68))
        await sock.sendto(b"hi", ("255.255.255.255", 68))
        with trio.fail_after(5):
            assert await rx.recv() == b"hi"
        with pytest.raises(OSError) as info:
            sock.setsockopt(stdlib_socket.SOL_SOCKET, 25, b"vnic99\0")
        assert info.value.errno == errno.ENXIO
        sock.setsockopt(stdlib_socket.SOL_SOCKET, 25, b"")  # unbind
        assert sock._udp._device is None
        sock.close()


async def test_recvmsg_cancelled_at_each_checkpoint_loses_nothing(autojump_clock: trio.testing.MockClock) -> None:
    for k, done in each_checkpoint():
        async with _star() as n:
            rx = n["r"].udp_socket()
            rx.bind(("0.0.0.0", 67))
            tx = n["a"].udp_socket()

            async def send() -> None:
                await trio.sleep(1)
                for d in (b"d1", b"d2"):
                    await tx.sendto(d, ("10.0.1.2", 67))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(send)
                outcome = await cancel_after(k, rx.recvmsg)
            got = [] if outcome.cancelled else [outcome.result.data]
            while len(got) < 2:
                got.append((await rx.recvmsg()).data)
            assert got == [b"d1", b"d2"], k
        done(outcome)


async def test_sendmsg_cancelled_at_each_checkpoint_sends_nothing(autojump_clock: trio.testing.MockClock) -> None:
    for k, done in each_checkpoint():
        async with _star() as n:
            rx = n["b"].udp_socket()
            rx.bind(("0.0.0.0", 68))
            tx = n["r"].udp_socket()
            outcome = await cancel_after(k, partial(tx.sendmsg, b"d1", ("10.0.2.3", 68), ifname=n["r_b"]))
            await tx.sendmsg(b"d2", ("10.0.2.3", 68), ifname=n["r_b"])
            got = [await rx.recv()]
            if got[-1] != b"d2":
                got.append(await rx.recv())
            assert got == ([b"d2"] if outcome.cancelled else [b"d1", b"d2"]), k
        done(outcome)
