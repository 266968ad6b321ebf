"""Every socket and stream call, cancelled at each of its checkpoints in turn,
loses nothing: the bytes (or datagrams, or connections) seen afterwards are
exactly those that were sent.

Each test runs the call once per checkpoint ``k`` (see ``cancel_points``),
on a fresh network in virtual time, and checks the stream or socket
afterwards. A run where the call completed must see its effect; a run where
it was cancelled must see none, except where the docstring says otherwise
(``aclose`` closes anyway; ``send_all`` cancelled part-way breaks the stream).
"""

from __future__ import annotations

import random
from functools import partial

import pytest
import trio
import trio.testing

import trionet
from cancel_points import cancel_after, each_checkpoint

pytestmark = pytest.mark.trio

A, B = "10.0.0.1", "10.0.0.2"
SPACE = 16384  # socket buffers, so a few KiB fill them


async def _pair(net: trionet.Network) -> tuple[trionet.Host, trionet.Host]:
    a = await net.add_host("a")
    b = await net.add_host("b")
    link = await net.link(a, b, delay=0.001)
    a.ifconfig(link.ends[0].name, f"{A}/24")
    b.ifconfig(link.ends[1].name, f"{B}/24")
    for host in (a, b):
        host.sysctl("net.inet.tcp.sendspace", SPACE)
        host.sysctl("net.inet.tcp.recvspace", SPACE)
    return a, b


async def _connected(a: trionet.Host, b: trionet.Host) -> tuple[trionet.TcpStream, trionet.TcpStream]:
    (listener,) = await b.open_tcp_listeners(0)
    client = await a.open_tcp_stream(B, listener.getsockname()[1])
    server = await listener.accept()
    await listener.aclose()
    return client, server


async def _read_to_eof(stream: trionet.TcpStream) -> bytes:
    got = bytearray()
    while chunk := await stream.receive_some():
        got += chunk
    return bytes(got)


####################################################################
# TCP
####################################################################


async def _stuffed(net: trionet.Network, pre: bytes) -> tuple[trionet.TcpStream, trionet.TcpStream]:
    """A connected pair whose client has sent ``pre``, nobody reading yet."""
    client, server = await _connected(*await _pair(net))
    await client.send_all(pre)
    await trio.sleep(1)
    return client, server


async def _read_later(stream: trionet.TcpStream, into: bytearray) -> None:
    """From 2 s on, read ``stream`` to its end into ``into``; a reset ends
    it with ``b"<reset>"``."""
    await trio.sleep(2)
    try:
        while chunk := await stream.receive_some():
            into.extend(chunk)
    except trio.BrokenResourceError:
        into.extend(b"<reset>")


async def test_a_cancelled_receive_some_leaves_the_buffered_bytes(autojump_clock: trio.testing.MockClock) -> None:
    """The issue's new user: 5 bytes buffered, a receive_some cancelled at
    once, then a read to EOF returns every byte."""
    async with trionet.open_network(seed=1) as net:
        client, server = await _connected(*await _pair(net))
        await server.send_all(b"hello")
        await server.send_eof()
        await trio.sleep(1)
        with trio.move_on_after(0):
            await client.receive_some()
        assert await _read_to_eof(client) == b"hello"


@pytest.mark.parametrize("data_first", [True, False], ids=["buffered", "waiting"])
async def test_receive_some_cancelled_at_each_checkpoint(
    autojump_clock: trio.testing.MockClock, data_first: bool
) -> None:
    for k, done in each_checkpoint():
        async with trionet.open_network(seed=1) as net:
            client, server = await _connected(*await _pair(net))
            async with trio.open_nursery() as nursery:

                async def speak() -> None:
                    if not data_first:
                        await trio.sleep(1)
                    await server.send_all(b"hello")

                nursery.start_soon(speak)
                if data_first:
                    await trio.sleep(1)
                outcome = await cancel_after(k, client.receive_some)
            got = b"" if outcome.cancelled else outcome.result
            await server.send_all(b" world")
            await server.send_eof()
            assert got + await _read_to_eof(client) == b"hello world", k
        done(outcome)


