"""The charts of the HTML report (:mod:`trionet._report`): each function takes
one part of a run record and returns one SVG document as a string.

Theory of operation
===================

1. matplotlib and networkx are optional (the ``report`` extra), so
   :func:`libraries` imports them when a report is made, not when trionet
   is imported, and says how to install them if they are missing.
2. No pyplot: every chart is a :class:`matplotlib.figure.Figure` (a
   figure made this way needs no GUI backend, and choosing one would be
   global state) saved by matplotlib's SVG backend into a string. The one
   global touched is :data:`RC` (fonts, sizes, a fixed id salt), applied
   with ``rc_context`` for the length of one report.
3. Reproducible output: the default font (DejaVu Sans, bundled with
   matplotlib), text drawn as paths (a comment beside each glyph run keeps
   the text greppable), no date in the metadata, a fixed salt for the SVG
   ids, and a layout with no randomness (Kamada-Kawai).
4. Self-contained: :func:`svg_of` drops the XML prolog, the DOCTYPE (which
   names a URL) and the RDF metadata, and the ids nothing refers to (every
   figure would otherwise have ``figure_1``), so many SVGs can share a page.
5. Bounded work: at most :data:`MAX_POINTS` points per series (a longer one
   is decimated: sums for per-interval counts, maxima for queue lengths,
   evenly spaced samples otherwise) and :data:`MAX_LADDER_EVENTS` arrows.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "MAX_LADDER_EVENTS",
    "MAX_POINTS",
    "cwnd_chart",
    "flood_chart",
    "ladder_chart",
    "libraries",
    "link_chart",
    "ping_chart",
    "rc_context",
    "sequence_chart",
    "topology_chart",
]

MAX_POINTS = 2000
MAX_LADDER_EVENTS = 40

MISSING = "the report needs matplotlib and networkx: pip install 'trionet[report]'"

# Colour-blind-safe pairs (Okabe-Ito) for the two directions of a link.
A_TO_B = "#0072B2"
B_TO_A = "#E69F00"
GREY = "#9a9a9a"
ORANGE = "#F28E2B"
RED = "#D62728"
GREEN = "#2CA02C"
PURPLE = "#9467BD"
INK = "#222222"

RC = {
    "svg.fonttype": "path",
    "svg.hashsalt": "trionet-report",
    "font.size": 9.0,
    "axes.titlesize": 10.0,
    "axes.labelsize": 9.0,
    "legend.fontsize": 8.0,
    "legend.framealpha": 0.85,
    "axes.grid": True,
    "grid.color": "#e4e4e4",
    "grid.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.edgecolor": "#555555",
    "figure.dpi": 96,
}

DROP_WARN = 0.05  # a link dropping this share of its frames or more is drawn red


####
# Libraries, SVG output
####


def libraries() -> tuple[Any, Any]:
    """Import matplotlib and networkx, lazily.

    Returns:
        ``(matplotlib, networkx)``.

    Raises:
        RuntimeError: one of them is not installed.
    """
    try:
        import matplotlib
        import networkx
    except ImportError as exc:
        raise RuntimeError(MISSING) from exc
    return matplotlib, networkx


def rc_context() -> Any:
    """The matplotlib settings of the report, as a context manager."""
    import matplotlib

    return matplotlib.rc_context(RC)


def new_figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


_PROLOG = re.compile(r"\A.*?(?=<svg\b)", re.S)
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.S)
_ID = re.compile(r'\sid="([^"]+)"')
_REF = re.compile(r'(?:href="#|url\(#)([^")]+)')


def svg_of(fig: Figure) -> str:
    """``fig`` as an SVG element to put inline in HTML (rule 4)."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    text = _PROLOG.sub("", buf.getvalue(), count=1)
    text = _METADATA.sub("", text, count=1)
    used = set(_REF.findall(text))
    return _ID.sub(lambda m: m.group(0) if m.group(1) in used else "", text)


####
# Units and decimation
####


def time_unit(t_max: float) -> tuple[float, str]:
    """A scale for times in seconds: milliseconds under two seconds."""
    return (1e3, "ms") if t_max < 2.0 else (1.0, "s")


def _unit(v_max: float, units: Sequence[tuple[float, str]]) -> tuple[float, str]:
    for factor, name in reversed(units):
        if v_max >= factor:
            return factor, name
    return units[0]


