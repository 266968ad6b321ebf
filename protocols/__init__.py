"""Sans-IO protocol code, installed as ``trionet.protocols``.

Modules here use only the standard library and attrs: no Trio, no I/O. Time
and randomness come in as arguments; output is returned, never sent.
"""
