"""The routing tables: longest-prefix match, connected and static routes.

A host keeps one :class:`RouteTable` per family (``host.routes`` for IPv4,
``host.routes6`` for IPv6, made with ``RouteTable(bits=128)``). Routes are ``(destination network,
gateway or None, interface)``; a route without a gateway is *connected*: its
destination is on the interface's link. Setting an address on an interface
adds the connected route of its subnet; removing the address removes it.

Lookup is longest-prefix match: one dict per prefix length, probed from the
longest length present down to 0, so a lookup costs at most one dict probe
per distinct prefix length in the table (a handful in practice), not one per
route.

The table has a *generation*, a count bumped by every route added or
deleted and by :meth:`RouteTable.invalidate` (the Internet layer calls it
when an address comes or goes). A socket remembers the route it chose in a
:class:`RouteCache` together with the generation it was chosen in, and
reuses it while the generation is unchanged (BSD's ``inp_route``; see
:meth:`Ip.route_cached <trionet._net._ip.Ip.route_cached>`), so a
connection's packets skip the lookup and the source choice.

*Divergence:* DragonFly replicates the routing table on every CPU (each
protocol thread reads its own copy, and changes are sent to all of them as
messages). Trio runs one task at a time, so a single table read by every
protocol thread gives the same answers; changes are plain function calls
between two packets.

DragonFly: ``sys/net/route.c`` (``rtrequest``, ``rtalloc``), ``netstat -r``.
"""

from __future__ import annotations

import errno
import ipaddress
from typing import TYPE_CHECKING

import attrs

from .._exceptions import NetError
from ._layer import ProtoLayer

if TYPE_CHECKING:
    from ._if import Ifnet

__all__ = [
    "Route",
    "RouteCache",
    "RouteChooser",
    "RouteRow",
    "RouteTable",
    "format_netstat_r",
    "parse_network",
]


@attrs.frozen
class Route:
    """One route.

    Attributes:
        network: the destination (``0.0.0.0/0`` or ``::/0`` is the default route).
        gateway: the next hop's address (4 or 16 bytes), or None for a
            connected route.
        ifp: the interface to send on.
        static: added by ``route_add`` (not by an address).
        autoconf: learned from a router advertisement (IPv6 default
            routers and on-link prefixes).
    """

    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    gateway: bytes | None
    ifp: Ifnet = attrs.field(repr=lambda i: i.name)
    static: bool = False
    autoconf: bool = False

    @property
    def flags(self) -> str:
        """``netstat -r`` flags: U (up), G (gateway), H (host route), S
        (static), C (connected), 1 (learned from a router advertisement)."""
        f = "U"
        if self.gateway is not None:
            f += "G"
        if self.network.prefixlen == self.network.max_prefixlen:
            f += "H"
        f += "S" if self.static else "1" if self.autoconf else "C"
        return f


@attrs.frozen
class RouteRow:
    """One route as ``netstat -r`` shows it (``family``: ``"inet"`` or ``"inet6"``)."""

    destination: str
    gateway: str
    flags: str
    netif: str
    mtu: int
    family: str = "inet"


def parse_network(dest: str, *, inet6: bool = False) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """``"10.0.0.0/24"``, ``"10.0.0.1"`` (a host route), ``"default"``, or
    with ``inet6`` (or a ``:`` in ``dest``) ``"fd00:1::/64"``, ``"fd00::1"``,
    ``"default"`` (``::/0``).

    Raises:
        ValueError: for anything else, or host bits set.
    """
    inet6 = inet6 or (isinstance(dest, str) and ":" in dest)
    if dest == "default":
        return ipaddress.IPv6Network("::/0") if inet6 else ipaddress.IPv4Network("0.0.0.0/0")
    try:
        return ipaddress.IPv6Network(dest) if inet6 else ipaddress.IPv4Network(dest)
    except (ipaddress.AddressValueError, ipaddress.NetmaskValueError, ValueError) as exc:
        family = "IPv6" if inet6 else "IPv4"
        raise ValueError(f"not an {family} network: {dest!r} ({exc})") from None


class RouteCache:
    """A route a socket remembers (BSD ``struct route``, a PCB's ``inp_route``).

    Filled and checked by :meth:`Ip.route_cached
    <trionet._net._ip.Ip.route_cached>` only; valid while ``generation``
    equals the route table's and the destination and requested source are
    the same as when it was filled.

    Attributes:
        generation: the table's generation when filled (-1: empty).
        dst, src: the destination and the requested source (None: any).
        route: ``(ifp, nexthop, src)`` as :meth:`Ip.route
            <trionet._net._ip.Ip.route>` chose it.
    """

    __slots__ = ("dst", "generation", "route", "src")

    def __init__(self) -> None:
        self.generation = -1
        self.dst = b""
        self.src: bytes | None = None
        self.route: tuple[Ifnet, bytes, bytes] | None = None

    def __repr__(self) -> str:
        return f"<RouteCache generation={self.generation} route={self.route!r}>"


#: What a failed route choice counts, by errno (anything else: ``no_route``).
ROUTE_ERROR_REASONS = {errno.EADDRNOTAVAIL: "no_source", errno.EINVAL: "no_zone"}