def rate_unit(bps_max: float) -> tuple[float, str]:
    return _unit(bps_max, [(1.0, "bit/s"), (1e3, "kbit/s"), (1e6, "Mbit/s"), (1e9, "Gbit/s")])


def byte_unit(b_max: float) -> tuple[float, str]:
    return _unit(b_max, [(1.0, "bytes"), (1024.0, "KiB"), (1024.0**2, "MiB"), (1024.0**3, "GiB")])


def _floats(values: Sequence[Any] | None) -> list[float]:
    out = []
    for v in values or ():
        out.append(math.nan if v is None else float(v))
    return out


def buckets(n: int, limit: int = MAX_POINTS) -> list[tuple[int, int]]:
    """``[start, stop)`` index ranges cutting ``n`` samples into at most ``limit``."""
    if n <= limit:
        return [(i, i + 1) for i in range(n)]
    edges = [round(i * n / limit) for i in range(limit + 1)]
    return [(edges[i], edges[i + 1]) for i in range(limit) if edges[i] < edges[i + 1]]


def evenly(n: int, limit: int = MAX_POINTS) -> list[int]:
    """At most ``limit`` indices spread over ``range(n)``, first and last kept."""
    if n <= limit:
        return list(range(n))
    return sorted({round(i * (n - 1) / (limit - 1)) for i in range(limit)})


def intervals(t: Sequence[float], *counts: Sequence[float], limit: int = MAX_POINTS) -> tuple[list[float], ...]:
    """Per-interval counts, re-cut into at most ``limit`` intervals.

    Returns ``(t_end, dt, counts...)``: each interval's end, length, and the
    sums of ``counts`` over it. The first interval starts at 0 (the record's
    series count what happened since the network started), or, if ``t[0]``
    is 0, is as long as the second.
    """
    n = len(t)
    t_end: list[float] = []
    dt: list[float] = []
    sums: list[list[float]] = [[] for _ in counts]
    for start, stop in buckets(n, limit):
        begin = t[start - 1] if start > 0 else (0.0 if t[0] > 0 or n < 2 else t[0] - (t[1] - t[0]))
        t_end.append(t[stop - 1])
        dt.append(t[stop - 1] - begin)
        for out, series in zip(sums, counts):
            chunk = [v for v in series[start:stop] if not math.isnan(v)]
            out.append(sum(chunk) if chunk else math.nan)
    return (t_end, dt, *sums)


def maxima(t: Sequence[float], values: Sequence[float], limit: int = MAX_POINTS) -> tuple[list[float], list[float]]:
    """``values`` re-cut into at most ``limit`` buckets, each its maximum (peaks survive)."""
    ts, vs = [], []
    for start, stop in buckets(len(t), limit):
        chunk = [v for v in values[start:stop] if not math.isnan(v)]
        ts.append(t[stop - 1])
        vs.append(max(chunk) if chunk else math.nan)
    return ts, vs


####
# Topology
####

NODE_STYLE = {
    # kind: (marker, face colour, size in points^2, legend label)
    "host": ("o", "#cfe3f5", 900, "host"),
    "router": ("D", "#fde0b6", 800, "router"),
    "switch": ("rect", "#d8efd3", 1400, "switch"),
    "kernel": ("h", "#e6dcf2", 900, "kernel end (tap)"),
}


def _rect_marker() -> Any:
    from matplotlib.path import Path

    return Path([(-1.6, -0.7), (1.6, -0.7), (1.6, 0.7), (-1.6, 0.7), (-1.6, -0.7)], closed=True)


def drop_ratio(link: Mapping[str, Any]) -> float:
    frames = sum((link.get("frames") or {}).values())
    drops = sum((link.get("drops") or {}).values())
    return drops / (frames + drops) if frames + drops else 0.0


def drop_colour(ratio: float) -> str:
    return GREY if ratio <= 0 else (ORANGE if ratio < DROP_WARN else RED)


