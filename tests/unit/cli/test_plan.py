"""`fwsetup plan` and `fwsetup recipes`: exit codes (0 ok, 2 usage/recipe error, 3 refused), --json purity
(stdout holds the JSON alone), and the messages people act on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fwsetup.cli import main
from fwsetup.plan import plan_from_json

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FWSETUP_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("FWSETUP_RECIPES", raising=False)  # (conftest restores the CLI's --recipes state)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, " ".join(err.split())  # messages on stderr may be wrapped to the terminal width


def fixture(name: str) -> str:
    return str(FIXTURES / f"{name}.json")


def test_plan_json_ok(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "plan", "pytorch", "--json", "--host-profile", fixture("datacenter-h100"))
    assert code == 0, err
    data = json.loads(out)  # stdout is the JSON and nothing else
    assert data["status"] == "ok"
    assert (data["framework"], data["variant"], data["accelerator"]) == ("pytorch", "cu130", "cuda")
    for key in ("version", "method", "python", "requirements", "index_urls", "reasons", "smoke"):
        assert key in data
    assert plan_from_json(out).variant == "cu130"  # the contract round-trips


def test_plan_refused_exits_3_with_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "plan", "pytorch", "--gpu", "--json", "--host-profile", fixture("no-gpu"))
    assert code == 3
    data = json.loads(out)
    assert data["status"] == "refused"
    assert data["reasons"] and data["suggestions"]


def test_plan_human_output(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "plan", "torch", "--host-profile", fixture("pascal-470"))
    assert code == 0
    assert "PyTorch 2.7.1" in out
    assert "torch==2.7.1" in out
    assert "fwsetup install pytorch" in out  # the command it implies
    assert "uv pip install" in out
    assert "525.60.13" in out  # the driver upgrade that would bring the newer release
    code, out, _ = run(
        capsys, "plan", "pytorch", "--gpu", "--version", "2.14", "--host-profile", fixture("pascal-470")
    )
    assert code == 3
    assert "refused" in out and "525.60.13" in out


def test_plan_options_reach_the_request(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "plan", "pytorch", "--gpu", "--all-gpus", "--version", "2.14", "--python", "3.11",
        "--json", "--host-profile", fixture("datacenter-h100"),
    )  # fmt: skip
    assert code == 0
    data = json.loads(out)
    assert (data["version"], data["python"], data["gpus"]) == ("2.14.1", "3.11", [0, 1])
    assert data["smoke"]["all_gpus"] is True
    code, out, _ = run(
        capsys, "plan", "caffe", "--method", "docker", "--json", "--host-profile", fixture("no-gpu")
    )
    assert code == 0 and json.loads(out)["method"] == "docker"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--gpu", "--cpu"], "--gpu and --cpu exclude each other"),
        (["--method", "pip"], "--method 'pip': expected one of venv, conda, docker"),
        (["--python", "three"], "--python 'three': expected a Python version"),
        (["--version", "~~2"], "--version '~~2': expected a version"),
        (["--cpu", "--all-gpus"], "--all-gpus asks for every GPU"),
    ],
)
def test_plan_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    code, out, err = run(capsys, "plan", "pytorch", *args, "--host-profile", fixture("no-gpu"))
    assert code == 2
    assert message in err
    assert out == ""
    assert "Traceback" not in err


def test_unknown_framework_suggests_the_close_name(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "plan", "pytroch", "--json", "--host-profile", fixture("no-gpu"))
    assert code == 2
    assert out == ""
    assert "unknown framework 'pytroch'" in err
    assert "Did you mean pytorch?" in err


def test_plan_with_a_missing_profile(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "plan", "pytorch", "--host-profile", str(tmp_path / "none.json"))
    assert code == 2
    assert "cannot read host profile" in err


def test_recipes_list(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "recipes", "list", "--json")
    assert code == 0
    rows = json.loads(out)
    names = [r["name"] for r in rows]
    assert {"pytorch", "tensorflow", "keras", "caffe", "amazon-ml"} <= set(names)
    torch = next(r for r in rows if r["name"] == "pytorch")
    for key in (
        "language",
        "platforms",
        "interfaces",
        "autograd",
        "pretrained",
        "cnn",
        "rnn",
        "multi_gpu",
        "status",
    ):
        assert torch[key], key
    assert next(r for r in rows if r["name"] == "amazon-ml")["installable"] is False
    code, out, _ = run(capsys, "recipes", "list")
    assert code == 0
    assert "PyTorch" in out and "TensorFlow" in out


def test_recipes_show(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "recipes", "show", "tf", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["name"] == "tensorflow" and data["builds"] and data["sources"]
    code, out, _ = run(capsys, "recipes", "show", "caffe")
    assert code == 0
    assert "never installed" in out and "caffe" in out
    code, _, err = run(capsys, "recipes", "show", "kras")
    assert code == 2 and "Did you mean keras?" in err


def test_recipes_validate(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, "recipes", "validate")
    assert code == 0
    assert out.strip().endswith("recipes OK")
    (tmp_path / "bad.toml").write_text(
        'name = "bad"\ntitle = "Bad"\n[[builds]]\nversion = "1"\nvariant = 3\n'
    )
    code, out, err = run(capsys, "recipes", "validate", str(tmp_path))
    assert code == 2
    assert f"{tmp_path / 'bad.toml'}: facts: missing: this key is required" in err
    assert "builds[0].variant: expected a string, got 3" in err
    assert out == ""


def test_recipes_folder_option(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "broken.toml").write_text("name = \n")
    code, _, err = run(
        capsys, "--recipes", str(tmp_path), "plan", "pytorch", "--host-profile", fixture("no-gpu")
    )
    assert code == 2
    assert "broken.toml, line 1" in err


def test_plan_json_in_a_fresh_process() -> None:
    # The way scripts use it: a new interpreter, stdout piped.
    env = {**os.environ, "FWSETUP_NO_CACHE": "1"}
    argv = [
        sys.executable,
        "-m",
        "fwsetup",
        "plan",
        "tensorflow",
        "--json",
        "--host-profile",
        fixture("no-avx"),
    ]
    cp = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert cp.returncode == 3, cp.stderr
    assert json.loads(cp.stdout)["status"] == "refused"


@pytest.mark.parametrize(
    ("name", "flags"), [("caffe2", []), ("jax", ["--cpu"]), ("keras", ["--backend", "jax"])]
)
def test_a_docker_plan_prints_the_build_command_and_it_runs(
    capsys: pytest.CaptureFixture[str], name: str, flags: list[str]
) -> None:
    """A Docker plan's command is `fwsetup build …` (it printed `fwsetup install … --method docker`, which exits 2);
    the printed command is run as printed (with --dry-run: the Dockerfile, no engine) and is accepted."""
    import shlex

    profile = ["--host-profile", fixture("this-machine-cpu")]
    code, out, err = run(capsys, "plan", name, *flags, "--method", "docker", *profile)
    assert code == 0, err
    lines = out.splitlines()
    command = lines[lines.index("install") + 1].strip()
    assert command.startswith(f"fwsetup build {name}"), command
    assert "--method" not in command, command
    argv = shlex.split(command)[1:]
    code, out, err = run(capsys, *argv, "--dry-run", *profile)
    assert code == 0, (command, err)
    assert out.startswith(("# syntax", "FROM", "#")), out[:200]
