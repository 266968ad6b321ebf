"""An ordinary Trio application, which imports nothing from trionet.

A line service: a client sends lines, the server answers each one in upper
case. ``serve`` is the server (``trio.serve_tcp``), ``shout`` the client
(``trio.open_tcp_stream`` by host name), and ``check_app`` the app's own
test, which a test suite would run against a server on localhost.
``unmodified_app.py`` runs all of it, untouched, over a lossy virtual
network.
"""

from __future__ import annotations

import trio

PORT = 7007
#: A line may be at most this long (the server closes on a longer one).
MAX_LINE = 4096


async def handle(stream: trio.SocketStream) -> None:
    """Answer every line of one connection in upper case, until its end."""
    buffer = b""
    async with stream:
        while data := await stream.receive_some(4096):
            buffer += data
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                await stream.send_all(line.upper() + b"\n")
            if len(buffer) > MAX_LINE:
                return


async def serve(
    port: int = PORT, host: str | None = None, *, task_status: trio.TaskStatus[object] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve until cancelled; ``task_status.started`` once listening."""
    await trio.serve_tcp(handle, port, host=host, task_status=task_status)


async def shout(host: str, lines: list[str], port: int = PORT) -> list[str]:
    """Send ``lines`` to the server at ``host`` and return its answers."""
    answers = []
    async with await trio.open_tcp_stream(host, port) as stream:
        buffer = b""
        for line in lines:
            await stream.send_all(line.encode() + b"\n")
            while b"\n" not in buffer:
                data = await stream.receive_some(4096)
                if not data:
                    raise ConnectionError("the server closed the connection early")
                buffer += data
            answer, buffer = buffer.split(b"\n", 1)
            answers.append(answer.decode())
    return answers


async def check_app(host: str, port: int = PORT) -> str:
    """The app's test: three clients at once, each line answered in upper
    case and in order. Returns a one-line summary; raises AssertionError."""
    results: dict[int, list[str]] = {}

    async def client(i: int) -> None:
        lines = [f"client {i} line {n}" for n in range(20)]
        results[i] = await shout(host, lines, port)
        assert results[i] == [line.upper() for line in lines], results[i]

    async with trio.open_nursery() as nursery:
        for i in range(3):
            nursery.start_soon(client, i)
    return f"{sum(len(r) for r in results.values())} lines answered in upper case, in order"
