"""A DNS server on a trionet host (``host.serve_dns``) and the stub
resolver of the others (``host.resolver``), in virtual time over a delayed
lossy link: A and PTR answers, NXDOMAIN, REFUSED, truncation to TCP,
FORMERR on garbage, the counters, and ``trio.socket.getaddrinfo`` through
it under ``host.as_current()``."""

from __future__ import annotations

import socket as stdlib_socket
from functools import partial

import pytest
import trio
import trio.testing

import trionet
from trionet.protocols import dns

pytestmark = pytest.mark.trio

NS, CLIENT = "10.0.0.53", "10.0.0.1"

ZONE = trionet.DnsZone(
    {
        "www": "10.0.2.2",
        "db": ["10.0.2.3", "10.0.2.4"],
        # 40 addresses: 16 + 40 * 16 bytes of answers, over 512.
        "big": [f"10.9.0.{i}" for i in range(1, 41)],
    },
    origin="lab",
)


async def _net(net: trionet.Network, **impairments: float) -> tuple[trionet.Host, trionet.Host]:
    ns1 = await net.add_host("ns1")
    client = await net.add_host("client")
    link = await net.link(ns1, client, delay=0.010, **impairments)
    ns1.ifconfig(link.ends[0].name, f"{NS}/24")
    client.ifconfig(link.ends[1].name, f"{CLIENT}/24")
    client.resolver = NS
    return ns1, client


