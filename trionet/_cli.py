"""The ``trionet`` command.

Only this module (and examples) configure logging: a console renderer on a
terminal, JSON lines otherwise.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NoReturn

import attrs
import structlog
import trio
import trio.testing

from . import (
    __version__,
    format_ifconfig,
    format_netstat_i,
    format_ps,
    format_sysctl,
    format_vmstat_i,
    open_host,
)
from ._build import build_network, check_pcap_names
from ._nodes import WorkerError
from ._nursery import service_nursery
from ._kern._ktrace import recording as record_trace
from ._record import host_views, recording
from ._scenario import Progress, StepResult, run_scenario
from ._topology import DEFAULT_PORT_BASE, Topology, TopologyError, load_topology, loads_topology
from .drivers.lo import Loopback
from .drivers.vnic import Vnic
from .lowlevel import ifq_dispatch
from .wires import memory_pair
from .testing import deterministic_scheduling

#: A local experimental EtherType for the frames ``trionet kern`` sends.
_ETHERTYPE = 0x88B5


def _configure_logging(level: str, style: str | None = None) -> None:
    renderer: structlog.typing.Processor
    if style is None:
        style = "console" if sys.stderr.isatty() else "json"
    if style == "console":
        renderer = structlog.dev.ConsoleRenderer()
    else:
        renderer = structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


async def _kern(args: argparse.Namespace) -> None:
    # One host with lo0 and vnic0, wired to a peer host's vnic0; send
    # --frames frames each way through the whole path, then print the views.
    async with open_host(args.name, ncpus=args.ncpus) as host, open_host(
        "peer", ncpus=args.ncpus
    ) as peer:
        near, far = memory_pair("wire0")
        lo0 = await host.if_attach(Loopback())
        vnic0 = await host.if_attach(Vnic(near))
        pvnic0 = await peer.if_attach(Vnic(far))
        received = {host.name: 0, peer.name: 0}

        def count(name: str) -> object:
            def handler(pkt: object) -> None:
                received[name] += 1

            return handler

        host.netisr_register(_ETHERTYPE, count(host.name))
        peer.netisr_register(_ETHERTYPE, count(peer.name))
        for h, ifp in ((host, lo0), (host, vnic0), (peer, pvnic0)):
            await h.ifup(ifp)
        for i in range(args.frames):
            payload = _ETHERTYPE.to_bytes(2, "big") + i.to_bytes(4, "big") + bytes(42)
            for src, dst in ((vnic0, pvnic0), (pvnic0, vnic0)):
                while len(src.snd) >= src.snd.maxlen:
                    await trio.testing.wait_all_tasks_blocked()
                ifq_dispatch(src, dst.lladdr + src.lladdr + payload)
        ifq_dispatch(lo0, bytes(12) + _ETHERTYPE.to_bytes(2, "big") + bytes(46))
        # Let every kernel thread finish its work and reach its sleep.
        await trio.testing.wait_all_tasks_blocked()
        print(format_sysctl(host.sysctls.rows()))
        print(format_ifconfig(host.ifconfig()))
        print(format_netstat_i(host.netstat_i()))
        print(format_ps(host.ps()))
        print(format_vmstat_i(host.vmstat_i()))
        print(
            f"{args.frames} frames each way between {host.name}:vnic0 and {peer.name}:vnic0, "
            f"1 on lo0; protocol received {received[host.name]} on {host.name}, "
            f"{received[peer.name]} on {peer.name} (virtual time elapsed: "
            f"{trio.current_time() - host.boot_time:.3f} s)"
        )


#: ``trionet demo``: two subnets joined by a router, in IPv4 and IPv6; the
#: router's link to the server loses 2 % of the frames (each way) and
#: reorders 1 %.
DEMO_TOPOLOGY = """
[network]
seed = 1
description = "two dual-stack subnets joined by a router, one lossy link"

[hosts.client]
routes = [ { dest = "default", gateway = "10.0.1.1" }, { dest = "::/0", gateway = "fd00:1::1" } ]

[hosts.router]
forwarding = true

[hosts.server]
routes = [ { dest = "default", gateway = "10.0.2.1" }, { dest = "::/0", gateway = "fd00:2::1" } ]

[[links]]
a = "client"
a_address = ["10.0.1.2/24", "fd00:1::2/64"]
b = "router"
b_address = ["10.0.1.1/24", "fd00:1::1/64"]
delay = 0.001
bandwidth = 1e9

