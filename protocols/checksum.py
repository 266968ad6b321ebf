"""The Internet checksum (RFC 1071), as fast as pure Python allows.

The one's-complement sum of 16-bit big-endian words equals the whole buffer
read as one big-endian integer taken modulo 0xFFFF (because 2**16 == 1 mod
0xFFFF), with one fix-up: a non-zero sum that is a multiple of 0xFFFF is
0xFFFF in one's complement, not 0. ``int.from_bytes`` does the reading in C,
so this is many times faster than a loop over words (DESIGN.md section 3
measured it at 22x a byte loop and 3x summing ``array('H')``).

Odd lengths are padded with a zero byte, as RFC 1071 says.
"""

from __future__ import annotations

__all__ = ["internet_checksum", "ones_complement_sum", "pseudo_header_sum"]


#: Buffers at least this long are summed by folding (see ones_complement_sum).
_FOLD_MIN = 16384


def ones_complement_sum(data: bytes | bytearray | memoryview, initial: int = 0) -> int:
    """The 16-bit one's-complement sum of ``data`` (plus ``initial``), 0..0xFFFF."""
    if len(data) & 1:
        data = bytes(data) + b"\0"
    if len(data) < _FOLD_MIN:
        total = int.from_bytes(data, "big") + initial
        if not total:
            return 0
        total %= 0xFFFF
        return total or 0xFFFF
    # Large buffers: fold halves of the integer together with shifts and
    # adds (2**(16k) == 1 mod 0xFFFF), cheaper than one long division of the
    # whole integer by 0xFFFF. The sum is byte-order independent (RFC 1071
    # 2.B: sum the swapped words, swap the result), so read the buffer in
    # the machine's order, which CPython converts a little faster.
    total = int.from_bytes(data, "little")
    bits = len(data) << 3
    while bits > 256:
        half = ((bits >> 1) + 15) & ~15
        total = (total >> half) + (total & ((1 << half) - 1))
        bits = half + 1
    if total:
        total %= 0xFFFF
        total = ((total >> 8) | (total << 8)) & 0xFFFF if total else 0xFFFF
    total += initial
    if not total:
        return 0
    total %= 0xFFFF
    return total or 0xFFFF


def internet_checksum(data: bytes | bytearray | memoryview, initial: int = 0) -> int:
    """The Internet checksum of ``data``: the complement of its one's-complement sum.

    Args:
        initial: a partial sum to include (a pseudo-header's, say).

    A buffer that already contains its correct checksum gives 0.
    """
    return ~ones_complement_sum(data, initial) & 0xFFFF


def pseudo_header_sum(src: bytes, dst: bytes, proto: int, length: int) -> int:
    """The one's-complement sum of the IPv4 pseudo-header (RFC 768, RFC 9293).

    Args:
        src, dst: 4-byte IPv4 addresses.
        proto: the IP protocol number (17 for UDP, 6 for TCP).
        length: the transport segment's length in bytes.
    """
    return ones_complement_sum(src + dst + bytes((0, proto)) + length.to_bytes(2, "big"))
