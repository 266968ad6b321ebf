"""The ``trionet`` command."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
from collections.abc import Iterator

import pytest
import structlog

from trionet._cli import main
from trionet.testing import linux_peer_unavailable


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    # main() configures structlog for the process; put the defaults back.
    yield
    structlog.reset_defaults()


def test_kern_boots_sends_and_prints_the_views(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["kern", "--frames", "50", "--ncpus", "1"]) == 0
    out = capsys.readouterr().out
    assert "kern.intr_mpsafe: 1" in out
    assert "lo0: flags=8049<UP,LOOPBACK,RUNNING,MULTICAST> mtu 16384" in out
    assert "vnic0: flags=8843<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST> mtu 1500" in out
    assert "ithread 16" in out and "netisr 0" in out
    assert "irq16: vnic0" in out
    assert "50 frames each way" in out
    assert "protocol received 51 on host0, 50 on peer" in out
    (vnic_row,) = [line for line in out.splitlines() if line.startswith("vnic0 ")]
    assert vnic_row.split()[4:10] == ["50", "0", "0", "50", "0", "0"]


def test_kern_rejects_bad_arguments() -> None:
    with pytest.raises(SystemExit):
        main(["kern", "--frames", "-1"])
    with pytest.raises(SystemExit):
        main(["kern", "--ncpus", "0"])


EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def test_demo_runs_in_virtual_time_and_prints_results_and_views(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "seed 1, virtual time" in out
    assert "5/5 replies" in out and "sha256 match" in out and "3 steps: 3 ok, 0 failed" in out
    for view in ("$ ifconfig", "$ netstat -i", "$ netstat -rn", "$ netstat -an -p tcp", "$ vmstat -i", "$ ps"):
        assert out.count(view) == 3, view  # client, router, server
    assert "default              10.0.1.1           UGS" in out
    assert "irq16: vnic0" in out and "netisr 0" in out


def test_demo_json_is_machine_readable(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is True and doc["seed"] == 1 and len(doc["results"]) == 3
    assert doc["results"][1]["outcome"]["sha256"] == doc["results"][1]["outcome"]["sha256_received"]


def test_run_a_file_with_seed_pcap_and_json(
    capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path
) -> None:
    path = str(EXAMPLES / "router.toml")
    assert main(["run", path, "--json", "--seed", "5", "--pcap", str(tmp_path)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["seed"] == 5 and doc["mode"] == "virtual time" and doc["ok"]
    pcaps = sorted(p.name for p in tmp_path.iterdir())
    assert len(pcaps) == 3 and all(p.endswith(".pcap") for p in pcaps)
    assert all((tmp_path / p).read_bytes()[:4] == b"\xd4\xc3\xb2\xa1" for p in pcaps)


def test_a_mistake_in_a_file_is_named_without_a_traceback(
    capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[hosts.h1]\nncpus = 2\n\n[[links]]\na = "h1"\nb = "h9"\n')
    assert main(["run", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.toml:6" in err and "links[0].b" in err and "h9" in err
    assert "Traceback" not in err
    assert main(["run", str(tmp_path / "missing.toml")]) == 2
    assert "No such file" in capsys.readouterr().err


def test_processes_give_the_single_process_results(capsys: pytest.CaptureFixture[str]) -> None:
    # The acceptance check: router.toml over 3 processes (real time, UDP wires
    # on 127.0.0.1 between them) has the same outcomes as one process.
    path = str(EXAMPLES / "router.toml")
    assert main(["run", path, "--json"]) == 0
    single = json.loads(capsys.readouterr().out)
    assert main(["run", path, "--json", "--processes", "3"]) == 0
    split = json.loads(capsys.readouterr().out)
    assert split["mode"] == "3 processes, real time"
    assert [r["outcome"] for r in split["results"]] == [r["outcome"] for r in single["results"]]
    assert all(r["ran"] for r in split["results"])


@pytest.mark.skipif(linux_peer_unavailable() is not None, reason=str(linux_peer_unavailable()))
def test_run_a_topology_with_a_tap_link_to_the_kernel(
    capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path
) -> None:
    ns = f"trionet-cli-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(
            ["ip", "netns", "exec", ns, "sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6"],
            check=True,
        )
        topo = tmp_path / "tap.toml"
        topo.write_text(
            f'[hosts.h1]\n\n[[links]]\nkind = "tap"\na = "h1"\na_address = "198.18.9.1/24"\n'
            f'b_address = "198.18.9.2/24"\nnetns = "{ns}"\n\n'
            '[[scenario]]\nstep = "ping"\nfrom = "h1"\nto = "198.18.9.2"\ncount = 2\ninterval = 0.1\n'
        )
        assert main(["run", str(topo), "--realtime", "--json"]) == 0
        doc = json.loads(capsys.readouterr().out)
        assert doc["results"][0]["outcome"]["received"] == 2
        links = subprocess.run(["ip", "-n", ns, "-o", "link"], capture_output=True, text=True).stdout
        assert "tntap" not in links  # the device went with the network
    finally:
        subprocess.run(["ip", "netns", "delete", ns], check=False)


def test_log_json_renders_structured_events_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(EXAMPLES / "two_hosts.toml")
    assert main(["--log-level", "info", "run", path, "--log", "json"]) == 0
    err = capsys.readouterr().err
    events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert events and all("event" in e and "level" in e for e in events)
    assert {"host_started", "step_finished"} <= {e["event"] for e in events}