async def test_resolve_a_ptr_nxdomain_and_truncation_over_a_lossy_link(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trionet.open_network(seed=3) as net:
        ns1, client = await _net(net, loss=0.05)
        async with trio.open_nursery() as nursery:
            server = await nursery.start(ns1.serve_dns, ZONE)
            assert isinstance(server, trionet.DnsServer)
            with trio.fail_after(600):
                assert await client.resolve("www.lab") == ["10.0.2.2"]
                assert await client.resolve("DB.Lab.") == ["10.0.2.3", "10.0.2.4"]
                big = await client.resolve("big.lab")
                assert big == [f"10.9.0.{i}" for i in range(1, 41)]
                with pytest.raises(stdlib_socket.gaierror) as info:
                    await client.resolve("nope.lab")
                assert info.value.errno == stdlib_socket.EAI_NONAME
                with pytest.raises(stdlib_socket.gaierror) as info:
                    await client.resolve("www.example.com")  # outside the zone: REFUSED
                assert info.value.errno == stdlib_socket.EAI_AGAIN
            nursery.cancel_scope.cancel()
        stats = server.statistics()
        assert stats.truncated >= 1
        assert stats.tcp_queries >= 1
        assert stats.nxdomain >= 1
        assert stats.errors >= 1  # the REFUSED
        assert stats.answers >= 3
        assert stats.drops == 0


async def test_answers_on_the_wire(autojump_clock: trio.testing.MockClock) -> None:
    # Asked with raw datagrams: what the server sends, byte for byte parsed.
    async with trionet.open_network(seed=1) as net:
        ns1, client = await _net(net)
        async with trio.open_nursery() as nursery:
            server = await nursery.start(ns1.serve_dns, ZONE)
            with client.udp_socket() as udp:

                async def ask(payload: bytes) -> dns.Message:
                    await udp.sendto(payload, (NS, 53))
                    with trio.fail_after(5):
                        data, peer = await udp.recvfrom()
                    assert peer == (NS, 53)
                    assert len(data) <= 512
                    return dns.Message.parse(data)

                r = await ask(dns.make_query(7, dns.reverse_name("10.0.2.3"), dns.RRType.PTR).emit())
                assert (r.id, r.qr, r.aa, r.rcode) == (7, True, True, dns.Rcode.NOERROR)
                assert r.answers[0].rdata == dns.PtrRdata("db.lab")
                r = await ask(dns.make_query(8, dns.reverse_name("10.7.7.7"), dns.RRType.PTR).emit())
                assert r.rcode == dns.Rcode.NXDOMAIN
                r = await ask(dns.make_query(9, "nope.lab", dns.RRType.A).emit())
                assert r.rcode == dns.Rcode.NXDOMAIN
                assert r.authorities[0].rtype == dns.RRType.SOA
                r = await ask(dns.make_query(10, "www.lab", dns.RRType.AAAA).emit())
                assert (r.rcode, r.answers) == (dns.Rcode.NOERROR, ())  # NODATA
                r = await ask(dns.make_query(11, "big.lab", dns.RRType.A).emit())
                assert r.tc and 0 < len(r.answers) < 40
                # Garbage with a header: FORMERR, same id.
                r = await ask(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xff\xff")
                assert (r.id, r.rcode, r.questions) == (0x1234, dns.Rcode.FORMERR, ())
                # Too short, or a response: dropped, and the server goes on.
                await udp.sendto(b"\x00\x01", (NS, 53))
                await udp.sendto(dns.make_response(dns.make_query(1, "www.lab", 1)).emit(), (NS, 53))
                await trio.testing.wait_all_tasks_blocked()
                r = await ask(dns.make_query(12, "www.lab", dns.RRType.A).emit())
                assert r.answers[0].rdata == dns.ARdata("10.0.2.2")
            # Over TCP: the whole answer; a bad frame closes the connection.
            stream = await client.open_tcp_stream(NS, 53)
            async with stream:
                await stream.send_all(dns.tcp_frame(dns.make_query(13, "big.lab", dns.RRType.A).emit()))
                deframer = dns.TcpDeframer()
                messages: list[bytes] = []
                with trio.fail_after(5):
                    while not messages:
                        messages = deframer.feed(await stream.receive_some())
                r = dns.Message.parse(messages[0])
                assert not r.tc and len(r.answers) == 40
                await stream.send_all(b"\x00\x03abc")
                with trio.fail_after(5):
                    assert await stream.receive_some() == b""
            nursery.cancel_scope.cancel()
        stats = server.statistics()
        assert stats == trionet.DnsServerStatistics(
            queries=8, tcp_queries=1, answers=4, nxdomain=2, nodata=1, errors=1, truncated=1, drops=3
        )


async def test_getaddrinfo_and_getnameinfo_through_the_server(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trionet.open_network(seed=2) as net:
        ns1, client = await _net(net, loss=0.1)
        net.install_trio_sockets()
        async with trio.open_nursery() as nursery:
            await nursery.start(ns1.serve_dns, ZONE)
            with client.as_current():
                infos = await trio.socket.getaddrinfo("www.lab", 80, type=stdlib_socket.SOCK_STREAM)
                assert infos[0][4] == ("10.0.2.2", 80)
                # The network's own table still comes first.
                infos = await trio.socket.getaddrinfo("ns1", 53)
                assert infos[0][4][0] == NS
                with pytest.raises(stdlib_socket.gaierror) as info:
                    await trio.socket.getaddrinfo("nope.lab", 80)
                assert info.value.errno == stdlib_socket.EAI_NONAME
                name, _ = await trio.socket.getnameinfo(("10.0.2.2", 80), stdlib_socket.NI_NAMEREQD)
                assert name == "www.lab"
            nursery.cancel_scope.cancel()


async def test_no_answer_is_eai_again_after_the_retries(autojump_clock: trio.testing.MockClock) -> None:
    async with trionet.open_network(seed=1) as net:
        _, client = await _net(net)
        client.resolver = "10.0.0.99"  # nobody there: ARP never answers
        start = trio.current_time()
        with pytest.raises(stdlib_socket.gaierror) as info:
            await client.resolve("www.lab")
        assert info.value.errno == stdlib_socket.EAI_AGAIN
        assert trio.current_time() - start == pytest.approx(10.0)  # 2 attempts of 5 s


async def test_no_resolver_is_eai_again(autojump_clock: trio.testing.MockClock) -> None:
    async with trionet.open_network(seed=1) as net:
        client = await net.add_host("client")
        with pytest.raises(stdlib_socket.gaierror) as info:
            await client.resolve("www.lab")
        assert info.value.errno == stdlib_socket.EAI_AGAIN


async def test_zone_names_and_errors() -> None:
    zone = trionet.DnsZone({"www": "10.0.2.2", "abs.lab.": ["10.0.2.5"]}, origin="lab")
    assert zone.addresses("WWW.lab") == ("10.0.2.2",)
    assert zone.addresses("abs.lab") == ("10.0.2.5",)
    assert zone.addresses("www") is None
    assert trionet.DnsZone({"www": "10.0.2.2"}).addresses("www") == ("10.0.2.2",)
    with pytest.raises(ValueError, match="outside"):
        trionet.DnsZone({"www.other.": "10.0.2.2"}, origin="lab")
    with pytest.raises(ValueError, match="twice"):
        trionet.DnsZone({"www": "10.0.2.2", "WWW": "10.0.2.3"})
    with pytest.raises(ValueError):
        trionet.DnsZone({"www": "10.0.2.300"})
    with pytest.raises(TypeError):
        trionet.DnsZone(["www"])  # type: ignore[arg-type]


async def test_bad_input_is_counted_and_never_stops_the_server(autojump_clock: trio.testing.MockClock) -> None:
    # Random bytes, mutated queries, many long questions, another opcode,
    # a silent TCP connection: each answered or dropped, and a good query
    # after them is still answered.
    import random

    rng = random.Random(16)
    good = dns.make_query(1, "www.lab", dns.RRType.A).emit()
    long_name = ".".join(["a" * 63] * 3)
    many = dns.Message(id=2, questions=[dns.Question(long_name, 1)] * 10).emit()
    notify = dns.Message(id=3, opcode=dns.Opcode.NOTIFY, questions=[dns.Question(long_name, 6)] * 5).emit()
    payloads = [many, notify]
    for _ in range(300):
        if rng.random() < 0.5:
            payloads.append(rng.randbytes(rng.randrange(0, 80)))
        else:
            mutated = bytearray(good)
            for _ in range(rng.randrange(1, 4)):
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            payloads.append(bytes(mutated[: rng.randrange(len(mutated) + 1)]))
    answered = 0
    async with trionet.open_network(seed=1) as net:
        ns1, client = await _net(net)
        async with trio.open_nursery() as nursery:
            server = await nursery.start(ns1.serve_dns, ZONE)
            idle = await client.open_tcp_stream(NS, 53)
            with client.udp_socket() as udp:
                for payload in payloads:
                    await udp.sendto(payload, (NS, 53))
                    await trio.sleep(0.05)  # more than the link's 20 ms round trip (virtual time)
                    while udp.is_readable():
                        data, _ = await udp.recvfrom()
                        assert len(data) <= 512
                        dns.Message.parse(data)  # every answer is well formed
                        answered += 1
            for payload in payloads[:50]:
                stream = await client.open_tcp_stream(NS, 53)
                async with stream:
                    # Framed when a frame can hold it; else bytes that break the framing.
                    await stream.send_all(dns.tcp_frame(payload) if len(payload) >= 12 else payload)
                    await stream.send_eof()
                    with trio.fail_after(30):
                        while await stream.receive_some():
                            pass
            with trio.fail_after(30):
                assert await idle.receive_some() == b""  # closed after 10 s of silence
            await idle.aclose()
            assert await client.resolve("www.lab") == ["10.0.2.2"]
            nursery.cancel_scope.cancel()
        stats = server.statistics()
        assert stats.drops > 0 and stats.errors > 0
        assert answered > 100
        assert stats.tcp_queries > 0
        assert stats.queries - stats.tcp_queries - 1 == answered  # 1: the last resolve
        assert stats.queries - stats.tcp_queries - 1 + stats.drops >= len(payloads)


async def test_a_cancelled_resolve_leaves_no_socket(autojump_clock: trio.testing.MockClock) -> None:
    # Cancelled at each of its checkpoints in turn (UDP, then TCP for the
    # truncated answer): no UDP port stays bound, and the next call works.
    from cancel_points import cancel_after, each_checkpoint

    async with trionet.open_network(seed=1) as net:
        ns1, client = await _net(net)
        async with trio.open_nursery() as nursery:
            await nursery.start(ns1.serve_dns, ZONE)
            runs = 0
            for k, done in each_checkpoint():
                out = await cancel_after(k, partial(client.resolve, "big.lab"))
                assert client.inet.udp._ports == {}
                if not out.cancelled:
                    assert len(out.result) == 40
                done(out)
                runs += 1
            assert runs > 5
            await trio.sleep(300)  # the cancelled connections finish closing
            assert client.netstat() == []
            nursery.cancel_scope.cancel()
