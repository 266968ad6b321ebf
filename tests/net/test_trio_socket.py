"""Unmodified Trio programs over a trionet network: ``trio.socket``,
``trio.open_tcp_stream``, ``trio.serve_tcp`` and ``getaddrinfo`` on the host
chosen by ``Host.as_current()``, in virtual time over a delayed (and lossy)
link."""

from __future__ import annotations

import errno
import socket as stdlib_socket
import ssl
from pathlib import Path
from functools import partial

import pytest
import trio
import trio.testing

import trionet
from cancel_points import cancel_after, each_checkpoint

pytestmark = pytest.mark.trio

A, B = "10.0.0.1", "10.0.0.2"


async def _net(net: trionet.Network, **impairments: float) -> tuple[trionet.Host, trionet.Host]:
    h1 = await net.add_host("h1")
    h2 = await net.add_host("h2")
    link = await net.link(h1, h2, delay=0.005, **impairments)
    h1.ifconfig(link.ends[0].name, f"{A}/24")
    h2.ifconfig(link.ends[1].name, f"{B}/24")
    net.install_trio_sockets()
    return h1, h2


async def _echo_upper(stream: trio.abc.Stream) -> None:
    async with stream:
        async for chunk in stream:
            await stream.send_all(chunk.upper())


####################################################################
# The high-level helpers, unmodified
####################################################################


async def test_serve_tcp_and_open_tcp_stream_by_host_name(autojump_clock: trio.testing.MockClock) -> None:
    async with trionet.open_network(seed=1) as net:
        h1, h2 = await _net(net, loss=0.05)
        async with trio.open_nursery() as nursery:
            with h2.as_current():
                listeners = await nursery.start(trio.serve_tcp, _echo_upper, 8080)
            assert listeners[0].socket.getsockname() == ("0.0.0.0", 8080)
            assert isinstance(listeners[0].socket, trionet.TrioSocket)
            with h1.as_current():
                stream = await trio.open_tcp_stream("h2", 8080)
                assert stream.socket.getpeername() == (B, 8080)
                assert stream.socket.getsockname()[0] == A
                message = bytes(range(256)) * 200
                async with stream:
                    async with trio.open_nursery() as inner:
                        inner.start_soon(stream.send_all, message)
                        got = bytearray()
                        while len(got) < len(message):
                            got += await stream.receive_some()
                assert bytes(got) == message.upper()
            nursery.cancel_scope.cancel()
        # The server's socket lived on h2, the client's on h1.
        assert h2.inet.tcp.statistics().accepts == 1
        assert h1.inet.tcp.statistics().connects == 1


# A self-signed certificate for "h2" (EC P-256, valid until 2126), made with
# openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes
#   -days 36500 -subj /CN=h2 -addext subjectAltName=DNS:h2
H2_CERT = """\
-----BEGIN CERTIFICATE-----
MIIBfzCCASagAwIBAgIUdcNO3gJEp9mnN92NrLC0aCJIl3cwCgYIKoZIzj0EAwIw
DTELMAkGA1UEAwwCaDIwIBcNMjYxMjA3MDMwMjU4WhgPMjEyNjExMTMwMzAyNTha
MA0xCzAJBgNVBAMMAmgyMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAECKXiiOMq
FkEV01OLoO3nub5eeONno+Gw1hjrPp/izgufzVksb/pA4Pc9L5WVxDYRuVHK59MH
ZyoIoXAiOc2S7KNiMGAwHQYDVR0OBBYEFM8j1dUIs6BtvZ+JyUyJb38iPvNbMB8G
A1UdIwQYMBaAFM8j1dUIs6BtvZ+JyUyJb38iPvNbMA8GA1UdEwEB/wQFMAMBAf8w
DQYDVR0RBAYwBIICaDIwCgYIKoZIzj0EAwIDRwAwRAIgKFDR+bjZNfn4iv5XBuDi
q0oVmc/XQ/WbgOrKsR7MV+ACICGlpLgZe3n5y70RK40lwBiiCMouBo+Vwx4cU+gs
5AVR
-----END CERTIFICATE-----
"""
H2_KEY = """\
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgDO6fhw7TYh83XQhP
CTHmnWj73vnSIJ9NtO0HdthOpNehRANCAAQIpeKI4yoWQRXTU4ug7ee5vl5442ej
4bDWGOs+n+LOC5/NWSxv+kDg9z0vlZXENhG5Ucrn0wdnKgihcCI5zZLs
-----END PRIVATE KEY-----
"""


