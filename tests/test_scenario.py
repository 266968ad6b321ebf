"""Scenario steps: what each does, what its result says, and failures as results."""

from __future__ import annotations

import errno
import json
import socket

import pytest
import trio
import trio.testing

from trionet import LinkState
from trionet._scenario import Progress, StepResult, run_scenario
from trionet._build import build_network
from trionet._topology import loads_topology

TWO = """\
[hosts.h1]
[hosts.h2]

[[links]]
a = "h1"
a_address = "10.0.0.1/24"
b = "h2"
b_address = "10.0.0.2/24"
delay = 0.001
"""


def step(kind: str, **keys: object) -> str:
    lines = [f'step = "{kind}"'] + [f"{k} = {json.dumps(v)}" for k, v in keys.items()]
    return "\n[[scenario]]\n" + "\n".join(lines) + "\n"


async def run(text: str, **options: object) -> list[StepResult]:
    topo = loads_topology(text)
    async with build_network(topo, seed=1) as built:
        return await run_scenario(built, **options)  # type: ignore[arg-type]


PING = {"from": "h1", "to": "h2", "count": 2, "interval": 0.1}


async def test_link_down_fails_a_ping_and_link_up_restores_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    results = await run(
        TWO
        + step("ping", **PING)
        + step("link_down", link="h1-h2")
        + step("ping", **PING)
        + step("link_up", link="h1-h2")
        + step("wait", seconds=2)  # the vnic polls its carrier at 1 Hz
        + step("ping", **PING)
    )
    assert [r.ok for r in results] == [True, True, False, True, True, True]
    down = results[2]
    assert down.outcome["received"] == 0
    assert down.error is not None and down.error.startswith("0/2 replies")
    assert "FAILED: 0/2 replies" in down.summary()
    assert results[5].outcome["received"] == 2


async def test_a_partition_loses_frames_but_keeps_the_carrier(
    autojump_clock: trio.testing.MockClock,
) -> None:
    topo = loads_topology(
        TWO + step("partition", link="h1-h2") + step("ping", **PING, expect="fail") + step("heal", link="h1-h2")
        + step("ping", **PING)
    )  # fmt: skip
    async with build_network(topo) as built:
        link = built.links["h1-h2"]
        assert link.faults[0] is not None  # built with injectors: a step partitions it
        results = await run_scenario(built, topo.scenario[:2])
        assert link.ends[0].link_state == LinkState.UP
        results += await run_scenario(built, topo.scenario[2:])
    assert [r.ok for r in results] == [True, True, True, True]
    assert results[1].outcome["received"] == 0  # expect = "fail": ok because it failed
    assert results[3].outcome["received"] == 2


async def test_impair_changes_the_links_faults(autojump_clock: trio.testing.MockClock) -> None:
    results = await run(
        TWO
        + step("impair", link="h1-h2", loss=1.0)
        + step("ping", **PING, expect="fail")
        + step("impair", link="h1-h2", loss=0.0)
        + step("ping", **PING)
    )
    assert [r.ok for r in results] == [True] * 4
    assert results[0].outcome == {"loss": 1.0, "ok": True}
    assert (results[1].outcome["received"], results[3].outcome["received"]) == (0, 2)


async def test_a_sysctl_step_changes_the_host_and_reports_old_and_new(
    autojump_clock: trio.testing.MockClock,
) -> None:
    topo = loads_topology(TWO + step("sysctl", host="h2", name="net.inet.tcp.cc.algorithm", value="cubic"))
    async with build_network(topo) as built:
        (result,) = await run_scenario(built)
        assert built.hosts["h2"].sysctl("net.inet.tcp.cc.algorithm") == "cubic"
        assert built.hosts["h1"].sysctl("net.inet.tcp.cc.algorithm") == "newreno"
    assert result.outcome == {"name": "net.inet.tcp.cc.algorithm", "old": "newreno", "new": "cubic", "ok": True}
    assert result.summary() == "[0] sysctl h2 net.inet.tcp.cc.algorithm=cubic: newreno -> cubic  ok"


async def test_wait_advances_trio_time_exactly(autojump_clock: trio.testing.MockClock) -> None:
    topo = loads_topology(TWO + step("wait", seconds=2.5))
    async with build_network(topo) as built:
        before = trio.current_time()
        (result,) = await run_scenario(built)
        assert trio.current_time() - before == 2.5
    assert result.ok and result.outcome["seconds"] == 2.5 and result.timing["seconds"] == 2.5