[[links]]
a = "router"
a_address = ["10.0.2.1/24", "fd00:2::1/64"]
b = "server"
b_address = ["10.0.2.2/24", "fd00:2::2/64"]
delay = 0.005
bandwidth = 100e6
loss = 0.02
reorder = 0.01

[[scenario]]
step = "ping"
from = "client"
to = "server"
count = 5

[[scenario]]
step = "tcp_transfer"
name = "2 MB over TCP across the lossy link"
from = "client"
to = "server"
bytes = "2MB"

[[scenario]]
step = "ping"
from = "client"
to = "fd00:2::2"
count = 3
min_received = 2

[[scenario]]
step = "udp_flood"
from = "server"
to = "client"
count = 200
size = 512
min_received = 180
"""


def _views(hosts: dict[str, Any]) -> str:
    """Every host's views (:func:`~trionet._record.host_views`) under a bar with its name."""
    return "\n".join(f"==== {name} " + "=" * max(0, 66 - len(name)) + "\n" + host_views(host) for name, host in hosts.items())


class _ProgressPrinter:
    """Progress of long steps on stderr: a rewritten line on a terminal,
    quarter marks otherwise."""

    def __init__(self) -> None:
        self._tty = sys.stderr.isatty()
        self._last: dict[int, int] = {}

    def __call__(self, p: Progress) -> None:
        pct = 100 * p.done // p.total if p.total else 100
        if self._tty:
            end = "\n" if p.done >= p.total else ""
            print(f"\r  [{p.index}] {p.label}: {p.done}/{p.total} {p.unit} ({pct}%)", end=end,
                  file=sys.stderr, flush=True)
            return
        mark = pct // 25
        if self._last.get(p.index) != mark:
            self._last[p.index] = mark
            print(f"  [{p.index}] {p.label}: {p.done}/{p.total} {p.unit} ({pct}%)", file=sys.stderr)


def _report(
    source: str,
    topology: Topology,
    seed: int,
    clock: _Clock,
    results: list[StepResult],
    as_json: bool,
) -> int:
    failed = [r for r in results if not r.ok]
    if as_json:
        doc: dict[str, Any] = {
            "topology": source,
            "description": topology.description,
            "seed": seed,
            "mode": clock.mode,
        }
        if clock.note:
            doc["mode_note"] = clock.note
        doc |= {"ok": not failed, "results": [r.to_json() for r in results]}
        print(json.dumps(doc, indent=2))
    else:
        command = "trionet demo" if source == "<demo>" else f"trionet run {source}"
        print(f"{command}: seed {seed}, {clock}")
        for r in results:
            print(r.summary())
        print(f"{len(results)} steps: {len(results) - len(failed)} ok, {len(failed)} failed")
    return 1 if failed else 0


def _result_from_json(d: dict[str, Any]) -> StepResult:
    return StepResult(
        index=d["index"], step=d["step"], label=d["label"], outcome=d["outcome"],
        timing=d["timing"], ran=d["ran"],
    )


####################################################################
# Which clock a run uses
####################################################################


@attrs.frozen
class _Clock:
    """The clock of a run: ``mode`` ("virtual time", "real time", "3
    processes, real time") and why, when it is not what one would guess."""

    mode: str
    note: str = ""

    def __str__(self) -> str:
        return f"{self.mode} ({self.note})" if self.note else self.mode

    @property
    def virtual(self) -> bool:
        return self.mode == "virtual time"


def _choose_clock(topology: Topology, args: argparse.Namespace) -> _Clock:
    # Virtual time unless a link's far end lives in real time (the kernel's
    # sockets, a TAP device: timings and timeouts against a clock that jumps
    # would mean nothing), or the flags say otherwise.
    if args.processes is not None:
        return _Clock(f"{args.processes} processes, real time")
    if args.node is not None or args.realtime:
        return _Clock("real time")
    real = [spec for spec in topology.links if spec.real_time]
    if not real:
        return _Clock("virtual time")
    links = ", ".join(f"{spec.kind} link {spec.name}" for spec in real[:3])
    links += f" and {len(real) - 3} more" if len(real) > 3 else ""
    one = len(real) == 1
    if args.virtual:
        runs = "still runs" if one else "still run"
        return _Clock("virtual time", f"forced by --virtual; {links} {runs} in real time, so timings mean nothing")
    has = "has its far end" if one else "have their far ends"
    return _Clock("real time", f"{links} {has} in real time; --virtual forces virtual time")


