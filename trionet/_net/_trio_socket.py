"""Trio's socket API over a trionet host: unmodified Trio programs on a virtual network.

:class:`TrioSocket` objects are :class:`trio.socket.SocketType` subclasses
for ``AF_INET`` and ``AF_INET6``, ``SOCK_STREAM`` and ``SOCK_DGRAM``, built on the stack's own
sockets (:class:`~trionet.TcpStream`, :class:`~trionet.TcpListener`,
:class:`~trionet.UdpSocket`). :class:`TrioSocketFactory` and
:class:`TrioResolver` plug them into ``trio.socket.socket`` and
``trio.socket.getaddrinfo`` (:meth:`Network.install_trio_sockets
<trionet.Network.install_trio_sockets>` installs both), so
``trio.open_tcp_stream``, ``trio.serve_tcp``, ``trio.open_tcp_listeners``
and the libraries on top of them run over the network unchanged.

Rules:

1. *Which host.* Trio's factory and resolver are per run (RunVars); the
   host is per task: :meth:`Host.as_current <trionet.Host.as_current>` sets
   a :class:`contextvars.ContextVar`, and Trio copies the spawning task's
   context into each new task, so a server started inside ``with
   h2.as_current():`` makes its sockets on ``h2`` for good. Outside any
   ``as_current()`` a socket or a name lookup raises :class:`RuntimeError`
   (or, with ``passthrough=True``, goes to the real kernel).
2. *Errors are the kernel's.* Every failure is the :class:`OSError` a BSD
   socket returns, with its errno: the stack's ``NetError`` passes through;
   ``trio.ClosedResourceError`` becomes ``EBADF`` (which Trio's
   ``SocketStream`` turns back into ``ClosedResourceError``); a broken
   connection becomes its cause (``ECONNRESET``, ``ETIMEDOUT``) or
   ``EPIPE``; an unsupported option is ``ENOPROTOOPT`` and an
   unsupported family ``EAFNOSUPPORT``: ``AF_INET6`` on a host with IPv6
   enabled on no interface, as on a kernel without IPv6 (so there
   ``trio.open_tcp_listeners`` skips IPv6 and gives one listener; on a host
   with IPv6 it gives two, an IPv4 one and an IPv6-only one, as on Linux).
3. *Cancellation as Trio's sockets.* Each async call checks for
   cancellation before it acts and ends with a shielded checkpoint, or
   waits (readable, writable, a connection) before acting; a cancel leaves
   nothing half done (``send``: nothing sent; ``recv``/``recvfrom``/
   ``accept``: nothing taken), except ``connect``, which closes the socket
   as Trio's does.
4. ``fileno()`` is a number no real descriptor has (from 1 << 20 up), and
   -1 once closed; nothing may select on it.

*Divergence:* ``recv``/``recvfrom``/``send`` with ``MSG_DONTWAIT`` raise
:class:`BlockingIOError` instead of waiting, as the flag asks; Trio's own
socket waits anyway (its sockets are non-blocking already, and it retries
on ``EAGAIN``). Accepted ``send`` flags: ``MSG_NOSIGNAL``,
``MSG_DONTWAIT``; any other flag is ``EOPNOTSUPP``. A TCP ``send``
without flags waits until ``min(len(data), send buffer // 2)`` bytes fit
where Trio's takes any room there is (:meth:`TcpStream.send_some` says
why). A TCP ``bind`` reserves the port against listeners and other bound sockets only
(``SO_REUSEADDR`` is kept but not consulted); a connection in
``TIME_WAIT`` does not block it.

DragonFly: ``sys/kern/uipc_syscalls.c`` (``kern_socket``, ``kern_bind``,
``kern_listen``, ``kern_accept``, ``kern_connect``), ``uipc_socket.c``
(``sosetopt``, ``sogetopt``).
"""

from __future__ import annotations

import contextvars
import errno
import itertools
import socket as _stdlib_socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn

import trio

from .._exceptions import NetError
from ._dns import resolve as dns_resolve
from ._dns import resolve_ptr
from ._inaddr import check_port, inet_aton, inet_pton
from ._tcp_socket import TcpListener, TcpStream, listen_nowait, open_tcp_stream
from ._udp import UdpSocket

if TYPE_CHECKING:
    from ._host import Host

__all__ = ["TrioResolver", "TrioSocket", "TrioSocketFactory", "current_host", "host_context"]

AF_INET = _stdlib_socket.AF_INET
AF_INET6 = _stdlib_socket.AF_INET6
_IPV6_V6ONLY = getattr(_stdlib_socket, "IPV6_V6ONLY", 26)
SOCK_STREAM = _stdlib_socket.SOCK_STREAM
SOCK_DGRAM = _stdlib_socket.SOCK_DGRAM
_TYPE_FLAGS = getattr(_stdlib_socket, "SOCK_NONBLOCK", 0) | getattr(_stdlib_socket, "SOCK_CLOEXEC", 0)
# Plain ints: the socket module's are IntFlag members, whose & and | are
# Python calls (per send and recv).
MSG_PEEK = int(_stdlib_socket.MSG_PEEK)
MSG_DONTWAIT = int(getattr(_stdlib_socket, "MSG_DONTWAIT", 0x40))
MSG_NOSIGNAL = int(getattr(_stdlib_socket, "MSG_NOSIGNAL", 0))
_SEND_FLAGS = MSG_NOSIGNAL | MSG_DONTWAIT
_RECV_FLAGS = MSG_PEEK | MSG_DONTWAIT
SOL_SOCKET = _stdlib_socket.SOL_SOCKET
IPPROTO_TCP = _stdlib_socket.IPPROTO_TCP
IPPROTO_IP = _stdlib_socket.IPPROTO_IP
IPPROTO_IPV6 = getattr(_stdlib_socket, "IPPROTO_IPV6", 41)

