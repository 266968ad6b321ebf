"""A complete network driver written against ``trionet.lowlevel``.

``MiniNic`` is a small NIC, driver and "hardware" in one class, as
``trionet/drivers/vnic.py`` is (read that one first; this one is shorter):

- **Hardware**: a 32-frame RX FIFO that the wire fills, an 8-descriptor TX
  ring that transmits as soon as descriptors are posted, an interrupt cause
  register (``RX``, ``TX``, ``LINK``) and an interrupt mask. Raising a cause
  while unmasked asserts the IRQ (``host.intr.sched_ithd``). Two fault hooks,
  ``hold_tx_completions()`` and ``release_tx_completions()``, stall the
  transmitter the way a hung NIC would; ``check_driver`` uses them to test
  OACTIVE.
- **Driver**: the entry points ``attach``, ``detach``, ``init``, ``stop``,
  ``start``, ``ioctl``, ``set_filter``, ``intr`` and ``watchdog``, plus a 1 Hz
  timer that follows the carrier.

The serializer rule (STYLE section 8, rule 6): the framework calls every
entry point with ``ifp.serializer`` held, and each one asserts it first (as
DragonFly's ``sk_ioctl`` does with ``ASSERT_SERIALIZED``). Only the timer, a
callout the driver scheduled itself, enters the serializer on its own.
``start``, ``intr`` and ``watchdog`` are plain functions (they never sleep, so
the stack may call ``start`` inline from the sending thread); ``init`` and
``stop`` are async but do their work in plain helpers the watchdog reuses.
Hardware methods never await, so they cannot interleave with an entry point.

``main()`` runs ``trionet.testing.check_driver`` on ``MiniNic`` (every check
passes, none skipped), then joins two hosts with a ``MiniNic`` each and sends
ping and a 64 KiB TCP transfer through them, in virtual time. (The log shows
one ``stray_interrupt`` warning: check_driver's last check asserts the IRQ
after detach, to see that no handler runs any more.)

Run::

    python3 examples/custom_driver.py
"""

from __future__ import annotations

import hashlib
import logging
import sys
from collections import deque
from typing import Any

import structlog
import trio
import trio.testing

import trionet
from trionet import IfFlags, IfIoctl, Ifnet, LinkState
from trionet.lowlevel import ETHER_HDR_LEN, Callout, Driver, WireEndpoint, if_devstart
from trionet.testing import check_driver
from trionet.wires import memory_pair

log = structlog.get_logger(__name__)

# The interrupt cause register's bits.
RX, TX, LINK = 0x1, 0x2, 0x4

RX_FIFO = 32
TX_RING = 8
#: Seconds a posted descriptor may take before the watchdog fires.
TX_TIMEOUT = 5


