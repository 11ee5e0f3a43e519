"""The lab's availability checks and the `netns check` command, on a machine without root or `ip`
(simulated), so the skip reasons are tested wherever the suite runs."""

from __future__ import annotations

import os
import shutil

import pytest
from click.testing import CliRunner

from tokenyard.chaos import netns
from tokenyard.cli import cli


def test_not_root_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert netns.unavailable_reason() == "network namespaces need root"
    assert netns.probe_capabilities() == {"netns": (False, "network namespaces need root")}


def test_missing_ip_command_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    reason = netns.unavailable_reason()
    assert reason is not None and "iproute2" in reason


def test_check_command_exits_1_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    result = CliRunner().invoke(cli, ["chaos", "netns", "check"])
    assert result.exit_code == 1
    assert "netns" in result.output and "need root" in result.output


def test_loss_percent_is_validated() -> None:
    lab = netns.NetnsLab()
    host = netns.Host("h", "nonexistent", lab)
    with pytest.raises(ValueError):
        lab.add_loss(host, 101)