#: Options a socket keeps and reports (setting one changes nothing else).
#: (level, option) -> the value a new socket reports.
_STORED: dict[tuple[int, int], int] = {
    (SOL_SOCKET, _stdlib_socket.SO_REUSEADDR): 0,
    (IPPROTO_TCP, getattr(_stdlib_socket, "TCP_NOTSENT_LOWAT", 25)): 0,
    (IPPROTO_IPV6, _IPV6_V6ONLY): 0,
    (IPPROTO_IP, getattr(_stdlib_socket, "IP_BIND_ADDRESS_NO_PORT", 24)): 0,
}
if hasattr(_stdlib_socket, "SO_REUSEPORT"):
    _STORED[(SOL_SOCKET, _stdlib_socket.SO_REUSEPORT)] = 0
_TCP_NODELAY = (IPPROTO_TCP, _stdlib_socket.TCP_NODELAY)
_SO_KEEPALIVE = (SOL_SOCKET, _stdlib_socket.SO_KEEPALIVE)
_SO_BROADCAST = (SOL_SOCKET, _stdlib_socket.SO_BROADCAST)
_SO_ACCEPTCONN = (SOL_SOCKET, getattr(_stdlib_socket, "SO_ACCEPTCONN", 30))
_SO_ERROR = (SOL_SOCKET, _stdlib_socket.SO_ERROR)
_SO_TYPE = (SOL_SOCKET, _stdlib_socket.SO_TYPE)
_SO_BINDTODEVICE = (SOL_SOCKET, getattr(_stdlib_socket, "SO_BINDTODEVICE", 25))

_fds = itertools.count(1 << 20)

####################################################################
# The current host
####################################################################

#: The host whose stack ``trio.socket`` uses in this task (and the tasks it
#: starts); set by :meth:`Host.as_current`.
current_host: contextvars.ContextVar[Host | None] = contextvars.ContextVar(
    "trionet_current_host", default=None
)


@contextmanager
def host_context(host: Host) -> Iterator[Host]:
    """:meth:`Host.as_current`'s body."""
    token = current_host.set(host)
    try:
        yield host
    finally:
        current_host.reset(token)


def _no_host(what: str) -> RuntimeError:
    return RuntimeError(
        f"{what} outside any 'with host.as_current():' block; trionet's trio sockets are "
        "installed, so this would have used the real kernel. Enter a host's as_current(), "
        "or install with passthrough=True to let such calls reach the real kernel."
    )


####################################################################
# Errors
####################################################################


def _oserror(err: int, text: str | None = None) -> OSError:
    # The builtin subclass for the errno (ConnectionResetError...), as the
    # stack's NetError makes it.
    return NetError(err, text)


def _raise_translated(exc: BaseException) -> NoReturn:
    """Rule 2: raise the kernel's OSError for one of the stack's Trio errors."""
    if isinstance(exc, trio.ClosedResourceError):
        raise _oserror(errno.EBADF, "the socket is closed") from exc
    cause = exc.__cause__
    if isinstance(cause, OSError):
        raise cause from None
    raise _oserror(errno.EPIPE, str(exc)) from exc


#: What the stack raises that rule 2 turns into an OSError.
_STREAM_ERRORS = (trio.ClosedResourceError, trio.BrokenResourceError)


