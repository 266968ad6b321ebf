"""TCP streams between two trionet hosts: Trio's conformance suite and the
errors a Trio user expects."""

from __future__ import annotations


import pytest
import trio
import trio.testing

import trionet

from clog import clogged_both_ways

pytestmark = pytest.mark.trio


async def _pair(net: trionet.Network, **sysctls: int):
    a = await net.add_host("a")
    b = await net.add_host("b")
    link = await net.link(a, b, delay=0.001)
    a.ifconfig(link.ends[0].name, "10.0.0.1/24")
    b.ifconfig(link.ends[1].name, "10.0.0.2/24")
    for host in (a, b):
        for name, value in sysctls.items():
            host.sysctl(name, value)
    return a, b


async def _connected(a: trionet.Host, b: trionet.Host) -> tuple[trionet.TcpStream, trionet.TcpStream]:
    (listener,) = await b.open_tcp_listeners(0)
    port = listener.getsockname()[1]
    client = await a.open_tcp_stream("10.0.0.2", port)
    server = await listener.accept()
    await listener.aclose()
    return client, server


async def test_check_half_closeable_stream(autojump_clock: trio.testing.MockClock) -> None:
    async with trionet.open_network(seed=1) as net:
        a, b = await _pair(net)
        # Small buffers so a clogged stream is quick to make.
        for host in (a, b):
            host.sysctl("net.inet.tcp.sendspace", 16384)
            host.sysctl("net.inet.tcp.recvspace", 16384)

        async def stream_maker():
            return await _connected(a, b)

        async def clogged_stream_maker():
            client, server = await _connected(a, b)
            await clogged_both_ways(client, server)
            return client, server

        await trio.testing.check_half_closeable_stream(stream_maker, clogged_stream_maker)


async def test_calls_that_do_not_wait(autojump_clock: trio.testing.MockClock) -> None:
    # The socket layer's building blocks (trionet.TrioSocket's send, recv,
    # shutdown, close): send_nowait returns a count, receive_some_nowait can
    # peek, is_readable never waits.
    async with trionet.open_network(seed=2) as net:
        a, b = await _pair(net, **{"net.inet.tcp.sendspace": 16384})
        client, server = await _connected(a, b)
        assert client.send_nowait(b"") == 0
        assert client.send_nowait(b"x" * 100000) == 16384  # what fits
        with pytest.raises(trio.WouldBlock):
            client.send_nowait(b"y")
        assert not server.is_readable()
        with pytest.raises(trio.WouldBlock):
            server.receive_some_nowait()
        await server.wait_readable()
        assert server.is_readable()
        first = server.receive_some_nowait(10, peek=True)
        assert first == b"x" * 10
        assert server.receive_some_nowait(10) == first
        got = 10
        while got < 16384:
            await server.wait_readable()
            got += len(server.receive_some_nowait())
        client.send_eof_nowait()
        client.send_eof_nowait()  # idempotent
        await server.wait_readable()
        assert server.receive_some_nowait() == b""
        with pytest.raises(trio.ClosedResourceError):
            client.send_nowait(b"z")
        client.close()
        assert client.is_readable()  # closed: a read would not wait (it raises)
        with pytest.raises(trio.ClosedResourceError):
            client.receive_some_nowait()
        await server.aclose()


async def test_send_some_puts_in_whole_pieces(autojump_clock: trio.testing.MockClock) -> None:
    # send_some (the socket layer's send) takes what fits, but first waits
    # until min(len(data), half the send buffer) fits: a small write goes in
    # whole, a large one in pieces of at least half the buffer.
    space = 16384
    async with trionet.open_network(seed=3) as net:
        a, b = await _pair(net, **{"net.inet.tcp.sendspace": space, "net.inet.tcp.recvspace": space})
        client, server = await _connected(a, b)
        assert await client.send_some(b"") == 0
        assert await client.send_some(b"x" * 100000) == space  # all the room there is
        await client.send_all(b"x" * space)  # the peer's window takes the first
        await trio.sleep(1)
        got = 0

        async def read(n: int) -> None:
            nonlocal got
            while got < n:
                got += len(await server.receive_some(min(1000, n - got)))
            await trio.sleep(1)  # the window update, the segments, their ACKs

        def send_q() -> int:
            (row,) = [row for row in a.netstat() if row.state == "ESTABLISHED"]
            return row.send_q

        assert send_q() == space
        await read(4000)  # a window update: some room, not 6000 bytes of it
        assert 0 < space - send_q() < 6000
        with trio.move_on_after(5) as scope:
            await client.send_some(b"y" * 6000)
        assert scope.cancelled_caught
        assert 0 < space - send_q() < 6000  # the cancelled call took nothing
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read, 12000)
            assert await client.send_some(b"y" * 6000) == 6000  # whole, once 6000 fit
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read, 3 * space)
            n = await client.send_some(b"z" * 100000)
        assert space // 2 <= n <= space  # at least half the buffer, never a sliver
        client.send_eof_nowait()
        with pytest.raises(trio.ClosedResourceError):
            await client.send_some(b"after eof")
        while await server.receive_some():
            pass
        await client.aclose()
        await server.aclose()
