"""SackScoreboard against a set of SACKed sequence numbers.

Random sequences of sends, ACKs with random SACK blocks (valid, empty,
beyond ``snd_max``, below the ACK, straddling it; the sequence space wraps),
timeouts and retransmissions go to the scoreboard and to a model that is a
set of octets with RFC 6675's definitions written per octet: IsLost(x),
SetPipe() as a sum over octets, NextSeg() rules 1 and 3 as "the lowest
octet such that". After each step both agree, and the invariants of the
module docstring hold.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from trionet.protocols.tcp import SEQ_MASK
from trionet.protocols.tcp_sack_scoreboard import DUPTHRESH, MAX_SACK_RANGES, SackScoreboard

ISS = SEQ_MASK - 150  # the sequence space wraps


def runs(octets: set[int]) -> list[list[int]]:
    out: list[list[int]] = []
    for p in sorted(octets):
        if out and out[-1][1] == p:
            out[-1][1] = p + 1
        else:
            out.append([p, p + 1])
    return out


class Model:
    def __init__(self) -> None:
        self.una = self.snd_max = self.high_rxt = ISS
        self.sacked: set[int] = set()
        self.ignored = self.dropped = 0

    def update(self, blocks: list[tuple[int, int]], ack: int) -> bool:
        new = False
        lo = max(ack, self.una)
        for start, end in blocks:  # unwrapped
            if not (start < end and lo < end <= self.snd_max):
                self.ignored += 1
                continue
            octets = set(range(max(start, lo), end))
            new = new or not octets <= self.sacked
            self.sacked |= octets
            r = runs(self.sacked)
            if len(r) > MAX_SACK_RANGES:  # forget the highest range
                self.sacked -= set(range(*r[-1]))
                self.dropped += 1
        return new

    def lost(self, smss: int) -> set[int]:
        """IsLost(x) for every un-SACKed x: DupThresh ranges, or more than
        (DupThresh - 1) * SMSS SACKed bytes, above it (a sweep from the top)."""
        out, count, nbytes = set(), 0, 0
        for x in range(self.snd_max - 1, self.una - 1, -1):
            if x in self.sacked:
                nbytes += 1
                count += x + 1 not in self.sacked
            elif count >= DUPTHRESH or nbytes > (DUPTHRESH - 1) * smss:
                out.add(x)
        return out

    def unsacked(self) -> list[int]:
        return [x for x in range(self.una, self.snd_max) if x not in self.sacked]

    def pipe(self, smss: int, in_recovery: bool) -> int:
        high_rxt = max(self.high_rxt, self.una) if in_recovery else self.una
        lost = self.lost(smss)
        return sum((x not in lost) + (x < high_rxt) for x in self.unsacked())

    def next_hole(self, lost: bool, smss: int) -> tuple[int, int] | None:
        high_rxt = max(self.high_rxt, self.una)
        top = max(self.sacked, default=None)
        for x in self.unsacked():
            if x < high_rxt:
                continue
            if top is None or x > top:
                return None  # no SACKed data above: rule 2's business
            if lost and x not in self.lost(smss):
                return None
            end = min(p for p in self.sacked if p > x)
            return x, end
        return None


blocks = st.lists(st.tuples(st.integers(-40, 300), st.integers(-40, 300)), max_size=4)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("send"), st.integers(1, 120), st.just([])),
        st.tuples(st.just("ack"), st.integers(0, 60), blocks),
        st.tuples(st.just("ack"), st.just(0), blocks),
        st.tuples(st.just("send"), st.just(300), st.just([])),
        # Many one-octet blocks, k apart (more than an ACK carries), to reach the bound.
        st.tuples(st.just("comb"), st.integers(2, 9), st.just([])),
        st.tuples(st.just("rxt"), st.integers(0, 200), st.just([])),
        st.tuples(st.just("timeout"), st.just(0), st.just([])),
    ),
    max_size=60,
)


@settings(max_examples=150)
@given(st.sampled_from([8, 20, 50]), operations)
def test_the_scoreboard_answers_as_a_set_of_sacked_octets_does(
    smss: int, ops: list[tuple[str, int, list[tuple[int, int]]]]
) -> None:
    sb = SackScoreboard(ISS)
    model = Model()
    for op, n, offsets in ops:
        una = model.una
        if op == "comb":
            op, n, offsets = "ack", 0, [(n * i + 1, n * i + 2) for i in range(60)]
        if op == "send":
            model.snd_max = min(model.snd_max + n, una + 500)  # a window
        elif op == "ack":
            ack = min(una + n, model.snd_max)
            wire = [((una + a) & SEQ_MASK, (una + b) & SEQ_MASK) for a, b in offsets]
            new = sb.update(tuple(wire), una, ack, model.snd_max)
            assert new == model.update([(una + a, una + b) for a, b in offsets], ack)
            if ack > una:  # what the connection does with an ACK of new data
                sb.prune(ack)
                model.una = ack
                model.sacked = {p for p in model.sacked if p >= ack}
        elif op == "rxt":
            sb.high_rxt = model.high_rxt = una + n
        else:
            sb.clear()
            model.sacked.clear()
            sb.high_rxt = model.high_rxt = una
        una, snd_max = model.una, model.snd_max
        assert sb.ranges == runs(model.sacked)
        assert (sb.blocks_ignored, sb.ranges_dropped) == (model.ignored, model.dropped)
        # Invariants: bounded, sorted, disjoint, not touching, within una..snd_max.
        assert len(sb.ranges) <= MAX_SACK_RANGES
        prev = una - 1
        for start, end in sb.ranges:
            assert prev < start < end <= snd_max
            prev = end
        # IsLost: un-SACKed octets below the boundary, and only those, are lost.
        boundary = sb.lost_boundary(una, smss)
        assert {x for x in model.unsacked() if x < boundary} == model.lost(smss)
        for in_recovery in (False, True):
            assert sb.pipe(una, snd_max, smss, in_recovery) == model.pipe(smss, in_recovery)
        for lost in (True, False):
            assert sb.next_hole(lost, una, snd_max, smss) == model.next_hole(lost, smss)
        holes = list(sb.holes(una, snd_max))
        assert sum(e - s for s, e, _ in holes) == len(model.unsacked())


def test_beyond_the_bound_the_highest_range_is_forgotten() -> None:
    sb = SackScoreboard(0)
    blocks = tuple((10 * i + 1, 10 * i + 5) for i in range(MAX_SACK_RANGES + 1))
    assert sb.update(blocks[:4], 0, 0, 1000)
    assert sb.update(blocks[4:], 0, 0, 1000)
    assert len(sb.ranges) == MAX_SACK_RANGES
    assert sb.ranges[-1] == [10 * (MAX_SACK_RANGES - 1) + 1, 10 * (MAX_SACK_RANGES - 1) + 5]
    assert sb.ranges_dropped == 1
    # A block reported again merges; one below the ACK, empty or beyond snd_max is ignored.
    assert not sb.update(((1, 5),), 0, 0, 1000)
    assert not sb.update(((1, 1), (990, 1100)), 0, 6, 1000)
    assert sb.blocks_ignored == 2


def test_three_ranges_or_more_than_two_smss_above_a_hole_make_it_lost() -> None:
    sb = SackScoreboard(0)
    sb.update(((10, 20), (30, 40)), 0, 0, 100)
    assert sb.lost_boundary(0, 10) == 0  # two ranges, 20 bytes: nothing lost
    assert sb.lost_boundary(0, 9) == 10  # 20 bytes > 2 * 9: below 10 lost
    sb.update(((50, 51),), 0, 0, 100)
    assert sb.lost_boundary(0, 100) == 10  # three ranges above 0..10
    assert sb.next_hole(True, 0, 100, 100) == (0, 10)
    sb.high_rxt = 10
    assert sb.next_hole(True, 0, 100, 100) is None  # 20..30 has two ranges above
    assert sb.next_hole(False, 0, 100, 100) == (20, 30)  # rule 3
