"""The HTML report (trionet._report): one self-contained page from a run record."""

from __future__ import annotations

import math
import random
import re
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from trionet import _report
from trionet._report import render_report
from trionet._report_charts import MAX_LADDER_EVENTS, MAX_POINTS, intervals, maxima
from trionet.testing import command_unavailable

sys.path.insert(0, str(Path(__file__).resolve().parent))
import report_browser  # noqa: E402

CHROMIUM_SKIP_REASON = command_unavailable("chromium")


####
# A plausible record: h1 - r1 - h2, a lossy second link, one TCP transfer
####


def synthetic_record(seed: int = 1, points: int = 400) -> dict[str, Any]:
    rng = random.Random(seed)
    duration = 4.0
    t = [duration * (i + 1) / points for i in range(points)]

    # A sender that grows cwnd, loses a few segments, retransmits them after SACKs.
    mss, rtt = 1448, 0.024
    segments, acks, samples = [], [], {"t": [], "cwnd": [], "ssthresh": [], "srtt": [], "rto": []}
    cwnd, ssthresh, seq, now, retransmits = 2 * mss, 2**30, 0, 0.05, 0
    for _ in range(40):
        burst = cwnd // mss
        lost = {seq + k * mss for k in range(burst) if rng.random() < 0.03}
        for k in range(burst):
            segments.append({"t": now + k * 0.0004, "seq": seq + k * mss, "len": mss, "retransmit": False})
        sack: list[list[int]] = []
        ack = seq
        for k in range(burst):
            s = seq + k * mss
            if s in lost:
                break
            ack = s + mss
        top = seq + burst * mss
        if lost:
            first_lost = min(lost)
            sack = [[first_lost + mss, top]]
            acks.append({"t": now + rtt, "ack": ack, "sack": sack})
            for s in sorted(lost):
                segments.append({"t": now + rtt + 0.001, "seq": s, "len": mss, "retransmit": True})
                retransmits += 1
            acks.append({"t": now + 2 * rtt, "ack": top, "sack": []})
            ssthresh = max(cwnd // 2, 2 * mss)
            cwnd = ssthresh
            now += 2 * rtt
        else:
            acks.append({"t": now + rtt, "ack": top, "sack": []})
            cwnd = cwnd * 2 if cwnd < ssthresh else cwnd + mss
            now += rtt
        seq = top
        samples["t"].append(now)
        samples["cwnd"].append(cwnd)
        samples["ssthresh"].append(ssthresh)
        samples["srtt"].append(rtt * (1 + 0.2 * rng.random()))
        samples["rto"].append(0.2 + 0.02 * rng.random())

    def bytes_series(scale: float) -> list[float]:
        return [max(0.0, scale * (1 + math.sin(x * 3)) + rng.uniform(0, scale / 4)) for x in t]

    def drops_series(p: float) -> list[int]:
        return [1 if rng.random() < p else 0 for _ in t]

    links = [
        {
            "name": "h1-r1", "a": "h1", "b": "r1", "a_addresses": ["10.0.1.2/24"], "b_addresses": ["10.0.1.1/24"],
            "kind": "memory", "mtu": 1500, "delay": 0.001, "bandwidth": None, "loss": None,
            "frames": {"a_to_b": 1234, "b_to_a": 1200}, "drops": {"a_to_b": 0, "b_to_a": 0},
            "series": {"t": t, "a_to_b_bytes": bytes_series(6000), "b_to_a_bytes": bytes_series(400),
                       "a_to_b_drops": [0] * points, "b_to_a_drops": [0] * points,
                       "a_queue": [rng.randint(0, 12) for _ in t], "b_queue": None},
        },
        {
            "name": "r1-h2", "a": "r1", "b": "h2", "a_addresses": ["10.0.3.1/24"], "b_addresses": ["10.0.3.2/24"],
            "kind": "memory", "mtu": 1500, "delay": 0.01, "bandwidth": 10_000_000, "loss": 0.05,
            "frames": {"a_to_b": 1190, "b_to_a": 1180}, "drops": {"a_to_b": 60, "b_to_a": 3},
            "series": {"t": t, "a_to_b_bytes": bytes_series(5800), "b_to_a_bytes": bytes_series(380),
                       "a_to_b_drops": drops_series(0.15), "b_to_a_drops": drops_series(0.01),
                       "a_queue": None, "b_queue": None},
        },
    ]
    ladder_events = [
        {"t_send": 0.0, "t_recv": 0.011, "src": "h1", "dst": "h2", "label": "SYN seq=0 win=65535 mss=1460",
         "lost": False},
        {"t_send": 0.011, "t_recv": 0.022, "src": "h2", "dst": "h1", "label": "SYN|ACK seq=0 ack=1 mss=1460",
         "lost": False},
        {"t_send": 0.022, "t_recv": 0.033, "src": "h1", "dst": "h2", "label": "ACK ack=1", "lost": False},
    ]
    for k in range(6):
        lost = k == 3
        ladder_events.append({
            "t_send": 0.022 + k * 0.0004, "t_recv": None if lost else 0.0335 + k * 0.0004, "src": "h1",
            "dst": "h2", "label": f"ACK|PSH seq={1 + k * mss} len={mss}", "lost": lost,
        })
    ladder_events.append({"t_send": 0.034, "t_recv": 0.045, "src": "h2", "dst": "h1",
                          "label": f"ACK ack={1 + 3 * mss} sack={1 + 4 * mss}-{1 + 6 * mss}", "lost": False})
    flood_t = [0.1 * i for i in range(1, 31)]
    sent = [100 * i for i in range(1, 31)]
    received, lost = [], 0
    for s in sent:
        lost += rng.choice([0, 0, 2, 5, 9])
        received.append(s - lost)
    return {
        "title": "trionet run examples/lossy_tcp.toml",
        "seed": seed, "clock": "virtual", "duration": duration,
        "nodes": [
            {"name": "h1", "kind": "host", "addresses": ["10.0.1.2/24"]},
            {"name": "r1", "kind": "router", "addresses": ["10.0.1.1/24", "10.0.3.1/24"]},
            {"name": "h2", "kind": "host", "addresses": ["10.0.3.2/24"]},
        ],
        "links": links,
        "tcp": [{
            "id": "h1 10.0.1.2:49152 > 10.0.3.2:5001", "host": "h1", "local": "10.0.1.2:49152",
            "remote": "10.0.3.2:5001", "segments": segments, "acks": acks, "samples": samples,
            "retransmits": retransmits,
        }],
        "pings": [{"label": "[0] ping h1 -> 10.0.3.2", "rtts": [0.022 + rng.gauss(0, 0.001) for _ in range(50)]}],
        "floods": [{"label": "[3] udp_flood h1 -> h2", "t": flood_t, "sent": sent, "received": received}],
        "ladder": {"title": "h1 10.0.1.2:49152 > 10.0.3.2:5001", "endpoints": ["h1", "h2"],
                   "events": ladder_events},
        "steps": [
            {"index": 0, "description": "ping h1 -> 10.0.3.2", "ok": True, "summary": "50/50 replies"},
            {"index": 1, "description": "tcp h1 -> h2:5001 1 MiB", "ok": True, "summary": "1048576 bytes"},
            {"index": 2, "description": "expect retransmits < 5", "ok": False, "summary": f"{retransmits}"},
            {"index": 3, "description": "udp_flood h1 -> h2", "ok": True, "summary": "3000 sent"},
        ],
        "views": {
            "h1": "$ ifconfig\nmem0: flags=8843<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST> mtu 1500\n"
                  "\tinet 10.0.1.2 netmask 0xffffff00\n$ netstat -rn\n...\n",
            "r1": "$ netstat -s -p tcp\n\t0 packets sent\n",
            "h2": "$ ifconfig\nmem0: mtu 1500\n",
        },
    }


ALL_FIGURES = ["topology", "link-h1-r1", "link-r1-h2", "tcp-0-seq", "tcp-0-cwnd", "ping-0", "flood-0", "ladder"]


def figures(page: str) -> dict[str, str]:
    """Figure id -> its inner markup."""
    return dict(re.findall(r'<figure id="([^"]+)">(.*?)</figure>', page, re.S))


####
# The page
####


def test_the_report_is_one_file_with_every_figure(tmp_path: Path) -> None:
    path = render_report(synthetic_record(), tmp_path / "out")
    assert path == tmp_path / "out" / "index.html"
    assert sorted(p.name for p in path.parent.iterdir()) == ["index.html"]
    page = path.read_text()
    found = figures(page)
    assert list(found) == ALL_FIGURES
    for fig_id, inner in found.items():
        assert inner.count("<svg") == 1, fig_id
        assert inner.lstrip().startswith("<svg"), fig_id
    # Sections in the order of the brief, the steps and views after the figures.
    order = [page.index(f'id="s-{key}"') for key in ("topology", "links", "tcp", "pings", "floods", "ladder",
                                                       "steps", "views")]
    assert order == sorted(order)
    assert "seed" in page and "virtual" in page and "4.000 s" in page


def test_the_report_names_nothing_outside_itself(tmp_path: Path) -> None:
    page = render_report(synthetic_record(), tmp_path).read_text()
    # Only the SVG namespaces may spell a URL; nothing is loaded from anywhere.
    for m in re.finditer(r"(?i)(https?|ftp|file|data):", page):
        before = page[max(0, m.start() - 40) : m.start()]
        assert re.search(r'xmlns(:\w+)?="$', before), page[m.start() - 40 : m.end() + 40]
    assert not re.search(r"(?i)\bsrc\s*=", page)
    assert not re.search(r"(?i)<(script|link|img|iframe|object|embed)\b", page)
    assert not re.search(r"(?i)@import|url\((?!#)", page)
    assert "<!DOCTYPE svg" not in page
    # Each SVG's internal references resolve inside the page.
    ids = set(re.findall(r'\sid="([^"]+)"', page))
    assert set(re.findall(r'(?:href="#|url\(#)([^")]+)', page)) <= ids


def test_the_topology_shows_every_node_and_address(tmp_path: Path) -> None:
    svg = figures(render_report(synthetic_record(), tmp_path).read_text())["topology"]
    # Text is drawn as glyph paths; matplotlib leaves the string beside it as a comment.
    text = " ".join(re.findall(r"<!-- (.*?) -->", svg, re.S))
    for word in ("h1", "r1", "h2", "10.0.1.2/24", "10.0.3.1/24", "10 ms / 5 % / MTU 1500"):
        assert word in text


def test_sections_without_data_are_left_out(tmp_path: Path) -> None:
    record = synthetic_record()
    for key in ("tcp", "pings", "floods", "views"):
        del record[key]
    record["ladder"] = None
    record["steps"] = []
    page = render_report(record, tmp_path).read_text()
    assert list(figures(page)) == ["topology", "link-h1-r1", "link-r1-h2"]
    for key in ("tcp", "pings", "floods", "ladder", "steps", "views"):
        assert f'id="s-{key}"' not in page and f'href="#s-{key}"' not in page
    empty = render_report({"title": "nothing"}, tmp_path / "empty").read_text()
    assert "<figure" not in empty and "<section" not in empty


def test_record_text_is_escaped(tmp_path: Path) -> None:
    record = synthetic_record()
    record["title"] = "a <b>bold</b> & title"
    record["views"]["h1"] = "<script>alert(1)</script>\n"
    record["steps"][0]["summary"] = '"quoted" <i>'
    page = render_report(record, tmp_path).read_text()
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>bold</b>" not in page and "a &lt;b&gt;bold&lt;/b&gt; &amp; title" in page
    assert "&quot;quoted&quot; &lt;i&gt;" in page


def test_long_series_are_decimated(tmp_path: Path) -> None:
    record = synthetic_record(points=100_000)
    record["tcp"][0]["segments"] = [
        {"t": i * 1e-5, "seq": i * 100, "len": 100, "retransmit": i % 1000 == 0} for i in range(100_000)
    ]
    start = time.perf_counter()
    page = render_report(record, tmp_path).read_text()
    elapsed = time.perf_counter() - start
    # One segment is one two-vertex bar: 200 000 of them unbounded. (Line
    # charts do not tell: matplotlib's path simplification thins them anyway.)
    vertices = len(re.findall(r"[ML] ?-?[\d.]+[ ,]-?[\d.]+", figures(page)["tcp-0-seq"]))
    assert vertices < 2 * MAX_POINTS + 1000
    assert elapsed < 20


def test_decimated_intervals_keep_the_totals() -> None:
    n = 100_000
    t = [(i + 1) * 0.001 for i in range(n)]
    sent = [float(i % 7) for i in range(n)]
    t_end, dt, sums = intervals(t, sent)
    assert len(t_end) == len(dt) == len(sums) == MAX_POINTS
    assert sum(sums) == sum(sent)
    assert math.isclose(sum(dt), t[-1])
    assert t_end[-1] == t[-1]
    queue_t, queue = maxima(t, [float(i == 54_321) for i in range(n)])
    assert len(queue) == MAX_POINTS and max(queue) == 1.0
    # Short series pass through; the first interval starts at 0.
    assert intervals([0.5, 1.0], [1.0, 2.0]) == ([0.5, 1.0], [0.5, 0.5], [1.0, 2.0])


def test_too_many_links_and_connections_are_counted_not_drawn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The real bounds (50 links, 20 connections) cost a chart each: lower them.
    monkeypatch.setattr(_report, "MAX_LINKS", 4)
    monkeypatch.setattr(_report, "MAX_TCP", 2)
    record = synthetic_record(points=20)
    link = record["links"][0]
    record["links"] = [dict(link, name=f"l{i}", a="h1", b="r1") for i in range(7)]
    record["tcp"] = record["tcp"] * 4
    record["ladder"]["events"] = record["ladder"]["events"] * 5
    page = render_report(record, tmp_path).read_text()
    found = figures(page)
    assert len([f for f in found if f.startswith("link-")]) == 4
    assert [f for f in found if f.startswith("tcp-")] == ["tcp-0-seq", "tcp-0-cwnd", "tcp-1-seq", "tcp-1-cwnd"]
    assert "3 more links not shown" in page
    assert "2 more connections not shown" in page
    assert "10 more packets not shown" in page
    # The ladder draws MAX_LADDER_EVENTS arrows: one time label per send.
    assert len(re.findall(r"<!-- \d+\.\d{3} ms -->", found["ladder"])) == MAX_LADDER_EVENTS


def test_link_ids_are_unique_slugs(tmp_path: Path) -> None:
    record = synthetic_record(points=10)
    record["links"][0]["name"] = "a b/c"
    record["links"][1]["name"] = "a b/c"
    assert [f for f in figures(render_report(record, tmp_path).read_text()) if f.startswith("link-")] == [
        "link-a-b-c", "link-a-b-c-2"
    ]


def test_the_report_is_reproducible(tmp_path: Path) -> None:
    a = render_report(synthetic_record(), tmp_path / "a").read_text()
    b = render_report(synthetic_record(), tmp_path / "b").read_text()
    assert a == b


def test_a_tap_link_gets_a_kernel_end(tmp_path: Path) -> None:
    record = synthetic_record(points=10)
    record["links"].append(dict(record["links"][0], name="tap0", a="h2", b="kernel",
                                b_addresses=["10.0.9.1/24"]))
    svg = figures(render_report(record, tmp_path).read_text())["topology"]
    text = re.findall(r"<!-- (.*?) -->", svg)
    assert "kernel" in text and "kernel end (tap)" in text and "10.0.9.1/24" in text


def test_missing_libraries_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "networkx", None)
    with pytest.raises(RuntimeError, match=r"pip install 'trionet\[report\]'"):
        render_report(synthetic_record(), tmp_path)


