"""FaultInjector: each fault alone with exact counts, determinism, partitions,
virtual-time delay and jitter, and books that balance (down to two vnics)."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st
from trio.testing import wait_all_tasks_blocked

import trionet
from trionet.drivers.vnic import Vnic
from trionet.lowlevel import Mbuf, ifq_dispatch
from trionet.wires import memory_pair
from trionet.wires import FaultInjector, FaultStatistics
from trionet.wires._fault import DRAWS_PER_FRAME

PROTO = 0x88B5
N = 1000

# Indexes of the per-frame draws, in the documented order.
LOSS, CORRUPT, BIT, DUPLICATE, REORDER, JITTER = range(DRAWS_PER_FRAME)


def frame(seq: int, size: int = 60, dst: bytes = b"\xff" * 6, src: bytes = b"\x02" + bytes(5)) -> bytes:
    return dst + src + PROTO.to_bytes(2, "big") + seq.to_bytes(4, "big") + bytes(size - 18)


def seq_of(f: bytes) -> int:
    return int.from_bytes(f[14:18], "big")


def draws(seed: int, n: int) -> list[list[float]]:
    """The values frames 0..n-1 draw, replayed from the documented order."""
    rng = random.Random(seed)
    return [[rng.random() for _ in range(DRAWS_PER_FRAME)] for _ in range(n)]


def books_balance(s: FaultStatistics) -> bool:
    handed = s.offered + s.duplicated - s.rate_dropped - s.lost - s.partition_dropped
    handed -= s.queue_dropped + s.closed_dropped + s.pending
    return (
        s.passed + s.inner_refused == handed
        and s.passed == s.tx_frames
        and s.inner_refused == s.tx_drops
        and s.inbound == s.rx_frames + s.rx_drops + s.inbound_partition_dropped
    )


def lossy(**options: float) -> tuple[FaultInjector, list[bytes]]:
    """An injector over one end of a memory pair; the list gets what the far end receives."""
    near, far = memory_pair()
    got: list[bytes] = []
    far.set_receiver(got.append)
    return FaultInjector(near, **options), got  # type: ignore[arg-type]


####################################################################
# each fault alone
####################################################################


async def test_loss_alone_drops_exactly_the_frames_the_seed_says() -> None:
    inj, got = lossy(seed=1, loss=0.1)
    async with inj:
        for i in range(N):
            assert inj.send(frame(i))  # loss is silent
    d = draws(1, N)
    expected = [i for i in range(N) if d[i][LOSS] >= 0.1]
    s = inj.statistics()
    assert s.lost == N - len(expected) == 82
    assert [seq_of(f) for f in got] == expected
    assert s.offered == N and s.passed == len(expected)
    assert books_balance(s)


async def test_duplicate_alone_sends_a_copy_right_after_the_original() -> None:
    inj, got = lossy(seed=2, duplicate=0.05)
    async with inj:
        for i in range(N):
            inj.send(frame(i))
    d = draws(2, N)
    expected = []
    for i in range(N):
        expected += [i, i] if d[i][DUPLICATE] < 0.05 else [i]
    s = inj.statistics()
    assert s.duplicated == len(expected) - N == 52
    assert [seq_of(f) for f in got] == expected
    assert s.passed == N + s.duplicated
    assert books_balance(s)


async def test_corrupt_alone_flips_exactly_the_bit_the_seed_says() -> None:
    inj, got = lossy(seed=3, corrupt=0.2)
    sent = [frame(i, size=64 + i % 50) for i in range(N)]
    for f in sent:
        inj.send(f)  # corruption needs no task
    d = draws(3, N)
    s = inj.statistics()
    assert len(got) == N
    corrupted = 0
    for i, (before, after) in enumerate(zip(sent, got, strict=True)):
        diff = int.from_bytes(before, "big") ^ int.from_bytes(after, "big")
        if d[i][CORRUPT] < 0.2:
            corrupted += 1
            bit = int(d[i][BIT] * 8 * len(before))  # from the MSB of byte 0
            assert diff == 1 << (8 * len(before) - 1 - bit)
        else:
            assert diff == 0
    assert s.corrupted == corrupted == 203
    assert books_balance(s)


async def test_reorder_alone_sends_a_held_frame_after_the_next_one(
    autojump_clock: trio.testing.MockClock,
) -> None:
    inj, got = lossy(seed=4, reorder=0.05)
    async with inj:
        for i in range(N):
            inj.send(frame(i))
        d = draws(4, N)
        expected: list[int] = []
        held: list[int] = []
        for i in range(N):
            if d[i][REORDER] < 0.05:
                held.append(i)
            else:
                expected += [i, *held]
                held = []
        assert [seq_of(f) for f in got] == expected  # the trailing ones wait
        assert inj.statistics().pending == len(held)
        await trio.sleep(0.0011)
        expected += held
        assert [seq_of(f) for f in got] == expected
    s = inj.statistics()
    assert s.reordered == 37
    assert s.reorder_expired == len(held)
    assert s.pending == 0 and s.passed == N
    assert books_balance(s)


async def test_reorder_hold_times_out_after_one_millisecond_or_the_delay(
    autojump_clock: trio.testing.MockClock,
) -> None:
    inj, got = lossy(seed=0, reorder=1.0)
    arrivals: list[tuple[int, float]] = []
    inj.inner.peer.set_receiver(lambda f: arrivals.append((seq_of(f), trio.current_time())))  # type: ignore[attr-defined]
    async with inj:
        t0 = trio.current_time()
        inj.send(frame(0))
        await trio.sleep(0.0005)
        assert arrivals == []
        inj.reorder = 0.0
        inj.send(frame(1))  # the next frame releases the held one
        assert [s for s, _ in arrivals] == [1, 0]
        inj.reorder = 1.0
        t1 = trio.current_time()
        inj.send(frame(2))
        await trio.sleep(0.01)
        assert arrivals[2] == (2, pytest.approx(t1 + 0.001))
        inj.delay = 0.004  # hold = due + max(delay, 1 ms)
        t2 = trio.current_time()
        inj.send(frame(3))
        await trio.sleep(0.1)
        assert arrivals[3] == (3, pytest.approx(t2 + 0.008))
    s = inj.statistics()
    assert s.reordered == 3 and s.reorder_expired == 2
    assert arrivals[0][1] == pytest.approx(t0 + 0.0005)
    assert books_balance(s)


async def test_delay_and_jitter_in_virtual_time_never_reorder(
    autojump_clock: trio.testing.MockClock,
) -> None:
    inj, _ = lossy(seed=5, delay=0.05, jitter=0.02)
    arrivals: list[tuple[int, float]] = []
    inj.inner.peer.set_receiver(lambda f: arrivals.append((seq_of(f), trio.current_time())))  # type: ignore[attr-defined]
    n = 200
    async with inj:
        t0 = trio.current_time()
        for i in range(n):
            assert inj.send(frame(i))
            await trio.sleep(0.001)
        assert inj.statistics().pending > 0
        await trio.sleep(1)
    d = draws(5, n)
    expected = []
    last = -1.0
    for i in range(n):
        due = max(t0 + i * 0.001 + 0.05 + d[i][JITTER] * 0.02, last)
        expected.append(due)
        last = due
    assert [s for s, _ in arrivals] == list(range(n))
    assert [t for _, t in arrivals] == pytest.approx(expected, abs=1e-9)
    # jitter really spread the frames: some waited for an earlier one
    assert any(expected[i] == expected[i - 1] for i in range(1, n))
    s = inj.statistics()
    assert s.delayed == n and s.passed == n
    assert books_balance(s)


async def test_rate_limit_is_a_token_bucket_on_bytes(autojump_clock: trio.testing.MockClock) -> None:
    # 10 kB/s; the default bucket holds one full frame (1514 bytes).
    inj, got = lossy(seed=6, rate=10_000)
    async with inj:
        for i in range(100):
            assert inj.send(frame(i, size=100))
        assert len(got) == 15 and inj.statistics().rate_dropped == 85
        await trio.sleep(0.1)  # 1000 more bytes of tokens
        for i in range(100, 200):
            inj.send(frame(i, size=100))
        assert len(got) == 25
        inj.burst = 300
        await trio.sleep(10)
        for i in range(200, 210):
            inj.send(frame(i, size=100))
    s = inj.statistics()
    assert len(got) == 28 and s.rate_dropped == 210 - 28
    assert [seq_of(f) for f in got] == [*range(15), *range(100, 110), 200, 201, 202]
    assert books_balance(s)


async def test_queue_limit_bounds_waiting_frames(autojump_clock: trio.testing.MockClock) -> None:
    inj, got = lossy(seed=7, delay=1.0, queue_limit=10)
    async with inj:
        for i in range(25):
            inj.send(frame(i))
        s = inj.statistics()
        assert s.pending == 10 and s.queue_dropped == 15 and got == []
        assert books_balance(s)
        await trio.sleep(1.5)
        assert [seq_of(f) for f in got] == list(range(10))
    assert books_balance(inj.statistics())


async def test_frames_that_must_wait_are_dropped_when_not_running(
    autojump_clock: trio.testing.MockClock,
) -> None:
    inj, got = lossy(seed=8, delay=0.5)
    inj.send(frame(0))  # not entered yet: nothing can serve the queue
    async with inj:
        inj.send(frame(1))
        inj.send(frame(2))
        await trio.sleep(0.6)
        inj.send(frame(3))  # still waiting when the block exits
    s = inj.statistics()
    assert [seq_of(f) for f in got] == [1, 2]
    assert s.closed_dropped == 2 and s.pending == 0
    assert books_balance(s)
    with pytest.raises(RuntimeError):
        async with inj:
            pass


async def test_inner_refusal_is_reported_and_counted(autojump_clock: trio.testing.MockClock) -> None:
    near, far = memory_pair(mtu=100)
    far.set_receiver(lambda f: None)
    async with FaultInjector(near, seed=9) as inj:
        assert not inj.send(frame(0, size=200))  # refused inside send
        inj.delay = 0.01
        assert inj.send(frame(1, size=200))  # refused later: the sender was told True
        assert inj.send(frame(2))
        await trio.sleep(0.02)
    s = inj.statistics()
    assert s.inner_refused == 2 and s.passed == 1
    assert books_balance(s)


####################################################################
# partitions
####################################################################


async def test_partition_drops_both_directions_and_can_flip_while_running(
    autojump_clock: trio.testing.MockClock,
) -> None:
    near, far = memory_pair()
    got_far: list[bytes] = []
    got_near: list[bytes] = []
    far.set_receiver(got_far.append)
    async with FaultInjector(near, seed=10, delay=0.01) as inj:
        inj.set_receiver(got_near.append)
        for i in range(5):
            inj.send(frame(i))  # in flight when the partition starts
        inj.partitioned = True
        assert inj.partitioned
        for i in range(5, 8):
            inj.send(frame(i))
        far.send(frame(100))
        await trio.sleep(0.02)
        assert got_far == [] and got_near == []
        inj.partitioned = False
        for i in range(8, 10):
            inj.send(frame(i))
        far.send(frame(101))
        inj.partitioned = True
        inj.partitioned = False  # healed before the frames came due
        await trio.sleep(0.02)
    s = inj.statistics()
    assert [seq_of(f) for f in got_far] == [8, 9]
    assert [seq_of(f) for f in got_near] == [101]
    assert s.partition_dropped == 8 and s.inbound_partition_dropped == 1
    assert s.inbound == 2 and s.rx_frames == 1
    assert books_balance(s)


async def test_partitioned_frames_still_consume_their_draws() -> None:
    inj, got = lossy(seed=11, loss=0.5)
    inj.partitioned = True
    for i in range(10):
        inj.send(frame(i))
    inj.partitioned = False
    for i in range(10, 100):
        inj.send(frame(i))
    d = draws(11, 100)
    assert [seq_of(f) for f in got] == [i for i in range(10, 100) if d[i][LOSS] >= 0.5]


####################################################################
# determinism and the books
####################################################################


async def run_mix(seed: int) -> list[tuple[float, bytes]]:
    near, far = memory_pair()
    got: list[tuple[float, bytes]] = []
    t0 = trio.current_time()
    far.set_receiver(lambda f: got.append((round(trio.current_time() - t0, 9), f)))
    options = dict(loss=0.1, duplicate=0.1, reorder=0.1, corrupt=0.1, delay=0.002, jitter=0.003)
    async with FaultInjector(near, seed=seed, **options) as inj:
        for i in range(300):
            inj.send(frame(i))
            if i % 7 == 0:
                await trio.sleep(0.001)
        await trio.sleep(1)
    assert books_balance(inj.statistics())
    return got


async def test_same_seed_same_run_different_seed_different_run(
    autojump_clock: trio.testing.MockClock,
) -> None:
    first = await run_mix(12)
    assert first == await run_mix(12)
    assert [f for _, f in first] != [f for _, f in await run_mix(13)]
    assert [seq_of(f) for _, f in first] != sorted(seq_of(f) for _, f in first)


def run_random_mix(
    seed: int,
    probabilities: tuple[float, float, float, float],
    delay: float,
    jitter: float,
    rate: float | None,
    queue_limit: int,
    cut: tuple[int, int],
) -> None:
    loss, duplicate, reorder, corrupt = probabilities

    async def main() -> None:
        near, far = memory_pair(mtu=200)
        got: list[bytes] = []
        far.set_receiver(got.append)
        inj = FaultInjector(
            near, seed=seed, loss=loss, duplicate=duplicate, reorder=reorder, corrupt=corrupt,
            delay=delay, jitter=jitter, rate=rate, queue_limit=queue_limit,
        )
        up: list[bytes] = []
        inj.set_receiver(up.append)
        async with inj:
            for i in range(120):
                inj.partitioned = cut[0] <= i < cut[1]
                inj.send(frame(i, size=300 if i % 17 == 0 else 60))  # some too big for the inner end
                far.send(frame(i))
                if i % 10 == 0:
                    await trio.sleep(0.001)
                s = inj.statistics()
                assert books_balance(s), s
                assert len(got) == s.passed
        s = inj.statistics()
        assert books_balance(s), s
        assert s.pending == 0 and len(got) == s.passed and len(up) == s.rx_frames

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


probability = st.sampled_from([0.0, 0.05, 0.5, 1.0]) | st.floats(0, 1)


@settings(max_examples=40)
@given(
    seed=st.integers(0, 2**32),
    probabilities=st.tuples(probability, probability, probability, probability),
    delay=st.sampled_from([0.0, 0.0005, 0.01]),
    jitter=st.sampled_from([0.0, 0.002]),
    rate=st.sampled_from([None, 5_000.0, 100_000.0]),
    queue_limit=st.integers(1, 40),
    cut=st.tuples(st.integers(0, 120), st.integers(0, 120)),
)
def test_books_balance_for_any_mix(
    seed: int,
    probabilities: tuple[float, float, float, float],
    delay: float,
    jitter: float,
    rate: float | None,
    queue_limit: int,
    cut: tuple[int, int],
) -> None:
    run_random_mix(seed, probabilities, delay, jitter, rate, queue_limit, cut)


async def test_bad_arguments() -> None:
    near, _ = memory_pair()
    bad: list[Callable[[], object]] = [
        lambda: FaultInjector(near, seed=1, loss=1.5),
        lambda: FaultInjector(near, seed=1, duplicate=-0.1),
        lambda: FaultInjector(near, seed=1, delay=-1),
        lambda: FaultInjector(near, seed=1, jitter=float("inf")),
        lambda: FaultInjector(near, seed=1, rate=0),
        lambda: FaultInjector(near, seed=1, burst=-5),
        lambda: FaultInjector(near, seed=1, queue_limit=0),
    ]
    for make in bad:
        with pytest.raises(ValueError):
            make()
    with pytest.raises(TypeError, match="seed"):
        FaultInjector(near, seed="7")  # type: ignore[arg-type]
    inj = FaultInjector(near, seed=1)
    with pytest.raises(ValueError, match="loss"):
        inj.loss = 2
    assert inj.loss == 0.0


####################################################################
# acceptance: two vnics over faulty endpoints
####################################################################


async def test_two_vnics_over_faulty_links_receive_exactly_what_the_books_say(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Acceptance: N frames each way between two vnics, each end wrapped in a
    FaultInjector (10% loss, 5% duplication, 5% reordering): each receiving
    protocol handler counts exactly ``offered - lost + duplicated`` of the
    sending side's injector, and the vnics' counters agree."""
    n = 2000
    async with trionet.open_host("h1") as h1, trionet.open_host("h2") as h2:
        a, b = memory_pair()
        faults = dict(loss=0.10, duplicate=0.05, reorder=0.05)
        async with FaultInjector(a, seed=21, **faults) as fa, FaultInjector(b, seed=22, **faults) as fb:
            ifa = await h1.if_attach(Vnic(fa, rx_ring=1024))
            ifb = await h2.if_attach(Vnic(fb, rx_ring=1024))
            await h1.ifup(ifa)
            await h2.ifup(ifb)
            got_a: list[int] = []
            got_b: list[int] = []

            def sink(into: list[int]) -> Callable[[Mbuf], None]:
                return lambda m: into.append(int.from_bytes(m.data[:4], "big"))

            h1.netisr_register(PROTO, sink(got_a))
            h2.netisr_register(PROTO, sink(got_b))
            sent = {ifa: 0, ifb: 0}
            with trio.fail_after(60):
                while min(sent.values()) < n:
                    progress = False
                    for src, dst in ((ifa, ifb), (ifb, ifa)):
                        if sent[src] < n and len(src.snd) < src.snd.maxlen:
                            ifq_dispatch(src, frame(sent[src], dst=dst.lladdr, src=src.lladdr))
                            sent[src] += 1
                            progress = True
                    # start runs inline and the wire delivers at once:
                    # yield now and then so the receivers' ithreads drain
                    # their RX rings (1024 slots) before a burst outruns them.
                    if not progress or sum(sent.values()) % 128 == 0:
                        await wait_all_tasks_blocked()
                await trio.sleep(1)  # reorder holds time out, queues drain
                await wait_all_tasks_blocked()
            for inj, src, dst, got in ((fa, ifa, ifb, got_b), (fb, ifb, ifa, got_a)):
                s = inj.statistics()
                assert books_balance(s)
                assert s.offered == n and s.pending == 0
                assert s.lost > 0 and s.duplicated > 0 and s.reordered > 0
                assert len(got) == s.passed == s.offered - s.lost + s.duplicated
                assert got != sorted(got)
                ss, ds = src.statistics(), dst.statistics()
                assert ss.opackets == n and ss.oerrors == ss.oqdrops == 0
                assert ds.ipackets == s.passed and ds.iqdrops == ds.ierrors == 0
                assert inj.inner.statistics().tx_frames == s.passed  # type: ignore[attr-defined]
