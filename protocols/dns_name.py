"""DNS names: labels, text forms, and compression on the wire (RFC 1035 3.1,
4.1.4; RFC 2181 11).

The rest of a DNS message is :mod:`.dns`; its module docstring's rules 1 to 3
(legal names, compression on parse and on emit), bounds and prior art are
the rules of the code here. In short:

1. A :class:`Name` is a tuple of labels of 1 to 63 arbitrary bytes, at most
   255 bytes on the wire (:data:`MAX_LABEL_LEN`, :data:`MAX_NAME_LEN`),
   checked when it is built; labels keep their case, and
   :meth:`Name.matches` compares ignoring ASCII case.
2. :func:`read_name` follows compression pointers only backwards, at most
   :data:`MAX_POINTERS` per name, and remembers the name suffixes read at
   each pointer target (``Suffixes``), so a pointer costs one look-up; a
   bad name raises :class:`~.errors.RemoteProtocolError` and nothing else.
3. :class:`NameWriter` builds a message's bytes and writes a name's longest
   suffix already written as a pointer, when it lies in the first 16 KiB.

Used by :mod:`.dns` only; the names a user needs are re-exported there.
"""

from __future__ import annotations

import struct
from typing import Any

import attrs

from .errors import RemoteProtocolError

__all__ = ["MAX_LABEL_LEN", "MAX_NAME_LEN", "MAX_POINTERS", "Name", "NameWriter", "Suffixes", "read_name", "to_name"]

MAX_LABEL_LEN = 63
MAX_NAME_LEN = 255
#: Compression pointers followed in one name before the parse gives up.
MAX_POINTERS = 127

_U16 = struct.Struct("!H")


def _check_labels(labels: Any) -> tuple[bytes, ...]:
    out = tuple(bytes(label) for label in labels)
    wire = 1
    for label in out:
        if not 1 <= len(label) <= MAX_LABEL_LEN:
            raise ValueError(f"a label is 1..63 bytes, got {len(label)}: {label!r}")
        wire += 1 + len(label)
    if wire > MAX_NAME_LEN:
        raise ValueError(f"a name is at most 255 bytes on the wire, got {wire}")
    return out


def _label_text(label: bytes) -> str:
    out = []
    for b in label:
        if b in b".\\":
            out.append("\\" + chr(b))
        elif 0x21 <= b <= 0x7E:
            out.append(chr(b))
        else:
            out.append(f"\\{b:03d}")
    return "".join(out)


@attrs.frozen
class Name:
    """A domain name: its labels, most specific first, without the root's
    empty label. Always absolute (the wire has no relative names).

    Equality and hashing are exact (byte for byte, case included); compare
    names for lookups with :meth:`matches` or key tables with :meth:`lower`.

    ``str(name)`` is the text form, without a final dot (the root is
    ``"."``), with ``.`` and ``\\`` in labels escaped as ``\\.`` and ``\\\\``,
    and bytes outside printable ASCII as ``\\DDD``; :meth:`from_text` reads
    it back.

    Attributes:
        labels: the labels, each 1..63 bytes; the name is at most 255 bytes
            on the wire.

    Raises:
        ValueError: a label is empty or longer than 63 bytes, or the name
            longer than 255 bytes.
    """

    labels: tuple[bytes, ...] = attrs.field(default=(), converter=_check_labels)

    @classmethod
    def from_text(cls, text: str) -> Name:
        """The name written ``text`` (``"www.example.com"``, with or without the
        final dot; ``""`` or ``"."`` for the root). Escapes: ``\\.``, ``\\\\``
        (any ``\\X`` is X) and ``\\DDD`` (a decimal byte). Only ASCII: encode
        internationalised names with IDNA first.

        Raises:
            ValueError: an empty label (``"a..b"``), a bad escape, a
                non-ASCII character, or a label or name too long.
        """
        if text in ("", "."):
            return cls(())
        labels: list[bytes] = []
        label = bytearray()
        i, n = 0, len(text)
        while i < n:
            c = text[i]
            if c == "\\":
                digits = text[i + 1 : i + 4]
                if len(digits) == 3 and digits.isdigit() and digits.isascii():
                    if int(digits) > 255:
                        raise ValueError(f"bad escape \\{digits} in {text!r}")
                    label.append(int(digits))
                    i += 4
                    continue
                if i + 1 >= n:
                    raise ValueError(f"a name cannot end in a backslash: {text!r}")
                c = text[i + 1]
                i += 1
            elif c == ".":
                if not label:
                    raise ValueError(f"empty label in {text!r}")
                labels.append(bytes(label))
                label.clear()
                i += 1
                continue
            if not c.isascii():
                raise ValueError(f"names are ASCII (use IDNA for {text!r})")
            label.append(ord(c))
            i += 1
        if label:
            labels.append(bytes(label))
        return cls(tuple(labels))

    def __str__(self) -> str:
        return ".".join(map(_label_text, self.labels)) if self.labels else "."

    @property
    def wire_length(self) -> int:
        """The uncompressed wire length, the final 0 included (1..255)."""
        return 1 + sum(1 + len(label) for label in self.labels)

    def lower(self) -> Name:
        """This name with ASCII letters lowered (RFC 4343): a key for tables."""
        return Name(tuple(label.lower() for label in self.labels))

    def matches(self, other: Name | str) -> bool:
        """Whether ``other`` is the same name, ignoring ASCII case (RFC 4343)."""
        other = to_name(other)
        return len(self.labels) == len(other.labels) and all(
            a.lower() == b.lower() for a, b in zip(self.labels, other.labels)
        )

    def is_subdomain_of(self, other: Name | str) -> bool:
        """Whether this name is ``other`` or below it, ignoring ASCII case
        (``www.example.com`` is a subdomain of ``example.com`` and of the root)."""
        other = to_name(other)
        k = len(other.labels)
        if k > len(self.labels):
            return False
        return all(a.lower() == b.lower() for a, b in zip(self.labels[len(self.labels) - k :], other.labels))


