"""The CI check of ``tests/conftest.py``: with ``CI=true`` a test skipped for a
missing tool or missing privileges fails, saying why; other skips, xfails and
runs without ``CI`` are left alone. Run by pytester on a copy of the conftest."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from trionet.testing._linux import PACKAGES

pytest_plugins = ["pytester"]

CONFTEST = Path(__file__).resolve().parent / "conftest.py"

SKIPPING = """
import pytest
from trionet.testing import command_unavailable, linux_peer_unavailable

MISSING = command_unavailable("trionet-no-such-tool")


@pytest.mark.skipif(MISSING is not None, reason=MISSING or "")
def test_needs_a_tool():
    pass


@pytest.fixture
def privileged():
    pytest.skip("needs root (CAP_NET_ADMIN) to create TAP devices and network namespaces")


def test_needs_root(privileged):
    pass


@pytest.mark.skip(reason="not on Tuesdays")
def test_skipped_for_another_reason():
    pass


@pytest.mark.xfail(reason="needs the ping command (Debian package iputils-ping)", strict=True)
def test_expected_to_fail():
    assert False


def test_passes():
    pass
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makepyfile(test_inner=SKIPPING)
    return pytester


def test_on_ci_a_skip_for_a_missing_tool_or_privileges_fails(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    result = suite.runpytest("-ra")
    result.assert_outcomes(errors=2, skipped=1, xfailed=1, passed=1)
    result.stdout.fnmatch_lines(["SKIPPED * not on Tuesdays"])
    result.stdout.fnmatch_lines(
        [
            "ERROR test_inner.py::test_needs_a_tool - needs the trionet-no-such-tool command"
            " (Debian package trionet-no-such-tool); with CI=true that is an error, not a skip"
            " (.ci/run installs every tool the tests use and runs as root)",
            "ERROR test_inner.py::test_needs_root - needs root (CAP_NET_ADMIN)*;"
            " with CI=true that is an error, not a skip*",
        ]
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED


@pytest.mark.parametrize("value", [None, "", "false"])
def test_off_ci_they_stay_skips(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    result = suite.runpytest("-ra")
    result.assert_outcomes(skipped=3, xfailed=1, passed=1)
    result.stdout.fnmatch_lines(["*SKIPPED*needs the trionet-no-such-tool command (Debian package*"])
    assert result.ret == pytest.ExitCode.OK


def test_ci_run_sets_ci_and_installs_every_command_a_test_asks_for() -> None:
    """The package of every command named to ``command_unavailable`` or
    ``linux_peer_unavailable`` in the tests and examples (and of ``ip``,
    which a Linux peer always needs) is installed by ``.ci/run``: the
    package the skip reason names."""
    root = CONFTEST.parent.parent
    ci = (root / ".ci" / "run").read_text()
    installs = dict(re.findall(r"^command -v (\S+) >/dev/null \|\| need\+=\((\S+)\)$", ci, re.M))
    asked = {"ip"}
    for path in [*root.glob("tests/**/*.py"), *root.glob("examples/*.py")]:
        for args in re.findall(r"(?:command|linux_peer)_unavailable\(([^)]*)\)", path.read_text()):
            asked.update(re.findall(r"\"([^\"]+)\"", args))
    asked.discard("trionet-no-such-tool")  # this file's own example
    missing = {PACKAGES.get(command, command) for command in asked} - set(installs.values())
    assert not missing, f".ci/run does not install {sorted(missing)}"
    assert {command: PACKAGES.get(command, command) for command in installs} == installs
    # Data files a test checks with file_unavailable: their packages are installed too.
    files = dict((pkg, path) for path, pkg in re.findall(r"^\[ -e (\S+) \] \|\| need\+=\((\S+)\)$", ci, re.M))
    for path in root.glob("tests/**/*.py"):
        for package in re.findall(r"file_unavailable\([^,)]*,\s*\"([^\"]+)\"\)", path.read_text()):
            assert package in files, f".ci/run does not install {package} (asked by {path.name})"
    assert re.search(r"^export CI=true$", ci, re.M)
    assert ci.index("export CI=true") < ci.index("exec python3 -m pytest")
