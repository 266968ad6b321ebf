"""One topology over several processes: ``trionet run FILE --processes N``.

The supervisor splits the topology's nodes (hosts and switches, in file
order, round-robin) into ``N`` groups and starts one ``trionet run FILE
--node A,B --supervised`` process per group on this machine. Each builds its
nodes; a link to a node in another process becomes a pair of UDP wires on
127.0.0.1 (ports from a shared ``--port-base``), so frames cross processes
through the kernel's loopback, and nothing else does.

Worker protocol (JSON lines; the worker's stdout, the supervisor's writes to
its stdin):

1. worker: ``{"event": "ready"}`` once its nodes are built;
2. worker: ``{"event": "barrier", "index": i}`` before step ``i`` (and with
   ``i == len(steps)`` at the end); it waits for ``{"go": i}``, which the
   supervisor sends once every worker has reached barrier ``i``: steps keep
   their order across processes;
3. worker: ``{"event": "progress", ...}`` for long steps;
4. worker: ``{"event": "results", "results": [...]}`` and it exits.

A step runs in the process of its actor; the supervisor merges results by
index. The run is in real time (frames cross real sockets), so only the
results' timing may differ from a single-process run.

Bounds: the whole run is bounded by the steps' timeouts plus a margin
(:data:`SETUP_TIMEOUT` per phase); a worker that exits early, prints
garbage or misses the deadline ends the run with an error, and every worker
is killed on the way out.

No orphans: a worker dies with its supervisor however the supervisor ends.

1. On the way out (normally, by an error, or cancelled by SIGINT/SIGTERM,
   which the command turns into a cancellation) the supervisor kills every
   worker and waits for it.
2. If the supervisor itself is killed (SIGKILL), Linux sends each worker
   SIGKILL (``prctl(PR_SET_PDEATHSIG)``, set in the child before it execs).
   That signal follows the *thread* that forked the worker, so workers are
   forked from the thread running the supervisor (a plain
   :class:`subprocess.Popen`), not from a worker thread as
   :func:`trio.lowlevel.open_process` does: Trio retires idle worker
   threads after 10 s, which would kill the workers with them.
3. A worker reads its stdin all the time, not only at barriers: EOF (the
   supervisor's end of the pipe closed, on any platform) makes it stop.

Workers run in a session of their own, so a terminal's Ctrl-C reaches the
supervisor only, which stops them (rule 1).
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

import trio

from ._build import check_split
from ._topology import Topology

__all__ = ["SETUP_TIMEOUT", "WorkerError", "free_port_base", "groups", "supervise"]

#: Seconds a worker may take to build its nodes, and the margin added to the
#: scenario's timeouts for the whole run.
SETUP_TIMEOUT = 60.0


class WorkerError(RuntimeError):
    """A worker process failed (its stderr tail is in the message)."""


def groups(topology: Topology, n: int) -> list[list[str]]:
    """The nodes in ``n`` groups, round-robin in file order (no empty group)."""
    nodes = list(topology.nodes)
    n = max(1, min(n, len(nodes)))
    out: list[list[str]] = [[] for _ in range(n)]
    for i, name in enumerate(nodes):
        out[i % n].append(name)
    return out


def free_port_base(count: int, *, start: int = 40000, stop: int = 60000) -> int:
    """A base port with ``count`` free UDP ports after it on 127.0.0.1.

    Checked by binding them; another program could still take one before
    the workers do (they then fail with ``EADDRINUSE``, reported).
    """
    step = max(count, 1)
    base = start + (os.getpid() * 7919) % (stop - start - step)
    for _ in range(64):
        socks: list[socket.socket] = []
        try:
            for port in range(base, base + count):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            base = start + (base - start + step + 1) % (stop - start - step)
        finally:
            for s in socks:
                s.close()
    raise WorkerError("no free range of UDP ports on 127.0.0.1")


#: ``prctl`` option: the signal a process gets when its parent thread dies.
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> Callable[[], None] | None:
    # A preexec_fn that asks Linux for SIGKILL when the forking thread dies,
    # then checks that the parent is still there (it may have died between
    # fork and prctl). Everything is looked up before the fork.
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return preexec


class _Worker:
    """One worker process: its pipes as Trio streams, and its exit."""

    def __init__(self, nodes: list[str], argv: Sequence[str]) -> None:
        # Forked from this thread (see rule 2 of the module docstring); the
        # fork and exec block the Trio loop for a few milliseconds per worker.
        self.nodes = nodes
        self.buffer = b""
        self.results: list[dict[str, Any]] | None = None
        self.stderr = bytearray()
        ours: list[int] = []  # stdin's write end, stdout's and stderr's read ends
        theirs: list[int] = []
        try:
            for child_reads in (True, False, False):
                r, w = os.pipe()
                ours.append(w if child_reads else r)
                theirs.append(r if child_reads else w)
            self.popen = subprocess.Popen(
                argv,
                stdin=theirs[0],
                stdout=theirs[1],
                stderr=theirs[2],
                preexec_fn=_die_with_parent(),
                start_new_session=True,
            )
        except BaseException:
            for fd in ours:
                os.close(fd)
            raise
        finally:
            for fd in theirs:
                os.close(fd)
        self.stdin = trio.lowlevel.FdStream(ours[0])
        self.stdout = trio.lowlevel.FdStream(ours[1])
        self.stderr_stream = trio.lowlevel.FdStream(ours[2])

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    async def line(self) -> dict[str, Any]:
        while b"\n" not in self.buffer:
            chunk = await self.stdout.receive_some(65536)
            if not chunk:
                await self.wait()
                raise WorkerError(f"worker {','.join(self.nodes)} exited: {self.tail()}")
            self.buffer += chunk
        raw, self.buffer = self.buffer.split(b"\n", 1)
        try:
            msg = json.loads(raw)
        except ValueError:
            raise WorkerError(f"worker {','.join(self.nodes)} printed {raw[:200]!r}") from None
        if not isinstance(msg, dict):
            raise WorkerError(f"worker {','.join(self.nodes)} printed {raw[:200]!r}")
        return msg

    async def send(self, msg: dict[str, Any]) -> None:
        await self.stdin.send_all(json.dumps(msg).encode() + b"\n")

    async def drain_stderr(self) -> None:
        while chunk := await self.stderr_stream.receive_some(65536):
            self.stderr += chunk
            del self.stderr[:-8192]

    async def wait(self) -> int:
        """Wait for the worker to exit; its status.

        Cancellation: nothing is left behind (the process is not reaped yet).
        """
        if self.popen.poll() is not None:
            await trio.lowlevel.checkpoint()
            return self.popen.returncode
        try:
            pidfd = os.pidfd_open(self.popen.pid)
        except (AttributeError, OSError):
            # No pidfd (old kernel or not Linux): poll.
            while self.popen.poll() is None:
                await trio.sleep(0.05)
            return self.popen.returncode
        try:
            await trio.lowlevel.wait_readable(pidfd)
        finally:
            trio.lowlevel.notify_closing(pidfd)
            os.close(pidfd)
        return self.popen.wait()

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()

    async def aclose(self) -> None:
        for stream in (self.stdin, self.stdout, self.stderr_stream):
            await stream.aclose()

    def tail(self) -> str:
        text = self.stderr.decode(errors="replace").strip().splitlines()
        return " | ".join(text[-5:]) if text else f"exit status {self.popen.returncode}"


async def supervise(
    path: str,
    topology: Topology,
    n: int,
    *,
    seed: int,
    pcap_dir: str | None,
    log_level: str,
    on_event: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Run ``topology`` in ``n`` worker processes; return the merged results
    (as :meth:`StepResult.to_json` dicts, by index).

    ``on_event`` gets the workers' ``progress`` messages, and a
    ``{"event": "barrier", "index": i}`` when every worker has reached
    barrier ``i`` (step ``i`` starts).

    Raises:
        TopologyError: a link between two processes that UDP cannot carry.
        WorkerError: a worker failed or the run missed its deadline.

    Cancellation: every worker is killed and waited for.
    """
    parts = groups(topology, n)
    check_split(topology, parts)
    base = free_port_base(2 * len(topology.links))
    steps = topology.scenario
    budget = SETUP_TIMEOUT * 2 + sum(getattr(s, "timeout", 60.0) for s in steps)
    argv_common: Sequence[str] = [
        sys.executable, "-m", "trionet", "--log-level", log_level, "run", path,
        "--seed", str(seed), "--port-base", str(base), "--supervised",
    ]
    workers: list[_Worker] = []
    try:
        with trio.fail_after(budget):
            async with trio.open_nursery() as nursery:
                for nodes in parts:
                    argv = [*argv_common, "--node", ",".join(nodes)]
                    if pcap_dir is not None:
                        argv += ["--pcap", pcap_dir]
                    await trio.lowlevel.checkpoint()
                    worker = _Worker(nodes, argv)
                    workers.append(worker)
                    nursery.start_soon(worker.drain_stderr)
                await _drive(workers, len(steps), on_event)
    except trio.TooSlowError:
        raise WorkerError(f"the run took longer than {budget:.0f} s") from None
    finally:
        with trio.CancelScope(shield=True):
            for worker in workers:
                worker.kill()
                await worker.wait()
                await worker.aclose()
    merged: dict[int, dict[str, Any]] = {}
    for worker in workers:
        for result in worker.results or ():
            if result.get("ran"):
                merged[result["index"]] = result
    missing = [i for i in range(len(steps)) if i not in merged]
    if missing:
        raise WorkerError(f"no process ran steps {missing}")
    return [merged[i] for i in range(len(steps))]