def _link_text(link: Mapping[str, Any]) -> str:
    delay = link.get("delay")
    loss = link.get("loss")
    mtu = link.get("mtu")
    parts = [
        "—" if delay is None else f"{delay * 1e3:g} ms",
        "—" if loss is None else f"{loss * 100:g} %",
        "—" if mtu is None else f"MTU {mtu}",
    ]
    text = " / ".join(parts)
    bandwidth = link.get("bandwidth")
    if bandwidth:
        factor, unit = rate_unit(float(bandwidth))
        text += f"\n{float(bandwidth) / factor:g} {unit}"
    ratio = drop_ratio(link)
    if ratio:
        text += f"\ndrops {ratio * 100:.1f} %"
    return text


def topology_chart(record: Mapping[str, Any]) -> str:
    """Nodes by kind, links coloured by their drop ratio, addresses at link ends."""
    _, nx = libraries()
    from matplotlib.lines import Line2D

    nodes = {n["name"]: n for n in record.get("nodes") or ()}
    links = list(record.get("links") or ())
    graph = nx.MultiGraph()
    for name in sorted(nodes):
        graph.add_node(name)
    ends: list[tuple[str, str]] = []
    for i, link in enumerate(links):
        a, b = str(link["a"]), str(link.get("b") or "kernel")
        if b not in nodes:
            # A tap link's far end: one "kernel" node per link, so two tap
            # links do not look joined to each other.
            b = b if b != "kernel" else f"kernel ({link.get('name', i)})"
            nodes.setdefault(b, {"name": b, "kind": "kernel", "addresses": []})
        nodes.setdefault(a, {"name": a, "kind": "host", "addresses": []})
        graph.add_edge(a, b, key=i)
        ends.append((a, b))

    pos = layered_layout(nx, nx.Graph(graph))
    degree = dict(nx.Graph(graph).degree())
    crowd = max(1, len(pos))
    xs = [p[0] for p in pos.values()] or [0.0]
    ys = [p[1] for p in pos.values()] or [0.0]
    pad_x, pad_y = 0.45, 0.45
    x_span = max(xs) - min(xs) + 2 * pad_x
    y_span = max(ys) - min(ys) + 2 * pad_y
    width = 10.0
    height = min(10.0, 1.0 + 1.0 * y_span)
    fig = new_figure(width, height)
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.set_xlim(min(xs) - pad_x, max(xs) + pad_x)
    ax.set_ylim(min(ys) - pad_y, max(ys) + pad_y)
    # Points per data unit, about (the axes fill the figure but for the legend row).
    kx, ky = 72 * width * 0.96 / x_span, 72 * (height - 0.6) / y_span
    small = 8.0 if crowd <= 8 else 7.0
    radius = 19.0  # points: the markers' half width, where an address label may start

    # Links; their parameters under the middle (pushed away from a hub), the
    # addresses just outside each end's marker.
    pairs: dict[frozenset[str], int] = {}
    for (a, b), link in zip(ends, links):
        pair = frozenset((a, b))
        nth = pairs.get(pair, 0)
        pairs[pair] = nth + 1
        (xa, ya), (xb, yb) = pos[a], pos[b]
        # Parallel links between the same two nodes bow out to either side.
        bow = 0.0 if nth == 0 else 0.12 * ((nth + 1) // 2) * (1 if nth % 2 else -1)
        dx, dy = xb - xa, yb - ya
        length = math.hypot(dx, dy) or 1.0
        nxv, nyv = -dy / length, dx / length
        mx, my = (xa + xb) / 2 + bow * nxv * length, (ya + yb) / 2 + bow * nyv * length
        colour = drop_colour(drop_ratio(link))
        ax.plot([xa, mx, xb], [ya, my, yb], color=colour, linewidth=2.6, zorder=1, solid_capstyle="round")
        f = 0.5 if degree[a] == degree[b] else (0.56 if degree[a] > degree[b] else 0.44)
        lx, ly = (xa + (mx - xa) * 2 * f, ya + (my - ya) * 2 * f) if f <= 0.5 else (
            mx + (xb - mx) * (2 * f - 1), my + (yb - my) * (2 * f - 1))
        ax.annotate(
            _link_text(link), (lx, ly), xytext=(0, -7), textcoords="offset points", ha="center", va="top",
            fontsize=small, color=INK, zorder=4,
            bbox={"boxstyle": "round,pad=0.25", "fc": "white", "ec": colour, "lw": 0.8, "alpha": 0.95},
        )
        for end, (x2, y2), addresses in ((a, (mx, my), link.get("a_addresses")), (b, (mx, my), link.get("b_addresses"))):
            if not addresses:
                continue
            x1, y1 = pos[end]
            angle = math.atan2((y2 - y1) * ky, (x2 - x1) * kx)
            cos, sin = math.cos(angle), math.sin(angle)
            if abs(cos) >= 0.35:
                # Beside the line, above it, starting past the marker.
                xy = ((radius + 3) * cos, (radius + 3) * sin + 4)
                ha, va = ("left" if cos > 0 else "right"), "bottom"
            else:
                # A steep line: right of it, past the marker.
                xy = (5, (radius + 6) * (1 if sin > 0 else -1))
                ha, va = "left", ("bottom" if sin > 0 else "top")
            ax.annotate(
                "\n".join(addresses), (x1, y1), xytext=xy, textcoords="offset points", ha=ha, va=va,
                fontsize=small - 0.5, color="#333333", zorder=3,
                bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.85},
            )

    # Nodes by kind; a short name inside its marker, a longer one under it.
    handles = []
    for kind, (marker, face, size, label) in NODE_STYLE.items():
        members = [name for name, node in nodes.items() if _kind(node) == kind and name in pos]
        if not members:
            continue
        shape = _rect_marker() if marker == "rect" else marker
        ax.scatter(
            [pos[m][0] for m in members], [pos[m][1] for m in members], s=size, marker=shape,
            c=face, edgecolors="#333333", linewidths=1.2, zorder=5,
        )
        handles.append(Line2D([], [], marker=shape, linestyle="", markersize=10, markerfacecolor=face,
                              markeredgecolor="#333333", label=label))
    for name, (x, y) in pos.items():
        shown = "kernel" if _kind(nodes[name]) == "kernel" else name
        inside = len(shown) <= 4
        ax.annotate(
            shown, (x, y), xytext=(0, 0 if inside else -(radius + 2)), textcoords="offset points", ha="center",
            va="center" if inside else "top", fontsize=9 if inside else 8.5, fontweight="bold", color=INK, zorder=6,
        )
    for colour, label in ((GREY, "no drops"), (ORANGE, "some drops"), (RED, f"drops ≥ {DROP_WARN:.0%}")):
        handles.append(Line2D([], [], color=colour, linewidth=2.6, label=label))
    handles.append(Line2D([], [], linestyle="", label="link: delay / loss / MTU [bandwidth] [drops]"))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False, fontsize=8,
               markerscale=0.7, handlelength=1.6, columnspacing=1.2)
    return svg_of(fig)


