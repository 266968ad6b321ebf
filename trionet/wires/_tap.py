"""``TapWire``: a Linux TAP device, so the host kernel's own stack is the far end.

What it is: ``async with TapWire("tntap0") as wire:`` opens ``/dev/net/tun``,
creates the TAP device ``tntap0`` with ``TUNSETIFF`` and ``IFF_TAP |
IFF_NO_PI`` (whole Ethernet frames, no packet-information header), and makes
the wire a :class:`~trionet.lowlevel.WireEndpoint`: a driver (normally
``vnic``) sends frames that the kernel receives on ``tntap0``, and receives
every frame the kernel transmits there. Move the device into a network
namespace (``ip link set tntap0 netns NS``), give it an address there, and
``ping``, ``curl`` or ``nc`` inside that namespace talk to your stack.

Theory of operation:

1. Opening (``__aenter__``) checkpoints first, then makes system calls that
   never block: ``open`` (non-blocking, close-on-exec), ``TUNSETIFF``, and
   ``SIOCSIFMTU`` when the device's MTU differs from the wire's. Any failure
   closes the descriptor and raises :class:`~trionet.NetError` with the
   system's errno; nothing is left behind.
2. One receive task per wire, in a nursery the block owns, waits with
   :func:`trio.lowlevel.wait_readable`, then reads up to ``batch`` frames
   with non-blocking ``os.read`` (no await per frame) and hands each to the
   receiver. After a full batch it checkpoints and reads on without waiting;
   when a read would block it waits again. So one busy TAP cannot starve the
   other tasks, and an idle one costs nothing.
3. :meth:`TapWire.send` is a plain function: one non-blocking ``os.write``.
   It never blocks and never raises for a frame; a refused frame returns
   False and is counted.
4. Leaving the block (normally, by an exception, or by cancellation) cancels
   the receive task, then closes the descriptor: the device is not
   persistent, so the kernel deletes it, and the frames queued in it are
   discarded with it. An exception raised by the body reaches the caller
   unwrapped (not inside an ExceptionGroup).
5. If the device disappears while the wire is open (``ip link del``, or its
   namespace was deleted), reads and writes fail with ``EBADFD``: the
   carrier drops (:attr:`TapWire.link_up` becomes False, so a vnic takes its
   link down), the receive task ends, and further sends are refused and
   counted. This is a cable pulled, not a crash. Any other read error is a
   bug or an unknown condition and propagates, crashing the block.

Safety: the device only carries what the kernel routes to it. It starts down
and without addresses in the namespace it was created in; tests move it into
a namespace they made and use addresses of 198.18.0.0/15. Needs root (more
exactly ``CAP_NET_ADMIN``) and ``/dev/net/tun``; without them opening raises
``NetError`` (``EPERM``/``EACCES``, ``ENOENT``, ``ENODEV``/``ENXIO``) saying so.
Linux only: elsewhere opening raises ``NetError(EOPNOTSUPP)``; importing this
module works everywhere.

Bounds: one frame per ``os.read``/``os.write``; at most ``batch`` frames
per receive pass between checkpoints; no queue of our own (the kernel's TAP
queue, 1000 frames by default, holds what we have not read yet, and the
kernel counts its drops as the device's ``tx_dropped``). Received frames
longer than ``mtu`` + 14 bytes are counted ``rx_oversize``, frames shorter
than the 14-byte Ethernet header ``rx_runts``; both are dropped.

Cancellation: a cancel delivered to the receive task (or to the block) loses
no frame that was already read: each frame is handed to the receiver in the
same step as its read.

DragonFly: the far end plays the part of ``sys/net/tap/if_tap.c`` (a
``tap(4)`` device read and written by a user process), seen from the other
side: here the user process is the NIC.
"""

from __future__ import annotations

import errno
import os
import platform
import socket
import struct
import sys
from collections.abc import AsyncIterator

import attrs
import structlog
import trio

from .._exceptions import NetError
from .._nursery import service_nursery
from ..protocols.offload import complete, wire_frames
from ._endpoint import ETHER_HDR_LEN, CountingEndpoint, EndpointStatistics, WireLifecycle

try:  # Not on Windows; the module must still import there (trionet.wires does).
    import fcntl
except ImportError:  # pragma: no cover - Linux CI
    fcntl = None  # type: ignore[assignment]

__all__ = ["TapWire", "TapWireStatistics"]

log = structlog.get_logger(__name__)

####################################################################
# Linux constants (linux/if_tun.h, linux/sockios.h, linux/if.h)
####################################################################

#: The clone device every TUN/TAP device is opened through.
TUN_PATH = "/dev/net/tun"

IFF_TAP = 0x0002
IFF_NO_PI = 0x1000

#: ``IFNAMSIZ`` is 16 including the terminating NUL.
IFNAMSIZ = 16


