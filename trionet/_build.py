"""Building a topology: :func:`build_network` turns a :class:`~trionet.Topology`
into hosts, switches, links, addresses, routes and sysctls in an
:func:`~trionet.open_network` block, all of it or only some nodes (a split run).

Splitting a topology over processes: ``build_network(topo, only_hosts={"h1"})``
builds only those nodes; a link between a node here and one elsewhere becomes
a :class:`~trionet.wires.UdpWire` on 127.0.0.1 whose ports derive from
``port_base`` and the link's position in the file (side ``a`` of link ``i``
binds ``port_base + 2*i``, side ``b`` ``port_base + 2*i + 1``), wrapped in a
:class:`~trionet.wires.FaultInjector` with the seed the link would have had in
one process. So every process computes the same wiring from the same file,
with nothing to exchange. (*Divergence* from a one-process run: such a half
link has the link's impairments and ``delay``, but no ``bandwidth`` or
``queue_len``; that changes timing, not what is sent.)
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Collection, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import structlog
import trio

from ._checks import did_you_mean
from ._exceptions import NetError
from ._links import UDP_MAX_MTU
from ._toml_lines import KeyPath
from ._topology import (
    DEFAULT_PORT_BASE,
    LinkSpec,
    Topology,
    TopologyError,
)

__all__ = ["BuiltNetwork", "build_network", "check_pcap_names", "check_split"]

log = structlog.get_logger(__name__)



@attrs.define(eq=False)
class BuiltNetwork:
    """A topology running in a :class:`~trionet.Network`. Made by :func:`build_network`.

    Attributes:
        topology: what it was built from.
        net: the network.
        seed: the seed used.
        local: the nodes built in this process (all, unless ``only_hosts``).
        hosts: name -> :class:`~trionet.Host`, local hosts only.
        links: name -> :class:`~trionet.Link` (both ends here) or
            a half link (one end here, see :meth:`Network.half_link
            <trionet.Network.half_link>`).
    """

    topology: Topology
    net: Any
    seed: int
    local: frozenset[str]
    hosts: dict[str, Any] = attrs.field(factory=dict)
    links: dict[str, Any] = attrs.field(factory=dict)
    #: host name -> its :class:`~trionet.DnsServer` (``[hosts.NAME] dns``).
    dns_servers: dict[str, Any] = attrs.field(factory=dict)

    @property
    def split(self) -> bool:
        """Whether some nodes run in other processes."""
        return self.local != frozenset(self.topology.nodes)


def _net_labels(topo: Topology) -> dict[str, str]:
    # The name Network.link / tap_link gives each link (its faults' seeds
    # derive from it), replicated so a half link in another process gets the
    # same seeds.
    labels: dict[str, str] = {}
    used: set[str] = set()
    for spec in topo.links:
        base = f"{spec.a}-{spec.b}" if spec.b is not None else f"{spec.a}-kernel"
        label, n = base, 1
        while label in used:
            n += 1
            label = f"{base}#{n}"
        used.add(label)
        labels[spec.name] = label
    return labels


def _needs_injector(topo: Topology) -> set[str]:
    # A partition of a memory link without injectors would drop the
    # carrier; a link a step partitions or impairs gets injectors.
    return {link for step in topo.scenario for link in step.faulted_links()}


def _name_key(topo: Topology, spec: LinkSpec) -> KeyPath:
    # links[i].name when the file gives it, else links[i] (the name is "{a}-{b}").
    key: KeyPath = ("links", spec.index, "name")
    return key if key in topo.key_lines else ("links", spec.index)


def check_pcap_names(topology: Topology, pcap_dir: str | os.PathLike[str]) -> None:
    """Check that every link's capture, ``{pcap_dir}/{link}.pcap``, is a file
    name the file system takes (``NAME_MAX``, 255 bytes on Linux).

    Raises:
        TopologyError: naming the link whose name is too long.
    """
    try:
        name_max = os.pathconf(pcap_dir, "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255
    for spec in topology.links:
        size = len(os.fsencode(f"{spec.name}.pcap"))
        if spec.link_kind.captured and size > name_max:
            raise topology.error(
                _name_key(topology, spec),
                f"link name too long for a capture file with --pcap ({size} bytes with"
                f' ".pcap"; the file system takes {name_max})',
            )


def check_split(topology: Topology, groups: Iterable[Collection[str]]) -> None:
    """Check that each link between two of ``groups`` (of node names, one
    per process) can be a UDP half link: its ``mtu`` fits one datagram.

    Raises:
        TopologyError: naming the link's ``mtu``.
    """
    where = {node: n for n, group in enumerate(groups) for node in group}
    for spec in topology.links:
        if spec.b is None or where.get(spec.a) == where.get(spec.b):
            continue
        if spec.mtu > UDP_MAX_MTU:
            raise topology.error(
                ("links", spec.index, "mtu"),
                f"a link between processes is carried by UDP, one frame per datagram: mtu must"
                f" be at most {UDP_MAX_MTU}, not {spec.mtu}",
            )


def _capture_error(topo: Topology, spec: LinkSpec, capture: str, exc: OSError) -> TopologyError:
    return topo.error(("links", spec.index), f"cannot write its capture {capture}: {exc.strerror}")


#: Seconds a ``"dhcp"`` link end may take to get its lease (Trio time:
#: free under the virtual clock; the client's retransmissions fit in it).
DHCP_PATIENCE = 120.0


@asynccontextmanager
async def build_network(
    topology: Topology,
    *,
    seed: int | None = None,
    pcap_dir: str | os.PathLike[str] | None = None,
    only_hosts: Collection[str] | None = None,
    port_base: int = DEFAULT_PORT_BASE,
    invariants: bool = True,
) -> AsyncIterator[BuiltNetwork]:
    """Run ``topology``: hosts, switches, links, addresses, sysctls, routes.

    Leaving the block tears it all down (it is an
    :func:`~trionet.open_network` block).

    Args:
        seed: the network's seed; default the file's, else 0.
        pcap_dir: record each link's frames to ``{pcap_dir}/{link}.pcap``
            (side ``a``, after its faults; not tap links).
        only_hosts: build only these nodes (hosts and switches); a link to a
            node not built here becomes a UDP half link (see the module
            docstring). Default: all.
        port_base: the first UDP port of half links.
        invariants: kernel assertions on every host.

    Raises:
        TopologyError: a mistake a host found (an unknown sysctl, a value
            out of range, a route refused), a tap link that could not be made
            (no permission, a device name taken, no such namespace), a link
            name too long for its capture, a capture that cannot be written,
            or a link between processes too big for UDP; each naming the file,
            line and key.
        OSError: ``pcap_dir`` is not a directory and cannot be made.
    """
    from ._network import open_network

    topo = topology
    if seed is None:
        seed = topo.seed if topo.seed is not None else 0
    nodes = set(topo.nodes)
    if only_hosts is None:
        local = frozenset(nodes)
    else:
        unknown = sorted(set(only_hosts) - nodes)
        if unknown:
            raise TopologyError(
                f"no host or switch called {', '.join(unknown)}{did_you_mean(unknown[0], nodes)}",
                filename=topo.filename,
            )
        local = frozenset(only_hosts)
        check_split(topo, [local, nodes - local])
    pcap = Path(pcap_dir) if pcap_dir is not None else None
    if pcap is not None:
        pcap.mkdir(parents=True, exist_ok=True)
        check_pcap_names(topo, pcap)
    labels = _net_labels(topo)
    injected = _needs_injector(topo)

    # Any IPv6 in the file enables IPv6 on every interface at ifup, so that
    # hosts without an IPv6 address of their own autoconfigure from routers.
    uses_ipv6 = any(
        ":" in address for spec in topo.links for address in (*spec.a_addresses, *spec.b_addresses)
    ) or any(spec.rtadvd for spec in topo.hosts)
    async with open_network(seed=seed, invariants=invariants) as net:
        built = BuiltNetwork(topo, net, seed, local)
        for spec in topo.hosts:
            if spec.name not in local:
                continue
            host = await net.add_host(spec.name, ncpus=spec.ncpus)
            built.hosts[spec.name] = host
            settings = list(spec.sysctls)
            if spec.forwarding:
                settings.append(("net.inet.ip.forwarding", 1))
                settings.append(("net.inet6.ip6.forwarding", 1))
            if uses_ipv6:
                settings.insert(0, ("net.inet6.ip6.auto_linklocal", 1))
            for name, value in settings:
                try:
                    host.sysctl(name, value)
                except NetError as exc:
                    hint = did_you_mean(name, [node.name for node in host.sysctls])
                    key = ("hosts", spec.name, "sysctls", name)
                    raise topo.error(key, f"{exc.strerror}{hint}") from None
                except (TypeError, ValueError) as exc:
                    raise topo.error(("hosts", spec.name, "sysctls", name), str(exc)) from None
        for sw in topo.switches:
            if sw.name in local:
                net.add_switch(sw.name, aging=sw.aging, max_entries=sw.max_entries)
        ends: dict[tuple[str, int], Any] = {}  # (link name, side) -> Ifnet
        for spec in topo.links:
            here = [node in local for node in spec.nodes]
            if not any(here):
                continue
            capture = str(pcap / f"{spec.name}.pcap") if pcap is not None else None
            impairments = dict(spec.impairments)
            if spec.name in injected and not impairments:
                impairments["loss"] = 0.0
            if all(here):
                kind = spec.link_kind
                nodes = [built.hosts.get(n) or net.switches[n] for n in spec.nodes]
                capture = capture if kind.captured else None
                try:
                    link = await kind.build(net, topo, spec, nodes, pcap=capture, impairments=impairments)
                except OSError as exc:
                    if capture is None or exc.filename != capture:
                        raise
                    raise _capture_error(topo, spec, capture, exc) from None
                for side in range(len(spec.nodes)):
                    ends[spec.name, side] = link.ends[side]
            else:
                # The other side is in another process: a UDP half link,
                # on the ports and with the fault seed that side expects.
                side = 0 if here[0] else 1
                node = built.hosts.get(spec.nodes[side]) or net.switches[spec.nodes[side]]
                local_port = port_base + 2 * spec.index + side
                try:
                    link = await net.half_link(
                        node,
                        label=labels[spec.name],
                        side=side,
                        local_port=local_port,
                        peer_port=port_base + 2 * spec.index + 1 - side,
                        mtu=spec.mtu,
                        delay=spec.delay,
                        pcap=capture,
                        **dict(spec.impairments),
                    )
                except OSError as exc:
                    if capture is not None and exc.filename == capture:
                        raise _capture_error(topo, spec, capture, exc) from None
                    if exc.errno is None or exc.filename is not None:
                        raise
                    problem = f"cannot bind UDP port {local_port} on 127.0.0.1 for this link: {exc.strerror}"
                    raise topo.error(("links", spec.index), problem) from None
                ends[spec.name, side] = link.ends[side]
            built.links[spec.name] = link
        for spec in topo.links:
            for side, node, addresses in ((0, spec.a, spec.a_addresses), (1, spec.b, spec.b_addresses)):
                if node not in built.hosts:  # elsewhere, a switch, or the kernel (None)
                    continue
                for address in addresses:
                    try:
                        built.hosts[node].ifconfig(ends[spec.name, side].name, address)
                    except (NetError, ValueError) as exc:
                        key = ("links", spec.index, "ab"[side] + "_address")
                        raise topo.error(key, str(exc)) from None
        link_names = {spec.name for spec in topo.links}

        def ifname_of(host_name: str, ref: str) -> str:
            # A link of the host (its end there), or an interface name as given.
            if ref in link_names:
                lspec = topo.link(ref)
                side = 0 if lspec.a == host_name else 1
                if (ref, side) in ends:
                    return str(ends[ref, side].name)
            return ref

        for spec in topo.hosts:
            if spec.name not in built.hosts:
                continue
            host = built.hosts[spec.name]
            for n, route in enumerate(spec.routes):
                ifname = ifname_of(spec.name, route.link) if route.link is not None else None
                try:
                    host.route_add(route.dest, route.gateway, ifname=ifname)
                except (NetError, ValueError) as exc:
                    raise topo.error(("hosts", spec.name, "routes", n), str(exc)) from None
            for n, advert in enumerate(spec.rtadvd):
                try:
                    host.rtadvd(
                        ifname_of(spec.name, advert.link), prefix=advert.prefixes, mtu=advert.mtu,
                        router_lifetime=advert.router_lifetime,
                    )  # fmt: skip
                except (NetError, ValueError) as exc:
                    raise topo.error(("hosts", spec.name, "rtadvd", n), str(exc)) from None
            for n, d in enumerate(spec.dhcp):
                key = ("hosts", spec.name, "dhcp") + ((n,) if len(spec.dhcp) > 1 else ())
                try:
                    host.dhcp_server(
                        ifname_of(spec.name, d.interface), pool=d.pool, router=d.router, dns=d.dns,
                        domain=d.domain, lease_time=d.lease_time, mtu=d.mtu, next_server=d.next_server,
                        boot_file=d.boot_file, static=dict(d.static),
                    )  # fmt: skip
                except (NetError, ValueError) as exc:
                    raise topo.error(key, str(exc)) from None
            if spec.nat is not None:
                try:
                    host.nat(ifname_of(spec.name, spec.nat.outside), max_entries=spec.nat.max_entries)
                except (NetError, ValueError) as exc:
                    raise topo.error(("hosts", spec.name, "nat", "outside"), str(exc)) from None
            if spec.resolver is not None:
                host.resolver = spec.resolver
        # Link ends with address = "dhcp": a client each, bound before the scenario.
        dhcp_clients = []
        for spec in topo.links:
            for side, node, wants in ((0, spec.a, spec.a_dhcp), (1, spec.b, spec.b_dhcp)):
                if wants and node in built.hosts:
                    client = built.hosts[node].dhclient(ends[spec.name, side].name, hostname=node)
                    dhcp_clients.append((("links", spec.index, "ab"[side] + "_address"), node, client))
        # What only a running host knows (a scenario sysctl's name), so a
        # typo is a file error before anything runs.
        for step in topo.scenario:
            step.check_built(topo, built.hosts)
        log.info(
            "topology_built",
            file=topo.filename,
            seed=seed,
            hosts=len(built.hosts),
            links=len(built.links),
        )
        for key, node, client in dhcp_clients:
            with trio.move_on_after(DHCP_PATIENCE) as waited:
                await client.wait_bound()
            if waited.cancelled_caught:
                raise topo.error(
                    key, f"{node} got no DHCP lease on {client.ifname} in {DHCP_PATIENCE:.0f} s (is a server on that link?)"
                )
        # The DNS servers ([hosts.NAME] dns) run for the whole block, in a
        # nursery of their own: stopped before the network tears the hosts down.
        async with trio.open_nursery() as servers:
            for spec in topo.hosts:
                if spec.name in built.hosts and spec.dns is not None:
                    host = built.hosts[spec.name]
                    built.dns_servers[spec.name] = await servers.start(host.serve_dns, spec.dns)
            yield built
            servers.cancel_scope.cancel()
