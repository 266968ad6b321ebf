"""Scenario step kinds: one class per kind, one row per kind in :data:`STEP_KINDS`.

Theory of operation
===================

A ``[[scenario]]`` table names its kind with ``step``; the row for that name
is a subclass of :class:`Step` that holds everything about the kind, from
its keys to its line in a report. So adding a kind is one class and one row
(and a section with an example in ``docs/topology.md``, which a test checks).
Rules:

1. Keys. ``KEYS`` (key -> (check, default), checks from
   :mod:`trionet._checks`) are the kind's own keys; with :data:`COMMON_KEYS`
   (``step``, ``name``, ``timeout``) they are every key a table of that kind
   may hold. The loader checks them all, in that order, before anything
   else: an unknown key (with a suggestion), a missing one, a bad value.
2. Loading. The classmethod ``load(load, f)`` makes the step from the
   checked fields ``f``. References (a host, a link, a target address, a
   port to serve) are checked through ``load``, a
   :class:`~trionet._topology.StepLoad`, whose errors name the file, the
   line and the key; ``load.base(f)`` gives the fields every step has.
3. Building (:func:`~trionet.build_network`). ``faulted_links()`` names
   the links the step partitions or impairs (they are built with fault
   injectors); ``check_built(topology, hosts)`` checks, against the hosts
   built in this process, what only a running host knows (a sysctl's name),
   raising a :class:`~trionet.TopologyError` before anything runs.
4. Running (:func:`~trionet.run_scenario`). ``start_service(run,
   nursery)`` starts a receiving side before the first step;
   ``actors(topology)`` names the nodes whose process runs the step (split
   runs; none: every process); ``run(run, outcome, timing)`` does the step
   under its timeout, fills ``outcome`` (what a rerun with the same seed
   reproduces) and ``timing`` (what depends on time), and returns
   ``(success, error)``. A failure the network reports (``ENETUNREACH``, a
   broken connection) may propagate as an exception: it becomes the error
   of a failed result. ``run`` gets a :class:`~trionet._scenario.StepRun`.
5. Reporting. ``describe()`` is the label of a step without a ``name``;
   the classmethod ``detail(outcome, timing)`` is the middle of the
   result's summary line (``3/3 replies, rtt ...``). It reads only the
   result, which may come from another process.

One class may serve several names (:class:`LinkStep`: ``link_down``,
``link_up``, ``partition``, ``heal``); it reads ``self.kind``.
:func:`registered_step_kind` adds a row for the length of a ``with`` block.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import random
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import attrs
import trio

from ._checks import (
    ANY,
    REQUIRED,
    Check,
    byte_count,
    choice,
    did_you_mean,
    integer,
    number,
    string,
    sysctl_value,
)
from ._exceptions import NetError
from ._links import IMPAIRMENT_KEYS, IMPAIRMENTS
from ._network import derive_seed

if TYPE_CHECKING:
    from ._scenario import StepRun
    from ._topology import StepLoad, Topology

__all__ = [
    "COMMON_KEYS",
    "STEP_KINDS",
    "ImpairStep",
    "LinkStep",
    "PingStep",
    "Step",
    "SysctlStep",
    "TcpTransferStep",
    "UdpFloodStep",
    "WaitStep",
    "registered_step_kind",
]

#: Bytes per ``send_all`` of a transfer, and per progress report at most.
CHUNK = 64 * 1024
#: Progress reports per long step (every 5%).
PROGRESS_STEPS = 20
_REPORT = 40  # sha256 digest + 8-byte count

Keys = Mapping[str, tuple[Check, Any]]

#: The keys of every step (rule 1).
COMMON_KEYS: dict[str, tuple[Check, Any]] = {
    "step": (string, REQUIRED),
    "name": (string, None),
    "timeout": (number(0, above=True), 60.0),
}


@attrs.frozen(kw_only=True)
class Step:
    """What every scenario step has; a kind subclasses it (module docstring).

    Attributes:
        index: position in the scenario (0-based).
        kind: the ``step`` value.
        name: the file's label for it, or None.
        timeout: seconds of Trio time the step may take.
        where: ``"file:line: scenario[i]"``, for messages.
    """

    #: The kind's own keys (rule 1).
    KEYS: ClassVar[Keys] = {}

    index: int
    kind: str
    name: str | None = None
    timeout: float = 60.0
    where: str = ""

    @property
    def label(self) -> str:
        return self.name or self.describe()

    def describe(self) -> str:
        """The label of a step without a ``name`` (rule 5)."""
        return self.kind

    @classmethod
    def load(cls, load: StepLoad, f: dict[str, Any]) -> Step:
        """Make the step from its checked fields (rule 2). This one takes only the common keys."""
        return cls(**load.base(f))

    def faulted_links(self) -> frozenset[str]:
        """Links this step partitions or impairs (rule 3)."""
        return frozenset()

    def check_built(self, topology: Topology, hosts: Mapping[str, Any]) -> None:
        """Check the step against the hosts built here (rule 3).

        Raises:
            TopologyError: at the step's key.
        """

    def actors(self, topology: Topology) -> frozenset[str]:
        """Nodes whose process runs this step (empty: every process)."""
        return frozenset()

    async def start_service(self, run: StepRun, nursery: trio.Nursery) -> None:
        """Start the step's receiving side in ``nursery``, if it has one and
        its host is built here (rule 4). Runs before the first step."""

    async def run(self, run: StepRun, outcome: dict[str, Any], timing: dict[str, Any]) -> tuple[bool, str | None]:
        """Do the step (rule 4).

        Returns:
            ``(success, error)``; ``error`` says why it failed, or None.

        Cancellation: the step's timeout cancels it; what it put in
        ``outcome`` and ``timing`` so far stays in the result.
        """
        raise NotImplementedError(f"step kind {self.kind!r} has no run()")

    @classmethod
    def detail(cls, outcome: Mapping[str, Any], timing: Mapping[str, Any]) -> str:
        """The middle of the summary line of a result of this kind (rule 5); "" for none."""
        return ""


####################################################################
# ping, udp_flood, tcp_transfer: from a host to an address
####################################################################

_FLOW_KEYS: dict[str, tuple[Check, Any]] = {
    "from": (ANY, REQUIRED),
    "to": (ANY, REQUIRED),
    "expect": (choice("ok", "fail"), "ok"),
}


def _flow(load: StepLoad, f: dict[str, Any], *, need_owner: bool) -> tuple[dict[str, Any], str | None]:
    # from, to, expect; and the host that owns `to` (None: not in the file).
    src = load.host(f["from"], "from")
    to, dst_host = load.target(f["to"], "to", need_owner=need_owner)
    return {"src": src, "to": to, "expect": f["expect"]}, dst_host


def _min_received(load: StepLoad, f: dict[str, Any]) -> int:
    if f["min_received"] is None:
        return int(f["count"])
    if f["min_received"] > f["count"]:
        raise load.error("min_received", f"must be at most count ({f['count']})")
    return int(f["min_received"])


def _pick(f: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {key: f[key] for key in keys}


@attrs.frozen(kw_only=True)
class PingStep(Step):
    """ICMP echo requests from ``src`` to ``to``; ok with ``min_received`` replies."""

    KEYS: ClassVar[Keys] = {
        **_FLOW_KEYS,
        "count": (integer(1, 1_000_000), 3),
        "size": (integer(0, 65499), 56),
        "interval": (number(0, 3600), 1.0),
        "reply_timeout": (number(0, 3600, above=True), 1.0),
        "min_received": (integer(0, 1_000_000), None),
    }

    src: str
    to: str
    count: int = 3
    size: int = 56
    interval: float = 1.0
    reply_timeout: float = 1.0
    min_received: int = 3
    expect: str = "ok"

    @classmethod
    def load(cls, load: StepLoad, f: dict[str, Any]) -> Step:
        flow, _ = _flow(load, f, need_owner=False)
        keys = _pick(f, "count", "size", "interval", "reply_timeout")
        return cls(**load.base(f), **flow, **keys, min_received=_min_received(load, f))

    def describe(self) -> str:
        return f"ping {self.src} -> {self.to}"

    def actors(self, topology: Topology) -> frozenset[str]:
        return frozenset({self.src})

    async def run(self, run: StepRun, outcome: dict[str, Any], timing: dict[str, Any]) -> tuple[bool, str | None]:
        host = run.built.hosts[self.src]
        outcome.update(count=self.count, sent=0, received=0)
        result = await host.ping(
            self.to, count=self.count, size=self.size, timeout=self.reply_timeout, interval=self.interval
        )
        errors = [attrs.asdict(e) for e in result.errors]
        outcome.update(sent=result.sent, received=result.received, errors=errors)
        ms = [rtt * 1000 for rtt in result.rtts]
        timing.update(
            rtt_min_ms=min(ms) if ms else None,
            rtt_avg_ms=sum(ms) / len(ms) if ms else None,
            rtt_max_ms=max(ms) if ms else None,
            rtts_ms=ms,
        )
        if result.received >= self.min_received:
            return True, None
        error = f"{result.received}/{self.count} replies (needs {self.min_received})"
        if result.errors:
            first = result.errors[0]
            if first.type == -1:
                error += f"; send failed: {errno.errorcode.get(first.code, first.code)}"
            else:
                error += f"; ICMP type {first.type} code {first.code} from {first.source}"
        return False, error

    @classmethod
    def detail(cls, outcome: Mapping[str, Any], timing: Mapping[str, Any]) -> str:
        o, t = outcome, timing
        detail = f"{o['received']}/{o['count']} replies"
        if t.get("rtt_avg_ms") is not None:
            rtts = "/".join(f"{t[k]:.3f}" for k in ("rtt_min_ms", "rtt_avg_ms", "rtt_max_ms"))
            detail += f", rtt min/avg/max {rtts} ms"
        return detail


@attrs.frozen(kw_only=True)
class UdpFloodStep(Step):
    """``count`` datagrams to ``to``:``port``. ``dst_host`` is the host that
    owns ``to``: its sink counts; ok with ``min_received`` counted."""

    KEYS: ClassVar[Keys] = {
        **_FLOW_KEYS,
        "port": (integer(1, 65535), None),
        "count": (integer(1, 10_000_000), 100),
        "size": (integer(0, 65507), 512),
        "interval": (number(0, 3600), 0.001),
        "settle": (number(0, 3600), 1.0),
        "min_received": (integer(0, 10_000_000), None),
    }

    src: str
    to: str
    dst_host: str
    port: int
    count: int = 100
    size: int = 512
    interval: float = 0.001
    settle: float = 1.0
    min_received: int = 100
    expect: str = "ok"

    @classmethod
    def load(cls, load: StepLoad, f: dict[str, Any]) -> Step:
        flow, dst_host = _flow(load, f, need_owner=True)
        assert dst_host is not None
        min_received = _min_received(load, f)
        port = f["port"] if f["port"] is not None else 9000 + load.index
        # The sink also answers on tcp (for a sender in another process).
        load.serve(dst_host, ("udp", "tcp"), port)
        keys = _pick(f, "count", "size", "interval", "settle")
        return cls(**load.base(f), **flow, dst_host=dst_host, port=port, **keys, min_received=min_received)

    def describe(self) -> str:
        return f"udp_flood {self.src} -> {self.to}:{self.port}"

    def actors(self, topology: Topology) -> frozenset[str]:
        return frozenset({self.src})

    async def start_service(self, run: StepRun, nursery: trio.Nursery) -> None:
        built = run.built
        if self.dst_host not in built.hosts:
            return
        host = built.hosts[self.dst_host]
        sock = host.udp_socket()
        sock.bind(("0.0.0.0", self.port))
        run.services[self.index] = sock
        nursery.start_soon(_drain, sock)
        if self.src not in built.local:
            # The sender is in another process: it asks for the count over TCP.
            await nursery.start(host.serve_tcp, _count_reporter(sock), self.port)

    async def run(self, run: StepRun, outcome: dict[str, Any], timing: dict[str, Any]) -> tuple[bool, str | None]:
        host = run.built.hosts[self.src]
        outcome.update(count=self.count, sent=0, send_errors=0)
        every = max(1, self.count // PROGRESS_STEPS)
        errors: dict[str, int] = {}
        sink = run.services.get(self.index)
        # Sent and received so far, at each progress mark (the report's loss over time).
        series: dict[str, list[float]] = {"t": [], "sent": [], "received": []}
        with host.udp_socket() as sock:
            start = trio.current_time()
            run.report(self, 0, self.count, "datagrams")
            for seq in range(self.count):
                payload = seq.to_bytes(4, "big")[: self.size] + bytes(max(0, self.size - 4))
                try:
                    await sock.sendto(payload, (self.to, self.port))
                    outcome["sent"] += 1
                except NetError as exc:
                    outcome["send_errors"] += 1
                    name = errno.errorcode.get(exc.errno, str(exc.errno))
                    errors[name] = errors.get(name, 0) + 1
                if (seq + 1) % every == 0:
                    run.report(self, seq + 1, self.count, "datagrams")
                    if sink is not None:
                        series["t"].append(trio.current_time() - start)
                        series["sent"].append(outcome["sent"])
                        series["received"].append(sink.statistics().received)
                if self.interval:
                    await trio.sleep_until(start + (seq + 1) * self.interval)
            sending = trio.current_time() - start
        if errors:
            outcome["send_error_kinds"] = dict(sorted(errors.items()))
        await trio.sleep(self.settle)
        if sink is not None:
            stats = sink.statistics()
            received, drops = stats.received, stats.drops
        else:
            stream = await run.built.hosts[self.src].open_tcp_stream(self.to, self.port)
            async with stream:
                answer = await _receive_exactly(stream, 16)
            if len(answer) != 16:
                return False, "the sink's count did not arrive"
            received, drops = int.from_bytes(answer[:8], "big"), int.from_bytes(answer[8:], "big")
        outcome.update(received=received, socket_drops=drops, lost=max(0, outcome["sent"] - received - drops))
        if series["t"]:
            series["t"].append(trio.current_time() - start)
            series["sent"].append(outcome["sent"])
            series["received"].append(received)
        timing.update(
            sending_seconds=sending,
            datagrams_per_s=outcome["sent"] / sending if sending > 0 else None,
            series=series,
        )
        if received >= self.min_received:
            return True, None
        return False, f"{received}/{self.count} received (needs {self.min_received})"

    @classmethod
    def detail(cls, outcome: Mapping[str, Any], timing: Mapping[str, Any]) -> str:
        o = outcome
        if "received" not in o:
            return ""
        lost = o["sent"] - o["received"]
        pct = 100 * lost / o["sent"] if o["sent"] else 0.0
        return f"{o['sent']} sent, {o['received']} received ({pct:.1f}% lost)"


@attrs.frozen(kw_only=True)
class TcpTransferStep(Step):
    """``bytes`` of seeded content over one connection to ``to``:``port``.
    ``dst_host`` is the host that owns ``to``: its server hashes what
    arrives; ok when the server's SHA-256 and count match what was sent."""

    KEYS: ClassVar[Keys] = {**_FLOW_KEYS, "port": (integer(1, 65535), None), "bytes": (byte_count, 1_000_000)}

    src: str
    to: str
    dst_host: str
    port: int
    bytes: int = 1_000_000
    expect: str = "ok"

    @classmethod
    def load(cls, load: StepLoad, f: dict[str, Any]) -> Step:
        flow, dst_host = _flow(load, f, need_owner=True)
        assert dst_host is not None
        port = f["port"] if f["port"] is not None else 5000 + load.index
        load.serve(dst_host, ("tcp",), port)
        return cls(**load.base(f), **flow, dst_host=dst_host, port=port, bytes=f["bytes"])

    def describe(self) -> str:
        return f"tcp_transfer {self.src} -> {self.to}:{self.port} ({self.bytes} bytes)"

    def actors(self, topology: Topology) -> frozenset[str]:
        return frozenset({self.src})

    async def start_service(self, run: StepRun, nursery: trio.Nursery) -> None:
        if self.dst_host in run.built.hosts:
            await nursery.start(run.built.hosts[self.dst_host].serve_tcp, _hash_server, self.port)

    async def run(self, run: StepRun, outcome: dict[str, Any], timing: dict[str, Any]) -> tuple[bool, str | None]:
        host = run.built.hosts[self.src]
        rng = random.Random(derive_seed(run.built.seed, f"scenario/{self.index}"))
        digest = hashlib.sha256()
        total = self.bytes
        outcome.update(bytes=total, bytes_sent=0)
        start = trio.current_time()
        stream = await host.open_tcp_stream(self.to, self.port)
        timing["connect_seconds"] = trio.current_time() - start
        async with stream:
            run.report(self, 0, total, "bytes")
            every = max(CHUNK, math.ceil(total / PROGRESS_STEPS))
            next_report = every
            sent = 0
            try:
                while sent < total:
                    chunk = rng.randbytes(min(CHUNK, total - sent))
                    digest.update(chunk)
                    await stream.send_all(chunk)
                    sent += len(chunk)
                    outcome["bytes_sent"] = sent
                    if sent >= next_report or sent == total:
                        run.report(self, sent, total, "bytes")
                        next_report += every
                await stream.send_eof()
                answer = await _receive_exactly(stream, _REPORT)
            finally:
                stats = stream.statistics()
                timing.update(retransmits=stats.retransmits, rto_timeouts=stats.timeouts,
                              fast_retransmits=stats.fast_retransmits)  # fmt: skip
        seconds = trio.current_time() - start
        outcome["sha256"] = digest.hexdigest()
        timing.update(seconds=seconds, mbytes_per_s=total / seconds / 1e6 if seconds > 0 else None)
        if len(answer) != _REPORT:
            return False, "the server's digest did not arrive"
        outcome.update(sha256_received=answer[:32].hex(), bytes_received=int.from_bytes(answer[32:], "big"))
        if outcome["bytes_received"] != total:
            return False, f"the server read {outcome['bytes_received']} bytes of {total}"
        if outcome["sha256_received"] != outcome["sha256"]:
            return False, "the server's sha256 differs from what was sent"
        return True, None

    @classmethod
    def detail(cls, outcome: Mapping[str, Any], timing: Mapping[str, Any]) -> str:
        o, t = outcome, timing
        if "seconds" not in t:
            return ""
        match = "sha256 match" if o.get("sha256") == o.get("sha256_received") else "sha256 MISMATCH"
        rate = f"{t['mbytes_per_s']:.2f} MB/s" if t.get("mbytes_per_s") is not None else "no time"
        return (
            f"{o.get('bytes_received', 0)} bytes in {t['seconds']:.3f} s ({rate}), "
            f"{match}, {t.get('retransmits', 0)} retransmits"
        )


