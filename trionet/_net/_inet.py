"""The Internet layer of a host: ARP, IPv4, ICMP, UDP and TCP wired together.

``host.inet`` holds one of each. Creating it registers ARP (EtherType
0x0806, on ``netisr 0``) and IPv4 (0x0800, hashed by flow) with netisr, and
the host's Internet sysctls:

- ``net.inet.ip.forwarding`` (0): act as a router;
- ``net.inet.ip.ttl`` (64): the default TTL;
- ``net.inet.udp.recvspace`` (42080): a UDP socket's receive buffer, bytes;
- ``net.inet.icmp.icmplim`` (200): ICMP errors sent per second at most
  (0: no limit); the rest are counted as ``error_ratelimited``;
- TCP's, listed in :mod:`trionet._net._tcp`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._arp import Arp
from ._icmp import Icmp
from ._ip import Ip
from ._tcp import Tcp
from ._udp import Udp

if TYPE_CHECKING:
    from ._host import Host

__all__ = ["Inet"]


class Inet:
    """A host's Internet layer (``host.inet``)."""

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
        self.arp = Arp(host)
        self.ip = Ip(host, self.arp)
        self.icmp = Icmp(self.ip)
        self.udp = Udp(self.ip)
        self.tcp = Tcp(self.ip)