def _tunsetiff() -> int:
    # TUNSETIFF is _IOW('T', 202, int). The direction bits of _IOW differ on
    # the architectures that use a 3-bit direction field (asm/ioctl.h).
    if platform.machine().lower().startswith(("ppc", "powerpc", "mips", "sparc", "alpha")):
        return 0x800454CA
    return 0x400454CA


TUNSETIFF = _tunsetiff()
SIOCGIFMTU = 0x8921
SIOCSIFMTU = 0x8922

#: ``struct ifreq``: the name, then a union; 40 bytes on 64-bit Linux (32 on
#: 32-bit, where the kernel simply reads less of our buffer).
_IFREQ_FLAGS = struct.Struct("16sH22x")
_IFREQ_INT = struct.Struct("16si20x")

#: Bytes asked of every read: more than the largest frame a TAP device can
#: carry (MTU at most 65535 - 14, plus a VLAN tag), so a frame is never cut
#: by our buffer and an oversized one is seen whole and counted.
_READ_SIZE = 65536 + 64

#: Smallest MTU Linux accepts on an Ethernet device (``ETH_MIN_MTU``), and
#: the largest a TAP device takes (``MAX_MTU - ETH_HLEN``).
MIN_MTU = 68
MAX_MTU = 65535 - ETHER_HDR_LEN

#: What the errnos in _SETUP_ERRNOS ("you lack the privilege or the device
#: node") mean, added to their messages.
_SETUP_HINT = (
    "TapWire needs root (more exactly CAP_NET_ADMIN) and the TUN/TAP clone "
    "device /dev/net/tun (Linux module 'tun')"
)
_SETUP_ERRNOS = frozenset({errno.EPERM, errno.EACCES, errno.ENOENT, errno.ENODEV, errno.ENXIO})


@attrs.frozen
class TapWireStatistics(EndpointStatistics):
    """Counters of a :class:`TapWire` (an :class:`~trionet.lowlevel.EndpointStatistics`
    with three more fields).

    Attributes:
        tx_frames, tx_bytes: frames the kernel accepted from :meth:`TapWire.send`.
        tx_drops: frames :meth:`TapWire.send` refused, for any reason: wire
            not open or device gone, shorter than 14 or longer than ``mtu`` +
            14 bytes, or the write failed (``tx_errors``).
        rx_frames, rx_bytes: frames handed to the receiver.
        rx_drops: frames that arrived with no receiver installed.
        rx_oversize: received frames longer than ``mtu`` + 14 bytes (dropped).
        rx_runts: received frames shorter than 14 bytes (dropped).
        tx_errors: writes the kernel refused with an error (``EIO`` while the
            device is down in the kernel, ``EBADFD`` once it is gone,
            ``EAGAIN``, ...); also counted in ``tx_drops``.
    """

    rx_oversize: int
    rx_runts: int
    tx_errors: int


