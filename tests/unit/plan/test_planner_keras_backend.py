"""Keras 3's backend (issue 23): `--backend jax|torch|tensorflow` picks the build, the plan carries it (plan.backend,
the env's KERAS_BACKEND, the smoke spec), the smoke test fails unless the framework trained on it, and a backend
the recipe does not offer is one clear message (exit 2).

Source: https://keras.io/getting_started/ (the backends; KERAS_BACKEND is read before import; default TensorFlow).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fwsetup import proc
from fwsetup.backends.conda_env import conda_env_for
from fwsetup.backends.docker.render import smoke_command
from fwsetup.cli.render import smoke_summary
from fwsetup.errors import SmokeError, UsageError
from fwsetup.plan import Plan, Request, build_request, make_plan, request_flags
from fwsetup.profile import HostProfile, load
from fwsetup.recipes.load import load_recipes, read_toml
from fwsetup.recipes.validate import parse_recipe
from fwsetup.smoke.runner import check_result, run_smoke

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
SMOKE_DIR = Path(__file__).resolve().parents[3] / "src" / "fwsetup" / "smoke"
BACKENDS = {"jax": "jax", "torch": "torch", "tensorflow": "tensorflow-cpu"}


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FWSETUP_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


def profile(name: str) -> HostProfile:
    return load(FIXTURES / f"{name}.json")


def plan(fixture: str, framework: str = "keras", **request: Any) -> Plan:
    return make_plan(profile(fixture), load_recipes().get(framework), Request(framework=framework, **request))


@pytest.mark.parametrize("method", ["venv", "conda", "docker"])
@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_the_plan_carries_the_backend_asked_for(backend: str, method: str) -> None:
    p = plan("no-gpu", backend=backend, method=method, want="cpu")
    assert (p.status, p.variant, p.backend) == ("ok", BACKENDS[backend], backend)
    # the env carries it (venv/conda: envvars and conda-meta/state; image: ENV) and the smoke checks it
    assert p.env == {"KERAS_BACKEND": backend}
    assert p.smoke is not None and p.smoke.backend == backend
    assert any(f"Backend {backend} (--backend)" in r for r in p.reasons)
    assert {"kind": "backend", "fields": {"backend": backend, "asked": True,
            "others": [b for b in ["tensorflow", "jax", "torch"] if b != backend],
            "variable": "KERAS_BACKEND"}} in p.reason_codes  # fmt: skip
    assert all(r.variant in [v for b, v in BACKENDS.items() if b == backend] for r in p.rejected)
    if method == "conda":
        assert conda_env_for(p, {}, name="k").variables == {
            "KERAS_BACKEND": backend
        }  # written to conda-meta/state
    if method == "docker":
        cmd = smoke_command(p, "train_keras.py")
        assert cmd[cmd.index("--backend") + 1] == backend  # the image's smoke (and default command)


def test_the_default_backend_is_the_recipes_first_and_the_plan_says_so() -> None:
    p = plan("no-gpu")
    assert (p.backend, p.variant) == ("tensorflow", "tensorflow-cpu")
    assert p.smoke is not None and p.smoke.backend == "tensorflow"
    assert any("(the default; --backend jax or torch for another)" in r for r in p.reasons)


def test_a_gpu_machine_gets_the_gpu_build_of_the_backend_asked_for() -> None:
    p = plan("datacenter-h100", backend="jax")
    assert (p.status, p.accelerator, p.backend) == ("ok", "cuda", "jax")
    assert p.variant is not None and p.variant.startswith("jax-cuda")
    q = plan("datacenter-h100", backend="torch")
    assert (q.status, q.accelerator, q.backend, q.variant) == ("ok", "cuda", "torch", "torch-cu130")


def test_a_backend_with_no_build_here_is_refused_and_the_advice_keeps_it() -> None:
    # TensorFlow's wheels need AVX; --backend tensorflow does not fall back to another backend.
    p = plan("no-avx", backend="tensorflow")
    assert p.status == "refused"
    assert "avx" in " ".join(p.reasons).lower()
    r = build_request("keras", backend="torch", cpu=True)
    assert "--backend torch" in request_flags(r)


@pytest.mark.parametrize(
    ("framework", "backend", "expected"),
    [
        (
            "keras",
            "mxnet",
            "--backend mxnet: Keras runs on tensorflow, jax, torch (default tensorflow), not mxnet.",
        ),
        ("pytorch", "jax", "--backend jax: PyTorch has no backend to choose (it runs on its own)."),
    ],
)
def test_a_backend_the_recipe_does_not_offer_is_a_usage_error(
    framework: str, backend: str, expected: str
) -> None:
    with pytest.raises(UsageError) as err:
        plan("no-gpu", framework, backend=backend)
    assert err.value.message == expected


def test_cli_refuses_an_unknown_backend_in_one_line_exit_2(tmp_path: Path) -> None:
    env = {**os.environ, "FWSETUP_CACHE_DIR": str(tmp_path)}
    for cmd in (
        ["plan", "keras"],
        ["install", "keras", "--env", str(tmp_path / "k")],
        ["build", "keras", "--dry-run"],
    ):
        cp = subprocess.run([sys.executable, "-m", "fwsetup", *cmd, "--backend", "Theano", "--host-profile",
                             str(FIXTURES / "no-gpu.json")], capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
        assert cp.returncode == 2, (cmd, cp.stderr)
        assert "--backend theano: Keras runs on tensorflow, jax, torch" in cp.stderr
        assert "Traceback" not in cp.stderr
    assert not (tmp_path / "k").exists()
    cp = subprocess.run([sys.executable, "-m", "fwsetup", "plan", "keras", "--backend", "torch", "--cpu", "--json",
                         "--host-profile", str(FIXTURES / "no-gpu.json")], capture_output=True, text=True, env=env,
                        timeout=120)  # fmt: skip
    assert cp.returncode == 0, cp.stderr
    assert '"backend": "torch"' in cp.stdout


def test_a_recipe_naming_a_backend_in_some_builds_only_is_invalid(tmp_path: Path) -> None:
    raw = read_toml(Path(load_recipes().get("keras").path))
    raw["builds"][1].pop("backend")
    recipe, problems = parse_recipe(raw, path="keras.toml")
    assert recipe is None
    assert any("builds[1].backend" in p and "expected the build's backend" in p for p in problems), problems


def test_every_keras_build_sets_keras_backend_to_its_backend() -> None:
    for b in load_recipes().get("keras").builds:
        assert b.backend and b.env.get("KERAS_BACKEND") == b.backend, b.variant


# -- the smoke test trains on the plan's backend ----------------------------------------------------------

FAKE = """import os, sys
sys.path.insert(0, {smoke_dir!r})
import _harness as h

