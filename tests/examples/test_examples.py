"""The scripts in ``examples/`` run, print what their docstrings promise, and
use only the public API.

``shared_irq.py`` and ``custom_driver.py`` run in-process under
``autojump_clock``. ``shared_irq.py``'s output is compared with a golden file
after the counts that depend on Trio's (randomised) task order are masked;
regenerate it with ``TRIONET_UPDATE_GOLDEN=1`` (or ``--update-golden`` once a
conftest registers that option). ``linux_peer.py`` needs root and ``ping``,
and runs in real time; the Python half of ``qemu_peer.md`` runs against a
second ``UdpWire`` standing in for QEMU, on 127.0.0.1.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import structlog
import trio
import trio.testing

import trionet
from trionet.drivers.vnic import Vnic
from trionet.testing import check_driver, command_unavailable, file_unavailable, linux_peer_unavailable
from trionet.wires import UdpWire

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
GOLDEN = Path(__file__).resolve().parent / "golden"
SCRIPTS = ("shared_irq.py", "custom_driver.py", "linux_peer.py", "unmodified_app.py", "qemu_dhcp.py")


def load(name: str) -> ModuleType:
    """Import ``examples/{name}`` under a private module name (not as ``__main__``)."""
    path = EXAMPLES / name
    spec = importlib.util.spec_from_file_location(f"trionet_example_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def update_golden(request: pytest.FixtureRequest) -> bool:
    option = request.config.getoption("--update-golden", default=False)
    return bool(option) or os.environ.get("TRIONET_UPDATE_GOLDEN") == "1"


def check_golden(request: pytest.FixtureRequest, name: str, text: str) -> None:
    path = GOLDEN / name
    if update_golden(request):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
        return
    assert path.exists(), f"no golden file {path}; run with TRIONET_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"output differs from {path}"


def imported_modules(source: str) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
        elif isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
    return modules


def qemu_snippet() -> str:
    text = (EXAMPLES / "qemu_peer.md").read_text()
    (snippet,) = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    return snippet


####################################################################
# every example
####################################################################


@pytest.mark.parametrize("name", SCRIPTS)
def test_example_is_a_documented_runnable_script(name: str) -> None:
    tree = ast.parse((EXAMPLES / name).read_text())
    assert ast.get_docstring(tree), f"{name} has no module docstring"
    functions = {n.name for n in tree.body if isinstance(n, ast.AsyncFunctionDef)}
    assert "main" in functions
    assert any(
        isinstance(n, ast.If) and "__main__" in ast.unparse(n.test) for n in tree.body
    ), f"{name} has no `if __name__ == '__main__':` block"


@pytest.mark.parametrize("name", [*SCRIPTS, "qemu_peer.md"])
def test_example_uses_only_public_names(name: str) -> None:
    source = qemu_snippet() if name.endswith(".md") else (EXAMPLES / name).read_text()
    public = {"trionet", "trionet.lowlevel", "trionet.testing", "trionet.wires"}
    for module in imported_modules(source):
        top = module.split(".")[0]
        if top == "trionet":
            assert module in public or module.startswith("trionet.drivers."), module
            assert not any(part.startswith("_") for part in module.split(".")), module
        else:
            # The standard library, Trio, structlog, or an example beside it.
            assert top in sys.stdlib_module_names or top in {"trio", "structlog"} or (
                EXAMPLES / f"{top}.py"
            ).is_file(), module


####################################################################
# shared_irq.py
####################################################################


def mask_counts(output: str) -> str:
    """Mask the counts that depend on Trio's task order (ARP and TX completions
    may or may not share an interrupt); keep zeros, names, flags and pings."""
    lines = []
    for line in output.splitlines():
        if re.match(r"(irq\d+: |Total )", line):
            line = re.sub(r"\s+\d+\s+\d+$", "  <total> <rate>", line)
        elif " handler: " in line:
            line = re.sub(r"\b[1-9]\d*\b", "N", line)
        lines.append(line)
    return "\n".join(lines) + "\n"


def phases(output: str) -> list[str]:
    return re.split(r"^==== ", output, flags=re.MULTILINE)[1:]


def ithread_flags(text: str) -> str:
    """The STAT column of the first ``ithread 11`` row of ``ps`` in ``text``."""
    return re.findall(r"^\s*\d+\s+\d+\s+\S+\s+(\S+)\s+ithread 11$", text, re.MULTILINE)[0]


async def test_shared_irq_shows_one_line_and_the_giant_difference(
    autojump_clock: trio.testing.MockClock,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    example = load("shared_irq.py")
    with structlog.testing.capture_logs() as events:
        await example.main()
    output = capsys.readouterr().out

    mpsafe, giant, sharer, alone = phases(output)
    assert output.count("2/2 replies") == 8
    # Both drivers on one line of vmstat -i; the non-MPSAFE sharer joins it.
    shared = "vnic0/vnic1"
    expected = (shared, shared, f"{shared}/fwohci0", shared)
    for text, names in zip((mpsafe, giant, sharer, alone), expected, strict=True):
        assert re.findall(r"^irq\d+: \S+", text, re.MULTILINE) == [f"irq11: {names}"]
    # ps: 'M' (no Giant) exactly when intr_mpsafe=1 and every sharer is MPSAFE.
    assert [ithread_flags(p) for p in (mpsafe, giant, sharer, alone)] == ["SM", "S", "S", "SM"]
    # The sysctl takes effect at the next interrupt, not at once.
    assert ithread_flags(mpsafe.split("# right after the sysctl")[1]) == "SM"
    # What each handler saw.
    for text, held in ((mpsafe, False), (giant, True), (sharer, True), (alone, False)):
        for with_giant, without in re.findall(r"(\d+) runs with Giant, (\d+) without", text):
            assert (int(with_giant) > 0, int(without) > 0) == (held, not held), text
    registered = [e for e in events if e["event"] == "intr_registered" and e["host"] == "dfly"]
    assert [(e["name"], e["irq"], e["mpsafe"]) for e in registered] == [
        ("vnic0", 11, True),
        ("vnic1", 11, True),
        ("fwohci0", 11, False),
    ]
    check_golden(request, "shared_irq.txt", mask_counts(output))


####################################################################
# custom_driver.py
####################################################################


async def test_custom_driver_passes_check_driver_without_skips() -> None:
    example = load("custom_driver.py")
    with structlog.testing.capture_logs():
        report = await check_driver(example.MiniNic)
    assert not report.skipped
    assert "every entry point ran serialized" in report.passed
    assert "TX completion clears OACTIVE and drains the queue" in report.passed
    assert report.calls["intr"] > 0 and report.calls["ioctl"] >= 2


async def test_custom_driver_main_checks_then_carries_ping_and_tcp(
    autojump_clock: trio.testing.MockClock, capsys: pytest.CaptureFixture[str]
) -> None:
    example = load("custom_driver.py")
    with structlog.testing.capture_logs():
        await example.main()
    output = capsys.readouterr().out
    assert re.search(r"check_driver\(MiniNic\): \d+ checks passed, 0 skipped", output)
    assert "ping 10.0.0.2 from h1: 3/3 replies" in output
    assert "TCP: sent 65536 bytes, h2 counted 65536" in output
    assert re.findall(r"^(h[12]):mn0: \d+ interrupts", output, re.MULTILINE) == ["h1", "h2"]


@pytest.mark.parametrize("name", ["shared_irq.py", "custom_driver.py"])
async def test_virtual_time_example_runs_as_a_script(name: str) -> None:
    with trio.fail_after(60):
        done = await trio.run_process(
            [sys.executable, str(EXAMPLES / name)],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert done.returncode == 0, done.stderr.decode()
    assert b"Traceback" not in done.stderr
    assert b"replies" in done.stdout


####################################################################
# unmodified_app.py
####################################################################


def test_the_app_under_test_imports_nothing_from_trionet() -> None:
    modules = imported_modules((EXAMPLES / "uppercase_app.py").read_text())
    assert modules, "uppercase_app.py imports nothing at all?"
    for module in modules:
        top = module.split(".")[0]
        assert top in sys.stdlib_module_names or top == "trio", module


async def test_unmodified_app_runs_as_a_script() -> None:
    with trio.fail_after(60):
        done = await trio.run_process(
            [sys.executable, str(EXAMPLES / "unmodified_app.py")],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert done.returncode == 0, done.stderr.decode()
    assert b"Traceback" not in done.stderr
    output = done.stdout.decode()
    assert "60 lines answered in upper case, in order: ok" in output
    assert re.search(r"the link lost [1-9]\d* frames", output), output


@pytest.mark.integration
async def test_the_app_and_its_test_pass_on_the_real_loopback() -> None:
    # The same code against the kernel, as the app's own suite would run it
    # (127.0.0.1 only, an ephemeral port).
    app = load("uppercase_app.py")
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(app.serve, 0, "127.0.0.1")
            port = listeners[0].socket.getsockname()[1]
            summary = await app.check_app("127.0.0.1", port)
            nursery.cancel_scope.cancel()
    assert summary == "60 lines answered in upper case, in order"


####################################################################
# linux_peer.py
####################################################################


# The example's second step is the kernel's own ping (its third, curl, is
# skipped by the example itself when curl is missing).
LINUX_SKIP = linux_peer_unavailable("ping")


@pytest.mark.integration
@pytest.mark.skipif(LINUX_SKIP is not None, reason=LINUX_SKIP or "")
async def test_linux_peer_talks_to_the_kernel_and_removes_its_namespace(
    capsys: pytest.CaptureFixture[str],
) -> None:
    example = load("linux_peer.py")
    try:
        with structlog.testing.capture_logs(), trio.fail_after(90):
            await example.main()
        output = capsys.readouterr().out
        assert "1. trionet pings the kernel: 3/3 replies" in output
        assert re.search(r"2\. the kernel pings trionet: 3 packets transmitted, 3 received", output)
        if shutil.which("curl") is not None:
            assert "hello from trionet: GET /index.txt" in output
        namespaces = subprocess.run(
            ["ip", "netns", "list"], capture_output=True, check=True, text=True
        ).stdout
        assert example.NETNS not in namespaces
    finally:
        subprocess.run(["ip", "netns", "delete", example.NETNS], capture_output=True, check=False)


async def test_linux_peer_without_root_exits_with_a_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    example = load("linux_peer.py")
    monkeypatch.setattr(example.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(example.sys, "platform", "linux")
    with pytest.raises(SystemExit, match="needs root"):
        await example.main()


####################################################################
# qemu_dhcp.py
####################################################################


QEMU_SKIP = command_unavailable("qemu-system-x86_64") or file_unavailable(
    "/usr/lib/ipxe/qemu/pxe-e1000.rom", "ipxe-qemu"
)


@pytest.mark.integration
@pytest.mark.skipif(QEMU_SKIP is not None, reason=QEMU_SKIP or "")
async def test_qemu_dhcp_boots_a_guest_that_takes_a_lease_and_its_script(capsys: pytest.CaptureFixture[str]) -> None:
    example = load("qemu_dhcp.py")
    with structlog.testing.capture_logs(), trio.fail_after(90):
        await example.main()
    output = capsys.readouterr().out
    assert re.search(r"^10\.0\.9\.1\d\d\s+52:54:00:12:34:56\s+bound", output, re.M), output
    assert "3. trionet pings the guest at 10.0.9.1" in output and ": 3/3 replies" in output
    assert re.search(r"Hello from a trionet network: booted 10\.0\.9\.1\d\d from 10\.0\.9\.1$", output, re.M), output


async def test_qemu_dhcp_without_qemu_exits_with_a_message(monkeypatch: pytest.MonkeyPatch) -> None:
    example = load("qemu_dhcp.py")
    monkeypatch.setattr(example.shutil, "which", lambda name: None)
    with pytest.raises(SystemExit, match=r"needs the qemu-system-x86_64 command \(Debian package qemu-system-x86\)"):
        await example.main()


####################################################################
# qemu_peer.md
####################################################################


def test_qemu_peer_command_lines_match_the_snippet_ports() -> None:
    text = (EXAMPLES / "qemu_peer.md").read_text()
    namespace: dict[str, object] = {"__name__": "qemu_peer_snippet"}
    exec(compile(qemu_snippet(), "qemu_peer.md", "exec"), namespace)
    local, qemu = namespace["LOCAL"], namespace["QEMU"]
    assert local == ("127.0.0.1", 40001) and qemu == ("127.0.0.1", 40002)
    assert "local.port=40002" in text and "remote.port=40001" in text
    assert "udp=127.0.0.1:40001,localaddr=127.0.0.1:40002" in text


@pytest.mark.integration
async def test_qemu_peer_snippet_serves_a_udp_peer(capsys: pytest.CaptureFixture[str]) -> None:
    # The snippet's host on one UdpWire; a second host on another UdpWire
    # plays the QEMU guest at 10.77.0.2. Real sockets on 127.0.0.1, ephemeral ports.
    namespace: dict[str, object] = {"__name__": "qemu_peer_snippet"}
    exec(compile(qemu_snippet(), "qemu_peer.md", "exec"), namespace)
    serve = namespace["serve"]
    with structlog.testing.capture_logs(), trio.fail_after(30):
        async with (
            trionet.open_host("guest") as guest,
            UdpWire(("127.0.0.1", 9), local=("127.0.0.1", 0)) as qemu_wire,
            trio.open_nursery() as nursery,
        ):
            tn_address = await nursery.start(serve, ("127.0.0.1", 0), qemu_wire.local_address)
            qemu_wire.peer = tn_address
            ifp = await guest.if_attach(Vnic(qemu_wire))
            await guest.ifup(ifp)
            guest.ifconfig(ifp.name, "10.77.0.2/24")
            result = await guest.ping("10.77.0.1", count=2, interval=0.1)
            assert result.received == 2
            async with await guest.open_tcp_stream("10.77.0.1", 7) as stream:
                await stream.send_all(b"hello\n")
                assert await stream.receive_some() == b"hello\n"
            nursery.cancel_scope.cancel()
    assert "10.77.0.1/24, udp" in capsys.readouterr().out