####
# In a browser
####


@pytest.mark.skipif(CHROMIUM_SKIP_REASON is not None, reason=CHROMIUM_SKIP_REASON or "")
def test_chromium_shows_every_figure_without_a_console_error(tmp_path: Path) -> None:
    path = render_report(synthetic_record(), tmp_path / "out")
    start = time.perf_counter()
    with report_browser.Chromium(tmp_path / "profile") as browser:
        page = browser.open(path)
        shots = {fig_id: page.screenshot_of(f"#{fig_id}") for fig_id in ALL_FIGURES}
        problems = page.problems()
    assert time.perf_counter() - start < 30
    assert problems == []
    for fig_id, png in shots.items():
        colours, ink = report_browser.ink(png)
        assert colours > 32 and ink > 0.01, (fig_id, colours, ink)


@pytest.mark.skipif(CHROMIUM_SKIP_REASON is not None, reason=CHROMIUM_SKIP_REASON or "")
def test_the_browser_check_sees_errors_requests_and_blank_figures(tmp_path: Path) -> None:
    # The check above must be able to fail: a page with a script error, a
    # console error, a request for a remote image and an empty figure.
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<!DOCTYPE html><html><body><figure id="blank" style="height:200px"><svg></svg></figure>'
        '<img src="http://127.0.0.1:9/x.png"><script>console.error("boom"); undefined_name();</script>'
        "</body></html>"
    )
    with report_browser.Chromium(tmp_path / "profile") as browser:
        page = browser.open(bad)
        colours, ink = report_browser.ink(page.screenshot_of("#blank"))
        problems = page.problems()
    assert colours <= 32 and ink <= 0.01
    assert any(p.startswith("uncaught:") for p in problems)
    assert any(p.startswith("console.error:") for p in problems)
    assert "request: http://127.0.0.1:9/x.png" in problems
    assert not list(tmp_path.glob("profile/chromium-*"))
