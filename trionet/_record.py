"""Recording a run for its report: links over time, TCP from the inside, views.

:func:`recording` attaches a :class:`Recording` to a running
:class:`~trionet.Network`; when the block ends, :meth:`Recording.write_report`
draws what it saw (``trionet run --report DIR`` does this around a topology's
scenario). What it records:

- **Links**, sampled every ``interval`` seconds of the run's clock by one task:
  bytes delivered and frames dropped in each direction since the last sample
  (from the endpoints' and fault injectors' counters), and each interface's
  send-queue length. At most ``max_points`` samples per link: past that, pairs
  are merged and the interval doubles, so a run of any length costs the same.
- **TCP**, through each host's TCP probe (``host.inet.tcp.probe``, BSD's
  ``TCPDEBUG`` trace point): every data segment a connection sends (sequence
  numbers relative to its ISN, a retransmission being one that starts below
  the highest sequence number sent), every ACK it receives with its SACK
  blocks, and its ``cwnd``, ``ssthresh``, ``srtt`` and RTO whenever they
  change; its retransmission counter is the connection's own (``netstat``'s).
  Bounded per connection (``max_segments``; what is past the bound is
  counted, not kept).
- **The ladder** of the first connection: the first 40 segments either end
  sent, each matched with its arrival at the other end's TCP input (a segment
  that never arrived was lost). *Divergence from "what the wires saw":* the
  times are those of the two TCP endpoints, which is what a ladder shows; the
  links in between are in the link charts.
- **Steps** (the scenario's results, given by the caller) and the BSD views
  of every host when the recording ends.

Cost: nothing is hooked while no recording is active (the TCP probe is one
attribute test per segment); a recording adds one sampler task and the
probe's bookkeeping.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import trio

from ._kern._intr import format_vmstat_i
from ._kern._kthread import format_ps
from ._net._arp import format_arp
from ._net._dhcp import format_dhcp_leases
from ._net._ifviews import format_ifconfig, format_netstat_i
from ._net._inaddr import inet_ntop
from ._net._nd6 import format_ndp
from ._net._route import format_netstat_r
from ._net._tcp import format_netstat
from .protocols.nat import format_nat
from .protocols.tcp import SEQ_MASK, TcpFlags

if TYPE_CHECKING:
    from ._net._host import Host
    from ._network import Link, Network
    from ._scenario import StepResult

__all__ = ["Recording", "host_views", "recording"]

_SYN, _FIN, _ACK = int(TcpFlags.SYN), int(TcpFlags.FIN), int(TcpFlags.ACK)
#: Segments of the first connection drawn in the ladder.
LADDER_EVENTS = 40


def host_views(host: Host) -> str:
    """``ifconfig``, ``netstat -i``, ``netstat -rn``, ``arp -an`` and
    ``ndp -an`` (when they have entries), DHCP leases and the NAT table (when
    the host has them), ``netstat -an``, ``vmstat -i`` and ``ps`` of
    ``host``, in the BSD tools' layouts."""
    parts = [
        f"$ ifconfig\n{format_ifconfig(host.ifconfig()).rstrip()}\n",
        f"$ netstat -i\n{format_netstat_i(host.netstat_i()).rstrip()}\n",
        f"$ netstat -rn\n{format_netstat_r(host.netstat_r()).rstrip()}\n",
    ]
    if arp := host.arp():
        parts.append(f"$ arp -an\n{format_arp(arp).rstrip()}\n")
    if ndp := host.ndp():
        parts.append(f"$ ndp -an\n{format_ndp(ndp).rstrip()}\n")
    if leases := host.dhcp_leases():
        parts.append(f"$ dhcpd leases\n{format_dhcp_leases(leases).rstrip()}\n")
    if nat := host.nat_table():
        parts.append(f"$ nat table\n{format_nat(nat).rstrip()}\n")
    parts += [
        f"$ netstat -an -p tcp\n{format_netstat(host.netstat()).rstrip()}\n",
        f"$ vmstat -i\n{format_vmstat_i(host.vmstat_i()).rstrip()}\n",
        f"$ ps\n{format_ps(host.ps()).rstrip()}\n",
    ]
    return "\n".join(parts)


