"""Topology files: TOML in, checked frozen values out, and a running network from them.

A topology file describes hosts, switches, the links between them and a
scenario, the same things :func:`trionet.open_network` builds by hand::

    [network]
    seed = 1                       # optional; `trionet run --seed` overrides it

    [hosts.h1]
    ncpus = 2                      # 1..64, default 2
    routes = [ { dest = "default", gateway = "10.0.1.1" } ]

    [hosts.r1]
    forwarding = true              # net.inet.ip.forwarding = 1
    sysctls = { "net.inet.tcp.cc.algorithm" = "cubic" }

    [hosts.h2]
    routes = [ { dest = "10.0.1.0/24", gateway = "10.0.2.1" } ]

    [switches.sw1]                 # a learning bridge; optional aging, max_entries

    [[links]]
    name = "h1-r1"                 # optional; default "{a}-{b}"
    a = "h1"                       # a host or a switch
    a_address = "10.0.1.2/24"      # or a list; none on a switch side
    b = "r1"
    b_address = "10.0.1.1/24"
    kind = "memory"                # memory | udp | tap
    mtu = 1500                     # 68..65535
    delay = 0.001                  # seconds, one way (memory)
    bandwidth = 1e9                # bits/s (memory); default unlimited
    loss = 0.01                    # impairments, both directions: loss, duplicate,
    reorder = 0.01                 # reorder, corrupt (0..1), jitter (s), rate (bytes/s)

    [[links]]
    a = "r1"
    a_address = "10.0.2.1/24"
    b = "h2"
    b_address = "10.0.2.2/24"

    [[scenario]]
    step = "ping"
    from = "h1"
    to = "h2"                      # an IPv4 address, or a host (its first address)
    count = 3

    [[scenario]]
    step = "tcp_transfer"
    from = "h1"
    to = "10.0.2.2"
    bytes = "2MB"                  # an int, or "64KiB", "2MB", "1GiB"...

Sections and keys
=================

``docs/topology.md`` is the reference: every section and key, and one
section with an example per link kind and per step kind. The kinds are
tables: link kinds in :data:`trionet._links.LINK_KINDS` (the keys each
refuses, and how each is built), step kinds in
:data:`trionet._steps.STEP_KINDS` (one class per kind: its keys, how it
loads, runs and reports). This module reads the sections every file has
(``[network]``, ``[hosts.NAME]``, ``[switches.NAME]``) and asks the kind's
row about the rest; :class:`StepLoad` is what a step kind's ``load`` gets.

Errors
======

Every mistake in a file is a :class:`TopologyError` whose message names the
file, the line and the key, and says what is wrong::

    router.toml:40: links[1].mtu: must be an int from 68 to 65535, not "big"
    router.toml:7: hosts.h1.ncpu: unknown key; did you mean "ncpus"?

:mod:`tomllib` reports syntax errors with their position but keeps none for
the values it returns, so a light scan of the text (:mod:`trionet._toml_lines`)
finds the line of each key path; it only runs on text tomllib has accepted.
Mistakes only a running host can find (an unknown sysctl, a rejected value)
are raised by :func:`~trionet._build.build_network` the same way.

Building a network from a topology, whole or split over processes, is
:mod:`trionet._build`'s.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import tomllib
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import attrs

from ._checks import (
    ANY,
    REQUIRED,
    Bad,
    Check,
    boolean,
    choice,
    destination,
    did_you_mean,
    integer,
    ip_address,
    ipv4,
    node_name,
    number,
    show,
    string,
    sysctl_value,
)
from ._exceptions import TrionetError
from ._links import IMPAIRMENTS, LINK_KINDS, LinkKind, link_keys
from ._net._dhcp import parse_range
from ._net._dns import DnsZone
from ._steps import (
    COMMON_KEYS,
    STEP_KINDS,
    ImpairStep,
    LinkStep,
    PingStep,
    Step,
    SysctlStep,
    TcpTransferStep,
    UdpFloodStep,
    WaitStep,
)
from ._toml_lines import MAX_DEPTH, KeyPath, NestedTooDeep, key_lines

__all__ = [
    "HostSpec",
    "ImpairStep",
    "LinkSpec",
    "LinkStep",
    "PingStep",
    "RouteSpec",
    "Step",
    "StepLoad",
    "SwitchSpec",
    "SysctlStep",
    "TcpTransferStep",
    "Topology",
    "TopologyError",
    "UdpFloodStep",
    "WaitStep",
    "load_topology",
    "loads_topology",
]


DEFAULT_PORT_BASE = 47000



class TopologyError(TrionetError, ValueError):
    """A mistake in a topology file, or one a host found while building it.

    The message is ``"{file}:{line}: {key}: {problem}"`` (parts that are not
    known are left out).

    Attributes:
        filename: the file as given (``"<string>"`` for text).
        line: 1-based line, or None.
        key: the key path, as ``links[1].mtu``, or None.
        problem: what is wrong.
    """

    def __init__(
        self,
        problem: str,
        *,
        filename: str | None = None,
        line: int | None = None,
        key: str | None = None,
    ) -> None:
        self.filename = filename
        self.line = line
        self.key = key
        self.problem = problem
        where = ":".join(str(p) for p in (filename, line) if p is not None)
        parts = [p for p in (where, key) if p]
        super().__init__(": ".join([*parts, problem]))


####################################################################
# Values
####################################################################


@attrs.frozen(kw_only=True)
class RouteSpec:
    """A static route of a host (``route add dest gateway``)."""

    dest: str
    gateway: str | None = None
    link: str | None = None
    where: str = ""


@attrs.frozen(kw_only=True)
class RtadvdSpec:
    """Router advertisements a host sends on one of its links
    (:meth:`Host.rtadvd <trionet.Host.rtadvd>`)."""

    link: str
    prefixes: tuple[str, ...]
    mtu: int | None = None
    router_lifetime: int = 1800


@attrs.frozen(kw_only=True)
class DhcpSpec:
    """A pool a host serves over DHCP on one of its interfaces
    (:meth:`Host.dhcp_server <trionet.Host.dhcp_server>`); ``interface``
    is a link of the host (its end there) or an interface name."""

    interface: str
    pool: str
    router: str | None = None
    dns: tuple[str, ...] = ()
    domain: str | None = None
    lease_time: int = 3600
    mtu: int | None = None
    next_server: str | None = None
    boot_file: str | None = None
    static: tuple[tuple[str, str], ...] = ()


@attrs.frozen(kw_only=True)
class NatSpec:
    """Masquerading behind one interface (:meth:`Host.nat <trionet.Host.nat>`);
    ``outside`` is a link of the host or an interface name."""

    outside: str
    max_entries: int = 4096


@attrs.frozen(kw_only=True)
class HostSpec:
    """A host: CPUs, sysctls (in file order), routes, its DNS zone (served
    by :meth:`Host.serve_dns <trionet.Host.serve_dns>`), resolver, and the
    router advertisements it sends."""

    name: str
    ncpus: int = 2
    forwarding: bool = False
    sysctls: tuple[tuple[str, int | str], ...] = ()
    routes: tuple[RouteSpec, ...] = ()
    dns: DnsZone | None = None
    resolver: str | None = None
    rtadvd: tuple[RtadvdSpec, ...] = ()
    dhcp: tuple[DhcpSpec, ...] = ()
    nat: NatSpec | None = None


@attrs.frozen(kw_only=True)
class SwitchSpec:
    """A learning bridge (:class:`~trionet.wires.Switch`)."""

    name: str
    aging: float = 300.0
    max_entries: int = 1024


@attrs.frozen(kw_only=True)
class LinkSpec:
    """A link. ``b`` is None for a tap link (the far end is the kernel).

    ``impairments`` are (name, value) pairs, in :data:`IMPAIRMENTS` order.
    """

    name: str
    index: int
    a: str
    b: str | None
    a_addresses: tuple[str, ...] = ()
    b_addresses: tuple[str, ...] = ()
    #: ``a_address = "dhcp"``: that end asks a DHCP server (no addresses then).
    a_dhcp: bool = False
    b_dhcp: bool = False
    kind: str = "memory"
    mtu: int = 1500
    delay: float = 0.0
    bandwidth: float | None = None
    queue_len: int = 1000
    impairments: tuple[tuple[str, float], ...] = ()
    device: str | None = None
    netns: str | None = None

    @property
    def nodes(self) -> tuple[str, ...]:
        return (self.a,) if self.b is None else (self.a, self.b)

    @property
    def link_kind(self) -> LinkKind:
        """The row of :data:`~trionet._links.LINK_KINDS` for its ``kind``."""
        return LINK_KINDS[self.kind]

    @property
    def real_time(self) -> bool:
        """Whether the far end lives in real time (a ``udp`` or ``tap`` link)."""
        return self.link_kind.real_time


@attrs.frozen(kw_only=True)
class Topology:
    """A checked topology file. Made by :func:`load_topology`.

    Attributes:
        filename: the file as given.
        seed: ``[network] seed``, or None.
        hosts, switches, links, scenario: in file order.
    """

    filename: str
    seed: int | None = None
    description: str = ""
    hosts: tuple[HostSpec, ...] = ()
    switches: tuple[SwitchSpec, ...] = ()
    links: tuple[LinkSpec, ...] = ()
    scenario: tuple[Step, ...] = ()
    #: The line of each key path, for errors found later (by a host).
    key_lines: Mapping[KeyPath, int] = attrs.field(factory=dict, eq=False, repr=False)

    def error(self, path: KeyPath, problem: str) -> TopologyError:
        """A :class:`TopologyError` about the key at ``path`` (``("hosts", "h1", "ncpus")``)."""
        return _Loader(self.filename, dict(self.key_lines)).error(path, problem)

    def host(self, name: str) -> HostSpec:
        for spec in self.hosts:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def link(self, name: str) -> LinkSpec:
        for spec in self.links:
            if spec.name == name:
                return spec
        raise KeyError(name)

    @property
    def nodes(self) -> tuple[str, ...]:
        """Host and switch names, hosts first."""
        return tuple(h.name for h in self.hosts) + tuple(s.name for s in self.switches)

    def addresses(self, host: str) -> list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]:
        """The host's interface addresses (either family), in file order."""
        found: list[ipaddress.IPv4Interface | ipaddress.IPv6Interface] = []
        for spec in self.links:
            if spec.a == host:
                found += [ipaddress.ip_interface(a) for a in spec.a_addresses]
            if spec.b == host:
                found += [ipaddress.ip_interface(a) for a in spec.b_addresses]
        return found


