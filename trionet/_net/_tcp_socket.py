"""TCP sockets as Trio streams and listeners.

A :class:`TcpStream` is a :class:`trio.abc.HalfCloseableStream` and a
:class:`TcpListener` a :class:`trio.abc.Listener`, so code written for
``trio.open_tcp_stream``/``trio.serve_tcp`` runs unchanged on a trionet host
(``host.open_tcp_stream``, ``host.open_tcp_listeners``, ``host.serve_tcp``).

Rules:

1. Every call that touches the connection is a message to the netisr thread
   that owns it (:meth:`~trionet._net._tcp.TcpPcb.call`); the application's
   task only waits. So every such call checkpoints.
2. A call that cannot go on (no send space, nothing to read) returns the
   connection's event counter with its answer and parks until the counter
   moves, so a wake-up between the answer and the park is not lost.
3. Errors follow Trio's :class:`~trio.SocketStream`: using a stream after
   :meth:`~TcpStream.aclose` raises :class:`trio.ClosedResourceError` (and
   wakes tasks blocked in it with that error); a connection the peer reset or
   that timed out raises :class:`trio.BrokenResourceError` whose
   ``__cause__`` is the :class:`~trionet.NetError` (also a
   :class:`ConnectionResetError` or :class:`TimeoutError`); two tasks
   sending (or receiving) at once raise :class:`trio.BusyResourceError`.
   Opening raises :class:`ConnectionRefusedError`, :class:`TimeoutError` or
   another :class:`~trionet.NetError` (``ENETUNREACH``...), each a
   :class:`~trionet.NetError` too.
4. :meth:`~TcpStream.aclose` closes at once, even when cancelled: the FIN
   (or, with unread data, a RST) goes out on the owning thread, which
   finishes the close on its own (the connection is an orphan).

``TCP_NODELAY`` is on for new streams, as Trio sets it for its own
``SocketStream``; :meth:`TcpStream.setsockopt_nodelay` turns it off.
"""

from __future__ import annotations

import errno
import operator
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import attrs
import trio

from .._exceptions import NetError, net_error
from ..protocols.tcp_connection import TcpOutput, TcpState, TcpStatistics
from ._inaddr import check_port, inet_aton, inet_ntoa
from ._tcp import ANY, TcpListen, TcpPcb

if TYPE_CHECKING:
    from ._tcp import Tcp

__all__ = ["TcpListener", "TcpStream", "open_tcp_listeners", "open_tcp_stream", "serve_tcp"]

#: What ``receive_some()`` without ``max_bytes`` returns at most.
DEFAULT_RECEIVE_SIZE = 65536
_SENDING = frozenset({TcpState.ESTABLISHED, TcpState.CLOSE_WAIT})


