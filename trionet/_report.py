"""The HTML report of a run: one self-contained page drawn from a run record.

Theory of operation
===================

:func:`render_report` turns a record into ``index.html``. The record is
the JSON-able dict :meth:`trionet.Recording.to_record` makes (times in
seconds from the start of the recording):

- ``title``, ``seed``, ``clock``, ``duration``;
- ``nodes``: ``{name, kind ("host", "router", "switch", "kernel"), addresses}``;
- ``links``: ``{name, a, b, a_addresses, b_addresses, kind, mtu, delay,
  bandwidth, loss, frames, drops, series}``; ``frames`` and ``drops`` are
  ``{a_to_b, b_to_a}`` totals, ``series`` holds ``t`` and, per interval
  ending at each ``t``, ``a_to_b_bytes``, ``b_to_a_bytes``,
  ``a_to_b_drops``, ``b_to_a_drops``, and the send queues ``a_queue`` and
  ``b_queue`` at ``t`` (or None);
- ``tcp``: ``{id, host, local, remote, segments [{t, seq, len,
  retransmit}], acks [{t, ack, sack}], samples {t, cwnd, ssthresh, srtt,
  rto}, retransmits}``, sequence numbers relative to the first data byte;
- ``pings``: ``{label, rtts}``; ``floods``: ``{label, t, sent, received}``;
- ``ladder``: ``{title, endpoints, events [{t_send, t_recv, src, dst,
  label, lost}]}`` or None;
- ``steps``: ``{index, description, ok, summary}``; ``views``: host -> text.

Rules:

1. One file that opens from disk with no network: CSS inline, every chart an
   inline ``<svg>`` (:mod:`trionet._report_charts`), no script, no image, no
   URL anywhere except the ``xmlns`` names inside the SVG.
2. Sections are rows in :data:`SECTIONS`, in page order; a section with no
   data returns nothing and is left out (and out of the table of contents).
3. Every ``<figure>`` holds one ``<svg>`` and has a stable id
   (``topology``, ``link-{slug}``, ``tcp-{n}-seq``, ``tcp-{n}-cwnd``,
   ``ping-{n}``, ``flood-{n}``, ``ladder``), so a test or a link can find it.
4. Every piece of record text goes through :func:`html.escape` (a host
   view may hold anything a program printed).
5. Bounded work: at most :data:`MAX_LINKS` link charts, :data:`MAX_TCP`
   connections, :data:`MAX_PINGS` pings and floods each; the rest are counted
   in an "N more not shown" line. Each series is decimated to at most
   :data:`~trionet._report_charts.MAX_POINTS` points.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from . import _report_charts as charts

__all__ = ["MAX_LINKS", "MAX_PINGS", "MAX_TCP", "SECTIONS", "render_report"]

MAX_LINKS = 50
MAX_TCP = 20
MAX_PINGS = 20


def render_report(record: Mapping[str, Any], out_dir: str | os.PathLike[str]) -> Path:
    """Write the report of one run as ``out_dir/index.html``.

    Args:
        record: the run record (see the module docstring); keys it lacks
            leave their sections out.
        out_dir: a directory, made if missing; an ``index.html`` in it is
            replaced.

    Returns:
        The path of ``index.html``.

    Raises:
        RuntimeError: matplotlib or networkx is not installed (the
            ``report`` extra).
        KeyError, ValueError: the record is malformed (a link series shorter
            than its ``t``, an event without ``t_send``).
    """
    charts.libraries()
    with charts.rc_context():
        parts = [(key, title, build(record)) for key, title, build in SECTIONS]
    parts = [(key, title, body) for key, title, body in parts if body]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "index.html"
    tmp = out / "index.html.tmp"
    tmp.write_text(_page(record, parts), encoding="utf-8")
    os.replace(tmp, path)
    return path


####
# The page
####

CSS = """
:root { color-scheme: light; }
body { margin: 0; background: #f6f7f9; color: #1d1f23;
  font: 15px/1.45 "DejaVu Sans", "Helvetica Neue", Arial, sans-serif; }