####################################################################
# Stopping: SIGINT and SIGTERM cancel the run, which then tears down
####################################################################


class _Stopped(Exception):
    """The run was cancelled by ``signum`` and has been torn down."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


async def _stoppable(fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    # Run fn(*args); SIGINT or SIGTERM cancels it, so its cleanup runs
    # (workers killed, devices and sockets closed), then raises _Stopped.
    # fn's own exception comes out as itself, not inside a group.
    signum: int | None = None
    run_scope = trio.CancelScope()
    result: Any = None

    async def watch(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        nonlocal signum
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            task_status.started()
            async for signum in signals:
                run_scope.cancel()
                return

    async with service_nursery() as nursery:
        await nursery.start(watch)
        with run_scope:
            result = await fn(*args)
    if run_scope.cancelled_caught:
        assert signum is not None
        raise _Stopped(signum)
    return result


def _only(exc: BaseException, types: type[BaseException] | tuple[type[BaseException], ...]) -> BaseException | None:
    # The first of the exceptions in ``exc`` (inside Trio's groups, however
    # nested) if all of them are ``types``, else None.
    if not isinstance(exc, BaseExceptionGroup):
        return exc if isinstance(exc, types) else None
    match, rest = exc.split(types)
    if rest is not None or match is None:
        return None
    leaf: BaseException = match
    while isinstance(leaf, BaseExceptionGroup):
        leaf = leaf.exceptions[0]
    return leaf


@attrs.define
class _Tally:
    """Where a run is, for the line printed when it is stopped.

    ``current`` is the index of the step running (None: still building);
    ``results`` the steps done, when this process knows them (a supervisor
    learns them only at the end: ``counted`` is False).
    """

    topology: Topology
    seed: int
    counted: bool = True
    results: list[StepResult] = attrs.field(factory=list)
    current: int | None = None

    def stopped(self, signum: int) -> str:
        head = f"trionet: stopped by {signal.Signals(signum).name}"
        steps = self.topology.scenario
        if self.current is None:
            return f"{head} while building the network (seed {self.seed})"
        if self.current >= len(steps):
            where = "after the last step"
        else:
            where = f"in step [{self.current}] {steps[self.current].label}"
        done = f"after {self.current} of {len(steps)} steps"
        if self.counted:
            ok = sum(1 for r in self.results if r.ok)
            done += f": {ok} ok, {len(self.results) - ok} failed"
        return f"{head} {where}, {done} (seed {self.seed})"


####################################################################
# trionet run / demo
####################################################################


async def _run_here(
    topology: Topology, args: argparse.Namespace, views: bool, tally: _Tally, title: str = "", clock: str = ""
) -> tuple[int, list[StepResult], str, dict[str, Any] | None]:
    # The scenario, here; with --report, recorded (the record is drawn
    # after the run, outside Trio).
    def on_result(result: StepResult) -> None:
        tally.results.append(result)
        tally.current = result.index + 1

    progress = None if args.json else _ProgressPrinter()
    async with build_network(topology, seed=args.seed, pcap_dir=args.pcap) as built:
        tally.current = 0
        record = None
        if getattr(args, "report", None):
            async with recording(built.net) as rec:
                results = await run_scenario(built, progress=progress, on_result=on_result)
            record = rec.to_record(title=title, clock=clock, results=results)
        else:
            results = await run_scenario(built, progress=progress, on_result=on_result)
        return built.seed, results, _views(built.hosts) if views else "", record


def _check_report_dir(path: str) -> str | None:
    # --report DIR: the drawing libraries are there and DIR can be written
    # in; the problem as one line, or None.
    try:
        import matplotlib
        import networkx
    except ImportError:
        return "--report needs matplotlib and networkx: pip install 'trionet[report]'"
    del matplotlib, networkx  # (only asked whether they are there)
    return _check_dir("--report", path)


def _check_trace_file(path: str) -> str | None:
    # --trace FILE: a file we can write (made now, written after the run).
    try:
        with open(path, "a"):
            pass
    except OSError as exc:
        return f"--trace {path}: cannot write the file: {exc.strerror}"
    return None


def _write_report(record: dict[str, Any], path: str) -> None:
    from ._report import render_report

    index = render_report(record, path)
    print(f"report: {index}", file=sys.stderr)


def _emit(msg: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()


class _SupervisorGone(Exception):
    """The supervisor's end of stdin closed, or it sent something unexpected."""