class _Translated:
    """Rule 2 as ``with _translated:`` (the calls a program makes once; the
    per-packet ones catch :data:`_STREAM_ERRORS` themselves, which costs no
    call)."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, typ: object, exc: BaseException | None, tb: object) -> bool:
        if isinstance(exc, _STREAM_ERRORS):
            _raise_translated(exc)
        return False


_translated = _Translated()


def _check_flags(flags: int, allowed: int) -> None:
    if flags & ~allowed:
        raise _oserror(errno.EOPNOTSUPP, f"unsupported flags {flags & ~allowed:#x}")


async def _resolve(address: Any, *, local: bool, family: int = AF_INET) -> tuple[str, int]:
    # A (host, port) pair with a numeric or resolvable host; for AF_INET6
    # also (host, port, flowinfo, scope_id), the scope ignored (a
    # link-local peer is reached by the zone of the source, see Ip6.route).
    v6 = family == AF_INET6
    if not isinstance(address, tuple) or len(address) not in ((2, 4) if v6 else (2,)):
        shape = "(host, port[, flowinfo, scope_id])" if v6 else "(host, port)"
        raise TypeError(f"an {'AF_INET6' if v6 else 'AF_INET'} address must be a {shape} tuple, not {address!r}")
    host, port = address[0], address[1]
    if isinstance(host, bytes):
        host = host.decode("ascii")
    if not isinstance(host, str):
        raise TypeError(f"the host must be a str, not {host!r}")
    check_port(port)
    if v6:
        host = host.partition("%")[0]
        if host in ("", "::") and local:
            return "::", port
        try:
            inet_pton(host if ":" in host else "-")
        except ValueError:
            infos = await trio.socket.getaddrinfo(host, port, AF_INET6)
            host = infos[0][4][0]
        return host, port
    if host in ("", "0.0.0.0") and local:
        return "0.0.0.0", port
    if host == "<broadcast>":
        return "255.255.255.255", port
    try:
        inet_aton(host)
    except ValueError:
        infos = await trio.socket.getaddrinfo(host, port, AF_INET)
        host = infos[0][4][0]
    return host, port


####################################################################
# Sockets
####################################################################


class TrioSocket(trio.socket.SocketType):
    """A trionet socket with Trio's socket interface (a
    :class:`trio.socket.SocketType`). Made by ``trio.socket.socket()``
    inside :meth:`Host.as_current <trionet.Host.as_current>` once
    :meth:`Network.install_trio_sockets <trionet.Network.install_trio_sockets>`
    ran, or by :meth:`TrioSocketFactory.socket`.

    Supported: ``AF_INET`` and ``AF_INET6`` (addresses ``(host, port,
    flowinfo, scope_id)``; the scope is not read: a link-local peer is
    reached through the interface of the link-local source, or the only
    link) with ``SOCK_STREAM`` (TCP) or ``SOCK_DGRAM`` (UDP); options ``TCP_NODELAY``, ``SO_KEEPALIVE``, ``SO_BROADCAST``
    and ``SO_BINDTODEVICE`` (UDP), ``SO_ACCEPTCONN``, ``SO_ERROR``, ``SO_TYPE`` (read only), and,
    kept and reported but without effect, ``SO_REUSEADDR``,
    ``SO_REUSEPORT``, ``TCP_NOTSENT_LOWAT``, ``IPV6_V6ONLY`` (an
    ``AF_INET6`` socket is IPv6-only whatever it says),
    ``IP_BIND_ADDRESS_NO_PORT``; any other option raises
    ``OSError(ENOPROTOOPT)``. ``recv`` flags: ``MSG_PEEK``,
    ``MSG_DONTWAIT``. See the module's rules for errors and cancellation.
    """

    #: Whether ``shutdown(SHUT_WR)`` (or ``SHUT_RDWR``) was called: a plain
    #: attribute rather than trio's property, as ``SocketStream.send_all``
    #: reads it on every call.
    did_shutdown_SHUT_WR: bool = False  # noqa: N815 (trio's name)

    def __init__(self, host: Host, type: int, proto: int = 0, family: int = AF_INET) -> None:
        super().__init__()
        self._host = host
        self._family = family
        self._type = type
        self._proto = proto
        self._fd = next(_fds)
        self._opts = dict(_STORED)
        if family == AF_INET6:
            self._opts[IPPROTO_IPV6, _IPV6_V6ONLY] = 1  # (and it is: see TcpListen's dual keys)
        self._closed = False

    # -- identity --------------------------------------------------------

    @property
    def family(self) -> _stdlib_socket.AddressFamily:
        return _stdlib_socket.AddressFamily(self._family)

    def _name(self, pair: tuple[str, int]) -> Any:
        # An address as this family's sockets give it: (host, port), or for
        # AF_INET6 (host, port, flowinfo, scope_id).
        if self._family == AF_INET6:
            return (pair[0], pair[1], 0, 0)
        return pair

    def _unbound(self) -> Any:
        return self._name(("::", 0) if self._family == AF_INET6 else ("0.0.0.0", 0))

    @property
    def type(self) -> _stdlib_socket.SocketKind:
        return _stdlib_socket.SocketKind(self._type)

    @property
    def proto(self) -> int:
        # As the stdlib's: the number given to socket() (0 by default).
        return self._proto

    @property
    def host(self) -> Host:
        """The trionet host whose stack this socket lives in."""
        return self._host

    def fileno(self) -> int:
        """A number unique to the socket (rule 4), -1 once closed."""
        return -1 if self._closed else self._fd

    def __repr__(self) -> str:
        kind = "SOCK_STREAM" if self._type == SOCK_STREAM else "SOCK_DGRAM"
        state = " [closed]" if self._closed else ""
        family = "AF_INET6" if self._family == AF_INET6 else "AF_INET"
        return f"<trionet.TrioSocket {self._host.name} {family} {kind} fd={self.fileno()}{state}>"

    def __enter__(self) -> TrioSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise _oserror(errno.EBADF, "the socket is closed")

    @property
    def _sock(self) -> TrioSocket:
        # anyio's Trio backend reads Trio's private ``_sock`` (the stdlib
        # socket) for its extra attributes (family, getsockname,
        # getpeername); this socket answers those itself.
        return self

    # -- options ---------------------------------------------------------

    def setsockopt(self, level: int, optname: int, value: Any, optlen: int | None = None) -> None:
        """Set an option (see the class docstring for the supported ones).

        Raises:
            OSError: ``ENOPROTOOPT`` (unsupported option), ``EBADF`` (closed).
        """
        self._check_open()
        key = (level, optname)
        if key == _SO_BINDTODEVICE:
            self._bind_device(value)
            return
        if isinstance(value, (bytes, bytearray, memoryview)):
            value = int.from_bytes(bytes(value), "little") if len(value) else 0
        if value is None:
            value = 0
        if not self._setopt(key, int(value)):
            if key not in self._opts:
                raise _oserror(errno.ENOPROTOOPT, f"option {optname} at level {level} is not supported")
            self._opts[key] = int(value)

    def getsockopt(self, level: int, optname: int, buflen: int | None = None) -> Any:
        """Read an option (see the class docstring for the supported ones).

        Raises:
            OSError: ``ENOPROTOOPT`` (unsupported option), ``EBADF`` (closed).
        """
        self._check_open()
        key = (level, optname)
        value = self._getopt(key)
        if value is None:
            if key not in self._opts:
                raise _oserror(errno.ENOPROTOOPT, f"option {optname} at level {level} is not supported")
            value = self._opts[key]
        if buflen is not None:
            return int(value).to_bytes(4, "little")[:buflen]
        return value

    def _setopt(self, key: tuple[int, int], value: int) -> bool:
        return False

    def _bind_device(self, value: Any) -> None:
        raise _oserror(errno.ENOPROTOOPT, "SO_BINDTODEVICE is supported on UDP sockets only")

    def _getopt(self, key: tuple[int, int]) -> int | None:
        if key == _SO_ERROR:
            return 0
        if key == _SO_TYPE:
            return self._type
        return None

    # -- not supported ---------------------------------------------------

    def dup(self) -> NoReturn:
        raise _oserror(errno.EOPNOTSUPP, "a trionet socket cannot be duplicated")

    def detach(self) -> NoReturn:
        raise _oserror(errno.EOPNOTSUPP, "a trionet socket has no descriptor to detach")

    def close(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class _TcpSocket(TrioSocket):
    """``SOCK_STREAM``: before ``listen``/``connect`` only an address; then a
    :class:`TcpListener` or a :class:`TcpStream` of the stack."""

    def __init__(
        self, host: Host, stream: TcpStream | None = None, proto: int = 0, family: int = AF_INET
    ) -> None:
        super().__init__(host, SOCK_STREAM, proto, family)
        self._bound: tuple[str, int] | None = None
        self._stream = stream
        self._listener: TcpListener | None = None
        self._nodelay = 1
        self._keepalive = 0
        self._connecting = False
        self._reserved: tuple[bytes, int] | None = None  # Tcp.bind's, until listen/connect

    def _setopt(self, key: tuple[int, int], value: int) -> bool:
        if key == _TCP_NODELAY:
            self._nodelay = 1 if value else 0
            if self._stream is not None:
                self._stream.setsockopt_nodelay(bool(value))
            return True
        if key == _SO_KEEPALIVE:
            self._keepalive = 1 if value else 0
            if self._stream is not None:
                self._stream.setsockopt_keepalive(bool(value))
            return True
        return False

    def _getopt(self, key: tuple[int, int]) -> int | None:
        if key == _TCP_NODELAY:
            return self._nodelay
        if key == _SO_KEEPALIVE:
            return self._keepalive
        if key == _SO_ACCEPTCONN:
            return int(self._listener is not None)
        return super()._getopt(key)

    def _apply_options(self) -> None:
        # Options set before the connection existed.
        assert self._stream is not None
        if not self._nodelay:
            self._stream.setsockopt_nodelay(False)
        if self._keepalive:
            self._stream.setsockopt_keepalive(True)

    # -- names -----------------------------------------------------------

    def getsockname(self) -> tuple[str, int]:
        """The local ``(address, port)`` (``("0.0.0.0", 0)`` before ``bind``)."""
        self._check_open()
        if self._stream is not None:
            return self._name(self._stream.getsockname())
        if self._listener is not None:
            return self._name(self._listener.getsockname())
        return self._name(self._bound) if self._bound else self._unbound()

    def getpeername(self) -> tuple[str, int]:
        """The peer's ``(address, port)``.

        Raises:
            OSError: ``ENOTCONN``, ``EBADF``.
        """
        self._check_open()
        if self._stream is None:
            raise _oserror(errno.ENOTCONN, "the socket is not connected")
        return self._name(self._stream.getpeername())

    # -- setting up ------------------------------------------------------

    async def bind(self, address: Any) -> None:
        """Take the local address and port (port 0: an ephemeral one, which
        ``getsockname()`` then shows).

        Cancellation: if cancelled, the socket is not bound.

        Raises:
            OSError: ``EADDRINUSE`` (a listener or another bound socket
                has the port), ``EADDRNOTAVAIL`` (not this host's
                address), ``EINVAL`` (already bound), ``EBADF``.
        """
        host, port = await _resolve(address, local=True, family=self._family)
        await trio.lowlevel.checkpoint_if_cancelled()
        self._check_open()
        if self._bound is not None or self._stream is not None or self._listener is not None:
            raise _oserror(errno.EINVAL, "the socket is already bound")
        laddr = inet_pton(host)
        port = self._host.inet.tcp.bind(laddr, port)
        self._reserved = (laddr, port)
        self._bound = (host, port)
        await trio.lowlevel.cancel_shielded_checkpoint()

    def _release(self) -> None:
        # The listener or connection counts the port now (or nobody does).
        if self._reserved is not None:
            self._host.inet.tcp.unbind(*self._reserved)
            self._reserved = None

    def listen(self, backlog: int = 128) -> None:
        """Start listening on the bound address (port 0 if not bound).

        Raises:
            OSError: ``EADDRINUSE``, ``EINVAL`` (connected), ``EBADF``.
        """
        self._check_open()
        if self._stream is not None:
            raise _oserror(errno.EINVAL, "the socket is connected")
        if self._listener is not None:
            return
        host, port = self._bound or (("::" if self._family == AF_INET6 else "0.0.0.0"), 0)
        # (Tcp.listen does not see the socket's own reservation; a failed
        # listen keeps it, as listen(2) keeps the binding.)
        self._listener = listen_nowait(self._host.inet.tcp, port, host=host, backlog=backlog)
        self._release()

    async def accept(self) -> tuple[_TcpSocket, tuple[str, int]]:
        """Wait for a connection; return a new socket and the peer's address.

        Cancellation: if cancelled, no connection was taken.

        Raises:
            OSError: ``EINVAL`` (not listening), ``EBADF`` (closed, also
                while waiting).
        """
        self._check_open()
        if self._listener is None:
            await trio.lowlevel.checkpoint()
            raise _oserror(errno.EINVAL, "the socket is not listening")
        with _translated:
            stream = await self._listener.accept()
        sock = _TcpSocket(self._host, stream, self._proto, self._family)
        return sock, self._name(stream.getpeername())

    async def connect(self, address: Any) -> None:
        """Open a connection to ``address``.

        Cancellation: as Trio's own socket, a cancelled ``connect`` closes
        the socket (the half-open connection is reset).

        Raises:
            ConnectionRefusedError, TimeoutError, OSError: ``ENETUNREACH``,
                ``EADDRNOTAVAIL``, ``EISCONN``, ``EALREADY``, ``EBADF``;
                ``socket.gaierror`` for an unknown name.
        """
        self._check_open()
        if self._stream is not None or self._listener is not None:
            raise _oserror(errno.EISCONN, "the socket is already connected")
        if self._connecting:
            raise _oserror(errno.EALREADY, "a connect is in progress")
        host, port = await _resolve(address, local=False, family=self._family)
        local, lport = self._bound or (None, 0)
        if local in ("0.0.0.0", "::"):
            local = None
        self._connecting = True
        try:
            # (The connection counts the port on its own; a failed connect
            # keeps the socket's reservation, as connect(2) keeps the binding.)
            stream = await open_tcp_stream(
                self._host.inet.tcp, host, port, local_address=local, local_port=lport
            )
        except trio.Cancelled:
            self.close()
            raise
        finally:
            self._connecting = False
        if self._closed:  # closed by another task meanwhile
            stream.close()
            raise _oserror(errno.EBADF, "the socket was closed while connecting")
        self._stream = stream
        self._release()
        self._apply_options()

    # -- data ------------------------------------------------------------

    def _connected(self) -> TcpStream:
        self._check_open()
        if self._stream is None:
            raise _oserror(errno.ENOTCONN, "the socket is not connected")
        return self._stream

    async def send(self, data: Any, flags: int = 0) -> int:
        """Send what fits of ``data``, once ``min(len(data), send buffer // 2)``
        bytes fit (:meth:`TcpStream.send_some`); return the number sent.
        ``MSG_DONTWAIT`` takes any room there is, or raises ``EAGAIN``.

        Cancellation: if cancelled, nothing was sent.

        Raises:
            OSError: ``EPIPE`` (after ``shutdown(SHUT_WR)``),
                ``ECONNRESET``/``ETIMEDOUT`` (broken), ``ENOTCONN``, ``EBADF``,
                ``EAGAIN`` (``MSG_DONTWAIT`` and no room).
        """
        stream = self._stream
        if stream is None or self._closed:  # (_connected, inline: per call)
            stream = self._connected()
        try:
            if not flags:
                return await stream.send_some(data)
            _check_flags(flags, _SEND_FLAGS)
            await trio.lowlevel.checkpoint_if_cancelled()
            try:
                n = stream.send_nowait(data)
            except trio.WouldBlock:
                raise _oserror(errno.EAGAIN) from None
            await trio.lowlevel.cancel_shielded_checkpoint()
            return n
        except _STREAM_ERRORS as exc:
            if self.did_shutdown_SHUT_WR and not self._closed:
                raise _oserror(errno.EPIPE, "the socket was shut down for writing") from None
            _raise_translated(exc)

    async def wait_writable(self) -> None:
        """Return when ``send`` would not wait.

        Cancellation: nothing to undo.
        """
        stream = self._connected()
        with _translated:
            await stream.wait_send_all_might_not_block()

    async def recv(self, bufsize: int, flags: int = 0) -> bytes:
        """Wait for data; return up to ``bufsize`` bytes, ``b""`` at the end
        of the stream. ``MSG_PEEK`` leaves them queued; ``MSG_DONTWAIT``
        raises :class:`BlockingIOError` instead of waiting.

        Cancellation: if cancelled, no bytes were taken.

        Raises:
            OSError: ``ECONNRESET``/``ETIMEDOUT`` (broken), ``ENOTCONN``,
                ``EBADF`` (also when closed while waiting), ``EAGAIN``.
        """
        stream = self._stream
        if stream is None or self._closed:  # (_connected, inline: per call)
            stream = self._connected()
        try:
            if not flags and bufsize:
                return await stream.receive_some(bufsize)
            _check_flags(flags, _RECV_FLAGS)
            await trio.lowlevel.checkpoint_if_cancelled()
            parked = False
            if bufsize == 0:
                data = b""
            else:
                while True:
                    try:
                        data = stream.receive_some_nowait(bufsize, peek=bool(flags & MSG_PEEK))
                        break
                    except trio.WouldBlock:
                        if flags & MSG_DONTWAIT:
                            raise _oserror(errno.EAGAIN) from None
                    await stream.wait_readable()
                    parked = True
            if not parked:
                await trio.lowlevel.cancel_shielded_checkpoint()
            return data
        except _STREAM_ERRORS as exc:
            _raise_translated(exc)

    async def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        """:meth:`recv` into ``buffer``; returns the count (same errors and cancellation)."""
        with memoryview(buffer) as view:
            view = view.cast("B")
            data = await self.recv(nbytes or len(view), flags)
            view[: len(data)] = data
        return len(data)

    def is_readable(self) -> bool:
        """Whether ``recv`` (or ``accept``) would return without waiting."""
        if self._closed:
            return True
        if self._listener is not None:
            return self._listener.is_readable()
        if self._stream is not None:
            return self._stream.is_readable()
        return False

    def shutdown(self, how: int) -> None:
        """``SHUT_WR`` (or ``SHUT_RDWR``) sends a FIN after the data sent;
        ``SHUT_RD`` is accepted and does nothing else.

        Raises:
            OSError: ``ENOTCONN``, ``EBADF``, ``EINVAL`` (bad ``how``).
        """
        stream = self._connected()
        if how not in (_stdlib_socket.SHUT_RD, _stdlib_socket.SHUT_WR, _stdlib_socket.SHUT_RDWR):
            raise _oserror(errno.EINVAL, f"bad shutdown how {how!r}")
        if how != _stdlib_socket.SHUT_RD:
            self.did_shutdown_SHUT_WR = True
            with _translated:
                stream.send_eof_nowait()

    def close(self) -> None:
        """Close the socket (FIN, or RST with unread data; a listener resets
        the connections not yet accepted). Tasks blocked in it get
        ``EBADF``. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._release()
        if self._stream is not None:
            self._stream.close()
        if self._listener is not None:
            self._listener.close()


class _UdpSocket(TrioSocket):
    """``SOCK_DGRAM``: a stack :class:`UdpSocket`."""

    def __init__(self, host: Host, proto: int = 0, family: int = AF_INET) -> None:
        super().__init__(host, SOCK_DGRAM, proto, family)
        self._udp: UdpSocket = host.udp_socket()

    def _setopt(self, key: tuple[int, int], value: int) -> bool:
        if key == _SO_BROADCAST:
            self._udp.broadcast = bool(value)
            return True
        return False

    def _bind_device(self, value: Any) -> None:
        # The interface's name, NUL-padded as C passes it; empty: unbind.
        if isinstance(value, str):
            value = value.encode()
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise _oserror(errno.EINVAL, f"SO_BINDTODEVICE takes an interface name, not {value!r}")
        name = bytes(value).split(b"\0", 1)[0].decode("ascii", "replace")
        with _translated:
            self._udp.bind_device(name or None)

    def _getopt(self, key: tuple[int, int]) -> int | None:
        if key == _SO_BROADCAST:
            return int(self._udp.broadcast)
        if key == _SO_ACCEPTCONN:
            return 0
        return super()._getopt(key)

    def getsockname(self) -> tuple[str, int]:
        """The bound ``(address, port)`` (``("0.0.0.0", 0)`` if not bound)."""
        self._check_open()
        name = self._udp.getsockname()
        return self._unbound() if name == ("0.0.0.0", 0) else self._name(name)

    def getpeername(self) -> tuple[str, int]:
        """The connected ``(address, port)``.

        Raises:
            OSError: ``ENOTCONN``, ``EBADF``.
        """
        self._check_open()
        return self._name(self._udp.getpeername())

    async def bind(self, address: Any) -> None:
        """Bind to ``(address, port)``; port 0 picks an ephemeral one.

        Cancellation: if cancelled, the socket is not bound.

        Raises:
            OSError: ``EADDRINUSE``, ``EADDRNOTAVAIL``, ``EINVAL``, ``EBADF``.
        """
        host, port = await _resolve(address, local=True, family=self._family)
        await trio.lowlevel.checkpoint_if_cancelled()
        self._check_open()
        self._udp.bind((host, port))
        await trio.lowlevel.cancel_shielded_checkpoint()

    async def connect(self, address: Any) -> None:
        """Set the default destination; accept datagrams only from it.

        Cancellation: if cancelled, the socket is unchanged.
        """
        host, port = await _resolve(address, local=False, family=self._family)
        await trio.lowlevel.checkpoint_if_cancelled()
        self._check_open()
        self._udp.connect((host, port))
        await trio.lowlevel.cancel_shielded_checkpoint()

    def listen(self, backlog: int = 128) -> None:
        raise _oserror(errno.EOPNOTSUPP, "a UDP socket cannot listen")

    async def accept(self) -> NoReturn:
        await trio.lowlevel.checkpoint()
        raise _oserror(errno.EOPNOTSUPP, "a UDP socket cannot accept")

    async def sendto(self, data: Any, *args: Any) -> int:
        """``sendto(data[, flags], address)``: send one datagram; return its length.

        Cancellation: if cancelled, nothing was sent.

        Raises:
            OSError: as :meth:`UdpSocket.sendto <trionet.UdpSocket.sendto>`, ``EBADF``.
        """
        if len(args) == 1:
            flags, address = 0, args[0]
        elif len(args) == 2:
            flags, address = args
        else:
            raise TypeError("sendto(data[, flags], address)")
        if flags:
            _check_flags(flags, _SEND_FLAGS)
        self._check_open()
        host, port = await _resolve(address, local=False, family=self._family)
        data = bytes(data)
        with _translated:
            await self._udp.sendto(data, (host, port))
        return len(data)

    async def send(self, data: Any, flags: int = 0) -> int:
        """Send one datagram to the connected address; return its length
        (cancellation as :meth:`sendto`)."""
        if flags:
            _check_flags(flags, _SEND_FLAGS)
        self._check_open()
        data = bytes(data)
        with _translated:
            await self._udp.send(data)
        return len(data)

    async def wait_writable(self) -> None:
        """A UDP socket is always writable: a checkpoint."""
        self._check_open()
        await trio.lowlevel.checkpoint()

    async def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, tuple[str, int]]:
        """Wait for a datagram; return its first ``bufsize`` bytes (the rest
        is discarded, as the kernel does) and its sender. ``MSG_PEEK``
        leaves it queued; ``MSG_DONTWAIT`` raises :class:`BlockingIOError`
        instead of waiting.

        Cancellation: if cancelled, no datagram was taken.

        Raises:
            OSError: ``ECONNREFUSED`` (an ICMP port unreachable for a
                connected socket), ``EBADF`` (also when closed while
                waiting), ``EAGAIN``.
        """
        if flags:
            _check_flags(flags, _RECV_FLAGS)
        self._check_open()
        await trio.lowlevel.checkpoint_if_cancelled()
        parked = False
        with _translated:
            while True:
                try:
                    data, address = self._udp.recvfrom_nowait(peek=bool(flags & MSG_PEEK))
                    break
                except trio.WouldBlock:
                    if flags & MSG_DONTWAIT:
                        raise _oserror(errno.EAGAIN) from None
                await self._udp.wait_readable()
                parked = True
        if not parked:
            await trio.lowlevel.cancel_shielded_checkpoint()
        return data[:bufsize], self._name(address)

    async def recv(self, bufsize: int, flags: int = 0) -> bytes:
        """:meth:`recvfrom` without the address (same errors and cancellation)."""
        data, _ = await self.recvfrom(bufsize, flags)
        return data

    async def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        """:meth:`recv` into ``buffer``; returns the count."""
        with memoryview(buffer) as view:
            view = view.cast("B")
            data = await self.recv(nbytes or len(view), flags)
            view[: len(data)] = data
        return len(data)

    async def recvfrom_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> tuple[int, tuple[str, int]]:
        """:meth:`recvfrom` into ``buffer``; returns the count and the sender."""
        with memoryview(buffer) as view:
            view = view.cast("B")
            data, address = await self.recvfrom(nbytes or len(view), flags)
            view[: len(data)] = data
        return len(data), address

    def is_readable(self) -> bool:
        """Whether ``recvfrom`` would return without waiting."""
        return self._closed or self._udp.is_readable()

    def shutdown(self, how: int) -> None:
        raise _oserror(errno.ENOTCONN, "a UDP socket has no connection to shut down")

    def close(self) -> None:
        """Close the socket; a task in ``recvfrom`` gets ``EBADF``. Idempotent."""
        if not self._closed:
            self._closed = True
            self._udp.close()


