"""``MemoryWire``: an in-process link or hub that keeps Trio time.

A :class:`MemoryWire` joins endpoints (two for a point-to-point link, any
number for a hub). Each endpoint transmits on its own (full duplex); a frame
it sends is:

1. refused and counted if the wire is not open, the link is down, the frame
   is longer than ``mtu`` plus the Ethernet header (``oversize``), or the
   endpoint's transmit queue already holds ``queue_len`` frames that have not
   finished serialising, or the wire holds :data:`MAX_IN_FLIGHT` frames in
   flight (``queue_drops``), or it would arrive at once after more than
   :data:`~trionet.wires.MAX_INSTANT_HOPS` such hops (``loop_drops``: a loop
   of zero-delay links, see below); else
2. serialised after the frames before it at ``bandwidth`` bits per second
   (no bandwidth: instantly), then
3. delivered ``delay`` seconds later to every other endpoint's receiver (an
   endpoint with no receiver counts ``rx_drops``; a link that went down while
   the frame was in flight counts ``link_drops``).

Timing is computed, not slept: sending is a plain function that works out the
frame's arrival time. A frame that arrives at once (no delay, no bandwidth
limit, nothing queued before it) is delivered inside ``send``, as a NIC's DMA
puts it in the far NIC's ring, with no task hand-over; every other frame goes
on the wire's heap, and one task per wire delivers everything that is due, in
order (arrival time, then send order), in batches of at most
:data:`DELIVERY_BATCH`. A frame sent back onto a wire from inside one of its
own deliveries (a switch forwarding it) is deferred to that task rather than
delivered by recursion. So there is no task per frame, and under
``trio.testing.MockClock`` a whole topology runs in virtual time,
deterministically.

A loop of links without delay, joined by switches (which forward inside the
receive call), would carry a broadcast storm without letting virtual time
move: every task stays busy, the clock never jumps and no timeout fires. So
each frame carries the number of wires it crossed in the same instant
(:data:`~trionet.wires._endpoint.hops`, inherited by what a switch forwards
while the wire hands it the frame); a frame that would exceed
:data:`~trionet.wires.MAX_INSTANT_HOPS` is dropped and counted. Hosts start
every frame at zero (they answer from their own threads), and so does a hop
that takes time, so only a loop is ever cut: a storm shows as floods in the
switches' counters and ``loop_drops`` here, then time goes on.

A hub here is a repeater without collisions: every transmitter has its own
serialisation, and every frame reaches every other endpoint.

Lifecycle: ``async with MemoryWire(...) as wire:`` runs the delivery task;
frames still in flight when the block exits are discarded and counted in
``link_drops``.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque
from collections.abc import AsyncIterator

import attrs
import trio

from .._nursery import service_nursery
from ..protocols.offload import PendingFrame, segment
from ._endpoint import ETHER_HDR_LEN, MAX_INSTANT_HOPS, CountingEndpoint, WireLifecycle, hops

__all__ = ["MemoryWire", "MemoryWireEndpoint", "MemoryWireStatistics"]

#: Frames the delivery task hands over before it checkpoints.
DELIVERY_BATCH = 1024

#: Frames a wire holds in flight at most (a safety bound for links with a
#: long delay and no bandwidth limit); beyond it sends are refused and
#: counted in ``queue_drops``.
MAX_IN_FLIGHT = 1 << 16


@attrs.frozen
class MemoryWireStatistics:
    """Counters of a :class:`MemoryWire` (per-endpoint ones are in the endpoints).

    Attributes:
        in_flight: frames sent and not yet delivered.
        delivered: frames handed to a receiver (counted once per receiver).
        queue_drops: frames refused because a transmit queue was full.
        oversize: frames refused for exceeding the MTU.
        link_drops: frames refused or discarded because the link was down
            or the wire closed.
        loop_drops: frames refused because they would have crossed more
            than ``MAX_INSTANT_HOPS`` wires in one instant (a loop of
            zero-delay links).
    """

    in_flight: int
    delivered: int
    queue_drops: int
    oversize: int
    link_drops: int
    loop_drops: int


class MemoryWireEndpoint(CountingEndpoint):
    """One endpoint of a :class:`MemoryWire`; made by :meth:`MemoryWire.endpoint`."""

    in_memory = True

    def __init__(self, wire: MemoryWire, name: str) -> None:
        super().__init__(name, wire.mtu)
        self.wire = wire
        self._tx_free_at = -math.inf  # when the transmitter finishes its queue
        self._tx_finish: deque[float] = deque()  # finish times of queued frames

    def __repr__(self) -> str:
        return f"<MemoryWireEndpoint {self.name!r}>"

    def send(self, frame: bytes) -> bool:
        """Queue ``frame`` for transmission; False (counted) if refused."""
        if not self.wire._transmit(self, frame):
            self.count_refused()
            return False
        self._tx_frames += 1  # (count_sent, inline: per frame)
        self._tx_bytes += len(frame)
        return True

    @property
    def link_up(self) -> bool:
        return self.wire.link_up


class MemoryWire(WireLifecycle):
    """An in-process link (two endpoints) or hub (``hub=True``, any number).

    Args:
        name: names the endpoints ``{name}.0``, ``{name}.1``...
        mtu: the largest payload; longer frames are refused.
        bandwidth: bits per second per transmitter, or None for no
            serialisation delay.
        delay: propagation delay in seconds.
        queue_len: frames a transmitter may hold before it refuses more.
        hub: allow more than two endpoints.

    Raises:
        ValueError: for a non-positive MTU, bandwidth or queue length, or a
            negative delay.
    """

    def __init__(
        self,
        *,
        name: str = "wire",
        mtu: int = 1500,
        bandwidth: float | None = None,
        delay: float = 0.0,
        queue_len: int = 1000,
        hub: bool = False,
    ) -> None:
        if isinstance(mtu, bool) or not isinstance(mtu, int) or mtu < 1:
            raise ValueError(f"mtu must be a positive int, not {mtu!r}")
        if bandwidth is not None and not bandwidth > 0:
            raise ValueError(f"bandwidth must be positive bits/s or None, not {bandwidth!r}")
        if not delay >= 0:
            raise ValueError(f"delay must be >= 0 seconds, not {delay!r}")
        if isinstance(queue_len, bool) or not isinstance(queue_len, int) or queue_len < 1:
            raise ValueError(f"queue_len must be a positive int, not {queue_len!r}")
        self.name = name
        self.mtu = mtu
        self.bandwidth = bandwidth
        self.delay = float(delay)
        self.queue_len = queue_len
        self.hub = hub
        self.link_up = True
        self._open = False
        self._endpoints: list[MemoryWireEndpoint] = []
        # (arrival, send order, frame, sender, zero-time hops at arrival)
        self._heap: list[tuple[float, int, bytes, MemoryWireEndpoint, int]] = []
        self._seq = itertools.count()
        self._sleep: trio.CancelScope | None = None  # the delivery task's, while asleep
        self._delivering = False
        self._delivered = 0
        self._queue_drops = 0
        self._oversize = 0
        self._link_drops = 0
        self._loop_drops = 0

    def __repr__(self) -> str:
        return f"<MemoryWire {self.name!r} endpoints={len(self._endpoints)}>"

    def endpoint(self, name: str | None = None) -> MemoryWireEndpoint:
        """A new endpoint on this wire.

        Raises:
            ValueError: for a third endpoint on a point-to-point wire.
        """
        if not self.hub and len(self._endpoints) >= 2:
            raise ValueError(f"{self!r} is point-to-point; use hub=True for more endpoints")
        ep = MemoryWireEndpoint(self, name if name is not None else f"{self.name}.{len(self._endpoints)}")
        self._endpoints.append(ep)
        return ep

    def endpoints(self) -> tuple[MemoryWireEndpoint, ...]:
        """The endpoints made so far, in order."""
        return tuple(self._endpoints)

    def set_link(self, up: bool) -> None:
        """Cut (False) or restore (True) the link; frames in flight on a cut
        link are discarded at their arrival time and counted."""
        self.link_up = bool(up)

    def statistics(self) -> MemoryWireStatistics:
        """The wire's counters."""
        return MemoryWireStatistics(
            len(self._heap),
            self._delivered,
            self._queue_drops,
            self._oversize,
            self._link_drops,
            self._loop_drops,
        )

    def _transmit(self, src: MemoryWireEndpoint, frame: bytes) -> bool:
        if not self._open or not self.link_up:
            self._link_drops += 1
            return False
        n = len(frame)
        if n > self.mtu + ETHER_HDR_LEN:
            tso = getattr(frame, "tso_mss", 0)
            if not tso:
                self._oversize += 1
                return False
            if self.bandwidth:
                # Each segment serialises on its own: cut it (offload rule 4).
                return all([self._transmit(src, piece) for piece in segment(frame)])
        if frame.__class__ is not bytes and frame.__class__ is not PendingFrame:
            frame = bytes(frame)  # (a pending frame keeps its mark: still memory)
        if self.bandwidth or self.delay:
            now = trio.current_time()
            finish = src._tx_finish
            while finish and finish[0] <= now:
                finish.popleft()
            if len(finish) >= self.queue_len or len(self._heap) >= MAX_IN_FLIGHT:
                self._queue_drops += 1
                return False
            start = src._tx_free_at if src._tx_free_at > now else now
            done = start + (n * 8 / self.bandwidth if self.bandwidth else 0.0)
            src._tx_free_at = done
            if done > now:
                finish.append(done)
            arrival = done + self.delay
            if arrival != now:
                heapq.heappush(self._heap, (arrival, next(self._seq), frame, src, 0))
                self._wake_by(arrival)
                return True
        # It arrives at the instant it is sent (no delay, no serialisation
        # wait); on the common path no clock is read.
        depth = hops.depth + 1
        if depth > MAX_INSTANT_HOPS:
            self._loop_drops += 1
            return False
        heap = self._heap
        if heap or self._delivering:
            # Frames due before it, or we are inside one of this wire's own
            # deliveries (a bridge sent it back here): the task delivers it,
            # in order, still at this instant.
            if len(heap) >= MAX_IN_FLIGHT:
                self._queue_drops += 1
                return False
            now = trio.current_time()
            heapq.heappush(heap, (now, next(self._seq), frame, src, depth))
            self._wake_by(now)
            return True
        # Nothing before it: deliver now, inside send, as the far NIC's DMA
        # would (no task hand-over).
        self._deliver(frame, src, depth)
        return True

    def _deliver(self, frame: bytes, src: MemoryWireEndpoint, depth: int) -> None:
        outer = hops.depth
        hops.depth = depth
        self._delivering = True
        try:
            for ep in self._endpoints:
                if ep is not src and ep.deliver(frame):
                    self._delivered += 1
        finally:
            self._delivering = False
            hops.depth = outer

    def _wake_by(self, arrival: float) -> None:
        # The delivery task sleeps until the earliest arrival it knows of; a
        # frame that arrives earlier moves that deadline (settable from any
        # task) rather than waking the task to re-arm it.
        scope = self._sleep
        if scope is not None and arrival < scope.deadline:
            scope.deadline = arrival

    async def _deliver_loop(self) -> None:
        heap = self._heap
        while True:
            now = trio.current_time()
            n = 0
            while heap and heap[0][0] <= now and n < DELIVERY_BATCH:
                _, _, frame, src, depth = heapq.heappop(heap)
                n += 1
                if not self.link_up:
                    self._link_drops += 1
                    continue
                self._deliver(frame, src, depth)
            if n == DELIVERY_BATCH:
                await trio.lowlevel.checkpoint()  # more due: let the others run
                continue
            # Sleep until the next arrival (the sleep is this round's yield).
            with trio.CancelScope(deadline=heap[0][0] if heap else math.inf) as self._sleep:
                await trio.sleep_forever()
            self._sleep = None

    async def _lifecycle(self) -> AsyncIterator[None]:
        async with service_nursery() as nursery:
            nursery.start_soon(self._deliver_loop, name=f"wire {self.name}")
            self._open = True
            try:
                yield
            finally:
                self._open = False
                self._link_drops += len(self._heap)
                self._heap.clear()
