"""`fwsetup plan NAME --method docker --json` is the plan `fwsetup build NAME` builds: for every fixture machine
and every installable framework, the plan printed equals the io.fwsetup.plan label of the Dockerfile that
`build --dry-run` renders on the same HostProfile (a refusal on both sides, exit 3, is agreement too)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fwsetup.cli import app
from fwsetup.recipes.load import load_recipes

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
# No pip configuration of the user's, no buildx probe, no engine: the dry run only renders.
ENV = {
    "PIP_CONFIG_FILE": "/dev/null",
    "HOME": "/nonexistent",
    "FWSETUP_BUILDER": "classic",
    "DOCKER_HOST": "unix:///nonexistent/docker.sock",
}
REFUSED = 3


def _profiles() -> list[Path]:
    out = []
    for path in sorted(FIXTURES.glob("*.json")):
        try:
            doc = json.loads(path.read_text())
        except ValueError:
            continue
        if isinstance(doc, dict) and "schema_version" in doc and "os" in doc:  # a HostProfile
            out.append(path)
    return out


def _frameworks() -> list[str]:
    return sorted(r.name for r in load_recipes() if r.smoke and any(b.installable for b in r.builds))


PROFILES = _profiles()
FRAMEWORKS = _frameworks()
_LABEL_RE = re.compile(r'io\.fwsetup\.plan="((?:[^"\\]|\\.)*)"')


def _label_plan(dockerfile: str) -> dict[str, Any]:
    m = _LABEL_RE.search(dockerfile)
    assert m, "the Dockerfile has no io.fwsetup.plan label"
    return json.loads(re.sub(r"\\(.)", r"\1", m.group(1)))  # a Dockerfile double-quoted word, unquoted


def test_there_is_something_to_compare() -> None:
    assert len(PROFILES) >= 3 and len(FRAMEWORKS) >= 3


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.stem)
@pytest.mark.parametrize("name", FRAMEWORKS)
def test_plan_docker_is_the_plan_build_renders(name: str, profile: Path) -> None:

    runner = CliRunner()
    planned = runner.invoke(
        app, ["plan", name, "--method", "docker", "--json", "--host-profile", str(profile)], env=ENV
    )
    built = runner.invoke(app, ["build", name, "--dry-run", "--host-profile", str(profile)], env=ENV)
    assert planned.exit_code in (0, REFUSED), planned.output
    if planned.exit_code == REFUSED:
        assert built.exit_code == REFUSED, f"plan refuses, build does not:\n{built.output[-2000:]}"
        return
    assert built.exit_code == 0, f"plan says ok, build exits {built.exit_code}:\n{built.output[-2000:]}"
    plan = json.loads(planned.stdout)
    label = _label_plan(built.stdout)
    # all of the plan but its `data` (when the registry data was read): a label that changed with it would
    # rebuild an unchanged image (render.image_labels)
    assert "data" in plan and "data" not in label
    assert label == {k: v for k, v in plan.items() if k != "data"}
    assert plan["image"] is not None, "a docker plan names its base image"
    assert f"FROM {plan['image']['base']}\n" in built.stdout, "the image is built on the plan's base"
