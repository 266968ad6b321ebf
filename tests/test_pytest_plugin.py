"""The pytest plugin (entry point ``pytest11``): its fixtures, the seed it
prints and replays, the captures it keeps; each run by pytester in an inner
test suite, as a user's suite would use them."""

from __future__ import annotations

import re
import struct
import subprocess
from pathlib import Path

import pytest

from trionet.testing import _pytest_plugin as plugin
from trionet.testing import command_unavailable

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "test_with_trionet.py"

TWO_HOSTS = """
import pytest
import trio.testing

pytestmark = pytest.mark.trio


async def two_hosts(net, **options):
    h1 = await net.add_host("h1")
    h2 = await net.add_host("h2")
    link = await net.link(h1, h2, **options)
    h1.ifconfig(link.ends[0].name, "10.0.0.1/24")
    h2.ifconfig(link.ends[1].name, "10.0.0.2/24")
    return h1, h2
"""


def header_seed(output: str) -> int:
    match = re.search(r"^trionet: seed (\d+) \(replay with --trionet-seed=\1\)$", output, re.M)
    assert match, output
    return int(match.group(1))


def pcap_frames(path: Path) -> int:
    """Check the libpcap structure of ``path``; the number of frames."""
    data = path.read_bytes()
    magic, major, minor, _zone, _sigfigs, _snaplen, linktype = struct.unpack_from("<IHHiIII", data)
    assert (magic, major, minor, linktype) == (0xA1B2C3D4, 2, 4, 1)
    offset, frames = 24, 0
    while offset < len(data):
        _sec, _usec, incl_len, _orig_len = struct.unpack_from("<IIII", data, offset)
        offset += 16 + incl_len
        frames += 1
    assert offset == len(data)
    return frames


