"""The ``trionet`` command.

Only this module (and examples) configure logging: a console renderer on a
terminal, JSON lines otherwise.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any

import structlog
import trio
import trio.testing

from . import (
    __version__,
    format_ifconfig,
    format_netstat,
    format_netstat_i,
    format_netstat_r,
    format_ps,
    format_sysctl,
    format_vmstat_i,
    open_host,
)
from ._scenario import Progress, StepResult, run_scenario
from ._build import build_network
from ._topology import Topology, TopologyError, load_topology, loads_topology
from .drivers.lo import Loopback
from .drivers.vnic import Vnic
from .lowlevel import ifq_dispatch
from .wires import memory_pair

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


#: ``trionet demo``: two subnets joined by a router; the router's link to
#: the server loses 2 % of the frames (each way) and reorders 1 %.
DEMO_TOPOLOGY = """
[network]
seed = 1
description = "two subnets joined by a router, one lossy link"

[hosts.client]
routes = [ { dest = "default", gateway = "10.0.1.1" } ]

[hosts.router]
forwarding = true

[hosts.server]
routes = [ { dest = "default", gateway = "10.0.2.1" } ]

[[links]]
a = "client"
a_address = "10.0.1.2/24"
b = "router"
b_address = "10.0.1.1/24"
delay = 0.001
bandwidth = 1e9

[[links]]
a = "router"
a_address = "10.0.2.1/24"
b = "server"
b_address = "10.0.2.2/24"
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
step = "udp_flood"
from = "server"
to = "client"
count = 200
size = 512
min_received = 180
"""


def _views(hosts: dict[str, Any]) -> str:
    """``ifconfig``, ``netstat -i``, ``netstat -rn``, ``netstat -an``,
    ``vmstat -i`` and ``ps`` of every host, in the BSD tools' layouts."""
    out = []
    for name, host in hosts.items():
        bar = f"==== {name} " + "=" * max(0, 66 - len(name))
        out += [
            bar,
            f"$ ifconfig\n{format_ifconfig(host.ifconfig()).rstrip()}\n",
            f"$ netstat -i\n{format_netstat_i(host.netstat_i()).rstrip()}\n",
            f"$ netstat -rn\n{format_netstat_r(host.netstat_r()).rstrip()}\n",
            f"$ netstat -an -p tcp\n{format_netstat(host.netstat()).rstrip()}\n",
            f"$ vmstat -i\n{format_vmstat_i(host.vmstat_i()).rstrip()}\n",
            f"$ ps\n{format_ps(host.ps()).rstrip()}\n",
        ]
    return "\n".join(out)


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
    source: str, topology: Topology, seed: int, mode: str, results: list[StepResult], as_json: bool
) -> int:
    failed = [r for r in results if not r.ok]
    if as_json:
        print(json.dumps({
            "topology": source,
            "description": topology.description,
            "seed": seed,
            "mode": mode,
            "ok": not failed,
            "results": [r.to_json() for r in results],
        }, indent=2))
    else:
        command = "trionet demo" if source == "<demo>" else f"trionet run {source}"
        print(f"{command}: seed {seed}, {mode}")
        for r in results:
            print(r.summary())
        print(f"{len(results)} steps: {len(results) - len(failed)} ok, {len(failed)} failed")
    return 1 if failed else 0


def _result_from_json(d: dict[str, Any]) -> StepResult:
    return StepResult(
        index=d["index"], step=d["step"], label=d["label"], outcome=d["outcome"],
        timing=d["timing"], ran=d["ran"],
    )


async def _run_here(
    topology: Topology, args: argparse.Namespace, views: bool
) -> tuple[int, list[StepResult], str]:
    async with build_network(topology, seed=args.seed, pcap_dir=args.pcap) as built:
        results = await run_scenario(built, progress=None if args.json else _ProgressPrinter())
        return built.seed, results, _views(built.hosts) if views else ""


