"""The kernel trace: a Chrome trace event format timeline of the hosts' threads."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

import trionet
from trionet._kern import _ktrace
from trionet.drivers.vnic import Vnic
from trionet.wires import memory_pair

Trace = dict[str, Any]


####################################################################
# checks of a trace
####################################################################


def check_chrome_trace(trace: Trace) -> None:
    """What Perfetto and chrome://tracing need, and what the module promises."""
    json.dumps(trace)  # serialisable as it is
    assert trace["displayTimeUnit"] == "ms"
    events = trace["traceEvents"]
    process_names = set()
    thread_names = set()
    for ev in events:
        assert {"ph", "pid", "tid", "ts", "name"} <= ev.keys(), ev
        assert isinstance(ev["ts"], int | float) and ev["ts"] >= 0, ev
        assert isinstance(ev["pid"], int) and isinstance(ev["tid"], int), ev
        if ev["ph"] == "M":
            if ev["name"] == "process_name":
                process_names.add(ev["pid"])
            elif ev["name"] == "thread_name":
                thread_names.add((ev["pid"], ev["tid"]))
    flows: dict[int, list[str]] = defaultdict(list)
    last_ts: dict[int, float] = {}
    for ev in events:
        if ev["ph"] == "M":
            continue
        assert ev["pid"] in process_names, ev
        assert (ev["pid"], ev["tid"]) in thread_names, ev
        if ev["ph"] == "X":
            assert isinstance(ev["dur"], int | float) and ev["dur"] >= 0, ev
        elif ev["ph"] == "i":
            assert ev["s"] == "t"
        elif ev["ph"] in ("s", "f"):
            flows[ev["id"]].append(ev["ph"])
            if ev["ph"] == "f":
                assert ev["bp"] == "e"
        else:
            raise AssertionError(f"unexpected phase {ev!r}")
        # ts never goes back on a track, in file order
        assert ev["ts"] >= last_ts.get(ev["tid"], 0), ev
        last_ts[ev["tid"]] = ev["ts"]
    for fid, phases in flows.items():
        assert sorted(phases) == ["f", "s"], (fid, phases)
    # The spans of one track nest (Perfetto drops slices that overlap on a
    # track without nesting).
    for tid, spans in spans_by_track(trace).items():
        stack: list[tuple[int, int]] = []
        for start, end, _ in spans:
            while stack and stack[-1][1] <= start:
                stack.pop()
            if stack:
                assert end <= stack[-1][1], (tid, (start, end), stack[-1])
            stack.append((start, end))


def spans_by_track(trace: Trace) -> dict[int, list[tuple[int, int, str]]]:
    spans: dict[int, list[tuple[int, int, str]]] = defaultdict(list)
    for ev in trace["traceEvents"]:
        if ev["ph"] == "X":
            spans[ev["tid"]].append((ev["ts"], ev["ts"] + ev["dur"], ev["name"]))
    return spans


def names(trace: Trace, kind: str) -> dict[int, str]:
    """pid -> process name (kind "process_name") or tid -> thread name ("thread_name")."""
    key = "pid" if kind == "process_name" else "tid"
    return {
        ev[key]: ev["args"]["name"]
        for ev in trace["traceEvents"]
        if ev["ph"] == "M" and ev["name"] == kind
    }


def tracks_named(trace: Trace, name: str, pid: int | None = None) -> list[int]:
    return [
        ev["tid"]
        for ev in trace["traceEvents"]
        if ev["ph"] == "M"
        and ev["name"] == "thread_name"
        and ev["args"]["name"] == name
        and (pid is None or ev["pid"] == pid)
    ]


def pid_of(trace: Trace, process: str) -> int:
    (pid,) = [p for p, n in names(trace, "process_name").items() if n == process]
    return pid


