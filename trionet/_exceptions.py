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
    defaults to :func:`os.strerror` of the errno. Like ``OSError(errno,
    ...)``, the instance is also of the builtin :class:`OSError` subclass
    Python gives that errno, so socket users can catch what they would
    catch from the kernel: ``NetError(errno.ECONNREFUSED)`` is a
    :class:`ConnectionRefusedError`, ``ETIMEDOUT`` a :class:`TimeoutError`,
    ``EACCES`` a :class:`PermissionError`, and so on. This constructor is the
    one place that mapping is made.
    """

    def __new__(cls, errno: int, message: str | None = None) -> NetError:
        if cls is NetError:
            cls = _net_error_class(errno)
        return super().__new__(cls, errno, message if message is not None else os.strerror(errno))

    def __init__(self, errno: int, message: str | None = None) -> None:
        # OSError.__new__ has set errno and strerror already.
        pass

    def __str__(self) -> str:
        name = _errno.errorcode.get(self.errno, str(self.errno))
        return f"[{name}] {self.strerror}"

    def __reduce__(self) -> tuple[object, ...]:
        return NetError, (self.errno, self.strerror)


# NetError subclasses per builtin OSError subclass, made on first use:
# ConnectionRefusedError -> NetError_ConnectionRefusedError, ...
_NET_ERROR_CLASSES: dict[type[OSError], type[NetError]] = {}


def _net_error_class(errno: int) -> type[NetError]:
    builtin = type(OSError(errno, ""))  # Python's own errno -> subclass map
    if builtin is OSError:
        return NetError
    cls = _NET_ERROR_CLASSES.get(builtin)
    if cls is None:
        cls = type(f"NetError_{builtin.__name__}", (NetError, builtin), {"__module__": __name__})
        _NET_ERROR_CLASSES[builtin] = cls
    return cls


class KernelPanic(Exception):
    """A kernel invariant was violated (``KKASSERT`` under ``INVARIANTS``).

    Raised only by hosts and serializers with ``invariants=True``. It signals a
    bug in trionet or in a driver; nothing should catch it except a test that
    proves the check fires.
    """
