"""The ``trionet`` command."""

from __future__ import annotations

import json
import os
import pathlib
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import IO

import pytest

from trionet._cli import main
from trionet.testing import linux_peer_unavailable


# main() configures structlog for the process: every test puts the defaults back.
pytestmark = pytest.mark.usefixtures("restore_structlog")


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
    assert "5/5 replies" in out and "sha256 match" in out and "4 steps: 4 ok, 0 failed" in out
    assert "ping client -> fd00:2::2: 3/3 replies" in out  # both families
    assert "Internet6:" in out and "inet6 fd00:2::2 prefixlen 64" in out and "$ ndp -an" in out
    for view in ("$ ifconfig", "$ netstat -i", "$ netstat -rn", "$ netstat -an -p tcp", "$ vmstat -i", "$ ps"):
        assert out.count(view) == 3, view  # client, router, server
    assert "default              10.0.1.1           UGS" in out
    assert "irq16: vnic0" in out and "netisr 0" in out


def test_demo_json_is_machine_readable(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is True and doc["seed"] == 1 and len(doc["results"]) == 4
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


####################################################################
# Bad input: one line naming the file, line and key (or the flag), status 2
####################################################################

TWO_HOSTS = (
    '[hosts.h1]\n[hosts.h2]\n\n[[links]]\na = "h1"\na_address = "10.0.0.1/24"\n'
    'b = "h2"\nb_address = "10.0.0.2/24"\n'
)
TAP = '[hosts.h1]\n\n[[links]]\nkind = "tap"\na = "h1"\na_address = "198.18.9.1/24"\nb_address = "198.18.9.2/24"\n'
PING = '\n[[scenario]]\nstep = "ping"\nfrom = "h1"\nto = "h2"\ncount = 1\n'
WAIT = '\n[[scenario]]\nstep = "wait"\nseconds = 60\n'


def one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run the command in-process; it must exit 2 with one line on stderr."""
    try:
        status = main(argv)
    except SystemExit as exc:  # argparse
        status = exc.code
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    return err.strip()


# (name, files (a value of None makes a directory), argv, the line's start)
BAD_INPUT = [
    ("udp link mtu over one datagram", {"t.toml": TWO_HOSTS + 'kind = "udp"\nmtu = 65535\n'}, ["run", "t.toml"],
     "trionet: t.toml:10: links[0].mtu: a udp link sends each frame in one UDP datagram: mtu must be at most 65493"),
    ("--pcap names a file", {"t.toml": TWO_HOSTS, "f": ""}, ["run", "t.toml", "--pcap", "f"],
     "trionet: --pcap f: exists and is not a directory"),
    ("--pcap cannot be made", {"t.toml": TWO_HOSTS, "f": ""}, ["run", "t.toml", "--pcap", "f/sub"],
     "trionet: --pcap f/sub: cannot make the directory: Not a directory"),
    ("--pcap and a link name too long for a file", {"t.toml": TWO_HOSTS + f'name = "{"x" * 300}"\n'},
     ["run", "t.toml", "--pcap", "caps"], "trionet: t.toml:9: links[0].name: link name too long for a capture file"),
    ("--pcap and a capture that cannot be opened", {"t.toml": TWO_HOSTS, "caps": None, "caps/h1-h2.pcap": None},
     ["run", "t.toml", "--pcap", "caps"], "trionet: t.toml:4: links[0]: cannot write its capture caps/h1-h2.pcap"),
    ("a link between processes too big for UDP", {"t.toml": TWO_HOSTS + "mtu = 65535\n" + PING},
     ["run", "t.toml", "--processes", "2"], "trionet: t.toml:9: links[0].mtu: a link between processes"),
    ("tap device name too long", {"t.toml": TAP + 'device = "tn-much-too-long0"\n'}, ["run", "t.toml"],
     "trionet: t.toml:8: links[0].device: interface name 'tn-much-too-long0' is 17 bytes"),
    ("tap device name with a slash", {"t.toml": TAP + 'device = "tn/0"\n'}, ["run", "t.toml"],
     "trionet: t.toml:8: links[0].device: 'tn/0' is not a valid Linux interface name"),
    ("a missing namespace", {"t.toml": TAP + f'netns = "trionet-none-{os.getpid()}"\n'}, ["run", "t.toml"],
     f'trionet: t.toml:8: links[0].netns: no network namespace called "trionet-none-{os.getpid()}"'),
    ("inline tables 400 deep", {"t.toml": "[hosts.h1]\nx = " + "{ a = " * 400 + "1" + " }" * 400 + "\n"},
     ["run", "t.toml"], "trionet: t.toml:2: hosts.h1.x: nested more than 32 arrays or inline tables deep"),
    ("--port-base 70000", {"t.toml": TWO_HOSTS}, ["run", "t.toml", "--port-base", "70000"],
     "trionet run: error: argument --port-base: must be an int from 1 to 65535, not '70000'"),
    ("--port-base leaving no room for the links", {"t.toml": TWO_HOSTS}, ["run", "t.toml", "--port-base", "65535"],
     "trionet: --port-base 65535: the file's 1 links need UDP ports up to 65536; at most 65535"),
    ("--seed -5", {"t.toml": TWO_HOSTS}, ["run", "t.toml", "--seed", "-5"],
     "trionet run: error: argument --seed: must be an int from 0 to 2**64 - 1 (as [network] seed), not '-5'"),
    ("--seed 10**30", {"t.toml": TWO_HOSTS}, ["run", "t.toml", "--seed", str(10**30)],
     "trionet run: error: argument --seed: must be an int from 0 to 2**64 - 1 (as [network] seed), not '1000"),
    ("demo --seed -5", {}, ["demo", "--seed", "-5"], "trionet demo: error: argument --seed: must be an int from 0"),
    ("kern --ncpus 100000", {}, ["kern", "--ncpus", "100000"],
     "trionet kern: error: argument --ncpus: must be an int from 1 to 64 (as a host's ncpus), not '100000'"),
    ("--virtual with --processes", {"t.toml": TWO_HOSTS}, ["run", "t.toml", "--virtual", "--processes", "2"],
     "trionet: --virtual: a split run is in real time"),
]  # fmt: skip


@pytest.mark.parametrize(("files", "argv", "start"), [c[1:] for c in BAD_INPUT], ids=[c[0] for c in BAD_INPUT])
def test_bad_input_is_one_line_and_status_2(
    capsys: pytest.CaptureFixture[str],
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    files: dict[str, str | None],
    argv: list[str],
    start: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    for name, text in files.items():
        if text is None:
            (tmp_path / name).mkdir()
        else:
            (tmp_path / name).write_text(text)
    line = one_line_error(capsys, argv)
    assert line.startswith(start), line


def test_pcap_in_a_read_only_directory_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path
) -> None:
    topo = tmp_path / "t.toml"
    topo.write_text(TWO_HOSTS)
    caps = tmp_path / "caps"
    caps.mkdir()
    if os.geteuid() != 0:
        caps.chmod(0o555)
        try:
            line = one_line_error(capsys, ["run", str(topo), "--pcap", str(caps)])
        finally:
            caps.chmod(0o755)
        assert line == f"trionet: --pcap {caps}: cannot write in the directory: Permission denied"
        return
    # Root writes through permissions: a read-only file system, mounted in a
    # mount namespace of the command's own, so nothing outside sees it.
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (util-linux) to mount a read-only file system as root")
    script = 'mount -t tmpfs -o ro trionet-ro "$1" && exec "$2" -m trionet run "$3" --pcap "$1"'
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", str(caps),
         sys.executable, str(topo)],
        capture_output=True, text=True, timeout=120,
    )
    if "trionet" not in done.stderr:  # unshare or mount refused: the command never ran
        pytest.skip(f"cannot mount a read-only tmpfs in a mount namespace here: {done.stderr.strip()}")
    assert done.returncode == 2, done.stderr
    assert done.stderr == f"trionet: --pcap {caps}: cannot write in the directory: Read-only file system\n"


needs_tap = pytest.mark.skipif(linux_peer_unavailable() is not None, reason=str(linux_peer_unavailable()))


@needs_tap
def test_tap_device_names_taken_are_one_line(capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path) -> None:
    import fcntl

    from trionet.wires._tap import _IFREQ_FLAGS, IFF_NO_PI, IFF_TAP, TUNSETIFF

    topo = tmp_path / "t.toml"
    # A device that is not a TAP.
    topo.write_text(TAP + 'device = "lo"\n')
    line = one_line_error(capsys, ["run", str(topo)])
    assert line.startswith(f"trionet: {topo}:8: links[0].device: TUNSETIFF for lo failed: Invalid argument")
    # A TAP another process (here: this one) has open.
    busy = f"tnb{os.getpid()}"[:15]
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, TUNSETIFF, _IFREQ_FLAGS.pack(busy.encode(), IFF_TAP | IFF_NO_PI))
        topo.write_text(TAP + f'device = "{busy}"\n')
        line = one_line_error(capsys, ["run", str(topo)])
    finally:
        os.close(fd)
    assert line.startswith(f"trionet: {topo}:8: links[0].device: TUNSETIFF for {busy} failed: Device or resource busy")


@pytest.mark.skipif(sys.platform != "linux", reason="TAP devices are Linux only")
def test_a_tap_link_without_cap_net_admin_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path
) -> None:
    topo = tmp_path / "t.toml"
    topo.write_text(TAP)
    start = f"trionet: {topo}:4: links[0].kind: "
    if os.geteuid() != 0:
        line = one_line_error(capsys, ["run", str(topo)])
    else:
        if shutil.which("setpriv") is None:
            pytest.skip("needs setpriv (util-linux) to drop CAP_NET_ADMIN as root")
        done = subprocess.run(
            ["setpriv", "--bounding-set", "-net_admin", sys.executable, "-m", "trionet", "run", str(topo)],
            capture_output=True, text=True, timeout=120,
        )
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert len(done.stderr.splitlines()) == 1, done.stderr
        line = done.stderr.strip()
    assert line.startswith(start) and "CAP_NET_ADMIN" in line, line


####################################################################
# Stopping: SIGINT and SIGTERM, and no orphaned workers
####################################################################


def start(*argv: str, **options: object) -> subprocess.Popen[str]:
    """``python -m trionet ARGV`` in the background, pipes on stdout and stderr."""
    return subprocess.Popen(
        [sys.executable, "-m", "trionet", *argv],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **options,  # type: ignore[call-overload]
    )


class Lines:
    """The lines of a child's pipe as they come. Reads the descriptor itself:
    a buffered file object may hold lines that ``select`` cannot see."""

    def __init__(self, stream: IO[str]) -> None:
        self.fd = stream.fileno()
        self.buffer = b""

    def _more(self, deadline: float) -> bool:
        left = deadline - time.monotonic()
        assert left > 0, f"nothing more within the time allowed; so far {self.buffer[-500:]!r}"
        ready, _, _ = select.select([self.fd], [], [], left)
        if not ready:
            return True  # the deadline is checked on the next call
        chunk = os.read(self.fd, 65536)
        self.buffer += chunk
        return bool(chunk)

    def until(self, wanted: Callable[[str], bool], timeout: float = 60.0) -> str:
        """The first line that is ``wanted`` (the lines before it are dropped)."""
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self.buffer:
                raw, self.buffer = self.buffer.split(b"\n", 1)
                if wanted(raw.decode()):
                    return raw.decode()
            assert self._more(deadline), "EOF before the line wanted"

    def rest(self, timeout: float = 60.0) -> str:
        """Everything up to EOF."""
        deadline = time.monotonic() + timeout
        while self._more(deadline):
            pass
        return self.buffer.decode()


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` seconds pass (real
    processes: there is nothing to await)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid``."""
    found = []
    for entry in pathlib.Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its new parent to reap it is dead)."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def udp_ports(pid: int) -> set[int]:
    """The UDP ports the process has sockets bound to (IPv4)."""
    inodes = set()
    try:
        for fd in pathlib.Path(f"/proc/{pid}/fd").iterdir():
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
        rows = pathlib.Path(f"/proc/{pid}/net/udp").read_text().splitlines()[1:]
    except OSError:
        return set()
    return {int(row.split()[1].split(":")[1], 16) for row in rows if row.split()[9] in inodes}


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_a_run_with_one_line_and_128_plus_its_number(
    tmp_path: pathlib.Path, sig: signal.Signals, status: int
) -> None:
    topo = tmp_path / "t.toml"
    topo.write_text(TWO_HOSTS + PING + WAIT)
    with start("--log-level", "info", "run", str(topo), "--realtime", "--log", "json") as proc:
        assert proc.stdout is not None and proc.stderr is not None
        try:
            stderr = Lines(proc.stderr)
            stderr.until(lambda line: '"step_finished"' in line)
            proc.send_signal(sig)
            err = stderr.rest()
            proc.wait(timeout=30)
            out = proc.stdout.read()
        finally:
            proc.kill()
    assert proc.returncode == status, err
    assert "Traceback" not in err and out == ""
    said = [line for line in err.splitlines() if not line.startswith("{")]
    assert said == [
        f"trionet: stopped by {sig.name} in step [1] wait 60 s, after 1 of 2 steps: 1 ok, 0 failed (seed 0)"
    ]


