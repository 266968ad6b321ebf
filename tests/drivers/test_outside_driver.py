"""Acceptance: a driver written outside the project, with only the public
API, attaches, passes check_driver and sees the serializer in every entry
point."""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from trionet.testing import check_driver

TOYNIC = Path(__file__).parent / "outside" / "toynic.py"


def load_toynic() -> ModuleType:
    spec = importlib.util.spec_from_file_location("toynic", TOYNIC)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_toynic_imports_only_the_public_api() -> None:
    tree = ast.parse(TOYNIC.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported.update(a.name for a in node.names)
    outside_stdlib = {m for m in imported if m and m.split(".")[0] not in sys.stdlib_module_names}
    assert outside_stdlib == {"trionet", "trionet.lowlevel"}


async def test_toynic_passes_check_driver_serialized_everywhere() -> None:
    toynic = load_toynic()
    drivers = []

    def make(endpoint):  # type: ignore[no-untyped-def]
        drivers.append(toynic.ToyNic(endpoint))
        return drivers[-1]

    report = await check_driver(make)
    (driver,) = drivers
    names = {name for name, _ in driver.seen}
    assert names == {"init", "stop", "start", "intr", "ioctl"}
    assert all(serialized for _, serialized in driver.seen)
    assert "every entry point ran serialized" in report.passed
    assert "detach waits for the handler in flight" in report.passed
    assert [check for check, _ in report.skipped] == ["OACTIVE stops start until TX completion"]
