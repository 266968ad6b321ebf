"""The public surface does not move by accident: ``trionet.__all__``,
``trionet.lowlevel.__all__`` and the field names of every statistics class
(an attrs class named ``...Statistics`` in ``trionet``, ``protocols`` or
``drivers``), against ``tests/golden/public_names.json``.

A refactor keeps them as they are. A change that means to alter them
rewrites the file with ``python3 tests/test_public_names.py --update`` and
says so in its commit message.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs

GOLDEN = Path(__file__).parent / "golden" / "public_names.json"
PACKAGES = ("trionet", "protocols", "drivers")


def _modules() -> list[ModuleType]:
    modules = []
    for name in PACKAGES:
        package = importlib.import_module(name)
        modules.append(package)
        for info in pkgutil.walk_packages(package.__path__, name + "."):
            if not info.name.endswith("__main__"):
                modules.append(importlib.import_module(info.name))
    return modules


def public_names() -> dict[str, Any]:
    """What the golden file holds: the two ``__all__`` lists, sorted, and
    each statistics class's fields in order, by class name (a class may move
    between modules; its name and fields may not change)."""
    import trionet
    import trionet.lowlevel

    statistics: dict[str, list[str]] = {}
    for module in _modules():
        for name, value in vars(module).items():
            if (
                isinstance(value, type)
                and value.__module__ == module.__name__
                and name.endswith("Statistics")
                and attrs.has(value)
            ):
                statistics[name] = [field.name for field in attrs.fields(value)]
    return {
        "trionet.__all__": sorted(trionet.__all__),
        "trionet.lowlevel.__all__": sorted(trionet.lowlevel.__all__),
        "statistics": dict(sorted(statistics.items())),
    }


def test_the_public_names_and_statistics_fields_are_unchanged() -> None:
    expected = json.loads(GOLDEN.read_text())
    got = public_names()
    for key in expected:
        assert got[key] == expected[key], f"{key} changed; see this module's docstring"
    assert got.keys() == expected.keys()


if __name__ == "__main__":
    if sys.argv[1:] != ["--update"]:
        raise SystemExit("usage: python3 tests/test_public_names.py --update")
    sys.path[0] = str(Path(__file__).resolve().parents[1])  # not tests/: it has a protocols/ too
    GOLDEN.write_text(json.dumps(public_names(), indent=1) + "\n")
