"""Running the kernel's own tools from a test, bounded: what the tests
against a Linux peer (``test_tcp_linux.py``, ``test_inet6_linux.py``) share."""

from __future__ import annotations

import subprocess

import pytest
import trio

#: Bound on every wait for the kernel or its programs.
PATIENCE = 30


async def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    """Run a command (bounded); with ``check``, a failure shows its stderr."""
    with trio.fail_after(PATIENCE):
        result = await trio.run_process(
            list(argv), capture_stdout=True, capture_stderr=True, check=False
        )
    if check and result.returncode != 0:
        err = result.stderr.decode().strip()
        pytest.fail(f"{' '.join(argv)} exited {result.returncode}: {err}")
    return result


def cleanup(*argv: str) -> None:
    """A teardown command: synchronous (it runs even in a cancelled scope), errors ignored."""
    subprocess.run(list(argv), capture_output=True, check=False, timeout=10)
