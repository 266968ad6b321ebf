"""Topology files with network services: ``[hosts.X] dhcp``, ``address =
"dhcp"`` on a link end, and ``nat``; loading, their errors, and running
``examples/dhcp_lan.toml``."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing

from trionet._build import build_network
from trionet._scenario import run_scenario
from trionet._topology import TopologyError, load_topology, loads_topology

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

LAN = """\
[hosts.r1]
forwarding = true
dhcp = { interface = "r1-lan", pool = "10.0.0.100-10.0.0.200", router = "10.0.0.1", dns = ["10.0.0.1"] }
[hosts.h1]
[switches.lan]

[[links]]
name = "r1-lan"
a = "r1"
a_address = "10.0.0.1/24"
b = "lan"

[[links]]
a = "h1"
a_address = "dhcp"
b = "lan"
"""


async def test_the_dhcp_lan_example_gives_every_host_a_distinct_address(
    autojump_clock: trio.testing.MockClock,
) -> None:
    topo = load_topology(EXAMPLES / "dhcp_lan.toml")
    async with build_network(topo) as built:
        # Bound before the scenario: every client has its address already.
        addresses = {}
        for name in ("h1", "h2", "h3"):
            (row,) = [row for row in built.hosts[name].ifconfig() if row.name != "lo0"]
            (address,) = row.inet
            addresses[name] = address
        results = await run_scenario(built)
        leases = built.hosts["r1"].dhcp_leases()
    assert all(r.ok for r in results), [r.summary() for r in results]
    assert len(set(addresses.values())) == 3
    for address in addresses.values():
        ip, _, prefix = address.partition("/")
        assert prefix == "24" and 100 <= int(ip.rsplit(".", 1)[1]) <= 200
    # After 900 s with 600 s leases: renewed, still the same three.
    assert sorted(row.address for row in leases) == sorted(a.split("/")[0] for a in addresses.values())
    assert {row.hostname for row in leases} == {"h1", "h2", "h3"}
    assert {row.state for row in leases} == {"bound"}


def test_dhcp_and_nat_keys_load() -> None:
    topo = loads_topology(LAN)
    (pool,) = topo.host("r1").dhcp
    assert (pool.interface, pool.pool, pool.router, pool.dns, pool.lease_time) == (
        "r1-lan", "10.0.0.100-10.0.0.200", "10.0.0.1", ("10.0.0.1",), 3600
    )
    (h1_link,) = [spec for spec in topo.links if spec.a == "h1"]
    assert h1_link.a_dhcp and h1_link.a_addresses == ()
    gw = loads_topology(LAN.replace("forwarding = true", 'forwarding = true\nnat = { outside = "r1-lan" }'))
    assert gw.host("r1").nat is not None and gw.host("r1").nat.outside == "r1-lan"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('pool = "10.0.0.100-10.0.0.200"', 'pool = "10.0.0.200-10.0.0.100"'), r"hosts\.r1\.dhcp\.pool: a pool is 'first-last'"),
        (('interface = "r1-lan"', 'interface = "r1-lam"'), r'hosts\.r1\.dhcp\.interface: no link of this host called "r1-lam"; did you mean "r1-lan"'),
        (('dns = ["10.0.0.1"]', 'dns = ["10.0.0"]'), r"hosts\.r1\.dhcp\.dns: \[0\]: must be an IPv4 address"),
        (('router = "10.0.0.1", ', ""), None),  # fine without a router
        (('pool = "10.0.0.100-10.0.0.200", ', ""), r'hosts\.r1\.dhcp: missing key "pool"'),
        (("forwarding = true", 'nat = { outside = "r1-lan" }'), r"hosts\.r1\.nat: a NAT forwards: set forwarding = true"),
        (('b = "lan"\n"""', 'b = "lan"\n"""'), None),
    ],
)
def test_dhcp_and_nat_mistakes_name_their_key(change: tuple[str, str], message: str | None) -> None:
    text = LAN.replace(*change)
    if message is None:
        loads_topology(text)
        return
    with pytest.raises(TopologyError, match=message):
        loads_topology(text)


async def test_a_pool_off_the_interfaces_subnet_is_an_error_when_built(autojump_clock: trio.testing.MockClock) -> None:
    topo = loads_topology(LAN.replace("10.0.0.100-10.0.0.200", "10.9.0.100-10.9.0.200"))
    with pytest.raises(TopologyError, match=r"<string>:3: hosts\.r1\.dhcp: .*no address on the subnet of 10\.9\.0\.100-10\.9\.0\.200"):
        async with build_network(topo):
            pass


async def test_a_dhcp_end_without_a_server_is_an_error_naming_the_link(autojump_clock: trio.testing.MockClock) -> None:
    topo = loads_topology(LAN.replace('dhcp = { interface = "r1-lan", pool = "10.0.0.100-10.0.0.200", router = "10.0.0.1", dns = ["10.0.0.1"] }\n', ""))
    with pytest.raises(TopologyError, match=r"links\[1\]\.a_address: h1 got no DHCP lease on vnic0 in 120 s"):
        async with build_network(topo):
            pass


def test_the_kernel_side_of_a_tap_link_cannot_be_dhcp() -> None:
    text = '[hosts.h1]\n[[links]]\nkind = "tap"\na = "h1"\na_address = "10.0.0.1/24"\nb_address = "dhcp"\n'
    with pytest.raises(TopologyError, match=r'links\[0\]\.b_address: the kernel side of a tap link takes an address, not "dhcp"'):
        loads_topology(text)