def layered_layout(nx: Any, graph: Any) -> dict[str, tuple[float, float]]:
    """Columns by hop count from one end of the network, rows by barycentre.

    Deterministic (no seed needed) and without scipy (which networkx's
    Kamada-Kawai layout would pull in). Each connected piece starts at a node
    farthest from its smallest-named node (an end of a chain is the usual
    pick), takes one column per hop, and is placed right of the previous
    piece. Within a column, nodes are ordered by the mean row of their
    neighbours in the previous column (then by name), and centred on 0.
    """
    pos: dict[str, tuple[float, float]] = {}
    x0 = 0.0
    for piece in sorted(nx.connected_components(graph), key=lambda c: sorted(c)):
        sub = graph.subgraph(piece)
        first = min(piece)
        # An end of the piece's longest shortest path, the smallest name of
        # those (two BFS passes; exact for trees, the usual network shape).
        hops = nx.single_source_shortest_path_length(sub, first)
        far = min(piece, key=lambda n: (-hops[n], n))
        back = nx.single_source_shortest_path_length(sub, far)
        other = min(piece, key=lambda n: (-back[n], n))
        start = min(far, other)
        layers = list(nx.bfs_layers(sub, [start]))
        row: dict[str, float] = {}
        for depth, layer in enumerate(layers):
            def centre(n: str) -> tuple[float, str]:
                above = [row[m] for m in sub[n] if m in row]
                return (sum(above) / len(above) if above else 0.0, n)

            ordered = sorted(layer, key=centre)
            for k, name in enumerate(ordered):
                row[name] = k - (len(ordered) - 1) / 2
                pos[name] = (x0 + depth, -row[name])
        x0 += len(layers) + 0.6
    return pos


