"""Link kinds: what a ``[[links]]`` table may hold for each ``kind``, and how
each kind is built. One row per kind in :data:`LINK_KINDS`.

Theory of operation
===================

The loader (:mod:`trionet._topology`) reads every link table the same way and
asks the kind's row only what differs; :func:`~trionet._build.build_network`
asks the row to build the link. Rules:

1. Every link table is checked against :data:`LINK_KEYS` (key -> (check,
   default)): an unknown key is refused, with a suggestion, whatever the kind.
2. ``kernel_end``: the far end is the Linux kernel (``tap``): ``a`` must be a
   host, there is no ``b``, and ``b_address`` is the kernel side's. Other
   kinds join two different nodes, ``a`` and ``b`` (hosts or switches).
3. ``refuses`` (key -> problem), in its order: the keys the kind has no use
   for. A key is refused when its value is neither the default nor zero
   (``delay = 0`` on a ``tap`` link is fine).
4. ``check(f, error)``, last: what depends on the values (a ``udp`` link's
   ``mtu`` fits one datagram); ``error(key, problem)`` makes the
   :class:`~trionet.TopologyError` at ``links[i].key``.
5. ``build(net, topo, spec, nodes, pcap=..., impairments=...)`` makes the
   link in an open :class:`~trionet.Network`; ``nodes`` are its ends' hosts
   or switches (one for a ``kernel_end`` kind), ``pcap`` a capture file
   (None unless ``captured``). What the system refuses (no privilege, a name
   taken) comes out as a :class:`~trionet.TopologyError` on the link's key.
6. ``real_time``: the far end lives in real time, so a topology with such a
   link runs on the real clock (``trionet run``). ``faults``: a scenario
   step may partition or impair it (it is then built with fault injectors).

Adding a kind is one row in :data:`LINK_KINDS` and a section in
``docs/topology.md`` (a test checks that every kind has one);
:func:`registered_link_kind` adds a row for the length of a ``with`` block.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from ._checks import ANY, REQUIRED, Check, choice, device_name, integer, interfaces, link_name, netns_name, number
from ._exceptions import NetError
from .wires._endpoint import ETHER_HDR_LEN
from .wires._udp import MAX_UDP_PAYLOAD

if TYPE_CHECKING:
    from ._toml_lines import KeyPath
    from ._topology import LinkSpec, Topology, TopologyError

__all__ = [
    "IMPAIRMENTS",
    "IMPAIRMENT_KEYS",
    "LINK_KEYS",
    "LINK_KINDS",
    "UDP_MAX_MTU",
    "LinkKind",
    "link_keys",
    "registered_link_kind",
]


#: The impairments of a link (and of an ``impair`` step), in this order.
IMPAIRMENTS = ("loss", "duplicate", "reorder", "corrupt", "jitter", "rate")
IMPAIRMENT_KEYS: dict[str, tuple[Check, Any]] = {
    "loss": (number(0, 1), None),
    "duplicate": (number(0, 1), None),
    "reorder": (number(0, 1), None),
    "corrupt": (number(0, 1), None),
    "jitter": (number(0, 3600), None),
    "rate": (number(0, above=True), None),
}
#: The largest ``mtu`` of a link carried by UDP (a ``udp`` link, or any link
#: between two processes of a split run): one frame per IPv4 UDP datagram.
UDP_MAX_MTU = MAX_UDP_PAYLOAD - ETHER_HDR_LEN

ErrorFn = Callable[[str, str], "TopologyError"]
Builder = Callable[..., Awaitable[Any]]


@attrs.frozen(kw_only=True)
class LinkKind:
    """A row of :data:`LINK_KINDS` (see the module docstring's rules)."""

    name: str
    build: Builder
    refuses: Mapping[str, str] = attrs.field(factory=dict)
    check: Callable[[Mapping[str, Any], ErrorFn], None] | None = None
    kernel_end: bool = False
    real_time: bool = False
    captured: bool = True
    faults: bool = True

    def check_fields(self, f: Mapping[str, Any], error: ErrorFn) -> None:
        """Rules 3 and 4: raise the first problem of the checked fields ``f``."""
        for key, problem in self.refuses.items():
            value = f[key]
            if value and value != LINK_KEYS[key][1]:
                raise error(key, problem)
        if self.check is not None:
            self.check(f, error)


def _netns_exists(name: str) -> bool:
    # Where `ip netns add` makes it (iproute2's NETNS_RUN_DIR).
    return any(os.path.exists(os.path.join(d, name)) for d in ("/run/netns", "/var/run/netns"))


####################################################################
# memory
####################################################################


async def _build_memory(
    net: Any, topo: Topology, spec: LinkSpec, nodes: list[Any], *, pcap: str | None, impairments: dict[str, float]
) -> Any:
    a, b = nodes
    return await net.link(
        a, b, kind="memory", mtu=spec.mtu, pcap=pcap, delay=spec.delay, bandwidth=spec.bandwidth,
        queue_len=spec.queue_len, **impairments,
    )  # fmt: skip


####################################################################
# udp
####################################################################


def _check_udp(f: Mapping[str, Any], error: ErrorFn) -> None:
    if f["mtu"] > UDP_MAX_MTU:
        raise error(
            "mtu",
            f"a udp link sends each frame in one UDP datagram: mtu must be at most {UDP_MAX_MTU}, not {f['mtu']}",
        )


async def _build_udp(
    net: Any, topo: Topology, spec: LinkSpec, nodes: list[Any], *, pcap: str | None, impairments: dict[str, float]
) -> Any:
    a, b = nodes
    return await net.link(a, b, kind="udp", mtu=spec.mtu, pcap=pcap, **impairments)


####################################################################
# tap
####################################################################


def _check_tap(f: Mapping[str, Any], error: ErrorFn) -> None:
    if f["b_address"] == ("dhcp",):
        raise error("b_address", 'the kernel side of a tap link takes an address, not "dhcp"')
    if len(f["b_address"]) > 1:
        raise error("b_address", "the kernel side of a tap link takes one address")


async def _build_tap(
    net: Any, topo: Topology, spec: LinkSpec, nodes: list[Any], *, pcap: str | None, impairments: dict[str, float]
) -> Any:
    # Its failures (no privilege, a name taken, no namespace) as
    # TopologyErrors on the link's keys.
    (host,) = nodes
    path: KeyPath = ("links", spec.index)
    if spec.netns is not None and not _netns_exists(spec.netns):
        raise topo.error(
            path + ("netns",),
            f"no network namespace called {json.dumps(spec.netns)} (make it with: ip netns add {spec.netns})",
        )
    address = spec.b_addresses[0] if spec.b_addresses else None
    try:
        return await net.tap_link(host, device=spec.device, mtu=spec.mtu, netns=spec.netns, address=address)
    except NetError as exc:
        taken = exc.errno in (errno.EINVAL, errno.EBUSY, errno.EEXIST)
        key = "device" if taken and spec.device is not None else "kind"
        raise topo.error(path + (key,), exc.strerror or str(exc)) from None
    except RuntimeError as exc:  # an `ip` command failed: its message says which and why
        key = "device" if "exists" in str(exc) and spec.device is not None else None
        raise topo.error(path + ((key,) if key else ()), str(exc)) from None


####################################################################
# The table
####################################################################

_TAP_ONLY = {key: f'only a tap link takes "{key}"' for key in ("device", "netns")}
_NO_TAP_FAULTS = "a tap link takes no delay, bandwidth or impairments"

#: A ``[[links]]`` table's keys, every kind: key -> (check, default).
LINK_KEYS: dict[str, tuple[Check, Any]] = {
    "name": (link_name, None),
    "a": (ANY, REQUIRED),
    "b": (ANY, None),
    "a_address": (interfaces, ()),
    "b_address": (interfaces, ()),
    "kind": (ANY, "memory"),  # checked against LINK_KINDS by link_keys()
    "mtu": (integer(68, 65535), 1500),
    "delay": (number(0, 3600), 0.0),
    "bandwidth": (number(0, above=True), None),
    "queue_len": (integer(1, 1 << 20), 1000),
    **IMPAIRMENT_KEYS,
    "device": (device_name, None),
    "netns": (netns_name, None),
}

#: Link kinds by name, in the order messages list them.
LINK_KINDS: dict[str, LinkKind] = {
    "memory": LinkKind(name="memory", build=_build_memory, refuses=_TAP_ONLY),
    "udp": LinkKind(
        name="udp",
        build=_build_udp,
        refuses={
            **_TAP_ONLY,
            "delay": "a udp link has no delay (use jitter or rate)",
            "bandwidth": "a udp link has no bandwidth (use jitter or rate)",
            "queue_len": "a udp link has no queue_len",
        },
        check=_check_udp,
        real_time=True,
    ),
    "tap": LinkKind(
        name="tap",
        build=_build_tap,
        refuses={key: _NO_TAP_FAULTS for key in ("delay", "bandwidth", *IMPAIRMENTS)},
        check=_check_tap,
        kernel_end=True,
        real_time=True,
        captured=False,
        faults=False,
    ),
}


def link_keys() -> dict[str, tuple[Check, Any]]:
    """:data:`LINK_KEYS`, with ``kind`` checked against the kinds in :data:`LINK_KINDS` now."""
    return {**LINK_KEYS, "kind": (choice(*LINK_KINDS), "memory")}


@contextlib.contextmanager
def registered_link_kind(kind: LinkKind) -> Iterator[LinkKind]:
    """Make ``kind = "name"`` a link kind built by ``kind`` for the ``with``
    block, then forget it (a test's own kind; the package's kinds are rows
    of :data:`LINK_KINDS`).

    Raises:
        ValueError: a kind of that name exists already, or the row refuses
            a key that is not in :data:`LINK_KEYS`.
    """
    if kind.name in LINK_KINDS:
        raise ValueError(f"{kind.name!r} is a link kind already")
    unknown = sorted(set(kind.refuses) - set(LINK_KEYS))
    if unknown:
        raise ValueError(f"link kind {kind.name!r} refuses keys no link has: {', '.join(unknown)}")
    LINK_KINDS[kind.name] = kind
    try:
        yield kind
    finally:
        del LINK_KINDS[kind.name]
