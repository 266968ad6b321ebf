"""A NIC driver written the way a new user would: outside the project, using
only ``trionet`` and ``trionet.lowlevel`` (and trio).

It has no TX ring (``start`` hands frames straight to the wire) and a
256-frame RX queue drained by its interrupt handler. Every entry point records
whether it saw the interface serializer held.
"""

from __future__ import annotations

from collections import deque

from trionet import IfFlags, Ifnet, LinkState
from trionet.lowlevel import Driver, WireEndpoint


class ToyNic(Driver):
    name_prefix = "toy"

    def __init__(self, endpoint: WireEndpoint) -> None:
        self.endpoint = endpoint
        self.rx: deque[bytes] = deque()
        self.masked = True
        self.seen: list[tuple[str, bool]] = []

    def _saw(self, name: str) -> None:
        self.seen.append((name, self.ifp.serializer.is_serialized()))
        self.ifp.serializer.assert_serialized()

    async def attach(self, ifp: Ifnet) -> None:
        ifp.lladdr = b"\x02\x70\x79\x00\x00\x01"
        ifp.flags |= IfFlags.BROADCAST | IfFlags.MULTICAST
        ifp.snd.maxlen = 64
        self.endpoint.set_receiver(self.receive)

    async def detach(self) -> None:
        self.endpoint.set_receiver(None)

    def receive(self, frame: bytes) -> None:
        # The "hardware": drop (and count) when full, else queue and interrupt.
        if len(self.rx) >= 256:
            self.ifp.data.iqdrops += 1
            return
        self.rx.append(frame)
        if not self.masked:
            assert self.ifp.irq is not None
            self.ifp.host.intr.sched_ithd(self.ifp.irq)

    def intr_mask(self) -> None:
        self.masked = True

    def intr_unmask(self) -> None:
        self.masked = False

    async def init(self) -> None:
        self._saw("init")
        await super().init()
        self.ifp.link_state = LinkState.UP
        self.enable_intr()

    async def stop(self) -> None:
        self._saw("stop")
        self.disable_intr()
        await super().stop()

    def start(self) -> None:
        self._saw("start")
        ifp = self.ifp
        while (frame := ifp.snd.dequeue()) is not None:
            if self.endpoint.send(frame):
                ifp.data.opackets += 1
            else:
                ifp.data.oerrors += 1

    def intr(self) -> None:
        self._saw("intr")
        while self.rx:
            frame = self.rx.popleft()
            self.ifp.data.ipackets += 1
            self.ifp.data.ibytes += len(frame)
            self.ifp.input(frame)

    async def ioctl(self, cmd, arg) -> None:  # type: ignore[no-untyped-def]
        self._saw("ioctl")
        await super().ioctl(cmd, arg)
