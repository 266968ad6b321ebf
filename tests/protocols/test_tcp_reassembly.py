"""ReassemblyQueue against a dict from sequence number to byte.

Random sequences of out-of-order segments (random offsets, lengths and
contents, so overlapping copies differ) and in-order deliveries go to the
queue, as the connection would hand them over, and to a model that is a dict
``seq -> byte`` (the first copy of a byte wins) plus ``rcv_nxt``, in the
style of smoltcp's ``Assembler`` tests. After each step the delivered bytes,
the held bytes and the block structure agree, and the invariants of the
module docstring hold; the SACK blocks follow RFC 2018's order.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from trionet.protocols.tcp import MAX_SACK_BLOCKS, SEQ_MASK
from trionet.protocols.tcp_reassembly import ReassemblyQueue

BASE = SEQ_MASK - 300  # block edges wrap in the SACK blocks


class Model:
    def __init__(self, rcv_nxt: int) -> None:
        self.rcv_nxt = rcv_nxt
        self.held: dict[int, int] = {}
        self.delivered = bytearray()

    def runs(self) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        for p in sorted(self.held):
            if out and out[-1][1] == p:
                out[-1] = (out[-1][0], p + 1)
            else:
                out.append((p, p + 1))
        return out

    def insert(self, s: int, data: bytes, max_blocks: int) -> bool:
        """True if taken: it touches held data, or there is room for a block."""
        touches = any(p in self.held for p in range(s - 1, s + len(data) + 1))
        if not touches and len(self.runs()) >= max_blocks:
            return False
        for i, b in enumerate(data):
            self.held.setdefault(s + i, b)
        return True

    def deliver(self, data: bytes) -> None:
        self.delivered += data
        self.rcv_nxt += len(data)
        self.held = {p: b for p, b in self.held.items() if p >= self.rcv_nxt}
        while self.rcv_nxt in self.held:
            self.delivered.append(self.held.pop(self.rcv_nxt))
            self.rcv_nxt += 1


operations = st.lists(
    st.one_of(
        # An out-of-order segment: offset above rcv_nxt, length, fill byte.
        st.tuples(st.just("ooo"), st.integers(1, 120), st.integers(1, 40), st.integers(0, 255)),
        # In-order data at rcv_nxt.
        st.tuples(st.just("in"), st.just(0), st.integers(1, 60), st.integers(0, 255)),
    ),
    max_size=50,
)


@settings(max_examples=300)
@given(st.integers(1, 6), operations)
def test_the_queue_holds_and_delivers_what_a_dict_of_bytes_does(
    max_blocks: int, ops: list[tuple[str, int, int, int]]
) -> None:
    queue = ReassemblyQueue()
    model = Model(BASE)
    rcv_nxt = BASE
    rcvbuf = bytearray()
    taken = dropped = 0
    last_start = None
    for op, offset, length, fill in ops:
        data = bytes((fill + i) % 256 for i in range(length))
        if op == "ooo":
            s = rcv_nxt + offset
            if model.insert(s, data, max_blocks):
                taken += 1
                last_start = s
            else:
                dropped += 1
            queue.insert(s, memoryview(data), max_blocks)
        else:
            # What TcpConnection._data_input does with in-order data.
            rcvbuf += data
            rcv_nxt += length
            if queue.blocks:
                rcv_nxt = queue.pull(rcv_nxt, rcvbuf)
            model.deliver(data)
            if last_start is not None and last_start < rcv_nxt:
                last_start = None
        assert rcv_nxt == model.rcv_nxt
        assert rcvbuf == model.delivered
        assert [(s, s + len(b)) for s, b in queue.blocks] == model.runs()
        for s, b in queue.blocks:
            assert bytes(b) == bytes(model.held[p] for p in range(s, s + len(b)))
        assert (queue.segments, queue.dropped) == (taken, dropped)
        assert queue.nbytes == len(model.held)
        # Invariants: within the bound, sorted, disjoint and not touching, above rcv_nxt.
        assert len(queue.blocks) <= max_blocks
        prev = rcv_nxt
        for s, b in queue.blocks:
            assert s > prev and b
            prev = s + len(b)
        # SACK blocks: every block once (up to the limit), the newest segment's first.
        wire = [((s & SEQ_MASK), (s + len(b)) & SEQ_MASK) for s, b in queue.blocks]
        for limit in (3, MAX_SACK_BLOCKS):
            sack = queue.sack_blocks(limit)
            assert len(sack) == min(limit, len(wire)) == len(set(sack))
            assert set(sack) <= set(wire)
            if last_start is not None:
                first = next((s, s + len(b)) for s, b in queue.blocks if s <= last_start < s + len(b))
                assert sack[0] == (first[0] & SEQ_MASK, first[1] & SEQ_MASK)


def test_held_bytes_win_over_a_new_copy_and_the_in_order_copy_wins_over_held_ones() -> None:
    queue = ReassemblyQueue()
    queue.insert(110, b"bbbb", 4)
    queue.insert(108, b"AAAAAAAA", 4)  # covers 108..116, the held 110..114 stay
    assert [(s, bytes(b)) for s, b in queue.blocks] == [(108, b"AAbbbbAA")]
    rcvbuf = bytearray(b"x" * 9)  # in-order 100..109 arrived
    assert queue.pull(109, rcvbuf) == 116
    assert rcvbuf == b"x" * 9 + b"AbbbbAA"
    assert not queue.blocks


def test_a_segment_that_would_be_a_new_block_beyond_the_limit_is_dropped() -> None:
    queue = ReassemblyQueue()
    queue.insert(10, b"a", 2)
    queue.insert(20, b"b", 2)
    queue.insert(30, b"c", 2)
    assert (queue.segments, queue.dropped) == (2, 1)
    queue.insert(11, b"d", 2)  # touches a block: taken
    assert [(s, bytes(b)) for s, b in queue.blocks] == [(10, b"ad"), (20, b"b")]
    assert queue.sack_blocks(3) == ((10, 12), (20, 21))
