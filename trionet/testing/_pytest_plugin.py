"""The trionet pytest plugin: networks as fixtures in your own test suite.

Installing trionet registers this module under pytest's ``pytest11`` entry
point, so any suite that has pytest-trio gets, with nothing to configure:

Fixtures (async, so test-scoped; the test must be a Trio test, through
``trio_mode = true`` or ``@pytest.mark.trio``):

- ``trionet_network``: an open :class:`trionet.Network` (``invariants=True``),
  torn down after the test. Its seed is derived from the session seed and the
  test's node id (see below), so every test gets its own, stable seed.
- ``trionet_host``: a host named ``"host"`` added to ``trionet_network``,
  with ``lo0`` up at 127.0.0.1/8: enough for a client and a server over
  loopback. Add more hosts (and links to it) through ``trionet_network``.
- ``trionet_sockets``: ``trionet_network`` with trionet's ``trio.socket``
  factory and resolver installed (:meth:`trionet.Network.install_trio_sockets`),
  so unmodified code (``trio.open_tcp_stream``, ``trio.serve_tcp``,
  ``trio.socket``) runs on whichever host a ``with host.as_current():``
  block names, and every host is reachable by name. Outside such a block a
  socket call raises :class:`RuntimeError` instead of reaching the real
  network.
- ``trionet_seed``: the test's seed as an int (a sync fixture), for a test
  that builds its networks itself with ``trionet.open_network(seed=...)``.

The plugin never defines ``mock_clock``, ``autojump_clock`` or ``nursery``
(pytest-trio's) and never turns trio mode on. Hosts read
``trio.current_time()``, so ask for ``autojump_clock`` and timers, delays and
retransmissions run in virtual time.

Options:

- ``--trionet-seed=N``: the session seed. Without it a random one is drawn
  (``os.urandom``) for each session. It is printed in the report header
  (``trionet: seed N``; pytest hides the header under ``-q``), in a
  ``trionet`` section of every failing test that used a fixture above, and
  in a ``trionet`` summary at the end listing the failures. A test's network
  seed is ``derive(session seed, node id)``, so to replay a failure run the
  same test with the printed option::

      pytest --trionet-seed=1234567 tests/test_app.py::test_echo

  Under ``trio.testing.MockClock`` the replay is exact (same frames, same
  timings); with the real clock only the random choices repeat.
- ``--trionet-pcap=DIR``: every link made by ``trionet_network.link(...)``
  without a ``pcap=`` argument captures to a libpcap file (side ``a`` of the
  wire, both directions: what crossed it). Files of a failing test are kept
  in ``DIR/<node id, made file-safe>/<link name>.pcap`` (tshark, tcpdump and
  Wireshark read them) and named in its report; those of any other test
  (passed, skipped, xfailed) are deleted. A run clears what an earlier run
  left for the same test. Links given ``pcap=`` keep their own file wherever
  it is; ``tap_link`` links are not captured. ``DIR`` is made at start-up;
  if it cannot be (or is not writable), pytest stops with a usage error.

Design notes: pytest-trio runs each fixture in a task of its own, apart
from the test; a :class:`~trionet.Network` may be changed from any task, so
the fixture simply holds ``open_network`` open. Capturing sets the
network's ``pcap_dir`` hook. pytest-trio runs async
fixtures, teardown included, inside the test's call phase, so the captures
are closed before pytest reports; the keep-or-delete decision is made
afterwards, in the teardown of a sync fixture that reads the phase reports.

Disable the plugin with ``-p no:trionet``.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

import trionet
from trionet.testing._scheduling import deterministic_scheduling

__all__ = [
    "derive_test_seed",
    "pytest_addoption",
    "pytest_configure",
    "pytest_configure_node",
    "pytest_report_header",
    "pytest_runtest_makereport",
    "pytest_unconfigure",
    "trionet_host",
    "trionet_network",
    "trionet_seed",
]

#: Name of the host ``trionet_host`` adds.
HOST_NAME = "host"
#: Longest directory name made from a node id (the rest is replaced by a hash).
MAX_DIR_NAME = 120


@attrs.define(eq=False)
class _Session:
    """The session's seed and capture directory; also a plugin object (registered
    in ``pytest_configure``) that collects the failures to list at the end."""

    seed: int
    pcap_dir: Path | None
    failures: list[str] = attrs.field(factory=list)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # Here rather than in makereport: under pytest-xdist, the controller
        # sees the workers' reports only here.
        if report.failed and any(name == "trionet" for name, _ in report.sections):
            if report.nodeid not in self.failures:
                self.failures.append(report.nodeid)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.failures:
            return
        terminalreporter.section("trionet")
        terminalreporter.write_line(f"session seed {self.seed}; replay a failure with:")
        for nodeid in self.failures:
            terminalreporter.write_line(f"  pytest --trionet-seed={self.seed} {nodeid}")
            if self.pcap_dir is not None and (kept := self.pcap_dir / _file_safe(nodeid)).is_dir():
                terminalreporter.write_line(f"    pcap files: {kept}")


@attrs.define
class _Test:
    seed: int
    capture_dir: Path | None
    reports: dict[str, pytest.TestReport] = attrs.field(factory=dict)


_SESSION = pytest.StashKey[_Session]()
_TEST = pytest.StashKey[_Test]()


def derive_test_seed(session_seed: int, nodeid: str) -> int:
    """The seed of the test ``nodeid`` in a session seeded ``session_seed``:
    stable across runs, processes and machines (a hash, not ``hash()``)."""
    return trionet.derive_seed(session_seed, nodeid)


def _file_safe(text: str, limit: int = MAX_DIR_NAME) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "_"
    if len(safe) > limit:
        tail = hashlib.blake2b(text.encode(), digest_size=4).hexdigest()
        safe = f"{safe[: limit - 9]}_{tail}"
    return safe


####################################################################
# options, header, reports
####################################################################


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("trionet", "trionet networks in tests")
    group.addoption(
        "--trionet-seed",
        type=int,
        default=None,
        metavar="N",
        help="session seed of the trionet fixtures (default: random, printed); "
        "replay a failure with the seed its report shows",
    )
    group.addoption(
        "--trionet-pcap",
        default=None,
        metavar="DIR",
        help="capture every trionet_network link; keep the pcap files of failing tests in DIR/<test>/",
    )


def pytest_configure(config: pytest.Config) -> None:
    seed = config.getoption("trionet_seed")
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and "trionet_seed" in workerinput:
        seed = workerinput["trionet_seed"]  # a pytest-xdist worker: the controller's seed
    elif seed is None:
        seed = int.from_bytes(os.urandom(4), "big")
    if seed < 0:
        raise pytest.UsageError(f"--trionet-seed must be >= 0, not {seed}")
    pcap = config.getoption("trionet_pcap")
    pcap_dir = None
    if pcap is not None:
        pcap_dir = _usable_pcap_dir(config.invocation_params.dir / pcap, pcap)
    session = _Session(seed, pcap_dir)
    config.stash[_SESSION] = session
    config.pluginmanager.register(session, "trionet-session")


def _usable_pcap_dir(path: Path, option: str) -> Path:
    # Made (and checked) at start-up: found unusable only when a test links,
    # it would replace that test's own error, in every test.
    pcap_dir = path.resolve()
    try:
        if pcap_dir.exists() and not pcap_dir.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "a file, not a directory")
        pcap_dir.mkdir(parents=True, exist_ok=True)
        if not os.access(pcap_dir, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, "not writable")
    except OSError as exc:
        raise pytest.UsageError(
            f"--trionet-pcap={option}: cannot keep pcap files in {pcap_dir}: {exc.strerror or exc}"
        ) from None
    return pcap_dir


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(_SESSION, None)
    if session is not None and config.pluginmanager.is_registered(session):
        config.pluginmanager.unregister(session)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist: every worker uses the controller's session seed."""
    node.workerinput["trionet_seed"] = node.config.stash[_SESSION].seed


