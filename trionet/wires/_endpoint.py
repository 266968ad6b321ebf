"""The wire endpoint interface drivers talk to, and an in-memory endpoint pair.

A wire carries Ethernet frames between endpoints; a driver owns one endpoint.

- Sending is a plain call, :meth:`WireEndpoint.send`, that returns whether the
  wire accepted the frame (a refused frame is counted by the wire; the driver
  counts it as an output error).
- Delivery calls the receiver the driver installed with
  :meth:`WireEndpoint.set_receiver`: a plain function that puts the frame in
  the driver's RX ring and asserts its interrupt. A frame that arrives with no
  receiver installed is dropped and counted.
- Frames are passed as ``bytes``; a wire never hands the same buffer to two
  owners, and senders must not change a frame after ``send``.

Wires that own tasks or OS resources (sockets, TAP devices, delay queues) are
async context managers built on :class:`WireLifecycle`: ``async with
MemoryWire(...) as wire:``. Their tasks run in a nursery the block owns, and
leaving the block closes every socket and device, also on error.

Middleware (fault injection, capture, tracing) subclasses
:class:`EndpointWrapper`: it wraps an endpoint and is one, so a driver cannot
tell the difference.

:func:`memory_pair` is the simplest wire: two endpoints joined back to back,
delivering synchronously inside ``send``. (``MemoryWire``, with delay,
bandwidth and a queue in Trio time, builds on this interface.)

**Hops in no time.** A frame that crosses a wire without time passing (no
delay, no serialisation) and is forwarded at once by a bridge on the other
side (a :class:`~trionet.wires.Switch` forwards inside its receive call) is
still "at the same instant". Hosts never do that: they answer from their own
threads. So the number of wires a frame crossed in one instant is one plus
the number of bridges it went through, and only a loop of zero-delay links
makes it grow without bound: a broadcast storm that would keep every task
busy forever without letting virtual time move, so no timeout could fire.
In-memory wires count those hops (:data:`hops`, carried with each frame) and
drop a frame that would make more than :data:`MAX_INSTANT_HOPS`, counting it
(``loop_drops``). A hop that takes time starts the count again.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import Any

import attrs

from ..protocols.ethernet import ETHER_HDR_LEN
from ..protocols.offload import PendingFrame

__all__ = [
    "CountingEndpoint",
    "EndpointStatistics",
    "EndpointWrapper",
    "MemoryEndpoint",
    "Receiver",
    "WireEndpoint",
    "WireLifecycle",
    "MAX_INSTANT_HOPS",
    "memory_pair",
]

#: What a driver installs to receive frames: called once per frame.
Receiver = Callable[[bytes], None]

#: Wires a frame may cross in one instant of time (a bridge chain longer
#: than any real topology's; beyond it, a loop: see the module's docstring).
MAX_INSTANT_HOPS = 64


class _Hops(threading.local):
    #: Zero-time wire crossings of the frame being delivered now (0: none is;
    #: a host's own thread is sending).
    depth = 0


#: What an in-memory wire sets while it hands a frame to a receiver, so a
#: frame that receiver forwards at once inherits the count. Per OS thread,
#: as each runs its own Trio loop.
hops = _Hops()


@attrs.frozen
class EndpointStatistics:
    """Counters of one wire endpoint.

    Attributes:
        tx_frames, tx_bytes: frames the wire accepted from this endpoint.
        tx_drops: frames refused (oversized, or the wire's queue was full).
        rx_frames, rx_bytes: frames delivered to this endpoint's receiver.
        rx_drops: frames that arrived with no receiver installed.
    """

    tx_frames: int
    tx_bytes: int
    tx_drops: int
    rx_frames: int
    rx_bytes: int
    rx_drops: int


class WireEndpoint(abc.ABC):
    """One end of a wire, owned by one driver."""

    name: str
    #: The largest payload (frame minus the Ethernet header) the wire carries.
    mtu: int
    #: Frames stay in this process, as objects: a frame whose checksum is
    #: left to the card (:class:`~trionet.protocols.offload.PendingFrame`)
    #: reaches the far driver as it was sent. A driver may switch checksum
    #: offload on by default over such a wire. False for anything that turns
    #: frames into bytes (sockets, devices, captures, fault injection).
    in_memory: bool = False

    @abc.abstractmethod
    def send(self, frame: bytes) -> bool:
        """Put ``frame`` on the wire; False if the wire refused it (counted)."""

    @abc.abstractmethod
    def set_receiver(self, receiver: Receiver | None) -> None:
        """Install (or with None remove) the function that takes arriving frames."""

    @abc.abstractmethod
    def statistics(self) -> EndpointStatistics:
        """The endpoint's counters."""

    @property
    def link_up(self) -> bool:
        """Whether the far end is there (carrier). Default: always."""
        return True


class CountingEndpoint(WireEndpoint):
    """An endpoint that keeps the standard counters for its subclass.

    A subclass calls :meth:`count_sent` or :meth:`count_refused` for every
    frame offered to ``send``, and hands arriving frames to :meth:`deliver`,
    which counts them and calls the receiver (or counts ``rx_drops`` when
    none is installed).
    """

    def __init__(self, name: str, mtu: int) -> None:
        self.name = name
        self.mtu = mtu
        self._receiver: Receiver | None = None
        self._tx_frames = self._tx_bytes = self._tx_drops = 0
        self._rx_frames = self._rx_bytes = self._rx_drops = 0

    def count_sent(self, nbytes: int) -> None:
        """Count a frame of ``nbytes`` the wire accepted."""
        self._tx_frames += 1
        self._tx_bytes += nbytes

    def count_refused(self) -> None:
        """Count a frame the wire refused."""
        self._tx_drops += 1

    def deliver(self, frame: bytes) -> bool:
        """Hand ``frame`` to the receiver; False (counted) if there is none."""
        receiver = self._receiver
        if receiver is None:
            self._rx_drops += 1
            return False
        self._rx_frames += 1
        self._rx_bytes += len(frame)
        receiver(frame)
        return True

    def set_receiver(self, receiver: Receiver | None) -> None:
        self._receiver = receiver

    def statistics(self) -> EndpointStatistics:
        return EndpointStatistics(**self._counts())

    def _counts(self) -> dict[str, int]:
        # The standard counters as keyword arguments: a subclass's own
        # statistics class extends EndpointStatistics with more fields.
        return {
            "tx_frames": self._tx_frames,
            "tx_bytes": self._tx_bytes,
            "tx_drops": self._tx_drops,
            "rx_frames": self._rx_frames,
            "rx_bytes": self._rx_bytes,
            "rx_drops": self._rx_drops,
        }


class EndpointWrapper(CountingEndpoint):
    """Middleware: wraps ``inner`` and is an endpoint itself.

    The wrapper installs itself as ``inner``'s receiver. Subclasses override
    :meth:`send` (the outbound path: call ``self.pass_down(frame)`` to pass
    a frame on) and :meth:`inbound` (the inbound path: call
    ``self.deliver(frame)`` to pass a frame up). By default both pass
    everything through. :meth:`deliver` counts a frame that arrives with no
    receiver installed in ``rx_drops``.

    Counters: ``statistics()`` reports what crossed the wrapper itself (frames
    passed on in each direction), not what the inner endpoint counted.
    """

    def __init__(self, inner: WireEndpoint, name: str | None = None) -> None:
        super().__init__(name if name is not None else inner.name, inner.mtu)
        self.inner = inner
        inner.set_receiver(self.inbound)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} over {self.inner!r}>"

    def send(self, frame: bytes) -> bool:
        """Pass ``frame`` to the inner endpoint (override to interpose)."""
        return self.pass_down(frame)

    def pass_down(self, frame: bytes) -> bool:
        """Send ``frame`` on the inner endpoint, counting it here."""
        if self.inner.send(frame):
            self.count_sent(len(frame))
            return True
        self.count_refused()
        return False

    def inbound(self, frame: bytes) -> None:
        """A frame from the inner endpoint (override to interpose)."""
        self.deliver(frame)

    @property
    def link_up(self) -> bool:
        return self.inner.link_up


