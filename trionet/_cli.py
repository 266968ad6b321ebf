"""The ``trionet`` command.

Only this module (and examples) configure logging: a console renderer on a
terminal, JSON lines otherwise.
"""

from __future__ import annotations

import argparse
import logging
import sys

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
from .drivers.lo import Loopback
from .drivers.vnic import Vnic
from .lowlevel import ifq_dispatch
from .wires import memory_pair

#: A local experimental EtherType for the frames ``trionet kern`` sends.
_ETHERTYPE = 0x88B5


def _configure_logging(level: str) -> None:
    renderer: structlog.typing.Processor
    if sys.stderr.isatty():
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
    args = parser.parse_args(argv)
    _configure_logging(args.log_level)
    if args.command == "kern":
        if args.ncpus < 1:
            parser.error("--ncpus must be at least 1")
        if not 0 <= args.frames <= 100_000:
            parser.error("--frames must be in 0..100000")
        trio.run(_kern, args, clock=trio.testing.MockClock(autojump_threshold=0))
    return 0
