"""The IPv6 layer of a host: IPv6, ICMPv6 and neighbour discovery wired
together, and the addresses of its interfaces.

``host.inet6`` holds one of each. Its addresses go into the Internet layer's
``local_addrs`` table (16-byte keys beside IPv4's 4-byte ones), so UDP and
TCP, which take either family, check a local address with one lookup.

Addresses (:meth:`Inet6.in6_add`, :meth:`Inet6.in6_delete`): each is an
:class:`~trionet._net._if.In6Addr` on ``ifp.addrs6``; one set on a running
interface starts TENTATIVE and goes through DAD (``trionet._net._nd6``,
rule 3); its subnet's connected route is added unless it is link-local
(link-local destinations are routed by their zone, never by the table) or a
/128. A loopback interface gets ``::1`` at ``ifup``.

IPv6 is *enabled* on an Ethernet interface when it is given its first IPv6
address, or at ``ifup`` when ``net.inet6.ip6.auto_linklocal`` is 1 (what a
host that autoconfigures from router advertisements needs): it then gets
its link-local address ``fe80::`` + EUI-64 (with DAD), joins all-nodes, and,
on a host that accepts advertisements, solicits routers. *Divergence:*
DragonFly's ``auto_linklocal`` defaults to 1, so every interface speaks
IPv6 from ``ifup``; here it defaults to 0, so that an IPv4-only network
sends nothing it did not ask for (its captures, counts and benchmarks are
what they were), and IPv6 costs nothing until it is used. A topology file
with any IPv6 address or ``rtadvd`` sets it to 1 on every host.

The host's IPv6 sysctls:

- ``net.inet6.ip6.forwarding`` (0): act as a router;
- ``net.inet6.ip6.hlim`` (64): the default hop limit;
- ``net.inet6.ip6.accept_rtadv`` (1): a host autoconfigures from router
  advertisements;
- ``net.inet6.ip6.auto_linklocal`` (0): enable IPv6 on every Ethernet
  interface at ``ifup``, not only on those given an IPv6 address;
- ``net.inet6.ip6.dad_count`` (1): DAD probes per address (0: no DAD);
- ``net.inet6.icmp6.errppslimit`` (100): ICMPv6 errors sent per second at
  most (0: no limit).

DragonFly: ``sys/netinet6/in6.c`` (``in6_control``, ``in6_update_ifa``,
``in6_purgeaddr``), ``in6_ifattach.c`` (``in6_ifattach``,
``in6_ifattach_linklocal``), ``in6_proto.c`` (``inet6sw``).
"""

from __future__ import annotations

import errno
import ipaddress
import random
from typing import TYPE_CHECKING

import structlog

from .._exceptions import NetError
from ..protocols.ipv6 import eui64_interface_id, is_link_local6, link_local_address
from ._icmp6 import Icmp6
from ._if import IfFlags, In6Addr, In6Flags
from ._ip6 import Ip6
from ._nd6 import Nd6
from ._route import Route

if TYPE_CHECKING:
    from ._host import Host
    from ._if import Ifnet

__all__ = ["Inet6"]

log = structlog.get_logger(__name__)

_LOOPBACK6 = bytes(15) + b"\x01"