def _kind(node: Mapping[str, Any]) -> str:
    kind = str(node.get("kind", "host"))
    return kind if kind in NODE_STYLE else "host"


####
# Links
####


def link_chart(link: Mapping[str, Any]) -> str:
    """Throughput both ways, drops per interval, queue lengths (when known)."""
    series = link.get("series") or {}
    t = _floats(series.get("t"))
    a, b = str(link.get("a")), str(link.get("b") or "kernel")
    n = len(t)
    ab = _floats(series.get("a_to_b_bytes")) or [0.0] * n
    ba = _floats(series.get("b_to_a_bytes")) or [0.0] * n
    dab = _floats(series.get("a_to_b_drops")) or [0.0] * n
    dba = _floats(series.get("b_to_a_drops")) or [0.0] * n
    queues = [(name, _floats(series.get(key))) for name, key in ((a, "a_queue"), (b, "b_queue"))]
    queues = [(name, q) for name, q in queues if q and len(q) == n]
    if not all(len(s) == n for s in (ab, ba, dab, dba)):
        raise ValueError(f"link {link.get('name')!r}: its series are not all as long as t")

    panels = 3 if queues else 2
    fig = new_figure(10.0, 4.6 if queues else 3.6)
    grid = fig.add_gridspec(panels, 1, height_ratios=[3, 1.4, 1.4][:panels])
    ax = fig.add_subplot(grid[0])
    axes = [ax] + [fig.add_subplot(grid[i], sharex=ax) for i in range(1, panels)]
    if n == 0:
        ax.text(0.5, 0.5, "no samples", transform=ax.transAxes, ha="center", va="center")
        return svg_of(fig)

    t_end, dt, sum_ab, sum_ba, drop_ab, drop_ba = intervals(t, ab, ba, dab, dba)
    rate_ab = [v * 8 / d if d > 0 else math.nan for v, d in zip(sum_ab, dt)]
    rate_ba = [v * 8 / d if d > 0 else math.nan for v, d in zip(sum_ba, dt)]
    tscale, tname = time_unit(max(t_end))
    ts = [x * tscale for x in t_end]
    rmax = max([v for v in rate_ab + rate_ba if not math.isnan(v)] or [0.0])
    rscale, rname = rate_unit(rmax)
    ax.plot(ts, [v / rscale for v in rate_ab], color=A_TO_B, lw=1.3, label=f"{a} → {b}", drawstyle="steps-pre")
    ax.plot(ts, [v / rscale for v in rate_ba], color=B_TO_A, lw=1.3, label=f"{b} → {a}", drawstyle="steps-pre")
    ax.set_ylabel(f"throughput ({rname})")
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper right", ncols=2)
    ax.tick_params(labelbottom=False)
    frames = link.get("frames") or {}
    drops = link.get("drops") or {}
    ax.set_title(
        f"{link.get('name', '')}   frames {a}→{b} {frames.get('a_to_b', 0)}, {b}→{a} {frames.get('b_to_a', 0)}"
        f"   drops {drops.get('a_to_b', 0)} / {drops.get('b_to_a', 0)}",
        loc="left",
    )

    dx = axes[1]
    dx.plot(ts, drop_ab, color=A_TO_B, lw=1.0, drawstyle="steps-pre", label=f"{a} → {b}")
    dx.plot(ts, drop_ba, color=B_TO_A, lw=1.0, drawstyle="steps-pre", label=f"{b} → {a}", linestyle="--")
    dx.set_ylabel("drops\nper interval")
    dx.set_ylim(0, 1.15 * max([v for v in drop_ab + drop_ba if not math.isnan(v)] + [1.0]))
    dx.yaxis.get_major_locator().set_params(integer=True)
    last = dx
    if queues:
        dx.tick_params(labelbottom=False)
        qx = axes[2]
        for (name, q), colour in zip(queues, (A_TO_B, B_TO_A)):
            tq, vq = maxima(t, q)
            qx.plot([x * tscale for x in tq], vq, color=colour, lw=1.0, drawstyle="steps-pre", label=f"{name} send queue")
        qx.set_ylabel("queue\n(frames)")
        qx.set_ylim(0, 1.15 * max([v for _, q in queues for v in q if not math.isnan(v)] + [1.0]))
        qx.yaxis.get_major_locator().set_params(integer=True)
        qx.legend(loc="upper right", ncols=2)
        last = qx
    last.set_xlabel(f"time ({tname})")
    return svg_of(fig)


