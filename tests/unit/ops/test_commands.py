"""What `fwsetup plan` says a plan amounts to is what install and build run: the commands are rendered by the
backend that runs them (fwsetup.ops.commands.plan_commands -> Backend.command_lines), and the test runs the
printed `fwsetup install/build` command with --dry-run and finds every printed line in what it shows."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from fwsetup.backends.docker.backend import prepare_context
from fwsetup.backends.docker.render import ImageOptions
from fwsetup.cli import main
from fwsetup.ops.commands import plan_commands
from fwsetup.plan import build_request
from fwsetup.plan.container import linux_profile, plan_image
from fwsetup.profile import load as load_profile
from fwsetup.recipes.load import load_recipes

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
PROFILE = str(FIXTURES / "this-machine-cpu.json")


@pytest.fixture(autouse=True)
def _own_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FWSETUP_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("FWSETUP_DATA_DIR", str(tmp_path_factory.mktemp("data")))
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.delenv("FWSETUP_RECIPES", raising=False)


def _printed(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[str, list[str]]:
    """`fwsetup plan …`: the command under "install" and the lines under "which amounts to"."""
    code = main(["plan", *args, "--host-profile", PROFILE])
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = out.splitlines()
    at = lines.index("install")
    command = lines[at + 1].strip()
    assert lines[at + 2].strip().startswith("which amounts to"), lines[at + 2]
    steps = []
    for line in lines[at + 3 :]:
        if not line.startswith("  "):
            break
        steps.append(line[2:])
    return command, steps


# PyPI's frameworks (install --dry-run asks the plan's own index, PyTorch's, which unit tests do not reach)
@pytest.mark.parametrize(("name", "flags"), [("jax", ["--cpu"]), ("tensorflow", ["--cpu"])])
def test_the_venv_commands_plan_prints_are_what_install_runs(
    capsys: pytest.CaptureFixture[str], name: str, flags: list[str]
) -> None:
    """The uv commands (not `pip install`), the smoke test and the environment folder: the printed install
    command, run with --dry-run, shows exactly the lines plan printed."""
    command, steps = _printed(capsys, name, *flags)
    assert command.startswith(f"fwsetup install {name}"), command
    assert any(" venv " in s for s in steps) and any(" pip install " in s for s in steps), steps
    assert not any(s.startswith("pip install") for s in steps)
    code = main([*shlex.split(command)[1:], "--dry-run", "--host-profile", PROFILE])
    out, err = capsys.readouterr()
    assert code == 0, err
    shown = [line for line in out.splitlines() if line.strip()]
    assert [line for line in shown if line in steps] == steps, (steps, shown)


@pytest.mark.parametrize(("name", "flags"), [("jax", ["--cpu"]), ("pytorch", ["--cpu"]), ("caffe2", [])])
def test_the_docker_steps_plan_prints_are_the_dockerfile_build_runs(
    capsys: pytest.CaptureFixture[str], name: str, flags: list[str]
) -> None:
    """The FROM and RUN steps printed (the plan's own base, not "a Python base image"; `uv pip sync
    --require-hashes`, not `pip install`) are the lines of the Dockerfile `fwsetup build --dry-run` prints."""
    command, steps = _printed(capsys, name, *flags, "--method", "docker")
    assert command.startswith(f"fwsetup build {name}"), command
    assert steps[0].startswith("FROM ") and "a Python base image" not in "\n".join(steps)
    assert any("pip sync" in s and "--require-hashes" in s for s in steps), steps
    code = main([*shlex.split(command)[1:], "--dry-run", "--host-profile", PROFILE])
    out, err = capsys.readouterr()
    assert code == 0, err
    dockerfile = out.splitlines()
    assert [line for line in dockerfile if line in steps] == steps


@pytest.mark.usefixtures("fake_image_lock")
def test_the_docker_steps_are_those_of_the_context_the_engine_builds(tmp_path: Path) -> None:
    """The Dockerfile written into the build context (what the engine is given) has the same RUN steps."""
    host = linux_profile(load_profile(Path(PROFILE)))
    plan, _ = plan_image(load_recipes().get("jax"), host, build_request("jax", cpu=True, method="docker"))
    env = {"PIP_CONFIG_FILE": "/dev/null", "HOME": "/nonexistent", "FWSETUP_BUILDER": "classic"}
    steps = plan_commands(plan, env)
    ctx = prepare_context(plan, ImageOptions(env=env), tmp_path / "ctx", tmp_path / "secrets")
    built = (ctx.path / "Dockerfile").read_text().splitlines()
    assert steps and [line for line in built if line in steps] == steps
