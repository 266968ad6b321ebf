"""The nursery that kernels and wires run their service tasks in.

Below both ``trionet._kern`` and ``trionet.wires`` (it imports only Trio), so
``open_kernel`` and every :class:`~trionet.lowlevel.WireLifecycle` share it
without ``_kern`` importing ``wires`` (DESIGN.md section 1).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

__all__ = ["service_nursery"]


@asynccontextmanager
async def service_nursery() -> AsyncIterator[trio.Nursery]:
    """A nursery for service tasks, cancelled when the body ends.

    An exception from the body is caught inside the nursery and re-raised
    after it, so the caller sees its own exception, not an
    ``ExceptionGroup`` around it. A service task that crashed at the same
    time still propagates, with the body's exception as its context.
    Leaving the body, normally or by an exception, cancels every task the
    nursery holds and waits for them all to finish.
    """
    body_exc: BaseException | None = None
    async with trio.open_nursery() as nursery:
        try:
            yield nursery
        except BaseException as exc:
            body_exc = exc
        finally:
            nursery.cancel_scope.cancel()
    if body_exc is not None:
        try:
            raise body_exc
        finally:
            del body_exc
