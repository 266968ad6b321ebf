"""Addresses and ports as sockets take them: ``"10.0.0.1"`` <-> 4 bytes,
``"fd00::1"`` <-> 16 bytes.

Shared by UDP and TCP sockets. Both conversions are cached: a socket talks to
few addresses, and parsing one costs more than the rest of UDP output.
"""

from __future__ import annotations

import functools
import ipaddress

__all__ = ["check_port", "inet_aton", "inet_ntoa", "inet_ntop", "inet_pton"]


@functools.lru_cache(maxsize=1024)
def inet_aton(host: str) -> bytes:
    """``"10.0.0.1"`` -> ``b"\\n\\x00\\x00\\x01"``.

    Raises:
        ValueError: not an IPv4 address.
    """
    try:
        return ipaddress.IPv4Address(host).packed
    except ValueError as exc:
        raise ValueError(f"not an IPv4 address: {host!r} ({exc})") from None


@functools.lru_cache(maxsize=1024)
def inet_ntoa(addr: bytes) -> str:
    """4 bytes -> ``"10.0.0.1"``."""
    return str(ipaddress.IPv4Address(addr))


def check_port(port: object) -> int:
    """``port`` if it is an int in 0..65535 (not a bool).

    Raises:
        ValueError: otherwise.
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port must be an int in 0..65535, not {port!r}")
    return port


@functools.lru_cache(maxsize=1024)
def inet_pton(host: str) -> bytes:
    """An IPv4 address -> 4 bytes, an IPv6 one -> 16 (no ``%zone``).

    Raises:
        ValueError: neither.
    """
    if ":" not in host:
        return inet_aton(host)
    try:
        return ipaddress.IPv6Address(host).packed
    except ValueError as exc:
        raise ValueError(f"not an IPv6 address: {host!r} ({exc})") from None


@functools.lru_cache(maxsize=1024)
def inet_ntop(addr: bytes) -> str:
    """4 or 16 bytes -> the address's text."""
    return str(ipaddress.IPv4Address(addr) if len(addr) == 4 else ipaddress.IPv6Address(addr))


def ether_aton(text: object) -> bytes:
    """A unicast MAC written ``"02:00:00:00:00:05"`` (or with ``-``, or
    bare hex) -> its 6 bytes (BSD ``ether_aton``).

    Raises:
        ValueError: not 6 bytes of hex, or a group (multicast) address.
    """
    try:
        mac = bytes.fromhex(text.replace(":", "").replace("-", "")) if isinstance(text, str) else b""
    except ValueError:
        mac = b""
    if len(mac) != 6 or mac[0] & 1:
        raise ValueError(f"not a unicast MAC address such as '02:00:00:00:00:05': {text!r}")
    return mac
