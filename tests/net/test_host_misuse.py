"""A host used wrongly says so: arguments of the wrong type are refused with
a message naming them."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

import trionet
from trionet import Host


@asynccontextmanager
async def two_hosts() -> AsyncIterator[tuple[trionet.Network, Host, Host]]:
    """h1 10.0.0.1/24 --- 10.0.0.2/24 h2."""
    async with trionet.open_network(seed=1) as net:
        h1, h2 = await net.add_host("h1"), await net.add_host("h2")
        link = await net.link(h1, h2)
        h1.ifconfig(link.ends[0].name, "10.0.0.1/24")
        h2.ifconfig(link.ends[1].name, "10.0.0.2/24")
        yield net, h1, h2


####################################################################
# ifconfig's address
####################################################################


@pytest.mark.parametrize(
    "address",
    [5, 167772161, b"\x0a\x00\x00\x01", ipaddress.IPv4Interface("10.0.0.5/24"), ("10.0.0.5", 24)],
    ids=["small-int", "int", "bytes", "IPv4Interface", "tuple"],
)
async def test_ifconfig_takes_only_an_address_string(
    autojump_clock: trio.testing.MockClock, address: Any
) -> None:
    # ipaddress would take 5 as 0.0.0.5/32 and 4 bytes as an address.
    async with two_hosts() as (_, h1, _h2):
        with pytest.raises(TypeError, match=r"address must be a str such as '10\.0\.0\.1/24', not "):
            h1.ifconfig("vnic0", address)
        with pytest.raises(TypeError):
            h1.ifconfig("vnic0", address, delete=True)
        assert [str(ia) for ia in h1.ifunit("vnic0").addrs] == ["10.0.0.1/24"]
