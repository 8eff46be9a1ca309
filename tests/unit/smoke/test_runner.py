"""Smoke reports: parsing the JSON line, failure reasons, the harness contract, the `fwsetup smoke` command.

The interpreters here are fake: small scripts that print what a smoke script would (or crash), so these
tests need no framework. The real scripts are run by the network tests after real installs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fwsetup import proc
from fwsetup.cli import app, main
from fwsetup.errors import SmokeError
from fwsetup.plan import SmokeSpec
from fwsetup.smoke import SCRIPTS, SMOKE_DIR, parse_report, script_path
from fwsetup.smoke.runner import run_smoke, smoke_argv


def _fake(tmp_path: Path, body: str) -> Path:
    """An 'interpreter': a script run with this Python that ignores the smoke script it is given."""
    p = tmp_path / "fake_python"
    p.write_text(f"#!{sys.executable}\nimport sys, json, os, time\n" + textwrap.dedent(body))
    p.chmod(0o755)
    return p


SPEC = SmokeSpec(script="pytorch")


def test_every_script_exists_and_is_standalone() -> None:
    for name, file in SCRIPTS.items():
        path = SMOKE_DIR / file
        assert path.is_file(), name
        text = path.read_text()
        assert "import fwsetup" not in text and "from fwsetup" not in text
        # a script must not shadow its framework: python puts the script's folder first on sys.path
        assert not (SMOKE_DIR / f"{name}.py").exists() or name == "pytorch"
    assert script_path("jax") == SMOKE_DIR / "train_jax.py"
    assert script_path("train_keras.py") == SMOKE_DIR / "train_keras.py"
    with pytest.raises(SmokeError, match="no smoke test named"):
        script_path("deeplearning4j")


def test_parse_report_takes_the_last_json_line() -> None:
    out = 'noise\n{"not": "a report"}\n{"ok": true, "framework": "x"}\nWARNING trailing\n'
    assert parse_report(out) == {"ok": True, "framework": "x"}
    assert parse_report("nothing here\n{broken json\n") is None


def test_ok_report(tmp_path: Path) -> None:
    exe = _fake(
        tmp_path,
        """
        print("framework chatter on stdout")
        print(json.dumps({"ok": True, "framework": "pytorch", "device": "cpu", "loss_before": 1.0,
                          "loss_after": 0.1, "argv": sys.argv[1:], "env": os.environ.get("MY_FLAG")}))
        """,
    )
    env = {k: v for k, v in os.environ.items() if k != "MY_FLAG"}
    report = run_smoke([exe], "pytorch", SmokeSpec(script="pytorch", env={"MY_FLAG": "1"}), steps=3, env=env)
    assert report["ok"] is True
    assert report["argv"][0].endswith("train_pytorch.py")
    assert report["argv"][1:] == ["--device", "cpu", "--steps", "3"]
    # the spec's variables are not injected: the environment under test carries them itself (envvars)
    assert report["env"] is None


def test_ok_false_gives_the_scripts_reason(tmp_path: Path) -> None:
    exe = _fake(
        tmp_path,
        """
        print(json.dumps({"ok": False, "framework": "pytorch", "error": "the loss did not fall (1 -> 2)"}))
        sys.exit(1)
        """,
    )
    log = tmp_path / "smoke.log"
    with pytest.raises(SmokeError) as info:
        run_smoke([exe], "pytorch", SPEC, log_file=log, where="in /envs/x")
    assert (
        str(info.value.message)
        == "the smoke test of pytorch failed in /envs/x: the loss did not fall (1 -> 2)"
    )
    assert info.value.exit_code == 6
    assert "the loss did not fall" in log.read_text()


def test_crash_without_report(tmp_path: Path) -> None:
    exe = _fake(
        tmp_path,
        'print("Traceback ...", file=sys.stderr)\nprint("ImportError: libfoo.so", file=sys.stderr)\nsys.exit(3)\n',
    )
    with pytest.raises(SmokeError, match=r"printed no report \(exit status 3\); ImportError: libfoo.so"):
        run_smoke([exe], "pytorch", SPEC)


def test_killed_by_sigill_names_cpu_features(tmp_path: Path) -> None:
    exe = _fake(tmp_path, "import signal\nos.kill(os.getpid(), signal.SIGILL)\n")
    with pytest.raises(SmokeError, match=r"SIGILL.*CPU"):
        run_smoke([exe], "pytorch", SPEC)


def test_timeout(tmp_path: Path) -> None:
    exe = _fake(tmp_path, "time.sleep(30)\n")
    with pytest.raises(SmokeError, match="did not finish in 1 s"):
        run_smoke([exe], "pytorch", SPEC, timeout=1)


def test_missing_interpreter(tmp_path: Path) -> None:
    with pytest.raises(SmokeError, match="could not start"):
        run_smoke([tmp_path / "nope"], "pytorch", SPEC)


def test_gpu_asked_but_report_says_cpu(tmp_path: Path) -> None:
    exe = _fake(tmp_path, 'print(json.dumps({"ok": True, "framework": "jax", "device": "cpu"}))\n')
    with pytest.raises(SmokeError, match="ran on cpu, not cuda"):
        run_smoke([exe], "jax", SmokeSpec(script="jax", device="cuda"))


def test_injected_runner_and_container_path() -> None:
    seen = {}

    def runner(argv, *, timeout, env=None, env_overrides=None):
        seen["argv"], seen["env"] = list(argv), dict(env_overrides or {})
        return proc.Result(
            argv=tuple(argv),
            returncode=0,
            stdout='{"ok": true, "framework": "jax", "device": "cuda:0"}',
            stderr="",
        )

    prefix = ["docker", "run", "--rm", "img", "/opt/venv/bin/python"]
    spec = SmokeSpec(script="jax", device="cuda", all_gpus=True, env={"XLA_FLAGS": "x"})
    report = run_smoke(prefix, "/fwsetup/smoke/train_jax.py", spec, runner=runner)
    assert report["device"] == "cuda:0"
    assert seen["argv"] == [*prefix, "/fwsetup/smoke/train_jax.py", "--device", "cuda", "--all-gpus"]
    assert seen["env"] == {}  # the spec's variables are the environment's to carry, never injected
    assert smoke_argv(["py"], "keras", SmokeSpec(script="keras"))[1] == str(SMOKE_DIR / "train_keras.py")


# -- the harness, with a framework made of plain Python --------------------------------------------------

_FAKE_FRAMEWORK = """
import os, sys
sys.path.insert(0, {smoke_dir!r})
import _harness as h

