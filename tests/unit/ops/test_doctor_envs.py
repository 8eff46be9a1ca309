"""doctor and the environments fwsetup made (issue 23): each one the registry knows, and `--env PATH`, checked as a
user meets it (its framework imported by ENV/bin/python in a clean environment; its files against its lock), with
the exact repair command; `doctor --fix` runs it (rebuilt as locked in a staging folder, smoke-tested, swapped in)
after asking, or with --yes; an env deleted by hand is forgotten. Advice names only tools the env has.

Real installs through the real command line (uv, offline, a tiny wheel made here), as test_envs_registry.py.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from envs_world import fake, install, listed, run  # noqa: F401 - `fake` is a fixture

from fwsetup import envcheck, staging
from fwsetup.detect.environment import Framework, ImportResult, PythonEnv
from fwsetup.ops.doctor_findings import finding
from fwsetup.ops.doctor_frameworks import _import_cause

SITE = f"lib/python{sys.version_info[0]}.{sys.version_info[1]}/site-packages"


def doctor(*args: str) -> tuple[int, dict, str]:
    code, out, err = run("doctor", "--json", *args)
    return code, json.loads(out), err


def edit(path: Path, text: str) -> None:
    """Change a file of an env as an editor does (a new file in its place): the installer's cache, which the
    env's files are hard links into, keeps its copy."""
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(text)
    os.replace(tmp, path)


def made(report: dict) -> list[dict]:
    return [f for f in report["findings"] if f["id"].startswith("env.made.")]


@pytest.fixture()
def world(fake: dict, monkeypatch: pytest.MonkeyPatch) -> dict:  # noqa: F811
    # the repair command names the framework as the recipes know it: theirs, from FWSETUP_RECIPES
    monkeypatch.setenv("FWSETUP_RECIPES", str(fake["tmp"] / "recipes"))
    return fake


def test_a_good_env_imports_in_a_clean_shell_and_has_no_finding(world: dict) -> None:
    a = world["tmp"] / "a"
    assert install(world, a)[0] == 0
    _code, report, _err = doctor()
    (e,) = report["envs"]
    assert (e["path"], e["state"], e["source"], e["imported"], e["import_name"]) == (
        str(a),
        "ok",
        "registry",
        True,
        "fakefw",
    )
    assert e["smoke"]["status"] == "passed"
    assert made(report) == []


def test_a_corrupted_file_is_reported_with_the_exact_repair_and_fix_applies_it(world: dict) -> None:
    a = world["tmp"] / "a"
    assert install(world, a)[0] == 0
    module = a / SITE / "fakefw" / "__init__.py"
    good = module.read_text()
    edit(module, good + "raise SystemExit('corrupted')\n")  # written to since the install
    code, report, _err = doctor()
    assert code == 1
    (f,) = made(report)
    assert f["id"] == "env.made.0.files-changed" and f["severity"] == "error"
    assert "fakefw 1.0: 1 of" in f["detail"] and "fakefw/__init__.py" in f["detail"]
    repair = report["envs"][0]["repair"]
    # a venv is rebuilt from its own lock (h23env's fwsetup sync), with the wheelhouse it was made from
    assert repair == shlex.join(["fwsetup", "sync", str(a), "--wheelhouse", str(world["tmp"] / "wheels")])
    assert f"`{repair}`" in f["remedy"]
    # the command as shown repairs it: staged, smoke-tested, swapped in
    code, _out, err = run(*shlex.split(repair)[1:])
    assert code == 0, err
    assert module.read_text() == good
    assert made(doctor()[1]) == []
    # doctor --fix runs the same, once asked with --yes; nothing half-done is left beside it
    edit(module, good + "x = 2\n")
    inode = a.stat().st_ino
    code, report, err = doctor("--fix", "--yes")
    assert code == 0, err
    assert f"repairing {a}" in " ".join(err.split()) and "repaired" in err
    assert module.read_text() == good and a.stat().st_ino != inode  # a new environment swapped in
    assert made(report) == [] and report["envs"][0]["state"] == "ok"
    assert not [p for p in a.parent.iterdir() if "fwsetup-staging" in p.name or "fwsetup-old" in p.name]


