"""``PcapTap``: record every frame crossing an endpoint into a libpcap file.

``PcapTap(endpoint, "capture.pcap")`` wraps an endpoint and is one; every
frame that crosses it, in either direction, is appended to a classic libpcap
file that tshark, tcpdump and Wireshark read.

Rules:

1. File format (the classic format, not pcapng), little-endian:

   - Global header, 24 bytes: magic ``0xa1b2c3d4`` (microsecond
     timestamps), version 2.4, thiszone 0, sigfigs 0, ``snaplen``, link type
     ``LINKTYPE_ETHERNET`` (1). Written when the tap is made.
   - Per frame, a 16-byte record header: ``ts_sec``, ``ts_usec``,
     ``incl_len`` (bytes stored: at most ``snaplen``), ``orig_len`` (the
     frame's real length), followed by the first ``incl_len`` bytes.

2. Timestamps come from :func:`trio.current_time` (rounded to the
   microsecond; clamped at 0), not from the wall clock: under
   ``trio.testing.MockClock`` a run writes a byte-identical file, and under
   the real clock the times are Trio's (an arbitrary origin, so only
   differences between records mean anything).
3. A frame is recorded when it crosses the tap: an outbound frame before it
   is handed to the inner endpoint (so it is recorded even if the inner
   endpoint then refuses it), an inbound frame before it is delivered. A tap
   sees what crosses *its* layer: outside a ``FaultInjector`` it records
   frames the injector will drop; inside it, only what the injector let
   through.
4. Writing is buffered (:data:`BUFFER_SIZE` bytes for a file the tap opened);
   :meth:`PcapTap.flush` writes the buffer out and :meth:`PcapTap.close`
   flushes and closes a file the tap opened itself (a file object the caller
   passed in is flushed, never closed). The tap is also a (sync) context
   manager that closes on exit. Frames crossing a closed tap still pass; they
   are counted in ``frames_missed``.
5. The per-frame path never awaits and never raises: a failed write (disk
   full, a closed file object) is counted in ``write_errors``, logged once
   as ``pcap_write_failed``, and stops recording (a partly written record
   would make the rest of the file unreadable); later frames count in
   ``frames_missed``. The file is opened in ``__init__`` (# Divergence from
   the house rule that constructors do no I/O: a bad path must fail where the
   tap is made, not on the first frame); it is a plain blocking open, no task.

Bounds: no queue; at most one frame is buffered beyond :data:`BUFFER_SIZE`.
Cancellation: nothing awaits, so nothing can be interrupted half-way.
Determinism: the file depends only on the frames and ``trio.current_time``.
"""

from __future__ import annotations

import os
import struct
from types import TracebackType
from typing import BinaryIO

import attrs
import structlog
import trio

from ..protocols.offload import complete, wire_frames
from ._endpoint import EndpointStatistics, EndpointWrapper, WireEndpoint

__all__ = ["PcapStatistics", "PcapTap"]

log = structlog.get_logger(__name__)

PCAP_MAGIC = 0xA1B2C3D4
PCAP_VERSION = (2, 4)
LINKTYPE_ETHERNET = 1
#: The largest snaplen tcpdump and Wireshark accept for Ethernet.
MAX_SNAPLEN = 262144
#: Write buffer of a file the tap opens itself.
BUFFER_SIZE = 1 << 16

_GLOBAL_HEADER = struct.Struct("<IHHiIII")
_RECORD_HEADER = struct.Struct("<IIII")


@attrs.frozen
class PcapStatistics(EndpointStatistics):
    """Counters of a :class:`PcapTap` (an
    :class:`~trionet.lowlevel.EndpointStatistics` with more fields).

    Attributes:
        frames_written: frames recorded.
        bytes_written: bytes written to the file, global and record headers
            included (the file's size once flushed, for a file the tap made).
        frames_truncated: recorded frames cut to ``snaplen``.
        frames_missed: frames that crossed the tap but were not recorded
            (after :meth:`PcapTap.close` or a failed write).
        write_errors: writes that failed.
    """

    frames_written: int
    bytes_written: int
    frames_truncated: int
    frames_missed: int
    write_errors: int