# The receiving sides (rule 4 of trionet._scenario).


async def _drain(sock: Any) -> None:
    # Reading keeps the receive buffer from filling; the socket's own
    # counters are the record.
    with sock:
        while True:
            await sock.recv()


async def _hash_server(stream: Any) -> None:
    digest = hashlib.sha256()
    count = 0
    async with stream:
        try:
            while data := await stream.receive_some(CHUNK):
                digest.update(data)
                count += len(data)
            await stream.send_all(digest.digest() + count.to_bytes(8, "big"))
        except (trio.BrokenResourceError, OSError):
            pass  # the sender gave up; its step reports why


def _count_reporter(sock: Any) -> Callable[[Any], Awaitable[None]]:
    async def report(stream: Any) -> None:
        stats = sock.statistics()
        async with stream:
            try:
                await stream.send_all(stats.received.to_bytes(8, "big") + stats.drops.to_bytes(8, "big"))
            except (trio.BrokenResourceError, OSError):
                pass

    return report


async def _receive_exactly(stream: Any, n: int) -> bytes:
    data = b""
    while len(data) < n:
        more = await stream.receive_some(n - len(data))
        if not more:
            break
        data += more
    return data


####################################################################
# sysctl
####################################################################


@attrs.frozen(kw_only=True)
class SysctlStep(Step):
    """Set ``sysctl`` to ``value`` on ``host``; the file's ``name`` is the sysctl."""

    KEYS: ClassVar[Keys] = {
        "host": (ANY, REQUIRED),
        "name": (string, REQUIRED),
        "value": (sysctl_value, REQUIRED),
    }

    host: str
    sysctl: str
    value: int | str

    @classmethod
    def load(cls, load: StepLoad, f: dict[str, Any]) -> Step:
        host = load.host(f["host"], "host")
        return cls(**load.base(f, label=False), host=host, sysctl=f["name"], value=f["value"])

    def describe(self) -> str:
        return f"sysctl {self.host} {self.sysctl}={self.value}"

    def actors(self, topology: Topology) -> frozenset[str]:
        return frozenset({self.host})

    def check_built(self, topology: Topology, hosts: Mapping[str, Any]) -> None:
        # Checked against a host that has the sysctl, so a typo is a file
        # error before anything runs.
        if self.host not in hosts:
            return
        path = ("scenario", self.index)
        try:
            node = hosts[self.host].sysctls.node(self.sysctl)
        except NetError:
            hint = did_you_mean(self.sysctl, [n.name for n in hosts[self.host].sysctls])
            raise topology.error(path + ("name",), f"no sysctl {json.dumps(self.sysctl)}{hint}") from None
        if node.readonly or node.getter is not None:
            raise topology.error(path + ("name",), f"sysctl {self.sysctl} is read-only")
        try:
            node.check(self.value)
        except (TypeError, ValueError) as exc:
            raise topology.error(path + ("value",), str(exc)) from None

    async def run(self, run: StepRun, outcome: dict[str, Any], timing: dict[str, Any]) -> tuple[bool, str | None]:
        await trio.lowlevel.checkpoint()
        host = run.built.hosts[self.host]
        try:
            old = host.sysctl(self.sysctl, self.value)
        except (TypeError, ValueError) as exc:  # checked at build time; for steps made by hand
            return False, str(exc)
        outcome.update(name=self.sysctl, old=old, new=host.sysctl(self.sysctl))
        return True, None

    @classmethod
    def detail(cls, outcome: Mapping[str, Any], timing: Mapping[str, Any]) -> str:
        return f"{outcome['old']} -> {outcome['new']}" if "old" in outcome else ""