async def test_a_runtime_error_is_a_failed_step_and_the_next_still_runs(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # h2 is on another subnet of the same wire, and h1 has no route to it.
    text = TWO.replace("10.0.0.2/24", "10.0.1.2/24")
    transfer_step = step("tcp_transfer", **{"from": "h1", "to": "h2", "bytes": 1000})
    results = await run(text + transfer_step + step("ping", **PING))
    transfer, ping = results
    assert not transfer.ok and transfer.error is not None and "ENETUNREACH" in transfer.error
    assert not ping.ok and "send failed: ENETUNREACH" in (ping.error or "")
    assert ping.outcome["errors"][0]["code"] == errno.ENETUNREACH  # as data


async def test_a_step_is_bounded_by_its_timeout(autojump_clock: trio.testing.MockClock) -> None:
    results = await run(
        TWO
        + step("partition", link="h1-h2")
        + step("tcp_transfer", **{"from": "h1", "to": "h2", "bytes": 1000, "timeout": 5})
        + step("wait", seconds=1)
    )
    timed_out = results[1]
    assert not timed_out.ok and timed_out.error == "timed out after 5 s"
    assert timed_out.timing["seconds"] == pytest.approx(5)
    assert results[2].ok


async def test_a_transfer_reports_progress_and_checks_the_digest(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen: list[Progress] = []
    (result,) = await run(
        TWO + step("tcp_transfer", **{"from": "h1", "to": "h2", "bytes": "1MB", "port": 7000}),
        progress=seen.append,
    )
    assert result.ok, result.summary()
    assert result.outcome["bytes_received"] == 1_000_000 and len(result.outcome["sha256"]) == 64
    assert result.outcome["sha256"] == result.outcome["sha256_received"]
    assert {"seconds", "mbytes_per_s", "retransmits"} <= set(result.timing)
    done = [p.done for p in seen]
    assert done[0] == 0 and done[-1] == 1_000_000 and done == sorted(done)
    assert 10 <= len(done) <= 22 and {p.unit for p in seen} == {"bytes"}
    assert json.loads(json.dumps(result.to_json()))["outcome"]["ok"] is True


async def test_a_udp_flood_counts_what_the_sink_received(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lossy = TWO + "loss = 0.2\n"
    results = await run(
        lossy
        + step("udp_flood", **{"from": "h1", "to": "h2", "count": 200, "size": 100})
        + step("udp_flood", **{"from": "h1", "to": "h2", "count": 200, "size": 100, "min_received": 100})
    )
    strict, lenient = results
    for r in results:
        o = r.outcome
        assert o["sent"] == 200 and 100 < o["received"] < 200
        assert o["lost"] == o["sent"] - o["received"] - o["socket_drops"]
    assert not strict.ok and strict.error is not None and "needs 200" in strict.error
    assert lenient.ok
    assert "% lost" in lenient.summary()


# Split runs: every host in its own "process" (here, its own build in one
# Trio run), links between them UDP on 127.0.0.1; outcomes equal the
# single-process run's.


def _free_port_base() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1]) & ~1


class _Barrier:
    def __init__(self, parties: int) -> None:
        self.parties = parties
        self.arrived: dict[int, int] = {}
        self.events: dict[int, trio.Event] = {}

    async def wait(self, index: int) -> None:
        self.arrived[index] = self.arrived.get(index, 0) + 1
        event = self.events.setdefault(index, trio.Event())
        if self.arrived[index] == self.parties:
            event.set()
        await event.wait()


@pytest.mark.integration
async def test_a_split_run_gives_the_single_process_outcomes() -> None:
    text = (
        TWO
        + step("ping", **PING)
        + step("tcp_transfer", **{"from": "h2", "to": "h1", "bytes": "64KiB"})
        + step("udp_flood", **{"from": "h1", "to": "h2", "count": 50, "settle": 0.3})
        + step("partition", link="h1-h2")
        + step("ping", **PING, expect="fail")
    )
    topo = loads_topology(text)
    async with build_network(topo, seed=9) as built:
        single = await run_scenario(built)
    base = _free_port_base()
    barrier = _Barrier(2)
    ready = _Barrier(2)
    parts: dict[str, list[StepResult]] = {}

    async def part(name: str) -> None:
        async with build_network(topo, seed=9, only_hosts={name}, port_base=base) as built:
            assert built.split and set(built.hosts) == {name}
            await ready.wait(-1)
            parts[name] = await run_scenario(built, barrier=barrier.wait)

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(part, "h1")
            nursery.start_soon(part, "h2")
    merged = []
    for index in range(len(single)):
        ran = [r for name in ("h1", "h2") for r in parts[name] if r.index == index and r.ran]
        assert ran, index
        assert all(r.outcome == ran[0].outcome for r in ran)
        merged.append(ran[0])
    assert [r.outcome for r in merged] == [r.outcome for r in single]
    assert all(r.ok for r in merged)
    assert "(ran in another process)" in parts["h2"][0].summary()