async def _drive(
    workers: list[_Worker], nsteps: int, on_event: Callable[[dict[str, Any]], None] | None
) -> None:
    async def expect(worker: _Worker, event: str, index: int | None = None) -> None:
        while True:
            msg = await worker.line()
            if msg.get("event") == "progress":
                if on_event is not None:
                    on_event(msg)
                continue
            if msg.get("event") == "error":
                raise WorkerError(f"worker {','.join(worker.nodes)}: {msg.get('message')}")
            if msg.get("event") != event or (index is not None and msg.get("index") != index):
                raise WorkerError(f"worker {','.join(worker.nodes)}: expected {event}, got {msg}")
            if event == "results":
                worker.results = msg["results"]
            return

    async def all_reach(event: str, index: int | None = None) -> None:
        async with trio.open_nursery() as nursery:
            for worker in workers:
                nursery.start_soon(expect, worker, event, index)

    await all_reach("ready")
    for i in range(nsteps + 1):
        await all_reach("barrier", i)
        if on_event is not None:
            on_event({"event": "barrier", "index": i})
        for worker in workers:
            await worker.send({"go": i})
    await all_reach("results")
    for worker in workers:
        if await worker.wait():
            raise WorkerError(f"worker {','.join(worker.nodes)} failed: {worker.tail()}")