def to_name(value: Name | str) -> Name:
    if isinstance(value, Name):
        return value
    if isinstance(value, str):
        return Name.from_text(value)
    raise TypeError(f"a name is a Name or a str, got {value!r}")


# Wire helpers ----------------------------------------------------------


#: The names already read in a message, by offset: the labels of the name
#: that starts there, its wire length and the pointers it follows.
Suffixes = dict[int, tuple[tuple[bytes, ...], int, int]]


def read_name(data: bytes, pos: int, memo: Suffixes) -> tuple[Name, int]:
    """The name at ``pos`` and the offset just after it (after its first
    pointer, if it has one). Module docstring, rule 2.

    ``memo`` holds the suffixes read so far in this message, so a pointer to
    one costs one look-up instead of a walk: without it, a 64 KiB message of
    names each pointing at the end of a chain of :data:`MAX_POINTERS`
    pointers takes ~100 times as long. A suffix is looked up only where a
    pointer lands, and every suffix stored was read under a rule at least as
    strict as the one that applies there (its own run started at or before
    it), so the memo changes the work and never the result.
    """
    n = len(data)
    labels: list[bytes] = []
    wire = 1
    hops = 0
    run_start = pos  # a pointer must point strictly before this
    after = -1
    starts: list[tuple[int, int, int, int]] = []  # (offset, labels, wire, hops) before each step
    while True:
        # Only where a pointer landed (after >= 0): a memo hit ends the walk
        # without reading the bytes, so at the name's own start it would
        # leave the offset after the name unknown (a later name can start
        # on bytes an earlier pointer walked through).
        if after >= 0 and pos == run_start and pos in memo:
            suffix, suffix_wire, suffix_hops = memo[pos]
            wire += suffix_wire - 1
            if wire > MAX_NAME_LEN:
                raise RemoteProtocolError("name_too_long", f"more than 255 bytes at offset {pos}")
            hops += suffix_hops
            if hops > MAX_POINTERS:
                raise RemoteProtocolError("too_many_pointers", f"more than {MAX_POINTERS} in one name")
            labels += suffix
            break
        if pos >= n:
            raise RemoteProtocolError("truncated_name", f"at offset {pos}")
        b = data[pos]
        if b == 0:
            pos += 1
            break
        if pos < 0x4000:
            starts.append((pos, len(labels), wire, hops))
        kind = b & 0xC0
        if kind == 0:
            end = pos + 1 + b
            if end > n:
                raise RemoteProtocolError("truncated_name", f"label of {b} bytes at offset {pos}")
            wire += 1 + b
            if wire > MAX_NAME_LEN:
                raise RemoteProtocolError("name_too_long", f"more than 255 bytes at offset {pos}")
            labels.append(data[pos + 1 : end])
            pos = end
        elif kind == 0xC0:
            if pos + 1 >= n:
                raise RemoteProtocolError("truncated_name", f"half a pointer at offset {pos}")
            target = ((b & 0x3F) << 8) | data[pos + 1]
            if target >= run_start:
                raise RemoteProtocolError(
                    "bad_pointer",
                    f"pointer at offset {pos} to {target}, not before {run_start} (forward, self or loop)",
                )
            hops += 1
            if hops > MAX_POINTERS:
                raise RemoteProtocolError("too_many_pointers", f"more than {MAX_POINTERS} in one name")
            if after < 0:
                after = pos + 2
            pos = run_start = target
        else:
            raise RemoteProtocolError("bad_label_type", f"label type {b >> 6:#04b} at offset {pos}")
    whole = tuple(labels)
    for offset, index, wire_before, hops_before in starts:
        memo[offset] = (whole[index:], wire - wire_before + 1, hops - hops_before)
    return Name(whole), (after if after >= 0 else pos)


class NameWriter:
    """A growing message and, when compressing, the offsets of the name
    suffixes written so far (module docstring, rule 3)."""

    __slots__ = ("buf", "table")

    def __init__(self, compress: bool) -> None:
        self.buf = bytearray()
        self.table: dict[tuple[bytes, ...], int] | None = {} if compress else None

    def name(self, name: Name) -> None:
        labels, buf, table = name.labels, self.buf, self.table
        for i in range(len(labels)):
            if table is not None:
                suffix = labels[i:]
                offset = table.get(suffix)
                if offset is not None:
                    buf += _U16.pack(0xC000 | offset)
                    return
                if len(buf) < 0x4000:
                    table[suffix] = len(buf)
            buf.append(len(labels[i]))
            buf += labels[i]
        buf.append(0)