def check_lock_tracks(trace: Trace) -> int:
    """The holds on each serializer (or Giant) track never overlap; returns the
    number of holds checked."""
    threads = names(trace, "thread_name")
    checked = 0
    for tid, spans in spans_by_track(trace).items():
        if not (threads[tid].startswith("serializer ") or threads[tid] == "Giant"):
            continue
        end = -1
        for start, stop, name in spans:
            assert name.startswith("hold "), name
            assert start >= end, (threads[tid], start, end)
            end = stop
            checked += 1
    return checked


def non_metadata(trace: Trace) -> list[dict[str, Any]]:
    return [ev for ev in trace["traceEvents"] if ev["ph"] != "M"]


async def two_hosts(net: trionet.Network) -> tuple[trionet.Host, trionet.Host]:
    a = await net.add_host("a")
    b = await net.add_host("b")
    ln = await net.link(a, b)
    a.ifconfig(ln.ends[0].name, "10.0.0.1/24")
    b.ifconfig(ln.ends[1].name, "10.0.0.2/24")
    return a, b


async def ping_and_udp(a: trionet.Host, b: trionet.Host, n: int = 5) -> None:
    assert (await a.ping("10.0.0.2", count=2, interval=0.1)).received == 2
    server = b.udp_socket()
    server.bind(("0.0.0.0", 9))
    client = a.udp_socket()
    for i in range(n):
        await client.sendto(b"datagram %d" % i, ("10.0.0.2", 9))
        data, _ = await server.recvfrom()
        assert data == b"datagram %d" % i


####################################################################
# tests
####################################################################


