"""The environment carries its own settings (issue 23): the plan's run-time variables are written into the
env (backends/envvars), so a plain ENV/bin/python in a clean environment and an activated bash shell see
them, and the smoke test sees only what the env itself sets (nothing injected from the plan).

Real uv, offline, on a tiny wheel made here (as backends/test_venv_staged.py); bash is the real one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from env_settings import CLEAN, VALUE, installed, needs_uv

from fwsetup.backends import envvars, transaction
from fwsetup.backends.base import InstallOptions
from fwsetup.backends.venv import VenvBackend
from fwsetup.backends.venv_paths import env_python
from fwsetup.errors import SmokeError, UsageError
from fwsetup.plan import Plan

# `installed` is a fixture of the helper module: pytest finds it here, in this module's namespace
__all__ = ["installed"]


@needs_uv
def test_plain_python_and_activated_bash_see_the_plans_settings(installed: tuple[Path, Plan, dict]) -> None:
    target, _plan, report = installed
    assert report["ok"] and report["variables_from_env"] == ["FAKEFW_FLAGS"]
    lock = json.loads((target / ".fwsetup" / "lock.json").read_text())
    assert lock["smoke"]["variables_from_env"] == ["FAKEFW_FLAGS"]
    show = "import os; print(os.environ.get('FAKEFW_FLAGS'))"

    plain = subprocess.run([str(env_python(target)), "-c", show], env=CLEAN, capture_output=True, text=True)
    assert plain.stdout.strip() == VALUE, plain.stderr
    # a value the user set explicitly wins
    mine = subprocess.run(
        [str(env_python(target)), "-c", show],
        env={**CLEAN, "FAKEFW_FLAGS": "mine"},
        capture_output=True,
        text=True,
    )
    assert mine.stdout.strip() == "mine"

    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash here to source bin/activate with")
    script = (
        f'source {target}/bin/activate && printf "%s\\n" "$FAKEFW_FLAGS" && python -c "{show}"'
        ' && deactivate && printf "after:%s\\n" "${FAKEFW_FLAGS-unset}"'
    )
    out = subprocess.run([bash, "-c", script], env=CLEAN, capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == [VALUE, VALUE, "after:unset"]
    # activation does not override the user's value, and deactivate leaves it alone
    out = subprocess.run(
        [bash, "-c", script],
        env={**CLEAN, "FAKEFW_FLAGS": "mine"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.splitlines() == ["mine", "mine", "after:mine"]


@needs_uv
def test_the_smoke_fails_when_the_env_lacks_the_setting(
    installed: tuple[Path, Plan, dict], tmp_path: Path
) -> None:
    target, plan, _report = installed
    assert envvars.read(target) == {"FAKEFW_FLAGS": VALUE}
    envvars.write(target, {})  # the env no longer carries it: the plan's value is not injected in its place
    assert envvars.read(target) == {}
    assert "_FWSETUP_SET_" not in (target / "bin" / "activate").read_text()
    opts = InstallOptions(target=target, env={k: v for k, v in os.environ.items() if k != "FAKEFW_FLAGS"})
    with pytest.raises(SmokeError, match="FAKEFW_FLAGS is None"):
        transaction.smoke(env_python(target), plan, opts, log=None, where="in the env")


def test_writing_twice_keeps_one_block_and_bad_input_is_refused(tmp_path: Path) -> None:
    prefix = tmp_path / "env"
    site = prefix / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    (prefix / "bin").mkdir()
    activate = prefix / "bin" / "activate"
    activate.write_text("deactivate () {\n    unset VIRTUAL_ENV\n}\nVIRTUAL_ENV=x\n")
    envvars.write(prefix, {"A": "1"})
    once = activate.read_text()
    assert envvars.write(prefix, {"A": "1"}) == [
        "lib/python3.11/site-packages/_fwsetup_env.py", "lib/python3.11/site-packages/_fwsetup_env.pth"
    ]  # fmt: skip
    assert activate.read_text() == once and once.count("_FWSETUP_SET_A=1") == 1
    envvars.write(prefix, {"B": "2"})
    assert "_FWSETUP_SET_A" not in activate.read_text() and envvars.read(prefix) == {"B": "2"}
    with pytest.raises(UsageError, match="not an environment variable name"):
        envvars.write(prefix, {"A; rm -rf /": "1"})
    with pytest.raises(UsageError, match="control character"):
        envvars.write(prefix, {"A": "1\nrm -rf /"})


def _fwsetup() -> str:
    exe = shutil.which("fwsetup", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("the fwsetup console script is not installed beside this python")
    return exe


@needs_uv
def test_fwsetup_run_gives_the_command_the_envs_settings_and_its_exit_status(
    installed: tuple[Path, Plan, dict],
) -> None:
    target, _plan, _report = installed
    fwsetup = _fwsetup()
    show = "import os, sys; print(os.environ['FAKEFW_FLAGS']); print(os.environ['VIRTUAL_ENV']); print(sys.prefix)"
    env = {**CLEAN, "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
    out = subprocess.run(
        [fwsetup, "run", str(target), "--", "python", "-c", show], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [VALUE, str(target), str(target)]
    # the command's own exit status, and a signal that ends it, are what fwsetup run gives back
    code = subprocess.run([fwsetup, "run", str(target), "python", "-c", "raise SystemExit(7)"], env=env)
    assert code.returncode == 7
    killed = subprocess.run([fwsetup, "run", str(target), "--", "sh", "-c", "kill -TERM $$"], env=env)
    assert killed.returncode == -15
    # bad input: one line and the documented codes
    missing = subprocess.run(
        [fwsetup, "run", str(target), "--", "no-such-command-here"], env=env, capture_output=True, text=True
    )
    assert missing.returncode == 127 and missing.stderr.startswith(
        "error: no-such-command-here: command not found"
    )
    nowhere = subprocess.run(
        [fwsetup, "run", str(target / "nope"), "--", "true"], env=env, capture_output=True, text=True
    )
    assert nowhere.returncode == 2 and "is not a Python environment" in nowhere.stderr
    assert "Traceback" not in missing.stderr + nowhere.stderr


def test_fwsetup_help_lists_run() -> None:
    out = subprocess.run(
        [_fwsetup(), "--help"], capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"}
    )
    assert out.returncode == 0 and " run " in out.stdout
    usage = subprocess.run([_fwsetup(), "run", "--help"], capture_output=True, text=True)
    assert usage.returncode == 0 and usage.stdout.startswith("usage: fwsetup run ENV [--] CMD")


@needs_uv
def test_a_repeat_install_restores_settings_the_env_lost(
    installed: tuple[Path, Plan, dict], tmp_path: Path
) -> None:
    """An env made before envs carried their settings (or whose settings file was removed) is not "already
    installed": the repeat install rebuilds it, and then it carries them."""
    target, plan, _report = installed
    envvars.write(target, {})
    opts = InstallOptions(
        target=target,
        env=dict(os.environ),
        wheelhouse=tmp_path / "wheels",
        offline=True,
        python=sys.executable,
    )
    again = VenvBackend().install(plan, opts)
    assert again.changed is True and envvars.read(target) == {"FAKEFW_FLAGS": VALUE}
    assert VenvBackend().install(plan, opts).changed is False  # and then a repeat is a no-op