####################################################################
# link_down, link_up, partition, heal, impair
####################################################################

#: The kinds of :class:`LinkStep` that need fault injectors on the link.
_FAULTING = frozenset({"partition", "heal"})


@attrs.frozen(kw_only=True)
class LinkStep(Step):
    """``link_down``, ``link_up`` (the carrier), ``partition`` or ``heal``
    (frames lost silently, the carrier up)."""

    KEYS: ClassVar[Keys] = {"link": (ANY, REQUIRED)}

    link: str

    @classmethod
    def load(cls, load: StepLoad, f: dict[str, Any]) -> Step:
        link = load.link(f["link"], "link", faults=load.kind in _FAULTING)
        return cls(**load.base(f), link=link)

    def describe(self) -> str:
        return f"{self.kind} {self.link}"

    def actors(self, topology: Topology) -> frozenset[str]:
        return frozenset(topology.link(self.link).nodes)

    def faulted_links(self) -> frozenset[str]:
        # A partition of a memory link without injectors would drop the carrier.
        return frozenset({self.link}) if self.kind in _FAULTING else frozenset()

    async def run(self, run: StepRun, outcome: dict[str, Any], timing: dict[str, Any]) -> tuple[bool, str | None]:
        await trio.lowlevel.checkpoint()
        link = run.built.links[self.link]
        if self.kind == "link_down":
            link.set_up(False)
        elif self.kind == "link_up":
            link.set_up(True)
        else:
            link.partition(self.kind == "partition")
        return True, None


