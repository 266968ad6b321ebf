"""Benchmark: what the report's and the trace's hooks cost a run that asks for neither.

Usage::

    python3 benchmarks/bench_run_overhead.py --before PYTHON [--rounds N] [--file TOPOLOGY]

What is measured
================

The wall time of one topology's scenario (default ``examples/lossy_tcp.toml``:
two 2 MB TCP transfers over a lossy 10 Mbit/s link, in virtual time), from the
first step to the last, in a fresh process, the import and the build not
counted. Contenders, in the same run, alternating, after one unrecorded
warm-up round each:

- *before*: the code without the hooks, run by ``--before PYTHON`` (the
  interpreter of an environment where that version of trionet is installed;
  make one with ``git worktree add /tmp/before COMMIT && python3 -m venv
  /tmp/before/.venv && /tmp/before/.venv/bin/pip install -e /tmp/before``);
- *after*: this checkout, no report, no trace (the hooks are there, idle);
- *recording*: this checkout with ``trionet.recording`` around the scenario
  (what ``--report`` costs before drawing); and *trace*: with the kernel
  trace recording too (``--trace``), when this checkout has it.

The figure of merit is after / before: the hooks must cost under 3 % when no
report or trace is asked for (issue 19). The table gives the median and
min..max over rounds. Every run checks that the scenario passed.

Network safety: in-memory wires only.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Runs the scenario in this process and prints {"seconds": ..., "ok": ...}.
DRIVER = r"""
import json, logging, sys, time
import structlog, trio, trio.testing
structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
from trionet._build import build_network
from trionet._scenario import run_scenario
from trionet._topology import load_topology

mode = sys.argv[2]

async def main():
    topo = load_topology(sys.argv[1])
    async with build_network(topo) as built:
        start = time.perf_counter()
        if mode == "plain":
            results = await run_scenario(built)
        else:
            import trionet
            from contextlib import ExitStack
            with ExitStack() as stack:
                if mode == "trace":
                    from trionet._kern import _ktrace
                    stack.enter_context(_ktrace.recording())
                async with trionet.recording(built.net):
                    results = await run_scenario(built)
        seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "ok": all(r.ok for r in results)}))

trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
"""


def run_once(python: str, topology: str, mode: str) -> float:
    # cwd "/": each interpreter imports its own installed trionet, never a
    # checkout that happens to be the current directory.
    out = subprocess.run(
        [python, "-c", DRIVER, str(Path(topology).resolve()), mode],
        capture_output=True, text=True, timeout=600, check=True, cwd="/",
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    if not result["ok"]:
        raise SystemExit(f"the scenario failed ({python}, {mode})")
    return float(result["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", required=True, metavar="PYTHON", help="the interpreter of the code before")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--file", default=str(ROOT / "examples" / "lossy_tcp.toml"))
    args = parser.parse_args()
    has_trace = (ROOT / "trionet" / "_kern" / "_ktrace.py").exists()
    contenders = [("before", args.before, "plain"), ("after", sys.executable, "plain"),
                  ("recording", sys.executable, "record")]  # fmt: skip
    if has_trace:
        contenders.append(("trace", sys.executable, "trace"))
    times: dict[str, list[float]] = {name: [] for name, _, _ in contenders}
    for name, python, mode in contenders:
        run_once(python, args.file, mode)  # warm-up (page cache, .pyc files)
    for round_ in range(args.rounds):
        order = contenders if round_ % 2 == 0 else contenders[::-1]
        for name, python, mode in order:
            times[name].append(run_once(python, args.file, mode))
    print(f"scenario of {Path(args.file).name}, {args.rounds} rounds, wall seconds from the first step to the last")
    print(f"{'contender':<12} {'median':>8} {'min':>8} {'max':>8}   ratio to before (min..max per round)")
    before = times["before"]
    for name, _, _ in contenders:
        t = times[name]
        ratios = [a / b for a, b in zip(t, before, strict=True)]
        print(
            f"{name:<12} {statistics.median(t):8.3f} {min(t):8.3f} {max(t):8.3f}   "
            f"{statistics.median(ratios):.3f} ({min(ratios):.3f}..{max(ratios):.3f})"
        )


if __name__ == "__main__":
    main()