async def test_open_ssl_over_tcp_stream_by_host_name(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    (tmp_path / "cert.pem").write_text(H2_CERT)
    (tmp_path / "key.pem").write_text(H2_KEY)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    client_ctx = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))

    async def tls_upper(stream: trio.SocketStream) -> None:
        await _echo_upper(trio.SSLStream(stream, server_ctx, server_side=True))

    async with trionet.open_network(seed=13) as net:
        h1, h2 = await _net(net, loss=0.02)
        async with trio.open_nursery() as nursery:
            with h2.as_current():
                await nursery.start(trio.serve_tcp, tls_upper, 443)
            with h1.as_current():
                stream = await trio.open_ssl_over_tcp_stream("h2", 443, ssl_context=client_ctx)
                await stream.send_all(b"secret")
                assert await stream.receive_some() == b"SECRET"
                await stream.aclose()
            nursery.cancel_scope.cancel()


async def test_tasks_started_inside_as_current_keep_their_host(autojump_clock: trio.testing.MockClock) -> None:
    async with trionet.open_network(seed=2) as net:
        h1, h2 = await _net(net)
        seen = []

        async def where() -> None:
            await trio.sleep(1)  # long after the with block below has exited
            sock = trio.socket.socket()
            seen.append(sock.host.name)
            sock.close()

        async with trio.open_nursery() as nursery:
            with h2.as_current():
                nursery.start_soon(where)
                with h1.as_current():
                    nursery.start_soon(where)
        assert sorted(seen) == ["h1", "h2"]


async def test_half_closeable_stream_contract(autojump_clock: trio.testing.MockClock) -> None:
    async with trionet.open_network(seed=3) as net:
        h1, h2 = await _net(net)
        for host in (h1, h2):  # small buffers: quick to clog
            host.sysctl("net.inet.tcp.sendspace", 16384)
            host.sysctl("net.inet.tcp.recvspace", 16384)
        with h2.as_current():
            (listener,) = await trio.open_tcp_listeners(0, host=B)
        port = listener.socket.getsockname()[1]

        async def make_pair() -> tuple[trio.SocketStream, trio.SocketStream]:
            with h1.as_current():
                client = await trio.open_tcp_stream(B, port)
            server = await listener.accept()
            return client, server

        async def fill(sock: trio.socket.SocketType) -> bool:
            # Send what fits without waiting; whether anything did.
            sent = False
            while True:
                try:
                    await sock.send(b"x" * 4096, stdlib_socket.MSG_DONTWAIT)
                except BlockingIOError:
                    return sent
                sent = True

        async def make_clogged_pair() -> tuple[trio.SocketStream, trio.SocketStream]:
            # Both ways (trio's suite flips the pair), until neither send
            # buffer drains any more (data one way carries ACKs the other).
            client, server = await make_pair()
            while True:
                progress = await fill(client.socket) | await fill(server.socket)
                await trio.sleep(1)
                if not progress and not (await fill(client.socket) | await fill(server.socket)):
                    return client, server

        await trio.testing.check_half_closeable_stream(make_pair, make_clogged_pair)
        await listener.aclose()


async def test_udp_request_response_through_trio_socket(autojump_clock: trio.testing.MockClock) -> None:
    async with trionet.open_network(seed=4) as net:
        h1, h2 = await _net(net)
        with h2.as_current():
            server = trio.socket.socket(stdlib_socket.AF_INET, stdlib_socket.SOCK_DGRAM)
            await server.bind(("", 5353))

        async def serve_one() -> None:
            data, peer = await server.recvfrom(2048)
            assert await server.sendto(data[::-1], peer) == len(data)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve_one)
            with h1.as_current():
                with trio.socket.socket(type=stdlib_socket.SOCK_DGRAM) as client:
                    await client.connect(("h2", 5353))
                    assert await client.send(b"ping?") == 5
                    assert client.getpeername() == (B, 5353)
                    assert await client.recv(2048, stdlib_socket.MSG_PEEK) == b"?gnip"
                    assert client.is_readable()
                    data, peer = await client.recvfrom(3)  # truncated, as the kernel does
                    assert (data, peer) == (b"?gn", (B, 5353))
                    assert not client.is_readable()
        server.close()


