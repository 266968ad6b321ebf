"""``UdpWire``: Ethernet frames over UDP, one frame per datagram.

A :class:`UdpWire` is a :class:`~trionet.lowlevel.WireEndpoint` whose far end
is whatever sits at a UDP address: another trionet process, a QEMU guest, a
GNS3 node, or the Linux kernel's VXLAN device.

Formats
=======

``mode="raw"``
    Exactly one Ethernet frame (destination MAC first, no preamble, no FCS,
    no length prefix, no virtio-net header) per UDP datagram. This is what
    QEMU ``-netdev dgram`` (and the legacy ``-netdev socket,udp=...``) and the
    GNS3 UDP NIOs (uBridge, Dynamips, VPCS) send and expect.

``mode="vxlan"``
    RFC 7348 section 5: an 8-byte header, then the inner Ethernet frame::

        byte 0     flags: 0x08 (the I flag: "the VNI is valid"); others reserved
        bytes 1-3  reserved (sent as zero, ignored on receipt)
        bytes 4-6  VNI, 24 bits, big-endian
        byte 7     reserved (sent as zero, ignored on receipt)

    The IANA port is 4789 (Linux's default ``dstport`` is still the legacy
    8472; give the port explicitly).

Theory of operation
===================

1. ``UdpWire(...)`` only validates its arguments; ``async with wire:`` opens
   an IPv4 UDP socket, binds it to ``local``, and starts one receive task in a
   nursery the block owns. Leaving the block (normally, by an exception or by
   cancellation) cancels the task and closes the socket; an exception raised
   by the body reaches the caller unwrapped (not inside an ExceptionGroup).
2. :meth:`UdpWire.send` is a plain function: one non-blocking ``sendto`` of
   one datagram to the peer. It never waits and never raises for a frame or
   a transient socket error: it returns False and counts (``tx_drops``; the
   OS's refusals, such as ``EAGAIN`` or ``ENOBUFS`` when the socket buffer is
   full, also in ``tx_errors``). There is no queue in the wire: the socket's
   send buffer is the queue, and backpressure is a refused frame.
3. The receive task waits for the socket with
   :func:`trio.lowlevel.wait_readable` and then drains up to ``batch``
   datagrams with non-blocking ``recvfrom`` calls, no ``await`` per datagram.
   A full batch is followed by :func:`trio.lowlevel.checkpoint` (others run,
   then it drains again without waiting); a short batch means the socket is
   empty, and the task goes back to ``wait_readable``. So the task never
   spins, and it never holds the CPU for more than ``batch`` datagrams.
4. Every datagram read is checked in this order, and the first failed check
   drops it and bumps one counter (no exception, a debug log event
   ``frame_dropped`` with a ``reason``):

   a. the source is not the peer (``rx_foreign``). Raw mode compares
      (address, port). VXLAN mode compares the address only, because VXLAN
      senders pick the UDP *source* port from a hash of the inner frame's
      flow to give ECMP routers entropy (RFC 7348 section 5, "Source Port"),
      and Linux does so; the destination port is fixed by our bind.
   b. too short to hold a frame, or (VXLAN) without the I flag
      (``rx_malformed``).
   c. (VXLAN) a VNI other than ours (``rx_vni_mismatch``).
   d. the frame is longer than ``mtu`` plus the 14-byte Ethernet header
      (``rx_oversize``). The receive buffer holds the largest possible
      IPv4 UDP payload, so a datagram is never truncated into a frame that
      looks valid.

   A good frame goes to the receiver (:meth:`UdpWire.set_receiver`) as
   ``bytes``; with none installed it is counted in ``rx_drops``. An exception
   from the receiver is a bug in the driver and is *not* caught: it crashes
   the wire's nursery and so the ``async with`` block.

Network safety
==============

The socket binds 127.0.0.1 (an ephemeral port) unless ``local`` says
otherwise, and datagrams from anyone but the peer are dropped, so a wire
left at its defaults cannot be reached from, or send to, another machine.
The socket is never ``connect()``-ed: a connected socket would make the kernel
discard foreign datagrams silently (they would not be counted) and would
reject a VXLAN peer's varying source port.

Limits
======

IPv4 only (QEMU's inet ``dgram`` backend is IPv4-only too); addresses are
dotted-quad literals, never names, so nothing here resolves a name. The
largest ``mtu`` is what fits in one IPv4 UDP datagram (65,507 bytes of
payload) with the Ethernet header and, in VXLAN mode, the VXLAN header. The
socket's receive buffer is raised towards :data:`SOCKET_RCVBUF` (the kernel
caps it at ``net.core.rmem_max``); beyond it, the kernel drops datagrams
before we see them and counts them in its own UDP ``RcvbufErrors``, not
here.

Prior art: QEMU ``net/dgram.c`` (``net_dgram_receive``/``net_dgram_send``),
GNS3 uBridge ``src/nio_udp.c``, Linux ``drivers/net/vxlan/vxlan_core.c``
(``vxlan_rcv``, ``udp_flow_src_port``).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import structlog
import trio

from .._nursery import service_nursery
from ..protocols.offload import complete, wire_frames
from ._endpoint import ETHER_HDR_LEN, CountingEndpoint, EndpointStatistics, WireLifecycle

__all__ = ["UdpWire", "UdpWireStatistics", "open_udp_wire_pair"]

log = structlog.get_logger(__name__)

#: Encapsulation modes.
MODES = ("raw", "vxlan")

#: Length of the RFC 7348 header.
VXLAN_HDR_LEN = 8

#: The I flag of the VXLAN flags byte: the VNI field is valid.
VXLAN_FLAG_I = 0x08

#: The IANA-assigned VXLAN port (RFC 7348 section 5).
VXLAN_PORT = 4789

#: Largest UDP payload of an IPv4 datagram: 65535 - 20 (IP) - 8 (UDP).
MAX_UDP_PAYLOAD = 65507

#: Bytes asked of each ``recvfrom``: any IPv4 UDP payload fits, so an
#: oversized datagram is seen whole and counted, never truncated.
RECV_BUFSIZE = 65535

#: The receive buffer (``SO_RCVBUF``) the wire asks for, in bytes. Linux
#: caps it at ``net.core.rmem_max`` (and doubles it for bookkeeping). The
#: default (208 KiB) holds 256 datagrams of 60 bytes (each is charged about
#: 830 bytes): one burst of a vnic's default 256-descriptor TX ring fills it.
#: Asking for 1 MiB got 2 MiB, about 2,500 such datagrams, on our machines.
SOCKET_RCVBUF = 1 << 20

#: The largest VNI (24 bits).
MAX_VNI = (1 << 24) - 1


@attrs.frozen
class UdpWireStatistics(EndpointStatistics):
    """Counters of a :class:`UdpWire` (a superset of :class:`EndpointStatistics`).

    Every datagram read is counted in ``rx_datagrams`` and in exactly one of
    ``rx_frames``, ``rx_drops``, ``rx_foreign``, ``rx_malformed``,
    ``rx_vni_mismatch``, ``rx_oversize``.

    Attributes:
        tx_frames, tx_bytes: frames sent (bytes of the Ethernet frames; the
            VXLAN header is not counted).
        tx_drops: frames refused by :meth:`UdpWire.send`: wire not open,
            frame shorter than 14 bytes or longer than ``mtu + 14``, or the
            OS refused the datagram.
        tx_errors: of ``tx_drops``, those the OS refused (``EAGAIN``,
            ``ENOBUFS``, ``EMSGSIZE``, an unreachable network...).
        rx_frames, rx_bytes: frames handed to the receiver.
        rx_drops: good frames that arrived with no receiver installed.
        rx_datagrams: datagrams read from the socket.
        rx_foreign: datagrams from a source other than the peer.
        rx_malformed: datagrams too short for a frame, or (VXLAN) without the
            I flag.
        rx_vni_mismatch: VXLAN datagrams for another VNI.
        rx_oversize: frames longer than ``mtu + 14``.
        rx_errors: ``recvfrom`` calls that failed with an error other than
            "nothing to read" (an ICMP error queued on the socket, say).
        rx_wakeups: times the receive task woke up from waiting for the
            socket (it waits only when a drain found the socket empty).
        rx_batches: drain passes that read at least one datagram
            (``rx_datagrams / rx_batches`` is the mean batch, at most
            ``batch``).
    """

    tx_errors: int
    rx_datagrams: int
    rx_foreign: int
    rx_malformed: int
    rx_vni_mismatch: int
    rx_oversize: int
    rx_errors: int
    rx_wakeups: int
    rx_batches: int


def _check_address(what: str, value: Any, *, port_zero_ok: bool) -> tuple[str, int]:
    # Validate an (IPv4 literal, port) pair and return it normalised, so it
    # compares equal to what recvfrom() reports.
    if not isinstance(value, tuple) or len(value) != 2:
        raise TypeError(f"{what} must be a (host, port) tuple, not {value!r}")
    host, port = value
    if not isinstance(host, str):
        raise TypeError(f"{what} host must be a str such as '127.0.0.1', not {host!r}")
    try:
        addr = ipaddress.IPv4Address(host)
    except ValueError:
        raise ValueError(
            f"{what} host must be a dotted-quad IPv4 address such as '127.0.0.1', not {host!r}"
            " (UdpWire resolves no names and supports IPv4 only)"
        ) from None
    low = 0 if port_zero_ok else 1
    if isinstance(port, bool) or not isinstance(port, int) or not low <= port <= 65535:
        raise ValueError(f"{what} port must be an int in {low}..65535, not {port!r}")
    return str(addr), port


class UdpWire(CountingEndpoint, WireLifecycle):
    """An endpoint whose far end is a UDP peer: one frame per datagram.

    Use it as ``async with UdpWire(peer) as wire:``; the block owns the
    socket and the receive task (see the module docstring for the formats,
    the checks on received datagrams and the limits).

    Args:
        peer: the far end's (IPv4 address, port): where frames are sent, and
            the only source frames are accepted from (in VXLAN mode, the
            address only). Can be changed later through :attr:`peer`.
        local: the (IPv4 address, port) to bind; port 0 picks a free one.
            Default: loopback, so nothing outside the machine is reachable.
        mode: ``"raw"`` (QEMU ``-netdev dgram``, GNS3) or ``"vxlan"``
            (RFC 7348).
        vni: the VXLAN Network Identifier, 0..2**24-1, sent in every
            datagram and required of every received one (VXLAN mode only).
        mtu: the largest payload (frame minus the 14-byte Ethernet header)
            sent or accepted.
        batch: datagrams the receive task reads per wake-up before it lets
            other tasks run.
        name: the endpoint's name, for ``repr`` and logs.

    Raises:
        TypeError, ValueError: for a bad address, mode, VNI, MTU or batch.

    .. attribute:: peer

       The far end's (address, port). Assigning it (a validated tuple) takes
       effect for the next frame sent and the next datagram received; this
       is how two wires on ephemeral ports are pointed at each other
       (:func:`open_udp_wire_pair`).

    Statistics: :class:`UdpWireStatistics`; its first six counters, and
    the receiver, are :class:`~trionet.lowlevel.CountingEndpoint`'s.
    """

    def __init__(
        self,
        peer: tuple[str, int],
        *,
        local: tuple[str, int] = ("127.0.0.1", 0),
        mode: str = "raw",
        vni: int = 0,
        mtu: int = 1500,
        batch: int = 64,
        name: str | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be 'raw' or 'vxlan', not {mode!r}")
        if isinstance(vni, bool) or not isinstance(vni, int) or not 0 <= vni <= MAX_VNI:
            raise ValueError(f"vni must be an int in 0..{MAX_VNI} (24 bits), not {vni!r}")
        if mode == "raw" and vni != 0:
            raise ValueError(f"vni={vni} needs mode='vxlan'; raw datagrams carry no VNI")
        overhead = ETHER_HDR_LEN + (VXLAN_HDR_LEN if mode == "vxlan" else 0)
        max_mtu = MAX_UDP_PAYLOAD - overhead
        if isinstance(mtu, bool) or not isinstance(mtu, int) or not 1 <= mtu <= max_mtu:
            raise ValueError(
                f"mtu must be an int in 1..{max_mtu} (one IPv4 UDP datagram in {mode} mode), not {mtu!r}"
            )
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ValueError(f"batch must be a positive int, not {batch!r}")
        self._peer = _check_address("peer", peer, port_zero_ok=False)
        self._local = _check_address("local", local, port_zero_ok=True)
        super().__init__(name if name is not None else f"udp:{self._peer[0]}:{self._peer[1]}", mtu)
        self.mode = mode
        self.vni = vni
        self.batch = batch
        self._max_frame = mtu + ETHER_HDR_LEN
        # VXLAN: the header we send, and the VNI bytes we require.
        self._header = (
            bytes((VXLAN_FLAG_I, 0, 0, 0)) + vni.to_bytes(3, "big") + b"\x00"
            if mode == "vxlan"
            else b""
        )
        self._vni_bytes = vni.to_bytes(3, "big")
        self._input: Callable[[bytes, tuple[str, int]], None] = (
            self._input_vxlan if mode == "vxlan" else self._input_raw
        )
        self._sock: socket.socket | None = None
        self._bound: tuple[str, int] | None = None
        self._log: Any = log
        self._tx_errors = 0
        self._rx_datagrams = self._rx_foreign = self._rx_malformed = 0
        self._rx_vni_mismatch = self._rx_oversize = self._rx_errors = 0
        self._rx_wakeups = self._rx_batches = 0

    def __repr__(self) -> str:
        local = self._bound if self._bound is not None else self._local
        vni = f" vni={self.vni}" if self.mode == "vxlan" else ""
        return (
            f"<UdpWire {self.name!r} {self.mode}{vni} "
            f"{local[0]}:{local[1]} -> {self._peer[0]}:{self._peer[1]}>"
        )

    ####################################################################
    # configuration and state
    ####################################################################

    @property
    def peer(self) -> tuple[str, int]:
        """The far end's (IPv4 address, port); assignable (see the class docstring)."""
        return self._peer

    @peer.setter
    def peer(self, value: tuple[str, int]) -> None:
        self._peer = _check_address("peer", value, port_zero_ok=False)

    @property
    def local_address(self) -> tuple[str, int]:
        """The (address, port) the socket is bound to (the real port when
        ``local`` asked for port 0). Still answers after the block exits.

        Raises:
            RuntimeError: if the wire was never opened.
        """
        if self._bound is None:
            raise RuntimeError(f"{self!r} has no socket yet: use 'async with' first")
        return self._bound

    @property
    def link_up(self) -> bool:
        """True while the socket is open (UDP has no carrier to follow)."""
        return self._sock is not None

    # set_receiver is CountingEndpoint's: ``receiver(frame)`` is called from
    # the wire's receive task, once per good frame, with ``bytes``; it must
    # not block.

    def statistics(self) -> UdpWireStatistics:
        """The wire's counters (see :class:`UdpWireStatistics`)."""
        return UdpWireStatistics(
            **self._counts(),
            tx_errors=self._tx_errors,
            rx_datagrams=self._rx_datagrams,
            rx_foreign=self._rx_foreign,
            rx_malformed=self._rx_malformed,
            rx_vni_mismatch=self._rx_vni_mismatch,
            rx_oversize=self._rx_oversize,
            rx_errors=self._rx_errors,
            rx_wakeups=self._rx_wakeups,
            rx_batches=self._rx_batches,
        )

    ####################################################################
    # transmit
    ####################################################################

    def send(self, frame: bytes) -> bool:
        """Send ``frame`` to the peer as one datagram; False if refused (counted).

        A plain function: one non-blocking ``sendto``, no await, no queue.
        Refused, counted in ``tx_drops`` and never raised: a frame shorter
        than 14 or longer than ``mtu + 14`` bytes, any frame while the wire
        is not open (before ``async with`` or after it), and any ``OSError``
        from the socket (also counted in ``tx_errors``, logged at debug:
        ``EAGAIN``/``ENOBUFS`` when the send buffer or the device queue is
        full, ``ENETUNREACH``...). A True return means the kernel took the
        datagram, not that the peer got it: UDP can still lose it.

        Args:
            frame: an Ethernet frame (``bytes`` or any buffer); the wire does
                not keep a reference to it.
        """
        if getattr(frame, "tso_mss", 0):  # a super-segment: one datagram per segment
            return all([self.send(piece) for piece in wire_frames(frame)])
        n = len(frame)
        sock = self._sock
        if sock is None or not ETHER_HDR_LEN <= n <= self._max_frame:
            self.count_refused()
            self._log.debug(
                "frame_dropped", reason="closed" if sock is None else "bad_length", length=n
            )
            return False
        frame = complete(frame)  # the peer sees real bytes
        try:
            sock.sendto(self._header + frame if self._header else frame, self._peer)
        except OSError as exc:
            self.count_refused()
            self._tx_errors += 1
            self._log.debug("frame_dropped", reason="send_failed", errno=exc.errno, length=n)
            return False
        self._tx_frames += 1  # (count_sent, inline: per frame)
        self._tx_bytes += n
        return True

    ####################################################################
    # receive
    ####################################################################

    async def _receive_loop(self, sock: socket.socket) -> None:
        # Rule 3: wait, drain a batch, checkpoint after a full one.
        wait_readable = trio.lowlevel.wait_readable
        checkpoint = trio.lowlevel.checkpoint
        batch = self.batch
        while True:
            await wait_readable(sock)
            self._rx_wakeups += 1
            while self._drain(sock, batch) == batch:
                await checkpoint()

    def _drain(self, sock: socket.socket, batch: int) -> int:
        # Read up to `batch` datagrams without blocking; return how many. Fewer
        # than `batch` means the socket is empty (or reported an error).
        recvfrom = sock.recvfrom
        input_ = self._input
        n = 0
        while n < batch:
            try:
                data, addr = recvfrom(RECV_BUFSIZE)
            except BlockingIOError:
                break
            except OSError as exc:
                # An error queued on the socket (ICMP, say) is reported once and
                # cleared by this very call, so this cannot spin.
                self._rx_errors += 1
                self._log.debug("recv_failed", errno=exc.errno)
                break
            n += 1
            self._rx_datagrams += 1
            input_(data, addr)
        if n:
            self._rx_batches += 1
        return n

    def _input_raw(self, data: bytes, addr: tuple[str, int]) -> None:
        # Rule 4 for raw datagrams: the datagram is the frame.
        if addr != self._peer:
            self._drop("foreign", data, addr)
            return
        n = len(data)
        if n < ETHER_HDR_LEN:
            self._drop("malformed", data, addr)
            return
        if n > self._max_frame:
            self._drop("oversize", data, addr)
        elif not self.deliver(data):
            self._no_receiver(n)

    def _input_vxlan(self, data: bytes, addr: tuple[str, int]) -> None:
        # Rule 4 for VXLAN: the address only (the source port is flow entropy),
        # then the I flag, the VNI, the inner frame's size. Reserved bits and
        # bytes are ignored on receipt (RFC 7348 section 5).
        if addr[0] != self._peer[0]:
            self._drop("foreign", data, addr)
            return
        n = len(data) - VXLAN_HDR_LEN
        if n < ETHER_HDR_LEN or not data[0] & VXLAN_FLAG_I:
            self._drop("malformed", data, addr)
            return
        if data[4:7] != self._vni_bytes:
            self._drop("vni_mismatch", data, addr)
            return
        if n > self._max_frame:
            self._drop("oversize", data, addr)
        elif not self.deliver(data[VXLAN_HDR_LEN:]):
            self._no_receiver(n)

    def _no_receiver(self, n: int) -> None:
        # A good frame of n bytes, counted in rx_drops by deliver().
        self._log.debug("frame_dropped", reason="no_receiver", length=n)

    def _drop(self, reason: str, data: bytes, addr: tuple[str, int]) -> None:
        # The counters are the record; the debug event explains them.
        if reason == "foreign":
            self._rx_foreign += 1
        elif reason == "malformed":
            self._rx_malformed += 1
        elif reason == "vni_mismatch":
            self._rx_vni_mismatch += 1
        else:
            self._rx_oversize += 1
        self._log.debug("frame_dropped", reason=reason, length=len(data), src=f"{addr[0]}:{addr[1]}")

    ####################################################################
    # lifecycle
    ####################################################################

    async def _lifecycle(self) -> AsyncIterator[None]:
        # Rule 1. The socket is closed in the outer finally whatever happens
        # after it was created, including a failed bind.
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_RCVBUF)
            except OSError:  # pragma: no cover - a smaller buffer still works
                pass
            sock.bind(self._local)
            host, port = sock.getsockname()[:2]
            self._bound = (host, port)
            self._log = log.bind(wire=self.name)
            async with service_nursery() as nursery:
                nursery.start_soon(self._receive_loop, sock, name=f"udpwire {self.name}")
                self._sock = sock
                self._log.info(
                    "udp_wire_opened",
                    mode=self.mode,
                    local=f"{host}:{port}",
                    peer=f"{self._peer[0]}:{self._peer[1]}",
                )
                try:
                    yield
                finally:
                    self._sock = None
        finally:
            self._sock = None
            trio.lowlevel.notify_closing(sock)
            sock.close()
            if self._bound is not None:
                self._log.info("udp_wire_closed")


