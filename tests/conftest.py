"""Shared test configuration."""

from hypothesis import settings

# Hypothesis runs synchronously inside trio.run() calls; CI machines have two
# cores, so no per-example deadline.
settings.register_profile("trionet", deadline=None)
settings.load_profile("trionet")