async def _run_worker(topology: Topology, args: argparse.Namespace) -> None:
    # One process of a split run (see trionet._nodes): JSON lines on stdout,
    # and with --supervised, barriers released by lines on stdin, which is
    # read all the time: EOF means the supervisor is gone, and the run stops
    # (rule 3 of trionet._nodes).
    nodes = [n for n in args.node.split(",") if n]
    gone: list[str] = []

    async def run(go: trio.MemoryReceiveChannel[bytes] | None) -> None:
        async def barrier(index: int) -> None:
            assert go is not None
            _emit({"event": "barrier", "index": index})
            line = await go.receive()
            if json.loads(line) != {"go": index}:
                gone.append(f"expected go {index} from the supervisor, got {line[:200]!r}")
                nursery.cancel_scope.cancel()
                await trio.lowlevel.checkpoint()

        def progress(p: Progress) -> None:
            _emit({"event": "progress", "index": p.index, "label": p.label, "done": p.done,
                   "total": p.total, "unit": p.unit})

        async with build_network(
            topology, seed=args.seed, pcap_dir=args.pcap, only_hosts=nodes, port_base=args.port_base
        ) as built:
            _emit({"event": "ready", "nodes": nodes})
            results = await run_scenario(
                built, progress=progress, barrier=barrier if go is not None else None
            )
            _emit({"event": "results", "results": [r.to_json() for r in results]})

    if not args.supervised:
        await run(None)
        return
    # One "go" at a time: the supervisor sends the next only after every
    # worker reached the next barrier.
    send, receive = trio.open_memory_channel[bytes](1)

    async def read_supervisor() -> None:
        buffer = b""
        while chunk := await stdin.receive_some(4096):
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                await send.send(line)
        gone.append("the supervisor went away (its end of stdin closed)")
        nursery.cancel_scope.cancel()

    async with trio.lowlevel.FdStream(os.dup(0)) as stdin, trio.open_nursery() as nursery:
        nursery.start_soon(read_supervisor)
        await run(receive)
        nursery.cancel_scope.cancel()
    if gone:
        raise _SupervisorGone(gone[0])


def _demo(args: argparse.Namespace) -> int:
    topology = loads_topology(DEMO_TOPOLOGY, filename="<demo>")
    args.pcap = None
    args.seed = args.seed if args.seed is not None else topology.seed
    clock = _Clock("real time") if args.realtime else _Clock("virtual time")
    problem = (_check_report_dir(args.report) if args.report is not None else None) or (
        _check_trace_file(args.trace) if args.trace is not None else None
    )
    if problem is not None:
        print(f"trionet: {problem}", file=sys.stderr)
        return 2
    if not args.json:
        print(f"trionet demo: {topology.description}")
        print("  client 10.0.1.2 --(1 ms)-- 10.0.1.1 router 10.0.2.1 --(5 ms, 2% loss)-- 10.0.2.2 server")
        print()
    tally = _Tally(topology, args.seed)
    try:
        seed, results, views, record = _trio_run(
            _run_here, topology, args, not args.json, tally, "trionet demo", clock.mode, virtual=clock.virtual,
            trace=args.trace,
        )  # fmt: skip
    except _Stopped as exc:
        print(tally.stopped(exc.signum), file=sys.stderr)
        return 128 + exc.signum
    if record is not None:
        _write_report(record, args.report)
    status = _report("<demo>", topology, seed, clock, results, args.json)
    if views:
        print()
        print(views)
    return status


def _trio_run(fn: Callable[..., Awaitable[Any]], *args: Any, virtual: bool, trace: str | None = None) -> Any:
    # trio.run with SIGINT/SIGTERM handling (_stoppable), in virtual time
    # (an autojumping MockClock) or real time; with ``trace``, the kernel
    # timeline is written there afterwards (stopped runs too).
    clock = None
    if virtual:
        clock = trio.testing.MockClock(autojump_threshold=0)
        # Tasks ready at the same instant in an order that replays.
        deterministic_scheduling(0)
    if trace is None:
        return trio.run(_stoppable, fn, *args, clock=clock)
    with record_trace() as timeline:
        try:
            return trio.run(_stoppable, fn, *args, clock=clock)
        finally:
            timeline.write(trace)
            print(f"trace: {trace} ({len(timeline)} events)", file=sys.stderr)


