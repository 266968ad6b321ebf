"""Congestion control: NewReno (RFC 5681) and CUBIC (RFC 9438), alone and plugged into a connection."""

from __future__ import annotations

import pytest

from trionet.protocols.tcp_cc import INFINITE_SSTHRESH, CongestionControl, Cubic, NewReno, initial_window
from trionet.protocols.tcp_connection import TcpConfig

from tcp_pair import Pair

SMSS = 1000


def test_initial_window_follows_rfc5681() -> None:
    assert initial_window(1460) == 4380
    assert initial_window(536) == 2144
    assert initial_window(9000) == 18000


def test_newreno_slow_start_grows_by_at_most_one_smss_per_ack() -> None:
    cc = NewReno(SMSS)
    assert (cc.cwnd, cc.ssthresh) == (4 * SMSS, INFINITE_SSTHRESH)
    cc.on_ack(2 * SMSS, 4 * SMSS, 0.0, None)  # a stretch ACK counts one SMSS
    assert cc.cwnd == 5 * SMSS
    cc.on_ack(300, 4 * SMSS, 0.0, None)
    assert cc.cwnd == 5 * SMSS + 300


def test_newreno_congestion_avoidance_adds_one_smss_per_window() -> None:
    cc = NewReno(SMSS)
    cc.cwnd = cc.ssthresh = 10 * SMSS
    for _ in range(9):
        cc.on_ack(SMSS, 10 * SMSS, 0.0, None)
    assert cc.cwnd == 10 * SMSS
    cc.on_ack(SMSS, 10 * SMSS, 0.0, None)
    assert cc.cwnd == 11 * SMSS


def test_newreno_halves_on_loss_and_falls_to_one_segment_on_timeout() -> None:
    cc = NewReno(SMSS)
    cc.on_congestion(20 * SMSS, 0.0)
    assert cc.ssthresh == 10 * SMSS
    cc.on_congestion(3 * SMSS, 0.0)
    assert cc.ssthresh == 2 * SMSS  # the floor
    cc.on_timeout(16 * SMSS, 0.0)
    assert (cc.cwnd, cc.ssthresh) == (SMSS, 8 * SMSS)


def test_cubic_reduces_by_beta_and_follows_the_cubic_curve() -> None:
    cc = Cubic(SMSS)
    cc.cwnd = cc.ssthresh = 100 * SMSS
    cc._cwnd_seg = 100.0
    cc.on_congestion(100 * SMSS, 0.0)
    assert cc.w_max == 100 and cc.ssthresh == 70 * SMSS
    cc.cwnd = cc.ssthresh  # what the machine does when recovery ends
    cc.on_recovery_exit(0.0)
    cc.on_ack(SMSS, 70 * SMSS, 10.0, 0.1)  # the epoch starts here
    assert cc.k == pytest.approx((30 / 0.4) ** (1 / 3))  # RFC 9438 eq. 2
    assert cc.w_cubic(cc.k) == pytest.approx(100)
    # Concave up to W_max, then convex beyond: growth slows near W_max.
    t, cwnds = 10.0, []
    while t < 10.0 + 2 * cc.k + 1:
        for _ in range(cc.cwnd // SMSS):
            cc.on_ack(SMSS, cc.cwnd, t, 0.1)
        cwnds.append(cc.cwnd / SMSS)
        t += 0.1
    near = [w for w in cwnds if 95 <= w <= 105]
    assert len(near) > 10  # a plateau around W_max
    assert cwnds[-1] > 110
    assert all(b >= a for a, b in zip(cwnds, cwnds[1:]))


def test_cubic_fast_convergence_releases_bandwidth() -> None:
    cc = Cubic(SMSS)
    cc.cwnd = 100 * SMSS
    cc._cwnd_seg = 100.0
    cc.on_congestion(100 * SMSS, 0.0)
    cc.cwnd = 80 * SMSS
    cc._cwnd_seg = 80.0
    cc.on_congestion(80 * SMSS, 1.0)  # below the last W_max
    assert cc.w_max == pytest.approx(80 * 1.7 / 2)
    cc.on_timeout(50 * SMSS, 2.0)
    assert cc.cwnd == SMSS and cc.ssthresh == 35 * SMSS


def test_cubic_reno_friendly_region_at_small_windows() -> None:
    # Just after a loss with a short RTT the Reno estimate is at least as
    # large as the cubic window, and cwnd follows it.
    cc = Cubic(SMSS)
    cc.cwnd = cc.ssthresh = 10 * SMSS
    cc._cwnd_seg = 10.0
    cc.w_max = 10.0
    for i in range(100):
        cc.on_ack(SMSS, cc.cwnd, 0.001 * i, 0.001)
    assert cc.cwnd > 10 * SMSS


class Fixed(CongestionControl):
    """A test algorithm: a constant window of four segments."""

    name = "fixed"
    acks = 0

    def on_ack(self, acked: int, flight: int, now: float, srtt: float | None) -> None:
        Fixed.acks += 1

    def on_congestion(self, flight: int, now: float) -> None:
        self.ssthresh = 4 * self.smss


def test_congestion_control_is_pluggable() -> None:
    pair = Pair(TcpConfig(congestion_control=Fixed), TcpConfig())
    pair.to_send["a"] += bytes(50000)
    pair.run(until=lambda: len(pair.received["b"]) == 50000)
    assert pair.a.congestion_control.name == "fixed"
    assert pair.a.cwnd == initial_window(pair.a.smss)
    assert Fixed.acks > 0


@pytest.mark.parametrize("cc", [NewReno, Cubic])
def test_each_algorithm_moves_a_megabyte_through_loss(cc: type[CongestionControl]) -> None:
    data = bytes(range(256)) * 4096
    pair = Pair(TcpConfig(congestion_control=cc), TcpConfig(), loss=0.03, seed=11)
    pair.to_send["a"] += data
    pair.run(until=lambda: len(pair.received["b"]) == len(data), max_time=2000)
    assert pair.received["b"] == data
    assert pair.a.congestion_control.name == cc.name
    assert pair.a.statistics().fast_retransmits > 0
