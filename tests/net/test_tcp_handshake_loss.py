"""A handshake whose final ACK is lost, between two trionet hosts (virtual time).

The client is ESTABLISHED once the SYN-ACK arrives; the server is not
until the client's ACK of it does. When that ACK is lost and the client has
nothing to send (the server speaks first: SMTP, SSH, FTP), only the
server's retransmitted SYN-ACK can repair it, and only if the client answers
it (issue 13). The test topology::

    a 198.18.0.1/24 ==TcpDropper==MemoryWire== 198.18.0.2/24 b

where the dropper on ``a``'s side loses the final ACK of every handshake
``a`` makes. The same against the Linux kernel is in ``test_tcp_linux.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio
import trio.testing

import trionet
from trionet.drivers.vnic import Vnic
from trionet.protocols.tcp import TcpFlags
from trionet.wires import MemoryWire

from clog import clogged_both_ways
from tcp_dropper import TcpDropper, final_handshake_acks

CLIENT, SERVER = "198.18.0.1", "198.18.0.2"
BANNER = b"220 b.example ESMTP trionet\r\n"


@asynccontextmanager
async def lossy_pair() -> AsyncIterator[tuple[trionet.Host, trionet.Host, TcpDropper]]:
    """Hosts ``a`` and ``b`` joined by a 1 ms wire that loses ``a``'s final handshake ACKs."""
    async with MemoryWire(name="a-b", delay=0.001) as wire, trionet.open_network(seed=13) as net:
        a = await net.add_host("a")
        b = await net.add_host("b")
        dropper = TcpDropper(wire.endpoint("a-b.a"), final_handshake_acks())
        for host, ep, addr in ((a, dropper, CLIENT), (b, wire.endpoint("a-b.b"), SERVER)):
            ifp = await host.if_attach(Vnic(ep))
            await host.ifup(ifp)
            host.ifconfig(ifp.name, f"{addr}/24")
        yield a, b, dropper


async def test_accept_returns_and_the_banner_arrives_though_the_final_ack_was_lost(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with lossy_pair() as (a, b, dropper):
        (listener,) = await b.open_tcp_listeners(25)
        accepted_at: list[float] = []

        async def server() -> None:
            stream = await listener.accept()
            accepted_at.append(trio.current_time())
            async with stream:
                await stream.send_all(BANNER)
                assert await stream.receive_some() == b"QUIT\r\n"
                await stream.send_all(b"221 bye\r\n")

        with trio.fail_after(5):  # the server would reset the embryonic connection at 15 s
            async with trio.open_nursery() as nursery:
                nursery.start_soon(server)
                start = trio.current_time()
                async with await a.open_tcp_stream(SERVER, 25) as client:
                    assert trio.current_time() - start < 0.01  # the client was connected at once
                    assert await client.receive_some() == BANNER
                    await client.send_all(b"QUIT\r\n")
                    assert await client.receive_some() == b"221 bye\r\n"
                    assert await client.receive_some() == b""

        assert [h.flags for h in dropper.dropped] == [TcpFlags.ACK]
        # The server established on the ACK answering its first SYN-ACK
        # retransmission, one initial RTO (1 s) after the first.
        assert 1.0 <= accepted_at[0] - start < 1.1


async def test_check_half_closeable_stream_when_every_final_ack_is_lost(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Trio's conformance suite opens many connections; each loses its final
    # handshake ACK (before the fix, accept() hung and the suite spun).
    async with lossy_pair() as (a, b, dropper):
        for host in (a, b):
            host.sysctl("net.inet.tcp.sendspace", 16384)
            host.sysctl("net.inet.tcp.recvspace", 16384)
        (listener,) = await b.open_tcp_listeners(0)
        port = listener.getsockname()[1]

        async def stream_maker() -> tuple[trionet.TcpStream, trionet.TcpStream]:
            client = await a.open_tcp_stream(SERVER, port)
            return client, await listener.accept()

        async def clogged_stream_maker() -> tuple[trionet.TcpStream, trionet.TcpStream]:
            client, server = await stream_maker()
            await clogged_both_ways(client, server)
            return client, server

        with trio.fail_after(600):
            await trio.testing.check_half_closeable_stream(stream_maker, clogged_stream_maker)
        assert len(dropper.dropped) >= 10
        await listener.aclose()
