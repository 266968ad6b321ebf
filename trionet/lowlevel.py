"""The driver writer's API: what a driver or kernel extension needs beyond :mod:`trionet`.

Drivers in ``trionet.drivers`` import only from :mod:`trionet` and this module,
so everything a driver needs is public and documented here.
"""

from ._kern._callout import Callout
from ._kern._giant import Giant
from ._kern._intr import IntrController, IntrCookie
from ._kern._kthread import KThread
from ._kern._msgport import MsgPort, MsgPortStatistics, NetMsg
from ._kern._sysctl import SysctlNode

__all__ = [
    "Callout",
    "Giant",
    "IntrController",
    "IntrCookie",
    "KThread",
    "MsgPort",
    "MsgPortStatistics",
    "NetMsg",
    "SysctlNode",
]

for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("trionet._"):
        _obj.__module__ = __name__
del _name, _obj