@pytest.mark.parametrize("full", [False, True], ids=["space", "full"])
async def test_send_all_cancelled_at_each_checkpoint(autojump_clock: trio.testing.MockClock, full: bool) -> None:
    """``full``: the send buffer and the peer's window are full when
    send_all starts, so it parks before taking anything; otherwise it takes
    part of the data and parks for the rest. The peer starts reading 2 s
    later. A cancel with nothing taken leaves the stream as it was; one
    after part was taken breaks it, and closing it resets the connection."""
    rng = random.Random(1)
    pre = rng.randbytes(2 * SPACE) if full else b""
    data = rng.randbytes(3 * SPACE)
    tail = rng.randbytes(1000)
    kinds = set()
    for k, done in each_checkpoint():
        async with trionet.open_network(seed=1) as net:
            client, server = await _stuffed(net, pre)
            received = bytearray()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_read_later, server, received)
                outcome = await cancel_after(k, partial(client.send_all, data))
                broken = outcome.cancelled and client._send_broken
                if broken:
                    with pytest.raises(trio.BrokenResourceError):
                        await client.send_all(b"more")
                    await client.aclose()  # resets: the peer must not see a clean end
                else:
                    await client.send_all(tail)
                    await client.send_eof()
            if broken:
                kinds.add("broken")
                assert received.endswith(b"<reset>"), k
                assert (pre + data).startswith(received[: -len(b"<reset>")]), k
            else:
                kinds.add("cancelled" if outcome.cancelled else "sent")
                assert bytes(received) == pre + (b"" if outcome.cancelled else data) + tail, k
        done(outcome)
    assert kinds == {"cancelled", "broken", "sent"}


@pytest.mark.parametrize("room", [3 * SPACE, 1000, 0], ids=["space", "some", "full"])
async def test_send_some_cancelled_at_each_checkpoint(autojump_clock: trio.testing.MockClock, room: int) -> None:
    """send_some (the socket layer's send) either took its bytes and says
    how many, or was cancelled and took none: never a part. ``room``: what
    the send buffer has free when it starts (1000: some, but less than the
    half buffer it waits for)."""
    rng = random.Random(2)
    pre = rng.randbytes(max(0, 2 * SPACE - room))
    data = rng.randbytes(SPACE // 2)
    tail = rng.randbytes(1000)
    kinds = set()
    for k, done in each_checkpoint():
        async with trionet.open_network(seed=1) as net:
            client, server = await _stuffed(net, pre)
            received = bytearray()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_read_later, server, received)
                outcome = await cancel_after(k, partial(client.send_some, data))
                sent = b"" if outcome.cancelled else data[: outcome.result]
                await client.send_all(tail)
                await client.send_eof()
            kinds.add("cancelled" if outcome.cancelled else "sent")
            assert bytes(received) == pre + sent + tail, k
        done(outcome)
    assert kinds == {"cancelled", "sent"}


async def test_accept_cancelled_at_each_checkpoint_takes_no_connection(
    autojump_clock: trio.testing.MockClock,
) -> None:
    for queued in (True, False):
        for k, done in each_checkpoint():
            async with trionet.open_network(seed=1) as net:
                a, b = await _pair(net)
                (listener,) = await b.open_tcp_listeners(0)
                port = listener.getsockname()[1]
                clients: list[trionet.TcpStream] = []
                async with trio.open_nursery() as nursery:

                    async def connect() -> None:
                        if not queued:
                            await trio.sleep(1)
                        clients.append(await a.open_tcp_stream(B, port))

                    nursery.start_soon(connect)
                    if queued:
                        await trio.sleep(1)
                    outcome = await cancel_after(k, listener.accept)
                server = await listener.accept() if outcome.cancelled else outcome.result
                (client,) = clients
                await client.send_all(b"ping")
                assert await server.receive_some() == b"ping", (queued, k)
                await server.send_all(b"pong")
                assert await client.receive_some() == b"pong", (queued, k)
                with trio.move_on_after(5) as scope:
                    await listener.accept()
                assert scope.cancelled_caught, "a second connection appeared"
            done(outcome)


async def test_open_tcp_stream_cancelled_at_each_checkpoint_leaves_no_connection(
    autojump_clock: trio.testing.MockClock,
) -> None:
    for k, done in each_checkpoint():
        async with trionet.open_network(seed=1) as net:
            a, b = await _pair(net)
            (listener,) = await b.open_tcp_listeners(0)
            port = listener.getsockname()[1]
            outcome = await cancel_after(k, partial(a.open_tcp_stream, B, port))
            if outcome.cancelled:
                await trio.sleep(10)
                assert a.netstat() == [], k
                assert [row.state for row in b.netstat()] == ["LISTEN"], k
            else:
                server = await listener.accept()
                await outcome.result.send_all(b"ping")
                assert await server.receive_some() == b"ping"
        done(outcome)