async def test_a_two_host_ping_and_udp_run_is_a_valid_chrome_trace(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    with _ktrace.recording() as recording:
        assert _ktrace.ACTIVE is recording
        async with trionet.open_network(seed=1) as net:
            a, b = await two_hosts(net)
            await ping_and_udp(a, b)
    assert _ktrace.ACTIVE is None
    trace = recording.to_json()
    check_chrome_trace(trace)
    assert check_lock_tracks(trace) > 10
    assert trace["otherData"]["dropped"] == 0

    # One process per host, one thread per kernel thread.
    processes = names(trace, "process_name")
    pa, pb = pid_of(trace, "a"), pid_of(trace, "b")
    for pid in (pa, pb):
        for thread in ("netisr 0", "netisr 1", "ifnet 0", "softclock 0", "ithread 16", "serializer vnic0"):
            assert len(tracks_named(trace, thread, pid)) == 1, (processes[pid], thread)
    events = non_metadata(trace)
    counts = Counter(ev["name"] for ev in events)
    # Interrupts, handler runs (the default vnic interrupt is FAST: the
    # chain runs in the task that asserted the line), netisr batches and
    # the packets' handlers, holds, task steps.
    assert counts["intr 16"] > 0 and counts["vnic0"] > 0
    assert any(ev["name"] == "irq16: vnic0" and ev.get("args") == {"fast": True} for ev in events)
    assert counts["batch"] > 0 and counts["Ip.input"] > 0
    assert counts["hold vnic0"] > 0 and counts["run"] > 0
    instants = [ev for ev in events if ev["ph"] == "i"]
    ithreads = set(tracks_named(trace, "ithread 16"))
    assert instants and all(ev["tid"] in ithreads for ev in instants)
    # Packets as flows: from where they were queued to a netisr thread.
    threads = names(trace, "thread_name")
    finishes = [ev for ev in events if ev["ph"] == "f"]
    assert finishes and {threads[ev["tid"]] for ev in finishes} <= {"netisr 0", "netisr 1"}
    # Every hold on a serializer's own track is also on its holder's track.
    holds = Counter((ev["name"], ev["ts"], ev["dur"]) for ev in events if ev["name"].startswith("hold "))
    assert set(holds.values()) == {2}

    path = tmp_path / "trace.json"
    recording.write(path)
    assert json.loads(path.read_text()) == trace


async def test_a_shared_irq_shows_one_ithread_running_two_handlers_under_two_serializers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # examples/shared_irq.py's topology, with interrupts that are not FAST
    # so the ithread runs the chain.
    with _ktrace.recording() as recording:
        async with (
            trionet.open_host("dfly", ncpus=2) as dfly,
            trionet.open_host("peer0") as peer0,
            trionet.open_host("peer1") as peer1,
        ):
            for unit, peer in enumerate((peer0, peer1)):
                near, far = memory_pair(f"wire{unit}")
                ifp = await dfly.if_attach(Vnic(near, intr_fast=False), irq=11)
                pifp = await peer.if_attach(Vnic(far))
                await dfly.ifup(ifp)
                await peer.ifup(pifp)
                dfly.ifconfig(ifp.name, f"10.0.{unit}.1/24")
                peer.ifconfig(pifp.name, f"10.0.{unit}.2/24")
            for unit in range(2):
                assert (await dfly.ping(f"10.0.{unit}.2", count=2, interval=0.1)).received == 2
    trace = recording.to_json()
    check_chrome_trace(trace)
    check_lock_tracks(trace)
    dfly_pid = pid_of(trace, "dfly")
    (ithread,) = tracks_named(trace, "ithread 11", dfly_pid)
    spans = spans_by_track(trace)[ithread]
    handlers = [s for s in spans if s[2] in ("vnic0", "vnic1")]
    assert {s[2] for s in handlers} == {"vnic0", "vnic1"}
    assert any(s[2] == "irq11: vnic0/vnic1" for s in spans)
    # Each handler run holds its own serializer, inside the handler's span.
    holds = [s for s in spans if s[2].startswith("hold ")]
    assert {s[2] for s in holds} == {"hold vnic0", "hold vnic1"}
    for start, end, name in holds:
        assert any(
            h[0] <= start and end <= h[1] and name == f"hold {h[2]}" for h in handlers
        ), (start, end, name)
    # Both serializers have tracks of their own in dfly's process.
    assert len(tracks_named(trace, "serializer vnic0", dfly_pid)) == 1
    assert len(tracks_named(trace, "serializer vnic1", dfly_pid)) == 1


async def test_two_tasks_entering_one_serializer_show_a_wait(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with _ktrace.recording() as recording:
        async with trionet.open_host("h") as host:
            s = host.serializer("sc0")

            async def holder() -> None:
                async with s:
                    await trio.sleep(1)

            async def waiter() -> None:
                await trio.testing.wait_all_tasks_blocked()
                async with s:
                    pass

            async with trio.open_nursery() as nursery:
                nursery.start_soon(holder, name="holder")
                nursery.start_soon(waiter, name="waiter")
    trace = recording.to_json()
    check_chrome_trace(trace)
    assert check_lock_tracks(trace) == 2
    threads = names(trace, "thread_name")
    tasks = pid_of(trace, "tasks")
    waits = [ev for ev in non_metadata(trace) if ev["name"] == "wait sc0"]
    assert len(waits) == 1
    assert threads[waits[0]["tid"]] == "waiter" and waits[0]["pid"] == tasks
    assert waits[0]["dur"] >= 900_000  # about the second the holder slept
    (lock_track,) = tracks_named(trace, "serializer sc0", pid_of(trace, "h"))
    assert [s[2] for s in spans_by_track(trace)[lock_track]] == ["hold sc0", "hold sc0"]


async def test_without_intr_mpsafe_the_ithread_holds_giant(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with _ktrace.recording() as recording:
        async with trionet.open_host("h") as host:
            host.sysctl("kern.intr_mpsafe", 0)
            s = host.serializer("em0")
            runs = []
            host.intr.register(5, lambda: runs.append(1), name="em0", serializer=s)
            host.intr.sched_ithd(5)
            await trio.testing.wait_all_tasks_blocked()
            # Giant busy when the interrupt comes: the ithread waits for it.
            async with host.giant:
                host.intr.sched_ithd(5)
                await trio.sleep(1)
            await trio.testing.wait_all_tasks_blocked()
            assert len(runs) == 2
    trace = recording.to_json()
    check_chrome_trace(trace)
    check_lock_tracks(trace)
    h = pid_of(trace, "h")
    (ithread,) = tracks_named(trace, "ithread 5", h)
    (giant,) = tracks_named(trace, "Giant", h)
    spans = spans_by_track(trace)
    on_ithread = Counter(s[2] for s in spans[ithread])
    assert on_ithread["hold Giant"] == 2 and on_ithread["wait Giant"] == 1
    assert on_ithread["em0"] == 2 and on_ithread["hold em0"] == 2
    assert [s[2] for s in spans[giant]] == ["hold Giant"] * 3  # the ithread's two, the test's one
    # The handler runs inside Giant's hold.
    for start, end, name in spans[ithread]:
        if name == "em0":
            assert any(g[0] <= start and end <= g[1] for g in spans[ithread] if g[2] == "hold Giant")


async def test_the_trace_is_bounded_and_counts_what_it_drops(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with _ktrace.recording(max_events=100) as recording:
        async with trionet.open_network(seed=1) as net:
            a, b = await two_hosts(net)
            await ping_and_udp(a, b)
    assert len(recording) == 100
    trace = recording.to_json()
    check_chrome_trace(trace)  # flows cut by the bound are left out
    assert len(non_metadata(trace)) <= 100
    assert trace["otherData"]["dropped"] > 0
    assert trace["otherData"]["max_events"] == 100
    assert recording.dropped == trace["otherData"]["dropped"]


async def test_nothing_is_recorded_outside_the_block_and_a_second_recording_starts_empty(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trionet.open_network(seed=1) as net:
        a, b = await two_hosts(net)
        await ping_and_udp(a, b)  # before: not recorded
        with _ktrace.recording() as first:
            first.add_host(a)
            first.add_host(b)
            assert (await a.ping("10.0.0.2", count=1)).received == 1
        kept = first.to_json()
        assert len(first) > 0 and not first.recording
        assert (await a.ping("10.0.0.2", count=1)).received == 1  # after: not recorded
        assert first.to_json() == kept
        with _ktrace.recording() as second:
            assert len(second) == 0
            with pytest.raises(RuntimeError, match="one at a time"):
                with _ktrace.recording():
                    pass  # pragma: no cover
            assert (await a.ping("10.0.0.2", count=1)).received == 1
        assert len(second) > 0
    check_chrome_trace(kept)
    check_chrome_trace(second.to_json())
    # Hosts made before the block, named by add_host: their threads are in
    # their processes (the second recording saw them only through the
    # interrupt hook, which adds a host it does not know).
    assert names(kept, "process_name").keys() >= {pid_of(kept, "a"), pid_of(kept, "b")}
    assert tracks_named(kept, "netisr 0", pid_of(kept, "a"))
    assert tracks_named(kept, "serializer vnic0", pid_of(kept, "a"))
    assert tracks_named(second.to_json(), "ithread 16", pid_of(second.to_json(), "b"))


def test_a_recording_may_enclose_trio_run() -> None:
    async def main() -> None:
        async with trionet.open_network(seed=1) as net:
            a, b = await two_hosts(net)
            await ping_and_udp(a, b, n=1)

    with _ktrace.recording() as recording:
        trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    trace = recording.to_json()
    check_chrome_trace(trace)
    # The task steps' instrument was installed when the first host was made.
    assert any(ev["name"] == "run" for ev in non_metadata(trace))
    assert tracks_named(trace, "netisr 0 (run)", pid_of(trace, "a"))


async def test_max_events_is_checked() -> None:
    with pytest.raises(ValueError, match="max_events"):
        with _ktrace.recording(max_events=-1):
            pass  # pragma: no cover
    assert _ktrace.ACTIVE is None
