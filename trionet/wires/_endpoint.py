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

:func:`memory_pair` is the simplest wire: two endpoints joined back to back,
delivering synchronously inside ``send``. (``MemoryWire``, with delay,
bandwidth and a queue in Trio time, builds on this interface.)
"""

from __future__ import annotations

import abc
from collections.abc import Callable

import attrs

__all__ = ["EndpointStatistics", "MemoryEndpoint", "Receiver", "WireEndpoint", "memory_pair"]

#: What a driver installs to receive frames: called once per frame.
Receiver = Callable[[bytes], None]

#: Ethernet header plus the largest payload a wire carries by default.
ETHER_HDR_LEN = 14


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


@attrs.define(eq=False, repr=False)
class MemoryEndpoint(WireEndpoint):
    """One end of a :func:`memory_pair`."""

    name: str
    mtu: int = 1500
    peer: MemoryEndpoint | None = attrs.field(default=None, init=False)
    _receiver: Receiver | None = attrs.field(default=None, init=False)
    _tx_frames: int = attrs.field(default=0, init=False)
    _tx_bytes: int = attrs.field(default=0, init=False)
    _tx_drops: int = attrs.field(default=0, init=False)
    _rx_frames: int = attrs.field(default=0, init=False)
    _rx_bytes: int = attrs.field(default=0, init=False)
    _rx_drops: int = attrs.field(default=0, init=False)

    def __repr__(self) -> str:
        return f"<MemoryEndpoint {self.name!r}>"

    def send(self, frame: bytes) -> bool:
        """Deliver ``frame`` to the peer's receiver now; False if oversized.

        Never blocks and never raises for a bad frame.
        """
        n = len(frame)
        if n > self.mtu + ETHER_HDR_LEN:
            self._tx_drops += 1
            return False
        if frame.__class__ is not bytes:
            frame = bytes(frame)
        self._tx_frames += 1
        self._tx_bytes += n
        peer = self.peer
        assert peer is not None
        receiver = peer._receiver
        if receiver is None:
            peer._rx_drops += 1
        else:
            peer._rx_frames += 1
            peer._rx_bytes += n
            receiver(frame)
        return True

    def set_receiver(self, receiver: Receiver | None) -> None:
        self._receiver = receiver

    def statistics(self) -> EndpointStatistics:
        return EndpointStatistics(
            self._tx_frames,
            self._tx_bytes,
            self._tx_drops,
            self._rx_frames,
            self._rx_bytes,
            self._rx_drops,
        )


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
