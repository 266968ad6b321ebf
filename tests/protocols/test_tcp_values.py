"""The TCP machine's values (protocols/tcp_values.py): the state tables match
RFC 9293's state diagram, TcpConfig refuses values outside its ranges, and the
values the machine hands out are frozen."""

from __future__ import annotations

import attrs
import pytest

from trionet.protocols.tcp_cc import NewReno
from trionet.protocols.tcp_values import (
    CLOSE_NEXT,
    FIN_ACKED_NEXT,
    FIN_NEXT,
    KEEPALIVE_STATES,
    RECEIVING,
    SENDING,
    SYNCHRONIZED,
    TcpConfig,
    TcpOutput,
    TcpState,
    TcpStatistics,
)

S = TcpState


def test_the_close_and_fin_tables_follow_the_state_diagram() -> None:
    # RFC 9293 figure 5: CLOSE from ESTABLISHED and CLOSE-WAIT; a FIN received
    # in ESTABLISHED, FIN-WAIT-1 and FIN-WAIT-2; the ACK of our FIN.
    assert CLOSE_NEXT == {S.ESTABLISHED: S.FIN_WAIT_1, S.CLOSE_WAIT: S.LAST_ACK}
    assert FIN_NEXT == {S.ESTABLISHED: S.CLOSE_WAIT, S.FIN_WAIT_1: S.CLOSING, S.FIN_WAIT_2: S.TIME_WAIT}
    assert FIN_ACKED_NEXT == {S.FIN_WAIT_1: S.FIN_WAIT_2, S.CLOSING: S.TIME_WAIT, S.LAST_ACK: S.CLOSED}


def test_the_state_sets_are_consistent() -> None:
    # Data is received only while the peer may still send (no FIN from it yet);
    # the application may send before the handshake completes (queued) and
    # until its FIN; keepalive only where no FIN of ours waits.
    assert RECEIVING <= SYNCHRONIZED
    assert SENDING - SYNCHRONIZED == {S.SYN_SENT, S.SYN_RECEIVED}
    assert KEEPALIVE_STATES <= SYNCHRONIZED
    assert not (KEEPALIVE_STATES & set(FIN_ACKED_NEXT))  # our FIN outstanding: the RTO watches
    assert S.CLOSED not in SYNCHRONIZED and S.TIME_WAIT not in SENDING
    for table in (CLOSE_NEXT, FIN_NEXT, FIN_ACKED_NEXT):
        assert set(table) <= SYNCHRONIZED


@pytest.mark.parametrize(
    "field, value",
    [
        ("mss", 63),
        ("mss", 65496),
        ("send_buffer", 0),
        ("recv_buffer", (1 << 30) + 1),
        ("delayed_ack", 0.6),
        ("delayed_ack", -0.1),
        ("min_rto", 0),
        ("max_retries", 0),
        ("challenge_ack_limit", 0),
        ("max_ooo_blocks", 0),
        ("keepidle", 0),
        ("keepcnt", 0),
    ],
)
def test_tcp_config_refuses_values_outside_their_ranges(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        TcpConfig(**{field: value})


def test_tcp_config_defaults_are_bsds() -> None:
    c = TcpConfig()
    assert (c.mss, c.delayed_ack, c.min_rto, c.max_retries, c.msl) == (1460, 0.2, 1.0, 12, 30.0)
    assert (c.keepalive, c.keepidle, c.keepintvl, c.keepcnt) == (False, 7200.0, 75.0, 8)
    assert c.congestion_control is NewReno


def test_the_values_handed_out_are_frozen() -> None:
    for value in (TcpConfig(), TcpOutput(), TcpStatistics(**{f.name: 0 for f in attrs.fields(TcpStatistics)})):
        field = attrs.fields(type(value))[0].name
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            setattr(value, field, getattr(value, field))
