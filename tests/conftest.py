"""Shared test configuration."""

from hypothesis import settings

# Hypothesis runs synchronously inside trio.run() calls; CI machines have two
# cores, so no per-example deadline.
settings.register_profile("trionet", deadline=None)
settings.load_profile("trionet")


def pytest_addoption(parser):  # type: ignore[no-untyped-def]
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite the golden files of tests/examples instead of comparing with them",
    )
