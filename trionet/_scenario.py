"""Running a topology's scenario: its steps in order, one result each.

::

    topo = load_topology("router.toml")
    async with build_network(topo, seed=1) as built:
        results = await run_scenario(built, progress=print)
    for r in results:
        print(r.summary())

Rules:

1. Steps run in file order, each bounded by its ``timeout`` (Trio time, so
   under :class:`trio.testing.MockClock` a long timeout costs nothing).
2. A step that does not get what it expects (a ping without replies, a
   transfer whose digest differs, a timeout, an error such as
   ``ENETUNREACH``) is a result with ``ok=False`` and an ``error``; the
   next step runs anyway. Only bugs propagate.
3. A result's :attr:`~StepResult.outcome` holds what a rerun with the same
   seed must reproduce (counts, bytes, digests, ``ok``, ``error``), and its
   :attr:`~StepResult.timing` what depends on time (round trips, seconds,
   rates, retransmissions, which follow timers). Compare runs (one process
   against several, real time against virtual) on outcomes only.
4. The receiving side of ``udp_flood`` and ``tcp_transfer`` steps (a UDP
   sink, a TCP server that hashes what it reads and answers with the
   SHA-256 and the byte count) is started on its host for every such step
   before the first step runs, and stopped after the last. The server's
   answer travels back over the connection, so the sender checks the
   digest whether or not the server is in its process; a UDP sink in
   another process reports its count over TCP on the same port.
5. Split runs (``build_network(only_hosts=...)``): a step runs in the
   process of its actor (``from``, ``host``, or either end of ``link``;
   ``wait`` runs everywhere), and elsewhere gives a result with
   ``ran=False``. ``barrier(i)``, if given, is awaited before step ``i``
   and once more (``i == len(steps)``) before the services stop: a
   supervisor makes it a barrier across processes, so steps keep their
   order. Merge the results per index from the processes where they ran.
"""

from __future__ import annotations

import errno
import hashlib
import math
import random
import types
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import attrs
import structlog
import trio

from ._exceptions import NetError, TrionetError
from ._network import derive_seed
from ._build import BuiltNetwork
from ._topology import (
    ImpairStep,
    LinkStep,
    PingStep,
    Step,
    SysctlStep,
    TcpTransferStep,
    UdpFloodStep,
    WaitStep,
)

__all__ = ["Progress", "StepResult", "run_scenario"]

log = structlog.get_logger(__name__)

#: Bytes per ``send_all`` of a transfer, and per progress report at most.
CHUNK = 64 * 1024
#: Progress reports per long step (every 5%).
PROGRESS_STEPS = 20
_REPORT = 40  # sha256 digest + 8-byte count