class RouteChooser(ProtoLayer):
    """What IPv4's and IPv6's layers share: route choice through a socket's
    :class:`RouteCache`. A subclass has ``routes`` (its :class:`RouteTable`)
    and ``route(dst, *, src=None, ifp=None) -> (ifp, nexthop, src)``."""

    routes: RouteTable

    def route(self, dst: bytes, *, src: bytes | None = None, ifp: Ifnet | None = None) -> tuple[Ifnet, bytes, bytes]:
        raise NotImplementedError  # pragma: no cover

    def route_cached(
        self, ro: RouteCache, dst: bytes, src: bytes | None = None
    ) -> tuple[Ifnet, bytes, bytes]:
        """:meth:`route` through the cache ``ro``: the remembered choice while
        the route table's generation, ``dst`` and ``src`` are unchanged,
        else a new one, remembered (BSD ``inp_route``).

        For output paths: a failure is counted as a drop (``no_route``,
        ``no_source``, and for IPv6 ``no_zone``), as ``output`` counts it.

        Raises:
            NetError: as :meth:`route`.
        """
        generation = self.routes.generation
        if ro.generation == generation and ro.dst == dst and ro.src == src:
            return ro.route  # type: ignore[return-value]
        try:
            route = self.route(dst, src=src)
        except NetError as exc:
            self._count_route_error(exc)
            raise
        ro.generation, ro.dst, ro.src, ro.route = generation, dst, src, route
        return route

    def _count_route_error(self, exc: NetError) -> None:
        self.drops[ROUTE_ERROR_REASONS.get(exc.errno, "no_route")] += 1  # type: ignore[arg-type]


class RouteTable:
    """A host's routes of one family (see the module docstring).

    Args:
        bits: the address size, 32 (IPv4) or 128 (IPv6).

    Attributes:
        generation: bumped by every change and by :meth:`invalidate`.
    """

    def __init__(self, *, bits: int = 32) -> None:
        if bits not in (32, 128):
            raise ValueError(f"bits must be 32 or 128, not {bits!r}")
        self.bits = bits
        self._all = (1 << bits) - 1
        # prefix length -> network address (int) -> route
        self._by_len: dict[int, dict[int, Route]] = {}
        self._lens: list[int] = []  # present prefix lengths, longest first
        self.generation = 0

    def invalidate(self) -> None:
        """Make every :class:`RouteCache` stale: something a route choice
        depends on, other than the routes themselves, changed (an address)."""
        self.generation += 1

    def __len__(self) -> int:
        return sum(len(d) for d in self._by_len.values())

    def add(self, route: Route) -> None:
        """Add ``route``.

        Raises:
            NetError: ``EEXIST`` if a route to the same network exists.
        """
        plen = route.network.prefixlen
        key = int(route.network.network_address)
        table = self._by_len.get(plen)
        if table is None:
            table = self._by_len[plen] = {}
            self._lens = sorted(self._by_len, reverse=True)
        if key in table:
            raise NetError(errno.EEXIST, f"a route to {route.network} exists")
        table[key] = route
        self.generation += 1

    def delete(self, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> Route:
        """Remove and return the route to ``network``.

        Raises:
            NetError: ``ESRCH`` if there is none.
        """
        plen = network.prefixlen
        table = self._by_len.get(plen)
        key = int(network.network_address)
        if table is None or key not in table:
            raise NetError(errno.ESRCH, f"no route to {network}")
        route = table.pop(key)
        if not table:
            del self._by_len[plen]
            self._lens = sorted(self._by_len, reverse=True)
        self.generation += 1
        return route

    def delete_interface(self, ifp: Ifnet) -> list[Route]:
        """Remove every route through ``ifp`` (it is going away); return them."""
        gone = [r for r in self.routes() if r.ifp is ifp]
        for r in gone:
            self.delete(r.network)
        return gone

    def lookup(self, dst: bytes) -> Route | None:
        """The longest-prefix match for the address ``dst`` (4 or 16 bytes,
        as the table's ``bits``), or None."""
        addr = int.from_bytes(dst, "big")
        by_len = self._by_len
        bits, full = self.bits, self._all
        for plen in self._lens:
            mask = (full << (bits - plen)) & full
            route = by_len[plen].get(addr & mask)
            if route is not None:
                return route
        return None

    def routes(self) -> list[Route]:
        """Every route, longest prefixes first, then by address."""
        return [
            self._by_len[plen][key]
            for plen in self._lens
            for key in sorted(self._by_len[plen])
        ]

    def rows(self) -> list[RouteRow]:
        """``netstat -r`` rows."""
        rows = []
        family = "inet" if self.bits == 32 else "inet6"
        for r in self.routes():
            dest = "default" if r.network.prefixlen == 0 else str(r.network)
            if r.network.prefixlen == self.bits:
                dest = str(r.network.network_address)
            if r.gateway:
                gw = str(ipaddress.ip_address(r.gateway))
                if self.bits == 128 and ipaddress.IPv6Address(r.gateway).is_link_local:
                    gw += f"%{r.ifp.name}"
            else:
                gw = f"link#{r.ifp.index}"
            rows.append(RouteRow(dest, gw, r.flags, r.ifp.name, r.ifp.mtu, family))
        return rows


def format_netstat_r(rows: list[RouteRow]) -> str:
    """Format rows in the layout of ``netstat -rn``: the Internet table, then
    the Internet6 one if there are IPv6 routes."""
    lines = ["Routing tables"]
    for family, title, width in (("inet", "Internet:", 20), ("inet6", "Internet6:", 28)):
        these = [r for r in rows if r.family == family]
        if family == "inet6" and not these:
            continue
        lines += ["", title]
        lines.append(f"{'Destination':<{width}} {'Gateway':<{width - 2}} {'Flags':<6} {'Netif':<8} {'Mtu':>5}")
        for r in these:
            lines.append(
                f"{r.destination:<{width}} {r.gateway:<{width - 2}} {r.flags:<6} {r.netif:<8} {r.mtu:>5}"
            )
    return "\n".join(lines) + "\n"
