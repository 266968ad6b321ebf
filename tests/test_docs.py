"""The design notes' walk of the data path names code that exists.

Every ``file.py:Name`` or ``file.py:Class.method`` in backquotes in the
"The data path on one page" section of ``docs/design.md`` must be a
function, class or method defined in that file (read with ``ast``, not
imported), so a rename or a move that leaves the page stale fails here.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## The data path on one page"
REFERENCE = re.compile(r"`([\w/]+\.py):([\w.]+)`")


def _section() -> str:
    text = (ROOT / "docs" / "design.md").read_text()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    return text[start : end if end != -1 else len(text)]


def _defined(path: Path) -> set[str]:
    """Qualified names of the functions and classes a module defines, with
    the methods of its top-level classes (``Class.method``)."""
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names.add(node.name)
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    names.add(f"{node.name}.{item.name}")
    return names


def test_every_file_and_function_the_data_path_walk_names_exists() -> None:
    references = REFERENCE.findall(_section())
    assert len(references) >= 40, "the walk should name each hop's code"
    missing = []
    for file, name in sorted(set(references)):
        path = ROOT / file
        if not path.is_file() or name not in _defined(path):
            missing.append(f"{file}:{name}")
    assert not missing, f"docs/design.md names code that does not exist: {missing}"


def test_the_check_catches_a_stale_name(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("class A:\n    def f(self): pass\n\nasync def g(): pass\n")
    assert _defined(module) == {"A", "A.f", "g"}