def _check_dir(flag: str, path: str) -> str | None:
    # --pcap DIR, --report DIR: a directory we can write in (made if
    # missing); the problem as one line, or None. (--pcap: each link's file
    # is checked as it is opened.)
    where = Path(path)
    try:
        where.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        return f"{flag} {path}: exists and is not a directory"
    except OSError as exc:
        return f"{flag} {path}: cannot make the directory: {exc.strerror}"
    try:
        with tempfile.TemporaryFile(dir=where):
            pass
    except OSError as exc:
        return f"{flag} {path}: cannot write in the directory: {exc.strerror}"
    return None


def _check_run_options(topology: Topology, args: argparse.Namespace) -> str | None:
    # Flags that depend on the file; the problem as one line, or None.
    last = args.port_base + 2 * len(topology.links) - 1
    if last > 65535:
        return (
            f"--port-base {args.port_base}: the file's {len(topology.links)} links need UDP ports"
            f" up to {last}; at most 65535"
        )
    if args.virtual and (args.node is not None or args.processes is not None):
        return "--virtual: a split run is in real time (its links are UDP between processes)"
    for flag, value in (("--report", args.report), ("--trace", args.trace)):
        if value is not None and (args.node is not None or args.processes is not None):
            return f"{flag}: a split run cannot be drawn in one picture; run it in one process"
    if args.trace is not None:
        problem = _check_trace_file(args.trace)
        if problem is not None:
            return problem
    if args.report is not None:
        problem = _check_report_dir(args.report)
        if problem is not None:
            return problem
    if args.pcap is not None:
        problem = _check_dir("--pcap", args.pcap)
        if problem is not None:
            return problem
        try:
            check_pcap_names(topology, args.pcap)
        except TopologyError as exc:
            return str(exc)
    return None


