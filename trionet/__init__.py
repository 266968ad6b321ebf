"""trionet: an async-first network stack framework on Trio.

trionet models DragonFly BSD's MPSAFE network design: Trio tasks stand in for
interrupt threads and protocol threads, and one :class:`Serializer` covers an
interface's whole interrupt path. This module exports the user API; driver
writers find the rest in :mod:`trionet.lowlevel`.
"""

from ._exceptions import KernelPanic, NetError, TrionetError
from ._kern._intr import IntrState, VmstatRow, format_vmstat_i
from ._kern._kthread import PsRow, format_ps
from ._kern._netisr import NetisrStatistics
from ._kern._serializer import Serializer, SerializerStatistics
from ._kern._sysctl import format_sysctl
from ._net._host import Host, PollStatistics, open_host
from ._net._if import IfCap, IfFlags, IfIoctl, Ifnet, IfStatistics, In6Addr, In6Flags, LinkState
from ._net._arp import ArpLayerStatistics, ArpRow, format_arp
from ._net._dhcp import Dhclient, DhcpClientLease, DhcpLeaseRow, format_dhcp_leases
from ._net._dns import DnsServer, DnsServerStatistics, DnsZone
from ._net._icmp import IcmpStatistics, PingError, PingResult
from ._net._icmp6 import Icmp6Statistics
from ._net._ifviews import IfconfigRow, NetstatIRow, format_ifconfig, format_netstat_i
from ._net._ip import IpStatistics
from ._net._ip6 import Ip6Statistics
from ._net._nd6 import Nd6LayerStatistics, NdpRow, format_ndp
from ._net._route import RouteRow, format_netstat_r
from ._net._tcp import NetstatRow, TcpLayerStatistics, format_netstat
from ._net._tcp_socket import TcpListener, TcpStream
from ._net._trio_socket import TrioSocket
from ._net._udp import UdpDatagram, UdpSocket, UdpSocketStatistics, UdpStatistics
from ._network import Link, Network, derive_seed, open_network
from ._scenario import Progress, StepResult, run_scenario
from ._build import build_network
from ._record import Recording, recording
from ._topology import Topology, TopologyError, load_topology, loads_topology

__version__ = "0.1.0.dev0"

__all__ = [
    "ArpLayerStatistics",
    "ArpRow",
    "Dhclient",
    "DhcpClientLease",
    "DhcpLeaseRow",
    "DnsServer",
    "DnsServerStatistics",
    "DnsZone",
    "Host",
    "IfCap",
    "IfFlags",
    "IfIoctl",
    "IfStatistics",
    "IcmpStatistics",
    "Icmp6Statistics",
    "IfconfigRow",
    "Ifnet",
    "IntrState",
    "In6Addr",
    "In6Flags",
    "IpStatistics",
    "Ip6Statistics",
    "KernelPanic",
    "Link",
    "LinkState",
    "Nd6LayerStatistics",
    "NdpRow",
    "NetError",
    "NetisrStatistics",
    "NetstatIRow",
    "NetstatRow",
    "Network",
    "PingError",
    "PingResult",
    "PollStatistics",
    "Progress",
    "PsRow",
    "Recording",
    "RouteRow",
    "Serializer",
    "SerializerStatistics",
    "StepResult",
    "TcpLayerStatistics",
    "TcpListener",
    "TcpStream",
    "Topology",
    "TopologyError",
    "TrioSocket",
    "TrionetError",
    "UdpDatagram",
    "UdpSocket",
    "UdpSocketStatistics",
    "UdpStatistics",
    "VmstatRow",
    "build_network",
    "recording",
    "derive_seed",
    "format_arp",
    "format_dhcp_leases",
    "format_ifconfig",
    "format_netstat",
    "format_netstat_i",
    "format_ndp",
    "format_netstat_r",
    "format_ps",
    "format_sysctl",
    "format_vmstat_i",
    "load_topology",
    "loads_topology",
    "open_host",
    "open_network",
    "run_scenario",
]

# Public names say they live here, not in a private module (as trio does).
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("trionet._"):
        _obj.__module__ = __name__
del _name, _obj
