"""Helpers for test authors: the driver conformance suite and the pytest plugin.

Nothing is exported yet; the driver conformance suite (``check_driver``)
arrives with the interface layer.
"""

__all__: list[str] = []
