"""Helpers for testing network code and drivers with trionet.

- :func:`check_driver`: the conformance suite a driver author runs against
  their own driver.
"""

from ._check_driver import DriverCheckError, DriverCheckReport, check_driver

__all__ = ["DriverCheckError", "DriverCheckReport", "check_driver"]

for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("trionet.testing._"):
        _obj.__module__ = __name__
del _name, _obj
