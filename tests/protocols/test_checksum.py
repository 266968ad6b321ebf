"""The Internet checksum against a plain RFC 1071 word loop."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from trionet.protocols.checksum import internet_checksum, ones_complement_sum, pseudo_header_sum


def reference_sum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = 0
    for i in range(0, len(data), 2):
        total += (data[i] << 8) | data[i + 1]
        total = (total & 0xFFFF) + (total >> 16)
    return total


@given(st.binary(max_size=2000))
def test_matches_the_rfc1071_loop(data: bytes) -> None:
    assert ones_complement_sum(data) == reference_sum(data)
    assert internet_checksum(data) == ~reference_sum(data) & 0xFFFF


@given(st.binary(min_size=2, max_size=200).filter(lambda b: len(b) % 2 == 0))
def test_a_buffer_with_its_checksum_sums_to_zero(data: bytes) -> None:
    c = internet_checksum(data)
    assert internet_checksum(data + c.to_bytes(2, "big")) == 0


def test_known_values() -> None:
    # RFC 1071 section 3 example words 0001 f203 f4f5 f6f7: sum ddf2.
    assert ones_complement_sum(bytes.fromhex("0001f203f4f5f6f7")) == 0xDDF2
    assert internet_checksum(b"") == 0xFFFF
    assert ones_complement_sum(b"\xff\xff") == 0xFFFF
    assert ones_complement_sum(b"\xff\xff\xff\xff") == 0xFFFF
    # An IPv4 header from RFC 1071 style worked examples (checksum b861).
    header = bytes.fromhex("450000730000400040110000c0a80001c0a800c7")
    assert internet_checksum(header) == 0xB861


def test_pseudo_header_sum() -> None:
    src, dst = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
    expected = reference_sum(src + dst + b"\x00\x11" + (8).to_bytes(2, "big"))
    assert pseudo_header_sum(src, dst, 17, 8) == expected


@given(
    st.integers(16000, 70000),
    st.sampled_from(["random", "zeros", "ones", "sparse"]),
    st.integers(0, 2**32),
    st.integers(0, 0xFFFF),
)
def test_large_buffers_are_folded_to_the_same_sum(size: int, kind: str, seed: int, initial: int) -> None:
    # Buffers of 16 KiB and more take the folding path; check it against the
    # word loop, including the all-zero and all-ones (0xFFFF multiple) cases.
    import random

    rng = random.Random(seed)
    if kind == "random":
        data = rng.randbytes(size)
    elif kind == "zeros":
        data = bytes(size)
    elif kind == "ones":
        data = b"\xff" * size
    else:
        buf = bytearray(size)
        for _ in range(5):
            buf[rng.randrange(size)] = rng.randrange(256)
        data = bytes(buf)
    want = reference_sum(data + b"\0" * (len(data) % 2) + initial.to_bytes(2, "big"))
    assert ones_complement_sum(data, initial) == want