####
# TCP
####


def sequence_chart(conn: Mapping[str, Any]) -> str:
    """A tcptrace-style time-sequence graph of one connection's sender side."""
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D

    segments = list(conn.get("segments") or ())
    acks = list(conn.get("acks") or ())
    t_all = [float(s["t"]) for s in segments] + [float(k["t"]) for k in acks]
    tscale, tname = time_unit(max(t_all or [0.0]))
    top = max([s["seq"] + s["len"] for s in segments] + [k["ack"] for k in acks] + [1])
    bscale, bname = byte_unit(float(top))

    # Decimation: every retransmission (up to half the budget), then evenly spaced others.
    again = [s for s in segments if s.get("retransmit")]
    first = [s for s in segments if not s.get("retransmit")]
    again = [again[i] for i in evenly(len(again), MAX_POINTS // 2)]
    first = [first[i] for i in evenly(len(first), MAX_POINTS - len(again))]
    acks_shown = [acks[i] for i in evenly(len(acks), MAX_POINTS)]

    fig = new_figure(10.0, 4.2)
    ax = fig.add_subplot()

    def bars(items: list[Mapping[str, Any]]) -> list[list[tuple[float, float]]]:
        return [
            [(s["t"] * tscale, s["seq"] / bscale), (s["t"] * tscale, (s["seq"] + s["len"]) / bscale)] for s in items
        ]

    handles = []
    if first:
        ax.add_collection(LineCollection(bars(first), colors=INK, linewidths=1.0, zorder=3))
        handles.append(Line2D([], [], color=INK, label=f"data segments ({len(segments)})"))
    retransmits = conn.get("retransmits", len([s for s in segments if s.get("retransmit")]))
    if again:
        ax.add_collection(LineCollection(bars(again), colors=RED, linewidths=1.6, zorder=4))
    handles.append(Line2D([], [], color=RED, lw=1.6, label=f"retransmissions ({retransmits})"))
    if acks_shown:
        ax.step(
            [k["t"] * tscale for k in acks_shown], [k["ack"] / bscale for k in acks_shown],
            where="post", color=GREEN, lw=1.1, zorder=2,
        )
        handles.append(Line2D([], [], color=GREEN, label="ACK"))
        sacks = [
            [(k["t"] * tscale, lo / bscale), (k["t"] * tscale, hi / bscale)]
            for k in acks_shown for lo, hi in (k.get("sack") or ())
        ][: MAX_POINTS]
        if sacks:
            ax.add_collection(LineCollection(sacks, colors=PURPLE, linewidths=3.0, alpha=0.55, zorder=2))
            handles.append(Line2D([], [], color=PURPLE, lw=3, alpha=0.55, label="SACKed"))
    ax.autoscale_view()
    ax.set_ylim(bottom=0)
    ax.set_xlabel(f"time ({tname})")
    ax.set_ylabel(f"sequence ({bname}, from the first data byte)")
    ax.set_title(f"time-sequence  {conn.get('id', '')}", loc="left")
    ax.legend(handles=handles, loc="upper left")
    return svg_of(fig)


def cwnd_chart(conn: Mapping[str, Any]) -> str:
    """cwnd and ssthresh (capped for display), srtt and rto on a second axis."""
    samples = conn.get("samples") or {}
    t = _floats(samples.get("t"))
    keep = evenly(len(t))
    t = [t[i] for i in keep]

    def get(key: str) -> list[float]:
        values = _floats(samples.get(key))
        return [values[i] for i in keep] if len(values) >= len(keep) and values else []

    cwnd, ssthresh, srtt, rto = get("cwnd"), get("ssthresh"), get("srtt"), get("rto")
    tscale, tname = time_unit(max(t or [0.0]))
    ts = [x * tscale for x in t]
    fig = new_figure(10.0, 3.4)
    ax = fig.add_subplot()
    finite_cwnd = [v for v in cwnd if not math.isnan(v)]
    cap = 2.0 * max(finite_cwnd or [1.0])
    bscale, bname = byte_unit(max(finite_cwnd + [v for v in ssthresh if v <= cap] or [1.0]))
    lines = []
    if cwnd:
        lines += ax.plot(ts, [v / bscale for v in cwnd], color=A_TO_B, lw=1.4, drawstyle="steps-post", label="cwnd")
    if ssthresh:
        capped = any(v > cap for v in ssthresh)
        shown = [min(v, cap) / bscale for v in ssthresh]
        label = "ssthresh" + (f" (shown ≤ {cap / bscale:.3g} {bname})" if capped else "")
        lines += ax.plot(ts, shown, color=B_TO_A, lw=1.2, linestyle="--", drawstyle="steps-post", label=label)
    ax.set_ylabel(f"window ({bname})")
    ax.set_xlabel(f"time ({tname})")
    ax.set_ylim(bottom=0)
    if srtt or rto:
        rx = ax.twinx()
        rx.grid(False)
        rx.spines["right"].set_visible(True)
        if srtt:
            lines += rx.plot(ts, [v * 1e3 for v in srtt], color=GREEN, lw=1.1, label="srtt")
        if rto:
            lines += rx.plot(ts, [v * 1e3 for v in rto], color=PURPLE, lw=0.9, linestyle=":", label="rto")
        rx.set_ylabel("time (ms)")
        rx.set_ylim(bottom=0)
    ax.set_title(f"congestion window  {conn.get('id', '')}", loc="left")
    if lines:
        fig.legend(handles=lines, loc="outside lower center", ncols=4, frameon=False)
    return svg_of(fig)


####
# Pings, floods
####


def ping_chart(ping: Mapping[str, Any]) -> str:
    """A histogram of the round-trip times, in ms, with min/avg/max/mdev."""
    rtts = [v * 1e3 for v in _floats(ping.get("rtts")) if not math.isnan(v)]
    fig = new_figure(10.0, 2.6)
    ax = fig.add_subplot()
    if rtts:
        lo, hi = min(rtts), max(rtts)
        nbins = max(1, min(40, int(math.sqrt(len(rtts))) + 1)) if hi > lo else 1
        ax.hist(rtts, bins=nbins, range=(lo, hi) if hi > lo else (lo - 0.5, lo + 0.5),
                color=A_TO_B, edgecolor="white", linewidth=0.6)
        avg = sum(rtts) / len(rtts)
        mdev = math.sqrt(sum((v - avg) ** 2 for v in rtts) / len(rtts))
        ax.set_title(
            f"{ping.get('label', '')}   n={len(rtts)}  min/avg/max/mdev = "
            f"{lo:.3f}/{avg:.3f}/{hi:.3f}/{mdev:.3f} ms",
            loc="left",
        )
        ax.yaxis.get_major_locator().set_params(integer=True)
    else:
        ax.set_title(f"{ping.get('label', '')}   no replies", loc="left")
    ax.set_xlabel("round-trip time (ms)")
    ax.set_ylabel("replies")
    return svg_of(fig)


def flood_chart(flood: Mapping[str, Any]) -> str:
    """Datagrams lost so far (sent - received) over time, and as a share of those sent."""
    t = _floats(flood.get("t"))
    sent = _floats(flood.get("sent"))
    received = _floats(flood.get("received"))
    keep = evenly(len(t))
    t = [t[i] for i in keep]
    sent = [sent[i] for i in keep]
    received = [received[i] for i in keep]
    lost = [s - r for s, r in zip(sent, received)]
    tscale, tname = time_unit(max(t or [0.0]))
    ts = [x * tscale for x in t]
    fig = new_figure(10.0, 2.8)
    ax = fig.add_subplot()
    lines = ax.plot(ts, lost, color=RED, lw=1.4, label="lost (sent − received)")
    ax.set_ylim(bottom=0)
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel("datagrams")
    ax.set_xlabel(f"time ({tname})")
    px = ax.twinx()
    px.grid(False)
    px.spines["right"].set_visible(True)
    lines += px.plot(ts, [100 * x / s if s else math.nan for x, s in zip(lost, sent)], color=GREY, lw=1.0,
                     linestyle="--", label="lost / sent (%)")
    px.set_ylabel("lost (%)")
    px.set_ylim(bottom=0)
    total = f"  sent {sent[-1]:.0f}, received {received[-1]:.0f}" if sent else ""
    ax.set_title(f"{flood.get('label', '')}{total}", loc="left")
    ax.legend(handles=lines, loc="upper left")
    return svg_of(fig)


####
# Ladder
####


def ladder_chart(ladder: Mapping[str, Any]) -> str:
    """A sequence diagram of the first packets: one arrow per packet, an X where one was lost.

    The vertical axis is time, stretched where many things happen at once:
    every send and every arrival gets its own row (in time order), and a
    long quiet gap is shortened, so that labels never sit on each other
    while an arrow's slope still shows its flight time.
    """
    events = list(ladder.get("events") or ())[:MAX_LADDER_EVENTS]
    endpoints = list(ladder.get("endpoints") or ())
    left = endpoints[0] if endpoints else (events[0]["src"] if events else "")
    right = endpoints[1] if len(endpoints) > 1 else ""

    moments = []  # (time, order, event index, is arrival)
    for i, e in enumerate(events):
        moments.append((float(e["t_send"]), i, 0))
        if not e.get("lost") and e.get("t_recv") is not None:
            moments.append((float(e["t_recv"]), i, 1))
    moments.sort()
    row: dict[tuple[int, int], float] = {}
    y = 0.0
    prev = None
    flights = [float(e["t_recv"]) - float(e["t_send"]) for e in events if not e.get("lost") and e.get("t_recv") is not None]
    typical = sorted(flights)[len(flights) // 2] if flights else 0.0
    for t, i, arrival in moments:
        if prev is not None:
            # One row at least; a gap up to about one flight time in proportion; longer gaps squeezed.
            gap = (t - prev) / typical if typical > 0 else 0.0
            y += 1.0 + min(gap * 4.0, 6.0)
        row[(i, arrival)] = y
        prev = t
    spans = sorted(row[(i, 1)] - row[(i, 0)] for i in range(len(events)) if (i, 1) in row)
    span = spans[len(spans) // 2] if spans else 4.0
    height = 1.2 + 0.2 * (y + 3)
    fig = new_figure(9.0, height)
    ax = fig.add_subplot()
    ax.set_axis_off()
    x_of = {left: 0.0, right: 1.0}
    ax.set_xlim(-0.2, 1.2)
    ax.set_ylim(y + 1.5, -2.2)
    for name, x in x_of.items():
        ax.plot([x, x], [-0.8, y + 1.0], color="#555555", lw=1.6, zorder=1)
        ax.text(x, -1.3, name, ha="center", va="bottom", fontsize=10, fontweight="bold", color=INK)
    for i, e in enumerate(events):
        x0 = x_of.get(e["src"], 0.0 if e["src"] != right else 1.0)
        x1 = 1.0 - x0
        y0 = row[(i, 0)]
        lost = e.get("lost") or e.get("t_recv") is None
        colour = RED if lost else (A_TO_B if x0 == 0.0 else B_TO_A)
        if lost:
            xe, ye = (x0 + x1) / 2, y0 + span / 2
            ax.annotate("", (xe, ye), (x0, y0), arrowprops={"arrowstyle": "-", "color": colour, "lw": 1.2,
                                                           "linestyle": "--"})
            ax.plot([xe], [ye], marker="x", color=RED, markersize=9, markeredgewidth=2.2, zorder=4)
        else:
            xe, ye = x1, row[(i, 1)]
            ax.annotate("", (xe, ye), (x0, y0), arrowprops={"arrowstyle": "-|>", "color": colour, "lw": 1.2,
                                                           "shrinkA": 0, "shrinkB": 0, "mutation_scale": 10})
        # The label near the sender, on the arrow's line; the time outside the sender's line.
        lx = x0 + (0.04 if x0 == 0.0 else -0.04)
        ax.text(lx, y0 - 0.12, str(e.get("label", "")), ha="left" if x0 == 0.0 else "right", va="bottom",
                fontsize=7.5, color=INK if not lost else RED, zorder=5,
                bbox={"boxstyle": "square,pad=0.05", "fc": "white", "ec": "none", "alpha": 0.8})
        ax.text(x0 + (-0.02 if x0 == 0.0 else 0.02), y0, f"{float(e['t_send']) * 1e3:.3f} ms",
                ha="right" if x0 == 0.0 else "left", va="center", fontsize=7, color="#666666")
    ax.set_title(str(ladder.get("title", "")), loc="left")
    return svg_of(fig)
