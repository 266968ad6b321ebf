"""Value checks for topology files: each takes a value as :mod:`tomllib`
returns it and gives it back checked and converted, or raises :class:`Bad`
with the problem as one line (``must be an int from 68 to 65535, not "big"``).

The loader (:mod:`trionet._topology`) adds the file, line and key; the step
kinds (:mod:`trionet._steps`) and link kinds (:mod:`trionet._links`) name
their keys' checks in their tables. Rules:

1. A check is a function of one value; a check with bounds is made by a
   function of the bounds (``integer(1, 64)``).
2. A problem says what the value must be and shows what it was, as TOML
   would write it (:func:`show`).
3. ``(check, default)`` pairs describe a table's keys; :data:`REQUIRED` as
   the default makes a key required, :data:`ANY` defers the check (a
   reference to a host or link, checked once the names are known).
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import math
import re
from collections.abc import Callable, Iterable
from typing import Any

from .wires._tap import _check_ifname


def show(value: Any) -> str:
    # A value as TOML would write it, for "not ..." in messages.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return repr(value)


####################################################################
# Checks: each returns the value (converted) or raises Bad(problem)
####################################################################


class Bad(Exception):
    """A value a check refuses; its message is the problem."""


Check = Callable[[Any], Any]
REQUIRED = object()
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*\Z")
_LINK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.#-]*\Z")
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([KMG]i?B|B)?\s*\Z", re.IGNORECASE)
_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}


def integer(lo: int, hi: int) -> Check:
    def check(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise Bad(f"must be an int from {lo} to {hi}, not {show(v)}")
        return v

    return check


def number(lo: float, hi: float = math.inf, *, above: bool = False) -> Check:
    def check(v: Any) -> float:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        if not ok or v < lo or v > hi or (above and v == lo):
            if hi == math.inf:
                rng = f"above {lo:g}" if above else f"at least {lo:g}"
                raise Bad(f"must be a finite number {rng}, not {show(v)}")
            raise Bad(f"must be a number from {lo:g} to {hi:g}, not {show(v)}")
        return float(v)

    return check


def boolean(v: Any) -> bool:
    if not isinstance(v, bool):
        raise Bad(f"must be true or false, not {show(v)}")
    return v


def string(v: Any) -> str:
    if not isinstance(v, str):
        raise Bad(f"must be a string, not {show(v)}")
    return v


def node_name(v: Any) -> str:
    if not isinstance(v, str) or not _NAME.match(v):
        raise Bad(f"must be a name (a letter, then letters, digits, _ or -), not {show(v)}")
    return v


def link_name(v: Any) -> str:
    if not isinstance(v, str) or not _LINK_NAME.match(v):
        raise Bad(f"must be a link name (letters, digits, _ . # -), not {show(v)}")
    return v


def device_name(v: Any) -> str:
    # A TAP device name, as Linux's dev_valid_name() takes it ("%d" allowed).
    if not isinstance(v, str):
        raise Bad(f"must be a string, not {show(v)}")
    try:
        _check_ifname(v)
    except ValueError as exc:
        raise Bad(str(exc)) from None
    return v


def netns_name(v: Any) -> str:
    # A name `ip netns add` takes: a file in /run/netns.
    if not isinstance(v, str) or not v or v in (".", "..") or "/" in v or "\0" in v:
        raise Bad(f"must be a network namespace name (as `ip netns add` takes), not {show(v)}")
    return v


def choice(*choices: str) -> Check:
    def check(v: Any) -> str:
        if v not in choices:
            options = ", ".join(json.dumps(c) for c in choices)
            hint = did_you_mean(v, choices) if isinstance(v, str) else ""
            raise Bad(f"must be one of {options}, not {show(v)}{hint}")
        return str(v)

    return check


def interface(v: Any) -> str:
    if not isinstance(v, str) or "/" not in v:
        raise Bad(
            'must be an address with a prefix length, such as "10.0.0.1/24" or "fd00::1/64", '
            f"not {show(v)}"
        )
    if ":" in v:
        try:
            iface6 = ipaddress.IPv6Interface(v)
        except ValueError as exc:
            raise Bad(f"not an IPv6 address/prefix: {show(v)} ({exc})") from None
        if iface6.ip.is_multicast or iface6.ip.is_unspecified:
            raise Bad(f"{v} cannot be an interface address (multicast or unspecified)")
        return str(iface6)
    try:
        iface = ipaddress.IPv4Interface(v)
    except ValueError as exc:
        raise Bad(f"not an IPv4 address/prefix: {show(v)} ({exc})") from None
    net = iface.network
    if net.prefixlen < 31 and iface.ip in (net.network_address, net.broadcast_address):
        which = "network" if iface.ip == net.network_address else "broadcast"
        raise Bad(f"{v} is the {which} address of its subnet")
    return str(iface)


def interfaces(v: Any) -> tuple[str, ...]:
    # An address, a list of them, or "dhcp" (the host asks a DHCP server).
    if v == "dhcp":
        return ("dhcp",)
    if isinstance(v, list):
        out = []
        for n, item in enumerate(v):
            try:
                out.append(interface(item))
            except Bad as exc:
                raise Bad(f"[{n}]: {exc}") from None
        return tuple(out)
    return (interface(v),)


def ipv4(v: Any) -> str:
    try:
        return str(ipaddress.IPv4Address(v if isinstance(v, str) else ""))
    except ValueError:
        raise Bad(f"must be an IPv4 address such as \"10.0.0.1\", not {show(v)}") from None


def ip_address(v: Any) -> str:
    try:
        return str(ipaddress.ip_address(v if isinstance(v, str) else ""))
    except ValueError:
        raise Bad(f'must be an IP address such as "10.0.0.1" or "fd00::1", not {show(v)}') from None


def destination(v: Any) -> str:
    if v == "default":
        return "default"
    if not isinstance(v, str):
        raise Bad(f'must be "default", "::/0" or a network such as "10.1.0.0/16" or "fd00:1::/64", not {show(v)}')
    try:
        return str(ipaddress.ip_network(v))
    except ValueError as exc:
        family = "IPv6" if ":" in v else "IPv4"
        raise Bad(f"not an {family} network: {show(v)} ({exc})") from None


def byte_count(v: Any) -> int:
    if isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 10**12:
        return v
    if isinstance(v, str):
        m = _SIZE.match(v)
        if m:
            n = int(float(m.group(1)) * _UNITS[(m.group(2) or "b").lower()])
            if 1 <= n <= 10**12:
                return n
    raise Bad(
        "must be a byte count from 1 to 10**12 (an int, or a string such as"
        f' "2MB" or "64KiB"), not {show(v)}'
    )


def sysctl_value(v: Any) -> int | str:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, (int, str)):
        return v
    raise Bad(f"a sysctl value must be an int, a string or a boolean, not {show(v)}")


def did_you_mean(word: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f"; did you mean {json.dumps(close[0])}?" if close else ""


ANY: Check = lambda v: v  # checked later (a reference) or not at all