def pytest_report_header(config: pytest.Config) -> list[str]:
    session = config.stash[_SESSION]
    lines = [f"trionet: seed {session.seed} (replay with --trionet-seed={session.seed})"]
    if session.pcap_dir is not None:
        lines.append(f"trionet: pcap files of failing tests go to {session.pcap_dir}")
    return lines


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    test = item.stash.get(_TEST, None)
    if test is None:
        return report
    test.reports[report.when] = report
    if report.failed and report.when in ("setup", "call"):
        session = item.config.stash[_SESSION]
        lines = [
            f"session seed {session.seed}, this test's network seed {test.seed}",
            f"replay: pytest --trionet-seed={session.seed} {item.nodeid}",
        ]
        if test.capture_dir is not None:
            files = sorted(test.capture_dir.glob("*.pcap")) if test.capture_dir.is_dir() else []
            if files:
                lines.append(f"pcap files kept in {test.capture_dir}:")
                lines.extend(f"  {f.name}" for f in files)
            else:
                lines.append("no pcap files: the test made no links")
        report.sections.append(("trionet", "\n".join(lines)))
    return report


####################################################################
# fixtures
####################################################################


@pytest.fixture
def _trionet_test(request: pytest.FixtureRequest) -> Iterator[_Test]:
    # Sync, so its teardown runs after pytest-trio has closed the network
    # (in the call phase) and after the call report exists.
    item = request.node
    session = request.config.stash[_SESSION]
    capture_dir = None
    if session.pcap_dir is not None:
        capture_dir = session.pcap_dir / _file_safe(item.nodeid)
        shutil.rmtree(capture_dir, ignore_errors=True)  # an earlier run's
    test = _Test(derive_test_seed(session.seed, item.nodeid), capture_dir)
    item.stash[_TEST] = test
    try:
        yield test
    finally:
        failed = any(r.failed for r in test.reports.values())
        if capture_dir is not None and not failed:
            shutil.rmtree(capture_dir, ignore_errors=True)


