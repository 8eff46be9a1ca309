"""README's GitHub Actions workflow validates against GitHub's workflow schema (check-jsonschema's vendored
copy), and `fwsetup matrix --format github` fits the strategy.matrix it feeds: an `include` list of objects
whose keys are every `matrix.X` the workflow reads."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
CHECK = shutil.which("check-jsonschema") or str(Path(sys.executable).with_name("check-jsonschema"))


def _readme_workflow() -> str:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    flows = [b for b in blocks if "jobs:" in b and ("on:" in b or "\non:" in b)]
    assert flows, "no GitHub Actions workflow (a yaml block with on: and jobs:) in README.md"
    return flows[0]


@pytest.mark.skipif(
    not Path(CHECK).exists(), reason="check-jsonschema not installed: pip install -e '.[test]'"
)
def test_readme_workflow_matches_githubs_schema(tmp_path: Path) -> None:
    flow = tmp_path / "images.yml"
    flow.write_text(_readme_workflow())
    cp = subprocess.run(
        [CHECK, "--builtin-schema", "vendor.github-workflows", str(flow)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert cp.returncode == 0, cp.stdout + cp.stderr


def test_github_matrix_output_fits_the_workflows_strategy_matrix() -> None:
    import yaml

    flow = yaml.safe_load(_readme_workflow())
    cp = subprocess.run(
        [sys.executable, "-m", "fwsetup", "matrix", "--format", "github"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert cp.returncode == 0, cp.stderr
    assert "\n" not in cp.stdout.strip(), "one line, for $GITHUB_OUTPUT"
    matrix = json.loads(cp.stdout)
    # strategy.matrix: a mapping; `include` a non-empty list of flat objects (GitHub's schema), at most 256 jobs.
    assert isinstance(matrix, dict) and set(matrix) == {"include"}
    include = matrix["include"]
    assert isinstance(include, list) and 0 < len(include) <= 256
    for entry in include:
        assert isinstance(entry, dict) and entry
        assert all(isinstance(v, (str, int, float, bool)) or v is None for v in entry.values()), entry
    used = set(re.findall(r"(?<![\w.])matrix\.([A-Za-z_][A-Za-z0-9_-]*)", _readme_workflow()))
    assert used, "the workflow reads no matrix.X"
    for entry in include:
        assert used <= set(entry), f"matrix.{sorted(used - set(entry))} not in {entry}"
    # The job that uses it reads the matrix as fromJSON of the output: the expression is there.
    jobs = flow["jobs"]
    strategies = [j.get("strategy", {}).get("matrix") for j in jobs.values() if isinstance(j, dict)]
    assert any(isinstance(s, str) and "fromJSON(" in s for s in strategies), strategies
