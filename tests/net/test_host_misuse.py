"""A host used wrongly says so: arguments of the wrong type or out of range
are refused with a message naming them, and a host that is shut down
(removed from its network, or after ``open_network`` has exited) refuses
every call that acts, with :exc:`trio.ClosedResourceError`, while its views
still answer. Also: ``ping`` past 65536 requests, whose ICMP sequence
numbers wrap."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import structlog
import trio
import trio.testing

import trionet
from trionet import Host, IfFlags
from trionet._net._icmp import _Ping
from trionet.drivers.vnic import Vnic
from trionet.wires import memory_pair

#: ICMP echo sequence numbers are 16 bits.
SEQ_MOD = 65536


@asynccontextmanager
async def two_hosts() -> AsyncIterator[tuple[trionet.Network, Host, Host]]:
    """h1 10.0.0.1/24 --- 10.0.0.2/24 h2."""
    async with trionet.open_network(seed=1) as net:
        h1, h2 = await net.add_host("h1"), await net.add_host("h2")
        link = await net.link(h1, h2)
        h1.ifconfig(link.ends[0].name, "10.0.0.1/24")
        h2.ifconfig(link.ends[1].name, "10.0.0.2/24")
        yield net, h1, h2


####################################################################
# ifconfig's address
####################################################################


@pytest.mark.parametrize(
    "address",
    [5, 167772161, b"\x0a\x00\x00\x01", ipaddress.IPv4Interface("10.0.0.5/24"), ("10.0.0.5", 24)],
    ids=["small-int", "int", "bytes", "IPv4Interface", "tuple"],
)
async def test_ifconfig_takes_only_an_address_string(
    autojump_clock: trio.testing.MockClock, address: Any
) -> None:
    # ipaddress would take 5 as 0.0.0.5/32 and 4 bytes as an address.
    async with two_hosts() as (_, h1, _h2):
        with pytest.raises(TypeError, match=r"address must be a str such as '10\.0\.0\.1/24', not "):
            h1.ifconfig("vnic0", address)
        with pytest.raises(TypeError):
            h1.ifconfig("vnic0", address, delete=True)
        assert [str(ia) for ia in h1.ifunit("vnic0").addrs] == ["10.0.0.1/24"]


####################################################################
# a host that is shut down
####################################################################


async def _stream(host: Host) -> None:
    await host.open_tcp_stream("127.0.0.1", 7)


async def _serve(host: Host) -> None:
    async def handler(stream: trionet.TcpStream) -> None:
        pass

    await host.serve_tcp(handler, 7)


async def _attach(host: Host) -> None:
    near, _far = memory_pair()
    await host.if_attach(Vnic(near))


async def _thread(thread: object) -> None:
    pass


#: Every public call of a Host that acts, on its loopback interface (which
#: stays attached when the host is shut down, where its links' vnics go).
ACTS: dict[str, Callable[[Host], object]] = {
    "ifconfig add": lambda h: h.ifconfig("lo0", "10.0.9.1/24"),
    "ifconfig delete": lambda h: h.ifconfig("lo0", "127.0.0.1/8", delete=True),
    "route_add": lambda h: h.route_add("10.1.0.0/16", ifname="lo0"),
    "route_delete": lambda h: h.route_delete("127.0.0.0/8"),
    "sysctl set": lambda h: h.sysctl("net.inet.ip.forwarding", 1),
    "udp_socket": lambda h: h.udp_socket(),
    "open_tcp_stream": _stream,
    "open_tcp_listeners": lambda h: h.open_tcp_listeners(7),
    "serve_tcp": _serve,
    "ping": lambda h: h.ping("127.0.0.1", count=1),
    "ifup": lambda h: h.ifup(h.ifunit("lo0")),
    "ifdown": lambda h: h.ifdown(h.ifunit("lo0")),
    "ifioctl": lambda h: h.ifioctl(h.ifunit("lo0"), trionet.IfIoctl.SIOCSIFMTU, 1400),
    "ifpromisc": lambda h: h.ifpromisc(h.ifunit("lo0"), True),
    "if_allmulti": lambda h: h.if_allmulti(h.ifunit("lo0"), True),
    "if_attach": _attach,
    "if_detach": lambda h: h.if_detach(h.ifunit("lo0")),
    "kthread_create": lambda h: h.kthread_create("idle", _thread),
    "netmsg_service_sync": lambda h: h.netmsg_service_sync(),
}


async def call(fn: Callable[[Host], object], host: Host) -> None:
    # Bounded: before the fix, some of these waited forever on a shut-down host.
    with trio.fail_after(600):
        result = fn(host)
        if isinstance(result, Awaitable):
            await result


@pytest.mark.parametrize("name", ACTS)
async def test_a_removed_host_refuses_every_call_that_acts(
    autojump_clock: trio.testing.MockClock, name: str
) -> None:
    async with two_hosts() as (net, h1, _h2):
        await net.remove_host("h1")
        with pytest.raises(trio.ClosedResourceError, match="host 'h1' is shut down"):
            await call(ACTS[name], h1)


@pytest.mark.parametrize("name", ACTS)
async def test_after_open_network_exits_every_call_that_acts_is_refused(
    autojump_clock: trio.testing.MockClock, name: str
) -> None:
    async with two_hosts() as (_, h1, _h2):
        pass
    with pytest.raises(trio.ClosedResourceError, match="host 'h1' is shut down"):
        await call(ACTS[name], h1)


async def test_a_shut_down_host_still_shows_what_it_had(autojump_clock: trio.testing.MockClock) -> None:
    async with two_hosts() as (net, h1, _h2):
        h1.sysctl("net.inet.ip.forwarding", 1)
        await net.remove_link(net.links[0])
        before = (h1.ifconfig(), h1.netstat_r(), h1.netstat_i(), h1.netstat(), h1.ps())
        await net.remove_host("h1")
        assert (h1.ifconfig(), h1.netstat_r(), h1.netstat_i(), h1.netstat()) == before[:4]
        assert h1.ifconfig("lo0").name == "lo0"
        assert h1.sysctl("net.inet.ip.forwarding") == 1
        assert h1.ifunit("lo0").flags & IfFlags.UP
        assert h1.ps() == []  # its threads are gone
        h1.vmstat_i()


async def test_a_closed_network_refuses_to_add_or_remove(autojump_clock: trio.testing.MockClock) -> None:
    async with two_hosts() as (net, h1, h2):
        link = net.links[0]
    attempts: list[Callable[[], object]] = [
        lambda: net.add_host("h3"),
        lambda: net.add_switch("sw0"),
        lambda: net.link(h1, h2),
        lambda: net.remove_link(link),
        lambda: net.remove_host("h1"),
    ]
    for attempt in attempts:
        with pytest.raises(trio.ClosedResourceError, match="the network is shut down"):
            result = attempt()
            if isinstance(result, Awaitable):
                await result


####################################################################
# ping's arguments
####################################################################


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"ttl": 300}, ValueError, "ttl must be an int from 0 to 255, not 300"),
        ({"ttl": -1}, ValueError, "ttl must be an int from 0 to 255, not -1"),
        ({"ttl": 64.0}, TypeError, "ttl must be an int from 0 to 255, not 64.0"),
        ({"count": 0}, ValueError, "count must be an int >= 1, not 0"),
        ({"count": "3"}, TypeError, "count must be an int >= 1, not '3'"),
        ({"count": True}, TypeError, "count must be an int >= 1, not True"),
        ({"size": 65500}, ValueError, "size must be an int from 0 to 65499, not 65500"),
        ({"size": -1}, ValueError, "size must be an int from 0 to 65499, not -1"),
        ({"timeout": 0}, ValueError, "timeout must be a number of seconds > 0, not 0"),
        ({"timeout": float("nan")}, ValueError, "timeout must be a number of seconds > 0, not nan"),
        ({"timeout": "1"}, TypeError, "timeout must be a number of seconds > 0, not '1'"),
        ({"interval": -0.5}, ValueError, "interval must be a number of seconds >= 0, not -0.5"),
    ],
)
async def test_ping_names_the_argument_out_of_range(
    autojump_clock: trio.testing.MockClock, options: dict[str, Any], error: type[Exception], message: str
) -> None:
    async with two_hosts() as (_, h1, _h2):
        with pytest.raises(error) as info:
            await h1.ping("10.0.0.2", **options)
        assert str(info.value) == message
        # Nothing was sent.
        assert h1.inet.icmp.statistics().received == 0 and not h1.inet.icmp.statistics().drops


async def test_ping_takes_the_edges_of_each_range(autojump_clock: trio.testing.MockClock) -> None:
    async with two_hosts() as (_, h1, _h2):
        for options in ({"ttl": 255}, {"ttl": 1}, {"size": 65499}, {"size": 0}, {"interval": 0}):
            result = await h1.ping("10.0.0.2", count=1, **options)
            assert result.received == 1, options


####################################################################
# ping's sequence numbers
####################################################################


@pytest.mark.slow
async def test_a_ping_past_65536_requests_wraps_its_sequence_numbers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Request 65536 carries sequence number 0 again, as in BSD ping; every
    # reply still counts for its own request. (Over loopback, the cheapest
    # path: several seconds of real time for 2 x 65538 packets.)
    count = SEQ_MOD + 2
    with structlog.testing.capture_logs():
        async with trionet.open_network(seed=1) as net:
            host = await net.add_host("h")
            result = await host.ping("127.0.0.1", count=count, interval=0)
            icmp = host.inet.icmp.statistics()
    assert (result.sent, result.received, len(result.rtts), result.errors) == (count, count, count, ())
    assert icmp.echo_requests == icmp.echo_replies == count
    assert "unexpected_reply" not in icmp.drops


def test_after_a_wrap_an_answer_goes_to_the_oldest_request_still_waiting() -> None:
    ping = _Ping(timeout=1.0)
    ping.sent(0, now=0.0)
    ping.sent(1, now=0.0)
    ping.sent(SEQ_MOD, now=0.5)  # sequence number 0 again; request 0 still waits
    assert ping.claim(0, now=0.6) == 0
    assert ping.claim(0, now=0.7) == SEQ_MOD
    assert ping.claim(0, now=0.8) is None  # a duplicate
    assert ping.claim(1, now=0.8) == 1


def test_after_a_wrap_a_request_past_its_timeout_is_passed_over() -> None:
    ping = _Ping(timeout=1.0)
    ping.sent(0, now=0.0)  # lost
    ping.sent(SEQ_MOD, now=1.5)
    assert ping.claim(0, now=1.6) == SEQ_MOD
    # A late answer with no request in time goes to the newest (and will
    # not count: its round trip is over the timeout).
    ping.sent(2 * SEQ_MOD, now=2.0)
    assert ping.claim(0, now=3.5) == 2 * SEQ_MOD
    assert ping.claim(0, now=3.6) == 0
