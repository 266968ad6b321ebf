"""TCP sockets as Trio streams and listeners.

A :class:`TcpStream` is a :class:`trio.abc.HalfCloseableStream` and a
:class:`TcpListener` a :class:`trio.abc.Listener`, so code written for
``trio.open_tcp_stream``/``trio.serve_tcp`` runs unchanged on a trionet host
(``host.open_tcp_stream``, ``host.open_tcp_listeners``, ``host.serve_tcp``).

Rules:

1. Only the netisr thread that owns the connection changes its state
   (:class:`~trionet._net._tcp.TcpPcb`). The socket's task works on the two
   socket buffers, as BSD's ``sosend``/``soreceive`` do: it appends to the
   send buffer and takes from the front of the receive buffer, each in one
   step that does not await, and then *kicks* the owning thread
   (:meth:`~trionet._net._tcp.TcpPcb.kick`, a coalesced message) to send the
   data or a window update. Nothing waits for a reply (DragonFly's
   asynchronous ``so_pru_send_async``/``so_pru_rcvd_async``); other requests
   (connect, shutdown, close, options) are messages too, also without a
   reply.
2. So cancellation cannot lose anything: every operation checks for
   cancellation *before* it touches a buffer (``checkpoint_if_cancelled``),
   touches it without awaiting, and then yields with a shielded checkpoint
   (unless it parked on the way, which was its checkpoint); the only other
   place it can be cancelled is parked, waiting for the connection (data,
   space, a connection to accept), where it has done nothing yet. Each
   method's docstring says what a cancel leaves behind.
3. A task parks on the connection's lot only after checking, in the same
   step, that what it waits for is not there yet; the owning thread unparks
   the lot on every event, so no wake-up is lost.
4. Errors follow Trio's :class:`~trio.SocketStream`: using a stream after
   :meth:`~TcpStream.aclose` raises :class:`trio.ClosedResourceError` (and
   wakes tasks blocked in it with that error); a connection the peer reset or
   that timed out raises :class:`trio.BrokenResourceError` whose
   ``__cause__`` is the :class:`~trionet.NetError` (also a
   :class:`ConnectionResetError` or :class:`TimeoutError`); two tasks
   sending (or receiving) at once raise :class:`trio.BusyResourceError`.
   Opening raises :class:`ConnectionRefusedError`, :class:`TimeoutError` or
   another :class:`~trionet.NetError` (``ENETUNREACH``...).
5. :meth:`~TcpStream.aclose` closes at once, even when cancelled: the FIN
   (or, with unread data, a RST) goes out on the owning thread, which
   finishes the close on its own (the connection is an orphan).

``TCP_NODELAY`` is on for new streams, as Trio sets it for its own
``SocketStream``; :meth:`TcpStream.setsockopt_nodelay` turns it off.

DragonFly: ``sys/kern/uipc_socket.c`` (``sosendtcp``, ``soreceive``),
``sys/netinet/tcp_usrreq.c``.
"""

from __future__ import annotations

import errno
import operator
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import attrs
import trio

from .._exceptions import NetError
from ..protocols.tcp_connection import TcpOutput, TcpState, TcpStatistics
from ._inaddr import check_port, inet_ntop, inet_pton
from ._tcp import ANY, TcpListen, TcpPcb, abort_pcb

if TYPE_CHECKING:
    from ._tcp import Tcp

__all__ = ["TcpListener", "TcpStream", "listen_nowait", "open_tcp_listeners", "open_tcp_stream", "serve_tcp"]

#: What ``receive_some()`` without ``max_bytes`` returns at most.
DEFAULT_RECEIVE_SIZE = 65536


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
# Handlers: run on the connection's owning thread (TcpPcb.post)
####################################################################


def _connect(pcb: TcpPcb) -> None:
    if not pcb.detached:
        pcb.run(pcb.conn.connect(trio.current_time()))


def _shutdown(pcb: TcpPcb) -> None:
    if not pcb.detached:
        pcb.run(pcb.conn.close(trio.current_time()))