class MiniNic(Driver):
    """A small Ethernet NIC on a wire endpoint: ``await host.if_attach(MiniNic(ep))``."""

    name_prefix = "mn"

    def __init__(self, endpoint: WireEndpoint, *, lladdr: bytes | None = None) -> None:
        self.endpoint = endpoint
        self._lladdr = lladdr
        self._timer: Callout | None = None
        # Hardware state.
        self._rx_fifo: deque[bytes] = deque()
        self._rx_on = False
        self._accept: frozenset[bytes] = frozenset()  # multicast filter
        self._promisc = False
        self._tx_posted: deque[bytes] = deque()
        self._tx_free = TX_RING
        self._tx_done_ok = self._tx_done_err = 0
        self._tx_held = False
        self._isr = 0
        self._masked = True
        # Driver counters.
        self.interrupts = self.spurious = self.oactive = 0

    ####################################################################
    # lifecycle
    ####################################################################

    async def attach(self, ifp: Ifnet) -> None:
        """Describe the interface and connect to the wire; the interrupt stays masked."""
        if self._lladdr is None:
            digest = hashlib.blake2s(f"{ifp.host.name}/{ifp.name}".encode(), digest_size=5)
            self._lladdr = b"\x02" + digest.digest()  # locally administered
        ifp.lladdr = self._lladdr
        ifp.mtu = min(1500, self.endpoint.mtu)
        ifp.flags |= IfFlags.BROADCAST | IfFlags.SIMPLEX | IfFlags.MULTICAST
        ifp.link_state = LinkState.DOWN
        ifp.snd.maxlen = 2 * TX_RING
        self._timer = ifp.host.callout(ifp.cpuid)
        self.endpoint.set_receiver(self.hw_receive)

    async def detach(self) -> None:
        self.endpoint.set_receiver(None)

    async def init(self) -> None:
        """Reset the hardware, program the filter, start the timer, enable the interrupt."""
        self._init()

    def _init(self) -> None:
        # Plain, so the watchdog can re-init without sleeping (em_init).
        ifp = self.ifp
        ifp.serializer.assert_serialized()
        self._stop()
        self._program_filter()
        self._rx_on = True
        ifp.flags = (ifp.flags | IfFlags.RUNNING) & ~IfFlags.OACTIVE
        self._update_link()
        assert self._timer is not None
        self._timer.reset(1.0, self._tick)
        self.enable_intr()  # handler_enable, then unmask

    async def stop(self) -> None:
        """Mask the interrupt, stop the timer, reset the rings (their frames are counted)."""
        self._stop()

    def _stop(self) -> None:
        ifp = self.ifp
        ifp.serializer.assert_serialized()
        self.disable_intr()  # mask, then handler_disable
        if self._timer is not None:
            self._timer.stop()
        ifp.flags &= ~(IfFlags.RUNNING | IfFlags.OACTIVE)
        ifp.timer = 0
        ifp.data.iqdrops += len(self._rx_fifo)
        ifp.data.opackets += self._tx_done_ok
        ifp.data.oerrors += self._tx_done_err + len(self._tx_posted)
        self._rx_fifo.clear()
        self._tx_posted.clear()
        self._tx_free = TX_RING
        self._tx_done_ok = self._tx_done_err = 0
        self._tx_held = False
        self._rx_on = False
        self._isr = 0

    async def ioctl(self, cmd: IfIoctl, arg: Any) -> None:
        """Flags, MTU and multicast: the generic Ethernet handling does it all."""
        self.ifp.serializer.assert_serialized()
        await super().ioctl(cmd, arg)

    async def set_filter(self) -> None:
        """PROMISC, ALLMULTI or the multicast list changed: reprogram the filter."""
        self.ifp.serializer.assert_serialized()
        self._program_filter()

    ####################################################################
    # transmit
    ####################################################################

    def start(self) -> None:
        """Move frames from the send queue to free TX descriptors (a plain
        function: it never sleeps)."""
        ifp = self.ifp
        ifp.serializer.assert_serialized()
        if ifp.flags & (IfFlags.RUNNING | IfFlags.OACTIVE) != IfFlags.RUNNING:
            return
        if ifp.link_state is not LinkState.UP:
            ifp.data.oerrors += ifp.snd.purge()  # no carrier: nothing can go out
            return
        posted = 0
        while not ifp.snd.is_empty():
            if self._tx_free == 0:
                ifp.flags |= IfFlags.OACTIVE  # TX completion clears it
                self.oactive += 1
                break
            frame = ifp.snd.dequeue()
            if frame is None:  # the queue discipline said "not yet"
                break
            if not ETHER_HDR_LEN <= len(frame) <= ifp.mtu + ETHER_HDR_LEN:
                ifp.data.oerrors += 1
                continue
            self._tx_posted.append(frame)
            self._tx_free -= 1
            posted += 1
        if posted:
            ifp.timer = TX_TIMEOUT
            self._hw_transmit()

    def _txeof(self) -> None:
        # Reclaim the descriptors the hardware finished.
        ifp = self.ifp
        ifp.data.opackets += self._tx_done_ok
        ifp.data.oerrors += self._tx_done_err
        self._tx_free += self._tx_done_ok + self._tx_done_err
        self._tx_done_ok = self._tx_done_err = 0
        if self._tx_free:
            ifp.flags &= ~IfFlags.OACTIVE
        if self._tx_free == TX_RING:
            ifp.timer = 0

    def watchdog(self) -> None:
        """A transmission did not complete in ``TX_TIMEOUT`` seconds: reset."""
        ifp = self.ifp
        ifp.serializer.assert_serialized()
        log.warning("watchdog_fired", ifname=ifp.name, posted=len(self._tx_posted))
        ifp.data.oerrors += 1
        self._init()
        if_devstart(ifp)

    ####################################################################
    # interrupt and timer
    ####################################################################

    def intr(self) -> None:
        """Read and clear the causes; receive, reclaim, follow the link, restart output."""
        ifp = self.ifp
        ifp.serializer.assert_serialized()
        isr, self._isr = self._isr, 0
        if not isr:
            self.spurious += 1  # a shared line, or already handled
            return
        self.interrupts += 1
        if not ifp.flags & IfFlags.RUNNING:
            return
        if isr & RX:
            while self._rx_fifo:
                frame = self._rx_fifo.popleft()
                ifp.data.ipackets += 1
                ifp.data.ibytes += len(frame)
                ifp.input(frame)
        if isr & TX:
            self._txeof()
        if isr & LINK:
            self._update_link()
        if not ifp.snd.is_empty():
            if_devstart(ifp)

    async def _tick(self) -> None:
        # A callout: nobody holds the serializer for us.
        ifp = self.ifp
        async with ifp.serializer:
            if ifp.flags & IfFlags.RUNNING:
                self._update_link()
                assert self._timer is not None
                self._timer.reset(1.0, self._tick)

    def _update_link(self) -> None:
        state = LinkState.UP if self.endpoint.link_up else LinkState.DOWN
        if state is not self.ifp.link_state:
            self.ifp.link_state = state
            log.info("link_state_changed", ifname=self.ifp.name, state=state.name)

    ####################################################################
    # the hardware (plain functions: they never await)
    ####################################################################

    def intr_mask(self) -> None:
        self._masked = True

    def intr_unmask(self) -> None:
        self._masked = False
        if self._isr:
            self._raise(0)  # a cause arrived while masked

    def _raise(self, cause: int) -> None:
        self._isr |= cause
        if not self._masked:
            assert self.ifp.irq is not None
            self.ifp.host.intr.sched_ithd(self.ifp.irq)

    def _program_filter(self) -> None:
        ifp = self.ifp
        self._promisc = bool(ifp.flags & (IfFlags.PROMISC | IfFlags.ALLMULTI))
        self._accept = frozenset(ifp.multiaddrs) | {b"\xff" * 6}

    def hw_receive(self, frame: bytes) -> None:
        """The wire delivers a frame: filter it into the RX FIFO and raise RX."""
        if not self._rx_on:
            return
        if len(frame) < ETHER_HDR_LEN:
            self.ifp.data.ierrors += 1
            return
        dst = frame[:6]
        if not (self._promisc or dst == self._lladdr or dst in self._accept):
            return  # not for us
        if len(self._rx_fifo) >= RX_FIFO:
            self.ifp.data.iqdrops += 1  # FIFO overrun
            return
        self._rx_fifo.append(frame)
        self._raise(RX)

    def _hw_transmit(self) -> None:
        # The DMA engine: put every posted frame on the wire, then raise TX.
        if self._tx_held or not self._tx_posted:
            return
        while self._tx_posted:
            if self.endpoint.send(self._tx_posted.popleft()):
                self._tx_done_ok += 1
            else:
                self._tx_done_err += 1
        self._raise(TX)

    def hold_tx_completions(self) -> None:
        """Fault hook: the transmitter stalls; posted descriptors stay busy."""
        self._tx_held = True

    def release_tx_completions(self) -> None:
        """Fault hook: the transmitter resumes."""
        self._tx_held = False
        self._hw_transmit()