def train(opts, result):
    mode = os.environ.get("FAKE_MODE", "ok")
    result["version"] = "0.0"
    if mode == "fail":
        raise h.Fail("no GPU here")
    if mode == "boom":
        raise RuntimeError("kaboom")
    if mode == "import":
        import no_such_framework_xyz  # noqa
    w, lr = 5.0, 0.1
    before = w * w
    for _ in range(opts.steps):
        w -= lr * 2 * w
    after = w * w if mode != "rise" else before * 2
    if mode == "nan":
        after = float("nan")
    result.update(device=opts.device, devices=2 if opts.all_gpus and mode == "dp" else 1,
                  steps=opts.steps, loss_before=before, loss_after=after)

h.main("fake", train)
"""


@pytest.mark.parametrize(
    ("mode", "args", "ok", "error"),
    [
        ("ok", [], True, None),
        ("rise", [], False, "the loss did not fall"),
        ("nan", [], False, "the loss is not finite"),
        ("fail", [], False, "no GPU here"),
        ("boom", [], False, "RuntimeError: kaboom"),
        ("import", [], False, "cannot import no_such_framework_xyz"),
        ("ok", ["--all-gpus"], False, "--all-gpus ran on 1 device(s)"),
        ("dp", ["--all-gpus"], True, None),
    ],
)
def test_harness_contract(tmp_path: Path, mode: str, args: list[str], ok: bool, error: str | None) -> None:
    script = tmp_path / "train_fake.py"
    script.write_text(_FAKE_FRAMEWORK.format(smoke_dir=str(SMOKE_DIR)))
    cp = subprocess.run(
        [sys.executable, str(script), "--steps", "5", *args],
        capture_output=True,
        text=True,
        env={"FAKE_MODE": mode, "PATH": "/usr/bin:/bin"},
        check=False,
        timeout=60,
    )
    report = parse_report(cp.stdout)
    assert report is not None, cp.stdout + cp.stderr
    assert report["ok"] is ok and cp.returncode == (0 if ok else 1)
    assert report["framework"] == "fake" and "seconds_total" in report
    if error:
        assert error in report["error"]
    else:
        assert report["loss_after"] < report["loss_before"]


def test_smoke_command_exit_codes(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    good = _fake(
        tmp_path,
        'print(json.dumps({"ok": True, "framework": "jax", "version": "9", "device": "cpu", "steps": 3, "loss_before": 1, "loss_after": 0.5}))\n',
    )
    res = CliRunner().invoke(app, ["smoke", "jax", "--python", str(good), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.strip().splitlines()[-1])["ok"] is True

    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    bad = _fake(
        bad_dir,
        'print(json.dumps({"ok": False, "framework": "jax", "error": "JAX runs on cpu"}))\nsys.exit(1)\n',
    )

    assert main(["smoke", "jax", "--python", str(bad), "--gpu"]) == 6


# -- issue 21: FWSETUP_SMOKE_DIR adds scripts for your own recipes; it never replaces a shipped one ----------

FAKE_PASS = (
    "import json\n"
    'print(json.dumps({"ok": True, "framework": "pytorch", "version": "9", "device": "cpu", "steps": 3,'
    ' "loss_before": 1.0, "loss_after": 0.5}))\n'
)


def _python_without_torch(tmp_path: Path) -> Path:
    """A real interpreter (a venv of this Python) in which `import torch` fails."""
    env = tmp_path / "notorch"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    py = env / "bin" / "python"
    assert subprocess.run([str(py), "-c", "import torch"], capture_output=True).returncode != 0
    return py


def test_smoke_dir_cannot_replace_a_shipped_script(tmp_path: Path) -> None:
    """`FWSETUP_SMOKE_DIR` holding a train_pytorch.py (and a _harness.py) that prints a passing report: the
    smoke test of pytorch in a Python without torch still runs fwsetup's own script, and fails (exit 6)."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "train_pytorch.py").write_text(FAKE_PASS)
    (mine / "_harness.py").write_text("raise SystemExit('not fwsetup harness')\n")
    env = {"FWSETUP_SMOKE_DIR": str(mine)}
    assert script_path("pytorch", env) == SMOKE_DIR / "train_pytorch.py"
    assert script_path("train_pytorch.py", env) == SMOKE_DIR / "train_pytorch.py"
    py = _python_without_torch(tmp_path)
    res = subprocess.run(
        [sys.executable, "-m", "fwsetup", "smoke", "pytorch", "--python", str(py)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 6, res.stderr
    assert "ignored" in res.stderr and str(mine / "train_pytorch.py") in res.stderr


def test_smoke_dir_still_serves_your_own_recipes_script(tmp_path: Path) -> None:
    """A name fwsetup does not ship (a recipe of your own) is found in FWSETUP_SMOKE_DIR and runs."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "train_myfw.py").write_text(FAKE_PASS.replace('"pytorch"', '"myfw"'))
    env = {"FWSETUP_SMOKE_DIR": str(mine)}
    assert script_path("myfw", env) == mine / "train_myfw.py"
    res = subprocess.run(
        [sys.executable, "-m", "fwsetup", "smoke", "myfw", "--python", sys.executable, "--json"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.strip().splitlines()[-1])["framework"] == "myfw"
