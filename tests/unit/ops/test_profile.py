"""`fwsetup profile` detected here carries the fleet facts (ops/profile.py): the capture time in UTC, the launch
that captured it, the rendezvous interface and each framework environment's collective libraries; a profile
saved before these fields existed loads with them unknown."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import pytest
from fake_dists import dist, write

from fwsetup.ops.profile import capture_group, framework_pythons, host_profile
from fwsetup.profile import load

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def test_capture_group_is_the_slurm_step() -> None:
    assert capture_group({"SLURM_JOB_ID": "41", "SLURM_STEP_ID": "0"}) == "slurm:41.0"
    assert capture_group({"SLURM_JOB_ID": "41"}) is None  # inside sbatch, not one srun
    assert capture_group({}) is None


def test_detected_profile_records_time_group_interface_and_collectives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = tmp_path / "env"
    (env / "bin").mkdir(parents=True)
    (env / "bin" / "python").symlink_to(sys.executable)
    site = tmp_path / "site"
    dist(site, "torch", "2.5.1")
    write(site / "torch" / "__init__.py", "__version__ = '2.5.1'\nfrom . import version, distributed\n")
    write(site / "torch" / "version.py", "cuda = None\nhip = None\n")
    write(site / "torch" / "distributed" / "__init__.py",
          "def is_available():\n    return True\ndef is_gloo_available():\n    return True\n"
          "def is_mpi_available():\n    return False\n")  # fmt: skip
    monkeypatch.setenv("PYTHONPATH", str(site))
    environ = {"VIRTUAL_ENV": str(env), "FWSETUP_DATA_DIR": str(tmp_path / "data"), "MASTER_ADDR": "127.0.0.1",
               "SLURM_JOB_ID": "7", "SLURM_STEP_ID": "2"}  # fmt: skip
    before = dt.datetime.now(dt.timezone.utc)
    host = host_profile(None, environ)
    assert host.captured_at is not None and host.captured_at.endswith("Z")
    at = dt.datetime.fromisoformat(host.captured_at.replace("Z", "+00:00"))
    assert before - dt.timedelta(seconds=1) <= at <= dt.datetime.now(dt.timezone.utc)
    assert host.capture_group == "slurm:7.2"
    assert (host.network.via, host.network.target) == ("MASTER_ADDR", "127.0.0.1")
    if sys.platform.startswith("linux"):
        assert host.network.interface == "lo"
    assert host.collectives is not None
    (torch,) = host.collectives
    assert (torch.python, torch.framework, torch.build, torch.gloo) == (
        str(env / "bin" / "python"),
        "torch",
        "cpu",
        True,
    )


def test_environments_fwsetup_made_are_probed_once_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fwsetup import envs

    made = tmp_path / "made"
    (made / "bin").mkdir(parents=True)
    (made / "bin" / "python").symlink_to(sys.executable)
    gone = tmp_path / "gone"

    class Info:
        def __init__(self, path: Path, state: str) -> None:
            self.path, self.state = str(path), state

    monkeypatch.setattr(
        envs, "known", lambda environ, **kw: [Info(made, "ok"), Info(gone, "missing"), Info(made, "ok")]
    )
    assert framework_pythons({"VIRTUAL_ENV": str(made)}) == [str(made / "bin" / "python")]
    assert framework_pythons({}) == [sys.executable, str(made / "bin" / "python")]


def test_profile_saved_before_the_fleet_facts_loads_with_them_unknown() -> None:
    old = load(FIXTURES / "fleets" / "old-driver" / "gpu-01.json")
    assert old.captured_at is None and old.capture_group is None and old.collectives is None
    assert old.network.interface is None and old.network.interfaces is None
