"""Topology files: loading, the errors they give, and building and running the examples."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest
import trio
import trio.testing

from trionet._build import build_network
from trionet._scenario import run_scenario
from trionet._topology import (
    LinkSpec,
    PingStep,
    TcpTransferStep,
    TopologyError,
    format_key,
    load_topology,
    loads_topology,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.toml"))

BASE = """\
[hosts.h1]
ncpus = 2
[hosts.h2]

[[links]]
a = "h1"
a_address = "10.0.0.1/24"
b = "h2"
b_address = "10.0.0.2/24"
"""


def test_every_example_file_loads() -> None:
    assert {p.name for p in EXAMPLE_FILES} >= {
        "two_hosts.toml",
        "router.toml",
        "switched_lan.toml",
        "lossy_tcp.toml",
    }
    for path in EXAMPLE_FILES:
        topo = load_topology(path)
        assert topo.hosts and topo.links and topo.scenario, path.name


def test_router_example_is_three_subnets_and_a_forwarding_router() -> None:
    topo = load_topology(EXAMPLES / "router.toml")
    assert topo.host("r1").forwarding
    subnets = {str(iface.network) for iface in topo.addresses("r1")}
    assert subnets == {"10.0.1.0/24", "10.0.2.0/24", "10.0.3.0/24"}
    assert [r.dest for r in topo.host("h1").routes] == ["default"]
    transfer = next(s for s in topo.scenario if isinstance(s, TcpTransferStep))
    assert (transfer.to, transfer.dst_host) == ("10.0.3.2", "h3")  # "to = h3" is its address


def test_values_are_checked_and_converted() -> None:
    topo = loads_topology(
        BASE
        + """
delay = 0.001
loss = 0.05
kind = "memory"

[[scenario]]
step = "tcp_transfer"
from = "h1"
to = "h2"
bytes = "64KiB"