async def test_recv_flags_peek_and_dontwait(autojump_clock: trio.testing.MockClock) -> None:
    async with trionet.open_network(seed=5) as net:
        h1, h2 = await _net(net)
        with h2.as_current():
            (listener,) = await trio.open_tcp_listeners(7, host=B)
        with h1.as_current():
            client = await trio.open_tcp_stream(B, 7)
        server = await listener.accept()
        sock = server.socket
        with pytest.raises(BlockingIOError):
            await sock.recv(10, stdlib_socket.MSG_DONTWAIT)
        assert not sock.is_readable()
        await client.send_all(b"hello")
        await trio.testing.wait_all_tasks_blocked()
        await trio.sleep(1)
        assert sock.is_readable()
        assert await sock.recv(10, stdlib_socket.MSG_PEEK) == b"hello"
        assert await sock.recv(2, stdlib_socket.MSG_PEEK | stdlib_socket.MSG_DONTWAIT) == b"he"
        assert await sock.recv(10) == b"hello"
        await client.send_eof()
        await trio.sleep(1)
        assert sock.is_readable()  # httpx's question: has the peer gone?
        assert await sock.recv(10) == b""
        assert not sock.did_shutdown_SHUT_WR
        sock.shutdown(stdlib_socket.SHUT_WR)
        assert sock.did_shutdown_SHUT_WR
        with pytest.raises(BrokenPipeError):
            await sock.send(b"late")
        assert await client.receive_some() == b""
        for s in (client, server, listener):
            await s.aclose()


####################################################################
# Names
####################################################################


async def test_getaddrinfo_resolves_hosts_and_etc_hosts(autojump_clock: trio.testing.MockClock) -> None:
    async with trionet.open_network(seed=6) as net:
        h1, h2 = await _net(net)
        net.etc_hosts["db.example"] = "10.0.0.2"
        with h1.as_current():
            infos = await trio.socket.getaddrinfo("h2", 80, type=stdlib_socket.SOCK_STREAM)
            assert [info[4] for info in infos] == [(B, 80)]
            assert infos[0][0] == stdlib_socket.AF_INET
            assert (await trio.socket.getaddrinfo("H1.", "80"))[0][4] == (A, 80)
            assert (await trio.socket.getaddrinfo("db.example", 5432))[0][4] == (B, 5432)
            assert (await trio.socket.getaddrinfo("localhost", 1))[0][4] == ("127.0.0.1", 1)
            # Numeric addresses never reach the resolver.
            assert (await trio.socket.getaddrinfo("192.0.2.7", 1))[0][4] == ("192.0.2.7", 1)
            with pytest.raises(stdlib_socket.gaierror) as info:
                await trio.socket.getaddrinfo("nosuchhost", 80)
            assert info.value.errno == stdlib_socket.EAI_NONAME
            assert await trio.socket.getnameinfo((B, 80), 0) == ("db.example", "80")
            assert await trio.socket.getnameinfo(("10.9.9.9", 80), 0) == ("10.9.9.9", "80")


####################################################################
# Errors
####################################################################


async def test_errors_are_the_kernels(autojump_clock: trio.testing.MockClock) -> None:
    async with trionet.open_network(seed=7) as net:
        h1, h2 = await _net(net)
        with h1.as_current():
            with pytest.raises(OSError) as info:
                trio.socket.socket(stdlib_socket.AF_INET6)
            assert info.value.errno == errno.EAFNOSUPPORT
            sock = trio.socket.socket()
            assert (sock.family, sock.type, sock.proto) == (stdlib_socket.AF_INET, stdlib_socket.SOCK_STREAM, 0)
            with pytest.raises(OSError) as info:
                sock.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_RCVBUF, 4096)
            assert info.value.errno == errno.ENOPROTOOPT
            with pytest.raises(OSError) as info:
                sock.getsockopt(stdlib_socket.IPPROTO_TCP, stdlib_socket.TCP_MAXSEG)
            assert info.value.errno == errno.ENOPROTOOPT
            sock.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_REUSEADDR, 1)
            assert sock.getsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_REUSEADDR) == 1
            assert sock.getsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_ACCEPTCONN) == 0
            with pytest.raises(OSError) as info:
                sock.getpeername()
            assert info.value.errno == errno.ENOTCONN
            with pytest.raises(ConnectionRefusedError):
                await sock.connect((B, 9))
            sock.close()
            assert sock.fileno() == -1
            with pytest.raises(OSError) as info:
                await sock.send(b"x")
            assert info.value.errno == errno.EBADF
            with pytest.raises(OSError, match="all attempts"):
                await trio.open_tcp_stream(B, 9)
            with pytest.raises(OSError) as info:
                await trio.open_tcp_stream("nosuchhost", 80)
            assert isinstance(info.value, stdlib_socket.gaierror)

            # A closed stream: EBADF, which trio turns into ClosedResourceError.
            (listener,) = await trio.open_tcp_listeners(0)
            assert listener.socket.getsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_ACCEPTCONN) == 1
            stream = await trio.open_tcp_stream("127.0.0.1", listener.socket.getsockname()[1])
            server = await listener.accept()
            await stream.aclose()
            with pytest.raises(trio.ClosedResourceError):
                await stream.send_all(b"x")
            with pytest.raises(trio.ClosedResourceError):
                await stream.receive_some(1)
            await listener.aclose()
            with pytest.raises(trio.ClosedResourceError):
                await listener.accept()
            # The peer's RST: a BrokenResourceError from ECONNRESET.
            with pytest.raises(trio.BrokenResourceError):
                await trio.sleep(1)
                for _ in range(10):
                    await server.send_all(b"x" * 1000)
                    await trio.sleep(1)
            await server.aclose()


