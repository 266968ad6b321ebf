"""trionet.testing's skip reasons: a missing command is named with its Debian
package, and every reason is one a CI job can recognise."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from trionet.testing import command_unavailable, linux_peer_unavailable
from trionet.testing._linux import UNAVAILABLE


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An otherwise empty PATH; put fake commands in it with ``fake``."""
    monkeypatch.setenv("PATH", str(tmp_path))
    return tmp_path


def fake(bin_dir: Path, *names: str) -> None:
    for name in names:
        path = bin_dir / name
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)


@pytest.fixture
def linux_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """Linux, root and /dev/net/tun, whatever this machine has."""
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(os, "geteuid", lambda: 0, raising=False)
    real_exists = os.path.exists
    monkeypatch.setattr(os.path, "exists", lambda p: p == "/dev/net/tun" or real_exists(p))


@pytest.mark.parametrize(
    ("command", "package"),
    [
        ("ping", "iputils-ping"),
        ("tshark", "tshark"),
        ("tcpdump", "tcpdump"),
        ("ethtool", "ethtool"),
        ("curl", "curl"),
        ("ip", "iproute2"),
        ("bridge", "iproute2"),
        ("qemu-system-x86_64", "qemu-system-x86"),
        ("trionet-no-such-tool", "trionet-no-such-tool"),
    ],
)
def test_a_missing_command_is_named_with_its_debian_package(
    bin_dir: Path, command: str, package: str
) -> None:
    reason = command_unavailable(command)
    assert reason == f"needs the {command} command (Debian package {package})"
    assert UNAVAILABLE.match(reason)


def test_the_first_missing_command_is_named(bin_dir: Path) -> None:
    fake(bin_dir, "curl")
    assert command_unavailable("curl", "ping", "tshark") == (
        "needs the ping command (Debian package iputils-ping)"
    )


def test_no_reason_when_every_command_is_there(bin_dir: Path) -> None:
    fake(bin_dir, "ping", "tshark")
    assert command_unavailable("ping", "tshark") is None
    assert command_unavailable() is None


def test_a_linux_peer_needs_ip_before_the_commands_asked_for(bin_dir: Path, linux_root: None) -> None:
    assert linux_peer_unavailable("ping") == "needs the ip command (Debian package iproute2)"
    fake(bin_dir, "ip")
    assert linux_peer_unavailable("ping") == "needs the ping command (Debian package iputils-ping)"
    fake(bin_dir, "ping")
    assert linux_peer_unavailable("ping") is None


def test_every_missing_privilege_or_system_gives_a_recognisable_reason(
    monkeypatch: pytest.MonkeyPatch, bin_dir: Path
) -> None:
    fake(bin_dir, "ip")
    reasons = []
    monkeypatch.setattr(sys, "platform", "darwin")
    reasons.append(linux_peer_unavailable())
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(os, "geteuid", lambda: 1000, raising=False)
    reasons.append(linux_peer_unavailable())
    monkeypatch.setattr(os, "geteuid", lambda: 0, raising=False)
    monkeypatch.setattr(os.path, "exists", lambda p: False)
    reasons.append(linux_peer_unavailable())
    linux, root, tun = reasons
    assert linux is not None and linux.startswith("needs Linux")
    assert root is not None and root.startswith("needs root")
    assert tun is not None and tun.startswith("needs /dev/net/tun")
    assert all(UNAVAILABLE.match(r) for r in (linux, root, tun))


@pytest.mark.parametrize(
    "reason",
    [
        "needs hypothesis >= 7",
        "slow; run with --slow",
        "needs the internet",
        "needs root",  # no helper says it this way: not recognised
    ],
)
def test_other_skip_reasons_are_not_taken_for_a_missing_tool(reason: str) -> None:
    assert not UNAVAILABLE.match(reason)
