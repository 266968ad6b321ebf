"""Libraries on top of Trio's sockets, unmodified, over a trionet network:
httpx (through ``trio.open_tcp_stream``) against a hypercorn ASGI app served
by hypercorn's ``TCPServer`` over ``trio.open_tcp_listeners``, and anyio's
``connect_tcp`` and ``create_udp_socket`` (through ``trio.socket``)."""

from __future__ import annotations

from functools import partial

import anyio
import httpx
import pytest
import trio
import trio.testing
from hypercorn.config import Config
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ConnectionState
from hypercorn.utils import wrap_app

import trionet

pytestmark = pytest.mark.trio


async def _two_hosts(net: trionet.Network, **impairments: float) -> tuple[trionet.Host, trionet.Host]:
    client = await net.add_host("client")
    server = await net.add_host("server")
    link = await net.link(client, server, delay=0.01, **impairments)
    client.ifconfig(link.ends[0].name, "10.0.0.1/24")
    server.ifconfig(link.ends[1].name, "10.0.0.2/24")
    net.install_trio_sockets()
    return client, server


async def app(scope, receive, send):  # type: ignore[no-untyped-def]
    # A minimal ASGI application: echoes the path and the request body.
    assert scope["type"] == "http"
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    reply = f"{scope['method']} {scope['path']} from {scope['client'][0]}: ".encode() + body
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": reply})


async def test_httpx_against_hypercorn(autojump_clock: trio.testing.MockClock) -> None:
    async with trionet.open_network(seed=1) as net:
        client_host, server_host = await _two_hosts(net, loss=0.02)
        config = Config()
        async with trio.open_nursery() as nursery:
            with server_host.as_current():
                listeners = await trio.open_tcp_listeners(8000)
                handler = partial(
                    TCPServer, wrap_app(app, config.wsgi_max_body_size, None), config,
                    WorkerContext(None), ConnectionState({}),
                )
                nursery.start_soon(partial(trio.serve_listeners, handler, listeners))
            with client_host.as_current():
                async with httpx.AsyncClient(base_url="http://server:8000") as client:
                    for i in range(3):  # the second and third reuse the pooled connection
                        response = await client.post(f"/echo/{i}", content=b"x" * 20000)
                        assert response.status_code == 200
                        assert response.content == f"POST /echo/{i} from 10.0.0.1: ".encode() + b"x" * 20000
            nursery.cancel_scope.cancel()
        assert server_host.inet.tcp.statistics().accepts == 1


async def test_anyio_connect_tcp_and_udp(autojump_clock: trio.testing.MockClock) -> None:
    async with trionet.open_network(seed=2) as net:
        client_host, server_host = await _two_hosts(net)

        async def echo(stream: trio.SocketStream) -> None:
            async for chunk in stream:
                await stream.send_all(chunk[::-1])

        async with trio.open_nursery() as nursery:
            with server_host.as_current():
                await nursery.start(trio.serve_tcp, echo, 9000)
                udp_server = await anyio.create_udp_socket(local_host="10.0.0.2", local_port=9001)
            with client_host.as_current():
                async with await anyio.connect_tcp("server", 9000) as stream:
                    await stream.send(b"anyio")
                    assert await stream.receive() == b"oiyna"
                async with await anyio.create_udp_socket(local_host="10.0.0.1") as udp:
                    await udp.sendto(b"dgram", "10.0.0.2", 9001)
                    data, (addr, port) = await udp_server.receive()
                    assert data == b"dgram"
                    assert (addr, port) == udp.extra(anyio.abc.SocketAttribute.local_address)
            await udp_server.aclose()
            nursery.cancel_scope.cancel()