_BARE = re.compile(r"[A-Za-z0-9_-]+\Z")
_IFNAME = re.compile(r"[a-z]+[0-9]+\Z")


def format_key(path: KeyPath) -> str:
    """``("links", 1, "mtu")`` -> ``links[1].mtu``; keys with dots are quoted."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = part if _BARE.match(part) else json.dumps(part)
            out += f".{text}" if out else text
    return out


####################################################################
# The loader
####################################################################


@attrs.define(eq=False)
class _Loader:
    filename: str
    lines: dict[KeyPath, int]

    def line(self, path: KeyPath) -> int | None:
        for n in range(len(path), 0, -1):
            if path[:n] in self.lines:
                return self.lines[path[:n]]
        return None

    def error(self, path: KeyPath, problem: str) -> TopologyError:
        return TopologyError(
            problem, filename=self.filename, line=self.line(path), key=format_key(path) or None
        )

    def where(self, path: KeyPath) -> str:
        line = self.line(path)
        at = f"{self.filename}:{line}" if line is not None else self.filename
        return f"{at}: {format_key(path)}"

    def table(self, value: Any, path: KeyPath) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(path, f"must be a table, not {show(value)}")
        return value

    def fields(
        self, table: dict[str, Any], path: KeyPath, spec: Mapping[str, tuple[Check, Any]]
    ) -> dict[str, Any]:
        """Check ``table`` against ``spec`` (key -> (check, default or REQUIRED))."""
        for key in table:
            if key not in spec:
                raise self.error(
                    path + (key,),
                    f"unknown key{did_you_mean(key, spec)} (known: {', '.join(spec)})",
                )
        out: dict[str, Any] = {}
        for key, (check, default) in spec.items():
            if key not in table:
                if default is REQUIRED:
                    raise self.error(path, f"missing key {json.dumps(key)}")
                out[key] = default
                continue
            try:
                out[key] = check(table[key])
            except Bad as exc:
                raise self.error(path + (key,), str(exc)) from None
        return out

    def names(self, value: Any, path: KeyPath, what: str, known: Collection[str]) -> str:
        # A reference to a node; the message lists what exists.
        if not isinstance(value, str):
            raise self.error(path, f"must be the name of a {what}, not {show(value)}")
        if value not in known:
            listing = ", ".join(sorted(known)) or "none"
            raise self.error(
                path, f"no {what} called {json.dumps(value)}{did_you_mean(value, known)} (known: {listing})"
            )
        return value

    ################################################################

    def load(self, doc: dict[str, Any]) -> Topology:
        top = self.fields(
            doc,
            (),
            {
                "network": (ANY, {}),
                "hosts": (ANY, {}),
                "switches": (ANY, {}),
                "links": (ANY, []),
                "scenario": (ANY, []),
            },
        )
        network = self.fields(
            self.table(top["network"], ("network",)),
            ("network",),
            {"seed": (integer(0, 2**64 - 1), None), "description": (string, "")},
        )
        hosts_raw = self.table(top["hosts"], ("hosts",))
        switches_raw = self.table(top["switches"], ("switches",))
        for section, raw in (("hosts", hosts_raw), ("switches", switches_raw)):
            for name in raw:
                try:
                    node_name(name)
                except Bad as exc:
                    raise self.error((section, name), str(exc)) from None
        for name in switches_raw:
            if name in hosts_raw:
                raise self.error(("switches", name), f"{json.dumps(name)} is already a host's name")
        if not hosts_raw:
            where: KeyPath = ("hosts",) if "hosts" in doc else ()
            raise self.error(where, "a topology needs at least one host ([hosts.NAME])")
        switches = tuple(self.switch(name, raw) for name, raw in switches_raw.items())
        links = self.links(top["links"], set(hosts_raw), set(switches_raw))
        partial = Topology(filename=self.filename, links=links, key_lines=self.lines)
        hosts = tuple(self.host(name, raw, partial) for name, raw in hosts_raw.items())
        partial = attrs.evolve(partial, hosts=hosts, switches=switches)
        scenario = self.scenario(top["scenario"], partial)
        return attrs.evolve(
            partial, seed=network["seed"], description=network["description"], scenario=scenario
        )

    def switch(self, name: str, raw: Any) -> SwitchSpec:
        path: KeyPath = ("switches", name)
        f = self.fields(
            self.table(raw, path),
            path,
            {"aging": (number(0, above=True), 300.0), "max_entries": (integer(1, 1 << 20), 1024)},
        )
        return SwitchSpec(name=name, **f)

    def links(self, raw: Any, hosts: set[str], switches: set[str]) -> tuple[LinkSpec, ...]:
        if not isinstance(raw, list):
            raise self.error(("links",), "must be an array of tables ([[links]])")
        nodes = hosts | switches
        out: list[LinkSpec] = []
        names: dict[str, int] = {}
        for index, item in enumerate(raw):
            path: KeyPath = ("links", index)
            f = self.fields(self.table(item, path), path, link_keys())
            kind = f["kind"]
            row = LINK_KINDS[kind]
            if row.kernel_end:
                a = self.names(f["a"], path + ("a",), "host", hosts)
                if f["b"] is not None:
                    raise self.error(
                        path + ("b",),
                        f'a {kind} link has no "b": its far end is the kernel'
                        " (give b_address for the kernel side)",
                    )
                b = None
            else:
                a = self.names(f["a"], path + ("a",), "host or switch", nodes)
                if f["b"] is None:
                    raise self.error(path, 'missing key "b"')
                b = self.names(f["b"], path + ("b",), "host or switch", nodes)
                if a == b:
                    raise self.error(
                        path + ("b",), f"a link joins two different nodes; both ends are {json.dumps(a)}"
                    )
            # The keys this kind has no use for, and its own checks (trionet._links rules 3, 4).
            row.check_fields(f, lambda key, problem: self.error(path + (key,), problem))
            for side, node in (("a", a), ("b", b)):
                if node in switches and f[f"{side}_address"]:
                    raise self.error(
                        path + (f"{side}_address",),
                        f"{json.dumps(node)} is a switch: a switch port has no address",
                    )
            name = f["name"] if f["name"] is not None else (f"{a}-{b}" if b else f"{a}-kernel")
            if name in names:
                key = path + ("name",) if f["name"] is not None else path
                hint = "" if f["name"] is not None else ' (give the links names with name = "...")'
                raise self.error(
                    key, f"duplicate link name {json.dumps(name)}, first used by links[{names[name]}]{hint}"
                )
            names[name] = index
            out.append(
                LinkSpec(
                    name=name,
                    index=index,
                    a=a,
                    b=b,
                    a_addresses=() if f["a_address"] == ("dhcp",) else f["a_address"],
                    b_addresses=() if f["b_address"] == ("dhcp",) else f["b_address"],
                    a_dhcp=f["a_address"] == ("dhcp",),
                    b_dhcp=f["b_address"] == ("dhcp",),
                    kind=kind,
                    mtu=f["mtu"],
                    delay=f["delay"],
                    bandwidth=f["bandwidth"],
                    queue_len=f["queue_len"],
                    impairments=tuple((k, f[k]) for k in IMPAIRMENTS if f[k] is not None),
                    device=f["device"],
                    netns=f["netns"],
                )
            )
        # One address per host at most once.
        seen: dict[tuple[str, str], KeyPath] = {}
        for spec in out:
            for side, node, addresses in (("a", spec.a, spec.a_addresses), ("b", spec.b, spec.b_addresses)):
                if node is None:
                    continue
                for address in addresses:
                    ip = str(ipaddress.ip_interface(address).ip)
                    here: KeyPath = ("links", spec.index, f"{side}_address")
                    if (node, ip) in seen:
                        first = format_key(seen[node, ip])
                        raise self.error(here, f"{node} already has address {ip} ({first})")
                    seen[node, ip] = here
        return tuple(out)

    def host(self, name: str, raw: Any, topo: Topology) -> HostSpec:
        path: KeyPath = ("hosts", name)
        f = self.fields(
            self.table(raw, path),
            path,
            {
                "ncpus": (integer(1, 64), 2),
                "forwarding": (boolean, False),
                "sysctls": (ANY, {}),
                "routes": (ANY, []),
                "dns": (ANY, None),
                "resolver": (ipv4, None),
                "rtadvd": (ANY, []),
                "dhcp": (ANY, None),
                "nat": (ANY, None),
            },
        )
        zone = None if f["dns"] is None else self.dns_zone(f["dns"], path + ("dns",))
        sysctls_path = path + ("sysctls",)
        sysctls = []
        for key, value in self.table(f["sysctls"], sysctls_path).items():
            try:
                sysctls.append((key, sysctl_value(value)))
            except Bad as exc:
                raise self.error(sysctls_path + (key,), str(exc)) from None
        if not isinstance(f["routes"], list):
            raise self.error(
                path + ("routes",),
                'must be an array of tables, such as [ { dest = "default", gateway = "10.0.0.1" } ]',
            )
        subnets = [iface.network for iface in topo.addresses(name)]
        own_links = {spec.name for spec in topo.links if name in spec.nodes}
        routes = []
        dests: dict[str, int] = {}
        for n, item in enumerate(f["routes"]):
            rpath = path + ("routes", n)
            r = self.fields(
                self.table(item, rpath),
                rpath,
                {"dest": (destination, REQUIRED), "gateway": (ip_address, None), "link": (string, None)},
            )
            if r["dest"] in dests:
                raise self.error(
                    rpath + ("dest",), f"a route to {r['dest']} is already given (routes[{dests[r['dest']]}])"
                )
            dests[r["dest"]] = n
            if r["link"] is not None:
                self.names(r["link"], rpath + ("link",), "link of this host", own_links)
            elif r["gateway"] is None:
                raise self.error(rpath, 'a route needs a "gateway", or a "link" for a link route')
            else:
                gw = ipaddress.ip_address(r["gateway"])
                if (gw.version == 6) != (":" in r["dest"]) and r["dest"] != "default":
                    raise self.error(rpath + ("gateway",), f"gateway {gw} is not of the family of {r['dest']}")
                if gw.version == 6 and gw.is_link_local:
                    raise self.error(rpath + ("gateway",), f"gateway {gw} is link-local: give a global or ULA one")
                if not any(gw.version == net.version and gw in net for net in subnets):
                    have = ", ".join(str(s) for s in subnets) or "none"
                    raise self.error(
                        rpath + ("gateway",),
                        f"gateway {gw} is not on a subnet of {name} (its subnets: {have})",
                    )
            routes.append(
                RouteSpec(dest=r["dest"], gateway=r["gateway"], link=r["link"], where=self.where(rpath))
            )
        if not isinstance(f["rtadvd"], list):
            raise self.error(
                path + ("rtadvd",),
                'must be an array of tables, such as [ { link = "r-h", prefix = "fd00:1::/64" } ]',
            )
        adverts = []
        for n, item in enumerate(f["rtadvd"]):
            apath = path + ("rtadvd", n)
            a = self.fields(
                self.table(item, apath),
                apath,
                {
                    "link": (string, REQUIRED),
                    "prefix": (ANY, REQUIRED),
                    "mtu": (integer(1280, 65535), None),
                    "router_lifetime": (integer(0, 9000), 1800),
                },
            )
            self.names(a["link"], apath + ("link",), "link of this host", own_links)
            prefixes = a["prefix"] if isinstance(a["prefix"], list) else [a["prefix"]]
            for prefix in prefixes:
                try:
                    network = ipaddress.IPv6Network(prefix if isinstance(prefix, str) else "")
                except ValueError:
                    raise self.error(
                        apath + ("prefix",), f'must be an IPv6 prefix such as "fd00:1::/64", not {show(prefix)}'
                    ) from None
                if network.prefixlen != 64:
                    raise self.error(apath + ("prefix",), f"{network} is not a /64: hosts autoconfigure only from /64s")
            adverts.append(
                RtadvdSpec(
                    link=a["link"], prefixes=tuple(prefixes), mtu=a["mtu"], router_lifetime=a["router_lifetime"]
                )
            )
        dhcp = self.dhcp(f["dhcp"], path + ("dhcp",), own_links)
        nat = None
        if f["nat"] is not None:
            npath = path + ("nat",)
            n = self.fields(
                self.table(f["nat"], npath),
                npath,
                {"outside": (string, REQUIRED), "max_entries": (integer(1, 1 << 20), 4096)},
            )
            if not f["forwarding"]:
                raise self.error(npath, "a NAT forwards: set forwarding = true on this host")
            self.interface_ref(n["outside"], npath + ("outside",), own_links)
            nat = NatSpec(outside=n["outside"], max_entries=n["max_entries"])
        return HostSpec(
            name=name,
            ncpus=f["ncpus"],
            dhcp=dhcp,
            nat=nat,
            forwarding=f["forwarding"],
            sysctls=tuple(sysctls),
            routes=tuple(routes),
            rtadvd=tuple(adverts),
            dns=zone,
            resolver=f["resolver"],
        )

    def interface_ref(self, value: str, path: KeyPath, own_links: set[str]) -> None:
        # A link of the host, or an interface name (vnic1), checked when built.
        if value not in own_links and not _IFNAME.match(value):
            listing = ", ".join(sorted(own_links)) or "none"
            raise self.error(
                path,
                f"no link of this host called {json.dumps(value)}{did_you_mean(value, own_links)}"
                f" (its links: {listing}; or give an interface name such as vnic0)",
            )

    def dhcp(self, raw: Any, path: KeyPath, own_links: set[str]) -> tuple[DhcpSpec, ...]:
        # dhcp = { interface = "r1-h1", pool = "10.0.0.100-10.0.0.200", router = ..., dns = ... }
        # or an array of such tables, one per interface.
        if raw is None:
            return ()
        items = raw if isinstance(raw, list) else [raw]
        out = []
        seen: set[str] = set()
        for n, item in enumerate(items):
            dpath = path + (n,) if isinstance(raw, list) else path
            d = self.fields(
                self.table(item, dpath),
                dpath,
                {
                    "interface": (string, REQUIRED),
                    "pool": (string, REQUIRED),
                    "router": (ipv4, None),
                    "dns": (ANY, []),
                    "domain": (string, None),
                    "lease_time": (integer(60, 2**31), 3600),
                    "mtu": (integer(68, 65535), None),
                    "next_server": (ipv4, None),
                    "boot_file": (string, None),
                    "static": (ANY, {}),
                },
            )
            self.interface_ref(d["interface"], dpath + ("interface",), own_links)
            if d["interface"] in seen:
                raise self.error(dpath + ("interface",), f"{d['interface']} already has a pool")
            seen.add(d["interface"])
            try:
                parse_range(d["pool"])
            except ValueError as exc:
                raise self.error(dpath + ("pool",), str(exc)) from None
            dns_raw = d["dns"] if isinstance(d["dns"], list) else [d["dns"]]
            dns = []
            for k, item_dns in enumerate(dns_raw):
                try:
                    dns.append(ipv4(item_dns))
                except Bad as exc:
                    raise self.error(dpath + ("dns",), f"[{k}]: {exc}" if isinstance(d["dns"], list) else str(exc)) from None
            static = []
            for mac, address in self.table(d["static"], dpath + ("static",)).items():
                try:
                    static.append((mac, ipv4(address)))
                except Bad as exc:
                    raise self.error(dpath + ("static", mac), str(exc)) from None
            out.append(
                DhcpSpec(
                    interface=d["interface"],
                    pool=d["pool"],
                    router=d["router"],
                    dns=tuple(dns),
                    domain=d["domain"],
                    lease_time=d["lease_time"],
                    mtu=d["mtu"],
                    next_server=d["next_server"],
                    boot_file=d["boot_file"],
                    static=tuple(static),
                )
            )
        return tuple(out)

    def dns_zone(self, raw: Any, path: KeyPath) -> DnsZone:
        # dns = { zone = { "www" = "10.0.2.2", "db" = ["10.0.2.3", ...] },
        #         origin = "lab", ttl = 300 }
        f = self.fields(
            self.table(raw, path),
            path,
            {"zone": (ANY, REQUIRED), "origin": (string, "."), "ttl": (integer(0, 2**31 - 1), 300)},
        )
        zpath = path + ("zone",)
        try:
            DnsZone({}, origin=f["origin"])
        except ValueError as exc:
            raise self.error(path + ("origin",), str(exc)) from None
        records: dict[str, list[str]] = {}
        for name, value in self.table(f["zone"], zpath).items():
            items = value if isinstance(value, list) else [value]
            try:
                if not items:
                    raise Bad("must be an address or a non-empty array of addresses")
                records[name] = [ipv4(item) for item in items]
                DnsZone({**records}, origin=f["origin"])  # a bad name, or one listed twice
            except (Bad, ValueError) as exc:
                raise self.error(zpath + (name,), str(exc)) from None
        return DnsZone(records, origin=f["origin"], ttl=f["ttl"])

    def scenario(self, raw: Any, topo: Topology) -> tuple[Step, ...]:
        # Each table's kind is a row of STEP_KINDS: its keys, then its load().
        if not isinstance(raw, list):
            raise self.error(("scenario",), "must be an array of tables ([[scenario]])")
        owners: dict[str, str] = {}
        for h in topo.hosts:
            for iface in topo.addresses(h.name):
                owners.setdefault(str(iface.ip), h.name)
        services: dict[tuple[str, str, int], int] = {}
        steps: list[Step] = []
        for index, item in enumerate(raw):
            path: KeyPath = ("scenario", index)
            table = self.table(item, path)
            if "step" not in table:
                raise self.error(path, f"missing key \"step\" (one of {', '.join(STEP_KINDS)})")
            try:
                kind = choice(*STEP_KINDS)(table["step"])
            except Bad as exc:
                raise self.error(path + ("step",), str(exc)) from None
            cls = STEP_KINDS[kind]
            f = self.fields(table, path, {**COMMON_KEYS, **cls.KEYS})
            steps.append(cls.load(StepLoad(self, topo, index, kind, table, owners, services), f))
        return tuple(steps)


@attrs.define(eq=False)
class StepLoad:
    """What a step kind's ``load`` gets besides its checked fields (rule 2
    of :mod:`trionet._steps`): where the step is, and checks of its
    references whose errors name the file, the line and the key.

    Attributes:
        topology: the topology so far (hosts, switches and links; no scenario).
        index: the step's position in the scenario.
        kind: its ``step`` value.
    """

    _loader: _Loader
    topology: Topology
    index: int
    kind: str
    _table: Mapping[str, Any]
    _owners: Mapping[str, str]  # address -> the host that has it
    _services: dict[tuple[str, str, int], int]  # (host, protocol, port) -> the step serving it

    @property
    def path(self) -> KeyPath:
        return ("scenario", self.index)

    def error(self, key: str | None, problem: str) -> TopologyError:
        """A :class:`TopologyError` about ``scenario[i].key`` (``None``: the step itself)."""
        return self._loader.error(self.path + ((key,) if key is not None else ()), problem)

    def given(self, key: str) -> bool:
        """Whether the file gives ``key`` (rather than leaving its default)."""
        return key in self._table

    def base(self, f: Mapping[str, Any], *, label: bool = True) -> dict[str, Any]:
        """The fields every :class:`~trionet._steps.Step` has. ``label=False``
        when the kind's ``name`` key means something else (a sysctl)."""
        base: dict[str, Any] = {
            "index": self.index,
            "kind": self.kind,
            "where": self._loader.where(self.path),
            "timeout": f["timeout"],
        }
        if label:
            base["name"] = f["name"]
        return base

    def host(self, value: Any, key: str) -> str:
        """``value`` (at ``key``) names a host of the file."""
        return self._loader.names(value, self.path + (key,), "host", {h.name for h in self.topology.hosts})

    def link(self, value: Any, key: str, *, faults: bool = False) -> str:
        """``value`` (at ``key``) names a link; with ``faults``, one whose
        kind can be partitioned or impaired."""
        link = self._loader.names(value, self.path + (key,), "link", {spec.name for spec in self.topology.links})
        spec = self.topology.link(link)
        if faults and not spec.link_kind.faults:
            raise self.error(key, f"{link} is a {spec.kind} link: it cannot be partitioned or impaired")
        return link

    def target(self, value: Any, key: str, *, need_owner: bool) -> tuple[str, str | None]:
        """``to``: an IPv4 or IPv6 address, or a host name meaning its first
        IPv4 address (its first IPv6 one if it has none); and the host that
        has it (None if none does, which ``need_owner`` refuses: the
        receiving side runs there)."""
        path = self.path + (key,)
        hosts = {h.name for h in self.topology.hosts}
        if isinstance(value, str) and value in hosts:
            addresses = self.topology.addresses(value)
            if not addresses:
                raise self._loader.error(
                    path, f"host {value} has no address (give one with a_address/b_address on its links)"
                )
            first = next((a for a in addresses if a.version == 4), addresses[0])
            return str(first.ip), value
        try:
            address = ip_address(value)
        except Bad:
            hint = did_you_mean(value, hosts) if isinstance(value, str) else ""
            problem = f"must be an IP address or a host's name, not {show(value)}{hint}"
            raise self._loader.error(path, problem) from None
        owner = self._owners.get(address)
        if need_owner and owner is None:
            raise self._loader.error(
                path,
                f"{address} is not an address of a host in this topology (the receiving side runs there)",
            )
        return address, owner

    def serve(self, host: str, protocols: tuple[str, ...], port: int, key: str = "port") -> None:
        """Claim ``port`` on ``host`` for this step's receiving side, for each protocol."""
        for p in protocols:
            if (host, p, port) in self._services:
                raise self.error(
                    key,
                    f"{host} already serves {p} port {port} for"
                    f" scenario[{self._services[host, p, port]}]; give another port",
                )
            self._services[host, p, port] = self.index


