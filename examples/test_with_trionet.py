"""A user's own test suite, testing a small application over trionet.

The "application" is two tiny services: a line-based TCP echo server that
shouts back (``b"hi\\n"`` -> ``b"HI\\n"``) and a UDP ping-pong responder.
The tests drive them across simulated hosts and links with the fixtures of
trionet's pytest plugin, which pytest loads by itself once trionet is
installed (entry point ``pytest11``); pytest-trio must be installed too.

- ``trionet_network``: an open :class:`trionet.Network`, seeded per test.
- ``trionet_host``: one host (``"host"``) in it, ``lo0`` at 127.0.0.1/8.

Every test asks for pytest-trio's ``autojump_clock``: link delays, TCP
retransmissions and timeouts run in virtual time, so a test over a lossy link
takes milliseconds and, for one seed, always behaves the same.

Run::

    pytest examples/test_with_trionet.py

A failing test's report has a ``trionet`` section with the seeds; replay it
exactly with ``pytest --trionet-seed=N examples/test_with_trionet.py::test_...``.
Add ``--trionet-pcap=captures`` to keep a pcap of every wire of each failing
test under ``captures/<test>/`` (open them with Wireshark or
``tshark -r captures/<test>/client-server.pcap``).
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

import trionet

# Explicit, so the suite runs whether or not the project sets trio_mode.
pytestmark = pytest.mark.trio

ECHO_PORT = 7007
PONG_PORT = 9009


####################################################################
# the application under test
####################################################################


async def shout_echo_handler(stream: trionet.TcpStream) -> None:
    """Serve one connection: each line comes back upper-cased."""
    buffer = b""
    try:
        while chunk := await stream.receive_some():
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                await stream.send_all(line.upper() + b"\n")
    finally:
        await stream.aclose()


async def pong_server(sock: trionet.UdpSocket) -> None:
    """Answer every ``ping N`` datagram with ``pong N``."""
    while True:
        data, peer = await sock.recvfrom()
        if data.startswith(b"ping "):
            await sock.sendto(b"pong " + data[5:], peer)


async def shout(host: trionet.Host, address: str, lines: list[bytes]) -> list[bytes]:
    """The client: send ``lines``, read back as many."""
    stream = await host.open_tcp_stream(address, ECHO_PORT)
    try:
        await stream.send_all(b"".join(line + b"\n" for line in lines))
        received = b""
        while received.count(b"\n") < len(lines):
            chunk = await stream.receive_some()
            assert chunk, "the server closed early"
            received += chunk
    finally:
        await stream.aclose()
    return received.split(b"\n")[:-1]


async def two_hosts(net: trionet.Network, **link_options: float) -> tuple[trionet.Host, trionet.Host]:
    """``client`` 10.0.0.1 and ``server`` 10.0.0.2 on one link."""
    client = await net.add_host("client")
    server = await net.add_host("server")
    link = await net.link(client, server, **link_options)
    client.ifconfig(link.ends[0].name, "10.0.0.1/24")
    server.ifconfig(link.ends[1].name, "10.0.0.2/24")
    return client, server


####################################################################
# the tests
####################################################################


async def test_echo_over_loopback(
    autojump_clock: trio.testing.MockClock, trionet_host: trionet.Host
) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(trionet_host.serve_tcp, shout_echo_handler, ECHO_PORT)
        assert await shout(trionet_host, "127.0.0.1", [b"hello", b"world"]) == [b"HELLO", b"WORLD"]
        nursery.cancel_scope.cancel()


async def test_hosts_reach_each_other(
    autojump_clock: trio.testing.MockClock, trionet_network: trionet.Network
) -> None:
    client, _server = await two_hosts(trionet_network, delay=0.010)
    result = await client.ping("10.0.0.2", count=3)
    assert result.received == 3
    # 10 ms each way, in virtual time (the first reply waited for ARP too).
    assert result.rtt_min == pytest.approx(0.020)


async def test_echo_survives_a_lossy_link(
    autojump_clock: trio.testing.MockClock, trionet_network: trionet.Network
) -> None:
    client, server = await two_hosts(trionet_network, delay=0.005, loss=0.1, duplicate=0.05)
    lines = [f"line {i}".encode() * 20 for i in range(1000)]
    with trio.fail_after(600):  # virtual seconds
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve_tcp, shout_echo_handler, ECHO_PORT)
            assert await shout(client, "10.0.0.2", lines) == [line.upper() for line in lines]
            nursery.cancel_scope.cancel()
    # The link really lost frames: TCP recovered them.
    (link,) = trionet_network.links
    assert sum(f.statistics().lost for f in link.faults) > 0


async def test_udp_ping_pong_retries_over_loss(
    autojump_clock: trio.testing.MockClock, trionet_network: trionet.Network
) -> None:
    client, server = await two_hosts(trionet_network, delay=0.002, loss=0.2)
    sent = 0
    with server.udp_socket() as responder, client.udp_socket() as sock, trio.fail_after(600):
        responder.bind(("0.0.0.0", PONG_PORT))
        sock.connect(("10.0.0.2", PONG_PORT))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pong_server, responder)
            for n in range(20):
                while True:  # UDP: the application retries until answered
                    await sock.send(b"ping %d" % n)
                    sent += 1
                    with trio.move_on_after(0.25):
                        while await sock.recv() != b"pong %d" % n:
                            pass  # a late answer to an earlier ping
                        break
            nursery.cancel_scope.cancel()
    assert sent >= 20


async def test_a_partitioned_server_times_out(
    autojump_clock: trio.testing.MockClock, trionet_network: trionet.Network
) -> None:
    client, _server = await two_hosts(trionet_network, loss=0.0)
    (link,) = trionet_network.links
    link.partition(True)
    with pytest.raises(TimeoutError):
        # Nobody answers the SYNs: the stack gives up after its retries.
        await client.open_tcp_stream("10.0.0.2", ECHO_PORT)
