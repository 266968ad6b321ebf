"""vnic: a virtual Ethernet NIC with real rings and an interrupt.

Start here to learn the data path. A vnic is two halves in one class:

**The hardware** (methods starting ``hw_`` or ``_hw``): a bounded RX ring
that the wire fills; a TX ring of ``tx_ring`` descriptors; an interrupt cause
register (``RX``, ``TX``, ``LINK``) and a mask. Raising a cause while
unmasked asserts the IRQ (``sched_ithd``).

- A frame arriving from the wire is refused when the NIC is stopped
  (counted ``rx_stopped``), too short (``ierrors``), not for us per the
  receive filter (counted ``rx_filtered``; not a loss), or when the RX ring is
  full (``iqdrops``, the "missed packets" register). Otherwise it goes into
  the RX ring and ``RX`` is raised.
- Transmission: a wire takes a frame or refuses it at once (``send`` never
  blocks), so the TX engine puts each descriptor on the wire as soon as it is
  posted and the driver reclaims it in the same ``start`` (as emx does with
  ``tx_int_nsegs``: no TX-completion interrupt per frame; a frame the wire
  refuses completes with an error, ``oerrors``). There is no task per NIC.
  :meth:`Vnic.hold_tx_completions` stops the engine, so descriptors stay
  busy (a hung transmitter: ``OACTIVE``, then the watchdog);
  :meth:`Vnic.release_tx_completions` or a reset lets it go on, and the
  engine then raises ``TX``.

**The driver** (the entry points): ``init``/``stop`` reset the rings (frames
still in them are counted: ``iqdrops`` for RX, ``oerrors`` for TX);
``start`` moves frames from the send queue into free descriptors and sets
``OACTIVE`` when none is left; ``intr`` reads and clears the cause register,
takes up to ``rx_budget`` frames from the RX ring to ``ifp.input`` (raising
``RX`` again if more are left, so the ithread comes back), reclaims finished
descriptors (``opackets``), clears ``OACTIVE`` once a quarter of the ring is
free, and restarts output with ``if_devstart``; ``watchdog`` resets the
hardware at once (``oerrors`` plus a re-init, as em does). The 1 Hz driver
timer enters the serializer itself and follows the wire's carrier.
``start``, ``intr``, ``poll`` and ``watchdog`` are plain functions: they
never sleep, so the stack calls ``start`` inline from ``ifq_dispatch``, and
the interrupt is hooked FAST (``intr_fast``, DragonFly's INTR_FAST): a frame
the wire delivers while the serializer is free is handled at once, in the
delivering task, up to the netisr queue; otherwise the ithread runs ``intr``.

Serializer rule: every entry point runs with ``ifp.serializer`` held (the
interrupt is hooked with it); the timer takes it itself; the wire's receive
call and :meth:`Vnic.release_tx_completions` touch only the hardware half,
which never awaits in the middle of a ring operation.

Bounds: the RX ring holds ``rx_ring`` frames, the TX ring ``tx_ring``; one
interrupt handles at most ``rx_budget`` received frames; the send queue holds
``sndq_maxlen`` (default ``tx_ring - 1``, as em sets it).

DragonFly: ``sys/dev/netif/em/if_em.c`` v1.80, ``sys/dev/netif/emx/if_emx.c``
(``tx_int_nsegs``).
"""

from __future__ import annotations

import hashlib
from collections import deque

import attrs
import structlog

from trionet import IfCap, IfFlags, Ifnet, LinkState
from trionet.lowlevel import (
    ETHER_HDR_LEN,
    Callout,
    Driver,
    PollCmd,
    WireEndpoint,
    if_devstart,
    segment,
)

__all__ = ["Vnic", "VnicStatistics"]

log = structlog.get_logger(__name__)

# Interrupt causes (the ICR bits).
RX = 0x1
TX = 0x2
LINK = 0x4

#: Seconds the watchdog allows a posted frame to complete (em: EM_TX_TIMEOUT).
TX_TIMEOUT = 5

