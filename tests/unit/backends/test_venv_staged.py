"""The venv backend end to end with real uv, offline, on a tiny wheel made here: the staging folder, the
atomic swap, the no-op, the lock, and what Ctrl-C, SIGKILL and failures leave behind.

No network: `uv pip ... --offline` installs from a wheelhouse in tmp_path, and the smoke test is a small
script that imports the wheel's module (it can be told to fail or to sleep, to give a kill a window).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from venv_world import RECIPE, SMOKE, installed_version, options_for, plan_for

from fwsetup import staging
from fwsetup.backends.base import InstallOptions
from fwsetup.backends.installer import Installer, find_uv
from fwsetup.backends.venv import VenvBackend
from fwsetup.errors import InstallError, SmokeError, UsageError
from fwsetup.plan import plan_to_json

pytestmark = pytest.mark.skipif(
    find_uv(dict(os.environ)) is None, reason="needs the uv binary (pip install uv)"
)


DRIVER = """
import json, sys
from pathlib import Path
from fwsetup.backends.base import InstallOptions
from fwsetup.backends.venv import VenvBackend
from fwsetup.plan import plan_from_json
plan = plan_from_json(Path(sys.argv[1]).read_text())
opts = InstallOptions(target=Path(sys.argv[2]), wheelhouse=Path(sys.argv[3]), offline=True, python=sys.argv[4])
try:
    r = VenvBackend().install(plan, opts)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(130)
print(json.dumps({"changed": r.changed, "message": r.message}), flush=True)
"""


def litter(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if "fwsetup-staging" in p.name or "fwsetup-old" in p.name)


def test_install_then_noop_then_upgrade(world: dict) -> None:
    target = world["parent"] / "fake"
    stages: list[str] = []
    r = VenvBackend().install(
        plan_for(world, "1.0"), options_for(world, target), lambda s, m: stages.append(s)
    )
    assert r.changed and "smoke test passed" in r.message
    assert installed_version(target) == "1.0"
    assert {"resolve", "download", "smoke", "swap"} <= set(stages)
    lock = json.loads((target / ".fwsetup" / "lock.json").read_text())
    (pkg,) = lock["packages"]
    assert pkg["name"] == "fakefw" and pkg["version"] == "1.0"
    assert (
        pkg["sha256"]
        == hashlib.sha256((world["wh"] / "fakefw-1.0-py3-none-any.whl").read_bytes()).hexdigest()
    )
    assert (target / ".fwsetup" / "install.log").is_file() and (target / ".fwsetup" / "pylock.toml").is_file()
    assert lock["smoke"]["ok"] is True
    # the venv does not name the staging folder anywhere it matters
    for p in [target / "pyvenv.cfg", *(target / "bin").iterdir()]:
        if p.is_file() and not p.is_symlink():
            assert b"fwsetup-staging" not in p.read_bytes(), p

    before = (
        target.stat().st_ino,
        target.stat().st_mtime_ns,
        (target / ".fwsetup" / "lock.json").stat().st_mtime_ns,
    )
    r2 = VenvBackend().install(plan_for(world, "1.0"), options_for(world, target))
    assert not r2.changed and r2.message.startswith("already installed: same plan")
    after = (
        target.stat().st_ino,
        target.stat().st_mtime_ns,
        (target / ".fwsetup" / "lock.json").stat().st_mtime_ns,
    )
    assert before == after

    r3 = VenvBackend().install(plan_for(world, "2.0"), options_for(world, target))
    assert r3.changed and installed_version(target) == "2.0"
    assert litter(world["parent"]) == []


def test_failed_smoke_leaves_the_old_environment(world: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    target = world["parent"] / "fake"
    VenvBackend().install(plan_for(world, "1.0"), options_for(world, target))
    ino = target.stat().st_ino
    monkeypatch.setenv("FAKE_SMOKE_FAIL", "1")
    with pytest.raises(SmokeError) as info:
        VenvBackend().install(
            plan_for(world, "2.0"),
            InstallOptions(
                target=target,
                env=dict(os.environ),
                wheelhouse=world["wh"],
                offline=True,
                python=sys.executable,
            ),
        )
    assert "the loss did not fall" in info.value.message
    assert "was left as it was" in (info.value.hint or "")
    assert target.stat().st_ino == ino and installed_version(target) == "1.0"
    assert litter(world["parent"]) == []
    logs = list((world["parent"] / ".fwsetup-logs").iterdir())
    assert len(logs) == 1 and "the loss did not fall" in logs[0].read_text()


def test_no_matching_distribution(world: dict) -> None:
    target = world["parent"] / "fake"
    VenvBackend().install(plan_for(world, "1.0"), options_for(world, target))
    with pytest.raises(InstallError) as info:
        VenvBackend().install(plan_for(world, "9.9"), options_for(world, target))
    assert info.value.message.startswith("no matching distribution")
    assert "fakefw" in info.value.message
    assert "last lines of the log" in (info.value.hint or "")
    assert installed_version(target) == "1.0" and litter(world["parent"]) == []


def test_refuses_to_replace_a_foreign_folder(world: dict) -> None:
    target = world["parent"] / "mine"
    target.mkdir(parents=True)
    (target / "thesis.tex").write_text("precious")
    with pytest.raises(UsageError, match="not an environment fwsetup made"):
        VenvBackend().install(plan_for(world, "1.0"), options_for(world, target))
    assert (target / "thesis.tex").read_text() == "precious"


def _interruptible() -> None:
    """The child gets Ctrl-C's default handling even when this run was started with SIGINT ignored (a
    background job of a non-interactive shell): the tests send SIGINT as a user's Ctrl-C would."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(world: dict, version: str, target: Path, **env: str) -> subprocess.Popen:
    plan_file = world["tmp"] / f"plan-{version}.json"
    plan_file.write_text(plan_to_json(plan_for(world, version)))
    driver = world["tmp"] / "driver.py"
    driver.write_text(DRIVER)
    return subprocess.Popen(
        [sys.executable, str(driver), str(plan_file), str(target), str(world["wh"]), sys.executable],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_interruptible,
    )


