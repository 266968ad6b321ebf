"""trionet's exception hierarchy.

- :class:`TrionetError` is the root of the errors a caller may catch and handle.
- :class:`NetError` is raised wherever BSD would return an errno (``ENOBUFS``,
  ``ENOENT``, ``EPERM``...), so ``exc.errno`` works as with :class:`OSError`.
- :class:`KernelPanic` is a failed kernel assertion (a ``KKASSERT`` under
  ``INVARIANTS``). It is deliberately *not* a :class:`TrionetError`, so a broad
  ``except TrionetError`` cannot swallow it: like :class:`trio.TrioInternalError`
  it means a bug, after which no kernel state can be trusted.
"""

from __future__ import annotations

import errno as _errno
import os

__all__ = ["KernelPanic", "NetError", "TrionetError"]


class TrionetError(Exception):
    """Root of trionet's catchable domain errors."""


class NetError(TrionetError, OSError):
    """An operation failed with a BSD errno.

    Construct it as ``NetError(errno.ENOBUFS, "what failed")``; the message
    defaults to :func:`os.strerror` of the errno.
    """

    def __init__(self, errno: int, message: str | None = None) -> None:
        super().__init__(errno, message if message is not None else os.strerror(errno))

    def __str__(self) -> str:
        name = _errno.errorcode.get(self.errno, str(self.errno))
        return f"[{name}] {self.strerror}"


# The errnos Python maps to OSError subclasses that socket users catch
# (``except ConnectionRefusedError``): a NetError for one of them is also an
# instance of that subclass.
_BUILTIN_BY_ERRNO: dict[int, type[OSError]] = {
    _errno.ECONNREFUSED: ConnectionRefusedError,
    _errno.ECONNRESET: ConnectionResetError,
    _errno.ECONNABORTED: ConnectionAbortedError,
    _errno.EPIPE: BrokenPipeError,
    _errno.ETIMEDOUT: TimeoutError,
}
_NET_ERROR_BY_ERRNO: dict[int, type[NetError]] = {
    err: type(f"NetError_{_errno.errorcode[err]}", (NetError, builtin), {"__module__": __name__})
    for err, builtin in _BUILTIN_BY_ERRNO.items()
}


def net_error(errno: int, message: str | None = None) -> NetError:
    """A :class:`NetError` for ``errno`` that is also the builtin
    :class:`OSError` subclass Python gives that errno (``ECONNREFUSED`` ->
    :class:`ConnectionRefusedError`, ``ETIMEDOUT`` -> :class:`TimeoutError`...)."""
    return _NET_ERROR_BY_ERRNO.get(errno, NetError)(errno, message)


class KernelPanic(Exception):
    """A kernel invariant was violated (``KKASSERT`` under ``INVARIANTS``).

    Raised only by hosts and serializers with ``invariants=True``. It signals a
    bug in trionet or in a driver; nothing should catch it except a test that
    proves the check fires.
    """