class TapWire(CountingEndpoint, WireLifecycle):
    """A Linux TAP device as a wire endpoint; the host kernel is the far end.

    Use as ``async with TapWire("tntap0") as wire:`` and give ``wire`` to a
    driver (``Vnic(wire)``). The device exists while the block is open and is
    gone after it. See the module docstring for the rules.

    Args:
        name: the device name, at most 15 bytes; a name with ``%d`` is a
            template the kernel fills in (``"tntap%d"``). None: the kernel
            picks ``tapN``. An existing persistent TAP device of that name is
            attached to instead of created (and then not deleted on close).
        mtu: the largest payload (frame minus the 14-byte Ethernet header),
            68 to 65521. Opening sets the device's MTU to it if different;
            longer frames are refused by :meth:`send` and dropped on receive.
        batch: frames the receive task reads before it checkpoints.

    Raises:
        ValueError: for a name longer than 15 bytes or one Linux forbids
            (empty, ``.``, ``..``, containing ``/``, ``:`` or whitespace), or
            an out-of-range ``mtu`` or ``batch``.
        TypeError: for a name that is not a str.

    ``statistics()`` returns a :class:`TapWireStatistics`: ``tx_frames``,
    ``tx_bytes``, ``tx_drops``, ``rx_frames``, ``rx_bytes``, ``rx_drops``,
    ``rx_oversize``, ``rx_runts``, ``tx_errors``. The first six are
    :class:`~trionet.lowlevel.CountingEndpoint`'s, as is the receiver.

    .. attribute:: name

       The endpoint's name (:class:`~trionet.lowlevel.WireEndpoint`): the
       requested device name (``"tap"`` if none) until the device is
       created, then the name the kernel gave it.
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        mtu: int = 1500,
        batch: int = 64,
        _tun_path: str = TUN_PATH,
    ) -> None:
        if name is not None:
            _check_ifname(name)
        if isinstance(mtu, bool) or not isinstance(mtu, int) or not MIN_MTU <= mtu <= MAX_MTU:
            raise ValueError(f"mtu must be an int from {MIN_MTU} to {MAX_MTU}, not {mtu!r}")
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ValueError(f"batch must be a positive int, not {batch!r}")
        super().__init__(name if name is not None else "tap", mtu)
        self.batch = batch
        self._requested = name
        self._tun_path = _tun_path
        self._ifname: str | None = None
        self._fd: int | None = None
        self._log = log
        self._tx_errors = self._rx_oversize = self._rx_runts = 0

    def __repr__(self) -> str:
        if self._fd is not None:
            state = "open"
        else:
            state = "closed" if self._ifname is not None else "not opened"
        return f"<TapWire {self.name!r} {state}>"

    @property
    def ifname(self) -> str:
        """The device name the kernel gave (still readable after the block).

        Raises:
            RuntimeError: before the block was entered (there is no device yet).
        """
        if self._ifname is None:
            raise RuntimeError(f"{self!r} has no device yet; use it inside 'async with'")
        return self._ifname

    @property
    def link_up(self) -> bool:
        """Carrier: True while the block is open and the device exists."""
        return self._fd is not None

    ####################################################################
    # WireEndpoint
    ####################################################################

    def send(self, frame: bytes) -> bool:
        """Give ``frame`` to the kernel, as if the device had received it.

        A plain function: one non-blocking ``os.write``. Never blocks and
        never raises for a frame. Called from the driver's ``start``; needs
        no serializer (the wire keeps no state shared with the driver).

        Returns:
            True if the kernel took the frame; False if it was refused
            (counted in ``tx_drops``): the wire is not open or the device
            is gone, the frame is shorter than 14 or longer than ``mtu`` + 14
            bytes, or the write failed (also counted in ``tx_errors``).
        """
        if getattr(frame, "tso_mss", 0):  # a super-segment: one write per segment
            return all([self.send(piece) for piece in wire_frames(frame)])
        fd = self._fd
        n = len(frame)
        if fd is None:
            self.count_refused()
            self._log.debug("frame_dropped", reason="closed", length=n)
            return False
        if n < ETHER_HDR_LEN or n > self.mtu + ETHER_HDR_LEN:
            self.count_refused()
            reason = "runt" if n < ETHER_HDR_LEN else "oversize"
            self._log.debug("frame_dropped", reason=reason, length=n)
            return False
        try:
            os.write(fd, complete(frame))  # the kernel sees real bytes
        except OSError as exc:
            self.count_refused()
            self._tx_errors += 1
            self._log.debug("frame_dropped", reason="write_failed", errno=exc.errno, length=n)
            if exc.errno == errno.EBADFD:
                self._device_gone()
            return False
        self._tx_frames += 1  # (count_sent, inline: per frame)
        self._tx_bytes += n
        return True

    # set_receiver is CountingEndpoint's: ``receiver(frame)`` is called from
    # the receive task, once per frame, with ``bytes`` it may keep; it must
    # not block.

    def statistics(self) -> TapWireStatistics:
        """The wire's counters (see :class:`TapWireStatistics`)."""
        return TapWireStatistics(
            **self._counts(),
            rx_oversize=self._rx_oversize,
            rx_runts=self._rx_runts,
            tx_errors=self._tx_errors,
        )

    ####################################################################
    # lifecycle
    ####################################################################

    async def _lifecycle(self) -> AsyncIterator[None]:
        # Checkpoint before any system call, so a cancel that is already
        # pending leaves no device behind.
        await trio.lowlevel.checkpoint()
        fd, ifname = self._open_device()
        self._ifname = self.name = ifname
        self._log = log.bind(ifname=ifname)
        self._log.info("tap_opened", mtu=self.mtu)
        try:
            async with service_nursery() as nursery:
                self._fd = fd
                nursery.start_soon(self._receive_loop, fd, name=f"tap {ifname} rx")
                try:
                    yield
                finally:
                    self._fd = None
        finally:
            self._fd = None
            # The receive task has ended (the nursery waited for it), so no
            # task waits on fd; notify_closing is a harmless safety net.
            trio.lowlevel.notify_closing(fd)
            os.close(fd)
            self._log.info("tap_closed", **attrs.asdict(self.statistics()))

    def _open_device(self) -> tuple[int, str]:
        # Open the clone device and create (or attach to) the TAP device.
        # Returns the descriptor and the kernel's name for the device.
        if sys.platform != "linux" or fcntl is None:
            raise NetError(
                errno.EOPNOTSUPP,
                f"TapWire works only on Linux (TUN/TAP through {TUN_PATH}), not on {sys.platform}",
            )
        path = self._tun_path
        try:
            fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise _open_error(exc, f"cannot open {path}") from exc
        try:
            want = os.fsencode(self._requested) if self._requested is not None else b""
            try:
                ifr = fcntl.ioctl(fd, TUNSETIFF, _IFREQ_FLAGS.pack(want, IFF_TAP | IFF_NO_PI))
            except OSError as exc:
                what = f"TUNSETIFF for {self._requested or 'a new tap'} failed"
                raise _open_error(exc, what) from exc
            ifname = os.fsdecode(ifr[:IFNAMSIZ].split(b"\0", 1)[0])
            self._set_device_mtu(ifname)
        except BaseException:
            os.close(fd)
            raise
        return fd, ifname

    def _set_device_mtu(self, ifname: str) -> None:
        # Make the kernel side's MTU the wire's, so neither end sends what
        # the other drops. Skipped when it already matches, so attaching to a
        # persistent device one owns needs no CAP_NET_ADMIN for this.
        name = os.fsencode(ifname)
        assert fcntl is not None
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            try:
                ifr = fcntl.ioctl(sock, SIOCGIFMTU, _IFREQ_INT.pack(name, 0))
                current = _IFREQ_INT.unpack(ifr)[1]
                if current != self.mtu:
                    fcntl.ioctl(sock, SIOCSIFMTU, _IFREQ_INT.pack(name, self.mtu))
            except OSError as exc:
                raise _open_error(exc, f"cannot set the MTU of {ifname} to {self.mtu}") from exc

    ####################################################################
    # receive
    ####################################################################

    async def _receive_loop(self, fd: int) -> None:
        # See rule 2 of the module docstring. Reads that would block end a
        # pass; EBADFD means the device was deleted (rule 5).
        read = os.read
        deliver = self.deliver  # counts rx_frames/rx_bytes, or rx_drops
        batch = self.batch
        max_frame = self.mtu + ETHER_HDR_LEN
        while True:
            n = 0
            while n < batch:
                try:
                    frame = read(fd, _READ_SIZE)
                except BlockingIOError:
                    break
                except OSError as exc:
                    if exc.errno == errno.EBADFD:
                        self._device_gone()
                        return
                    raise
                n += 1
                # One frame from the kernel: check its length, count it,
                # deliver it (inline: one call per frame, the receiver's).
                size = len(frame)
                if not ETHER_HDR_LEN <= size <= max_frame:
                    self._bad_length(size)
                elif not deliver(frame):
                    self._log.debug("frame_dropped", reason="no_receiver", length=size)
            if n == batch:
                # More may be waiting: let others run, then read on.
                await trio.lowlevel.checkpoint()
            else:
                await trio.lowlevel.wait_readable(fd)

    def _bad_length(self, n: int) -> None:
        # A received frame too short or too long: counted and dropped.
        if n < ETHER_HDR_LEN:
            self._rx_runts += 1
            self._log.debug("frame_dropped", reason="runt", length=n)
        else:
            self._rx_oversize += 1
            self._log.debug("frame_dropped", reason="oversize", length=n)

    def _device_gone(self) -> None:
        # The kernel deleted the device under us: drop the carrier. The
        # descriptor stays open (and is closed by the block), so a sender
        # sees a refused frame, not a reused descriptor number.
        if self._fd is None:
            return
        self._fd = None
        self._log.warning("tap_device_gone", errno=errno.EBADFD)


