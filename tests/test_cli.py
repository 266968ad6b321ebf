"""The ``trionet`` command."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog

from trionet._cli import main


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    # main() configures structlog for the process; put the defaults back.
    yield
    structlog.reset_defaults()


def test_kern_boots_sends_and_prints_the_views(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["kern", "--frames", "50", "--ncpus", "1"]) == 0
    out = capsys.readouterr().out
    assert "kern.intr_mpsafe: 1" in out
    assert "lo0: flags=8049<UP,LOOPBACK,RUNNING,MULTICAST> mtu 16384" in out
    assert "vnic0: flags=8843<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST> mtu 1500" in out
    assert "ithread 16" in out and "netisr 0" in out
    assert "irq16: vnic0" in out
    assert "50 frames each way" in out
    assert "protocol received 51 on host0, 50 on peer" in out
    (vnic_row,) = [line for line in out.splitlines() if line.startswith("vnic0 ")]
    assert vnic_row.split()[4:10] == ["50", "0", "0", "50", "0", "0"]


def test_kern_rejects_bad_arguments() -> None:
    with pytest.raises(SystemExit):
        main(["kern", "--frames", "-1"])
    with pytest.raises(SystemExit):
        main(["kern", "--ncpus", "0"])
