"""The kernel model: serializer, Giant, kernel threads, interrupts, netisr, callouts.

Everything here is private; the public names are re-exported from
:mod:`trionet` (users) and :mod:`trionet.lowlevel` (driver writers).
"""
