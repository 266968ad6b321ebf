"""Two NICs on one IRQ, with ``kern.intr_mpsafe`` flipped at run time.

Matthew Dillon's mail announcing the MPSAFE network interrupt (DragonFly BSD,
November 2005) asks testers to ``sysctl kern.intr_mpsafe=1``, to check with
``vmstat -i`` which drivers share the network interrupt ("It is quite typical
for firewire to share the same irq"), then to ping a little and grep the
interrupt thread out of ``ps axl``: it "should be marked 'M'", running
without the Big Giant Lock. This script does the same on a trionet host:

1. Host ``dfly`` has two vnics hooked to the same line
   (``if_attach(..., irq=11)``), so ``vmstat -i`` shows one row,
   ``irq11: vnic0/vnic1``. Each vnic is wired to a peer host, and a ping
   through each raises the shared IRQ; the ithread runs both handlers, each
   under its own interface serializer.
2. ``kern.intr_mpsafe=1``: the chain runs without Giant and ``ps`` shows
   ``ithread 11`` with ``M``.
3. ``host.sysctl("kern.intr_mpsafe", 0)``: the Giant fallback. It takes effect
   at the ithread's next interrupt (``ps`` still shows ``M`` right after the
   sysctl); from then on every handler runs with Giant held.
4. Back to 1, but a handler that is not MPSAFE (``fwohci0``, the firewire
   controller of the mail) joins the line: one such sharer makes the whole
   chain take Giant. Unregistering it gives the ``M`` back.

Each vnic's handler counts its runs with and without Giant
(``host.giant.held_by()``). Everything runs in virtual time.

Run::

    python3 examples/shared_irq.py
"""

from __future__ import annotations

import logging
import sys
from collections import Counter

import structlog
import trio
import trio.testing

import trionet
from trionet.drivers.vnic import Vnic
from trionet.lowlevel import WireEndpoint
from trionet.wires import memory_pair

IRQ = 11


class ProbedVnic(Vnic):
    """A vnic whose interrupt handler notes whether it ran holding Giant."""

    def __init__(self, endpoint: WireEndpoint) -> None:
        super().__init__(endpoint)
        self.runs: Counter[str] = Counter()

    def intr(self) -> None:
        self.ifp.serializer.assert_serialized()
        self.runs["Giant" if self.ifp.host.giant.held_by() else "no Giant"] += 1
        super().intr()


def fwohci_intr() -> None:
    """A firewire controller's handler: not MPSAFE, and nothing to do here."""


def ithread_ps(host: trionet.Host) -> str:
    """``ps axl | grep "ithread 11"``, with the header."""
    rows = [row for row in host.ps() if row.name == f"ithread {IRQ}"]
    return trionet.format_ps(rows)


async def exercise(
    host: trionet.Host, nics: list[ProbedVnic], peers: list[str], title: str
) -> None:
    """Ping through each NIC, then show ``vmstat -i``, ``ps`` and Giant use."""
    print(f"==== {title} ====")
    before = [Counter(nic.runs) for nic in nics]
    for nic, peer in zip(nics, peers, strict=True):
        result = await host.ping(peer, count=2, interval=0.1)
        print(f"ping {peer} via {nic.ifp.name}: {result.received}/{result.sent} replies")
    await trio.testing.wait_all_tasks_blocked()
    print(trionet.format_vmstat_i(host.vmstat_i()))
    print(ithread_ps(host))
    for nic, old in zip(nics, before, strict=True):
        runs = nic.runs - old
        print(
            f"{nic.ifp.name} handler: {runs['Giant']} runs with Giant, "
            f"{runs['no Giant']} without"
        )
    print()


def sysctl(host: trionet.Host, name: str, value: int) -> None:
    old = host.sysctl(name, value)
    print(f"# sysctl {name}={value}\n{name}: {old} -> {value}")


async def main() -> None:
    async with (
        trionet.open_host("dfly", ncpus=2) as dfly,
        trionet.open_host("peer0") as peer0,
        trionet.open_host("peer1") as peer1,
    ):
        nics = []
        peer_addrs = []
        for unit, peer in enumerate((peer0, peer1)):
            near, far = memory_pair(f"wire{unit}")
            nic = ProbedVnic(near)
            ifp = await dfly.if_attach(nic, irq=IRQ)  # the same line for both
            pifp = await peer.if_attach(Vnic(far))
            await dfly.ifup(ifp)
            await peer.ifup(pifp)
            dfly.ifconfig(ifp.name, f"10.0.{unit}.1/24")
            peer.ifconfig(pifp.name, f"10.0.{unit}.2/24")
            nics.append(nic)
            peer_addrs.append(f"10.0.{unit}.2")

        await exercise(dfly, nics, peer_addrs, "kern.intr_mpsafe=1: MPSAFE")

        sysctl(dfly, "kern.intr_mpsafe", 0)
        print("# right after the sysctl, before the next interrupt:")
        print(ithread_ps(dfly))
        await exercise(dfly, nics, peer_addrs, "kern.intr_mpsafe=0: every ithread holds Giant")

        sysctl(dfly, "kern.intr_mpsafe", 1)
        cookie = dfly.intr.register(IRQ, fwohci_intr, name="fwohci0", mpsafe=False)
        print(f"# fwohci0 (not MPSAFE) registered on irq {IRQ}")
        await exercise(dfly, nics, peer_addrs, "kern.intr_mpsafe=1 with a non-MPSAFE sharer")

        dfly.intr.unregister(cookie)
        print(f"# fwohci0 unregistered from irq {IRQ}")
        await exercise(dfly, nics, peer_addrs, "kern.intr_mpsafe=1, network drivers alone")


if __name__ == "__main__":
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