class _Conflict:
    """Raise :class:`trio.BusyResourceError` when two tasks use one side at once."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._held = False

    def __enter__(self) -> None:
        if self._held:
            raise trio.BusyResourceError(f"another task is {self._what} on this stream")
        self._held = True

    def __exit__(self, *exc: object) -> None:
        self._held = False


####################################################################
# Handlers: run on the connection's owning thread (TcpPcb.call)
####################################################################


def _connect(pcb: TcpPcb) -> int:
    pcb.run(pcb.conn.connect(trio.current_time()))
    return pcb.seq


def _send(pcb: TcpPcb, data: memoryview) -> tuple[int, int]:
    conn = pcb.conn
    if pcb.error is not None or conn.state not in _SENDING:
        return -1, pcb.seq
    out = conn.send(data, trio.current_time())
    pcb.run(out)
    return out.accepted, pcb.seq


def _space(pcb: TcpPcb) -> tuple[int, int]:
    conn = pcb.conn
    if pcb.error is not None or conn.state not in _SENDING:
        return -1, pcb.seq
    return conn.send_space, pcb.seq


def _shutdown(pcb: TcpPcb) -> None:
    if not pcb.detached:
        pcb.run(pcb.conn.close(trio.current_time()))


def _read(pcb: TcpPcb, max_bytes: int) -> tuple[bytes, int, bool]:
    conn = pcb.conn
    if conn.readable:
        out = conn.read(max_bytes, trio.current_time())
        pcb.run(out)
        return out.data, pcb.seq, False
    return b"", pcb.seq, conn.at_eof or pcb.error is not None or pcb.detached


def _close(pcb: TcpPcb) -> None:
    # soclose(): unread data resets the connection (RFC 2525 2.17), else FIN.
    pcb.orphan = True
    if pcb.detached:
        return
    conn = pcb.conn
    now = trio.current_time()
    pcb.run(conn.abort(now) if conn.readable else conn.close(now))


def _set_config(pcb: TcpPcb, changes: dict[str, Any]) -> None:
    if pcb.detached:
        return
    conn = pcb.conn
    conn.config = attrs.evolve(conn.config, **changes)
    pcb.run(TcpOutput(deadline=conn.next_deadline()))  # a timer may have moved


def _set_keepalive(pcb: TcpPcb, on: bool) -> None:
    if not pcb.detached:
        pcb.run(pcb.conn.set_keepalive(on, trio.current_time()))


def _abort_connect(pcb: TcpPcb) -> None:
    pcb.orphan = True
    if not pcb.detached:
        pcb.run(pcb.conn.abort(trio.current_time()))


####################################################################
# Streams
####################################################################


class TcpStream(trio.abc.HalfCloseableStream):
    """A TCP connection as a Trio stream. Made by :meth:`Host.open_tcp_stream
    <trionet.Host.open_tcp_stream>` or a :class:`TcpListener`.

    See the module's rules for errors, cancellation and checkpoints.
    """

    def __init__(self, pcb: TcpPcb) -> None:
        self._pcb = pcb
        self._send_conflict = _Conflict("sending")
        self._recv_conflict = _Conflict("receiving")
        self._closed = False
        self._eof_sent = False

    def __repr__(self) -> str:
        local, peer = self.getsockname(), self.getpeername()
        return f"<TcpStream {local[0]}:{local[1]} -> {peer[0]}:{peer[1]}>"

    def getsockname(self) -> tuple[str, int]:
        """The local ``(address, port)``."""
        return inet_ntoa(self._pcb.laddr), self._pcb.lport

    def getpeername(self) -> tuple[str, int]:
        """The peer's ``(address, port)``."""
        return inet_ntoa(self._pcb.faddr), self._pcb.fport

    @property
    def state(self) -> TcpState:
        """The connection's RFC 9293 state (a snapshot)."""
        return self._pcb.peek().state

    def statistics(self) -> TcpStatistics:
        """The connection's counters (a snapshot; see :class:`TcpStatistics`)."""
        return self._pcb.peek().statistics()

    def setsockopt_nodelay(self, on: bool) -> None:
        """``TCP_NODELAY``: turn Nagle's algorithm off (``True``) or on."""
        self._check_closed()
        self._pcb.post(_set_config, {"nodelay": bool(on)})

    def setsockopt_keepalive(self, on: bool) -> None:
        """``SO_KEEPALIVE``: probe an idle connection (``net.inet.tcp.keepidle``...)."""
        self._check_closed()
        self._pcb.post(_set_keepalive, bool(on))

    def setsockopt_user_timeout(self, seconds: float | None) -> None:
        """``TCP_USER_TIMEOUT`` (RFC 5482): drop the connection when sent data
        stays unacknowledged this long (``None``: only the retransmission
        limit applies). The stream then raises :class:`trio.BrokenResourceError`
        from a :class:`TimeoutError`."""
        self._check_closed()
        if seconds is not None and not seconds > 0:
            raise ValueError(f"the user timeout must be > 0 seconds or None, not {seconds!r}")
        self._pcb.post(_set_config, {"user_timeout": seconds})

    def _check_closed(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the stream is closed")

    def _broken(self) -> trio.BrokenResourceError:
        err = self._pcb.error
        cause = net_error(err if err is not None else errno.EPIPE)
        exc = trio.BrokenResourceError(f"the connection is broken: {cause}")
        exc.__cause__ = cause
        return exc

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Send all of ``data``; returns when the send buffer holds the rest.

        Raises:
            trio.BrokenResourceError: the connection was reset or timed out.
            trio.ClosedResourceError: after :meth:`aclose` (also while
                waiting) or :meth:`send_eof`.
            trio.BusyResourceError: another task is sending.
        """
        with self._send_conflict:
            self._check_closed()
            if self._eof_sent:
                raise trio.ClosedResourceError("cannot send after send_eof()")
            pcb = self._pcb
            with memoryview(data) as view:
                view = view.cast("B")
                if not view:
                    await trio.lowlevel.checkpoint()
                    self._check_closed()
                    if pcb.error is not None:
                        raise self._broken()
                    return
                total = 0
                while total < len(view):
                    accepted, seq = await pcb.call(_send, view[total:])
                    self._check_closed()
                    if accepted < 0:
                        raise self._broken()
                    total += accepted
                    if total < len(view):
                        await pcb.wait(seq)
                        self._check_closed()

    async def wait_send_all_might_not_block(self) -> None:
        """Return when the send buffer has room (or the connection is broken)."""
        with self._send_conflict:
            self._check_closed()
            pcb = self._pcb
            while True:
                space, seq = await pcb.call(_space)
                self._check_closed()
                if space != 0:
                    return
                await pcb.wait(seq)
                self._check_closed()

    async def send_eof(self) -> None:
        """Half-close: a FIN follows the data sent so far. Idempotent."""
        with self._send_conflict:
            self._check_closed()
            if self._eof_sent:
                await trio.lowlevel.checkpoint()
                return
            self._eof_sent = True
            await self._pcb.call(_shutdown)

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Wait for data; return up to ``max_bytes`` (default 65536) bytes,
        or ``b""`` once the peer has sent its FIN and everything before it
        was read.

        Raises:
            ValueError, TypeError: ``max_bytes`` is not a positive int.
            trio.BrokenResourceError: the connection was reset or timed out
                (after any data received before it was read).
            trio.ClosedResourceError: after :meth:`aclose` (also while waiting).
            trio.BusyResourceError: another task is receiving.
        """
        if max_bytes is None:
            max_bytes = DEFAULT_RECEIVE_SIZE
        else:
            max_bytes = operator.index(max_bytes)
            if max_bytes < 1:
                raise ValueError(f"max_bytes must be at least 1, not {max_bytes}")
        with self._recv_conflict:
            self._check_closed()
            pcb = self._pcb
            while True:
                data, seq, done = await pcb.call(_read, max_bytes)
                self._check_closed()
                if data:
                    return data
                if done:
                    if pcb.error is not None:
                        raise self._broken()
                    return b""
                await pcb.wait(seq)
                self._check_closed()

    async def aclose(self) -> None:
        """Close the stream (FIN, or RST if received data was left unread).

        Closes even if cancelled; tasks blocked on this stream get
        :class:`trio.ClosedResourceError`. Idempotent.
        """
        if not self._closed:
            self._closed = True
            self._pcb.post(_close)
            self._pcb.wake()
        await trio.lowlevel.checkpoint()


####################################################################
# Listeners
####################################################################


class TcpListener(trio.abc.Listener[TcpStream]):
    """A listening TCP socket. Made by :meth:`Host.open_tcp_listeners
    <trionet.Host.open_tcp_listeners>`.

    Closing it resets the connections it had not handed out yet.
    """

    def __init__(self, tcp: Tcp, lst: TcpListen) -> None:
        self._tcp = tcp
        self._lst = lst
        self._conflict = _Conflict("accepting")

    def __repr__(self) -> str:
        host, port = self.getsockname()
        return f"<TcpListener {host}:{port}>"

    def getsockname(self) -> tuple[str, int]:
        """The bound ``(address, port)``."""
        return inet_ntoa(self._lst.laddr), self._lst.lport

    async def accept(self) -> TcpStream:
        """Wait for an established connection and return it as a stream.

        Raises:
            trio.ClosedResourceError: the listener is closed (also while waiting).
            trio.BusyResourceError: another task is accepting.
        """
        with self._conflict:
            lst = self._lst
            while True:
                if lst.closed:
                    raise trio.ClosedResourceError("the listener is closed")
                if lst.queue:
                    pcb = lst.queue.popleft()
                    pcb.post(_set_config, {"nodelay": True})
                    await trio.lowlevel.checkpoint()
                    return TcpStream(pcb)
                await lst.lot.park()

    async def aclose(self) -> None:
        """Stop listening. Idempotent; closes even if cancelled."""
        self._tcp.unlisten(self._lst)
        await trio.lowlevel.checkpoint()


####################################################################
# Opening
####################################################################


async def open_tcp_stream(
    tcp: Tcp, address: str, port: int, *, local_address: str | None = None
) -> TcpStream:
    """Connect to ``address:port``; see :meth:`Host.open_tcp_stream`."""
    faddr = inet_aton(address)
    check_port(port)
    if port == 0:
        raise NetError(errno.EADDRNOTAVAIL, "cannot connect to port 0")
    laddr = inet_aton(local_address) if local_address is not None else None
    pcb = tcp.connect_pcb(faddr, port, laddr, 0)
    pcb.post(_set_config, {"nodelay": True})
    try:
        seq = await pcb.call(_connect)
        while not pcb.connected and pcb.error is None and not pcb.detached:
            await pcb.wait(seq)
            seq = pcb.seq
    except BaseException:
        pcb.post(_abort_connect)
        raise
    if not pcb.connected:
        err = pcb.error if pcb.error is not None else errno.ECONNABORTED
        raise net_error(err, f"connecting to {address}:{port}: {net_error(err).strerror}")
    return TcpStream(pcb)


async def open_tcp_listeners(
    tcp: Tcp, port: int, *, host: str | None = None, backlog: int | None = None
) -> list[TcpListener]:
    """Listen on ``port``; see :meth:`Host.open_tcp_listeners`."""
    check_port(port)
    laddr = ANY if host in (None, "", "0.0.0.0") else inet_aton(host)  # type: ignore[arg-type]
    if backlog is not None:
        backlog = operator.index(backlog)
    lst = tcp.listen(laddr, port, backlog if backlog is not None else 0xFFFF)
    await trio.lowlevel.checkpoint()
    return [TcpListener(tcp, lst)]


async def serve_tcp(
    tcp: Tcp,
    handler: Callable[[TcpStream], Awaitable[object]],
    port: int,
    *,
    host: str | None = None,
    backlog: int | None = None,
    handler_nursery: trio.Nursery | None = None,
    task_status: trio.TaskStatus[list[TcpListener]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Listen and run ``handler(stream)`` per connection; see :meth:`Host.serve_tcp`."""
    listeners = await open_tcp_listeners(tcp, port, host=host, backlog=backlog)
    await trio.serve_listeners(
        handler, listeners, handler_nursery=handler_nursery, task_status=task_status
    )