def loads_topology(text: str, *, filename: str = "<string>") -> Topology:
    """Check the topology in ``text``.

    Raises:
        TopologyError: for any mistake, with file, line and key.
    """
    try:
        lines = key_lines(text)
    except NestedTooDeep as exc:
        # Before tomllib, which recurses once per level (RecursionError).
        problem = f"nested more than {MAX_DEPTH} arrays or inline tables deep"
        raise TopologyError(problem, filename=filename, line=exc.line, key=format_key(exc.path) or None) from None
    try:
        doc = tomllib.loads(text)
    except RecursionError:  # deeper than the scanner followed (it stops at what is not valid TOML)
        raise TopologyError(f"TOML nested too deeply (at most {MAX_DEPTH} levels)", filename=filename) from None
    except tomllib.TOMLDecodeError as exc:
        # Its message ends "(at line 3, column 7)".
        message = str(exc)
        m = re.search(r"\(at line (\d+), column (\d+)\)$", message)
        if m:
            problem = f"TOML syntax: {message[: m.start()].strip()} (column {m.group(2)})"
            raise TopologyError(problem, filename=filename, line=int(m.group(1))) from None
        raise TopologyError(f"TOML syntax: {message}", filename=filename) from None
    return _Loader(filename, lines).load(doc)


def load_topology(path: str | os.PathLike[str]) -> Topology:
    """Read and check the topology file at ``path``.

    Raises:
        TopologyError: for any mistake in the file (with file, line and
            key), or if it cannot be read.
    """
    filename = os.fspath(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TopologyError(f"cannot read: {exc}", filename=filename) from None
    return loads_topology(text, filename=filename)
