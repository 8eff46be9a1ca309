"""`fwsetup doctor --fleet DIR`: the nodes' drivers, GPUs, Python and installed frameworks compared, the odd
ones out named (exit 1), agreement exit 0. The doctor-torch fleet is real `fwsetup doctor --json` output
(a torch 2.13.0 CPU venv on this machine), one node changed to torch 2.12.0."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fwsetup.cli import main
from fwsetup.ops.fleet import compare_nodes, read_nodes

FLEETS = Path(__file__).resolve().parents[2] / "fixtures" / "fleets"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, " ".join(err.split())


def test_framework_version_odd_one_out(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "doctor", "--fleet", str(FLEETS / "doctor-torch"), "--json")
    assert code == 1
    data = json.loads(out)
    (torch,) = [d for d in data["differences"] if d["what"] == "torch"]
    assert torch["majority"].startswith("2.13.0") and torch["majority_nodes"] == 2
    assert list(torch["odd"]) == ["node-c"] and torch["odd"]["node-c"].startswith("2.12.0")
    # Python 3.11.7 and 3.11.9 are the same minor version: not a difference.
    assert data["agree"]["python"] == "3.11"
    assert data["frameworks_unknown"] == []


def test_old_driver_odd_one_out(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "doctor", "--fleet", str(FLEETS / "old-driver"))
    assert code == 1
    text = " ".join(out.split())
    assert "nvidia driver: 580.65.06 on 3 nodes, but gpu-07: 525.60.13" in text
    assert "installed frameworks unknown" in text  # plain profiles record none


def test_agreeing_fleet_exits_0(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    for name in ("node-a", "node-b"):
        shutil.copy(FLEETS / "doctor-torch" / f"{name}.json", tmp_path / f"{name}.json")
    code, out, _ = run(capsys, "doctor", "--fleet", str(tmp_path), "--json")
    assert code == 0 and json.loads(out)["ok"] is True


def test_framework_missing_on_a_node(tmp_path: Path) -> None:
    for name in ("node-a", "node-b"):
        shutil.copy(FLEETS / "doctor-torch" / f"{name}.json", tmp_path / f"{name}.json")
    bare = json.loads((FLEETS / "doctor-torch" / "node-a.json").read_text())
    bare["frameworks"] = []
    (tmp_path / "node-z.json").write_text(json.dumps(bare))
    cmp = compare_nodes(read_nodes([tmp_path]))
    (torch,) = [d for d in cmp.differences if d.what == "torch"]
    assert torch.odd == {"node-z": None}


def test_bad_fleet_folder(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "doctor", "--fleet", str(tmp_path / "nope"))
    assert code == 2 and "no such folder" in err
    (tmp_path / "bad.json").write_text("{not json")
    code, _, err = run(capsys, "doctor", "--fleet", str(tmp_path))
    assert code == 2 and "bad.json" in err and "Traceback" not in err
