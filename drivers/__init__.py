"""Network drivers, installed as ``trionet.drivers``: one module per driver.

Drivers import only :mod:`trionet` and :mod:`trionet.lowlevel`.
"""
