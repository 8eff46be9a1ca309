"""Caffe plans for the apt route on the fixture machines, a faked apt-get (a runner), and a private recipe
cache (autouse): shared by plan/test_apt_route.py, backends/test_apt.py and cli/test_install_apt.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fwsetup import proc
from fwsetup.plan import Plan, Request, make_plan
from fwsetup.profile import HostProfile, load
from fwsetup.recipes.load import load_recipes

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FWSETUP_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


def profile(name: str) -> HostProfile:
    return load(FIXTURES / f"{name}.json")


def caffe(fixture: str, **request: Any) -> Plan:
    return make_plan(profile(fixture), load_recipes().get("caffe"), Request(framework="caffe", **request))


class FakeApt:
    """apt-get and python3 as a runner: records every argv, answers --simulate with `Inst` lines."""

    def __init__(self, *, fail: str | None = None) -> None:
        self.calls: list[list[str]] = []
        self.fail = fail

    def __call__(self, argv: Any, **kw: Any) -> proc.Result:
        argv = [str(a) for a in argv]
        self.calls.append(argv)
        if self.fail and self.fail in argv:
            return proc.Result(
                argv=tuple(argv),
                returncode=100,
                stdout="",
                stderr="E: Unable to locate package python3-caffe",
            )
        out = ""
        if "--simulate" in argv:
            out = (
                "NOTE: This is only a simulation!\n"
                "Inst libcaffe1 (1.0.0+git20180821.99bd997-8+b2 Debian:11.11/oldoldstable [amd64])\n"
                "Inst python3-numpy [1:1.19.4-1] (1:1.19.5-1 Debian:11.11/oldoldstable [amd64])\n"
                "Conf libcaffe1 (1.0.0+git20180821.99bd997-8+b2 Debian:11.11/oldoldstable [amd64])\n"
            )
        elif argv[0] == "/usr/bin/python3":
            report = {"ok": True, "framework": "caffe", "version": "1.0.0", "device": "cpu", "devices": 1,
                      "steps": 30, "loss_before": 0.44, "loss_after": 0.06}  # fmt: skip
            out = json.dumps(report) + "\n"
        return proc.Result(argv=tuple(argv), returncode=0, stdout=out, stderr="")
