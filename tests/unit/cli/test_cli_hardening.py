"""Issue 9, items 6 and 10: what the command line answers to bad numbers and paths, to a closed stdout
and to Ctrl-C. Each test first reproduces the attack as the issue reported it.

- bad option values are exit 2 (bad input) with one message naming the option, never "unexpected ...";
- `fwsetup plan ... | head -1`: a reader that went away changes nothing, not even the exit code (0 or 3);
- Ctrl-C says what state the target is in; after the new environment was swapped in it is a success (0);
- `--python X.Y` that is not installed and cannot be fetched says so (exit 2 or 7, not 5).
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fwsetup import cli, staging
from fwsetup.backends.installer import find_uv
from fwsetup.cli import main, options
from fwsetup.errors import ProfileError
from fwsetup.profile import HostProfile, save
from fwsetup.ui import state

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
PROFILE = str(FIXTURES / "no-gpu.json")


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def assert_bad_input(code: int, err: str, option: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err and "unexpected" not in err, err
    assert option in err, err


# -- bad option values: exit 2 at parse time, through the one helper in cli.py ------------------------


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "0", "-1", "1e309", "soon", "", "1e12"])
@pytest.mark.parametrize("cmd", [["smoke", "pytorch"], ["doctor", "--json"]])
def test_timeout_must_be_seconds_above_zero(cmd: list[str], value: str) -> None:
    code, out, err = run(*cmd, "--timeout", value)
    assert_bad_input(code, err, "--timeout")
    assert out == ""


@pytest.mark.parametrize("value", ["0", "-5", "1.5", "many", "99999999999999"])
def test_steps_must_be_a_whole_number_from_1(value: str) -> None:
    code, _out, err = run("smoke", "pytorch", "--steps", value)
    assert_bad_input(code, err, "--steps")


@pytest.mark.parametrize("value", ["0", "-3", "two"])
def test_matrix_newest_must_be_1_or_more(value: str) -> None:
    code, _out, err = run("matrix", "--newest", value)
    assert_bad_input(code, err, "--newest")


def test_matrix_python_must_be_a_version() -> None:
    code, _out, err = run("matrix", "--python", "banana")
    assert_bad_input(code, err, "--python")
    code, out, _err = run("matrix", "--python", "python3.12", "--newest", "1")
    assert code == 0 and '"python": "3.12"' in out


def test_profile_output_a_folder_or_nowhere(tmp_path: Path) -> None:
    for value in (str(tmp_path), str(tmp_path / "missing" / "p.json"), "/proc/p.json", ""):
        code, out, err = run("profile", "--host-profile", PROFILE, "--output", value)
        assert_bad_input(code, err, "--output")
        assert out == ""
    assert list(tmp_path.iterdir()) == []
    code, _out, err = run("profile", "--host-profile", PROFILE, "--output", str(tmp_path / "p.json"))
    assert code == 0 and (tmp_path / "p.json").is_file(), err


def test_profile_output_that_cannot_be_written(tmp_path: Path) -> None:
    # Past the parse-time checks (a folder that vanished, a full disk): still one message, exit 2.

    with pytest.raises(ProfileError, match="cannot write"):
        save(HostProfile(), tmp_path / "gone" / "p.json")
    assert not (tmp_path / "gone").exists()


def test_matrix_out_dir_a_file(tmp_path: Path) -> None:
    f = tmp_path / "afile"
    f.write_text("keep")
    for value in (str(f), str(f / "sub"), "/proc/fwsetup-bake", ""):
        code, _out, err = run("matrix", "--format", "bake", "--out-dir", value)
        assert_bad_input(code, err, "--out-dir")
    assert f.read_text() == "keep"


def test_smoke_unknown_framework_is_bad_input() -> None:
    code, _out, err = run("smoke", "UNKNOWN")
    assert code == 2, err
    assert "no smoke test named 'UNKNOWN'" in err and "unexpected" not in err


def test_smoke_python_that_does_not_exist(tmp_path: Path) -> None:
    for value in (str(tmp_path / "nope" / "python"), str(tmp_path), "no-such-python-here"):
        code, _out, err = run("smoke", "pytorch", "--python", value)
        assert_bad_input(code, err, "--python")


@pytest.mark.parametrize(
    "cmd",
    [
        ["plan", "pytorch"],
        ["install", "pytorch", "--dry-run"],
        ["build", "pytorch", "--dry-run"],
        ["doctor"],
        ["profile"],
    ],
)
def test_empty_host_profile_is_not_this_machine(cmd: list[str]) -> None:
    # `--host-profile ''` used to be ignored: the plan was made for this machine instead, exit 0.
    code, out, err = run(*cmd, "--host-profile", "")
    assert_bad_input(code, err, "--host-profile")
    assert out == ""


def test_recipes_folder_empty_or_a_file(tmp_path: Path) -> None:
    f = tmp_path / "r.toml"
    f.write_text("")
    for value in ("", str(f)):
        code, _out, err = run("--recipes", value, "plan", "pytorch", "--host-profile", PROFILE)
        assert_bad_input(code, err, "--recipes")


def test_every_numeric_and_path_option_goes_through_the_helpers() -> None:
    """Every option whose metavar says it is a number or a path has a parser from fwsetup.cli.options: a new
    option that forgets it fails here."""
    import typer.main

    helpers = {options.seconds, options.count, options.input_file, options.input_dir, options.output_file,
               options.output_dir, options.interpreter, options.python_minor}  # fmt: skip
    numeric = {"N", "S", "SECONDS"}
    paths = {"FILE", "DIR"}
    exempt = {("install", "--env"), ("install", "--wheelhouse"), ("build", "--wheelhouse"),
              ("doctor", "--python"), ("recipes validate", "DIR")}  # fmt: skip
    group = typer.main.get_command(cli.app)
    seen = 0

    def walk(cmd: object, name: str) -> None:
        nonlocal seen
        for sub_name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, f"{name} {sub_name}".strip())
        for param in getattr(cmd, "params", []):
            metavar = getattr(param, "metavar", None) or ""
            opt = param.opts[0] if param.opts else param.name
            if metavar in numeric or metavar in paths:
                if (name, opt) in exempt or (name, metavar) in exempt:
                    continue
                seen += 1
                func = getattr(param.type, "func", None)
                assert func in helpers, f"fwsetup {name} {opt} {metavar}: no validating parser"

    walk(group, "")
    assert seen >= 10


# -- a closed stdout: `fwsetup plan ... | head -1` ----------------------------------------------------------


def _closed_stdout(*args: str) -> subprocess.CompletedProcess[str]:
    r, w = os.pipe()
    os.close(r)  # the reader is gone before the first byte: every write is EPIPE
    try:
        return subprocess.run([sys.executable, "-m", "fwsetup", *args], stdout=w, stderr=subprocess.PIPE,
                              text=True, timeout=120, check=False)  # fmt: skip
    finally:
        os.close(w)


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["plan", "pytorch", "--host-profile", PROFILE], 0),
        (["plan", "pytorch", "--host-profile", PROFILE, "--json"], 0),
        (["plan", "pytorch", "--gpu", "--host-profile", PROFILE], 3),
        (["plan", "pytorch", "--gpu", "--host-profile", PROFILE, "--json"], 3),
        (["recipes", "list"], 0),
        (["matrix"], 0),
        (["--help"], 0),
    ],
)
def test_a_closed_stdout_keeps_the_exit_code(args: list[str], code: int) -> None:
    p = _closed_stdout(*args)
    assert p.returncode == code, p.stderr
    assert "Traceback" not in p.stderr and "BrokenPipe" not in p.stderr and "unexpected" not in p.stderr


def test_head_1_in_a_shell_pipeline() -> None:
    cmd = f"{sys.executable} -m fwsetup plan pytorch --gpu --host-profile {PROFILE} | head -1; echo rc=${{PIPESTATUS[0]}}"
    p = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=120, check=False)
    assert p.stdout.strip().endswith("rc=3"), p.stdout + p.stderr
    assert "Traceback" not in p.stderr and "error" not in p.stderr


# -- Ctrl-C: say what state the target is in --------------------------------------------------------------


@pytest.fixture()
def interrupted_plan(monkeypatch: pytest.MonkeyPatch):
    """`fwsetup plan` with Ctrl-C pressed inside it; the test sets what the install path had recorded."""

    def arrange(install_target: Path | None, committed: Path | None) -> None:
        def detect(*_a: object, **_k: object) -> None:
            state.install_target, state.committed_target = install_target, committed
            raise KeyboardInterrupt

        monkeypatch.setattr("fwsetup.detect.get_host", detect)

    yield arrange
    state.install_target = state.committed_target = state.staging_inode = None


def test_interrupt_before_any_target(interrupted_plan) -> None:
    interrupted_plan(None, None)
    code, _out, err = run("plan", "pytorch")
    assert code == 130 and "interrupted" in err and "Traceback" not in err


def test_interrupt_before_the_swap_says_the_target_was_left(interrupted_plan, tmp_path: Path) -> None:
    interrupted_plan(tmp_path / "env", None)
    code, _out, err = run("plan", "pytorch")
    assert code == 130
    assert f"interrupted: {tmp_path / 'env'} was left as it was" in " ".join(err.split())


def test_interrupt_after_the_swap_is_a_success(interrupted_plan, tmp_path: Path) -> None:
    interrupted_plan(tmp_path / "env", tmp_path / "env")
    code, _out, err = run("plan", "pytorch")
    assert code == 0
    assert "interrupted after the new environment was swapped in: it is complete" in " ".join(err.split())


def test_state_does_not_leak_into_the_next_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    state.committed_target = tmp_path  # left over from an earlier command in the same process

    def detect(*_a: object, **_k: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("fwsetup.detect.get_host", detect)
    code, _out, err = run("plan", "pytorch")
    assert code == 130 and "complete" not in err
    state.committed_target = None


# A real install (uv, offline, a tiny wheel; see backends/test_venv_staged.py) with Ctrl-C pressed just before,
# and just after, the new environment is swapped in.


@pytest.fixture()
def fake_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    from support import make_wheel
    from venv_world import RECIPE, SMOKE

    if find_uv(dict(os.environ)) is None:
        pytest.skip("needs the uv binary")
    make_wheel(tmp_path / "wheels", "1.0")
    make_wheel(tmp_path / "wheels", "2.0")
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "fakefw.toml").write_text(RECIPE)
    (tmp_path / "smoke").mkdir()
    (tmp_path / "smoke" / "train_fakefw.py").write_text(SMOKE)
    monkeypatch.setenv("FWSETUP_SMOKE_DIR", str(tmp_path / "smoke"))
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("FWSETUP_CACHE_DIR", str(tmp_path / "cache"))
    for var in ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "VIRTUAL_ENV"):
        monkeypatch.delenv(var, raising=False)
    yield {"tmp": tmp_path, "target": tmp_path / "envs" / "fake"}
    state.install_target = state.committed_target = state.staging_inode = None


def _install(world: dict, version: str, *extra: str) -> tuple[int, str, str]:
    t = world["tmp"]
    return run("--recipes", str(t / "recipes"), "install", "fakefw", "--cpu", "--version", version,
               "--env", str(world["target"]), "--wheelhouse", str(t / "wheels"), "--offline", *extra)  # fmt: skip


def _version(target: Path) -> str:
    from venv_world import installed_version

    return installed_version(target)


@pytest.mark.parametrize("when", ["before", "after"])
def test_ctrl_c_around_the_swap(fake_world: dict, monkeypatch: pytest.MonkeyPatch, when: str) -> None:

    code, _out, err = _install(fake_world, "1.0")
    assert code == 0, err
    real = staging.swap_into_place

    def swap(a: Path, b: Path) -> None:
        if when == "after":
            real(a, b)
        raise KeyboardInterrupt

    monkeypatch.setattr(staging, "swap_into_place", swap)
    code, _out, err = _install(fake_world, "2.0")
    flat = " ".join(err.split())
    target = fake_world["target"]
    if when == "before":
        assert code == 130, err
        assert f"interrupted: {target} was left as it was" in flat
        assert _version(target) == "1.0"
    else:
        assert code == 0, err
        assert "interrupted after the new environment was swapped in: it is complete" in flat
        assert _version(target) == "2.0"
    assert "Traceback" not in err
    assert [p.name for p in target.parent.iterdir() if "fwsetup-staging" in p.name] == []


def test_python_that_is_not_here_and_cannot_be_fetched(
    fake_world: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `--python 3.9` with downloads off (or failing): exit 2 or 7 saying so, not 5 "install failed".
    monkeypatch.setenv("UV_PYTHON_DOWNLOADS", "never")
    monkeypatch.setenv("UV_PYTHON_INSTALL_DIR", str(fake_world["tmp"] / "no-pythons"))
    missing = next(v for v in ("3.9", "3.8", "3.16") if not _have_python(v))
    code, _out, err = _install(fake_world, "1.0", "--python", missing)
    assert code in (2, 7), err
    assert f"Python {missing}" in err and "unexpected" not in err
    assert not fake_world["target"].exists()


def _have_python(version: str) -> bool:
    import shutil

    return shutil.which(f"python{version}") is not None
