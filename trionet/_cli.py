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

from . import __version__, format_ps, format_sysctl, format_vmstat_i, open_host


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
    async with open_host(args.name, ncpus=args.ncpus) as host:
        # Let every kernel thread reach its first sleep before we look.
        await trio.testing.wait_all_tasks_blocked()
        print(format_sysctl(host.sysctls.rows()))
        print(format_ps(host.ps()))
        print(format_vmstat_i(host.vmstat_i()), end="")


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
        "kern", help="boot a host and print its sysctl -a, ps and vmstat -i views"
    )
    kern.add_argument("--name", default="host0")
    kern.add_argument("--ncpus", type=int, default=2)
    args = parser.parse_args(argv)
    _configure_logging(args.log_level)
    if args.command == "kern":
        if args.ncpus < 1:
            parser.error("--ncpus must be at least 1")
        trio.run(_kern, args, clock=trio.testing.MockClock(autojump_threshold=0))
    return 0
