"""The README's promises: its Python examples run, and its commands are the ones CI runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
EXAMPLES = re.findall(r"```python\n(.*?)```", README, re.S)


@pytest.mark.parametrize("source", EXAMPLES, ids=[f"example{i}" for i in range(len(EXAMPLES))])
def test_readme_example_runs(source: str, tmp_path: Path) -> None:
    # In a scratch directory: examples may write files (a pcap, say).
    result = subprocess.run(
        [sys.executable, "-c", source], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 2


def test_ci_runs_the_readme_test_command() -> None:
    test_command = re.search(r"^(python3 -m pytest[^#\n]*?)\s*(#.*)?$", README, re.M)
    assert test_command is not None
    ci = (ROOT / ".ci" / "run").read_text()
    assert f"exec {test_command.group(1).strip()}" in ci
