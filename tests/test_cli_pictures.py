"""``trionet run/demo --report DIR`` and ``--trace FILE.json`` as a user runs
them: the files appear, the lossy run's TCP graph carries its
retransmissions, the trace is valid trace JSON, and mistakes are one line."""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

import pytest

from trionet._cli import main
from trionet.testing import command_unavailable

ROOT = Path(__file__).resolve().parent.parent


# main() configures structlog for the process: every test puts the defaults back.
pytestmark = pytest.mark.usefixtures("restore_structlog")
pytest.importorskip("matplotlib")
pytest.importorskip("networkx")


def test_demo_report_and_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, trace = tmp_path / "out", tmp_path / "demo.json"
    assert main(["demo", "--report", str(out), "--trace", str(trace)]) == 0
    err = capsys.readouterr().err
    assert f"report: {out / 'index.html'}" in err and f"trace: {trace}" in err
    html = (out / "index.html").read_text()
    for host in ("client", "router", "server"):
        assert host in html
    assert 'id="topology"' in html and 'id="ladder"' in html
    doc = json.loads(trace.read_text())
    events = doc["traceEvents"]
    assert doc["otherData"]["dropped"] == 0 and events
    names = {e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    assert {"netisr 0", "softclock 0"} <= names
    assert {"client", "router", "server"} <= {e["args"]["name"] for e in events if e["name"] == "process_name"}
    kinds = Counter(e["ph"] for e in events)
    assert kinds["X"] and kinds["s"] == kinds["f"] > 0 and kinds["i"]


def test_the_lossy_runs_tcp_graphs_carry_netstats_retransmissions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["run", str(ROOT / "examples" / "lossy_tcp.toml"), "--json", "--report", str(out)]) == 0
    results = json.loads(capsys.readouterr().out)["results"]
    counts = [r["timing"]["retransmits"] for r in results if r["step"] == "tcp_transfer"]
    assert len(counts) == 2 and all(counts)
    html = (out / "index.html").read_text()
    shown = [int(n) for n in re.findall(r"retransmissions \((\d+)\)", html)]
    for n in counts:
        assert n in shown, (n, shown)


def test_report_and_trace_mistakes_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = str(ROOT / "examples" / "two_hosts.toml")
    assert main(["run", path, "--report", str(tmp_path / "r"), "--processes", "2"]) == 2
    assert "--report: a split run cannot be drawn in one picture" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert main(["run", path, "--report", str(tmp_path / "file")]) == 2
    assert "--report" in capsys.readouterr().err
    assert main(["run", path, "--trace", str(tmp_path / "no" / "such" / "dir" / "t.json")]) == 2
    assert "--trace" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    assert main(["demo", "--report", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "trionet: --report needs matplotlib and networkx: pip install 'trionet[report]'"


####################################################################
# The reports a user makes, opened in a browser
####################################################################

CHROMIUM_SKIP = command_unavailable("chromium")


@pytest.mark.skipif(CHROMIUM_SKIP is not None, reason=CHROMIUM_SKIP or "")
@pytest.mark.parametrize("argv", [["demo"], ["run", str(ROOT / "examples" / "lossy_tcp.toml")]], ids=["demo", "lossy"])
def test_the_reports_load_in_chromium_with_every_chart_drawn(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    import report_browser

    out = tmp_path / "out"
    assert main([*argv, "--report", str(out)]) == 0
    capsys.readouterr()
    path = out / "index.html"
    html = path.read_text()
    ids = re.findall(r'<figure[^>]* id="([^"]+)"', html)
    assert "topology" in ids and any(i.startswith("link-") for i in ids) and any(i.startswith("tcp-") for i in ids)
    with report_browser.Chromium(tmp_path / "profile") as browser:
        page = browser.open(path)
        shots = {fig_id: page.screenshot_of(f"#{fig_id}") for fig_id in ids}
        topology_text = page.evaluate("document.querySelector('#topology').textContent")
        problems = page.problems()
    assert problems == []
    for fig_id, png in shots.items():
        colours, ink = report_browser.ink(png)
        assert colours > 32 and ink > 0.01, (fig_id, colours, ink)
    hosts = ("client", "router", "server") if argv == ["demo"] else ("client", "server")
    for host in hosts:
        assert host in topology_text or host in html.split('id="topology"', 1)[1].split("</figure>", 1)[0], host
