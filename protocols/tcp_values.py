"""The values a :class:`.tcp_connection.TcpConnection` takes and returns.

In: :class:`TcpConfig` (the options). Out: :class:`TcpOutput` (segments,
:class:`TcpEvent` values, data, the next deadline) and
:class:`TcpStatistics` (counters). And :class:`TcpState` with the state
machine's tables: which states receive, send, are synchronized, and where
``close()``, an in-order FIN and the ACK of our FIN lead (RFC 9293 3.3.2,
3.10.4, 3.10.7.4), as data rather than nested ifs (h11 ``_state.py``).

Every class here is frozen (or an enum): they cross from the sans-IO machine
to the glue and may be kept.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

import attrs

from .tcp import TcpHeader
from .tcp_cc import CongestionControl, NewReno

__all__ = [
    "CLOSE_NEXT",
    "DEFAULT_MSS",
    "FIN_ACKED_NEXT",
    "FIN_NEXT",
    "KEEPALIVE_STATES",
    "MIN_MSS",
    "RECEIVING",
    "SENDING",
    "SYNCHRONIZED",
    "TcpConfig",
    "TcpEvent",
    "TcpOutput",
    "TcpState",
    "TcpStatistics",
]


#: The smallest peer MSS we accept; smaller ones are raised to it, so every
#: data segment carries at least 24 bytes even with 40 bytes of options.
#: (Linux clamps at 48 since CVE-2019-11477 for the same reason.)
MIN_MSS = 64
#: RFC 9293 3.7.1: the MSS to assume when the peer's SYN has none (IPv4).
DEFAULT_MSS = 536


class TcpState(enum.Enum):
    """RFC 9293 3.3.2's states (LISTEN lives in the listener, not here)."""

    CLOSED = "CLOSED"
    SYN_SENT = "SYN_SENT"
    SYN_RECEIVED = "SYN_RECEIVED"
    ESTABLISHED = "ESTABLISHED"
    FIN_WAIT_1 = "FIN_WAIT_1"
    FIN_WAIT_2 = "FIN_WAIT_2"
    CLOSE_WAIT = "CLOSE_WAIT"
    CLOSING = "CLOSING"
    LAST_ACK = "LAST_ACK"
    TIME_WAIT = "TIME_WAIT"


_S = TcpState
#: States in which the peer may still send us data.
RECEIVING = frozenset({_S.ESTABLISHED, _S.FIN_WAIT_1, _S.FIN_WAIT_2})
#: States in which the application may still send.
SENDING = frozenset({_S.SYN_SENT, _S.SYN_RECEIVED, _S.ESTABLISHED, _S.CLOSE_WAIT})
#: States with both sequence spaces known.
SYNCHRONIZED = frozenset(
    {_S.ESTABLISHED, _S.FIN_WAIT_1, _S.FIN_WAIT_2, _S.CLOSE_WAIT, _S.CLOSING, _S.LAST_ACK}
)
#: Where close() leads (RFC 9293 3.10.4); SYN_RECEIVED queues the FIN.
CLOSE_NEXT = {_S.ESTABLISHED: _S.FIN_WAIT_1, _S.CLOSE_WAIT: _S.LAST_ACK}
#: Where an in-order FIN leads (RFC 9293 3.10.7.4, eighth step).
FIN_NEXT = {
    _S.ESTABLISHED: _S.CLOSE_WAIT,
    _S.FIN_WAIT_1: _S.CLOSING,
    _S.FIN_WAIT_2: _S.TIME_WAIT,
}
#: States in which keepalive probes are sent (the others have a FIN
#: outstanding, so the retransmission timer watches the peer, or are ending).
KEEPALIVE_STATES = frozenset({_S.ESTABLISHED, _S.CLOSE_WAIT, _S.FIN_WAIT_2})
#: Where the ACK of our FIN leads (fifth step).
FIN_ACKED_NEXT = {
    _S.FIN_WAIT_1: _S.FIN_WAIT_2,
    _S.CLOSING: _S.TIME_WAIT,
    _S.LAST_ACK: _S.CLOSED,
}


class TcpEvent(enum.Enum):
    """What happened, for the glue (in :attr:`TcpOutput.events`).

    - ``CONNECTED``: the handshake completed (ESTABLISHED reached).
    - ``DATA``: new in-order data can be :meth:`~TcpConnection.read`.
    - ``EOF``: the peer's FIN arrived in order: after the buffered data,
      reads return ``b""``.
    - ``WRITABLE``: an ACK freed send-buffer space.
    - ``RESET``: the peer reset the connection (``error`` is
      ``ECONNREFUSED`` before it was established, ``ECONNRESET`` after).
    - ``TIMEOUT``: retransmissions, the user timeout or keepalive probes
      ran out (``error`` is ``ETIMEDOUT``).
    - ``CLOSED``: the machine reached CLOSED, for whatever reason (always
      the last event; the glue frees the connection).
    """

    CONNECTED = "connected"
    DATA = "data"
    EOF = "eof"
    WRITABLE = "writable"
    RESET = "reset"
    TIMEOUT = "timeout"
    CLOSED = "closed"