####################################################################
# Plugging into trio.socket
####################################################################


class TrioSocketFactory(trio.abc.SocketFactory):
    """Makes ``trio.socket.socket()`` build :class:`TrioSocket` objects on
    the current task's host (:meth:`Host.as_current
    <trionet.Host.as_current>`).

    Args:
        passthrough: outside any ``as_current()``, make a real socket
            (Trio's own) instead of raising :class:`RuntimeError`.
    """

    def __init__(self, *, passthrough: bool = False) -> None:
        self.passthrough = passthrough

    def socket(
        self,
        family: _stdlib_socket.AddressFamily | int = AF_INET,
        type: _stdlib_socket.SocketKind | int = SOCK_STREAM,
        proto: int = 0,
    ) -> trio.socket.SocketType:
        """A new socket on the current host.

        Raises:
            OSError: ``EAFNOSUPPORT`` (neither ``AF_INET`` nor
                ``AF_INET6``, or ``AF_INET6`` on a host with IPv6 enabled
                on no interface), ``ESOCKTNOSUPPORT`` (not stream or datagram),
                ``EPROTONOSUPPORT``.
            RuntimeError: outside any ``as_current()`` (without passthrough).
            trio.ClosedResourceError: the host is shut down.
        """
        host = current_host.get()
        if host is None:
            if self.passthrough:
                return trio.socket.from_stdlib_socket(_stdlib_socket.socket(family, type, proto))
            raise _no_host("trio.socket.socket()")
        if family == AF_INET6:
            if not host.inet6.enabled:
                raise _oserror(errno.EAFNOSUPPORT, f"IPv6 is enabled on no interface of {host.name}")
        elif family != AF_INET:
            raise _oserror(errno.EAFNOSUPPORT, f"address family {family!r} (trionet has AF_INET and AF_INET6)")
        kind = int(type) & ~_TYPE_FLAGS
        if kind == SOCK_STREAM:
            if proto not in (0, _stdlib_socket.IPPROTO_TCP):
                raise _oserror(errno.EPROTONOSUPPORT, f"protocol {proto} for SOCK_STREAM")
            host._check_open()
            return _TcpSocket(host, proto=proto, family=int(family))
        if kind == SOCK_DGRAM:
            if proto not in (0, _stdlib_socket.IPPROTO_UDP):
                raise _oserror(errno.EPROTONOSUPPORT, f"protocol {proto} for SOCK_DGRAM")
            return _UdpSocket(host, proto, int(family))
        raise _oserror(errno.ESOCKTNOSUPPORT, f"socket type {type!r} is not supported")