class WireLifecycle:
    """Base of wires and middleware that own tasks or OS resources.

    Use the object as ``async with obj:`` (it returns itself). A subclass
    implements :meth:`_lifecycle`, an async generator that opens what it
    needs, starts its tasks in a nursery it opens there, yields once, and
    closes everything in ``finally`` (so leaving the block, normally or by
    an exception, releases sockets and devices). Open the nursery with
    :func:`service_nursery` (``trionet._nursery``), so the caller sees the body's own exception
    rather than an ``ExceptionGroup`` around it. Entering twice is an error.
    """

    _lifecycle_cm: AbstractAsyncContextManager[Any] | None = None
    _lifecycle_used: bool = False

    def _lifecycle(self) -> AsyncIterator[None]:
        raise NotImplementedError

    async def __aenter__(self) -> Any:
        if self._lifecycle_used:
            raise RuntimeError(f"{self!r} can be entered only once")
        self._lifecycle_used = True
        cm = asynccontextmanager(self._lifecycle)()
        await cm.__aenter__()
        self._lifecycle_cm = cm
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        cm, self._lifecycle_cm = self._lifecycle_cm, None
        assert cm is not None
        return await cm.__aexit__(exc_type, exc, tb)


class MemoryEndpoint(CountingEndpoint):
    """One end of a :func:`memory_pair`."""

    in_memory = True

    def __init__(self, name: str, mtu: int = 1500) -> None:
        super().__init__(name, mtu)
        self.peer: MemoryEndpoint | None = None

    def __repr__(self) -> str:
        return f"<MemoryEndpoint {self.name!r}>"

    def send(self, frame: bytes) -> bool:
        """Deliver ``frame`` to the peer's receiver now; False if oversized
        (a TCP super-segment, TSO, may be: it stays in memory), or if it made
        more than :data:`MAX_INSTANT_HOPS` hops in no time (a loop; counted in
        ``tx_drops``).

        Never blocks and never raises for a bad frame.
        """
        n = len(frame)
        depth = hops.depth + 1
        oversize = n > self.mtu + ETHER_HDR_LEN and not getattr(frame, "tso_mss", 0)
        if oversize or depth > MAX_INSTANT_HOPS:
            self.count_refused()
            return False
        if frame.__class__ is not bytes and frame.__class__ is not PendingFrame:
            frame = bytes(frame)
        self.count_sent(n)
        peer = self.peer
        assert peer is not None
        outer, hops.depth = hops.depth, depth
        try:
            peer.deliver(frame)
        finally:
            hops.depth = outer
        return True


def memory_pair(name: str = "wire", *, mtu: int = 1500) -> tuple[MemoryEndpoint, MemoryEndpoint]:
    """Two endpoints joined back to back: what one sends, the other receives.

    Args:
        name: the endpoints are called ``{name}.a`` and ``{name}.b``.
        mtu: frames longer than ``mtu`` plus the Ethernet header are refused.
    """
    if isinstance(mtu, bool) or not isinstance(mtu, int) or mtu < 1:
        raise ValueError(f"mtu must be a positive int, not {mtu!r}")
    a = MemoryEndpoint(f"{name}.a", mtu)
    b = MemoryEndpoint(f"{name}.b", mtu)
    a.peer, b.peer = b, a
    return a, b
