"""scripts/sync-registry against the real PyPI (run with --run-network).

MXNet and Theano are retired (their last releases are from 2022 and 2020), so a fresh sync of them must
give exactly the committed data, whatever the day; and the committed files must still load."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fwsetup.registry import read_registry, registry_dir

pytestmark = [pytest.mark.network]

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "sync-registry"


def _data(path: Path) -> dict[str, object]:
    doc = json.loads(path.read_text())
    doc.pop("synced")
    return doc


def test_fresh_sync_of_retired_projects_equals_the_committed_data(tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(SCRIPT), "--only", "mxnet", "--only", "theano", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "2 files" in proc.stderr.splitlines()[-1]  # the figures line
    for name in ("mxnet", "theano"):
        fresh = read_registry(tmp_path / f"{name}.json")
        assert fresh.distributions()
        assert _data(tmp_path / f"{name}.json") == _data(registry_dir() / f"{name}.json"), name
    mx = read_registry(tmp_path / "mxnet.json")
    (w,) = [w for w in mx.wheels("mxnet", "1.9.1") if w.platform_tag == "manylinux2014_x86_64"]
    assert w.size and w.size > 10_000_000 and len(w.sha256 or "") == 64
