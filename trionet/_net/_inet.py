"""The Internet layer of a host: ARP, IPv4, ICMP, UDP and TCP wired together.

``host.inet`` holds one of each, and the two tables every one of them
consults, which it owns (STYLE rule 13: a layer is handed what it needs):

- :attr:`Inet.local_addrs`: this host's IPv4 addresses -> their interface
  (BSD ``in_ifaddrhashtbl``);
- :attr:`Inet.broadcasts`: the subnet broadcast address of every address.

Both are changed in place, only here (:meth:`Inet.in_add`,
:meth:`Inet.in_delete`, :meth:`Inet.if_detached`), so the protocols hold
them from the start. Each change also bumps the route table's generation,
since a cached route's source address or interface may depend on it.

The protocols reach each other through IP's protocol switch
(``ip.protocols[proto] = (input, ctlinput)``, BSD's ``inetsw``): IP input
hands a datagram to ``input``, and ICMP input hands an error about a
datagram we sent to the ``ctlinput`` of the protocol it quotes.

Creating the layer registers ARP (EtherType 0x0806, on ``netisr 0``) and
IPv4 (0x0800, hashed by flow) with netisr, and the host's Internet sysctls:

- ``net.inet.ip.forwarding`` (0): act as a router;
- ``net.inet.ip.ttl`` (64): the default TTL;
- ``net.inet.udp.recvspace`` (42080): a UDP socket's receive buffer, bytes;
- ``net.inet.icmp.icmplim`` (200): ICMP errors sent per second at most
  (0: no limit); the rest are counted as ``error_ratelimited``;
- TCP's, listed in :mod:`trionet._net._tcp`.

DragonFly: ``sys/netinet/in.c`` (``in_control``: ``SIOCAIFADDR``,
``SIOCDIFADDR``), ``in_proto.c`` (``inetsw``).
"""

from __future__ import annotations

import errno
import ipaddress
from typing import TYPE_CHECKING

import structlog

from .._exceptions import NetError
from ._arp import Arp
from ._icmp import Icmp
from ._if import InAddr
from ._ip import Ip
from ._route import Route
from ._tcp import Tcp
from ._udp import Udp

if TYPE_CHECKING:
    from ._host import Host
    from ._if import Ifnet

__all__ = ["Inet"]

log = structlog.get_logger(__name__)


class Inet:
    """A host's Internet layer (``host.inet``).

    Attributes:
        local_addrs: this host's IPv4 addresses -> their interface.
        broadcasts: every subnet broadcast address of every interface.
        arp, ip, icmp, udp, tcp: the protocols.
    """

    def __init__(self, host: Host) -> None:
        add = host.sysctls.add
        add("net.inet.ip.forwarding", int, 0, min=0, max=1, description="Forward IPv4 datagrams")
        add("net.inet.ip.ttl", int, 64, min=1, max=255, description="Default TTL")
        add(
            "net.inet.udp.recvspace",
            int,
            42080,
            min=1,
            description="Bytes a UDP socket's receive buffer holds",
        )
        add(
            "net.inet.icmp.icmplim",
            int,
            200,
            min=0,
            description="ICMP errors sent per second at most (0: no limit)",
        )
        self._host = host
        self.local_addrs: dict[bytes, Ifnet] = {}
        self.broadcasts: set[bytes] = set()
        self.arp = Arp(host)
        self.ip = Ip(host, self.arp, self.local_addrs, self.broadcasts)
        self.icmp = Icmp(self.ip, self.local_addrs, self.broadcasts)
        self.ip.icmp = self.icmp
        self.udp = Udp(self.ip, self.icmp, self.local_addrs, self.broadcasts)
        self.tcp = Tcp(self.ip, self.local_addrs)

    ####################################################################
    # Addresses
    ####################################################################

    def in_add(self, ifp: Ifnet, iface: ipaddress.IPv4Interface) -> InAddr:
        """Add an address to ``ifp`` (the first becomes primary), with the
        connected route of its subnet unless one exists, and announce it
        with a gratuitous ARP if the interface is running.

        Raises:
            NetError: ``EEXIST`` if the address is already on this host.
        """
        addr = iface.ip.packed
        if addr in self.local_addrs:
            raise NetError(errno.EEXIST, f"{iface.ip} is already on {self.local_addrs[addr].name}")
        network = iface.network
        ia = InAddr(addr, network, network.broadcast_address.packed)
        routes = self._host.routes
        if not any(r.network == network for r in routes.routes()):
            routes.add(Route(network, None, ifp))
        ifp.addrs.append(ia)
        self.local_addrs[addr] = ifp
        self._addresses_changed()
        log.info("in_addr_added", host=self._host.name, ifname=ifp.name, addr=str(ia))
        self.arp.announce(ifp, addr)
        return ia

    def in_delete(self, ifp: Ifnet, addr: bytes) -> InAddr:
        """Remove the address ``addr`` from ``ifp``, and the connected route
        of its subnet if no other address of ``ifp`` is on it.

        Raises:
            NetError: ``EADDRNOTAVAIL`` if ``ifp`` has no such address.
        """
        for ia in ifp.addrs:
            if ia.addr == addr:
                break
        else:
            raise NetError(errno.EADDRNOTAVAIL, f"{ifp.name} has no address {addr.hex()}")
        ifp.addrs.remove(ia)
        del self.local_addrs[addr]
        self._addresses_changed()
        routes = self._host.routes
        if not any(other.network == ia.network for other in ifp.addrs):
            for r in routes.routes():
                if r.network == ia.network and r.ifp is ifp and r.gateway is None:
                    routes.delete(r.network)
        log.info("in_addr_deleted", host=self._host.name, ifname=ifp.name, addr=str(ia))
        return ia

    def if_detached(self, ifp: Ifnet) -> None:
        """Forget every address of ``ifp``, which is going away (its routes
        are the route table's to remove)."""
        for ia in ifp.addrs:
            self.local_addrs.pop(ia.addr, None)
        ifp.addrs.clear()
        self._addresses_changed()

    def _addresses_changed(self) -> None:
        broadcasts = self.broadcasts
        broadcasts.clear()
        broadcasts.update(ia.broadcast for ifp in self._host.ifnets() for ia in ifp.addrs)
        self._host.routes.invalidate()