header { background: #ffffff; border-bottom: 1px solid #dde1e6; padding: 18px 32px 12px; }
header h1 { margin: 0 0 6px; font-size: 22px; font-weight: 600; }
header dl { display: flex; flex-wrap: wrap; gap: 4px 28px; margin: 0; font-size: 14px; color: #4a4f57; }
header dt { font-weight: 600; display: inline; }
header dd { display: inline; margin: 0 0 0 6px; font-family: "DejaVu Sans Mono", monospace; }
nav { margin-top: 10px; font-size: 14px; }
nav a { color: #1f5fa8; text-decoration: none; margin-right: 16px; }
main { max-width: 1180px; margin: 0 auto; padding: 8px 32px 48px; }
section { margin-top: 28px; }
h2 { font-size: 19px; font-weight: 600; border-bottom: 2px solid #dde1e6; padding-bottom: 4px; margin: 0 0 12px; }
h3 { font-size: 15px; font-weight: 600; margin: 18px 0 6px; font-family: "DejaVu Sans Mono", monospace; }
figure { margin: 0 0 16px; background: #ffffff; border: 1px solid #e1e4e8; border-radius: 6px; padding: 8px; }
figure svg { display: block; width: 100%; height: auto; }
p.more { color: #6a6f77; font-style: italic; }
table { border-collapse: collapse; width: 100%; background: #ffffff; font-size: 14px; }
th, td { border: 1px solid #e1e4e8; padding: 5px 9px; text-align: left; vertical-align: top; }
th { background: #eef1f4; font-weight: 600; }
td.num { text-align: right; font-family: "DejaVu Sans Mono", monospace; width: 3em; }
td.ok { color: #1a7f37; font-weight: 600; background: #eaf6ec; width: 5em; }
td.failed { color: #b42318; font-weight: 600; background: #fdecea; width: 5em; }
td.summary { font-family: "DejaVu Sans Mono", monospace; font-size: 13px; white-space: pre-wrap; }
details { background: #ffffff; border: 1px solid #e1e4e8; border-radius: 6px; margin-bottom: 8px; }
summary { cursor: pointer; padding: 6px 10px; font-weight: 600; font-family: "DejaVu Sans Mono", monospace; }
pre { margin: 0; padding: 8px 12px 12px; overflow-x: auto; font: 13px/1.35 "DejaVu Sans Mono", monospace;
  border-top: 1px solid #e1e4e8; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _page(record: Mapping[str, Any], parts: Sequence[tuple[str, str, str]]) -> str:
    title = str(record.get("title") or "trionet run")
    facts = [("seed", record.get("seed")), ("clock", record.get("clock"))]
    duration = record.get("duration")
    facts.append(("duration", None if duration is None else f"{float(duration):.3f} s"))
    dl = "".join(f"<div><dt>{_e(k)}</dt><dd>{_e(v)}</dd></div>" for k, v in facts if v is not None)
    nav = "".join(f'<a href="#s-{key}">{_e(name)}</a>' for key, name, _ in parts)
    sections = "".join(
        f'<section id="s-{key}"><h2>{_e(name)}</h2>\n{body}</section>\n' for key, name, body in parts
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{CSS}</style></head>\n"
        f"<body><header><h1>{_e(title)}</h1><dl>{dl}</dl><nav>{nav}</nav></header>\n"
        f"<main>\n{sections}</main></body></html>\n"
    )


def _figure(fig_id: str, svg: str) -> str:
    return f'<figure id="{_e(fig_id)}">{svg}</figure>\n'


def _more(shown: int, total: int, what: str) -> str:
    return f'<p class="more">{total - shown} more {_e(what)} not shown.</p>\n' if total > shown else ""


def slug(name: str, taken: set[str]) -> str:
    """``name`` as an id part (letters, digits, ``-``, ``_``), made unique in ``taken``."""
    base = re.sub(r"[^A-Za-z0-9_]+", "-", name).strip("-") or "link"
    s, n = base, 2
    while s in taken:
        s, n = f"{base}-{n}", n + 1
    taken.add(s)
    return s


####
# Sections, in page order
####


def _topology(record: Mapping[str, Any]) -> str:
    if not record.get("nodes") and not record.get("links"):
        return ""
    return _figure("topology", charts.topology_chart(record))


def _links(record: Mapping[str, Any]) -> str:
    links = [link for link in record.get("links") or () if (link.get("series") or {}).get("t")]
    taken: set[str] = set()
    out = []
    for link in links[:MAX_LINKS]:
        name = str(link.get("name") or f"{link.get('a')}-{link.get('b')}")
        out.append(_figure(f"link-{slug(name, taken)}", charts.link_chart(link)))
    out.append(_more(min(len(links), MAX_LINKS), len(links), "links"))
    return "".join(out)


def _tcp(record: Mapping[str, Any]) -> str:
    conns = list(record.get("tcp") or ())
    out = []
    for n, conn in enumerate(conns[:MAX_TCP]):
        out.append(f"<h3>{_e(conn.get('id', f'connection {n}'))}</h3>\n")
        out.append(_figure(f"tcp-{n}-seq", charts.sequence_chart(conn)))
        out.append(_figure(f"tcp-{n}-cwnd", charts.cwnd_chart(conn)))
    out.append(_more(min(len(conns), MAX_TCP), len(conns), "connections"))
    return "".join(out)


def _pings(record: Mapping[str, Any]) -> str:
    pings = list(record.get("pings") or ())
    out = [_figure(f"ping-{n}", charts.ping_chart(p)) for n, p in enumerate(pings[:MAX_PINGS])]
    out.append(_more(min(len(pings), MAX_PINGS), len(pings), "pings"))
    return "".join(out)


def _floods(record: Mapping[str, Any]) -> str:
    floods = list(record.get("floods") or ())
    out = [_figure(f"flood-{n}", charts.flood_chart(f)) for n, f in enumerate(floods[:MAX_PINGS])]
    out.append(_more(min(len(floods), MAX_PINGS), len(floods), "floods"))
    return "".join(out)


def _ladder(record: Mapping[str, Any]) -> str:
    ladder = record.get("ladder")
    if not ladder or not ladder.get("events"):
        return ""
    events = ladder["events"]
    shown = min(len(events), charts.MAX_LADDER_EVENTS)
    return _figure("ladder", charts.ladder_chart(ladder)) + _more(shown, len(events), "packets")


def _steps(record: Mapping[str, Any]) -> str:
    steps = list(record.get("steps") or ())
    if not steps:
        return ""
    rows = []
    for step in steps:
        ok = bool(step.get("ok"))
        rows.append(
            f'<tr><td class="num">{_e(step.get("index", ""))}</td><td>{_e(step.get("description", ""))}</td>'
            f'<td class="{"ok" if ok else "failed"}">{"ok" if ok else "failed"}</td>'
            f'<td class="summary">{_e(step.get("summary", ""))}</td></tr>'
        )
    return (
        "<table><thead><tr><th>#</th><th>step</th><th>result</th><th>summary</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>\n"
    )


def _views(record: Mapping[str, Any]) -> str:
    views = record.get("views") or {}
    return "".join(
        f"<details><summary>{_e(host)}</summary><pre>{_e(text)}</pre></details>\n" for host, text in views.items()
    )


SECTIONS: list[tuple[str, str, Callable[[Mapping[str, Any]], str]]] = [
    ("topology", "Topology", _topology),
    ("links", "Links", _links),
    ("tcp", "TCP", _tcp),
    ("pings", "Pings", _pings),
    ("floods", "UDP floods", _floods),
    ("ladder", "Ladder", _ladder),
    ("steps", "Steps", _steps),
    ("views", "Views", _views),
]