class TrioResolver(trio.abc.HostnameResolver):
    """Answers ``trio.socket.getaddrinfo`` for names (numeric addresses
    never reach a resolver) from a table: ``lookup(name)`` returns an IPv4
    address or ``None``; then, if the current host has a
    :attr:`~trionet.Host.resolver`, from that DNS server (its first
    address; its errors are the ``socket.gaierror`` of
    :meth:`Host.resolve <trionet.Host.resolve>`), else
    ``socket.gaierror(EAI_NONAME)``. ``getnameinfo`` asks the DNS server
    for a PTR record the same way.

    Args:
        lookup: name -> address (the network's hosts and
            :attr:`Network.etc_hosts <trionet.Network.etc_hosts>`).
        reverse: address -> name, for ``getnameinfo``.
        passthrough: outside any ``as_current()``, ask the real resolver
            instead of raising :class:`RuntimeError`.
    """

    def __init__(
        self,
        lookup: Callable[[str], str | None],
        reverse: Callable[[str], str | None],
        *,
        passthrough: bool = False,
    ) -> None:
        self._lookup = lookup
        self._reverse = reverse
        self.passthrough = passthrough

    async def getaddrinfo(
        self,
        host: bytes | None,
        port: bytes | str | int | None,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> list[Any]:
        """``socket.getaddrinfo`` over the table, then DNS (a checkpoint).

        Cancellation: a DNS query in flight is abandoned (its socket closed).

        Raises:
            socket.gaierror: ``EAI_NONAME`` for an unknown name
                (NXDOMAIN from DNS), ``EAI_AGAIN`` (the DNS server did not
                answer in time); what
                ``socket.getaddrinfo`` raises for the numeric answer
                (``EAI_ADDRFAMILY`` when asked for IPv6 only...).
        """
        await trio.lowlevel.checkpoint()
        if current_host.get() is None:
            if self.passthrough:
                return await trio.to_thread.run_sync(
                    _stdlib_socket.getaddrinfo, host, port, family, type, proto, flags,
                    abandon_on_cancel=True,
                )
            raise _no_host("trio.socket.getaddrinfo()")
        name = host.decode("ascii") if isinstance(host, bytes) else host
        address = self._lookup(name.rstrip(".").lower()) if name else None
        on = current_host.get()
        if address is None and name and on is not None and on.resolver is not None:
            address = (await dns_resolve(on, name))[0]
        if address is None:
            raise _stdlib_socket.gaierror(_stdlib_socket.EAI_NONAME, "Name or service not known")
        if family == 0:
            family = AF_INET  # (the network's names have IPv4 addresses only)
        return _stdlib_socket.getaddrinfo(
            address, port, family, type, proto, flags | _stdlib_socket.AI_NUMERICHOST
        )

    async def getnameinfo(self, sockaddr: tuple[Any, ...], flags: int) -> tuple[str, str]:
        """``socket.getnameinfo`` over the table (a checkpoint).

        Raises:
            socket.gaierror: ``EAI_NONAME`` for an address with no name
                when ``NI_NAMEREQD`` is set.
        """
        await trio.lowlevel.checkpoint()
        address, port = sockaddr[0], sockaddr[1]
        name = None if flags & _stdlib_socket.NI_NUMERICHOST else self._reverse(address)
        on = current_host.get()
        if name is None and not flags & _stdlib_socket.NI_NUMERICHOST and on is not None and on.resolver:
            name = await resolve_ptr(on, address)
        if name is None:
            if flags & _stdlib_socket.NI_NAMEREQD:
                raise _stdlib_socket.gaierror(_stdlib_socket.EAI_NONAME, "Name or service not known")
            name = address
        return name, str(port)