@pytest.mark.integration
@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_workers_die_with_their_supervisor(tmp_path: pathlib.Path, sig: signal.Signals) -> None:
    topo = tmp_path / "t.toml"
    topo.write_text(TWO_HOSTS + WAIT)
    with start("run", str(topo), "--processes", "2") as proc:
        try:
            # Both workers built their nodes: each holds its half link's UDP port.
            assert wait_for(lambda: len(children(proc.pid)) == 2, 60), proc.pid
            workers = children(proc.pid)
            assert wait_for(lambda: all(udp_ports(w) for w in workers), 60)
            ports = set().union(*(udp_ports(w) for w in workers))
            proc.send_signal(sig)
            assert wait_for(lambda: not any(alive(w) for w in workers), 2.0), "a worker outlived its supervisor"
            assert all(port_free(p) for p in ports)
            _, err = proc.communicate(timeout=30)
        finally:
            proc.kill()
    if sig == signal.SIGTERM:
        assert proc.returncode == 143
        # The workers hold their ports once built, maybe before the first barrier.
        where = r"(in step \[0\] wait 60 s, after 0 of 1 steps|while building the network)"
        assert re.fullmatch(rf"trionet: stopped by SIGTERM {where} \(seed 0\)\n", err), err


@pytest.mark.integration
def test_a_worker_stops_when_its_supervisor_pipe_closes(tmp_path: pathlib.Path) -> None:
    # In the middle of a step, not only at a barrier.
    topo = tmp_path / "t.toml"
    topo.write_text(TWO_HOSTS + WAIT)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        base = s.getsockname()[1] & ~1
    argv = ["run", str(topo), "--node", "h1", "--supervised", "--port-base", str(base)]
    with start(*argv, stdin=subprocess.PIPE) as proc:
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        try:
            Lines(proc.stdout).until(lambda line: json.loads(line).get("event") == "barrier")
            proc.stdin.write('{"go": 0}\n')
            proc.stdin.close()
            status = proc.wait(timeout=10)
            err = proc.stderr.read()
        finally:
            proc.kill()
    assert status == 1
    assert err == "trionet: the supervisor went away (its end of stdin closed)\n"


