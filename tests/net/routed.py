"""The routed topology several tests share: two hosts, two routers, a narrow link."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trionet


@asynccontextmanager
async def routed(seed: int = 1, pcap: Path | None = None) -> AsyncIterator[dict[str, Any]]:
    """h1 10.0.1.2 --- r1 ==(mtu 576)== r2 --- 10.0.3.2 h2, links of 1, 2 and
    1 ms, forwarding on, routes set; ``pcap`` records h1's link at h1's side.

    Yields the hosts by name, and the last link as ``"l3"``.
    """
    async with trionet.open_network(seed=seed) as net:
        h1, r1, r2, h2 = [await net.add_host(n, ncpus=2) for n in ("h1", "r1", "r2", "h2")]
        l1 = await net.link(h1, r1, delay=0.001, pcap=pcap)
        l2 = await net.link(r1, r2, delay=0.002, mtu=576)
        l3 = await net.link(r2, h2, delay=0.001)
        h1.ifconfig(l1.ends[0].name, "10.0.1.2/24")
        r1.ifconfig(l1.ends[1].name, "10.0.1.1/24")
        r1.ifconfig(l2.ends[0].name, "10.0.2.1/24")
        r2.ifconfig(l2.ends[1].name, "10.0.2.2/24")
        r2.ifconfig(l3.ends[0].name, "10.0.3.1/24")
        h2.ifconfig(l3.ends[1].name, "10.0.3.2/24")
        h1.route_add("default", "10.0.1.1")
        h2.route_add("default", "10.0.3.1")
        r1.route_add("10.0.3.0/24", "10.0.2.2")
        r2.route_add("10.0.1.0/24", "10.0.2.1")
        for r in (r1, r2):
            r.sysctl("net.inet.ip.forwarding", 1)
        yield {"h1": h1, "r1": r1, "r2": r2, "h2": h2, "l3": l3}