def _wait_for(path: Path, timeout: float = 120) -> None:
    t0 = time.monotonic()
    while not (path.exists() and path.read_text().strip()):  # created, then written: wait for its text
        assert time.monotonic() - t0 < timeout, f"{path} never appeared"
        time.sleep(0.05)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM])
def test_interrupted_install_leaves_the_old_environment(world: dict, sig: signal.Signals) -> None:
    target = world["parent"] / "fake"
    VenvBackend().install(plan_for(world, "1.0"), options_for(world, target))
    ino = target.stat().st_ino
    started = world["tmp"] / "smoke-started"
    p = _start(world, "2.0", target, FAKE_SMOKE_SLEEP="60", FAKE_SMOKE_STARTED=str(started))
    _wait_for(started)  # killed during the smoke test: the new environment is complete but not checked
    smoke_pid = int(started.read_text())
    p.send_signal(sig)
    out, err = p.communicate(timeout=60)
    if sig == signal.SIGKILL:
        assert p.returncode == -9
        assert len(litter(world["parent"])) == 1  # a SIGKILLed run cannot clean up...
    else:
        assert p.returncode == 130, out + err
        assert litter(world["parent"]) == []  # ...an interrupted one does
    t0 = time.monotonic()
    while _pid_alive(smoke_pid) and time.monotonic() - t0 < 10:
        time.sleep(0.05)
    assert not _pid_alive(smoke_pid), "the smoke test outlived fwsetup"
    assert target.stat().st_ino == ino and installed_version(target) == "1.0"
    # the next run cleans what the killed one left, and the same plan as before is still a no-op
    r = VenvBackend().install(plan_for(world, "1.0"), options_for(world, target))
    assert not r.changed
    assert litter(world["parent"]) == []


