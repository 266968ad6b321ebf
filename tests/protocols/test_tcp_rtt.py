"""RttEstimator against RFC 6298 written out as plain float formulas.

Random sequences of samples and backoffs (with random configurations) go to
the estimator and to a model that is the RFC's text and nothing else; after
each step both agree exactly, and the invariants of the module docstring hold.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trionet.protocols.tcp_rtt import RttEstimator
from trionet.protocols.tcp_values import TcpConfig


class Model:
    """RFC 6298 2.1-2.4 and 5.5, literally."""

    def __init__(self, initial_rto: float) -> None:
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.rto = initial_rto
        self.backoffs = 0
        self.samples = 0

    def sample(self, r: float, config: TcpConfig) -> None:
        self.samples += 1
        if self.srtt is None:  # 2.2
            self.srtt, self.rttvar = r, r / 2
        else:  # 2.3: RTTVAR first, with the old SRTT
            self.rttvar = (1 - 1 / 4) * self.rttvar + 1 / 4 * abs(self.srtt - r)
            self.srtt = (1 - 1 / 8) * self.srtt + 1 / 8 * r
        rto = self.srtt + max(config.clock_granularity, 4 * self.rttvar)
        self.rto = min(max(rto, config.min_rto), config.max_rto)  # 2.4, and 2.5's maximum

    def backoff(self, config: TcpConfig) -> None:
        self.backoffs += 1
        self.rto = min(2 * self.rto, config.max_rto)  # 5.5


configs = st.builds(
    TcpConfig,
    min_rto=st.sampled_from([0.2, 1.0]),
    max_rto=st.sampled_from([3.0, 60.0]),
    clock_granularity=st.sampled_from([0.0, 0.001, 0.1]),
    initial_rto=st.sampled_from([1.0, 3.0]),
)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("sample"), st.floats(0.0, 30.0, allow_nan=False)),
        st.tuples(st.just("backoff"), st.just(0.0)),
        st.tuples(st.just("time"), st.integers(0, 1 << 40)),
    ),
    max_size=40,
)


@settings(max_examples=200)
@given(configs, operations)
def test_the_estimator_follows_rfc_6298(config: TcpConfig, ops: list[tuple[str, float]]) -> None:
    est = RttEstimator(config.initial_rto)
    model = Model(config.initial_rto)
    for op, arg in ops:
        if op == "sample":
            est.sample(arg, config)
            model.sample(arg, config)
        elif op == "backoff":
            est.backoff(config)
            model.backoff(config)
            assert est.timed_seq is None  # Karn: a retransmission is not timed
        else:
            est.timed_seq, est.timed_at = int(arg), 1.0
        assert (est.srtt, est.rttvar, est.rto, est.backoffs, est.samples) == (
            model.srtt, model.rttvar, model.rto, model.backoffs, model.samples
        )
        # The module's invariants.
        assert (est.srtt is None) == (est.samples == 0)
        if est.srtt is None:
            assert est.rttvar == 0
            assert est.rto == min(config.initial_rto * 2**est.backoffs, config.max_rto)
        else:
            assert config.min_rto <= est.rto <= config.max_rto
        assert est.rttvar >= 0


def test_a_first_sample_sets_srtt_and_half_of_it_as_rttvar() -> None:
    config = TcpConfig(min_rto=0.2)
    est = RttEstimator(1.0)
    est.sample(0.1, config)
    assert (est.srtt, est.rttvar) == (0.1, 0.05)
    assert est.rto == pytest.approx(0.3)  # 0.1 + 4 * 0.05


def test_a_sample_undoes_the_backoff_but_not_its_count() -> None:
    config = TcpConfig(min_rto=0.2, max_rto=10.0)
    est = RttEstimator(1.0)
    est.timed_seq = 5
    est.backoff(config)
    est.backoff(config)
    assert (est.rto, est.backoffs, est.timed_seq) == (4.0, 2, None)
    est.backoff(config)
    est.backoff(config)
    assert est.rto == 10.0  # max_rto
    est.sample(0.1, config)
    assert est.rto == pytest.approx(0.3)
    assert est.backoffs == 4
