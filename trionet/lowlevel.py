"""The driver writer's API: what a driver or kernel extension needs beyond :mod:`trionet`.

Drivers in ``trionet.drivers`` import only from :mod:`trionet` and this module,
so everything a driver needs is public and documented here.
"""

from ._kern._callout import Callout
from ._kern._giant import Giant
from ._kern._intr import IntrController, IntrCookie
from ._kern._kthread import KThread
from ._kern._ktrace import KernelTrace
from ._kern._ktrace import recording as record_trace
from ._kern._msgport import MsgPort, MsgPortStatistics, NetMsg
from ._kern._sysctl import SysctlNode
from ._net._driver import Driver
from ._net._ether import Mbuf, MbufFlags
from ._net._if import IFF_CANTCHANGE, IfData, InAddr, PollCmd
from ._net._route import Route, RouteTable
from ._net._ifq import (
    FAIRQ,
    FIFO,
    PRIQ,
    ClassStatistics,
    Discipline,
    IfAltq,
    IfqStatistics,
    TokenBucket,
)
from ._net._ifstart import if_devstart, ifq_dispatch
# The Ethernet constants live in trionet.protocols.ethernet (the broadcast
# MAC there is BROADCAST; here it keeps its BSD name).
from .protocols.ethernet import BROADCAST as ETHER_BROADCAST
from .protocols.ethernet import ETHER_ADDR_LEN, ETHER_HDR_LEN, ETHERTYPE_ARP, ETHERTYPE_IP, ETHERTYPE_IPV6
# Offloads (a frame's pending checksum and TSO segmentation): the class,
# PendingFrame, is trionet.protocols.offload's.
from .protocols.offload import complete, segment, wire_frames
from .wires._endpoint import (
    CountingEndpoint,
    EndpointStatistics,
    EndpointWrapper,
    Receiver,
    WireEndpoint,
    WireLifecycle,
)

__all__ = [
    "KernelTrace",
    "record_trace",
    "ETHERTYPE_ARP",
    "ETHERTYPE_IP",
    "ETHERTYPE_IPV6",
    "ETHER_ADDR_LEN",
    "ETHER_BROADCAST",
    "ETHER_HDR_LEN",
    "FAIRQ",
    "FIFO",
    "IFF_CANTCHANGE",
    "PRIQ",
    "Callout",
    "ClassStatistics",
    "CountingEndpoint",
    "Discipline",
    "Driver",
    "EndpointStatistics",
    "EndpointWrapper",
    "Giant",
    "IfAltq",
    "IfData",
    "IfqStatistics",
    "InAddr",
    "IntrController",
    "IntrCookie",
    "KThread",
    "Mbuf",
    "MbufFlags",
    "MsgPort",
    "MsgPortStatistics",
    "NetMsg",
    "PollCmd",
    "Receiver",
    "Route",
    "RouteTable",
    "SysctlNode",
    "TokenBucket",
    "WireEndpoint",
    "WireLifecycle",
    "complete",
    "if_devstart",
    "ifq_dispatch",
    "segment",
    "wire_frames",
]

for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith(("trionet._", "trionet.wires._")):
        _obj.__module__ = __name__
del _name, _obj
