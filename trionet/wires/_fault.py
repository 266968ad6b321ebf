"""``FaultInjector``: a seeded, reproducible faulty link in front of an endpoint.

``FaultInjector(endpoint, seed=7, loss=0.05, reorder=0.01)`` wraps an
endpoint and is one (an :class:`~trionet.lowlevel.EndpointWrapper`), so a
driver cannot tell the difference. Faults apply to the frames *sent* through
it (outbound); frames arriving from the inner endpoint (inbound) pass through
untouched, except while :attr:`FaultInjector.partitioned` is set. To impair
both directions of a link, wrap both of its ends (``open_network`` does).

Theory of operation
===================

1. Every frame offered to :meth:`FaultInjector.send` takes exactly
   :data:`DRAWS_PER_FRAME` values from the injector's own
   ``random.Random(seed)``, always, in this order: ``u_loss``,
   ``u_corrupt``, ``u_bit``, ``u_duplicate``, ``u_reorder``, ``u_jitter``
   (each ``rng.random()``). No other code draws from it. So the fate of
   frame *k* depends only on the seed, *k*, the settings and the clock, and
   changing one probability never shifts the decisions of another fault.
2. The faults are then applied in this fixed order; the first that drops the
   frame ends its path (the remaining draws are simply unused):

   a. ``partitioned`` is set: dropped (``partition_dropped``).
   b. ``rate`` (bytes per second) is set and the token bucket holds fewer
      tokens than the frame's length: dropped (``rate_dropped``). A policer,
      not a shaper: frames over the budget are dropped, never queued (for a
      shaper use ``MemoryWire(bandwidth=...)``). The bucket holds ``burst``
      bytes (default: :data:`RATE_BURST_SECONDS` of ``rate``, at least one
      full frame) and starts full; tokens accrue in Trio time.
   c. ``u_loss < loss``: dropped (``lost``).
   d. ``u_corrupt < corrupt``: exactly one bit is flipped, bit number
      ``int(u_bit * 8 * len(frame))`` counting from the most significant bit
      of byte 0 (``corrupted``; an empty frame is never corrupted).
   e. ``u_duplicate < duplicate``: the frame goes out twice, the copy right
      after the original with the same bytes and timing (``duplicated``
      counts the extra copies). From here on counters count *copies*.
   f. The frame's due time is ``now + delay + u_jitter * jitter``, but never
      earlier than the due time of the frame offered before it: jitter
      spreads frames out without reordering them (# Divergence: netem's
      jitter is +/- and reorders; here reordering is its own fault).
   g. ``u_reorder < reorder``: the copies are *held* (``reordered``) until
      a frame offered after them has been handed to the inner endpoint, and
      are then sent right after it; if none is within the hold timeout, due
      time + ``max(delay, REORDER_MIN_HOLD)``, they are sent then
      (``reorder_expired``).
   h. Otherwise a copy due now, with nothing older waiting, is handed to the
      inner endpoint at once, inside :meth:`send`; any other is put on the
      delay queue (``delayed``) and sent at its due time.

3. Held and delayed copies live in two bounded structures, a heap of (due
   time, sequence, frame) and a FIFO of held frames, served by **one** task
   (never a task per frame). Together they hold at most ``queue_limit``
   copies; a copy over the limit is dropped (``queue_dropped``). A copy
   that comes due while ``partitioned`` is set is dropped
   (``partition_dropped``): the partition applies to what would cross the
   link while it is up, including frames that were already in flight.
4. A copy handed to the inner endpoint is ``passed`` if it accepts it and
   ``inner_refused`` if not.
5. :meth:`send` returns False only when the inner endpoint refused the frame
   inside that very call. Every fault the injector applies is *silent*
   (True): a lossy network does not tell the sender what it lost.

The books balance at every moment, so a test can compute exactly what the
far end receives::

    passed + inner_refused == offered + duplicated - rate_dropped - lost
        - partition_dropped - queue_dropped - closed_dropped - pending

    inbound == rx_frames + rx_drops + inbound_partition_dropped

Bounds: at most ``queue_limit`` copies waiting; the task hands over at most
:data:`SERVE_BATCH` copies between checkpoints. Nothing on the per-frame path
awaits, allocates a task, or raises for a bad frame; every drop is counted.

Lifecycle and cancellation: ``async with FaultInjector(...) as inj:`` runs the
task in a nursery the block owns. Immediate faults (partition, rate, loss,
corruption, duplication) are plain functions and also work outside the
block; a copy that has to wait (delay, jitter, reorder) while the injector is
not running, and every copy still waiting when the block exits (normally, by
an exception or by cancellation), is dropped and counted in
``closed_dropped``. A cancel delivered to the task loses nothing else: each
copy leaves the queue in the same step in which it is handed on.

Determinism: one ``random.Random(seed)`` per injector, one clock
(:func:`trio.current_time`). Under ``trio.testing.MockClock`` a run is
reproducible from the seed and the order in which frames are offered.

Impairments are attributes that may be changed while running (validated on
assignment): ``loss``, ``duplicate``, ``reorder``, ``corrupt``, ``delay``,
``jitter``, ``rate``, ``burst``, ``partitioned``.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import AsyncIterator

import attrs
import structlog
import trio

from .._nursery import service_nursery
from ..protocols.offload import complete, wire_frames
from ._endpoint import ETHER_HDR_LEN, EndpointStatistics, EndpointWrapper, WireEndpoint, WireLifecycle

__all__ = ["FaultInjector", "FaultStatistics"]

log = structlog.get_logger(__name__)

#: Values every offered frame draws from the injector's RNG (see rule 1).
DRAWS_PER_FRAME = 6

#: The shortest time a reordered frame is held when no later frame comes.
REORDER_MIN_HOLD = 0.001

#: Default token bucket depth, in seconds of ``rate``.
RATE_BURST_SECONDS = 0.01

#: Copies the task hands over before it checkpoints.
SERVE_BATCH = 1024


@attrs.frozen
class FaultStatistics(EndpointStatistics):
    """Counters of a :class:`FaultInjector` (an
    :class:`~trionet.lowlevel.EndpointStatistics` with more fields).

    ``tx_frames``/``tx_bytes``/``tx_drops`` count copies handed to the inner
    endpoint (accepted/refused); ``rx_frames``/``rx_bytes`` frames delivered
    up, ``rx_drops`` inbound frames with no receiver installed.

    Attributes:
        offered: frames given to :meth:`FaultInjector.send`.
        passed: copies the inner endpoint accepted (equals ``tx_frames``).
        inner_refused: copies the inner endpoint refused (equals ``tx_drops``).
        lost: frames dropped by ``loss``.
        duplicated: extra copies made by ``duplicate``.
        corrupted: frames with one bit flipped.
        reordered: copies held back to go out after a later frame.
        reorder_expired: held copies sent at their hold timeout because no
            later frame went out first (so not actually reordered).
        delayed: copies put on the delay queue.
        rate_dropped: frames over the token bucket's budget.
        partition_dropped: frames (and waiting copies) dropped while
            partitioned.
        queue_dropped: copies dropped because ``queue_limit`` copies were
            waiting.
        closed_dropped: copies that had to wait while the injector was not
            running, or were still waiting when it stopped.
        pending: copies waiting now (delay queue plus held).
        inbound: frames that arrived from the inner endpoint.
        inbound_partition_dropped: inbound frames dropped while partitioned.
    """

    offered: int
    passed: int
    inner_refused: int
    lost: int
    duplicated: int
    corrupted: int
    reordered: int
    reorder_expired: int
    delayed: int
    rate_dropped: int
    partition_dropped: int
    queue_dropped: int
    closed_dropped: int
    pending: int
    inbound: int
    inbound_partition_dropped: int


def _probability(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability between 0 and 1, not {value!r}")
    return float(value)


def _seconds(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < math.inf:
        raise ValueError(f"{name} must be a finite number of seconds >= 0, not {value!r}")
    return float(value)


def _positive_or_none(name: str, value: float | None, unit: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value < math.inf:
        raise ValueError(f"{name} must be a positive number of {unit} or None, not {value!r}")
    return float(value)


class FaultInjector(EndpointWrapper, WireLifecycle):
    """Seeded loss, duplication, reordering, corruption, delay, jitter, rate
    limit and partition for the frames sent through ``inner``.

    See the module docstring for the rules, the order in which faults apply
    and the identity the counters satisfy.

    Args:
        inner: the endpoint to impair.
        seed: seeds the injector's own :class:`random.Random`.
        loss, duplicate, reorder, corrupt: probabilities (0..1) per frame.
        delay: seconds added to every frame.
        jitter: up to this many more seconds, uniformly (never reorders).
        rate: token bucket rate in bytes per second, or None for no limit.
        burst: token bucket depth in bytes; default
            ``max(rate * RATE_BURST_SECONDS, mtu + 14)``.
        queue_limit: copies that may wait (delayed or held) at once.
        name: defaults to the inner endpoint's name.

    Raises:
        ValueError: for a probability outside 0..1, a negative or infinite
            time, a non-positive rate, burst or queue limit.
        TypeError: for a seed that is not an int.

    .. attribute:: partitioned

       While True, every frame in both directions is dropped and counted;
       may be flipped at any time. The carrier (:attr:`link_up`) stays the
       inner endpoint's: a partition is a cut somewhere beyond the cable,
       which the NIC cannot see (for a pulled cable use
       ``MemoryWire.set_link(False)``).
    """

    def __init__(
        self,
        inner: WireEndpoint,
        *,
        seed: int,
        loss: float = 0.0,
        duplicate: float = 0.0,
        reorder: float = 0.0,
        corrupt: float = 0.0,
        delay: float = 0.0,
        jitter: float = 0.0,
        rate: float | None = None,
        burst: float | None = None,
        queue_limit: int = 1000,
        name: str | None = None,
    ) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, not {seed!r}")
        if isinstance(queue_limit, bool) or not isinstance(queue_limit, int) or queue_limit < 1:
            raise ValueError(f"queue_limit must be a positive int, not {queue_limit!r}")
        self.seed = seed
        self.queue_limit = queue_limit
        self.loss = loss
        self.duplicate = duplicate
        self.reorder = reorder
        self.corrupt = corrupt
        self.delay = delay
        self.jitter = jitter
        self._rate: float | None = None
        self._burst: float | None = None
        self.rate = rate
        self.burst = burst
        super().__init__(inner, name)
        self._rng = random.Random(seed)
        self._partitioned = False
        self._running = False
        self._tokens = self._bucket_depth()
        self._tokens_at = -math.inf
        # Waiting copies: the delay heap and the FIFO of held (reordered) ones.
        self._heap: list[tuple[float, int, bytes]] = []
        self._held: deque[tuple[int, float, bytes]] = deque()
        self._seq = 0
        self._last_due = -math.inf
        self._last_deadline = -math.inf
        self._lot = trio.lowlevel.ParkingLot()
        self._wake_at = math.inf
        # Counters.
        self._offered = self._lost = self._duplicated = self._corrupted = 0
        self._reordered = self._reorder_expired = self._delayed = 0
        self._rate_dropped = self._partition_dropped = self._queue_dropped = 0
        self._closed_dropped = self._inbound = self._inbound_partition_dropped = 0

    ####################################################################
    # impairments (validated on assignment, changeable while running)
    ####################################################################

    @property
    def loss(self) -> float:
        """Probability that a frame is lost."""
        return self._loss

    @loss.setter
    def loss(self, value: float) -> None:
        self._loss = _probability("loss", value)

    @property
    def duplicate(self) -> float:
        """Probability that a frame goes out twice."""
        return self._duplicate

    @duplicate.setter
    def duplicate(self, value: float) -> None:
        self._duplicate = _probability("duplicate", value)

    @property
    def reorder(self) -> float:
        """Probability that a frame is held back to go out after a later one."""
        return self._reorder

    @reorder.setter
    def reorder(self, value: float) -> None:
        self._reorder = _probability("reorder", value)

    @property
    def corrupt(self) -> float:
        """Probability that one bit of a frame is flipped."""
        return self._corrupt

    @corrupt.setter
    def corrupt(self, value: float) -> None:
        self._corrupt = _probability("corrupt", value)

    @property
    def delay(self) -> float:
        """Seconds every frame is delayed."""
        return self._delay

    @delay.setter
    def delay(self, value: float) -> None:
        self._delay = _seconds("delay", value)

    @property
    def jitter(self) -> float:
        """Up to this many seconds more delay, uniformly distributed."""
        return self._jitter

    @jitter.setter
    def jitter(self, value: float) -> None:
        self._jitter = _seconds("jitter", value)

    @property
    def rate(self) -> float | None:
        """Token bucket rate in bytes per second, or None for no limit."""
        return self._rate

    @rate.setter
    def rate(self, value: float | None) -> None:
        self._rate = _positive_or_none("rate", value, "bytes per second")

    @property
    def burst(self) -> float | None:
        """Token bucket depth in bytes as given, or None for the default."""
        return self._burst

    @burst.setter
    def burst(self, value: float | None) -> None:
        self._burst = _positive_or_none("burst", value, "bytes")

    @property
    def partitioned(self) -> bool:
        """While True, every frame in both directions is dropped and counted."""
        return self._partitioned

    @partitioned.setter
    def partitioned(self, value: bool) -> None:
        value = bool(value)
        if value != self._partitioned:
            self._partitioned = value
            log.info("partition_changed", wire=self.name, partitioned=value)

    def _bucket_depth(self) -> float:
        if self._burst is not None:
            return self._burst
        rate = self._rate if self._rate is not None else 0.0
        return max(rate * RATE_BURST_SECONDS, float(self.mtu + ETHER_HDR_LEN))

    ####################################################################
    # the per-frame paths
    ####################################################################

    def send(self, frame: bytes) -> bool:
        """Apply the faults to ``frame`` (module rules 1-5) and pass it on.

        A TCP super-segment (TSO) is cut into the segments it stands for
        first, and each meets the faults on its own.

        A plain function: never blocks, never raises for a frame.

        Returns:
            False only if the inner endpoint refused the frame inside this
            call; every fault the injector applies is silent.
        """
        if getattr(frame, "tso_mss", 0):
            return all([self.send(piece) for piece in wire_frames(frame)])
        self._offered += 1
        rnd = self._rng.random
        u_loss = rnd()
        u_corrupt = rnd()
        u_bit = rnd()
        u_duplicate = rnd()
        u_reorder = rnd()
        u_jitter = rnd()
        if self._partitioned:
            self._partition_dropped += 1
            return True
        n = len(frame)
        if self._rate is not None and not self._take_tokens(n):
            self._rate_dropped += 1
            return True
        if u_loss < self._loss:
            self._lost += 1
            return True
        if frame.__class__ is not bytes:
            # Real bytes from here: a checksum left to the card is filled in
            # first, so a corrupted frame fails the receiver's check.
            frame = bytes(complete(frame))
        if u_corrupt < self._corrupt and n:
            bit = int(u_bit * 8 * n)
            buf = bytearray(frame)
            buf[bit >> 3] ^= 0x80 >> (bit & 7)
            frame = bytes(buf)
            self._corrupted += 1
        copies = 1
        if u_duplicate < self._duplicate:
            copies = 2
            self._duplicated += 1
        now = trio.current_time()
        due = now + self._delay + u_jitter * self._jitter
        if due < self._last_due:
            due = self._last_due
        self._last_due = due
        if u_reorder < self._reorder:
            deadline = due + max(self._delay, REORDER_MIN_HOLD)
            if deadline < self._last_deadline:
                deadline = self._last_deadline
            self._last_deadline = deadline
            for _ in range(copies):
                if self._admit():
                    self._seq += 1
                    self._held.append((self._seq, deadline, frame))
                    self._reordered += 1
            self._wake(deadline)
            return True
        if due <= now and not self._heap:
            self._seq += 1
            ok = self._emit(self._seq, frame)
            if copies == 2:
                self._seq += 1
                self._emit(self._seq, frame)
            return ok
        for _ in range(copies):
            if self._admit():
                self._seq += 1
                heapq.heappush(self._heap, (due, self._seq, frame))
                self._delayed += 1
        self._wake(due)
        return True

    def inbound(self, frame: bytes) -> None:
        """A frame from the inner endpoint: delivered unless partitioned."""
        self._inbound += 1
        if self._partitioned:
            self._inbound_partition_dropped += 1
            return
        self.deliver(frame)

    def _take_tokens(self, n: int) -> bool:
        now = trio.current_time()
        depth = self._bucket_depth()
        tokens = self._tokens + (now - self._tokens_at) * self._rate  # type: ignore[operator]
        if tokens > depth:  # also the first use, when _tokens_at is -inf
            tokens = depth
        self._tokens_at = now
        if tokens >= n:
            self._tokens = tokens - n
            return True
        self._tokens = tokens
        return False

    def _admit(self) -> bool:
        # May one more copy wait? Counts the refusal.
        if not self._running:
            self._closed_dropped += 1
            return False
        if len(self._heap) + len(self._held) >= self.queue_limit:
            self._queue_dropped += 1
            return False
        return True

    def _wake(self, when: float) -> None:
        if when < self._wake_at:
            self._lot.unpark_all()

    def _emit(self, seq: int, frame: bytes) -> bool:
        # Hand a copy on, then the held copies offered before it.
        ok = self.pass_down(frame)
        held = self._held
        while held and held[0][0] < seq:
            self.pass_down(held.popleft()[2])
        return ok

    async def _serve(self) -> None:
        # The one task: sends delayed copies when due, held ones at timeout.
        heap = self._heap
        held = self._held
        while True:
            now = trio.current_time()
            n = 0
            while heap and heap[0][0] <= now and n < SERVE_BATCH:
                _, seq, frame = heapq.heappop(heap)
                n += 1
                if self._partitioned:
                    self._partition_dropped += 1
                else:
                    self._emit(seq, frame)
            while held and held[0][1] <= now and n < SERVE_BATCH:
                frame = held.popleft()[2]
                n += 1
                if self._partitioned:
                    self._partition_dropped += 1
                else:
                    self._reorder_expired += 1
                    self.pass_down(frame)
            if n:
                await trio.lowlevel.checkpoint()
                continue
            wake_at = heap[0][0] if heap else math.inf
            if held and held[0][1] < wake_at:
                wake_at = held[0][1]
            self._wake_at = wake_at
            with trio.move_on_at(wake_at):
                await self._lot.park()
            self._wake_at = -math.inf

    ####################################################################
    # lifecycle and counters
    ####################################################################

    async def _lifecycle(self) -> AsyncIterator[None]:
        async with service_nursery() as nursery:
            nursery.start_soon(self._serve, name=f"fault {self.name}")
            self._running = True
            log.info("fault_injector_started", wire=self.name, seed=self.seed)
            try:
                yield
            finally:
                self._running = False
                self._closed_dropped += len(self._heap) + len(self._held)
                self._heap.clear()
                self._held.clear()

    def statistics(self) -> FaultStatistics:
        """The injector's counters (see :class:`FaultStatistics`)."""
        return FaultStatistics(
            **self._counts(),
            offered=self._offered,
            passed=self._tx_frames,
            inner_refused=self._tx_drops,
            lost=self._lost,
            duplicated=self._duplicated,
            corrupted=self._corrupted,
            reordered=self._reordered,
            reorder_expired=self._reorder_expired,
            delayed=self._delayed,
            rate_dropped=self._rate_dropped,
            partition_dropped=self._partition_dropped,
            queue_dropped=self._queue_dropped,
            closed_dropped=self._closed_dropped,
            pending=len(self._heap) + len(self._held),
            inbound=self._inbound,
            inbound_partition_dropped=self._inbound_partition_dropped,
        )
