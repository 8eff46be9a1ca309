"""The apt backend (`--method apt`): root only, apt's own simulation shown first, the plan's commands and
nothing else, then the smoke test on the distribution's python3. apt-get itself is faked here (a runner); the
image test (tests/integration/docker/test_images.py) installs python3-caffe from Debian 11's archive for
real."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from apt_world import FakeApt, _own_cache, caffe

from fwsetup.backends.apt import AptBackend, describe, require_root, simulate
from fwsetup.backends.base import InstallOptions
from fwsetup.errors import InstallError, UsageError

# `_own_cache` is an autouse fixture of the helper module: pytest finds it in this module's namespace
__all__ = ["_own_cache"]


def test_simulate_shows_what_apt_would_install_and_upgrade() -> None:
    plan = caffe("debian11", method="apt")
    fake = FakeApt()
    changes = simulate(plan, runner=fake)
    assert fake.calls == [
        ["apt-get", "--simulate", "install", "-y", "-q", "--no-install-recommends", "python3-caffe"]
    ]
    assert [(c.package, c.version, c.replaces) for c in changes] == [
        ("libcaffe1", "1.0.0+git20180821.99bd997-8+b2", None),
        ("python3-numpy", "1:1.19.5-1", "1:1.19.4-1"),
    ]


def test_simulate_names_the_component_when_apt_cannot_find_the_package() -> None:
    plan = caffe("ubuntu2004", method="apt")
    with pytest.raises(InstallError, match="cannot install python3-caffe-cpu") as exc:
        simulate(plan, runner=FakeApt(fail="--simulate"))
    assert "'universe' component" in str(exc.value.hint)


def test_install_runs_the_plans_commands_in_order_then_the_smoke_test(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 0)
    plan = caffe("debian11", method="apt")
    fake = FakeApt()
    result = AptBackend(runner=fake).install(
        plan, InstallOptions(target=Path("/usr"), env={"PATH": "/usr/bin"})
    )
    assert fake.calls[:2] == plan.apt.commands  # type: ignore[union-attr]
    assert fake.calls[2][0] == "/usr/bin/python3" and fake.calls[2][1].endswith("train_caffe.py")
    assert result.changed and result.smoke is not None and result.smoke["ok"] is True


def test_install_is_root_only_and_a_failed_apt_is_an_install_error(monkeypatch: pytest.MonkeyPatch) -> None:
    plan = caffe("debian11", method="apt")
    with pytest.raises(UsageError, match="needs root"):
        require_root(1000)
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    fake = FakeApt()
    with pytest.raises(UsageError, match="needs root"):
        AptBackend(runner=fake).install(plan, InstallOptions(target=Path("/usr")))
    assert fake.calls == [], "nothing runs before the root check"
    monkeypatch.setattr("os.geteuid", lambda: 0)
    with pytest.raises(InstallError, match="apt-get install") as exc:
        AptBackend(runner=FakeApt(fail="install")).install(plan, InstallOptions(target=Path("/usr")))
    assert exc.value.exit_code == 5


def test_a_plan_from_a_file_runs_only_apt_get() -> None:
    plan = caffe("debian11", method="apt")
    assert plan.apt is not None
    evil = msgspec.structs.replace(
        plan, apt=msgspec.structs.replace(plan.apt, commands=[["sh", "-c", "reboot"]])
    )
    with pytest.raises(UsageError, match="not an apt-get command"):
        describe(evil)