def _check_cc(instance: object, attribute: object, value: object) -> None:
    if not callable(value):
        raise TypeError("congestion_control must be a callable taking smss (a CongestionControl class)")


@attrs.frozen(kw_only=True)
class TcpConfig:
    """A connection's options (the sysctls and socket options of a BSD TCP).

    Attributes:
        mss: the MSS we advertise and the largest payload we send.
        send_buffer, recv_buffer: buffer sizes in bytes (the receive buffer
            bounds the window; at most 2**30, window scaling's limit).
        window_scaling, timestamps, sack: offer RFC 7323 window scaling and
            timestamps and RFC 2018 SACK (each used only if the peer agrees).
        nodelay: disable Nagle's algorithm (``TCP_NODELAY``).
        delayed_ack: the delayed-ACK timeout in seconds (0: ACK every
            segment at once); RFC 9293 allows at most 0.5, 0.2 is usual.
        min_rto, max_rto, initial_rto: RFC 6298 bounds and initial value.
        clock_granularity: G in RFC 6298's RTO formula.
        max_retries: retransmission timeouts of one segment before giving
            up (BSD ``TCP_MAXRXTSHIFT`` 12).
        max_syn_retries: the same for SYN and SYN-ACK.
        msl: the maximum segment lifetime; TIME_WAIT lasts ``2 * msl``.
        user_timeout: seconds data may stay unacknowledged before the
            connection is dropped (RFC 5482), or ``None``.
        challenge_ack_limit: challenge ACKs sent per second at most (RFC
            5961 10).
        oow_ack_interval: at most one ACK per this many seconds answers a
            segment that fails the sequence or PAWS check, or acknowledges
            data not yet sent (Linux ``tcp_invalid_ratelimit``): without the
            limit, two ends that disagree on the sequence space, after a
            blind data injection say, trade such ACKs forever (an ACK storm).
        max_ooo_blocks: out-of-order blocks held (beyond, new out-of-order
            segments are dropped and counted).
        congestion_control: a :class:`.tcp_cc.CongestionControl` subclass
            (or a callable taking ``smss``).
        keepalive: send keepalive probes on an idle connection
            (``SO_KEEPALIVE``; off by default, as in BSD). Change it on a live
            connection with :meth:`TcpConnection.set_keepalive`.
        keepidle: seconds without receiving anything before the first probe
            (``TCP_KEEPIDLE``; BSD's 2 hours).
        keepintvl: seconds between unanswered probes (``TCP_KEEPINTVL``).
        keepcnt: unanswered probes before the connection is dropped with
            ``ETIMEDOUT`` (``TCP_KEEPCNT``); the drop comes
            ``keepidle + keepcnt * keepintvl`` after the last segment received.
    """

    mss: int = attrs.field(default=1460, validator=[attrs.validators.ge(MIN_MSS), attrs.validators.le(65495)])
    send_buffer: int = attrs.field(default=256 * 1024, validator=attrs.validators.ge(1))
    recv_buffer: int = attrs.field(
        default=256 * 1024, validator=[attrs.validators.ge(1), attrs.validators.le(1 << 30)]
    )
    window_scaling: bool = True
    timestamps: bool = True
    sack: bool = True
    nodelay: bool = False
    delayed_ack: float = attrs.field(default=0.2, validator=[attrs.validators.ge(0), attrs.validators.le(0.5)])
    min_rto: float = attrs.field(default=1.0, validator=attrs.validators.gt(0))
    max_rto: float = attrs.field(default=60.0, validator=attrs.validators.gt(0))
    initial_rto: float = attrs.field(default=1.0, validator=attrs.validators.gt(0))
    clock_granularity: float = attrs.field(default=0.001, validator=attrs.validators.ge(0))
    max_retries: int = attrs.field(default=12, validator=attrs.validators.ge(1))
    max_syn_retries: int = attrs.field(default=6, validator=attrs.validators.ge(1))
    msl: float = attrs.field(default=30.0, validator=attrs.validators.ge(0))
    user_timeout: float | None = None
    challenge_ack_limit: int = attrs.field(default=10, validator=attrs.validators.ge(1))
    oow_ack_interval: float = attrs.field(default=0.5, validator=attrs.validators.ge(0))
    max_ooo_blocks: int = attrs.field(default=32, validator=attrs.validators.ge(1))
    congestion_control: Callable[[int], CongestionControl] = attrs.field(default=NewReno, validator=_check_cc)
    keepalive: bool = False
    keepidle: float = attrs.field(default=7200.0, validator=attrs.validators.gt(0))
    keepintvl: float = attrs.field(default=75.0, validator=attrs.validators.gt(0))
    keepcnt: int = attrs.field(default=8, validator=attrs.validators.ge(1))


