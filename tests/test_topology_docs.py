"""docs/topology.md documents every kind the loader knows: one section per
link kind and per step kind, each with an example the real loader takes."""

from __future__ import annotations

import re
from pathlib import Path

import attrs

from trionet._links import LINK_KINDS, registered_link_kind
from trionet._steps import STEP_KINDS, Step, registered_step_kind
from trionet._topology import loads_topology

DOC = Path(__file__).resolve().parent.parent / "docs" / "topology.md"
TEXT = DOC.read_text()
# "### Link kind `udp`" or "### Step `ping`", up to the next heading.
SECTIONS = {
    (m.group(1), m.group(2)): m.group(3)
    for m in re.finditer(r"^### (Link kind|Step) `(\w+)`\n(.*?)(?=^##|\Z)", TEXT, re.M | re.S)
}


def _example(section: str) -> str:
    m = re.search(r"```toml\n(.*?)```", section, re.S)
    assert m is not None, "no ```toml example"
    return m.group(1)


# The step examples run on the base given under "## Step kinds".
STEP_BASE = _example(TEXT[TEXT.index("## Step kinds") : TEXT.index("### Step ")])


def _link_kind_problems() -> list[str]:
    problems = []
    for kind in LINK_KINDS:
        if ("Link kind", kind) not in SECTIONS:
            problems.append(f"docs/topology.md has no section for link kind {kind!r}")
            continue
        topo = loads_topology(_example(SECTIONS["Link kind", kind]), filename=f"docs/topology.md ({kind})")
        if [spec.kind for spec in topo.links] != [kind]:
            problems.append(f"the example of link kind {kind!r} is not one link of that kind")
    return problems


def test_every_link_kind_has_a_section_with_an_example_that_loads() -> None:
    assert _link_kind_problems() == []


def _step_kind_problems() -> list[str]:
    problems = []
    for kind, cls in STEP_KINDS.items():
        if ("Step", kind) not in SECTIONS:
            problems.append(f"docs/topology.md has no section for step kind {kind!r}")
            continue
        section = SECTIONS["Step", kind]
        topo = loads_topology(STEP_BASE + _example(section), filename=f"docs/topology.md ({kind})")
        if kind not in [step.kind for step in topo.scenario]:
            problems.append(f"the example of step kind {kind!r} has no such step")
        problems += [f"step {kind!r}: key {key!r} is not in its section" for key in cls.KEYS if f"`{key}`" not in section]
    return problems


def test_every_step_kind_has_a_section_with_an_example_that_loads_and_names_its_keys() -> None:
    assert _step_kind_problems() == []


@attrs.frozen(kw_only=True)
class _Undocumented(Step):
    pass


def test_a_kind_without_a_section_is_found() -> None:
    with registered_step_kind("undocumented", _Undocumented):
        assert _step_kind_problems() == ["docs/topology.md has no section for step kind 'undocumented'"]
    with registered_link_kind(attrs.evolve(LINK_KINDS["memory"], name="undocumented")):
        assert _link_kind_problems() == ["docs/topology.md has no section for link kind 'undocumented'"]


def test_every_section_is_a_kind_the_loader_knows() -> None:
    known = {("Link kind", k) for k in LINK_KINDS} | {("Step", k) for k in STEP_KINDS}
    assert set(SECTIONS) <= known
