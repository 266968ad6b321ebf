"""Shared test configuration.

On CI (``CI=true``, as ``.ci/run`` has it) a test skipped for a missing
system tool or missing privileges fails instead: ``.ci/run`` installs every
tool and runs as root, so such a skip means a test that CI silently stopped
running. The skips recognised are the reasons of
:func:`trionet.testing.command_unavailable` and
:func:`~trionet.testing.linux_peer_unavailable`; other skips stay skips.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest
import structlog
from hypothesis import settings

from trionet.testing._linux import UNAVAILABLE

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


@pytest.fixture
def restore_structlog() -> Generator[None, None, None]:
    """Put structlog's defaults back after the test: ``trionet._cli.main``
    configures structlog for the whole process."""
    yield
    structlog.reset_defaults()


def on_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def unavailable_reason(report: pytest.TestReport) -> str | None:
    """The reason of a skip for a missing tool or privileges, else None."""
    if not report.skipped or hasattr(report, "wasxfail"):
        return None
    if not isinstance(report.longrepr, tuple):
        return None
    reason = str(report.longrepr[2]).removeprefix("Skipped: ")
    return reason if UNAVAILABLE.match(reason) else None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if on_ci() and (reason := unavailable_reason(report)) is not None:
        report.outcome = "failed"
        report.longrepr = (
            f"{reason}; with CI=true that is an error, not a skip "
            "(.ci/run installs every tool the tests use and runs as root)"
        )
    return report