####################################################################
# Real time when a link's far end is real
####################################################################


@pytest.mark.integration
def test_a_topology_with_a_udp_link_runs_in_real_time_unless_virtual(
    capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path
) -> None:
    topo = tmp_path / "t.toml"
    topo.write_text(TWO_HOSTS + 'kind = "udp"\n' + PING)
    assert main(["run", str(topo)]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first == (
        f"trionet run {topo}: seed 0, real time"
        " (udp link h1-h2 has its far end in real time; --virtual forces virtual time)"
    )
    assert main(["run", str(topo), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["mode"] == "real time" and "udp link h1-h2" in doc["mode_note"]
    assert doc["results"][0]["timing"]["rtt_avg_ms"] > 0  # a round trip through the kernel takes time
    assert main(["run", str(topo), "--virtual", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["mode"] == "virtual time" and doc["mode_note"].startswith("forced by --virtual")
    # A topology of memory links only stays in virtual time, with no note.
    assert main(["run", str(EXAMPLES / "two_hosts.toml"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["mode"] == "virtual time" and "mode_note" not in doc


####################################################################
# The README's promises about the command
####################################################################

README = (pathlib.Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_the_readmes_sample_error_is_what_the_command_prints(
    capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sample = re.search(
        r"^\$ trionet run (\S+) +# line (\d+) changed to: (.+)\n(trionet: .+)$", README, re.MULTILINE
    )
    assert sample is not None, "the README shows a sample error"
    path, line, text, expected = sample.group(1), int(sample.group(2)), sample.group(3), sample.group(4)
    lines = (EXAMPLES / pathlib.Path(path).name).read_text().splitlines()
    lines[line - 1] = text
    (tmp_path / path).parent.mkdir(parents=True)
    (tmp_path / path).write_text("\n".join(lines) + "\n")
    monkeypatch.chdir(tmp_path)
    assert one_line_error(capsys, ["run", path]) == expected


def test_a_seed_replays_a_run_exactly_in_virtual_time() -> None:
    # Different processes, so different hash seeds and scheduler coin tosses;
    # the demo has a lossy, reordering link.
    outputs = [
        subprocess.run(
            [sys.executable, "-m", "trionet", "demo", "--json", "--seed", "7"],
            capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONHASHSEED": str(n)},
        )
        for n in (1, 2)
    ]
    assert all(o.returncode == 0 for o in outputs), outputs[0].stderr
    assert outputs[0].stdout == outputs[1].stdout


####################################################################
# A bridging loop of links without delay
####################################################################

SWITCH_LOOP = """
[hosts.h1]
[hosts.h2]
[switches.s1]
[switches.s2]

[[links]]
a = "h1"
a_address = "10.0.0.1/24"
b = "s1"

[[links]]
a = "h2"
a_address = "10.0.0.2/24"
b = "s2"

[[links]]
name = "loop1"
a = "s1"
b = "s2"

[[links]]
name = "loop2"
a = "s1"
b = "s2"

[[scenario]]
step = "ping"
from = "h1"
to = "h2"
count = 50
interval = 0.1
timeout = 3
"""


def test_a_switch_loop_without_delay_ends_with_the_step_timeout(tmp_path: pathlib.Path) -> None:
    """Two switches joined by two zero-delay links: the broadcast storm used
    to keep every task busy with the virtual clock stopped (100% CPU, no
    timeout ever fired). Now the step's timeout fires, the step fails, the
    run ends well within 10 s of wall time, and the storm shows in the
    views' counters."""
    topo = tmp_path / "loop.toml"
    topo.write_text(SWITCH_LOOP)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "trionet", "run", str(topo), "--json"],
        capture_output=True, text=True, timeout=60,
    )
    wall = time.monotonic() - started
    assert done.returncode == 1, done.stderr
    assert wall < 10
    (step,) = json.loads(done.stdout)["results"]
    assert not step["ok"] and step["outcome"]["error"] == "timed out after 3 s"
    assert "Traceback" not in done.stderr
