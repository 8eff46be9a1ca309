"""Issue 10: the install transaction written once (backends/transaction.py), its lock.json schema (old venv and
conda lock files still recognised), the one subprocess module (fwsetup.proc) and SmokeReport, judged the same
way on every path (venv, conda, container), the device check included."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest
from venv_world import options_for, plan_for

from fwsetup import env_ownership, envmeta, proc, staging
from fwsetup.backends import transaction
from fwsetup.backends.base import InstallOptions
from fwsetup.backends.conda import CondaBackend
from fwsetup.backends.docker.backend import DockerBackend
from fwsetup.backends.engine import RunResult
from fwsetup.backends.installer import find_uv
from fwsetup.backends.venv import VenvBackend
from fwsetup.errors import SmokeError
from fwsetup.plan import Plan, SmokeSpec
from fwsetup.smoke.runner import SmokeReport, check_result

DIGEST = "sha256:" + "0" * 64


def test_old_lock_files_are_still_read_but_only_a_seal_proves_the_folder(tmp_path: Path) -> None:
    """lock.json of version 1 is still read; but a lock file alone (which a repository can hold as a copy)
    no longer proves that fwsetup made the folder (issue 21): made.json, written at the swap, does."""
    venv_v1 = {
        "lock_version": 1,
        "written_by": "fwsetup",
        "plan_digest": DIGEST,
        "framework": "x",
        "packages": [],
    }
    conda_v1 = {**venv_v1, "method": "conda", "pip_packages": [{"name": "a", "version": "1"}]}
    for name, body in (("v", venv_v1), ("c", conda_v1)):
        (tmp_path / name / ".fwsetup").mkdir(parents=True)
        (tmp_path / name / ".fwsetup" / "lock.json").write_text(json.dumps(body))
        assert "made.json" in (env_ownership.foreign_reason(tmp_path / name) or "")  # not proven: kept
        env_ownership.seal(tmp_path / name, tmp_path / name)
        assert env_ownership.foreign_reason(tmp_path / name) is None  # may be replaced
    venv_lock, conda_lock = transaction.read_lock(tmp_path / "v"), transaction.read_lock(tmp_path / "c")
    assert venv_lock is not None and venv_lock["method"] == "venv"
    assert conda_lock is not None and conda_lock["method"] == "conda"
    assert transaction.distributions(conda_lock) == [{"name": "a", "version": "1"}]
    (tmp_path / "v" / ".fwsetup" / "lock.json").write_text(json.dumps({**venv_v1, "lock_version": 9}))
    assert (
        transaction.read_lock(tmp_path / "v") is None
        and env_ownership.foreign_reason(tmp_path / "v") is not None
    )


def test_dry_run_changes_nothing_in_both_backends(tmp_path: Path) -> None:
    plan = Plan(status="ok", framework="pytorch", version="2.13.0", variant="cpu", accelerator="cpu", python="3.11",
                requirements=["torch==2.13.0"], smoke=SmokeSpec(script="pytorch"))  # fmt: skip
    for backend in (VenvBackend(), CondaBackend()):
        target = tmp_path / backend.name
        r = backend.install(
            plan, InstallOptions(target=target, env={"PATH": os.environ["PATH"]}, dry_run=True)
        )
        assert not r.changed and r.message.strip() and not target.exists()
        assert not staging.lock_path(target).exists()


@pytest.mark.skipif(find_uv(dict(os.environ)) is None, reason="needs the uv binary")
def test_venv_lock_is_the_one_schema(world: dict) -> None:
    target = world["parent"] / "fake"
    VenvBackend().install(plan_for(world, "1.0"), options_for(world, target))
    lock = json.loads((target / ".fwsetup" / "lock.json").read_text())
    assert lock["lock_version"] == envmeta.LOCK_FILE_VERSION and lock["method"] == "venv"
    for key in ("plan_digest", "framework", "version", "variant", "python", "installer", "created", "plan",
                "packages", "pip_packages", "smoke", "timings_s"):  # fmt: skip
        assert key in lock, key


def _result(report: dict, rc: int = 0) -> proc.Result:
    return proc.Result(argv=("python",), returncode=rc, stdout=json.dumps(report) + "\n", stderr="")


def test_smoke_report_keeps_the_scripts_own_keys() -> None:
    raw = {"ok": True, "framework": "pytorch", "version": "2.13.0", "device": "cuda:0", "devices": 1, "steps": 30,
           "loss_before": 2, "loss_after": 0.5, "seconds": 0.1, "cuda_build": "12.8"}  # fmt: skip
    report = check_result(_result(raw), device="cuda", framework="pytorch")
    assert isinstance(report, SmokeReport) and report.loss_before == 2.0 and report.on_accelerator()
    assert report.to_dict() == raw
    with pytest.raises(SmokeError, match="malformed"):
        check_result(_result({**raw, "steps": "many"}), device="cpu", framework="pytorch")


def test_a_gpu_run_that_ran_on_the_cpu_fails_on_every_path() -> None:
    cpu = {"ok": True, "framework": "pytorch", "device": "cpu", "loss_before": 1.0, "loss_after": 0.5}
    with pytest.raises(SmokeError, match="ran on cpu, not cuda"):  # venv, conda, --python: the same runner
        check_result(_result(cpu), device="cuda", framework="pytorch", where="in /envs/x")
    # a container (build and `smoke --image`): DockerBackend.smoke judges with the same function
    plan = Plan(status="ok", framework="pytorch", version="2.13.0", variant="cpu", accelerator="cpu", python="3.11",
                requirements=["torch==2.13.0"], smoke=SmokeSpec(script="pytorch"))  # fmt: skip

    class Engine:
        def run(self, spec: object) -> RunResult:
            return RunResult(exit_code=0, stdout=json.dumps(cpu) + "\n", stderr="", seconds=1.0)

    backend = DockerBackend(Engine())  # type: ignore[arg-type]  # only run() is called
    with pytest.raises(SmokeError, match="ran on cpu, not cuda"):
        backend.smoke(plan, "img:1", "one")
    report, _ = backend.smoke(plan, "img:1", "none")
    assert report["device"] == "cpu"


def test_children_die_with_fwsetup(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    inner = f"import os, time; open({str(pidfile)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    code = f"import sys; from fwsetup import proc; proc.run([sys.executable, '-c', {inner!r}], timeout=120)"
    parent = proc.subprocess.Popen([sys.executable, "-c", code])
    deadline = time.monotonic() + 20
    while not (pidfile.exists() and pidfile.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    child = int(pidfile.read_text())
    parent.kill()  # SIGKILL: no clean-up runs in the parent
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    pytest.fail("the child outlived fwsetup")


def test_open_lines_kills_a_child_left_early() -> None:
    with proc.open_lines(
        [sys.executable, "-c", "import time\nprint('a', flush=True)\ntime.sleep(60)"]
    ) as child:
        assert next(child.lines) == "a\n"
    assert child.wait() != 0  # killed, and reaped