def test_the_plugin_is_registered_and_defines_no_trio_fixtures(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--fixtures")
    result.stdout.fnmatch_lines(
        ["*- fixtures defined from trionet.testing._pytest_plugin -*", "trionet_seed -- *"]
    )
    result.stdout.fnmatch_lines(["trionet_network -- *", "trionet_host -- *", "trionet_sockets -- *"])
    # pytest-trio's own fixtures stay pytest-trio's, and trio mode is not forced.
    for name in ("mock_clock", "autojump_clock", "nursery", "trio_mode"):
        assert not hasattr(plugin, name)
    result = pytester.runpytest("-p", "no:trionet", "--fixtures")
    result.stdout.no_fnmatch_line("*trionet_network*")


def test_fixtures_give_a_network_whose_hosts_ping_each_other(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        TWO_HOSTS
        + """
async def test_ping(autojump_clock: trio.testing.MockClock, trionet_network) -> None:
    h1, _h2 = await two_hosts(trionet_network, delay=0.005)
    result = await h1.ping("10.0.0.2", count=3)
    assert result.received == 3
    assert result.rtt_min == pytest.approx(0.010)
    assert trio.current_time() < 10  # virtual time: the autojump clock rules


async def test_host_is_in_the_network(autojump_clock, trionet_network, trionet_host) -> None:
    assert trionet_host.name == "host"
    assert trionet_network.hosts == {"host": trionet_host}
    result = await trionet_host.ping("127.0.0.1", count=2)
    assert result.received == 2


async def test_network_calls_work_from_any_task(autojump_clock, trionet_network) -> None:
    async with trio.open_nursery() as nursery:
        for name in ("a", "b", "c"):
            nursery.start_soon(trionet_network.add_host, name)
    assert sorted(trionet_network.hosts) == ["a", "b", "c"]
    link = await trionet_network.link(trionet_network.hosts["a"], trionet_network.hosts["b"])
    await trionet_network.remove_link(link)
    await trionet_network.add_host("d")
    await trionet_network.remove_host("d")
    assert sorted(trionet_network.hosts) == ["a", "b", "c"]
    with pytest.raises(ValueError, match="unknown impairment"):
        await trionet_network.link(trionet_network.hosts["a"], trionet_network.hosts["b"], lossy=1)
"""
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=3)


def test_trionet_sockets_runs_unmodified_trio_code_on_two_hosts(pytester: pytest.Pytester) -> None:
    # The code under test: plain Trio, as a user's application has it.
    pytester.makepyfile(
        app="""
import trio


async def upper_server(stream):
    async for chunk in stream:
        await stream.send_all(chunk.upper())


async def ask(host, port, text):
    async with await trio.open_tcp_stream(host, port) as stream:
        await stream.send_all(text)
        return await stream.receive_some()
"""
    )
    pytester.makepyfile(
        TWO_HOSTS
        + """
import trio

import app


async def test_client_and_server(autojump_clock, trionet_sockets) -> None:
    h1, h2 = await two_hosts(trionet_sockets, delay=0.005, loss=0.05)
    async with trio.open_nursery() as nursery:
        with h2.as_current():
            await nursery.start(trio.serve_tcp, app.upper_server, 8000)
        with h1.as_current():
            assert await app.ask("h2", 8000, b"over trionet") == b"OVER TRIONET"
        nursery.cancel_scope.cancel()


async def test_outside_as_current_nothing_reaches_the_real_network(trionet_sockets) -> None:
    # (trio.open_tcp_stream makes its sockets in a nursery: a group.)
    with pytest.RaisesGroup(pytest.RaisesExc(RuntimeError, match="as_current"), flatten_subgroups=True):
        await app.ask("127.0.0.1", 8000, b"x")
"""
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=2)


def test_fixtures_work_in_trio_mode_without_markers(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ntrio_mode = true\n")
    pytester.makepyfile(
        """
async def test_loopback(autojump_clock, trionet_host) -> None:
    assert (await trionet_host.ping("127.0.0.1", count=1)).received == 1
"""
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_the_seed_is_in_the_header_and_in_a_failing_tests_report(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_seed="""
import pytest

pytestmark = pytest.mark.trio


async def test_boom(trionet_network) -> None:
    assert trionet_network.seed < 0, "boom"


async def test_fine(trionet_network) -> None:
    pass


def test_unrelated_failure() -> None:
    assert False
"""
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, failed=2)
    seed = header_seed(result.stdout.str())
    test_seed = plugin.derive_test_seed(seed, "test_seed.py::test_boom")
    result.stdout.fnmatch_lines(
        [
            "*_ test_boom _*",
            "*AssertionError: boom*",
            "*- trionet -*",
            f"session seed {seed}, this test's network seed {test_seed}",
            f"replay: pytest --trionet-seed={seed} test_seed.py::test_boom",
            "*_ test_unrelated_failure _*",
            "*= trionet =*",
            f"session seed {seed}; replay a failure with:",
            f"  pytest --trionet-seed={seed} test_seed.py::test_boom",
            "*short test summary*",
        ]
    )
    # Only tests that used a trionet fixture get the section and the line.
    assert "test_unrelated_failure\n" not in result.stdout.str()
    assert result.stdout.str().count("- trionet -") == 1
    # Under -q pytest prints no header: the failure's section still has the seed.
    quiet = pytester.runpytest("-q", "--trionet-seed=5")
    assert "trionet: seed" not in quiet.stdout.str()
    quiet.stdout.fnmatch_lines(["replay: pytest --trionet-seed=5 test_seed.py::test_boom"])


def test_the_seed_option_replays_a_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_replay=TWO_HOSTS
        + """
async def test_show(autojump_clock, trionet_network, trionet_seed) -> None:
    assert trionet_network.seed == trionet_seed
    h1, _h2 = await two_hosts(trionet_network, delay=0.001, loss=0.3)
    result = await h1.ping("10.0.0.2", count=30, interval=0.01, timeout=0.1)
    received = [round(rtt, 6) for rtt in result.rtts]
    print(f"RUN seed={trionet_network.seed} at={trio.current_time()} {result.received} {received}")
"""
    )

    def run(*args: str) -> tuple[str, str]:
        result = pytester.runpytest("-s", *args)
        result.assert_outcomes(passed=1)
        (line,) = [ln for ln in result.stdout.lines if ln.startswith("RUN ")]
        return line, result.stdout.str()

    first, _ = run("--trionet-seed=42")
    assert first.startswith(f"RUN seed={plugin.derive_test_seed(42, 'test_replay.py::test_show')} ")
    assert run("--trionet-seed=42")[0] == first
    assert run("--trionet-seed=43")[0] != first
    # Without the option: a random seed, printed; giving it back replays.
    line, output = run()
    assert run(f"--trionet-seed={header_seed(output)}")[0] == line


def test_a_bad_seed_is_refused(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--trionet-seed=-1")
    result.stderr.fnmatch_lines(["*--trionet-seed must be >= 0*"])
    assert result.ret == pytest.ExitCode.USAGE_ERROR


PCAP_TESTS = (
    TWO_HOSTS
    + """

@pytest.mark.parametrize("fail", [True, False])
async def test_ping(autojump_clock, trionet_network, fail) -> None:
    h1, h2 = await two_hosts(trionet_network, delay=0.001)
    assert (await h1.ping("10.0.0.2", count=2)).received == 2
    await trionet_network.link(h1, h2)  # a second link between the same hosts
    assert not fail


async def test_own_pcap_is_left_alone(autojump_clock, trionet_network, tmp_path) -> None:
    h1, _h2 = await two_hosts(trionet_network)
    mine = tmp_path / "mine.pcap"
    await trionet_network.link(h1, await trionet_network.add_host("h3"), pcap=mine)
    assert mine.exists()
    assert False
"""
)


def test_pcap_option_keeps_the_captures_of_failing_tests_only(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_cap=PCAP_TESTS)
    captures = pytester.path / "captures"
    stale = captures / "test_cap.py_test_ping_False"
    stale.mkdir(parents=True)
    (stale / "old.pcap").write_bytes(b"")
    result = pytester.runpytest("--trionet-pcap=captures")
    result.assert_outcomes(passed=1, failed=2)
    kept = captures / "test_cap.py_test_ping_True"
    assert sorted(p.name for p in captures.iterdir()) == [
        "test_cap.py_test_own_pcap_is_left_alone",
        "test_cap.py_test_ping_True",
    ]
    assert sorted(p.name for p in kept.iterdir()) == ["h1-h2#2.pcap", "h1-h2.pcap"]
    # ARP and ICMP both ways on the first link; the second carried nothing
    # but h1's and h2's own announcements, if any.
    assert pcap_frames(kept / "h1-h2.pcap") >= 6
    pcap_frames(kept / "h1-h2#2.pcap")
    # The test's own pcap= stayed where it asked; the plugin captured the rest.
    assert sorted(p.name for p in (captures / "test_cap.py_test_own_pcap_is_left_alone").iterdir()) == [
        "h1-h2.pcap"
    ]
    result.stdout.fnmatch_lines(
        [
            "*_ test_ping?True? _*",
            "*- trionet -*",
            f"pcap files kept in {kept}:",
            "  h1-h2#2.pcap",
            "  h1-h2.pcap",
            "*= trionet =*",
            "*pytest --trionet-seed=* test_cap.py::test_ping?True?",
            f"    pcap files: {kept}",
        ]
    )
    result.stdout.fnmatch_lines([f"trionet: pcap files of failing tests go to {captures}"])


@pytest.mark.skipif(command_unavailable("tshark") is not None, reason=str(command_unavailable("tshark")))
def test_tshark_reads_a_kept_capture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_cap=PCAP_TESTS)
    pytester.runpytest("--trionet-pcap=captures", "-k", "test_ping and True").assert_outcomes(failed=1)
    path = pytester.path / "captures" / "test_cap.py_test_ping_True" / "h1-h2.pcap"
    done = subprocess.run(
        ["tshark", "-r", str(path), "-T", "fields", "-e", "_ws.col.Protocol"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    protocols = done.stdout.split()
    assert "ARP" in protocols and protocols.count("ICMP") == 4, done.stdout


@pytest.mark.parametrize(
    ("option", "problem"),
    [("a-file", "a file, not a directory"), ("a-file/captures", "Not a directory")],
)
def test_an_unusable_pcap_directory_is_reported_once_at_start_up(
    pytester: pytest.Pytester, option: str, problem: str
) -> None:
    # Not as an error replacing each linking test's own failure.
    pytester.makepyfile(test_cap=PCAP_TESTS)
    (pytester.path / "a-file").write_text("not a directory\n")
    result = pytester.runpytest(f"--trionet-pcap={option}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"ERROR: --trionet-pcap={option}: cannot keep pcap files in {pytester.path / option}: {problem}"]
    )
    assert "test_cap.py" not in result.stdout.str()


def test_the_pcap_directory_is_made_at_start_up(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_cap=PCAP_TESTS)
    assert pytester.runpytest("--trionet-pcap=deep/captures", "--collect-only").ret == pytest.ExitCode.OK
    assert (pytester.path / "deep" / "captures").is_dir()


def test_without_the_pcap_option_nothing_is_captured(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_cap=PCAP_TESTS)
    before = set(pytester.path.rglob("*"))
    pytester.runpytest("-k", "test_ping").assert_outcomes(passed=1, failed=1)
    assert not [p for p in set(pytester.path.rglob("*")) - before if p.suffix == ".pcap"]


def test_the_example_suite_passes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_with_trionet=EXAMPLE.read_text())
    result = pytester.runpytest("--trionet-seed=1")
    result.assert_outcomes(passed=5)


def test_test_seeds_derive_stably_and_node_ids_become_file_names() -> None:
    assert plugin.derive_test_seed(1, "t.py::a") == plugin.derive_test_seed(1, "t.py::a")
    assert plugin.derive_test_seed(1, "t.py::a") != plugin.derive_test_seed(2, "t.py::a")
    assert plugin.derive_test_seed(1, "t.py::a") != plugin.derive_test_seed(1, "t.py::b")
    assert plugin._file_safe("tests/t.py::test_x[a b-1/2]") == "tests_t.py_test_x_a_b-1_2"
    long = plugin._file_safe("x" * 500)
    assert len(long) == plugin.MAX_DIR_NAME and long != plugin._file_safe("x" * 501)