# Flag bits as ints for the per-frame tests (``int(ifp.flags) & _RUNNING``):
# an IfFlags ``&`` runs Python code, an int one does not.
_RUNNING = int(IfFlags.RUNNING)
_RUNNING_OACTIVE = int(IfFlags.RUNNING | IfFlags.OACTIVE)
_LRO = int(IfCap.LRO)


def _is_super(frame: object) -> bool:
    # A TCP super-segment TSO let through, longer than the MTU.
    return getattr(frame, "tso_mss", 0) > 0


@attrs.frozen
class VnicStatistics:
    """The vnic's hardware counters (the interface's are in ``ifp.statistics()``).

    Attributes:
        rx_filtered: frames the receive filter refused (not for this station).
        rx_stopped: frames that arrived while the NIC was stopped.
        rx_ring: frames in the RX ring now.
        tx_posted: descriptors waiting for the TX engine now.
        tx_free: free TX descriptors now.
        tx_held: whether TX completions are held back.
        intr_masked: whether the interrupt is masked in the hardware.
        interrupts: interrupt handler runs that found a cause.
        spurious: runs that found none (a shared line, or already handled).
        resets: ring resets (``init`` and ``stop``).
    """

    rx_filtered: int
    rx_stopped: int
    rx_ring: int
    tx_posted: int
    tx_free: int
    tx_held: bool
    intr_masked: bool
    interrupts: int
    spurious: int
    resets: int