@pytest.fixture
def trionet_seed(_trionet_test: _Test) -> int:
    """This test's seed: derived from ``--trionet-seed`` (or the session's
    random seed) and the test's node id; printed when the test fails."""
    return _trionet_test.seed


@pytest.fixture
async def trionet_network(_trionet_test: _Test) -> AsyncIterator[trionet.Network]:
    """An open :class:`trionet.Network` seeded for this test (kernel
    invariants on), torn down after it. With ``--trionet-pcap`` every
    ``link()`` captures (through :attr:`Network.pcap_dir`), and a failing
    test's files are kept. Trio's order of tasks ready at the same moment
    follows the test's seed too (:func:`trionet.testing.deterministic_scheduling`),
    so the seed a failure prints replays it exactly."""
    deterministic_scheduling(_trionet_test.seed)
    async with trionet.open_network(seed=_trionet_test.seed, invariants=True) as net:
        if _trionet_test.capture_dir is not None:
            net.pcap_dir = _trionet_test.capture_dir
        yield net


@pytest.fixture
async def trionet_host(trionet_network: trionet.Network) -> trionet.Host:
    """A host named ``"host"`` in ``trionet_network``, ``lo0`` up at 127.0.0.1/8."""
    return await trionet_network.add_host(HOST_NAME)


@pytest.fixture
async def trionet_sockets(trionet_network: trionet.Network) -> trionet.Network:
    """``trionet_network`` with ``trio.socket`` (and so ``trio.open_tcp_stream``,
    ``trio.serve_tcp``, ``getaddrinfo``...) going to its hosts: the one a
    ``with host.as_current():`` block names. Without passthrough: a socket
    call outside such a block raises :class:`RuntimeError`."""
    trionet_network.install_trio_sockets()
    return trionet_network