@attrs.frozen(kw_only=True)
class ImpairStep(Step):
    """Change a link's impairments (``changes``: (name, value) pairs)."""

    KEYS: ClassVar[Keys] = {"link": (ANY, REQUIRED), **IMPAIRMENT_KEYS}

    link: str
    changes: tuple[tuple[str, float], ...]

    @classmethod
    def load(cls, load: StepLoad, f: dict[str, Any]) -> Step:
        link = load.link(f["link"], "link", faults=True)
        changes = tuple((k, f[k]) for k in IMPAIRMENTS if f[k] is not None)
        if not changes:
            raise load.error(None, f"an impair step needs at least one of {', '.join(IMPAIRMENTS)}")
        return cls(**load.base(f), link=link, changes=changes)

    def describe(self) -> str:
        changes = " ".join(f"{k}={v:g}" for k, v in self.changes)
        return f"impair {self.link} {changes}"

    def actors(self, topology: Topology) -> frozenset[str]:
        return frozenset(topology.link(self.link).nodes)

    def faulted_links(self) -> frozenset[str]:
        return frozenset({self.link})

    async def run(self, run: StepRun, outcome: dict[str, Any], timing: dict[str, Any]) -> tuple[bool, str | None]:
        await trio.lowlevel.checkpoint()
        run.built.links[self.link].set_impairments(**dict(self.changes))
        outcome.update(dict(self.changes))
        return True, None


