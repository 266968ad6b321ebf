"""Where each key of a TOML document is: a light scan of text tomllib accepted.

:mod:`tomllib` reports syntax errors with their position but keeps none for
the values it returns; topology files want every message to name a line, so
:func:`key_lines` scans the text once more and records the line of every key
path (``("links", 1, "mtu")``) and array element. It only runs on text
tomllib has accepted, and stops quietly at anything it does not follow,
keeping what it found: a missing line makes a message name the file only.

Nesting is bounded: a value nested more than :data:`MAX_DEPTH` arrays or
inline tables deep raises :class:`NestedTooDeep` with its line and key path
(tomllib recurses once per level and would raise :exc:`RecursionError`; a
topology nests four levels at most).
"""

from __future__ import annotations

import bisect
import json
import re

__all__ = ["MAX_DEPTH", "KeyPath", "NestedTooDeep", "key_lines"]

KeyPath = tuple[str | int, ...]

#: Arrays and inline tables within one another, at most.
MAX_DEPTH = 32


class NestedTooDeep(ValueError):
    """A value nested more than :data:`MAX_DEPTH` deep, on ``line``, in the
    value of the key at ``path``."""

    def __init__(self, line: int, path: KeyPath) -> None:
        super().__init__(f"nested more than {MAX_DEPTH} deep at line {line}")
        self.line = line
        self.path = path



class _Scanner:
    # Records the line of every key path ("links", 1, "mtu") and array
    # element ("hosts", "h1", "routes", 0). Valid TOML only: anything odd
    # stops the scan, keeping what was found.

    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0
        self.newlines = [m.start() for m in re.finditer("\n", text)]
        self.lines: dict[KeyPath, int] = {}
        self.aot: dict[tuple[str, ...], int] = {}

    def line(self) -> int:
        return bisect.bisect_left(self.newlines, self.i) + 1

    def record(self, path: KeyPath) -> None:
        line = self.line()
        for n in range(1, len(path) + 1):
            self.lines.setdefault(path[:n], line)

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def skip(self, newlines: bool = False) -> None:
        while self.i < len(self.s):
            c = self.s[self.i]
            if c in " \t":
                self.i += 1
            elif newlines and c in "\r\n":
                self.i += 1
            elif newlines and c == "#":
                end = self.s.find("\n", self.i)
                self.i = len(self.s) if end < 0 else end
            else:
                return

    def string(self) -> str:
        s, i = self.s, self.i
        quote = s[i]
        if s.startswith(quote * 3, i):
            end = s.find(quote * 3, i + 3)
            while s.startswith(quote, end + 3):  # up to two quotes may end the body
                end += 1
            self.i = end + 3
            return s[i + 3 : end]
        j = i + 1
        while s[j] != quote:
            j += 2 if quote == '"' and s[j] == "\\" else 1
        self.i = j + 1
        raw = s[i : j + 1]
        return json.loads(raw) if quote == '"' else raw[1:-1]

    def key(self) -> list[str]:
        keys = []
        while True:
            self.skip()
            if self.peek() in "\"'":
                keys.append(self.string())
            else:
                m = re.compile(r"[A-Za-z0-9_-]+").match(self.s, self.i)
                if m is None:
                    raise ValueError("no key")
                keys.append(m.group())
                self.i = m.end()
            self.skip()
            if self.peek() != ".":
                return keys
            self.i += 1

    def value(self, path: KeyPath, depth: int = 0, top: KeyPath | None = None) -> None:
        # ``top``: the key whose value this is part of (for NestedTooDeep).
        top = path if top is None else top
        self.skip()
        c = self.peek()
        if c in "{[" and depth >= MAX_DEPTH:
            raise NestedTooDeep(self.line(), top)
        if c == "{":
            self.i += 1
            while True:
                self.skip(newlines=True)
                if self.peek() == "}":
                    self.i += 1
                    return
                keys = self.key()
                self.record(path + tuple(keys))
                self.expect("=")
                self.value(path + tuple(keys), depth + 1, top)
                self.skip(newlines=True)
                if self.peek() == ",":
                    self.i += 1
        elif c == "[":
            self.i += 1
            n = 0
            while True:
                self.skip(newlines=True)
                if self.peek() == "]":
                    self.i += 1
                    return
                self.record(path + (n,))
                self.value(path + (n,), depth + 1, top)
                self.skip(newlines=True)
                if self.peek() == ",":
                    self.i += 1
                    n += 1
        elif c in "\"'":
            self.string()
        else:
            m = re.compile(r"[^,\]}\n#]*").match(self.s, self.i)
            assert m is not None
            self.i = m.end()

    def expect(self, char: str) -> None:
        self.skip()
        if self.peek() != char:
            raise ValueError(f"expected {char}")
        self.i += 1

    def run(self) -> None:
        table: KeyPath = ()
        while True:
            self.skip(newlines=True)
            if self.i >= len(self.s):
                return
            if self.peek() == "[":
                double = self.s.startswith("[[", self.i)
                self.i += 2 if double else 1
                keys = self.key()
                self.i += 2 if double else 1
                if double:
                    self.aot[tuple(keys)] = self.aot.get(tuple(keys), -1) + 1
                path: list[str | int] = []
                for n in range(len(keys)):
                    path.append(keys[n])
                    if tuple(keys[: n + 1]) in self.aot:
                        path.append(self.aot[tuple(keys[: n + 1])])
                table = tuple(path)
                self.record(table)
            else:
                keys = self.key()
                self.record(table + tuple(keys))
                self.expect("=")
                self.value(table + tuple(keys))


def key_lines(text: str) -> dict[KeyPath, int]:
    """The line of each key path in (valid TOML) ``text``; best effort.

    Raises:
        NestedTooDeep: a value nested more than :data:`MAX_DEPTH` deep.
    """
    scanner = _Scanner(text)
    try:
        scanner.run()
    except NestedTooDeep:
        raise
    except (ValueError, IndexError):
        pass
    return scanner.lines