def _run(args: argparse.Namespace) -> int:
    try:
        topology = load_topology(args.file)
    except TopologyError as exc:
        print(f"trionet: {exc}", file=sys.stderr)
        return 2
    problem = _check_run_options(topology, args)
    if problem is not None:
        print(f"trionet: {problem}", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else (topology.seed or 0)
    args.seed = seed
    clock = _choose_clock(topology, args)
    tally = _Tally(topology, seed, counted=args.processes is None)
    try:
        if args.node is not None:
            try:
                _trio_run(_run_worker, topology, args, virtual=False)
            except _SupervisorGone as exc:
                print(f"trionet: {exc}", file=sys.stderr)
                return 1
            return 0
        if args.processes is not None:
            return _supervise(topology, args, clock, tally)
        _, results, views, record = _trio_run(
            _run_here, topology, args, args.views and not args.json, tally, f"trionet run {args.file}",
            clock.mode, virtual=clock.virtual, trace=args.trace,
        )  # fmt: skip
    except _Stopped as exc:
        print(tally.stopped(exc.signum), file=sys.stderr)
        return 128 + exc.signum
    if record is not None:
        _write_report(record, args.report)
    status = _report(args.file, topology, seed, clock, results, args.json)
    if views:
        print()
        print(views)
    return status


def _supervise(topology: Topology, args: argparse.Namespace, clock: _Clock, tally: _Tally) -> int:
    from ._nodes import supervise

    printer = _ProgressPrinter()

    def on_event(msg: dict[str, Any]) -> None:
        if msg.get("event") == "barrier":
            tally.current = msg["index"]
        elif not args.json:
            printer(Progress(index=msg["index"], step="", label=msg["label"],
                             done=msg["done"], total=msg["total"], unit=msg["unit"]))

    raw = _trio_run(
        lambda: supervise(
            args.file, topology, args.processes, seed=args.seed, pcap_dir=args.pcap,
            log_level=args.log_level, on_event=on_event,
        ),
        virtual=False,
    )
    results = [_result_from_json(d) for d in raw]
    return _report(args.file, topology, args.seed, clock, results, args.json)


####################################################################
# Arguments
####################################################################


class _Parser(argparse.ArgumentParser):
    """argparse with each mistake on one line (no usage block), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _int_arg(lo: int, hi: int, shown: str | None = None) -> Callable[[str], int]:
    # An int flag bounded as the file bounds the same value.
    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            value = None
        if value is None or not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be an int from {lo} to {shown or hi}, not {text!r}")
        return value

    return parse


#: The bounds of values a topology file bounds too (`[network] seed`, `ncpus`).
_SEED = _int_arg(0, 2**64 - 1, "2**64 - 1 (as [network] seed)")
_NCPUS = _int_arg(1, 64, "64 (as a host's ncpus)")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``trionet`` console script.

    Exit status: 0 all steps ok; 1 a step failed; 2 a mistake in the file or
    the flags (one line on stderr naming the file, line and key, or the
    flag); 128 + the signal's number when SIGINT (130) or SIGTERM (143)
    stopped the run.
    """
    parser = _Parser(prog="trionet", description="An async-first network stack framework on Trio.")
    parser.add_argument("--version", action="version", version=f"trionet {__version__}")
    parser.add_argument(
        "--log-level", default="warning", choices=["debug", "info", "warning", "error"]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    kern = sub.add_parser(
        "kern",
        help="boot a host with lo0 and a vnic wired to a peer, send frames, and print its "
        "sysctl -a, ifconfig, netstat -i, ps and vmstat -i views",
    )
    kern.add_argument("--name", default="host0")
    kern.add_argument("--ncpus", type=_NCPUS, default=2, help="CPUs of each host (1..64)")
    kern.add_argument("--frames", type=_int_arg(0, 100_000), default=1000, help="frames each way (0..100000)")
    demo = sub.add_parser(
        "demo",
        help="run a built-in topology (two subnets, a router, one lossy link) in virtual time: "
        "ping, TCP and UDP, then print every host's ifconfig, netstat, vmstat -i and ps",
    )
    demo.add_argument("--seed", type=_SEED, help="the network's seed (default 1)")
    demo.add_argument("--realtime", action="store_true", help="run on the real clock")
    demo.add_argument("--json", action="store_true", help="print the results as JSON")
    demo.add_argument("--report", metavar="DIR", help="draw the run into DIR/index.html (needs trionet[report])")
    demo.add_argument("--trace", metavar="FILE.json", help="write the kernel timeline (Chrome trace format, for Perfetto)")
    run = sub.add_parser("run", help="run a topology file (TOML) and its scenario")
    run.add_argument("file")
    run.add_argument("--seed", type=_SEED, help="override the file's seed (0 .. 2**64 - 1)")
    run.add_argument("--pcap", metavar="DIR", help="record every link to DIR/<link>.pcap")
    run.add_argument("--log", choices=["console", "json"], help="log renderer (default: console on a terminal)")
    clock = run.add_mutually_exclusive_group()
    clock.add_argument("--realtime", action="store_true",
                       help="run on the real clock (default: virtual time, unless a link is udp or tap)")
    clock.add_argument("--virtual", action="store_true",
                       help="run in virtual time even with udp or tap links (their far ends stay in real time)")
    run.add_argument("--json", action="store_true", help="print the results as JSON")
    run.add_argument("--views", action="store_true", help="print every host's views at the end")
    run.add_argument("--report", metavar="DIR", help="draw the run into DIR/index.html (needs trionet[report])")
    run.add_argument("--trace", metavar="FILE.json", help="write the kernel timeline (Chrome trace format, for Perfetto)")
    split = run.add_mutually_exclusive_group()
    split.add_argument("--node", metavar="NAME[,NAME]", help="run only these nodes (real time); "
                       "links to the others become UDP wires on 127.0.0.1")
    split.add_argument("--processes", type=_int_arg(1, 1024), metavar="N",
                       help="run the topology in N processes on this machine (real time)")
    run.add_argument("--port-base", type=_int_arg(1, 65535), default=DEFAULT_PORT_BASE, help=argparse.SUPPRESS)
    run.add_argument("--supervised", action="store_true", help=argparse.SUPPRESS)
    try:
        args = parser.parse_args(argv)
        _configure_logging(args.log_level, getattr(args, "log", None))
        if args.command == "kern":
            trio.run(_kern, args, clock=trio.testing.MockClock(autojump_threshold=0))
        elif args.command == "demo":
            return _demo(args)
        elif args.command == "run":
            return _run(args)
        return 0
    except KeyboardInterrupt:
        # Before the run's own handler was installed, or in `kern`.
        print("trionet: stopped by SIGINT", file=sys.stderr)
        return 128 + signal.SIGINT
    except BaseExceptionGroup as group:
        if _only(group, KeyboardInterrupt) is not None:
            print("trionet: stopped by SIGINT", file=sys.stderr)
            return 128 + signal.SIGINT
        mistake = _only(group, (TopologyError, WorkerError))
        if mistake is None:
            raise
        print(f"trionet: {mistake}", file=sys.stderr)
        return 2
    except (TopologyError, WorkerError) as exc:
        print(f"trionet: {exc}", file=sys.stderr)
        return 2