def train(opts, result):
    result.update(version="3", backend=os.environ.get("FAKE_BACKEND", "tensorflow"), device="cpu", devices=1,
                  steps=opts.steps, loss_before=1.0, loss_after=0.5, seconds=0.0)

h.main("keras", train)
"""


def _fake_script(tmp_path: Path) -> Path:
    script = tmp_path / "train_keras.py"
    script.write_text(FAKE.format(smoke_dir=str(SMOKE_DIR)))
    return script


def test_the_smoke_fails_when_the_env_runs_another_backend(tmp_path: Path) -> None:
    p = plan("no-gpu", backend="jax", want="cpu")
    assert p.smoke is not None
    script = _fake_script(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "FAKE_BACKEND"}
    with pytest.raises(SmokeError) as err:
        run_smoke([sys.executable], script, p.smoke, env={**env, "FAKE_BACKEND": "tensorflow"})
    assert (
        "keras ran on the tensorflow backend, not jax: the environment does not select it"
        in err.value.message
    )
    report = run_smoke([sys.executable], script, p.smoke, env={**env, "FAKE_BACKEND": "jax"})
    assert report["ok"] and report["backend"] == "jax"
    assert "on cpu (jax backend)" in smoke_summary(report)


def test_the_runner_checks_the_backend_of_an_old_script_too() -> None:
    line = '{"ok": true, "framework": "keras", "device": "cpu", "backend": "torch", "loss_before": 1, "loss_after": 0}'
    res = proc.Result(argv=("python",), returncode=0, stdout=line + "\n", stderr="")
    with pytest.raises(SmokeError) as err:
        check_result(res, device="cpu", framework="keras", backend="jax")
    assert "ran on the torch backend, not jax" in err.value.message
    assert check_result(res, device="cpu", framework="keras", backend="torch").extra["backend"] == "torch"
    assert check_result(res, device="cpu", framework="keras").ok  # no backend asked: not judged