def test_fix_asks_first_and_without_a_terminal_needs_yes(world: dict) -> None:
    a = world["tmp"] / "a"
    assert install(world, a)[0] == 0
    module = a / SITE / "fakefw" / "__init__.py"
    edit(module, module.read_text() + "x = 3\n")
    before = module.read_text()
    cp = subprocess.run([sys.executable, "-m", "fwsetup", "doctor", "--fix"], stdin=subprocess.DEVNULL,
                        capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert cp.returncode == 2, cp.stderr
    assert "confirm with --yes when there is no terminal to ask" in cp.stderr
    assert module.read_text() == before  # nothing changed


def test_an_env_deleted_by_hand_is_reported_and_fix_forgets_it(world: dict) -> None:
    a = world["tmp"] / "a"
    assert install(world, a)[0] == 0
    staging._rmtree(a)
    _code, report, _err = doctor()
    (f,) = made(report)
    assert (f["id"], f["severity"]) == ("env.made.0.missing", "warning")
    assert f"`fwsetup remove {a}`" in f["remedy"]
    _code, report, err = doctor("--fix", "--yes")
    assert "forgotten" in err
    assert report["envs"] == [] and made(report) == []
    assert listed() == []
    assert not a.exists()  # forgetting never makes or removes a folder


def test_doctor_env_path_checks_that_env_and_refuses_a_folder_fwsetup_did_not_make(world: dict) -> None:
    a = world["tmp"] / "a"
    assert install(world, a)[0] == 0
    other = world["tmp"] / "other"
    other.mkdir()
    (other / "mine.txt").write_text("keep")
    _code, report, _err = doctor("--env", str(a), "--env", str(other), "--env", str(world["tmp"] / "nowhere"))
    by = {e["path"]: e for e in report["envs"]}
    assert by[str(a)]["state"] == "ok" and by[str(a)]["source"] == "--env"  # one entry, though registered too
    assert by[str(other)]["state"] == "not-an-env"
    assert by[str(world["tmp"] / "nowhere")]["state"] == "not-an-env"  # not "deleted by hand": never made
    assert by[str(world["tmp"] / "nowhere")]["problem"] == "no such folder"
    f, _nowhere = made(report)
    assert f["severity"] == "error" and f"--env {other}: not an environment fwsetup made" == f["title"]
    assert envcheck.repairs(envcheck.check_envs([other], registry=False)) == []  # --fix never touches it
    assert (other / "mine.txt").read_text() == "keep"


def _plain_venv(where: Path, *, pip: bool) -> Path:
    venv.EnvBuilder(with_pip=False).create(where)
    site = next(where.glob("lib/python*/site-packages"))
    if pip:  # what the check looks for: pip's package in the env
        (site / "pip").mkdir()
        (site / "pip" / "__init__.py").write_text("")
    return site


def test_the_import_runs_in_a_clean_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A variable of the caller's shell (here the one the module needs) does not reach the check: it would
    hide a framework that imports only in the caller's shell."""
    env = tmp_path / "env"
    site = _plain_venv(env, pip=False)
    (site / "needsvar.py").write_text(
        "import os\nif 'NEEDSVAR_OK' not in os.environ:\n    raise ImportError('NEEDSVAR_OK is not set')\n"
    )
    monkeypatch.setenv("NEEDSVAR_OK", "1")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    err = envcheck.import_in_env(env, "needsvar", timeout=60)
    assert err == "ImportError: NEEDSVAR_OK is not set"
    assert envcheck.import_in_env(env, "json", timeout=60) is None
    clean = envcheck.clean_environ({"PATH": "/x", "HOME": "/h", "VIRTUAL_ENV": "/v", "KERAS_BACKEND": "jax",
                                    "FWSETUP_DATA_DIR": "/d", "LANG": "C.UTF-8"})  # fmt: skip
    assert clean == {"PATH": envcheck.CLEAN_PATH, "HOME": "/h", "LANG": "C.UTF-8"}


def test_advice_names_only_tools_the_env_has(tmp_path: Path) -> None:
    """Before: `doctor --deep` proposed `python -m pip list` in an env uv made, which has no pip."""
    without, with_pip = tmp_path / "nopip", tmp_path / "pip"
    _plain_venv(without, pip=False)
    _plain_venv(with_pip, pip=True)
    py = str(without / "bin" / "python")
    assert envcheck.list_command(py, str(without)) == f"uv pip list --python {py}"
    assert (
        envcheck.list_command(str(with_pip / "bin" / "python"), str(with_pip))
        == f"{with_pip}/bin/python -m pip list"
    )
    fw = Framework(
        name="jax", imported=ImportResult(ok=False, error="numpy.core.multiarray failed to import")
    )
    cause = _import_cause(fw, PythonEnv(executable=py, source="--python", prefix=str(without)))
    remedy = finding(
        "framework.import-failed", id="i", severity="error", framework="jax", version=None, error="", **cause
    ).remedy
    assert f"uv pip list --python {py}" in remedy and "-m pip" not in remedy
    assert os.path.exists(py)