####################################################################
# wait
####################################################################


@attrs.frozen(kw_only=True)
class WaitStep(Step):
    """Sleep ``seconds`` of Trio time, in every process."""

    KEYS: ClassVar[Keys] = {"seconds": (number(0, 86400), REQUIRED)}

    seconds: float

    @classmethod
    def load(cls, load: StepLoad, f: dict[str, Any]) -> Step:
        base = load.base(f)
        if not load.given("timeout"):  # the default leaves room for the wait
            base["timeout"] = max(f["timeout"], f["seconds"] + 1.0)
        return cls(**base, seconds=f["seconds"])

    def describe(self) -> str:
        return f"wait {self.seconds:g} s"

    async def run(self, run: StepRun, outcome: dict[str, Any], timing: dict[str, Any]) -> tuple[bool, str | None]:
        outcome["seconds"] = self.seconds
        await trio.sleep(self.seconds)
        return True, None

    @classmethod
    def detail(cls, outcome: Mapping[str, Any], timing: Mapping[str, Any]) -> str:
        return f"{timing.get('seconds', 0):.3f} s"


####################################################################
# The table
####################################################################

#: Step kinds by their ``step`` value, in the order messages list them.
STEP_KINDS: dict[str, type[Step]] = {
    "ping": PingStep,
    "udp_flood": UdpFloodStep,
    "tcp_transfer": TcpTransferStep,
    "sysctl": SysctlStep,
    "link_down": LinkStep,
    "link_up": LinkStep,
    "partition": LinkStep,
    "heal": LinkStep,
    "impair": ImpairStep,
    "wait": WaitStep,
}


@contextlib.contextmanager
def registered_step_kind(name: str, cls: type[Step]) -> Iterator[type[Step]]:
    """Make ``step = "name"`` a :class:`Step` kind run by ``cls`` for the
    ``with`` block, then forget it (a test's own kind; the package's kinds
    are rows of :data:`STEP_KINDS`).

    Raises:
        ValueError: ``name`` is a kind already.
        TypeError: ``cls`` is not a subclass of :class:`Step`.
    """
    if name in STEP_KINDS:
        raise ValueError(f"{name!r} is a step kind already")
    if not (isinstance(cls, type) and issubclass(cls, Step)):
        raise TypeError(f"a step kind is a subclass of Step, not {cls!r}")
    STEP_KINDS[name] = cls
    try:
        yield cls
    finally:
        del STEP_KINDS[name]
