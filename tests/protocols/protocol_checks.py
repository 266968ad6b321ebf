"""Checks shared by the protocol tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from trionet.protocols.errors import RemoteProtocolError


def parse_or_reject(parse: Callable[..., Any], data: bytes | bytearray, *args: Any) -> None:
    """``parse(data, *args)`` either returns or raises ``RemoteProtocolError``;
    anything else it raises fails the test."""
    try:
        parse(data, *args)
    except RemoteProtocolError:
        pass
