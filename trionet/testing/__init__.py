"""Helpers for testing network code and drivers with trionet.

- :func:`check_driver`: the conformance suite a driver author runs against
  their own driver.
- :func:`linux_peer_unavailable`: why the Linux kernel cannot be a peer
  here (a skip reason), or None; :func:`file_unavailable`: the same for a
  data file of a Debian package; :func:`command_unavailable`: the same for
  system commands (``tshark``, ``ping``...).
- :func:`deterministic_scheduling`: make Trio's order of ready tasks follow a
  seed, so a run in virtual time replays exactly.
- The pytest plugin (``trionet_network``, ``trionet_host``, ``--trionet-seed``,
  ``--trionet-pcap``), registered by installing trionet.
"""

from ._check_driver import DriverCheckError, DriverCheckReport, check_driver
from ._linux import command_unavailable, file_unavailable, linux_peer_unavailable
from ._scheduling import deterministic_scheduling

__all__ = [
    "DriverCheckError",
    "DriverCheckReport",
    "check_driver",
    "command_unavailable",
    "file_unavailable",
    "deterministic_scheduling",
    "linux_peer_unavailable",
]

for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("trionet.testing._"):
        _obj.__module__ = __name__
del _name, _obj
