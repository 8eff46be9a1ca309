"""`fwsetup install caffe --method apt` on the command line: --dry-run prints the plan's apt-get lines and
changes nothing; a real install asks first and needs --yes without a terminal."""

from __future__ import annotations

import json

import pytest
from apt_world import FIXTURES, FakeApt, _own_cache
from typer.testing import CliRunner

from fwsetup.backends.apt import simulate
from fwsetup.cli import app, main

# `_own_cache` is an autouse fixture of the helper module: pytest finds it in this module's namespace
__all__ = ["_own_cache"]


def test_cli_dry_run_prints_the_commands_and_changes_nothing() -> None:
    res = CliRunner().invoke(
        app,
        [
            "install",
            "caffe",
            "--method",
            "apt",
            "--dry-run",
            "--host-profile",
            str(FIXTURES / "debian11.json"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "apt-get update -q" in res.stdout
    assert "apt-get install -y -q --no-install-recommends python3-caffe" in res.stdout
    res = CliRunner().invoke(
        app,
        ["plan", "caffe", "--method", "apt", "--json", "--host-profile", str(FIXTURES / "ubuntu2204.json")],
    )
    assert res.exit_code == 3
    assert json.loads(res.stdout)["status"] == "refused"


def test_cli_install_apt_asks_first_and_needs_yes_without_a_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 0)
    fake = FakeApt()
    monkeypatch.setattr("fwsetup.backends.apt.proc.run", fake)
    monkeypatch.setattr(simulate, "__kwdefaults__", {"runner": fake, "env": None})
    monkeypatch.setattr("sys.stdin.isatty", lambda: False, raising=False)
    args = ["install", "caffe", "--method", "apt", "--host-profile", str(FIXTURES / "debian11.json")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert (
        "apt-get install -y -q --no-install-recommends python3-caffe" in err
    )  # said before anything changes
    assert "libcaffe1" in err and "replacing 1:1.19.4-1" in err
    assert "confirm with --yes" in err
    assert fake.calls[0] == ["apt-get", "update", "-q"] and "--simulate" in fake.calls[1]
    assert len(fake.calls) == 2, "only apt's lists were refreshed and its simulation ran: nothing installed"