def test_two_installs_at_once_are_serialised(world: dict) -> None:
    target = world["parent"] / "fake"
    world["parent"].mkdir(parents=True, exist_ok=True)
    procs = [_start(world, "1.0", target, FAKE_SMOKE_SLEEP="1") for _ in range(2)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert sorted(r["changed"] for r in results) == [False, True]
    assert any(r["message"].startswith("already installed: same plan") for r in results)
    assert installed_version(target) == "1.0" and litter(world["parent"]) == []


def test_lock_held_elsewhere_times_out(world: dict) -> None:
    target = world["parent"] / "fake"
    with (
        staging.target_lock(target),
        pytest.raises(InstallError, match="still installing"),
        staging.target_lock(target, timeout=0.3),
    ):
        pass


def test_pip_fallback(world: dict) -> None:

    target = world["parent"] / "viapip"
    r = VenvBackend(installer=Installer("pip", None, "")).install(
        plan_for(world, "1.0"), options_for(world, target)
    )
    assert r.changed and installed_version(target) == "1.0"
    lock = json.loads((target / ".fwsetup" / "lock.json").read_text())
    assert lock["installer"].startswith("pip") and lock["packages"][0]["name"] == "fakefw"
    # pip writes absolute shebangs: they must name the final place, not the staging folder
    pip_script = target / "bin" / "pip"
    assert pip_script.read_text().splitlines()[0].startswith(f"#!{target}/bin/python")
    assert litter(world["parent"]) == []


# -- the whole command, with a recipe of our own (--recipes) and its smoke script (FWSETUP_SMOKE_DIR) ----


@pytest.fixture()
def cli(world: dict) -> dict:
    recipes = world["tmp"] / "recipes"
    recipes.mkdir()
    (recipes / "fakefw.toml").write_text(RECIPE)
    smoke_dir = world["tmp"] / "smoke"
    smoke_dir.mkdir()
    (smoke_dir / "train_fakefw.py").write_text(SMOKE)
    env = {
        **os.environ,
        "FWSETUP_SMOKE_DIR": str(smoke_dir),
        "FWSETUP_CACHE_DIR": str(world["tmp"] / "cache"),
        "PIP_CONFIG_FILE": os.devnull,
    }
    return {**world, "recipes": recipes, "env": env, "target": world["parent"] / "fake"}


def _cli(cli: dict, version: str, *extra: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fwsetup",
            "--recipes",
            str(cli["recipes"]),
            "install",
            "fakefw",
            "--cpu",
            "--version",
            version,
            "--env",
            str(cli["target"]),
            "--wheelhouse",
            str(cli["wh"]),
            "--offline",
            *extra,
        ],
        env={**cli["env"], **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_interruptible,
    )


def test_cli_install_noop_and_json(cli: dict) -> None:
    p = _cli(cli, "1.0")
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    flat = " ".join(err.split())
    assert "installed FakeFW 1.0 (cpu)" in flat and "smoke test passed" in flat
    assert installed_version(cli["target"]) == "1.0"
    p = _cli(cli, "1.0", "--json")
    out, err = p.communicate(timeout=300)
    doc = json.loads(out)
    assert p.returncode == 0 and doc["status"] == "unchanged" and doc["changed"] is False
    assert doc["message"].startswith("already installed: same plan")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_cli_interrupted(cli: dict, sig: signal.Signals) -> None:
    p = _cli(cli, "1.0")
    assert p.wait(timeout=300) == 0
    ino = cli["target"].stat().st_ino
    started = cli["tmp"] / "started"
    p = _cli(cli, "2.0", FAKE_SMOKE_SLEEP="60", FAKE_SMOKE_STARTED=str(started))
    _wait_for(started)
    p.send_signal(sig)
    _out, err = p.communicate(timeout=60)
    if sig == signal.SIGINT:
        assert p.returncode == 130 and "interrupted" in err
        assert litter(cli["parent"]) == []
    else:
        assert p.returncode == -9
    assert cli["target"].stat().st_ino == ino and installed_version(cli["target"]) == "1.0"
    p = _cli(cli, "1.0")  # the next run: cleans up, and the old plan is still in place
    _out, err = p.communicate(timeout=300)
    assert p.returncode == 0 and "already installed: same plan" in " ".join(err.split())
    assert litter(cli["parent"]) == []


# -- issue 21: a signal after the swap does not turn a complete install into a death by signal --------------

LATE_SIGNAL = """
import atexit, os, signal, sys
import fwsetup.cli as cli
import fwsetup.cli.install as ci
sig, when = getattr(signal, sys.argv[1]), sys.argv[2]
send = lambda: os.kill(os.getpid(), sig)
if when == "render":  # just after "✓ installed" was printed
    shown = ci._render_outcome
    ci._render_outcome = lambda outcome: (shown(outcome), send())
elif when == "return":  # after the command returned, before the process exits
    main = cli.main
    cli.main = lambda argv=None: (main(argv), send())[0]
else:  # while Python shuts down
    atexit.register(send)
sys.argv = ["fwsetup", *sys.argv[3:]]
from fwsetup.__main__ import run
run()
"""


@pytest.mark.parametrize(
    ("sig", "when"),
    [("SIGTERM", "render"), ("SIGINT", "return"), ("SIGTERM", "exit"), ("SIGHUP", "render")],
)
def test_cli_signal_after_installed_exits_0(cli: dict, sig: str, when: str) -> None:
    argv = [
        "--recipes", str(cli["recipes"]), "install", "fakefw", "--cpu", "--version", "1.0",
        "--env", str(cli["target"]), "--wheelhouse", str(cli["wh"]), "--offline",
    ]  # fmt: skip
    p = subprocess.run(
        [sys.executable, "-c", LATE_SIGNAL, sig, when, *argv],
        env=cli["env"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, (p.returncode, p.stderr)
    flat = " ".join(p.stderr.split())
    assert "installed FakeFW 1.0 (cpu)" in flat and "Traceback" not in p.stderr
    if when == "render":
        assert f"{sig} arrived after the new environment was swapped in: ignored, it is complete" in flat
    assert installed_version(cli["target"]) == "1.0" and litter(cli["parent"]) == []


# -- issue 21: --env on a mount point is refused before any work, not at the swap ------------------------------


def _mount(kind: str, target: Path, source: Path) -> None:
    """Mount a tmpfs (or bind `source`) on `target`; skip, saying why, where this machine does not allow it."""
    import shutil

    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a filesystem needs root and mount(8); this test runs as a user without them")
    argv = ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(target)]
    if kind == "bind":
        argv = ["mount", "--bind", str(source), str(target)]
    res = subprocess.run(argv, capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"mount is not permitted here (no CAP_SYS_ADMIN?): {res.stderr.strip()}")


@pytest.mark.parametrize("kind", ["tmpfs", "bind"])
def test_cli_env_on_a_mount_point_is_refused_up_front(cli: dict, kind: str) -> None:
    target = cli["target"]
    target.mkdir(parents=True)
    source = cli["tmp"] / "bind-source"
    source.mkdir()
    _mount(kind, target, source)
    try:
        p = _cli(cli, "1.0")
        _out, err = p.communicate(timeout=300)
        flat = " ".join(err.split())
        assert p.returncode == 2, err
        assert f"--env {target} is a mount point" in flat and "Traceback" not in err
        assert "creating the environment" not in flat  # refused before any work
        assert os.listdir(target) == [] and litter(cli["parent"]) == []
        # a folder inside the mount is a fine place for an environment
        inside = target / "env"
        p = _cli({**cli, "target": inside}, "1.0")
        _out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        assert installed_version(inside) == "1.0"
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False)