def _emit(msg: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()


async def _run_worker(topology: Topology, args: argparse.Namespace) -> None:
    # One process of a split run (see trionet._nodes): JSON lines on stdout,
    # and with --supervised, barriers released by lines on stdin.
    nodes = [n for n in args.node.split(",") if n]
    stdin = trio.lowlevel.FdStream(os.dup(0)) if args.supervised else None
    buffer = b""

    async def barrier(index: int) -> None:
        nonlocal buffer
        assert stdin is not None
        _emit({"event": "barrier", "index": index})
        while b"\n" not in buffer:
            chunk = await stdin.receive_some(4096)
            if not chunk:
                raise SystemExit("trionet: the supervisor went away")
            buffer += chunk
        line, buffer = buffer.split(b"\n", 1)
        if json.loads(line) != {"go": index}:
            raise SystemExit(f"trionet: expected go {index}, got {line!r}")

    def progress(p: Progress) -> None:
        _emit({"event": "progress", "index": p.index, "label": p.label, "done": p.done,
               "total": p.total, "unit": p.unit})

    async with build_network(
        topology, seed=args.seed, pcap_dir=args.pcap, only_hosts=nodes, port_base=args.port_base
    ) as built:
        _emit({"event": "ready", "nodes": nodes})
        results = await run_scenario(
            built, progress=progress, barrier=barrier if args.supervised else None
        )
        _emit({"event": "results", "results": [r.to_json() for r in results]})


def _demo(args: argparse.Namespace) -> int:
    topology = loads_topology(DEMO_TOPOLOGY, filename="<demo>")
    args.pcap = None
    args.seed = args.seed if args.seed is not None else topology.seed
    clock = None if args.realtime else trio.testing.MockClock(autojump_threshold=0)
    if not args.json:
        print(f"trionet demo: {topology.description}")
        print("  client 10.0.1.2 --(1 ms)-- 10.0.1.1 router 10.0.2.1 --(5 ms, 2% loss)-- 10.0.2.2 server")
        print()
    seed, results, views = trio.run(_run_here, topology, args, not args.json, clock=clock)
    mode = "real time" if args.realtime else "virtual time"
    status = _report("<demo>", topology, seed, mode, results, args.json)
    if views:
        print()
        print(views)
    return status


def _run(args: argparse.Namespace) -> int:
    try:
        topology = load_topology(args.file)
    except TopologyError as exc:
        print(f"trionet: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"trionet: {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else (topology.seed or 0)
    args.seed = seed
    try:
        if args.node is not None:
            trio.run(_run_worker, topology, args)
            return 0
        if args.processes is not None:
            from ._nodes import WorkerError, supervise

            printer = _ProgressPrinter()

            def on_event(msg: dict[str, Any]) -> None:
                if not args.json:
                    printer(Progress(index=msg["index"], step="", label=msg["label"],
                                     done=msg["done"], total=msg["total"], unit=msg["unit"]))

            try:
                raw = trio.run(lambda: supervise(
                    args.file, topology, args.processes, seed=seed, pcap_dir=args.pcap,
                    log_level=args.log_level, on_event=on_event,
                ))
            except WorkerError as exc:
                print(f"trionet: {exc}", file=sys.stderr)
                return 2
            results = [_result_from_json(d) for d in raw]
            mode = f"{args.processes} processes, real time"
            return _report(args.file, topology, seed, mode, results, args.json)
        clock = None if args.realtime else trio.testing.MockClock(autojump_threshold=0)
        _, results, views = trio.run(
            _run_here, topology, args, args.views and not args.json, clock=clock
        )
    except TopologyError as exc:
        print(f"trionet: {exc}", file=sys.stderr)
        return 2
    mode = "real time" if args.realtime else "virtual time"
    status = _report(args.file, topology, seed, mode, results, args.json)
    if views:
        print()
        print(views)
    return status


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``trionet`` console script."""
    parser = argparse.ArgumentParser(
        prog="trionet", description="An async-first network stack framework on Trio."
    )
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
    kern.add_argument("--ncpus", type=int, default=2)
    kern.add_argument("--frames", type=int, default=1000, help="frames each way (0..100000)")
    demo = sub.add_parser(
        "demo",
        help="run a built-in topology (two subnets, a router, one lossy link) in virtual time: "
        "ping, TCP and UDP, then print every host's ifconfig, netstat, vmstat -i and ps",
    )
    demo.add_argument("--seed", type=int, help="the network's seed (default 1)")
    demo.add_argument("--realtime", action="store_true", help="run on the real clock")
    demo.add_argument("--json", action="store_true", help="print the results as JSON")
    run = sub.add_parser("run", help="run a topology file (TOML) and its scenario")
    run.add_argument("file")
    run.add_argument("--seed", type=int, help="override the file's seed")
    run.add_argument("--pcap", metavar="DIR", help="record every link to DIR/<link>.pcap")
    run.add_argument("--log", choices=["console", "json"], help="log renderer (default: console on a terminal)")
    run.add_argument("--realtime", action="store_true", help="run on the real clock (default: virtual time)")
    run.add_argument("--json", action="store_true", help="print the results as JSON")
    run.add_argument("--views", action="store_true", help="print every host's views at the end")
    split = run.add_mutually_exclusive_group()
    split.add_argument("--node", metavar="NAME[,NAME]", help="run only these nodes (real time); "
                       "links to the others become UDP wires on 127.0.0.1")
    split.add_argument("--processes", type=int, metavar="N",
                       help="run the topology in N processes on this machine (real time)")
    run.add_argument("--port-base", type=int, default=47000, help=argparse.SUPPRESS)
    run.add_argument("--supervised", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    _configure_logging(args.log_level, getattr(args, "log", None))
    if args.command == "kern":
        if args.ncpus < 1:
            parser.error("--ncpus must be at least 1")
        if not 0 <= args.frames <= 100_000:
            parser.error("--frames must be in 0..100000")
        trio.run(_kern, args, clock=trio.testing.MockClock(autojump_threshold=0))
    elif args.command == "demo":
        return _demo(args)
    elif args.command == "run":
        if args.processes is not None and args.processes < 1:
            parser.error("--processes must be at least 1")
        if args.node is not None or args.processes is not None:
            args.realtime = True
        return _run(args)
    return 0
