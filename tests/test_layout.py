"""The import directions of DESIGN.md section 1, and one home per public name."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import trionet
import trionet.lowlevel
import trionet.testing
import trionet.wires

ROOT = Path(__file__).resolve().parent.parent
STDLIB = set(sys.stdlib_module_names) | {"__future__"}
THIRD_PARTY = {"trio", "attrs", "structlog", "outcome", "pytest", "hypothesis", "_pytest"}
PUBLIC = {"trionet", "trionet.lowlevel", "trionet.testing", "trionet.wires"}

# Package directory -> (its dotted name, predicate on imported top-level/module names).
# Package directory -> (its dotted name, allowed third-party tops, allowed
# trionet modules). An allowed module written "x.*" admits x and everything
# under it; one written "x" admits exactly x, so "trionet" does not let a
# driver reach into trionet._kern.
RULES: dict[str, tuple[str, set[str], set[str]]] = {
    "protocols": ("trionet.protocols", {"attrs"}, {"trionet.protocols.*"}),
    "trionet/_kern": (
        "trionet._kern",
        {"trio", "attrs", "structlog"},
        {"trionet._kern.*", "trionet._exceptions", "trionet._nursery"},
    ),
    "trionet/_net": (
        "trionet._net",
        {"trio", "attrs", "structlog"},
        {"trionet._net.*", "trionet._kern.*", "trionet._exceptions", "trionet.protocols.*"},
    ),
    "trionet/wires": (
        "trionet.wires",
        {"trio", "attrs", "structlog"},
        {"trionet.wires.*", "trionet.protocols.*", "trionet._exceptions", "trionet._nursery"},
    ),
    "trionet/testing": ("trionet.testing", THIRD_PARTY, PUBLIC | {"trionet.testing.*"}),
    "drivers": (
        "trionet.drivers",
        {"trio", "attrs", "structlog"},
        {"trionet", "trionet.lowlevel", "trionet.drivers.*"},
    ),
    "examples": ("examples", THIRD_PARTY, PUBLIC | {"trionet.drivers.*", "trionet.protocols.*"}),
    "benchmarks": (
        "benchmarks",
        THIRD_PARTY,
        PUBLIC | {"trionet.drivers.*", "trionet.protocols.*"},
    ),
}


def _imports(path: Path, package: str) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                if path.name != "__init__.py" or node.level > 1:
                    base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.append(module)
    return names


def _allowed(name: str, third_party: set[str], ours: set[str]) -> bool:
    top = name.split(".")[0]
    if top in STDLIB:
        return True
    if top == "trionet":
        for m in ours:
            if m.endswith(".*"):
                if name == m[:-2] or name.startswith(m[:-1]):
                    return True
            elif name == m:
                return True
        return False
    return top in third_party


def _cases() -> list[tuple[str, Path]]:
    cases = []
    for directory in RULES:
        for path in sorted((ROOT / directory).rglob("*.py")):
            cases.append((directory, path))
    return cases


@pytest.mark.parametrize(
    ("directory", "path"), _cases(), ids=lambda v: str(v.relative_to(ROOT)) if isinstance(v, Path) else v
)
def test_imports_follow_the_layout(directory: str, path: Path) -> None:
    package, third_party, ours = RULES[directory]
    sub = path.parent.relative_to(ROOT / directory).parts
    package = ".".join([package, *sub])
    # A benchmark is a script: it may import its directory's private helper
    # modules (benchmarks/_counting.py); an example may import another example
    # beside it (unmodified_app.py runs uppercase_app.py). Both follow the
    # same rule themselves.
    siblings: set[str] = set()
    if directory == "benchmarks":
        siblings = {p.stem for p in path.parent.glob("_*.py")}
    elif directory == "examples":
        siblings = {p.stem for p in path.parent.glob("*.py")} - {path.stem}
    bad = [
        n
        for n in _imports(path, package)
        if not _allowed(n, third_party, ours) and n.split(".")[0] not in siblings
    ]
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}, against DESIGN.md section 1"


def test_the_layout_checker_catches_a_bad_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import trio\nfrom trionet._kern import _host\nfrom ..wires import x\n")
    names = _imports(bad, "trionet.protocols")
    allowed = [_allowed(n, {"attrs"}, {"trionet.protocols.*"}) for n in names]
    assert names == ["trio", "trionet._kern", "trionet.wires"]
    assert allowed == [False, False, False]
    # "trionet" admits exactly trionet, not its private modules.
    assert _allowed("trionet", set(), {"trionet"})
    assert not _allowed("trionet._kern._host", set(), {"trionet"})


def test_every_public_name_has_exactly_one_home() -> None:
    homes: dict[str, list[str]] = {}
    for module in (trionet, trionet.lowlevel, trionet.testing, trionet.wires):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name} is in __all__ but missing"
            homes.setdefault(name, []).append(module.__name__)
    twice = {name: where for name, where in homes.items() if len(where) > 1}
    assert not twice


def test_public_classes_say_where_they_live() -> None:
    for module in (trionet, trionet.lowlevel, trionet.wires):
        for name in module.__all__:
            obj = getattr(module, name)
            if isinstance(obj, type):
                assert obj.__module__ == module.__name__, name


def test_drivers_and_protocols_install_under_trionet() -> None:
    import trionet.drivers
    import trionet.protocols

    assert Path(trionet.drivers.__file__).parent == ROOT / "drivers"
    assert Path(trionet.protocols.__file__).parent == ROOT / "protocols"
    assert trionet.protocols.__name__ == "trionet.protocols"
