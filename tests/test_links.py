"""Link kinds are rows of a table: a kind a test registers is checked,
built and run like the built-in ones, with no edit outside the test."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from trionet._build import build_network
from trionet._links import LINK_KEYS, LINK_KINDS, LinkKind, registered_link_kind
from trionet._scenario import run_scenario
from trionet._topology import LinkSpec, Topology, TopologyError, loads_topology

SLOW = """\
[hosts.h1]
[hosts.h2]

[[links]]
a = "h1"
a_address = "10.0.0.1/24"
b = "h2"
b_address = "10.0.0.2/24"
kind = "slow"

[[scenario]]
step = "ping"
from = "h1"
to = "h2"
count = 2
"""


async def _build_slow(
    net: Any, topo: Topology, spec: LinkSpec, nodes: list[Any], *, pcap: str | None, impairments: dict[str, float]
) -> Any:
    a, b = nodes
    return await net.link(a, b, kind="memory", mtu=spec.mtu, pcap=pcap, delay=0.05, **impairments)


SLOW_KIND = LinkKind(name="slow", build=_build_slow, refuses={"delay": "a slow link has its own delay (50 ms)"})


async def test_a_registered_link_kind_is_checked_built_and_run(autojump_clock: trio.testing.MockClock) -> None:
    with registered_link_kind(SLOW_KIND):
        topo = loads_topology(SLOW, filename="t.toml")
        (spec,) = topo.links
        assert (spec.kind, spec.link_kind, spec.real_time) == ("slow", SLOW_KIND, False)
        with pytest.raises(TopologyError, match=r"^t\.toml:10: links\[0\]\.delay: a slow link has its own delay"):
            loads_topology(SLOW.replace('kind = "slow"', 'kind = "slow"\ndelay = 0.1'), filename="t.toml")
        with pytest.raises(TopologyError, match=r'"tap", "slow", not "slwo"; did you mean "slow"\?$'):
            loads_topology(SLOW.replace('"slow"', '"slwo"'))
        async with build_network(topo, seed=1) as built:
            (ping,) = await run_scenario(built)
    assert ping.ok and ping.outcome["received"] == 2
    assert ping.timing["rtt_min_ms"] == pytest.approx(100, abs=1)  # 50 ms each way
    with pytest.raises(TopologyError, match=r'links\[0\]\.kind: must be one of "memory", "udp", "tap", not "slow"'):
        loads_topology(SLOW)


def test_registering_a_link_kind_refuses_a_taken_name_or_an_unknown_key() -> None:
    kinds = list(LINK_KINDS)
    with pytest.raises(ValueError, match="'udp' is a link kind already"):
        with registered_link_kind(LinkKind(name="udp", build=_build_slow)):
            pass  # pragma: no cover
    with pytest.raises(ValueError, match="refuses keys no link has: dealy"):
        with registered_link_kind(LinkKind(name="x", build=_build_slow, refuses={"dealy": "no"})):
            pass  # pragma: no cover
    assert list(LINK_KINDS) == kinds


def test_every_row_refuses_only_keys_a_link_has() -> None:
    for name, kind in LINK_KINDS.items():
        assert kind.name == name
        assert set(kind.refuses) <= set(LINK_KEYS), name
