"""The exceptions of sans-IO protocol code: bad input, and misuse by the caller.

Every parser in ``protocols/`` checks lengths before reading a field and
raises :class:`RemoteProtocolError` (never ``IndexError``, ``struct.error`` or
``ValueError``) for input it cannot accept. The glue catches it, counts the
drop under ``reason``, and carries on: no input may crash a thread.
"""

from __future__ import annotations

__all__ = ["LocalProtocolError", "RemoteProtocolError"]


class RemoteProtocolError(Exception):
    """The peer sent something we cannot accept.

    Attributes:
        reason: a short snake_case tag for counters and logs
            (``"short_header"``, ``"bad_checksum"``...).
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class LocalProtocolError(Exception):
    """The caller asked for something the machine's state forbids (sending
    after ``close``, connecting twice...). h11's name for the same thing."""