async def test_aclose_cancelled_at_each_checkpoint_still_closes(autojump_clock: trio.testing.MockClock) -> None:
    for k, done in each_checkpoint():
        async with trionet.open_network(seed=1) as net:
            client, server = await _connected(*await _pair(net))
            await client.send_all(b"last words")
            outcome = await cancel_after(k, client.aclose)
            with pytest.raises(trio.ClosedResourceError):
                await client.send_all(b"x")
            assert await _read_to_eof(server) == b"last words", k
        done(outcome)


async def test_send_eof_cancelled_at_each_checkpoint(autojump_clock: trio.testing.MockClock) -> None:
    for k, done in each_checkpoint():
        async with trionet.open_network(seed=1) as net:
            client, server = await _connected(*await _pair(net))
            await client.send_all(b"one")
            outcome = await cancel_after(k, client.send_eof)
            if outcome.cancelled:
                await client.send_all(b" two")  # still open for sending
                await client.send_eof()
                assert await _read_to_eof(server) == b"one two", k
            else:
                assert await _read_to_eof(server) == b"one", k
        done(outcome)


####################################################################
# UDP
####################################################################


@pytest.mark.parametrize("method", ["recvfrom", "recv"])
@pytest.mark.parametrize("data_first", [True, False], ids=["queued", "waiting"])
async def test_udp_receive_cancelled_at_each_checkpoint(
    autojump_clock: trio.testing.MockClock, method: str, data_first: bool
) -> None:
    for k, done in each_checkpoint():
        async with trionet.open_network(seed=1) as net:
            a, b = await _pair(net)
            sender, receiver = a.udp_socket(), b.udp_socket()
            receiver.bind((B, 7000))
            async with trio.open_nursery() as nursery:

                async def send() -> None:
                    if not data_first:
                        await trio.sleep(1)
                    for d in (b"d1", b"d2"):
                        await sender.sendto(d, (B, 7000))

                nursery.start_soon(send)
                if data_first:
                    await trio.sleep(1)
                outcome = await cancel_after(k, getattr(receiver, method))
            got = []
            if not outcome.cancelled:
                got.append(outcome.result if method == "recv" else outcome.result[0])
                if method == "recvfrom":
                    assert outcome.result[1] == (A, sender.getsockname()[1])
            while len(got) < 2:
                got.append(await receiver.recv())
            assert got == [b"d1", b"d2"], k
            with trio.move_on_after(5) as scope:
                await receiver.recv()
            assert scope.cancelled_caught, "an extra datagram arrived"
        done(outcome)


async def test_udp_sendto_cancelled_at_each_checkpoint_sends_nothing(autojump_clock: trio.testing.MockClock) -> None:
    for k, done in each_checkpoint():
        async with trionet.open_network(seed=1) as net:
            a, b = await _pair(net)
            sender, receiver = a.udp_socket(), b.udp_socket()
            receiver.bind((B, 7000))
            await sender.sendto(b"d1", (B, 7000))
            outcome = await cancel_after(k, partial(sender.sendto, b"d2", (B, 7000)))
            await sender.sendto(b"d3", (B, 7000))
            got = [await receiver.recv()]
            while got[-1] != b"d3":
                got.append(await receiver.recv())
            assert got == ([b"d1", b"d3"] if outcome.cancelled else [b"d1", b"d2", b"d3"]), k
        done(outcome)


async def test_two_udp_receivers_on_one_socket_is_busy(autojump_clock: trio.testing.MockClock) -> None:
    """The second task gets trio's BusyResourceError at once (as on a Trio
    socket), not an IndexError when one datagram wakes both."""
    async with trionet.open_network(seed=1) as net:
        a, b = await _pair(net)
        sender, receiver = a.udp_socket(), b.udp_socket()
        receiver.bind((B, 7000))
        got = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(_recv_into, receiver, got))
            await trio.testing.wait_all_tasks_blocked()
            with pytest.raises(trio.BusyResourceError):
                await receiver.recv()
            await sender.sendto(b"one", (B, 7000))
        assert got[-1] == b"one"


async def _recv_into(sock: trionet.UdpSocket, got: list[object]) -> None:
    got.append(await sock.recv())
