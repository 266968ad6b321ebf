"""Wires: what drivers send frames over.

The endpoint interface a driver talks to (:class:`trionet.lowlevel.WireEndpoint`)
lives in :mod:`trionet.lowlevel`; this module holds the wires themselves.
"""

from ._endpoint import MAX_INSTANT_HOPS, MemoryEndpoint, memory_pair
from ._fault import FaultInjector, FaultStatistics
from ._memory import MemoryWire, MemoryWireEndpoint, MemoryWireStatistics
from ._pcap import PcapStatistics, PcapTap
from ._switch import MacTableRow, Switch, SwitchPortStatistics, SwitchStatistics
from ._tap import TapWire, TapWireStatistics
from ._trace import Tracer, TracerStatistics
from ._udp import UdpWire, UdpWireStatistics, open_udp_wire_pair

__all__ = [
    "FaultInjector",
    "MAX_INSTANT_HOPS",
    "FaultStatistics",
    "MacTableRow",
    "MemoryEndpoint",
    "MemoryWire",
    "MemoryWireEndpoint",
    "MemoryWireStatistics",
    "PcapStatistics",
    "PcapTap",
    "Switch",
    "SwitchPortStatistics",
    "SwitchStatistics",
    "TapWire",
    "TapWireStatistics",
    "Tracer",
    "TracerStatistics",
    "UdpWire",
    "UdpWireStatistics",
    "memory_pair",
    "open_udp_wire_pair",
]

for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("trionet.wires._"):
        _obj.__module__ = __name__
del _name, _obj