[[scenario]]
step = "ping"
from = "h1"
to = "10.0.0.2"
count = 5
min_received = 4
"""
    )
    (link,) = topo.links
    assert link == LinkSpec(
        name="h1-h2",
        index=0,
        a="h1",
        b="h2",
        a_addresses=("10.0.0.1/24",),
        b_addresses=("10.0.0.2/24",),
        delay=0.001,
        impairments=(("loss", 0.05),),
    )
    transfer, ping = topo.scenario
    assert isinstance(transfer, TcpTransferStep) and transfer.bytes == 65536
    assert transfer.port == 5000  # 5000 + its index
    assert isinstance(ping, PingStep) and (ping.count, ping.min_received) == (5, 4)
    assert ping.where == "<string>:21: scenario[1]"


def test_key_paths_are_written_as_toml_would() -> None:
    assert format_key(("links", 1, "mtu")) == "links[1].mtu"
    assert format_key(("hosts", "h1", "sysctls", "net.inet.ip.forwarding")) == (
        'hosts.h1.sysctls."net.inet.ip.forwarding"'
    )


TAP = '[hosts.h1]\n[[links]]\nkind = "tap"\na = "h1"\n'

# (name, text, expected "line: key" prefix, words the problem must contain)
BROKEN = [
    ("unknown key", BASE.replace("ncpus = 2", "ncpu = 2"), "2: hosts.h1.ncpu", ['did you mean "ncpus"']),
    ("wrong type", BASE + 'mtu = "big"\n', "10: links[0].mtu", ['must be an int from 68 to 65535, not "big"']),
    ("bad address", BASE.replace("10.0.0.2/24", "10.0.0.300/24"), "9: links[0].b_address", ["not an IPv4"]),
    ("no prefix", BASE.replace("10.0.0.2/24", "10.0.0.2"), "9: links[0].b_address", ["prefix length"]),
    ("unknown host", BASE.replace('b = "h2"', 'b = "h3"'), "8: links[0].b", ['no host or switch called "h3"']),
    ("duplicate link", BASE + '[[links]]\na = "h1"\nb = "h2"\n', "10: links[1]", ['duplicate link name "h1-h2"']),
    ("duplicate address", BASE + '[[links]]\nname = "x"\na = "h1"\na_address = "10.0.0.1/16"\nb = "h2"\n',
     "13: links[1].a_address", ["h1 already has address 10.0.0.1"]),
    ("switch name taken", BASE + "[switches.h1]\n", "10: switches.h1", ["already a host"]),
    ("bad toml", BASE + "mtu = = 3\n", "10", ["TOML syntax"]),
    ("gateway off subnet",
     BASE.replace("ncpus = 2", 'routes = [\n  { dest = "default", gateway = "10.0.0.2" },\n  { dest = "10.9.0.0/16", gateway = "10.1.0.1" },\n]'),
     "4: hosts.h1.routes[1].gateway", ["not on a subnet of h1"]),
    ("sysctl value type", BASE.replace("ncpus = 2", 'sysctls = { "net.inet.tcp.cc.algorithm" = 1.5 }'),
     '2: hosts.h1.sysctls."net.inet.tcp.cc.algorithm"', ["int, a string or a boolean"]),
    ("unknown step", BASE + '[[scenario]]\nstep = "pnig"\n', "11: scenario[0].step", ['did you mean "ping"']),
    ("step key", BASE + '[[scenario]]\nstep = "ping"\nfrom = "h1"\nto = "h2"\ncuont = 3\n',
     "14: scenario[0].cuont", ['did you mean "count"']),
    ("transfer to nowhere", BASE + '[[scenario]]\nstep = "tcp_transfer"\nfrom = "h1"\nto = "10.9.9.9"\n',
     "13: scenario[0].to", ["not an address of a host"]),
    ("unknown link in step", BASE + '[[scenario]]\nstep = "partition"\nlink = "h1_h2"\n',
     "12: scenario[0].link", ['no link called "h1_h2"', 'did you mean "h1-h2"']),
    ("address on a switch", BASE + '[switches.sw]\n[[links]]\na = "h1"\nb = "sw"\nb_address = "10.1.0.1/24"\n',
     "14: links[1].b_address", ["switch port has no address"]),
    ("port taken", BASE + '[[scenario]]\nstep = "tcp_transfer"\nfrom = "h1"\nto = "h2"\nport = 80\n'
     '[[scenario]]\nstep = "tcp_transfer"\nfrom = "h1"\nto = "h2"\nport = 80\n',
     "19: scenario[1].port", ["already serves tcp port 80"]),
    ("no hosts", "[network]\nseed = 1\n", "", ["at least one host"]),
    ("udp mtu over one datagram", BASE + 'kind = "udp"\nmtu = 65535\n', "11: links[0].mtu",
     ["at most 65493, not 65535"]),
    ("tap device name too long", TAP + 'device = "a-very-long-tap-name"\n', "5: links[0].device",
     ["Linux allows at most 15"]),
    ("tap device name with a slash", TAP + 'device = "tn/0"\n', "5: links[0].device",
     ["not a valid Linux interface name"]),
    ("netns with a slash", TAP + 'netns = "../x"\n', "5: links[0].netns", ["network namespace name"]),
    ("tap link with a b", TAP + 'b = "h1"\n', "5: links[0].b", ['a tap link has no "b"']),
    ("tap link with a delay", TAP + "delay = 0.1\n", "5: links[0].delay", ["a tap link takes no delay"]),
    ("tap link with two kernel addresses", TAP + 'b_address = ["10.0.0.1/24", "10.0.0.2/24"]\n',
     "5: links[0].b_address", ["the kernel side of a tap link takes one address"]),
    ("udp link with a queue_len", BASE + 'kind = "udp"\nqueue_len = 5\n', "11: links[0].queue_len",
     ["a udp link has no queue_len"]),
    ("udp link with a delay", BASE + 'kind = "udp"\ndelay = 0.1\n', "11: links[0].delay",
     ["a udp link has no delay (use jitter or rate)"]),
    ("memory link with a device", BASE + 'device = "tap0"\n', "10: links[0].device", ['only a tap link takes "device"']),
    ("unknown link kind", BASE + 'kind = "mem"\n', "10: links[0].kind",
     ['must be one of "memory", "udp", "tap", not "mem"; did you mean "memory"?']),
    ("partition of a tap link", TAP + '[[scenario]]\nstep = "partition"\nlink = "h1-kernel"\n', "7: scenario[0].link",
     ["h1-kernel is a tap link: it cannot be partitioned or impaired"]),
    ("dns zone address", BASE.replace("ncpus = 2", 'dns = { zone = { "www" = "10.0.2.300" } }'),
     '2: hosts.h1.dns.zone.www', ["must be an IPv4 address"]),
    ("dns zone name twice", BASE.replace("ncpus = 2", 'dns = { zone = { "www" = "10.0.2.2", "WWW" = "10.0.2.3" } }'),
     '2: hosts.h1.dns.zone.WWW', ["listed twice"]),
    ("dns zone name outside origin",
     BASE.replace("ncpus = 2", 'dns = { origin = "lab", zone = { "www.other." = "10.0.2.2" } }'),
     '2: hosts.h1.dns.zone."www.other."', ["outside the zone's origin lab"]),
    ("dns zone empty address list", BASE.replace("ncpus = 2", 'dns = { zone = { "www" = [] } }'),
     '2: hosts.h1.dns.zone.www', ["non-empty array"]),
    ("dns without zone", BASE.replace("ncpus = 2", 'dns = { origin = "lab" }'),
     '2: hosts.h1.dns', ['missing key "zone"']),
    ("dns key typo", BASE.replace("ncpus = 2", 'dns = { zone = {}, orgin = "lab" }'),
     '2: hosts.h1.dns.orgin', ['did you mean "origin"']),
    ("dns bad origin", BASE.replace("ncpus = 2", 'dns = { zone = {}, origin = "a..b" }'),
     '2: hosts.h1.dns.origin', ["empty label"]),
    ("resolver not an address", BASE.replace("ncpus = 2", 'resolver = "ns1"'),
     '2: hosts.h1.resolver', ["must be an IPv4 address"]),
    ("inline tables 400 deep", BASE.replace("ncpus = 2", "x = " + "{ a = " * 400 + "1" + " }" * 400),
     "2: hosts.h1.x", ["nested more than 32"]),
    ("arrays 400 deep", BASE.replace("ncpus = 2", "x = " + "[" * 400 + "1" + "]" * 400),
     "2: hosts.h1.x", ["nested more than 32"]),
]  # fmt: skip


@pytest.mark.parametrize(("text", "where", "words"), [c[1:] for c in BROKEN], ids=[c[0] for c in BROKEN])
def test_a_broken_file_names_line_and_key(text: str, where: str, words: list[str]) -> None:
    with pytest.raises(TopologyError) as info:
        loads_topology(text, filename="t.toml")
    message = str(info.value)
    assert message.startswith(f"t.toml:{where}" if where else "t.toml: "), message
    for word in words:
        assert word in message, message
    assert "Traceback" not in message and "\n" not in message
    assert info.value.filename == "t.toml"


def test_an_unreadable_file_is_a_topology_error(tmp_path: Path) -> None:
    with pytest.raises(TopologyError, match=r"missing\.toml: cannot read"):
        load_topology(tmp_path / "missing.toml")


async def test_a_host_finds_an_unknown_sysctl_and_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(BASE.replace("ncpus = 2", 'sysctls = { "net.inet.tcp.cc.algoritm" = "cubic" }'))
    topo = load_topology(path)
    with pytest.raises(TopologyError) as info:
        async with build_network(topo):
            pass  # pragma: no cover
    message = str(info.value)
    assert message.startswith(f'{path}:2: hosts.h1.sysctls."net.inet.tcp.cc.algoritm": ')
    assert 'did you mean "net.inet.tcp.cc.algorithm"' in message


async def test_a_scenario_sysctl_is_checked_before_anything_runs() -> None:
    text = BASE + '[[scenario]]\nstep = "sysctl"\nhost = "h1"\nname = "net.inet.ip.forwarding"\nvalue = 7\n'
    topo = loads_topology(text)
    with pytest.raises(TopologyError, match=r"^<string>:14: scenario\[0\]\.value: .*above 1"):
        async with build_network(topo):
            pass  # pragma: no cover


async def test_build_makes_hosts_links_addresses_routes_and_sysctls(
    autojump_clock: trio.testing.MockClock,
) -> None:
    topo = load_topology(EXAMPLES / "router.toml")
    async with build_network(topo, seed=5) as built:
        assert built.seed == 5 and not built.split
        assert set(built.hosts) == {"h1", "h2", "h3", "r1"}
        r1 = built.hosts["r1"]
        assert r1.sysctl("net.inet.ip.forwarding") == 1
        assert (built.hosts["h3"].ncpus, r1.ncpus) == (1, 2)
        assert [row.name for row in r1.ifconfig()] == ["lo0", "vnic0", "vnic1", "vnic2"]
        h1_routes = {(row.destination, row.gateway) for row in built.hosts["h1"].netstat_r()}
        assert any(gw == "10.0.1.1" for _, gw in h1_routes), h1_routes
        result = await built.hosts["h1"].ping("10.0.3.2", count=1)
        assert result.received == 1
        assert set(built.links) == {"h1-r1", "r1-h2", "r1-h3"}


async def test_build_serves_dns_and_points_resolvers_at_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    text = BASE.replace(
        "ncpus = 2",
        'dns = { origin = "lab", ttl = 60, zone = { "www" = "10.0.2.2", "db" = ["10.0.2.3", "10.0.2.4"] } }',
    ).replace("[hosts.h2]", '[hosts.h2]\nresolver = "10.0.0.1"')
    topo = loads_topology(text)
    assert topo.host("h1").dns is not None and topo.host("h1").dns.ttl == 60
    assert topo.host("h2").resolver == "10.0.0.1"
    async with build_network(topo, seed=1) as built:
        h2 = built.hosts["h2"]
        assert h2.resolver == "10.0.0.1"
        assert await h2.resolve("db.lab") == ["10.0.2.3", "10.0.2.4"]
        assert built.dns_servers["h1"].statistics().answers == 1


async def test_pcap_dir_gets_one_capture_per_link(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    topo = load_topology(EXAMPLES / "two_hosts.toml")
    async with build_network(topo, pcap_dir=tmp_path / "caps") as built:
        await run_scenario(built, topo.scenario[:1])
    capture = tmp_path / "caps" / "h1-h2.pcap"
    assert capture.stat().st_size > 24  # a header and frames


# What each example must show (beyond every step being ok).
async def _run_example(name: str, seed: int | None = None) -> list:
    topo = load_topology(EXAMPLES / name)
    async with build_network(topo, seed=seed) as built:
        return await run_scenario(built)


async def test_two_hosts_example_runs(autojump_clock: trio.testing.MockClock) -> None:
    ping, transfer = await _run_example("two_hosts.toml")
    assert ping.ok and ping.outcome["received"] == 3
    assert transfer.ok and transfer.outcome["sha256"] == transfer.outcome["sha256_received"]
    assert transfer.outcome["bytes_received"] == 256 * 1024
    json.dumps([ping.to_json(), transfer.to_json()])  # plain types only


async def test_router_example_runs(autojump_clock: trio.testing.MockClock) -> None:
    results = await _run_example("router.toml")
    assert [r.ok for r in results] == [True] * 4
    assert [results[0].outcome["received"], results[1].outcome["received"]] == [3, 3]
    assert results[2].outcome["bytes_received"] == 512 * 1024
    assert results[3].outcome["received"] == 200
    # Farther is slower: h3's link has 2 ms of delay and 100 Mbit/s.
    assert results[1].timing["rtt_min_ms"] > results[0].timing["rtt_min_ms"]


async def test_dual_stack_example_runs(autojump_clock: trio.testing.MockClock) -> None:
    # The server has no IPv6 address in the file: its ping and transfer to
    # the client's fd00:1::2 come from the address it made from the router's
    # advertisement (no address, no source: they would fail).
    results = await _run_example("dual_stack.toml")
    assert all(r.ok for r in results), [r.summary() for r in results]
    assert results[2].outcome["received"] >= 2
    assert results[3].outcome["sha256"] == results[3].outcome["sha256_received"]
    topo = load_topology(EXAMPLES / "dual_stack.toml")
    assert topo.host("router").rtadvd[0].prefixes == ("fd00:2::/64",)


async def test_switched_lan_example_runs(autojump_clock: trio.testing.MockClock) -> None:
    results = await _run_example("switched_lan.toml")
    assert all(r.ok for r in results), [r.summary() for r in results]
    unplugged = results[3]
    assert unplugged.outcome["received"] == 0 and unplugged.ok  # expect = "fail"
    assert results[6].outcome["bytes_received"] == 256 * 1024


async def test_lossy_tcp_example_delivers_every_byte_with_both_algorithms(
    autojump_clock: trio.testing.MockClock,
) -> None:
    results = await _run_example("lossy_tcp.toml")
    assert all(r.ok for r in results), [r.summary() for r in results]
    cc = {"name": "net.inet.tcp.cc.algorithm", "old": "newreno", "new": "cubic", "ok": True}
    assert results[2].outcome == cc
    for transfer in (results[1], results[3]):
        assert transfer.outcome["bytes_received"] == 2_000_000
        assert transfer.outcome["sha256"] == transfer.outcome["sha256_received"]
        assert transfer.timing["retransmits"] > 0  # 5% loss costs something


def _close(x: object, y: object) -> bool:
    # Equal up to float rounding, through the dicts and lists of a step's timing.
    if isinstance(x, Mapping) and isinstance(y, Mapping):
        return x.keys() == y.keys() and all(_close(x[k], y[k]) for k in x)
    if isinstance(x, (list, tuple)) and isinstance(y, (list, tuple)):
        return len(x) == len(y) and all(_close(a, b) for a, b in zip(x, y))
    return bool(x == pytest.approx(y))


async def test_a_run_replays_from_its_seed(autojump_clock: trio.testing.MockClock) -> None:
    first = await _run_example("two_hosts.toml", seed=3)
    second = await _run_example("two_hosts.toml", seed=3)
    other = await _run_example("two_hosts.toml", seed=4)
    assert [r.outcome for r in first] == [r.outcome for r in second]
    # Timing replays too, up to float rounding (the clock does not start at 0 each time).
    for a, b in zip(first, second, strict=True):
        assert _close(a.timing, b.timing), (a.timing, b.timing)
    assert first[1].outcome["sha256"] != other[1].outcome["sha256"]  # content derives from the seed


async def test_the_names_example_of_the_docs_resolves(autojump_clock: trio.testing.MockClock) -> None:
    doc = (Path(__file__).resolve().parent.parent / "docs" / "topology.md").read_text()
    section = doc[doc.index("## Names") : doc.index("## Link kinds")]
    example = section[section.index("```toml\n") + 8 : section.index("```\n", section.index("```toml"))]
    topo = loads_topology(example, filename="docs/topology.md (names)")
    async with build_network(topo, seed=1) as built:
        assert await built.hosts["client"].resolve("www.lab") == ["10.0.2.2"]