async def test_tcp_bind_takes_the_port(autojump_clock: trio.testing.MockClock) -> None:
    async with trionet.open_network(seed=14) as net:
        h1, h2 = await _net(net)
        with h1.as_current():
            first = trio.socket.socket()
            await first.bind((A, 0))
            port = first.getsockname()[1]
            assert port != 0
            second = trio.socket.socket()
            with pytest.raises(OSError) as info:
                await second.bind(("0.0.0.0", port))
            assert info.value.errno == errno.EADDRINUSE
            with pytest.raises(OSError) as info:
                await second.bind(("10.9.9.9", 0))
            assert info.value.errno == errno.EADDRNOTAVAIL
            first.listen()
            assert first.getsockname() == (A, port)
            with pytest.raises(OSError) as info:
                await second.bind((A, port))
            assert info.value.errno == errno.EADDRINUSE
            first.close()
            await second.bind((A, port))  # free again
            # A bound socket connects from its port.
            await h2.open_tcp_listeners(80)
            await second.connect((B, 80))
            assert second.getsockname() == (A, port)
            assert h1.inet.tcp._bound == {}  # the connection holds the port now
            second.close()


async def test_socket_calls_outside_as_current_raise(autojump_clock: trio.testing.MockClock) -> None:
    async with trionet.open_network(seed=8) as net:
        await _net(net)
        with pytest.raises(RuntimeError, match="as_current"):
            trio.socket.socket()
        with pytest.raises(RuntimeError, match="as_current"):
            await trio.open_tcp_stream("h2", 80)
        # A numeric address: the socket is made in open_tcp_stream's nursery.
        with pytest.RaisesGroup(pytest.RaisesExc(RuntimeError, match="as_current"), flatten_subgroups=True):
            await trio.open_tcp_stream("127.0.0.1", 80)
        with pytest.raises(RuntimeError, match="as_current"):
            await trio.open_tcp_listeners(0)
        with pytest.raises(RuntimeError, match="as_current"):
            await trio.socket.getaddrinfo("h2", 80)
    # Leaving open_network puts Trio's own socket factory back.
    sock = trio.socket.socket()
    assert not isinstance(sock, trionet.TrioSocket)
    sock.close()