@attrs.frozen
class TcpOutput:
    """What one call asks of the glue.

    Attributes:
        segments: ``(header, payload)`` pairs to send, in order.
        events: what happened, in order.
        deadline: when to call :meth:`TcpConnection.on_timer` next, or
            ``None`` with no timer running.
        data: the bytes :meth:`TcpConnection.read` returned.
        accepted: the bytes :meth:`TcpConnection.send` took.
    """

    segments: tuple[tuple[TcpHeader, bytes], ...] = ()
    events: tuple[TcpEvent, ...] = ()
    deadline: float | None = None
    data: bytes = b""
    accepted: int = 0


@attrs.frozen
class TcpProbe:
    """What a connection's sender knows now (:meth:`TcpConnection.probe`),
    for tracing: BSD's ``TCPDEBUG`` record, Linux's ``tcp_probe``.

    Attributes:
        iss, irs: the initial send and receive sequence numbers (``irs`` 0
            before the peer's SYN).
        snd_una, snd_max: oldest unacknowledged and highest sent (absolute).
        cwnd, ssthresh: bytes (``None`` before the connection is
            established).
        srtt: the smoothed RTT in seconds (``None`` before a sample).
        rto: the retransmission timeout in seconds.
        retransmits: the connection's retransmission counter.
    """

    iss: int
    irs: int
    snd_una: int
    snd_max: int
    cwnd: int | None
    ssthresh: int | None
    srtt: float | None
    rto: float
    retransmits: int


@attrs.frozen
class TcpStatistics:
    """Counters of one connection.

    Attributes:
        segments_sent, segments_received: all segments.
        bytes_sent: new payload bytes sent (not retransmissions).
        bytes_retransmitted: payload bytes sent again.
        bytes_received: payload bytes delivered in order.
        retransmits: segments sent again (timeouts, fast and partial-ACK
            retransmits, go-back-N, holes chosen from the SACK scoreboard).
        fast_retransmits: fast retransmits (entries into loss recovery, NewReno
            or SACK-based).
        sack_recoveries: of those, entries into SACK-based recovery (RFC 6675).
        sack_blocks_ignored: received SACK blocks not used: empty, beyond
            ``snd_max``, or wholly below the cumulative ACK (D-SACK included).
        sack_ranges_dropped: SACKed ranges forgotten because the scoreboard
            was full (the highest range goes).
        timeouts: retransmission-timer expirations.
        dup_acks: duplicate ACKs received (RFC 5681 definition).
        rtt_samples: RTT measurements taken.
        unacceptable: segments failing the sequence check (answered with an ACK).
        paws_dropped: segments dropped by PAWS.
        challenge_acks: challenge ACKs sent (RFC 5961).
        challenge_acks_suppressed: challenge ACKs not sent, over the limit.
        oow_acks_suppressed: ACKs for unacceptable segments not sent, within
            ``oow_ack_interval`` of the last one.
        ooo_segments: out-of-order segments queued.
        ooo_dropped: out-of-order segments dropped (block limit).
        window_probes: zero-window probes sent.
        keepalive_probes: keepalive probes sent.
        keepalive_drops: connections dropped because keepalive probes went
            unanswered (0 or 1).
    """

    segments_sent: int = 0
    segments_received: int = 0
    bytes_sent: int = 0
    bytes_retransmitted: int = 0
    bytes_received: int = 0
    retransmits: int = 0
    fast_retransmits: int = 0
    timeouts: int = 0
    dup_acks: int = 0
    rtt_samples: int = 0
    unacceptable: int = 0
    paws_dropped: int = 0
    challenge_acks: int = 0
    challenge_acks_suppressed: int = 0
    oow_acks_suppressed: int = 0
    ooo_segments: int = 0
    ooo_dropped: int = 0
    window_probes: int = 0
    sack_recoveries: int = 0
    sack_blocks_ignored: int = 0
    sack_ranges_dropped: int = 0
    keepalive_probes: int = 0
    keepalive_drops: int = 0