class PcapTap(EndpointWrapper):
    """Record every frame crossing ``inner``, both directions, into a pcap file.

    See the module docstring for the format and the rules.

    Args:
        inner: the endpoint to tap.
        path_or_file: a path (the file is created or truncated) or a binary
            file object open for writing (written at its current position).
        snaplen: bytes of each frame to keep (``orig_len`` keeps the length).
        name: defaults to the inner endpoint's name.

    Raises:
        ValueError: for a snaplen outside 1..262144.
        TypeError: for something that is neither a path nor writable.
        OSError: if the file cannot be created.
    """

    def __init__(
        self,
        inner: WireEndpoint,
        path_or_file: str | os.PathLike[str] | BinaryIO,
        *,
        snaplen: int = 65535,
        name: str | None = None,
    ) -> None:
        if isinstance(snaplen, bool) or not isinstance(snaplen, int) or not 1 <= snaplen <= MAX_SNAPLEN:
            raise ValueError(f"snaplen must be an int in 1..{MAX_SNAPLEN}, not {snaplen!r}")
        file: BinaryIO
        if isinstance(path_or_file, (str, os.PathLike)):
            file = open(path_or_file, "wb", buffering=BUFFER_SIZE)  # noqa: SIM115 (closed by close())
            owns = True
        elif callable(getattr(path_or_file, "write", None)):
            file = path_or_file
            owns = False
        else:
            raise TypeError(f"path_or_file must be a path or a binary file, not {path_or_file!r}")
        super().__init__(inner, name)
        self.snaplen = snaplen
        self._file: BinaryIO | None = file
        self._owns = owns
        self._frames_written = self._bytes_written = self._frames_truncated = 0
        self._frames_missed = self._write_errors = 0
        self._write(
            _GLOBAL_HEADER.pack(PCAP_MAGIC, *PCAP_VERSION, 0, 0, snaplen, LINKTYPE_ETHERNET)
        )

    def send(self, frame: bytes) -> bool:
        """Record ``frame`` (outbound), then pass it to the inner endpoint."""
        self._record(frame)
        return self.pass_down(frame)

    def inbound(self, frame: bytes) -> None:
        """Record ``frame`` (inbound), then deliver it."""
        self._record(frame)
        self.deliver(frame)

    def _record(self, frame: bytes) -> None:
        if getattr(frame, "tso_mss", 0):
            # The frames a card would put on the wire for a super-segment.
            for piece in wire_frames(frame):
                self._record(piece)
            return
        if self._file is None:
            self._frames_missed += 1
            return
        frame = complete(frame)  # a capture shows the bytes a card would send
        usec = round(trio.current_time() * 1_000_000)
        if usec < 0:
            usec = 0
        sec, usec = divmod(usec, 1_000_000)
        n = len(frame)
        incl = n
        if n > self.snaplen:
            incl = self.snaplen
            frame = frame[:incl]
            self._frames_truncated += 1
        if self._write(_RECORD_HEADER.pack(sec & 0xFFFFFFFF, usec, incl, n) + frame):
            self._frames_written += 1
        else:
            self._frames_missed += 1

    def _write(self, data: bytes) -> bool:
        file = self._file
        assert file is not None
        try:
            file.write(data)
        except (OSError, ValueError) as exc:
            # Stop recording: a partial record would corrupt the rest.
            self._write_errors += 1
            self._file = None
            log.warning(
                "pcap_write_failed", wire=self.name, errno=getattr(exc, "errno", None), error=str(exc)
            )
            if self._owns:
                try:
                    file.close()
                except (OSError, ValueError):
                    pass
            return False
        self._bytes_written += len(data)
        return True

    def flush(self) -> None:
        """Write the buffered records out (no-op once closed).

        Raises:
            OSError: if the write fails.
        """
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        """Flush, and close the file if the tap opened it. Idempotent.

        Frames still pass through a closed tap, unrecorded (``frames_missed``).

        Raises:
            OSError: if the final flush fails (the file is closed anyway).
        """
        file, self._file = self._file, None
        if file is None:
            return
        try:
            file.flush()
        finally:
            if self._owns:
                file.close()

    @property
    def closed(self) -> bool:
        """Whether the tap stopped recording (closed, or a write failed)."""
        return self._file is None

    def __enter__(self) -> PcapTap:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def statistics(self) -> PcapStatistics:
        """The tap's counters (see :class:`PcapStatistics`)."""
        return PcapStatistics(
            **self._counts(),
            frames_written=self._frames_written,
            bytes_written=self._bytes_written,
            frames_truncated=self._frames_truncated,
            frames_missed=self._frames_missed,
            write_errors=self._write_errors,
        )