####################################################################
# helpers
####################################################################


def _check_ifname(name: str) -> None:
    # Linux's dev_valid_name(), as a ValueError before any system call.
    if not isinstance(name, str):
        raise TypeError(f"name must be a str or None, not {name!r}")
    raw = os.fsencode(name)
    if len(raw) >= IFNAMSIZ:
        raise ValueError(
            f"interface name {name!r} is {len(raw)} bytes; Linux allows at most {IFNAMSIZ - 1}"
        )
    if not raw or name in (".", "..") or any(c in "/:" or c.isspace() for c in name):
        raise ValueError(
            f"{name!r} is not a valid Linux interface name "
            "(it must be non-empty, not '.' or '..', without '/', ':' or whitespace)"
        )


def _open_error(exc: OSError, what: str) -> NetError:
    # A NetError with the system's errno and a message that teaches the fix.
    code = exc.errno if exc.errno is not None else errno.EIO
    reason = os.strerror(code)
    if code in _SETUP_ERRNOS:
        return NetError(code, f"{what}: {reason}. {_SETUP_HINT}")
    if code == errno.EBUSY:
        return NetError(code, f"{what}: {reason} (another process has the device open)")
    if code == errno.EINVAL:
        return NetError(
            code, f"{what}: {reason} (the name may belong to a device that is not a TAP)"
        )
    return NetError(code, f"{what}: {reason}")