def _close(pcb: TcpPcb, reset: bool) -> None:
    # soclose(): unread data resets the connection (RFC 2525 2.17), else FIN.
    pcb.orphan = True
    if pcb.detached:
        return
    conn = pcb.conn
    now = trio.current_time()
    pcb.run(conn.abort(now) if reset or conn.readable else conn.close(now))


def _set_config(pcb: TcpPcb, changes: dict[str, Any]) -> None:
    if pcb.detached:
        return
    conn = pcb.conn
    conn.config = attrs.evolve(conn.config, **changes)
    pcb.run(TcpOutput(deadline=conn.next_deadline()))  # a timer may have moved


def _set_keepalive(pcb: TcpPcb, on: bool) -> None:
    if not pcb.detached:
        pcb.run(pcb.conn.set_keepalive(on, trio.current_time()))


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
        # A send_all cancelled after part of its data went into the send
        # buffer: the stream cannot say which bytes the peer will get.
        self._send_broken = False

    def __repr__(self) -> str:
        local, peer = self.getsockname(), self.getpeername()
        return f"<TcpStream {local[0]}:{local[1]} -> {peer[0]}:{peer[1]}>"

    def getsockname(self) -> tuple[str, int]:
        """The local ``(address, port)``."""
        return inet_ntop(self._pcb.laddr), self._pcb.lport

    def getpeername(self) -> tuple[str, int]:
        """The peer's ``(address, port)``."""
        return inet_ntop(self._pcb.faddr), self._pcb.fport

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
        cause = NetError(err if err is not None else errno.EPIPE)
        exc = trio.BrokenResourceError(f"the connection is broken: {cause}")
        exc.__cause__ = cause
        return exc

    def _check_sendable(self) -> None:
        # Between two steps of a sending call: closed, half-closed or broken?
        self._check_closed()
        if self._eof_sent:
            raise trio.ClosedResourceError("cannot send after send_eof()")
        if self._send_broken:
            raise trio.BrokenResourceError("an earlier send_all was cancelled part-way")
        if not self._pcb.peek().can_send:
            raise self._broken()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Send all of ``data``; returns when the send buffer holds the rest.

        Cancellation: a cancel that arrives before any of ``data`` went into
        the send buffer leaves the stream as it was (nothing sent). Once part
        of it is in the buffer, which happens only when ``data`` is larger
        than the free space, a cancel breaks the stream for sending: that
        part reaches the peer, later sends raise
        :class:`trio.BrokenResourceError`, and :meth:`aclose` resets the
        connection, so the peer learns the stream was cut rather than seeing
        a clean end after half a message.

        Raises:
            trio.BrokenResourceError: the connection was reset or timed out,
                or an earlier send_all was cancelled part-way.
            trio.ClosedResourceError: after :meth:`aclose` (also while
                waiting) or :meth:`send_eof`.
            trio.BusyResourceError: another task is sending.
        """
        with self._send_conflict:
            self._check_sendable()
            await trio.lowlevel.checkpoint_if_cancelled()
            pcb = self._pcb
            limit = pcb.peek().config.send_buffer
            buf = pcb.sndbuf
            with memoryview(data) as view:
                view = view.cast("B")
                total, size = 0, len(view)
                parked = False
                while True:
                    self._check_sendable()
                    n = min(limit - len(buf), size - total)
                    if n > 0:
                        buf += view[total : total + n]
                        total += n
                        pcb.kick()
                    if total == size:
                        break
                    try:
                        await pcb.lot.park()
                    except BaseException:
                        if total:
                            self._send_broken = True
                        raise
                    parked = True
            if not parked:  # a park is a checkpoint already
                await trio.lowlevel.cancel_shielded_checkpoint()

    async def send_some(self, data: bytes | bytearray | memoryview) -> int:
        """Put as much of ``data`` as fits into the send buffer and return
        how many bytes went in (an empty ``data`` returns 0); the socket
        layer's ``send`` (:class:`~trionet.TrioSocket`) is built on it.

        It first waits until ``min(len(data), send_buffer // 2)`` bytes fit,
        so data up to half the send buffer goes in whole and a larger one in
        pieces of at least half the buffer, never a sliver: a caller that
        loops until all is sent (Trio's ``SocketStream.send_all``) wakes
        once per piece rather than once per freed segment (Linux likewise
        wakes a writer only once a third of the buffer is free).

        Cancellation: if cancelled, nothing was sent (the bytes go in in one
        step, after the last wait).

        Raises:
            trio.BrokenResourceError: the connection was reset or timed out,
                or an earlier send_all was cancelled part-way.
            trio.ClosedResourceError: after :meth:`aclose` (also while
                waiting) or :meth:`send_eof`.
            trio.BusyResourceError: another task is sending.
        """
        with self._send_conflict:
            self._check_sendable()
            await trio.lowlevel.checkpoint_if_cancelled()
            pcb = self._pcb
            limit = pcb.peek().config.send_buffer
            buf = pcb.sndbuf
            with memoryview(data) as view:
                view = view.cast("B")
                size = len(view)
                parked = False
                want = min(size, max(limit // 2, 1))  # (see the docstring)
                while True:
                    n = min(limit - len(buf), size)
                    if n >= want:
                        break
                    await pcb.lot.park()
                    parked = True
                    self._check_sendable()
                if n > 0:
                    buf += view[:n]
                    pcb.kick()
            if not parked:  # a park is a checkpoint already
                await trio.lowlevel.cancel_shielded_checkpoint()
            return max(n, 0)

    async def wait_send_all_might_not_block(self) -> None:
        """Return when the send buffer has room (or the connection is broken).

        Cancellation: nothing to undo; the stream is unchanged.
        """
        with self._send_conflict:
            self._check_closed()
            await trio.lowlevel.checkpoint_if_cancelled()
            pcb = self._pcb
            conn = pcb.peek()
            while True:
                self._check_closed()
                if not conn.can_send or len(pcb.sndbuf) < conn.config.send_buffer:
                    break
                await pcb.lot.park()
            await trio.lowlevel.cancel_shielded_checkpoint()

    def send_nowait(self, data: bytes | bytearray | memoryview) -> int:
        """Put as much of ``data`` as fits into the send buffer, without
        waiting; return how many bytes went in (at least one: an empty
        ``data`` returns 0). The socket layer's ``send``
        (:class:`~trionet.TrioSocket`) is built on it.

        Raises:
            trio.WouldBlock: the send buffer is full (nothing was taken).
            trio.BrokenResourceError: the connection was reset or timed out.
            trio.ClosedResourceError: after :meth:`aclose` or :meth:`send_eof`.
            trio.BusyResourceError: another task is in :meth:`send_all`.
        """
        with self._send_conflict:
            self._check_sendable()
            pcb = self._pcb
            buf = pcb.sndbuf
            with memoryview(data) as view:
                view = view.cast("B")
                if not len(view):
                    return 0
                n = min(pcb.peek().config.send_buffer - len(buf), len(view))
                if n <= 0:
                    raise trio.WouldBlock
                buf += view[:n]
            pcb.kick()
            return n

    def send_eof_nowait(self) -> None:
        """:meth:`send_eof` without the checkpoint (``shutdown(SHUT_WR)``):
        a FIN follows the data sent so far. Idempotent.

        Raises:
            trio.ClosedResourceError: after :meth:`aclose`.
            trio.BusyResourceError: another task is sending.
        """
        with self._send_conflict:
            self._check_closed()
            if not self._eof_sent:
                self._eof_sent = True
                self._pcb.post(_shutdown)

    async def send_eof(self) -> None:
        """Half-close: a FIN follows the data sent so far. Idempotent.

        Cancellation: if cancelled, no FIN was queued and the stream is
        unchanged; otherwise the FIN is queued.

        Raises:
            trio.ClosedResourceError: after :meth:`aclose`.
            trio.BusyResourceError: another task is sending.
        """
        with self._send_conflict:
            self._check_closed()
            await trio.lowlevel.checkpoint_if_cancelled()
            if not self._eof_sent:
                self._eof_sent = True
                self._pcb.post(_shutdown)
            await trio.lowlevel.cancel_shielded_checkpoint()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Wait for data; return up to ``max_bytes`` (default 65536) bytes,
        or ``b""`` once the peer has sent its FIN and everything before it
        was read.

        Cancellation: if cancelled, no bytes were taken; the next call
        returns them.

        Raises:
            ValueError, TypeError: ``max_bytes`` is not a positive int.
            trio.BrokenResourceError: the connection was reset or timed out.
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
            await trio.lowlevel.checkpoint_if_cancelled()
            pcb = self._pcb
            buf = pcb.rcvbuf
            conn = pcb.peek()
            parked = False
            while True:
                self._check_closed()
                if buf:
                    data = bytes(buf[:max_bytes])
                    del buf[:max_bytes]
                    pcb.kick()
                    break
                if pcb.error is not None:
                    raise self._broken()
                if conn.at_eof or pcb.detached:
                    data = b""
                    break
                await pcb.lot.park()
                parked = True
            if not parked:  # a park is a checkpoint already
                await trio.lowlevel.cancel_shielded_checkpoint()
            return data

    def receive_some_nowait(self, max_bytes: int | None = None, *, peek: bool = False) -> bytes:
        """:meth:`receive_some` without waiting: up to ``max_bytes`` bytes
        that are already here, or ``b""`` at the end of the stream. With
        ``peek=True`` the bytes stay in the receive buffer (``MSG_PEEK``).

        Raises:
            trio.WouldBlock: no data yet and the stream is not at its end.
            trio.BrokenResourceError: the connection was reset or timed out.
            trio.ClosedResourceError: after :meth:`aclose`.
            trio.BusyResourceError: another task is receiving.
            ValueError, TypeError: ``max_bytes`` is not a positive int.
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
            buf = pcb.rcvbuf
            if buf:
                data = bytes(buf[:max_bytes])
                if not peek:
                    del buf[:max_bytes]
                    pcb.kick()
                return data
            if pcb.error is not None:
                raise self._broken()
            if pcb.peek().at_eof or pcb.detached:
                return b""
            raise trio.WouldBlock

    def is_readable(self) -> bool:
        """Whether :meth:`receive_some` would return without waiting: data
        is here, the peer has finished or reset, or the stream is closed
        (then it raises). Does not wait (httpx asks it of idle pooled
        connections)."""
        pcb = self._pcb
        return bool(
            self._closed
            or pcb.rcvbuf
            or pcb.error is not None
            or pcb.detached
            or pcb.peek().at_eof
        )

    async def wait_readable(self) -> None:
        """Return when :meth:`is_readable` is true.

        Cancellation: nothing to undo; the stream is unchanged.

        Raises:
            trio.ClosedResourceError: after :meth:`aclose` (also while waiting).
            trio.BusyResourceError: another task is receiving.
        """
        with self._recv_conflict:
            self._check_closed()
            await trio.lowlevel.checkpoint_if_cancelled()
            parked = False
            while not self.is_readable():
                await self._pcb.lot.park()
                parked = True
            self._check_closed()
            if not parked:
                await trio.lowlevel.cancel_shielded_checkpoint()

    def close(self) -> None:
        """:meth:`aclose` without the checkpoint (the socket layer's sync
        ``close``). Idempotent."""
        if not self._closed:
            self._closed = True
            self._pcb.post(_close, self._send_broken)
            self._pcb.wake()

    async def aclose(self) -> None:
        """Close the stream (FIN; RST if received data was left unread or a
        send_all was cancelled part-way).

        Cancellation: closes even if cancelled; tasks blocked on this stream
        get :class:`trio.ClosedResourceError`. Idempotent.
        """
        self.close()
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
        return inet_ntop(self._lst.laddr), self._lst.lport

    async def accept(self) -> TcpStream:
        """Wait for an established connection and return it as a stream.

        Cancellation: if cancelled, no connection was taken; it stays in
        the accept queue for the next call.

        Raises:
            trio.ClosedResourceError: the listener is closed (also while waiting).
            trio.BusyResourceError: another task is accepting.
        """
        with self._conflict:
            lst = self._lst
            await trio.lowlevel.checkpoint_if_cancelled()
            while True:
                if lst.closed:
                    raise trio.ClosedResourceError("the listener is closed")
                if lst.queue:
                    stream = TcpStream(lst.queue.popleft())  # (TCP_NODELAY: Tcp.config)
                    break
                await lst.lot.park()
            await trio.lowlevel.cancel_shielded_checkpoint()
            return stream

    def is_readable(self) -> bool:
        """Whether :meth:`accept` would return without waiting (a connection
        is queued, or the listener is closed and it raises)."""
        return bool(self._lst.closed or self._lst.queue)

    def close(self) -> None:
        """:meth:`aclose` without the checkpoint (the socket layer's sync
        ``close``). Idempotent."""
        self._tcp.unlisten(self._lst)

    async def aclose(self) -> None:
        """Stop listening. Idempotent; closes even if cancelled."""
        self.close()
        await trio.lowlevel.checkpoint()


####################################################################
# Opening
####################################################################


async def open_tcp_stream(
    tcp: Tcp, address: str, port: int, *, local_address: str | None = None, local_port: int = 0
) -> TcpStream:
    """Connect to ``address:port``; see :meth:`Host.open_tcp_stream`.

    Cancellation: if cancelled, no connection is left behind: one in
    progress is aborted (a RST if the peer already answered).
    """
    faddr = inet_pton(address)
    check_port(port)
    if port == 0:
        raise NetError(errno.EADDRNOTAVAIL, "cannot connect to port 0")
    laddr = inet_pton(local_address) if local_address is not None else None
    await trio.lowlevel.checkpoint_if_cancelled()
    check_port(local_port)
    pcb = tcp.connect_pcb(faddr, port, laddr, local_port)  # (TCP_NODELAY: Tcp.config)
    pcb.post(_connect)
    try:
        while not pcb.connected and pcb.error is None and not pcb.detached:
            await pcb.lot.park()
    except BaseException:
        pcb.post(abort_pcb)
        raise
    if not pcb.connected:
        err = pcb.error if pcb.error is not None else errno.ECONNABORTED
        raise NetError(err, f"connecting to {address}:{port}: {os.strerror(err)}")
    return TcpStream(pcb)


def listen_nowait(
    tcp: Tcp, port: int, *, host: str | None = None, backlog: int | None = None
) -> TcpListener:
    """Listen on ``port`` without a checkpoint (the socket layer's sync
    ``listen``); see :meth:`Host.open_tcp_listeners`."""
    check_port(port)
    # No host: one listener for both families (a dual-stack socket, as an
    # IPv6 socket with IPV6_V6ONLY off); "0.0.0.0" or "::" only its own.
    dual = host in (None, "")
    laddr = ANY if host in (None, "", "0.0.0.0") else inet_pton(host)  # type: ignore[arg-type]
    if backlog is not None:
        backlog = operator.index(backlog)
    return TcpListener(tcp, tcp.listen(laddr, port, backlog if backlog is not None else 0xFFFF, dual=dual))


async def open_tcp_listeners(
    tcp: Tcp, port: int, *, host: str | None = None, backlog: int | None = None
) -> list[TcpListener]:
    """Listen on ``port``; see :meth:`Host.open_tcp_listeners`."""
    listener = listen_nowait(tcp, port, host=host, backlog=backlog)
    await trio.lowlevel.checkpoint()
    return [listener]


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