class Vnic(Driver):
    """A virtual Ethernet NIC on a wire endpoint.

    Args:
        endpoint: the wire endpoint this NIC owns.
        lladdr: the MAC address; default a locally administered one derived
            from the host and interface names.
        rx_ring: RX ring slots.
        tx_ring: TX descriptors.
        rx_budget: received frames one interrupt hands up at most.
        sndq_maxlen: send queue length; default ``tx_ring - 1``.
        intr_fast: hook the interrupt as INTR_FAST (the default): a frame
            arriving while the serializer is free is handled at once, in the
            task that delivered it, instead of waking the ithread. False
            keeps every interrupt in the ithread.
    """

    name_prefix = "vnic"
    supports_polling = True
    #: Jumbo frames up to the largest IPv4 datagram, as virtio-net allows.
    max_mtu = 65535

    def __init__(
        self,
        endpoint: WireEndpoint,
        *,
        lladdr: bytes | None = None,
        rx_ring: int = 256,
        tx_ring: int = 256,
        rx_budget: int = 256,
        sndq_maxlen: int | None = None,
        intr_fast: bool = True,
    ) -> None:
        for name, value in (("rx_ring", rx_ring), ("tx_ring", tx_ring), ("rx_budget", rx_budget)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, not {value!r}")
        if lladdr is not None and (len(lladdr) != 6 or lladdr[0] & 1):
            raise ValueError(f"lladdr must be a 6-byte unicast address, not {lladdr!r}")
        self.endpoint = endpoint
        self.intr_fast = intr_fast
        self._lladdr = lladdr
        self._rx_size = rx_ring
        self._tx_size = tx_ring
        self._tx_wake = max(1, tx_ring // 4)
        self._rx_budget = rx_budget
        self._sndq_maxlen = sndq_maxlen if sndq_maxlen is not None else max(1, tx_ring - 1)
        # Hardware state.
        self._rx: deque[bytes] = deque()
        self._rx_on = False
        self._filter_promisc = False
        self._filter_allmulti = False
        self._filter_groups: frozenset[bytes] = frozenset()
        self._tx_posted: deque[bytes] = deque()
        self._tx_free = tx_ring
        self._tx_done_ok = 0
        self._tx_done_err = 0
        self._tx_held = False
        self._icr = 0
        self._masked = True
        self._timer: Callout | None = None
        # Hardware counters.
        self._rx_filtered = 0
        self._rx_stopped = 0
        self._interrupts = 0
        self._spurious = 0
        self._resets = 0

    def __repr__(self) -> str:
        name = self.ifp.name if getattr(self, "ifp", None) is not None else "unattached"
        return f"<Vnic {name} on {self.endpoint!r}>"

    ####################################################################
    # lifecycle
    ####################################################################

    async def attach(self, ifp: Ifnet) -> None:
        """Set up the interface and connect to the wire.

        The interrupt stays masked until ``init``.
        """
        if self._lladdr is None:
            digest = hashlib.blake2s(f"{ifp.host.name}/{ifp.name}".encode(), digest_size=5)
            self._lladdr = b"\x02" + digest.digest()
        ifp.lladdr = self._lladdr
        ifp.mtu = min(1500, self.endpoint.mtu)
        ifp.flags |= IfFlags.BROADCAST | IfFlags.SIMPLEX | IfFlags.MULTICAST
        ifp.link_state = LinkState.DOWN
        ifp.baudrate = 1_000_000_000
        ifp.snd.maxlen = self._sndq_maxlen
        # Checksum offload, TSO and LRO, as virtio-net has: on by default over
        # an in-memory wire, where a frame's checksum need never be computed
        # (the far vnic vouches for it) and a TCP super-segment may travel
        # whole; elsewhere the wire would compute and cut anyway.
        # ``ifconfig -txcsum`` (host.ifcap) turns them off.
        ifp.capabilities = IfCap.RXCSUM | IfCap.TXCSUM | IfCap.TSO | IfCap.LRO
        if self.endpoint.in_memory:
            ifp.capenable = ifp.capabilities
        self._timer = ifp.host.callout(ifp.cpuid)
        self.endpoint.set_receiver(self.hw_receive)

    async def detach(self) -> None:
        """Leave the wire."""
        self.endpoint.set_receiver(None)

    async def init(self) -> None:
        """Reset and start the hardware; enable the interrupt unless polling."""
        self._init()

    def _init(self) -> None:
        ifp = self.ifp
        ifp.serializer.assert_serialized()
        self._stop()
        self._program_filter()
        self._rx_on = True
        ifp.flags = (ifp.flags | IfFlags.RUNNING) & ~IfFlags.OACTIVE
        self._update_link()
        assert self._timer is not None
        self._timer.reset(1.0, self._tick)
        if not ifp.flags & IfFlags.POLLING:
            self.enable_intr()

    async def stop(self) -> None:
        """Disable the interrupt, stop the timer, reset the rings."""
        self._stop()

    def _stop(self) -> None:
        ifp = self.ifp
        ifp.serializer.assert_serialized()
        self.disable_intr()
        if self._timer is not None:
            self._timer.stop()
        ifp.flags &= ~(IfFlags.RUNNING | IfFlags.OACTIVE)
        ifp.timer = 0
        self._hw_reset()

    def watchdog(self) -> None:
        """A posted frame did not complete in time: count it and reset the
        hardware now (em's ``em_watchdog`` calls ``em_init``), then restart
        output."""
        ifp = self.ifp
        ifp.serializer.assert_serialized()
        log.warning("watchdog_timeout", ifname=ifp.name)
        ifp.data.oerrors += 1
        self._init()
        if_devstart(ifp)

    ####################################################################
    # transmit
    ####################################################################

    def start(self) -> None:
        """Move frames from the send queue into free TX descriptors; the
        engine sends each at once and the descriptor is reclaimed here."""
        ifp = self.ifp
        ifp.serializer.assert_serialized()
        if int(ifp.flags) & _RUNNING_OACTIVE != _RUNNING:
            return
        data = ifp.data
        snd = ifp.snd
        if ifp.link_state is not LinkState.UP:
            # em: no carrier, nothing can go out.
            data.oerrors += snd.purge()
            return
        limit = ifp.mtu + ETHER_HDR_LEN
        if self._tx_held:
            self._start_held(limit)
            return
        send = self.endpoint.send
        dequeue = snd.dequeue
        while (frame := dequeue()) is not None:  # None: empty, or a token bucket said wait
            if not ETHER_HDR_LEN <= len(frame) <= limit and not _is_super(frame):
                data.oerrors += 1
            elif send(frame):
                data.opackets += 1
            else:
                data.oerrors += 1

    def _start_held(self, limit: int) -> None:
        # The engine is stopped: frames wait in their descriptors, the ring
        # fills, OACTIVE stops output, and the watchdog notices.
        ifp = self.ifp
        data = ifp.data
        posted = self._tx_posted
        queued = 0
        while not ifp.snd.is_empty():
            if self._tx_free < self._tx_wake:
                self._txeof()
            if self._tx_free == 0:
                ifp.flags |= IfFlags.OACTIVE
                break
            frame = ifp.snd.dequeue()
            if frame is None:  # a token bucket said wait
                break
            if not ETHER_HDR_LEN <= len(frame) <= limit:
                data.oerrors += 1
                continue
            posted.append(frame)
            self._tx_free -= 1
            queued += 1
        if queued:
            ifp.timer = TX_TIMEOUT

    def _txeof(self) -> None:
        # Reclaim descriptors the TX engine finished.
        ok, err = self._tx_done_ok, self._tx_done_err
        if ok or err:
            self._tx_done_ok = self._tx_done_err = 0
            self._tx_free += ok + err
            data = self.ifp.data
            data.opackets += ok
            data.oerrors += err
        ifp = self.ifp
        if self._tx_free >= self._tx_wake:
            ifp.flags &= ~IfFlags.OACTIVE
        if self._tx_free == self._tx_size:
            ifp.timer = 0

    ####################################################################
    # interrupt, polling, timer
    ####################################################################

    def intr(self) -> None:
        """Handle every pending cause: receive, reclaim, restart output."""
        self.ifp.serializer.assert_serialized()
        icr = self._icr
        self._icr = 0
        if not icr:
            self._spurious += 1
            return
        self._interrupts += 1
        ifp = self.ifp
        if not int(ifp.flags) & _RUNNING:
            return
        if icr & RX:
            self._rxeof(self._rx_budget)
        if icr & TX:
            self._txeof()
        if icr & LINK:
            self._update_link()
        if not ifp.snd.is_empty():
            if_devstart(ifp)

    def _rxeof(self, budget: int) -> None:
        ifp = self.ifp
        ring = self._rx
        data = ifp.data
        input_ = ifp.input
        n = min(budget, len(ring))
        for _ in range(n):
            frame = ring.popleft()
            data.ipackets += 1
            data.ibytes += len(frame)
            input_(frame)
        if ring:
            self._hw_raise(RX)

    def poll(self, cmd: PollCmd, count: int) -> None:
        """Polling: register masks the interrupt, deregister unmasks it."""
        ifp = self.ifp
        ifp.serializer.assert_serialized()
        if cmd is PollCmd.POLL_REGISTER:
            self.disable_intr()
            return
        if cmd is PollCmd.POLL_DEREGISTER:
            self.enable_intr()
            return
        if not int(ifp.flags) & _RUNNING:
            return
        self._icr &= ~(RX | TX)
        self._rxeof(count)
        self._txeof()
        if cmd is PollCmd.POLL_AND_CHECK_STATUS:
            self._update_link()
        if not ifp.snd.is_empty():
            if_devstart(ifp)

    async def _tick(self) -> None:
        # The driver timer: a callout, so it takes the serializer itself.
        ifp = self.ifp
        async with ifp.serializer:
            if not ifp.flags & IfFlags.RUNNING:
                return
            self._update_link()
            assert self._timer is not None
            self._timer.reset(1.0, self._tick)

    def _update_link(self) -> None:
        ifp = self.ifp
        state = LinkState.UP if self.endpoint.link_up else LinkState.DOWN
        if state is not ifp.link_state:
            ifp.link_state = state
            log.info("link_state_changed", ifname=ifp.name, state=state.name)

    async def set_filter(self) -> None:
        """Reprogram the receive filter; the interrupt is off meanwhile, as em does."""
        ifp = self.ifp
        ifp.serializer.assert_serialized()
        self.disable_intr()
        self._program_filter()
        if not ifp.flags & IfFlags.POLLING and ifp.flags & IfFlags.RUNNING:
            self.enable_intr()

    ####################################################################
    # hooks for tests (hardware faults)
    ####################################################################

    def hold_tx_completions(self) -> None:
        """Stop the TX engine: posted descriptors stay busy until released or reset."""
        self._tx_held = True

    def release_tx_completions(self) -> None:
        """Let the TX engine run again: it sends the posted frames in ring
        order, completes them and raises ``TX``."""
        self._tx_held = False
        posted = self._tx_posted
        if not posted:
            return
        send = self.endpoint.send
        while posted:
            if send(posted.popleft()):
                self._tx_done_ok += 1
            else:
                self._tx_done_err += 1
        self._hw_raise(TX)

    def statistics(self) -> VnicStatistics:
        """The hardware counters."""
        return VnicStatistics(
            rx_filtered=self._rx_filtered,
            rx_stopped=self._rx_stopped,
            rx_ring=len(self._rx),
            tx_posted=len(self._tx_posted),
            tx_free=self._tx_free,
            tx_held=self._tx_held,
            intr_masked=self._masked,
            interrupts=self._interrupts,
            spurious=self._spurious,
            resets=self._resets,
        )

    ####################################################################
    # the hardware half
    ####################################################################

    def intr_mask(self) -> None:
        self._masked = True

    def intr_unmask(self) -> None:
        self._masked = False
        if self._icr:
            self._assert_irq()

    def _assert_irq(self) -> None:
        irq = self.ifp.irq
        assert irq is not None
        self.ifp.host.intr.sched_ithd(irq)

    def _hw_raise(self, cause: int) -> None:
        self._icr |= cause
        if not self._masked:
            self._assert_irq()

    def hw_receive(self, frame: bytes) -> None:
        """The wire delivers ``frame``: filter it into the RX ring and raise RX.

        A plain function; never blocks. Every refusal is counted.
        """
        if not self._rx_on:
            self._rx_stopped += 1
            return
        if len(frame) < ETHER_HDR_LEN:
            self.ifp.data.ierrors += 1
            return
        if not self._filter_promisc:
            dst = frame[:6]
            if dst[0] & 1:
                if not (
                    self._filter_allmulti
                    or dst == b"\xff\xff\xff\xff\xff\xff"
                    or dst in self._filter_groups
                ):
                    self._rx_filtered += 1
                    return
            elif dst != self._lladdr:
                self._rx_filtered += 1
                return
        ring = self._rx
        if getattr(frame, "tso_mss", 0) and not int(self.ifp.capenable) & _LRO:
            # A super-segment, and we hand frames up one by one: cut it,
            # as a NIC would have received it (offload rule 4).
            for piece in segment(frame):  # type: ignore[arg-type]
                self.hw_receive(piece)
            return
        if len(ring) >= self._rx_size:
            self.ifp.data.iqdrops += 1
            return
        ring.append(frame)
        self._icr |= RX
        if not self._masked:
            ifp = self.ifp
            ifp.host.intr.sched_ithd(ifp.irq)  # (_assert_irq, inline: per frame)

    def _program_filter(self) -> None:
        ifp = self.ifp
        self._filter_promisc = bool(ifp.flags & IfFlags.PROMISC)
        self._filter_allmulti = bool(ifp.flags & IfFlags.ALLMULTI)
        self._filter_groups = frozenset(ifp.multiaddrs)

    def _hw_reset(self) -> None:
        # A reset empties both rings; whatever was in them is counted.
        data = self.ifp.data
        self._resets += 1
        self._rx_on = False
        data.iqdrops += len(self._rx)
        self._rx.clear()
        data.opackets += self._tx_done_ok
        data.oerrors += self._tx_done_err + len(self._tx_posted)
        self._tx_posted.clear()
        self._tx_done_ok = self._tx_done_err = 0
        self._tx_free = self._tx_size
        self._tx_held = False
        self._icr = 0
