"""A typed sysctl tree: the knobs of one host.

Each node has a dotted DragonFly name (``"kern.intr_mpsafe"``), a type
(``int`` or ``str``), an optional range, and is read-write, read-only, or
computed on read. Writes are checked before anything changes, so a rejected
write leaves the old value in place.

Errors follow ``sysctl(3)`` where it has an errno and Python where it has an
exception for the job:

- unknown name: :class:`~trionet.NetError` with ``ENOENT``;
- write to a read-only node: :class:`~trionet.NetError` with ``EPERM``;
- value of the wrong type: :class:`TypeError`;
- value out of range: :class:`ValueError`.

DragonFly: ``sys/kern/kern_sysctl.c``, ``SYSCTL_INT`` / ``SYSCTL_PROC``.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterator

import attrs

from .._exceptions import NetError

__all__ = ["SysctlNode", "SysctlTable", "format_sysctl"]

SysctlValue = int | str


@attrs.define(eq=False)
class SysctlNode:
    """One sysctl.

    Attributes:
        name: dotted name.
        type: ``int`` or ``str``.
        description: one line, shown by ``sysctl -d``.
        readonly: writes raise ``EPERM``.
        min, max: inclusive bounds for ``int`` nodes.
        getter: for computed nodes, returns the value on each read.
        choices: the values a ``str`` node accepts (None: any).
    """

    name: str
    type: type
    value: SysctlValue | None = None
    description: str = ""
    readonly: bool = False
    min: int | None = None
    max: int | None = None
    getter: Callable[[], SysctlValue] | None = None
    choices: tuple[str, ...] | None = None

    def read(self) -> SysctlValue:
        if self.getter is not None:
            return self.getter()
        assert self.value is not None
        return self.value

    def check(self, value: object) -> SysctlValue:
        """Return ``value`` converted to the node's type, or raise."""
        if self.type is int:
            # bool is an int in Python; 0/1 knobs accept True/False as 1/0.
            if not isinstance(value, int):
                raise TypeError(
                    f"sysctl {self.name} takes an int, not {type(value).__name__}"
                )
            value = int(value)
            if self.min is not None and value < self.min:
                raise ValueError(f"sysctl {self.name}: {value} is below {self.min}")
            if self.max is not None and value > self.max:
                raise ValueError(f"sysctl {self.name}: {value} is above {self.max}")
            return value
        if not isinstance(value, str):
            raise TypeError(f"sysctl {self.name} takes a str, not {type(value).__name__}")
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"sysctl {self.name}: {value!r} is not one of {', '.join(self.choices)}")
        return value


@attrs.define(eq=False)
class SysctlTable:
    """The sysctl tree of one host, keyed by full name.

    Attributes:
        generation: bumped by every write, so a value derived from several
            nodes (a TCP connection's options) can be cached until one
            changes.
    """

    _nodes: dict[str, SysctlNode] = attrs.field(factory=dict, init=False)
    generation: int = attrs.field(default=0, init=False)

    def add(
        self,
        name: str,
        type: type,
        value: SysctlValue | None = None,
        *,
        description: str = "",
        readonly: bool = False,
        min: int | None = None,
        max: int | None = None,
        getter: Callable[[], SysctlValue] | None = None,
        choices: tuple[str, ...] | None = None,
    ) -> SysctlNode:
        """Declare a node; its default value must pass its own checks.

        Raises:
            ValueError: if ``name`` exists already or is not a dotted name.
        """
        if name in self._nodes:
            raise ValueError(f"sysctl {name} is already declared")
        if "." not in name or any(not part for part in name.split(".")):
            raise ValueError(f"sysctl names are dotted, like 'kern.ncpus', not {name!r}")
        if type not in (int, str):
            raise ValueError("sysctl nodes are int or str")
        node = SysctlNode(
            name, type, None, description, readonly or getter is not None, min, max, getter, choices
        )
        if getter is None:
            node.value = node.check(value)
        self._nodes[name] = node
        return node

    def node(self, name: str) -> SysctlNode:
        try:
            return self._nodes[name]
        except KeyError:
            raise NetError(errno.ENOENT, f"unknown sysctl {name!r}") from None

    def get(self, name: str) -> SysctlValue:
        return self.node(name).read()

    def set(self, name: str, value: object) -> SysctlValue:
        """Write a node and return its old value (``sysctl`` prints ``old -> new``)."""
        node = self.node(name)
        if node.readonly:
            raise NetError(errno.EPERM, f"sysctl {name} is read-only")
        old = node.read()
        node.value = node.check(value)
        self.generation += 1
        return old

    def __iter__(self) -> Iterator[SysctlNode]:
        return iter(sorted(self._nodes.values(), key=lambda n: n.name))

    def rows(self, prefix: str = "") -> list[tuple[str, SysctlValue]]:
        """``(name, value)`` for every node whose name starts with ``prefix``."""
        return [(n.name, n.read()) for n in self if n.name.startswith(prefix)]


def format_sysctl(rows: list[tuple[str, SysctlValue]]) -> str:
    """Format ``(name, value)`` rows as ``sysctl -a`` prints them."""
    return "".join(f"{name}: {value}\n" for name, value in rows)