async def test_passthrough_reaches_the_real_kernel_outside_as_current(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trionet.open_network(seed=9) as net:
        h1 = await net.add_host("h1")
        net.install_trio_sockets(passthrough=True)
        with h1.as_current():
            assert isinstance(trio.socket.socket(), trionet.TrioSocket)
        real = trio.socket.socket(type=stdlib_socket.SOCK_DGRAM)
        assert not isinstance(real, trionet.TrioSocket)
        real.close()
        with pytest.raises(RuntimeError, match="installed already"):
            net.install_trio_sockets()


####################################################################
# Cancellation: each new socket call, at each of its checkpoints
####################################################################


async def test_tcp_send_and_recv_cancelled_at_every_checkpoint(autojump_clock: trio.testing.MockClock) -> None:
    async with trionet.open_network(seed=10) as net:
        h1, h2 = await _net(net)
        for name in ("net.inet.tcp.sendspace", "net.inet.tcp.recvspace"):
            h1.sysctl(name, 16384)
            h2.sysctl(name, 16384)
        with h2.as_current():
            lsock = trio.socket.socket()
            await lsock.bind((B, 0))
            lsock.listen()
        port = lsock.getsockname()[1]
        with h1.as_current():
            client = trio.socket.socket()
            await client.connect((B, port))
        server, peer = await lsock.accept()
        assert peer == client.getsockname()
        sent = bytearray()
        chunk = bytes(range(256)) * 64  # 16 KiB: fills the buffers after a few
        for k, done in each_checkpoint():
            out = await cancel_after(k, partial(client.send, chunk))
            if not out.cancelled:
                sent += chunk[: out.result]
            done(out)
        # The send buffer is full by now: one more send parks and a cancel there sends nothing.
        for _ in range(8):
            out = await cancel_after(1, partial(client.send, chunk))
            if not out.cancelled:
                sent += chunk[: out.result]
        got = bytearray()
        for k in range(200):
            out = await cancel_after(k % 3, partial(server.recv, 5000))
            if not out.cancelled:
                got += out.result
            if len(got) == len(sent):
                break
        assert got == sent
        # accept and recvfrom cancelled while waiting take nothing.
        out = await cancel_after(1, lsock.accept)
        assert out.cancelled
        for s in (client, server, lsock):
            s.close()


async def test_udp_and_accept_cancelled_at_every_checkpoint(autojump_clock: trio.testing.MockClock) -> None:
    async with trionet.open_network(seed=11) as net:
        h1, h2 = await _net(net)
        with h2.as_current():
            server = trio.socket.socket(type=stdlib_socket.SOCK_DGRAM)
            await server.bind((B, 53))
        with h1.as_current():
            client = trio.socket.socket(type=stdlib_socket.SOCK_DGRAM)
        sent = []
        for k, done in each_checkpoint():
            out = await cancel_after(k, partial(client.sendto, b"d%d" % k, (B, 53)))
            if not out.cancelled:
                sent.append(b"d%d" % k)
            done(out)
        await trio.sleep(1)
        got = []
        for k in range(20):
            out = await cancel_after(k % 2, partial(server.recvfrom, 100))
            if not out.cancelled:
                got.append(out.result[0])
            if len(got) == len(sent):
                break
        assert got == sent
        out = await cancel_after(1, partial(server.recvfrom, 100))
        assert out.cancelled
        # bind and a UDP connect: cancelled, the socket is as it was.
        for make in (
            partial(trio.socket.socket, type=stdlib_socket.SOCK_DGRAM),
            trio.socket.socket,
        ):
            for k, done in each_checkpoint():
                with h1.as_current():
                    sock = make()
                out = await cancel_after(k, partial(sock.bind, (A, 4000)))
                assert sock.getsockname() == (("0.0.0.0", 0) if out.cancelled else (A, 4000))
                if sock.type == stdlib_socket.SOCK_DGRAM:
                    out = await cancel_after(k, partial(sock.connect, (B, 53)))
                    if out.cancelled:
                        with pytest.raises(OSError):
                            sock.getpeername()
                    else:
                        assert sock.getpeername() == (B, 53)
                sock.close()
                done(out)
        # Connect cancelled: the socket is closed, as Trio's is.
        with h1.as_current():
            tsock = trio.socket.socket()
        out = await cancel_after(1, partial(tsock.connect, (B, 80)))
        assert out.cancelled
        assert tsock.fileno() == -1
        client.close()
        server.close()


####################################################################
# One user program, on the real loopback and on trionet
####################################################################


async def _user_program() -> list[object]:
    """A small Trio program as a user writes it: nothing trionet in it.
    Returns a transcript of what it saw."""
    transcript: list[object] = []

    async def handler(stream: trio.SocketStream) -> None:
        request = b""
        while chunk := await stream.receive_some(4):
            request += chunk
        await stream.send_all(b"echo:" + request)
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        transcript.append(stream.socket.getpeername() == ("127.0.0.1", port))
        await stream.send_all(b"hello, world")
        await stream.send_eof()
        reply = b""
        while chunk := await stream.receive_some():
            reply += chunk
        transcript.append(reply)
        await stream.aclose()
        nursery.cancel_scope.cancel()

    # A port nobody listens on: refused.
    probe = trio.socket.socket()
    await probe.bind(("127.0.0.1", 0))
    closed_port = probe.getsockname()[1]
    probe.close()
    try:
        await trio.open_tcp_stream("127.0.0.1", closed_port)
    except OSError as exc:
        causes = getattr(exc.__cause__, "exceptions", [exc.__cause__])
        # The builtin class (trionet's errors subclass it, with NetError).
        builtin = [next(c.__name__ for c in type(cause).__mro__ if c.__module__ == "builtins") for cause in causes]
        transcript.append((type(exc).__name__, builtin))

    # UDP through trio.socket.
    with trio.socket.socket(type=stdlib_socket.SOCK_DGRAM) as a, trio.socket.socket(
        type=stdlib_socket.SOCK_DGRAM
    ) as b:
        await a.bind(("127.0.0.1", 0))
        await b.connect(a.getsockname())
        await b.send(b"datagram")
        data, sender = await a.recvfrom(100)
        transcript.append((data, sender == b.getsockname()))
    return transcript


EXPECTED = [
    True,
    b"echo:hello, world",
    ("OSError", ["ConnectionRefusedError"]),
    (b"datagram", True),
]


@pytest.mark.integration
async def test_user_program_on_the_real_loopback() -> None:
    with trio.fail_after(10):
        assert await _user_program() == EXPECTED


async def test_user_program_on_trionet_gives_the_same_result(autojump_clock: trio.testing.MockClock) -> None:
    async with trionet.open_network(seed=12, trio_sockets=True) as net:
        host = await net.add_host("solo")
        with host.as_current():
            assert await _user_program() == EXPECTED


####################################################################
# IPv6
####################################################################


async def test_trio_helpers_and_sockets_over_ipv6(autojump_clock: trio.testing.MockClock) -> None:
    """AF_INET6 once a host has IPv6: trio.serve_tcp listens on both
    families (two listeners, as on Linux), trio.open_tcp_stream reaches an
    IPv6 literal, names give 4-tuples, UDP over trio.socket."""
    async with trionet.open_network(seed=12) as net:
        h1, h2 = await _net(net)
        h1.ifconfig(h1.ifconfig()[1].name, "fd00::1/64")
        h2.ifconfig(h2.ifconfig()[1].name, "fd00::2/64")
        await trio.sleep(3)  # DAD
        async with trio.open_nursery() as nursery:
            with h2.as_current():
                listeners = await nursery.start(trio.serve_tcp, _echo_upper, 8080)
            families = sorted(listener.socket.family for listener in listeners)
            assert families == [stdlib_socket.AF_INET, stdlib_socket.AF_INET6]
            v6 = next(lst for lst in listeners if lst.socket.family == stdlib_socket.AF_INET6)
            assert v6.socket.getsockname() == ("::", 8080, 0, 0)
            assert v6.socket.getsockopt(stdlib_socket.IPPROTO_IPV6, stdlib_socket.IPV6_V6ONLY) == 1
            with h1.as_current():
                stream = await trio.open_tcp_stream("fd00::2", 8080)
                assert stream.socket.family == stdlib_socket.AF_INET6
                assert stream.socket.getpeername() == ("fd00::2", 8080, 0, 0)
                assert stream.socket.getsockname()[0] == "fd00::1"
                await stream.send_all(b"hello six")
                assert await stream.receive_some() == b"HELLO SIX"
                await stream.aclose()
                v4 = await trio.open_tcp_stream("h2", 8080)  # and the IPv4 listener still answers
                await v4.send_all(b"four")
                assert await v4.receive_some() == b"FOUR"
                await v4.aclose()
            nursery.cancel_scope.cancel()
        with h2.as_current():
            server = trio.socket.socket(stdlib_socket.AF_INET6, stdlib_socket.SOCK_DGRAM)
            await server.bind(("::", 5353))
        with h1.as_current():
            client = trio.socket.socket(stdlib_socket.AF_INET6, stdlib_socket.SOCK_DGRAM)
            assert client.getsockname() == ("::", 0, 0, 0)
            await client.sendto(b"query", ("fd00::2", 5353, 0, 0))
        data, sender = await server.recvfrom(100)
        assert data == b"query" and sender == ("fd00::1", client.getsockname()[1], 0, 0)
        await server.sendto(b"answer", sender)
        assert await client.recvfrom(100) == (b"answer", ("fd00::2", 5353, 0, 0))
        client.close()
        server.close()