async def main() -> None:
    report = await check_driver(MiniNic)
    print(f"check_driver(MiniNic): {len(report.passed)} checks passed, "
          f"{len(report.skipped)} skipped")
    for check in report.passed:
        print(f"  ok  {check}")

    async with trionet.open_host("h1") as h1, trionet.open_host("h2") as h2:
        a, b = memory_pair("cable")
        nic1, nic2 = MiniNic(a), MiniNic(b)
        if1, if2 = await h1.if_attach(nic1), await h2.if_attach(nic2)
        await h1.ifup(if1)
        await h2.ifup(if2)
        h1.ifconfig(if1.name, "10.0.0.1/24")
        h2.ifconfig(if2.name, "10.0.0.2/24")

        result = await h1.ping("10.0.0.2", count=3)
        print(f"\nping 10.0.0.2 from h1: {result.received}/{result.sent} replies")

        async def sink(stream: trionet.TcpStream) -> None:
            # Count what arrives, then say how much.
            total = 0
            while data := await stream.receive_some():
                total += len(data)
            await stream.send_all(str(total).encode())
            await stream.aclose()

        async with trio.open_nursery() as nursery:
            await nursery.start(h2.serve_tcp, sink, 9)
            async with await h1.open_tcp_stream("10.0.0.2", 9) as stream:
                await stream.send_all(bytes(64 * 1024))
                await stream.send_eof()
                print(f"TCP: sent 65536 bytes, h2 counted {(await stream.receive_some()).decode()}")
            nursery.cancel_scope.cancel()

        await trio.testing.wait_all_tasks_blocked()
        for host, nic in ((h1, nic1), (h2, nic2)):
            print(f"\n{host.name}$ netstat -i")
            print(trionet.format_netstat_i(host.netstat_i()), end="")
            print(
                f"{host.name}:{nic.ifp.name}: {nic.interrupts} interrupts, "
                f"{nic.spurious} spurious, TX ring full (OACTIVE) {nic.oactive} times"
            )


if __name__ == "__main__":
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