def _frozen_dict(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return types.MappingProxyType(dict(value))


@attrs.frozen
class Progress:
    """A long step's progress: ``done`` of ``total`` ``unit`` (``"bytes"``, ``"datagrams"``)."""

    index: int
    step: str
    label: str
    done: int
    total: int
    unit: str


@attrs.frozen(kw_only=True)
class StepResult:
    """What one step did.

    Attributes:
        index: the step's position in the scenario.
        step: its kind (``"ping"``...).
        label: its name, or a description (``"ping h1 -> 10.0.3.2"``).
        outcome: deterministic results: counts, bytes, digests, plus
            ``ok`` and (when not ok) ``error``. Read-only.
        timing: what depends on time: ``seconds``, round trips,
            rates, retransmissions. Read-only.
        ran: False for a step that ran in another process (split runs).

    Equality compares everything but ``timing``, so two runs agree when
    their result lists are equal.
    """

    index: int
    step: str
    label: str
    outcome: Mapping[str, Any] = attrs.field(converter=_frozen_dict, factory=dict)
    timing: Mapping[str, Any] = attrs.field(converter=_frozen_dict, factory=dict, eq=False)
    ran: bool = True

    @property
    def ok(self) -> bool:
        return bool(self.outcome.get("ok", True))

    @property
    def error(self) -> str | None:
        return self.outcome.get("error")

    def to_json(self) -> dict[str, Any]:
        """Plain types only (dicts, lists, str, int, float, bool, None)."""
        return {
            "index": self.index,
            "step": self.step,
            "label": self.label,
            "ran": self.ran,
            "ok": self.ok,
            "outcome": _plain(self.outcome),
            "timing": _plain(self.timing),
        }

    def summary(self) -> str:
        """One line: ``[3] ping h1 -> 10.0.3.2: 3/3 replies, rtt 2.0/2.1/2.3 ms  ok``."""
        head = f"[{self.index}] {self.label}"
        if not self.ran:
            return f"{head}: (ran in another process)"
        o, t = self.outcome, self.timing
        detail = ""
        if self.step == "ping":
            detail = f"{o['received']}/{o['count']} replies"
            if t.get("rtt_avg_ms") is not None:
                rtts = "/".join(f"{t[k]:.3f}" for k in ("rtt_min_ms", "rtt_avg_ms", "rtt_max_ms"))
                detail += f", rtt min/avg/max {rtts} ms"
        elif self.step == "udp_flood" and "received" in o:
            lost = o["sent"] - o["received"]
            pct = 100 * lost / o["sent"] if o["sent"] else 0.0
            detail = f"{o['sent']} sent, {o['received']} received ({pct:.1f}% lost)"
        elif self.step == "tcp_transfer" and "seconds" in t:
            match = "sha256 match" if o.get("sha256") == o.get("sha256_received") else "sha256 MISMATCH"
            rate = f"{t['mbytes_per_s']:.2f} MB/s" if t.get("mbytes_per_s") is not None else "no time"
            detail = (
                f"{o.get('bytes_received', 0)} bytes in {t['seconds']:.3f} s ({rate}), "
                f"{match}, {t.get('retransmits', 0)} retransmits"
            )
        elif self.step == "sysctl" and "old" in o:
            detail = f"{o['old']} -> {o['new']}"
        elif self.step == "wait":
            detail = f"{t.get('seconds', 0):.3f} s"
        status = "ok" if self.ok else f"FAILED: {self.error}" if self.error else "FAILED"
        return f"{head}: {detail}  {status}" if detail else f"{head}  {status}"


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


ProgressFn = Callable[[Progress], object]
Barrier = Callable[[int], Awaitable[object]]


@attrs.define(eq=False)
class _Run:
    built: BuiltNetwork
    progress: ProgressFn | None
    # step index -> the local UDP sink socket of a udp_flood step
    sinks: dict[int, Any] = attrs.field(factory=dict)

    def report(self, step: Step, done: int, total: int, unit: str) -> None:
        if self.progress is not None:
            self.progress(Progress(step.index, step.kind, step.label, done, total, unit))


async def run_scenario(
    built: BuiltNetwork,
    steps: Sequence[Step] | None = None,
    *,
    progress: ProgressFn | None = None,
    barrier: Barrier | None = None,
    on_result: Callable[[StepResult], object] | None = None,
) -> list[StepResult]:
    """Run ``steps`` (default: the topology's scenario) on ``built``.

    Args:
        progress: called with a :class:`Progress` as long steps
            (``tcp_transfer``, ``udp_flood``) advance: at the start, every
            5%, and at the end.
        barrier: awaited with each step's index before it runs, and with
            ``len(steps)`` at the end (see the module docstring).
        on_result: called with each step's result as soon as it is known.

    Returns:
        One :class:`StepResult` per step, in order.

    Cancellation: services stop; the results so far are lost, except those
    already given to ``on_result``.
    """
    if steps is None:
        steps = built.topology.scenario
    run = _Run(built, progress)
    results: list[StepResult] = []
    async with trio.open_nursery() as services:
        for step in steps:
            await _start_service(run, services, step)
        for step in steps:
            if barrier is not None:
                await barrier(step.index)
            actors = step.actors(built.topology)
            if actors and not actors & built.local:
                result = StepResult(index=step.index, step=step.kind, label=step.label, ran=False)
            else:
                result = await _run_step(run, step)
                log.info("step_finished", index=step.index, step=step.kind, ok=result.ok, error=result.error)
            results.append(result)
            if on_result is not None:
                on_result(result)
        if barrier is not None:
            await barrier(len(steps))
        services.cancel_scope.cancel()
    return results


async def _run_step(run: _Run, step: Step) -> StepResult:
    outcome: dict[str, Any] = {}
    timing: dict[str, Any] = {}
    start = trio.current_time()
    success = False
    error: str | None = None
    try:
        with trio.move_on_after(step.timeout) as scope:
            success, error = await _HANDLERS[type(step)](run, step, outcome, timing)
        if scope.cancelled_caught:
            success, error = False, f"timed out after {step.timeout:g} s"
    except (TrionetError, OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        success, error = False, _describe(exc)
    timing.setdefault("seconds", trio.current_time() - start)
    expect = getattr(step, "expect", "ok")
    ok = success if expect == "ok" else not success
    outcome["ok"] = ok
    if error is not None and (not ok or expect == "fail"):
        outcome["error"] = error
    elif not ok:
        outcome["error"] = "succeeded, but the step expects it to fail"
    return StepResult(index=step.index, step=step.kind, label=step.label, outcome=outcome, timing=timing)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno is not None:
        name = errno.errorcode.get(exc.errno, str(exc.errno))
        return f"{name}: {exc.strerror}"
    if isinstance(exc, trio.BrokenResourceError) and exc.__cause__ is not None:
        return f"connection broken: {_describe(exc.__cause__)}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


####################################################################
# Services: the receiving sides, started before the first step
####################################################################


async def _start_service(run: _Run, nursery: trio.Nursery, step: Step) -> None:
    built = run.built
    if isinstance(step, TcpTransferStep) and step.dst_host in built.hosts:
        host = built.hosts[step.dst_host]
        await nursery.start(host.serve_tcp, _hash_server, step.port)
    elif isinstance(step, UdpFloodStep) and step.dst_host in built.hosts:
        host = built.hosts[step.dst_host]
        sock = host.udp_socket()
        sock.bind(("0.0.0.0", step.port))
        run.sinks[step.index] = sock
        nursery.start_soon(_drain, sock)
        if step.src not in built.local:
            # The sender is in another process: it asks for the count over TCP.
            await nursery.start(host.serve_tcp, _count_reporter(sock), step.port)


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
# Steps: each fills outcome and timing, returns (success, error)
####################################################################

Handler = Callable[[_Run, Any, dict[str, Any], dict[str, Any]], Awaitable[tuple[bool, str | None]]]


async def _ping(
    run: _Run, step: PingStep, outcome: dict[str, Any], timing: dict[str, Any]
) -> tuple[bool, str | None]:
    host = run.built.hosts[step.src]
    outcome.update(count=step.count, sent=0, received=0)
    result = await host.ping(
        step.to, count=step.count, size=step.size, timeout=step.reply_timeout, interval=step.interval
    )
    errors = [attrs.asdict(e) for e in result.errors]
    outcome.update(sent=result.sent, received=result.received, errors=errors)
    ms = [rtt * 1000 for rtt in result.rtts]
    timing.update(
        rtt_min_ms=min(ms) if ms else None,
        rtt_avg_ms=sum(ms) / len(ms) if ms else None,
        rtt_max_ms=max(ms) if ms else None,
    )
    if result.received >= step.min_received:
        return True, None
    error = f"{result.received}/{step.count} replies (needs {step.min_received})"
    if result.errors:
        first = result.errors[0]
        if first.type == -1:
            error += f"; send failed: {errno.errorcode.get(first.code, first.code)}"
        else:
            error += f"; ICMP type {first.type} code {first.code} from {first.source}"
    return False, error


async def _udp_flood(
    run: _Run, step: UdpFloodStep, outcome: dict[str, Any], timing: dict[str, Any]
) -> tuple[bool, str | None]:
    host = run.built.hosts[step.src]
    outcome.update(count=step.count, sent=0, send_errors=0)
    every = max(1, step.count // PROGRESS_STEPS)
    errors: dict[str, int] = {}
    with host.udp_socket() as sock:
        start = trio.current_time()
        run.report(step, 0, step.count, "datagrams")
        for seq in range(step.count):
            payload = seq.to_bytes(4, "big")[: step.size] + bytes(max(0, step.size - 4))
            try:
                await sock.sendto(payload, (step.to, step.port))
                outcome["sent"] += 1
            except NetError as exc:
                outcome["send_errors"] += 1
                name = errno.errorcode.get(exc.errno, str(exc.errno))
                errors[name] = errors.get(name, 0) + 1
            if (seq + 1) % every == 0:
                run.report(step, seq + 1, step.count, "datagrams")
            if step.interval:
                await trio.sleep_until(start + (seq + 1) * step.interval)
        sending = trio.current_time() - start
    if errors:
        outcome["send_error_kinds"] = dict(sorted(errors.items()))
    await trio.sleep(step.settle)
    sink = run.sinks.get(step.index)
    if sink is not None:
        stats = sink.statistics()
        received, drops = stats.received, stats.drops
    else:
        stream = await run.built.hosts[step.src].open_tcp_stream(step.to, step.port)
        async with stream:
            answer = await _receive_exactly(stream, 16)
        if len(answer) != 16:
            return False, "the sink's count did not arrive"
        received, drops = int.from_bytes(answer[:8], "big"), int.from_bytes(answer[8:], "big")
    outcome.update(received=received, socket_drops=drops, lost=max(0, outcome["sent"] - received - drops))
    timing.update(sending_seconds=sending, datagrams_per_s=outcome["sent"] / sending if sending > 0 else None)
    if received >= step.min_received:
        return True, None
    return False, f"{received}/{step.count} received (needs {step.min_received})"


async def _tcp_transfer(
    run: _Run, step: TcpTransferStep, outcome: dict[str, Any], timing: dict[str, Any]
) -> tuple[bool, str | None]:
    host = run.built.hosts[step.src]
    rng = random.Random(derive_seed(run.built.seed, f"scenario/{step.index}"))
    digest = hashlib.sha256()
    total = step.bytes
    outcome.update(bytes=total, bytes_sent=0)
    start = trio.current_time()
    stream = await host.open_tcp_stream(step.to, step.port)
    timing["connect_seconds"] = trio.current_time() - start
    async with stream:
        run.report(step, 0, total, "bytes")
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
                    run.report(step, sent, total, "bytes")
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


async def _sysctl(
    run: _Run, step: SysctlStep, outcome: dict[str, Any], timing: dict[str, Any]
) -> tuple[bool, str | None]:
    await trio.lowlevel.checkpoint()
    host = run.built.hosts[step.host]
    try:
        old = host.sysctl(step.sysctl, step.value)
    except (TypeError, ValueError) as exc:  # checked at build time; for steps made by hand
        return False, str(exc)
    outcome.update(name=step.sysctl, old=old, new=host.sysctl(step.sysctl))
    return True, None


async def _link(
    run: _Run, step: LinkStep, outcome: dict[str, Any], timing: dict[str, Any]
) -> tuple[bool, str | None]:
    await trio.lowlevel.checkpoint()
    link = run.built.links[step.link]
    if step.kind == "link_down":
        link.set_up(False)
    elif step.kind == "link_up":
        link.set_up(True)
    else:
        link.partition(step.kind == "partition")
    return True, None


async def _impair(
    run: _Run, step: ImpairStep, outcome: dict[str, Any], timing: dict[str, Any]
) -> tuple[bool, str | None]:
    await trio.lowlevel.checkpoint()
    run.built.links[step.link].set_impairments(**dict(step.changes))
    outcome.update(dict(step.changes))
    return True, None


async def _wait(
    run: _Run, step: WaitStep, outcome: dict[str, Any], timing: dict[str, Any]
) -> tuple[bool, str | None]:
    outcome["seconds"] = step.seconds
    await trio.sleep(step.seconds)
    return True, None


_HANDLERS: dict[type, Handler] = {
    PingStep: _ping,
    UdpFloodStep: _udp_flood,
    TcpTransferStep: _tcp_transfer,
    SysctlStep: _sysctl,
    LinkStep: _link,
    ImpairStep: _impair,
    WaitStep: _wait,
}
