"""Benchmark: ways to compute the Internet checksum (RFC 1071) in pure Python.

Usage::

    python3 benchmarks/bench_checksum.py [--rounds N]

Contenders, each returning the 16-bit one's-complement sum of a buffer:

a. *array('H') sum* (the baseline): ``sum(array("H", data))`` (native byte
   order, swapped at the end as RFC 1071 section 2(B) allows), then folding
   the carries. The usual "fast" pure-Python checksum.
b. *struct unpack sum*: ``sum(struct.unpack("!%dH" % n, data))`` then fold.
c. *word loop*: a Python loop over big-endian 16-bit words.
d. *int.from_bytes mod 0xFFFF*: the whole buffer read as one big integer
   (2**16 == 1 modulo 0xFFFF, so the number modulo 0xFFFF is the
   one's-complement sum, with 0xFFFF for a non-zero multiple). This is what
   ``trionet.protocols.checksum`` uses.

Every contender is first checked against the others on random buffers of
every length from 0 to 300 and on the edge cases (all zeros, all 0xFF). The
figure of merit is **time per buffer divided by the baseline's, measured in
the same round**, for buffers of 20 (an IPv4 header), 64, 576, 1500, 9000 and
65535 bytes; the table gives the median over rounds.
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import struct
import sys
import timeit
from array import array
from collections.abc import Callable

from trionet.protocols.checksum import ones_complement_sum

SIZES = (20, 64, 576, 1500, 9000, 65535)


def _fold(total: int) -> int:
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def sum_array(data: bytes) -> int:
    if len(data) & 1:
        data += b"\0"
    total = _fold(sum(array("H", data)))
    if sys.byteorder == "little":
        total = ((total & 0xFF) << 8) | (total >> 8)
    return total


def sum_struct(data: bytes) -> int:
    if len(data) & 1:
        data += b"\0"
    return _fold(sum(struct.unpack(f"!{len(data) // 2}H", data)))


def sum_loop(data: bytes) -> int:
    if len(data) & 1:
        data += b"\0"
    total = 0
    for i in range(0, len(data), 2):
        total += (data[i] << 8) | data[i + 1]
    return _fold(total)


def sum_from_bytes(data: bytes) -> int:
    return ones_complement_sum(data)


CONTENDERS: dict[str, Callable[[bytes], int]] = {
    "array('H') sum (baseline)": sum_array,
    "struct unpack sum": sum_struct,
    "word loop": sum_loop,
    "int.from_bytes mod 0xFFFF": sum_from_bytes,
}


def canonical(total: int) -> int:
    # 0 and 0xFFFF are the two zeros of one's complement; a non-empty buffer
    # that sums to "zero" may be reported either way by the folding methods.
    return 0xFFFF if total == 0 else total


def check_agreement() -> None:
    rng = random.Random(1071)
    cases = [bytes(n) for n in (0, 1, 2, 3)] + [b"\xff" * n for n in (1, 2, 3, 64, 65)]
    cases += [rng.randbytes(n) for n in range(301)]
    for data in cases:
        results = {name: fn(data) for name, fn in CONTENDERS.items()}
        if len({canonical(r) for r in results.values()}) != 1:
            raise SystemExit(f"contenders disagree on {data.hex()}: {results}")


def main(rounds: int) -> None:
    check_agreement()
    rng = random.Random(1)
    buffers = {n: rng.randbytes(n) for n in SIZES}
    ns: dict[tuple[str, int], list[float]] = {}
    ratios: dict[tuple[str, int], list[float]] = {}
    names = list(CONTENDERS)
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for n, data in buffers.items():
            number = max(1, 200_000 // n)
            got = {}
            for name in order:
                fn = CONTENDERS[name]
                got[name] = min(timeit.repeat(lambda: fn(data), number=number, repeat=3)) / number
            for name in names:
                ns.setdefault((name, n), []).append(got[name] * 1e9)
                ratios.setdefault((name, n), []).append(got[name] / got[names[0]])
    print(f"command: python3 benchmarks/bench_checksum.py --rounds {rounds}")
    print(f"python:  {platform.python_implementation()} {platform.python_version()}")
    print(f"platform: {platform.platform()} ({platform.machine()})")
    print()
    print("all contenders agree on 309 buffers (lengths 0..300 and edge cases)")
    print("time per buffer as a ratio to the array('H') baseline (median of rounds); ns in brackets")
    print(f"{'contender':<28}" + "".join(f"{n:>16}" for n in SIZES))
    for name in names:
        cells = "".join(
            f"{statistics.median(ratios[name, n]):>7.2f} [{statistics.median(ns[name, n]):>6.0f}]"
            for n in SIZES
        )
        print(f"{name:<28}{cells}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    main(parser.parse_args().rounds)