class Inet6:
    """A host's IPv6 layer (``host.inet6``).

    Attributes:
        ip6, icmp6, nd6: the protocols.
        local_addrs: the Internet layer's address table (shared with IPv4).
    """

    def __init__(self, host: Host, local_addrs: dict[bytes, Ifnet]) -> None:
        add = host.sysctls.add
        add("net.inet6.ip6.forwarding", int, 0, min=0, max=1, description="Forward IPv6 packets")
        add("net.inet6.ip6.hlim", int, 64, min=1, max=255, description="Default hop limit")
        add(
            "net.inet6.ip6.accept_rtadv", int, 1, min=0, max=1,
            description="Autoconfigure from router advertisements (hosts)",
        )
        add(
            "net.inet6.ip6.auto_linklocal", int, 0, min=0, max=1,
            description="Enable IPv6 (a link-local address, router solicitation) on every interface at ifup",
        )
        add("net.inet6.ip6.dad_count", int, 1, min=0, max=10, description="DAD probes per address")
        add(
            "net.inet6.icmp6.errppslimit", int, 100, min=0,
            description="ICMPv6 errors sent per second at most (0: no limit)",
        )
        self._host = host
        self.local_addrs = local_addrs
        self.ip6 = Ip6(host, local_addrs)
        self.icmp6 = Icmp6(self.ip6, local_addrs)
        self.ip6.icmp6 = self.icmp6
        self.nd6 = Nd6(host, self.ip6, local_addrs, random.Random(f"nd6:{host.name}"))
        self.ip6.nd6 = self.nd6
        self._enabled: set[Ifnet] = set()  # interfaces IPv6 is enabled on

    @property
    def enabled(self) -> bool:
        """Whether IPv6 is enabled on some (non-loopback) interface."""
        return bool(self._enabled)

    ####################################################################
    # Addresses
    ####################################################################

    def in6_add(
        self,
        ifp: Ifnet,
        addr: bytes,
        prefixlen: int,
        *,
        flags: In6Flags = In6Flags(0),
        valid_until: float = float("inf"),
        preferred_until: float = float("inf"),
        connected_route: bool = True,
    ) -> In6Addr:
        """Add an IPv6 address to ``ifp``: TENTATIVE with DAD if the interface
        is running, with the connected route of its prefix (see the module
        docstring).

        Raises:
            NetError: ``EEXIST`` if the address is already on this host;
                ``EINVAL`` for a multicast or unspecified address.
        """
        if addr[0] == 0xFF or addr == bytes(16):
            raise NetError(errno.EINVAL, f"{ipaddress.IPv6Address(addr)} cannot be an interface address")
        if addr in self.local_addrs:
            raise NetError(errno.EEXIST, f"{ipaddress.IPv6Address(addr)} is already on {self.local_addrs[addr].name}")
        running = ifp.flags & (IfFlags.UP | IfFlags.RUNNING) == IfFlags.UP | IfFlags.RUNNING
        if running and ifp not in self._enabled and not ifp.flags & IfFlags.LOOPBACK:
            self.enable(ifp)
        ia = In6Addr(addr, prefixlen, flags | (In6Flags.TENTATIVE if running else In6Flags(0)), valid_until, preferred_until)
        if is_link_local6(addr):
            ifp.addrs6.insert(0, ia)
        else:
            ifp.addrs6.append(ia)
        self.local_addrs[addr] = ifp
        if ia.flags & In6Flags.TENTATIVE:
            self.ip6.tentative.add(addr)
        routes = self._host.routes6
        if connected_route and prefixlen < 128 and not is_link_local6(addr):
            network = ipaddress.IPv6Interface((addr, prefixlen)).network
            if not any(r.network == network for r in routes.routes()):
                routes.add(Route(network, None, ifp))
        routes.invalidate()
        log.info("in6_addr_added", host=self._host.name, ifname=ifp.name, addr=str(ia))
        if running:
            self.nd6.start_dad(ifp, ia)
        return ia

    def in6_delete(self, ifp: Ifnet, addr: bytes) -> In6Addr:
        """Remove ``addr`` from ``ifp``, and the connected route of its
        prefix if no other address of ``ifp`` is on it.

        Raises:
            NetError: ``EADDRNOTAVAIL`` if ``ifp`` has no such address.
        """
        for ia in ifp.addrs6:
            if ia.addr == addr:
                break
        else:
            raise NetError(errno.EADDRNOTAVAIL, f"{ifp.name} has no address {ipaddress.IPv6Address(addr)}")
        ifp.addrs6.remove(ia)
        if self.local_addrs.get(addr) is ifp:
            del self.local_addrs[addr]
        self.nd6.forget(ifp, addr)
        routes = self._host.routes6
        network = ipaddress.IPv6Interface((addr, ia.prefixlen)).network
        if not any(ipaddress.IPv6Interface((o.addr, o.prefixlen)).network == network for o in ifp.addrs6):
            for r in routes.routes():
                if r.network == network and r.ifp is ifp and r.gateway is None and not r.static:
                    routes.delete(r.network)
        routes.invalidate()
        log.info("in6_addr_deleted", host=self._host.name, ifname=ifp.name, addr=str(ia))
        return ia

    def if_up(self, ifp: Ifnet) -> None:
        """``ifp`` came up (and its driver is running): ``::1`` on loopback;
        on Ethernet, enable IPv6 if ``net.inet6.ip6.auto_linklocal`` is 1 or
        it has IPv6 addresses (set while it was down: they probe again)."""
        if ifp.flags & IfFlags.LOOPBACK:
            self.nd6.if_up(ifp, None)
            if _LOOPBACK6 not in self.local_addrs:
                self.in6_add(ifp, _LOOPBACK6, 128)
            return
        if self._host.sysctls.get("net.inet6.ip6.auto_linklocal") == 1 or ifp.addrs6:
            self.enable(ifp)

    def enable(self, ifp: Ifnet) -> None:
        """Enable IPv6 on the running interface ``ifp`` (see the module
        docstring); nothing if it is already.

        DragonFly: ``in6_ifattach`` (the link-local address), ``in6_if_up``
        (DAD of the rest).
        """
        if ifp in self._enabled or ifp.flags & IfFlags.LOOPBACK:
            return
        self._enabled.add(ifp)
        iid = eui64_interface_id(ifp.lladdr) if len(ifp.lladdr) == 6 else None
        self.nd6.if_up(ifp, iid)
        for ia in list(ifp.addrs6):  # set while the interface was down
            if not ia.flags & In6Flags.DUPLICATED:
                ia.flags |= In6Flags.TENTATIVE
                self.nd6.start_dad(ifp, ia)
        if iid is not None:
            ll = link_local_address(ifp.lladdr)
            if not any(ia.addr == ll for ia in ifp.addrs6):
                self.in6_add(ifp, ll, 64)

    def if_down(self, ifp: Ifnet) -> None:
        """``ifp`` went down: its neighbours and DAD runs are forgotten
        (addresses stay, and probe again at the next ``ifup``)."""
        self._enabled.discard(ifp)
        self.nd6.if_down(ifp)

    def if_detached(self, ifp: Ifnet) -> None:
        """Forget every IPv6 address of ``ifp``, which is going away."""
        for ia in ifp.addrs6:
            if self.local_addrs.get(ia.addr) is ifp:
                del self.local_addrs[ia.addr]
            self.ip6.tentative.discard(ia.addr)
        ifp.addrs6.clear()
        self._enabled.discard(ifp)
        self.nd6.if_down(ifp, detached=True)
        self._host.routes6.invalidate()
