"""Step kinds are rows of a table: a kind a test registers loads, runs and
reports like the built-in ones, with no edit outside the test."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import attrs
import pytest
import structlog
import trio
import trio.testing

from trionet._build import build_network
from trionet._checks import ANY, REQUIRED, integer
from trionet._cli import main
from trionet._scenario import StepRun, run_scenario
from trionet._steps import STEP_KINDS, PingStep, Step, registered_step_kind
from trionet._topology import StepLoad, TopologyError, Topology, loads_topology

TWO = """\
[hosts.h1]
[hosts.h2]

[[links]]
a = "h1"
a_address = "10.0.0.1/24"
b = "h2"
b_address = "10.0.0.2/24"
delay = 0.001

[[scenario]]
step = "nap"
host = "h2"
naps = 3

[[scenario]]
step = "ping"
from = "h1"
to = "h2"
count = 2
"""


@attrs.frozen(kw_only=True)
class NapStep(Step):
    """A kind of the test's own: sleep ``naps`` half seconds on ``host``,
    and count its interfaces."""

    KEYS: ClassVar[Mapping[str, Any]] = {"host": (ANY, REQUIRED), "naps": (integer(1, 10), 1)}

    host: str
    naps: int = 1

    @classmethod
    def load(cls, load: StepLoad, f: dict[str, Any]) -> Step:
        return cls(**load.base(f), host=load.host(f["host"], "host"), naps=f["naps"])

    def describe(self) -> str:
        return f"nap {self.host} x{self.naps}"

    def actors(self, topology: Topology) -> frozenset[str]:
        return frozenset({self.host})

    async def run(self, run: StepRun, outcome: dict[str, Any], timing: dict[str, Any]) -> tuple[bool, str | None]:
        host = run.built.hosts[self.host]
        for n in range(self.naps):
            run.report(self, n, self.naps, "naps")
            await trio.sleep(0.5)
        outcome.update(naps=self.naps, interfaces=len(host.ifconfig()))
        return True, None

    @classmethod
    def detail(cls, outcome: Mapping[str, Any], timing: Mapping[str, Any]) -> str:
        return f"{outcome['naps']} naps, {outcome['interfaces']} interfaces"


@pytest.fixture
def nap() -> Iterator[type[Step]]:
    with registered_step_kind("nap", NapStep) as cls:
        yield cls


async def test_a_registered_step_kind_loads_runs_and_reports_like_the_built_in_kinds(
    nap: type[Step], autojump_clock: trio.testing.MockClock
) -> None:
    topo = loads_topology(TWO, filename="t.toml")
    step, ping = topo.scenario
    assert isinstance(step, NapStep) and isinstance(ping, PingStep)
    assert (step.kind, step.host, step.naps, step.where) == ("nap", "h2", 3, "t.toml:11: scenario[0]")
    progress = []
    async with build_network(topo, seed=1) as built:
        start = trio.current_time()
        results = await run_scenario(built, progress=progress.append)
        assert trio.current_time() - start >= 1.5  # virtual time
    napped, pinged = results
    assert napped.ok and pinged.ok
    assert napped.outcome == {"naps": 3, "interfaces": 2, "ok": True}  # lo0, vnic0
    assert napped.timing["seconds"] == 1.5
    assert napped.summary() == "[0] nap h2 x3: 3 naps, 2 interfaces  ok"
    assert pinged.summary().startswith("[1] ping h1 -> 10.0.0.2: 2/2 replies")
    assert [(p.step, p.done, p.unit) for p in progress] == [("nap", 0, "naps"), ("nap", 1, "naps"), ("nap", 2, "naps")]
    assert json.loads(json.dumps(napped.to_json()))["outcome"]["naps"] == 3


def test_a_registered_step_kinds_mistakes_name_file_line_and_key(nap: type[Step]) -> None:
    cases = [
        (TWO.replace("naps = 3", "naps = 30"), "t.toml:14: scenario[0].naps: must be an int from 1 to 10, not 30"),
        (TWO.replace("naps = 3", "nasp = 3"), 't.toml:14: scenario[0].nasp: unknown key; did you mean "naps"?'
         " (known: step, name, timeout, host, naps)"),
        (TWO.replace('host = "h2"', 'host = "h3"'), 't.toml:13: scenario[0].host: no host called "h3"'),
        (TWO.replace('step = "nap"', 'step = "npa"'), 't.toml:12: scenario[0].step: must be one of "ping",'),
    ]  # fmt: skip
    for text, start in cases:
        with pytest.raises(TopologyError) as info:
            loads_topology(text, filename="t.toml")
        assert str(info.value).startswith(start), str(info.value)
    with pytest.raises(TopologyError, match=r'"wait", "nap", not "npa"; did you mean "nap"\?$'):
        loads_topology(TWO.replace('step = "nap"', 'step = "npa"'), filename="t.toml")


def test_a_registered_step_kind_is_reported_by_the_command(
    nap: type[Step], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "nap.toml"
    path.write_text(TWO)
    try:
        assert main(["run", str(path)]) == 0
        out = capsys.readouterr().out
        assert "[0] nap h2 x3: 3 naps, 2 interfaces  ok" in out.splitlines()
        assert "2 steps: 2 ok, 0 failed" in out
        assert main(["run", str(path), "--json"]) == 0
        doc = json.loads(capsys.readouterr().out)
    finally:
        structlog.reset_defaults()  # main() configured it for the process
    assert doc["results"][0]["step"] == "nap" and doc["results"][0]["outcome"]["naps"] == 3


def test_a_kind_registered_for_a_block_is_gone_after_it() -> None:
    kinds = list(STEP_KINDS)
    with registered_step_kind("nap", NapStep):
        assert list(STEP_KINDS) == [*kinds, "nap"]
        with pytest.raises(ValueError, match="'nap' is a step kind already"):
            with registered_step_kind("nap", NapStep):
                pass  # pragma: no cover
    assert list(STEP_KINDS) == kinds
    with pytest.raises(TopologyError, match=r"scenario\[0\]\.step: must be one of .*not \"nap\""):
        loads_topology(TWO)
    with pytest.raises(ValueError, match="'ping' is a step kind already"):
        with registered_step_kind("ping", NapStep):
            pass  # pragma: no cover
    with pytest.raises(TypeError, match="subclass of Step"):
        with registered_step_kind("thing", dict):  # type: ignore[arg-type]
            pass  # pragma: no cover
    assert list(STEP_KINDS) == kinds


def test_every_kind_has_a_class_with_its_keys_and_a_run() -> None:
    for name, cls in STEP_KINDS.items():
        assert issubclass(cls, Step), name
        assert cls.run is not Step.run, name
        assert not set(cls.KEYS) & {"step", "timeout"}, name  # the common keys are the loader's