####################################################################
# TCP
####################################################################


def _endpoint(addr: bytes, port: int) -> str:
    text = inet_ntop(addr)
    return f"[{text}]:{port}" if ":" in text else f"{text}:{port}"


def _flags(flags: int) -> str:
    return ",".join(f.name for f in TcpFlags if flags & f and f.name) or "-"


@attrs.define(eq=False)
class _Conn:
    # One connection, seen from one host.
    host: str
    local: str
    remote: str
    iss: int
    segments: list[tuple[float, int, int, bool]] = attrs.field(factory=list)
    acks: list[tuple[float, int, tuple[tuple[int, int], ...]]] = attrs.field(factory=list)
    samples: list[tuple[float, int | None, int | None, float | None, float]] = attrs.field(factory=list)
    max_end: int = 0
    retransmits: int = 0
    marked: int = 0
    dropped: int = 0
    irs: int = 0

    def rel(self, seq: int) -> int:
        # Relative to the first data byte (ISN + 1).
        return (seq - self.iss - 1) & SEQ_MASK


@attrs.frozen
class _Seen:
    # A segment as one end's TCP sent or received it (for the ladder).
    t: float
    src: str  # host name of the sender
    key: tuple[int, int, int, int]  # seq, ack, flags, length
    window: int
    mss: int | None
    sack: int  # SACK blocks

    def label(self, isn: Mapping[str, int], dst: str) -> str:
        # Sequence numbers relative to each side's ISN, as Wireshark shows them.
        seq, ack, flags, length = self.key
        text = f"{_flags(flags)} seq={(seq - isn.get(self.src, seq)) & SEQ_MASK}"
        if flags & _ACK:
            text += f" ack={(ack - isn.get(dst, ack)) & SEQ_MASK}"
        text += f" len={length} win={self.window}"
        if self.mss:
            text += f" mss={self.mss}"
        if self.sack:
            text += f" sack={self.sack}"
        return text


####################################################################
# The recording
####################################################################


@attrs.define(eq=False)
class _LinkSeries:
    link: Link
    last: tuple[int, int, int, int] = (0, 0, 0, 0)
    t: list[float] = attrs.field(factory=list)
    a_to_b_bytes: list[int] = attrs.field(factory=list)
    b_to_a_bytes: list[int] = attrs.field(factory=list)
    a_to_b_drops: list[int] = attrs.field(factory=list)
    b_to_a_drops: list[int] = attrs.field(factory=list)
    a_queue: list[int] = attrs.field(factory=list)
    b_queue: list[int] = attrs.field(factory=list)