@asynccontextmanager
async def open_udp_wire_pair(
    *,
    host: str = "127.0.0.1",
    mode: str = "raw",
    vni: int = 0,
    mtu: int = 1500,
    batch: int = 64,
    name: str = "udp",
) -> AsyncIterator[tuple[UdpWire, UdpWire]]:
    """Two open :class:`UdpWire` on ``host`` (ephemeral ports), each the other's peer.

    A point-to-point link through the kernel's UDP: what one sends, the other
    receives (unless the kernel drops it; see the counters). Both are closed
    when the block exits.

    Args:
        host: the IPv4 address both bind (default loopback).
        mode, vni, mtu, batch: as for :class:`UdpWire`, the same for both.
        name: the wires are called ``{name}.a`` and ``{name}.b``.
    """
    # `a` starts with a placeholder peer (port 9, discard), replaced before the
    # block runs and before anything can have been sent to it.
    a = UdpWire((host, 9), local=(host, 0), mode=mode, vni=vni, mtu=mtu, batch=batch, name=f"{name}.a")
    async with a:
        b = UdpWire(
            a.local_address,
            local=(host, 0),
            mode=mode,
            vni=vni,
            mtu=mtu,
            batch=batch,
            name=f"{name}.b",
        )
        async with b:
            a.peer = b.local_address
            yield a, b