class Recording:
    """What a network did, kept for a report. Made by :func:`recording`.

    Attributes:
        interval: seconds between link samples now (it doubles when the
            samples reach ``max_points``).
    """

    def __init__(
        self, net: Network, *, interval: float = 0.01, max_points: int = 2000, max_segments: int = 100_000
    ) -> None:
        if not interval > 0:
            raise ValueError(f"interval must be positive seconds, not {interval!r}")
        self.net = net
        self.interval = interval
        self.max_points = max_points
        self.max_segments = max_segments
        self.start = trio.current_time()
        self.end: float | None = None
        self._conns: dict[tuple[str, bytes, int, bytes, int], _Conn] = {}
        self._sent: dict[tuple[str, str], list[_Seen]] = {}  # (local, remote) -> first segments sent
        self._received: dict[tuple[str, str], list[_Seen]] = {}  # (remote, local) as the receiver saw them
        self._first: tuple[str, str] | None = None  # the first connection, (client, server) endpoints
        self._hosts_of: dict[str, str] = {}  # "addr:port" -> host name
        self._links = [_LinkSeries(link) for link in net.links]
        self._views: dict[str, str] = {}
        self._frozen: tuple[list[dict[str, Any]], list[dict[str, Any]]] | None = None  # nodes, links at stop
        self._probed: list[Host] = []
        for host in net.hosts.values():
            host.inet.tcp.probe = self
            self._probed.append(host)
        for series in self._links:
            series.last = self._counters(series.link)

    # The TCP probe -------------------------------------------------------

    def tcp_run(self, pcb: Any, out: Any) -> None:
        """What a connection's machine returned (``Tcp.probe``)."""
        host = pcb.tcp.host.name
        key = (host, pcb.laddr, pcb.lport, pcb.faddr, pcb.fport)
        conn = self._conns.get(key)
        if conn is None and not out.segments:
            return  # nothing sent yet: no record to start
        state = pcb.peek().probe()
        if conn is None:
            local, remote = _endpoint(pcb.laddr, pcb.lport), _endpoint(pcb.faddr, pcb.fport)
            conn = self._conns[key] = _Conn(host, local, remote, state.iss)
            self._hosts_of[local] = host
        conn.irs = state.irs
        now = trio.current_time() - self.start
        # The machine counted this batch's retransmissions; the data segments
        # that start below the highest sequence sent are they, and a SYN or
        # FIN sent again makes up the rest.
        owed = state.retransmits - conn.retransmits
        for header, payload in out.segments:
            length = len(payload)
            self._seen(self._sent, conn.local, conn.remote, now, host, header, length)
            control = int(header.flags) & (_SYN | _FIN)
            if not length and not (control and owed):
                continue
            rel = conn.rel(header.seq) if not header.flags & _SYN else 0
            retransmit = owed > 0 and (rel < conn.max_end or not length)
            if not length and not retransmit:
                continue
            owed -= retransmit
            conn.marked += retransmit
            if len(conn.segments) < self.max_segments:
                conn.segments.append((now, rel, length, retransmit))
            else:
                conn.dropped += 1
            conn.max_end = max(conn.max_end, rel + length)
        conn.retransmits = state.retransmits
        sample = (now, state.cwnd, state.ssthresh, state.srtt, state.rto)
        if not conn.samples or conn.samples[-1][1:] != sample[1:]:
            if len(conn.samples) < self.max_segments:
                conn.samples.append(sample)
            else:
                conn.dropped += 1

    def tcp_input(self, tcp: Any, src: bytes, dst: bytes, header: Any, length: int) -> None:
        """A segment TCP input got (``Tcp.probe``)."""
        host = tcp.host.name
        now = trio.current_time() - self.start
        local, remote = _endpoint(dst, header.dport), _endpoint(src, header.sport)
        self._hosts_of.setdefault(local, host)
        if header.flags & _SYN and not header.flags & _ACK and self._first is None:
            self._first = (remote, local)
        self._seen(self._received, remote, local, now, self._hosts_of.get(remote, remote), header, length)
        conn = self._conns.get((host, dst, header.dport, src, header.sport))
        if conn is not None and header.flags & _ACK:
            blocks = tuple((conn.rel(left), conn.rel(right)) for left, right in header.options.sack_blocks)
            if len(conn.acks) < self.max_segments:
                conn.acks.append((now, conn.rel(header.ack), blocks))
            else:
                conn.dropped += 1

    def _seen(
        self, table: dict[tuple[str, str], list[_Seen]], src: str, dst: str, t: float, host: str, header: Any, length: int
    ) -> None:
        seen = table.setdefault((src, dst), [])
        if len(seen) >= 4 * LADDER_EVENTS:
            return
        options = header.options
        key = (header.seq, header.ack, int(header.flags), length)
        seen.append(_Seen(t, host, key, header.window, options.mss, len(options.sack_blocks)))

    # Links ---------------------------------------------------------------

    @staticmethod
    def _counters(link: Link) -> tuple[int, int, int, int]:
        # Cumulative (a->b bytes delivered, b->a bytes, a->b drops, b->a drops).
        stats = [ep.statistics() if ep is not None else None for ep in link.endpoints]
        lost = [f.statistics().lost if f is not None else 0 for f in link.faults]
        a, b = stats
        if a is None:  # pragma: no cover - a link always has its first side
            return (0, 0, 0, 0)
        ab = b.rx_bytes if b is not None else a.tx_bytes
        ba = a.rx_bytes
        ab_drops = a.tx_drops + lost[0]
        ba_drops = (b.tx_drops if b is not None else 0) + lost[1]
        return (ab, ba, ab_drops, ba_drops)

    def sample(self) -> None:
        """Take one sample of every link now (the sampler task calls this)."""
        now = trio.current_time() - self.start
        for series in self._links:
            counters = self._counters(series.link)
            deltas = [max(0, new - old) for new, old in zip(counters, series.last, strict=True)]
            series.last = counters
            series.t.append(now)
            series.a_to_b_bytes.append(deltas[0])
            series.b_to_a_bytes.append(deltas[1])
            series.a_to_b_drops.append(deltas[2])
            series.b_to_a_drops.append(deltas[3])
            for side, queue in ((0, series.a_queue), (1, series.b_queue)):
                end = series.link.ends[side]
                queue.append(len(end.snd) if hasattr(end, "snd") else -1)
            if len(series.t) >= 2 * self.max_points:
                self._halve(series)

    def _halve(self, series: _LinkSeries) -> None:
        # Merge neighbouring samples: sums for counts, the later time, the max queue.
        self.interval *= 2
        for name in ("a_to_b_bytes", "b_to_a_bytes", "a_to_b_drops", "b_to_a_drops"):
            values = getattr(series, name)
            setattr(series, name, [sum(values[i : i + 2]) for i in range(0, len(values), 2)])
        for name in ("a_queue", "b_queue"):
            values = getattr(series, name)
            setattr(series, name, [max(values[i : i + 2]) for i in range(0, len(values), 2)])
        series.t = [series.t[min(i + 1, len(series.t) - 1)] for i in range(0, len(series.t), 2)]

    async def sampler(self, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Sample the links every :attr:`interval` seconds until cancelled."""
        task_status.started()
        deadline = trio.current_time()
        while True:
            deadline += self.interval
            await trio.sleep_until(deadline)
            self.sample()

    def stop(self) -> None:
        """End the recording: take a last sample, the views and the
        topology as it is now, and detach the TCP probes. What it kept can
        be drawn after the network is gone."""
        if self.end is not None:
            return
        self.sample()
        self.end = trio.current_time()
        for host in self._probed:
            if host.inet.tcp.probe is self:
                host.inet.tcp.probe = None
            self._views[host.name] = host_views(host)
        self._frozen = (self._nodes(), [self._link(series) for series in self._links])

    # The record ------------------------------------------------------------

    def to_record(
        self,
        *,
        title: str = "trionet run",
        clock: str = "virtual",
        results: Sequence[StepResult] = (),
    ) -> dict[str, Any]:
        """The recording as the report's record (a JSON-able dict; its
        schema is :mod:`trionet._report`'s)."""
        end = self.end if self.end is not None else trio.current_time()
        nodes, links = self._frozen or (self._nodes(), [self._link(series) for series in self._links])
        return {
            "title": title,
            "seed": self.net.seed,
            "clock": clock,
            "duration": end - self.start,
            "nodes": nodes,
            "links": links,
            # Connections that sent data worth a graph (a one-segment reply is not).
            "tcp": [self._conn(conn) for conn in self._conns.values() if len(conn.segments) > 1],
            "pings": _pings(results),
            "floods": _floods(results),
            "ladder": self._ladder(),
            "steps": [
                {"index": r.index, "description": r.label, "ok": r.ok, "summary": r.summary()} for r in results
            ],
            "views": dict(self._views),
        }

    def write_report(
        self, out_dir: str | Path, *, title: str = "trionet run", clock: str = "virtual", results: Sequence[StepResult] = ()
    ) -> Path:
        """Draw the report into ``out_dir/index.html`` (one self-contained
        file); returns its path. Needs the ``report`` extra (``pip install
        'trionet[report]'``: matplotlib and networkx).

        Raises:
            RuntimeError: matplotlib or networkx is missing.
            OSError: ``out_dir`` cannot be made or written.
        """
        from ._report import render_report

        return render_report(self.to_record(title=title, clock=clock, results=results), out_dir)

    def _nodes(self) -> list[dict[str, Any]]:
        nodes = []
        for name, host in self.net.hosts.items():
            kind = "router" if host.sysctls.get("net.inet.ip.forwarding") == 1 else "host"
            addresses = [a for ifp in host.ifnets() if ifp.name != "lo0" for a in _addresses(ifp)]
            nodes.append({"name": name, "kind": kind, "addresses": addresses})
        for name in self.net.switches:
            nodes.append({"name": name, "kind": "switch", "addresses": []})
        for link in self.net.links:
            if link.kind == "tap":
                nodes.append({"name": f"kernel {link.ends[1]}", "kind": "kernel", "addresses": []})
        return nodes

    def _link(self, series: _LinkSeries) -> dict[str, Any]:
        link = series.link
        names = []
        for side, node in enumerate(link._nodes):
            if node is None:
                names.append(f"kernel {link.ends[side]}" if link.kind == "tap" else "elsewhere")
            else:
                names.append(node.name)
        addresses = [_addresses(end) if hasattr(end, "addrs") else [] for end in link.ends]
        total = self._counters(link)
        injector = next((f for f in link.faults if f is not None), None)
        wire = link.wire
        mtu = getattr(wire, "mtu", None) or next((end.mtu for end in link.ends if hasattr(end, "mtu")), None)
        return {
            "name": link.name,
            "a": names[0],
            "b": names[1],
            "a_addresses": addresses[0],
            "b_addresses": addresses[1],
            "kind": link.kind,
            "mtu": mtu,
            "delay": getattr(wire, "delay", None),
            "bandwidth": getattr(wire, "bandwidth", None),
            "loss": injector.loss if injector is not None and injector.loss else None,
            "frames": _frames(link),
            "bytes": {"a_to_b": total[0], "b_to_a": total[1]},
            "drops": {"a_to_b": total[2], "b_to_a": total[3]},
            "series": {
                "t": series.t,
                "a_to_b_bytes": series.a_to_b_bytes,
                "b_to_a_bytes": series.b_to_a_bytes,
                "a_to_b_drops": series.a_to_b_drops,
                "b_to_a_drops": series.b_to_a_drops,
                "a_queue": series.a_queue if any(q >= 0 for q in series.a_queue) else None,
                "b_queue": series.b_queue if any(q >= 0 for q in series.b_queue) else None,
            },
        }

    def _conn(self, conn: _Conn) -> dict[str, Any]:
        samples = conn.samples
        return {
            "id": f"{conn.host} {conn.local} > {conn.remote}",
            "host": conn.host,
            "local": conn.local,
            "remote": conn.remote,
            "segments": [{"t": t, "seq": s, "len": n, "retransmit": r} for t, s, n, r in conn.segments],
            "acks": [{"t": t, "ack": a, "sack": [list(b) for b in blocks]} for t, a, blocks in conn.acks],
            "samples": {
                "t": [s[0] for s in samples],
                "cwnd": [s[1] for s in samples],
                "ssthresh": [s[2] for s in samples],
                "srtt": [s[3] for s in samples],
                "rto": [s[4] for s in samples],
            },
            "retransmits": conn.retransmits,
            "retransmits_marked": conn.marked,
            "not_kept": conn.dropped,
        }

    def _ladder(self) -> dict[str, Any] | None:
        if self._first is None:
            return None
        client, server = self._first
        ends = [self._hosts_of.get(client, client), self._hosts_of.get(server, server)]
        sent = sorted(self._sent.get((client, server), []) + self._sent.get((server, client), []), key=lambda s: s.t)
        arrivals = {
            client: list(self._received.get((server, client), [])),
            server: list(self._received.get((client, server), [])),
        }
        # Each side's ISN: the sequence number of its SYN.
        isn = {seen.src: seen.key[0] for seen in sent if seen.key[2] & _SYN}
        # Each send takes the latest arrival of the same segment at or after
        # it, latest send first: a segment sent twice and arrived once was
        # lost the first time.
        shown = sent[:LADDER_EVENTS]
        matched: list[_Seen | None] = [None] * len(shown)
        for i in range(len(shown) - 1, -1, -1):
            seen = shown[i]
            toward = server if seen.src == ends[0] else client
            candidates = [r for r in arrivals[toward] if r.key == seen.key and r.t >= seen.t]
            if candidates:
                matched[i] = candidates[-1]
                arrivals[toward].remove(candidates[-1])
        events = []
        for seen, match in zip(shown, matched, strict=True):
            dst = ends[1] if seen.src == ends[0] else ends[0]
            events.append(
                {
                    "t_send": seen.t,
                    "t_recv": None if match is None else match.t,
                    "src": seen.src,
                    "dst": dst,
                    "label": seen.label(isn, dst),
                    "lost": match is None,
                }
            )
        return {"title": f"{ends[0]} {client} > {ends[1]} {server}", "endpoints": ends, "events": events}


def _frames(link: Link) -> dict[str, int]:
    # Frames delivered each way, as the endpoints counted them.
    a, b = (ep.statistics() if ep is not None else None for ep in link.endpoints)
    if a is None:  # pragma: no cover - a link always has its first side
        return {"a_to_b": 0, "b_to_a": 0}
    return {"a_to_b": b.rx_frames if b is not None else a.tx_frames, "b_to_a": a.rx_frames}


def _addresses(ifp: Any) -> list[str]:
    # An interface's IPv4 and global IPv6 addresses, "10.0.0.1/24".
    return [str(a) for a in ifp.addrs] + [str(a) for a in ifp.addrs6 if not str(a).startswith("fe80")]


def _pings(results: Iterable[StepResult]) -> list[dict[str, Any]]:
    return [
        {"label": f"[{r.index}] {r.label}", "rtts": [ms / 1000 for ms in r.timing.get("rtts_ms", ())]}
        for r in results
        if r.step == "ping" and r.timing.get("rtts_ms")
    ]


def _floods(results: Iterable[StepResult]) -> list[dict[str, Any]]:
    out = []
    for r in results:
        series = r.timing.get("series") if r.step == "udp_flood" else None
        if series:
            out.append({"label": f"[{r.index}] {r.label}", **{k: list(v) for k, v in series.items()}})
    return out


@asynccontextmanager
async def recording(
    net: Network, *, interval: float = 0.01, max_points: int = 2000
) -> AsyncIterator[Recording]:
    """Record what ``net`` does in the block, for a report::

        async with trionet.recording(net) as rec:
            ...  # traffic
        rec.write_report("out")  # out/index.html

    It records the hosts and links the network has when the block starts
    (build the topology first), sampling links every ``interval`` seconds.
    When the block ends, by an exception too, the recording stops: the TCP
    probes are removed and the hosts' views taken (:meth:`Recording.stop`).

    Cancellation: leaving the block by cancellation stops the recording as
    above; what was recorded stays.
    """
    rec = Recording(net, interval=interval, max_points=max_points)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(rec.sampler)
            try:
                yield rec
            finally:
                nursery.cancel_scope.cancel()
    finally:
        rec.stop()

