"""--launcher slurm without a cluster: the sbatch script fwsetup writes (valid bash, every value quoted, the
smoke test carried inside it and runnable by Python), the CLI's refusals, and how each task's labelled lines
become the verdict. The real cluster runs it in tests/integration/slurm."""

from __future__ import annotations

import base64
import io
import json
import shlex
import subprocess
import sys
import zipfile
from types import SimpleNamespace

import pytest

from fwsetup.cli import main
from fwsetup.errors import SmokeError
from fwsetup.smoke import slurm


def _payload(text: str) -> bytes:
    line = next(ln for ln in text.splitlines() if ln.startswith("export FWSMOKE_PYZ="))
    return base64.b64decode(shlex.split(line.split("=", 1)[1])[0])


@pytest.mark.parametrize("framework", ["pytorch", "jax"])
def test_sbatch_script_is_bash_with_quoted_values(framework: str, tmp_path) -> None:
    python = "/opt/my env/bin/python'; rm -rf /"
    text = slurm.sbatch_script(framework, python, 3, port=29555, steps=7, rank_timeout=12)
    script = tmp_path / "s.sbatch"
    script.write_text(text)
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True, check=False).returncode == 0
    assert "#SBATCH --nodes=3" in text and "#SBATCH --ntasks-per-node=1" in text
    assert f"PYTHON={shlex.quote(python)}" in text and "PORT=29555" in text and "TIMEOUT=12" in text
    assert ("-m torch.distributed.run" in text) == (framework == "pytorch")
    assert "--rdzv-backend=c10d" in text or framework == "jax"
    # The smoke test inside it is a zip Python runs, with the framework's script and its helpers.
    names = zipfile.ZipFile(io.BytesIO(_payload(text))).namelist()
    assert sorted(names) == sorted(["_harness.py", "_dist.py", f"dist_{framework}.py", "__main__.py"])
    pyz = tmp_path / "smoke.pyz"
    pyz.write_bytes(_payload(text))
    res = subprocess.run(
        [sys.executable, "-I", str(pyz), "--help"], capture_output=True, text=True, check=False
    )
    assert res.returncode == 0 and "--launcher" in res.stdout, res.stderr
    # The same bytes every time (a script a user commits does not change without a reason).
    assert slurm.smoke_zip(framework) == slurm.smoke_zip(framework)


def test_other_frameworks_and_options_are_refused(monkeypatch, capsys: pytest.CaptureFixture[str]) -> None:
    def run(*args: str) -> tuple[int, str]:
        code = main(["smoke", *args])
        return code, " ".join(capsys.readouterr().err.split())

    code, err = run("mxnet", "--nodes", "2", "--launcher", "slurm")
    assert code == 2 and "runs pytorch, jax, tensorflow; mxnet has no multi-node smoke test" in err
    code, err = run("pytorch", "--launcher", "slurm")
    assert code == 2 and "--nodes N" in err
    code, err = run("pytorch", "--nodes", "2", "--launcher", "slurm", "--netns", "x")
    assert code == 2 and "the allocation says where each rank runs" in err
    code, err = run("pytorch", "--nodes", "2", "--launcher", "mpi")
    assert code == 2 and "give torchrun (pytorch), jax (jax) or slurm" in err
    monkeypatch.setenv("PATH", "/nonexistent")
    code, err = run("pytorch", "--nodes", "2", "--launcher", "slurm", "--python", sys.executable)
    assert code == 2 and "needs Slurm's srun" in err, err


def _report(node: str, addr: str, **kw: object) -> str:
    base = {"ok": True, "framework": "pytorch", "version": "2.13.0", "node": node, "addr_seen": addr, "world": 2,
            "rendezvous": "10.0.0.1:29500", "loss_before": 1.0, "loss_after": 0.5, "weights_sha256": "ab",
            "allreduce_seconds": 0.001, "steps": 20}  # fmt: skip
    return json.dumps({**base, **kw})


ADDRS = {"a": "10.0.0.1", "b": "10.0.0.2"}
HEAD = "fwsetup-nodes: a b\nfwsetup-rendezvous: 10.0.0.1:29500\n"


def test_verdict_reads_each_tasks_lines() -> None:
    out = HEAD + f"1: noise\n1: {_report('b', '10.0.0.2')}\n0: {_report('a', '10.0.0.1')}\n"
    res = SimpleNamespace(stdout=out, stderr="", returncode=0, error=None)
    report = slurm._slurm_verdict("pytorch", res, ADDRS, 29500, 3.0, 10.0)
    assert report["ok"] and report["nodes"] == 2 and [r["node"] for r in report["ranks"]] == ["a", "b"]


def test_verdict_names_the_node_that_died_before_the_one_it_took_down() -> None:
    reach = _report("b", "10.0.0.2", ok=False, phase="reach")  # it reached the rendezvous, then died
    err = _report("a", "10.0.0.1", ok=False, error="Connection closed by peer [10.0.0.2]:4000")
    res = SimpleNamespace(
        stdout=HEAD + f"1: {reach}\n0: {err}\n", stderr="1: killed\n", returncode=1, error=None
    )
    with pytest.raises(SmokeError) as exc:
        slurm._slurm_verdict("pytorch", res, ADDRS, 29500, 3.0, 10.0)
    msg = exc.value.message
    assert msg.index("node b (10.0.0.2): it ended without a report") < msg.index("node a (10.0.0.1)"), msg


def test_verdict_a_rank_on_another_node_is_astray() -> None:
    out = HEAD + f"0: {_report('a', '10.0.0.1')}\n1: {_report('b', '10.0.0.1')}\n"
    res = SimpleNamespace(stdout=out, stderr="", returncode=0, error=None)
    with pytest.raises(SmokeError, match=r"node b \(10.0.0.2\) did not run at its address"):
        slurm._slurm_verdict("pytorch", res, ADDRS, 29500, 3.0, 10.0)


def test_a_job_that_never_started_says_why() -> None:
    res = SimpleNamespace(
        stdout="", stderr="salloc: error: Invalid partition name specified", returncode=1, error=None
    )
    with pytest.raises(SmokeError, match="the job did not start"):
        slurm._slurm_verdict("pytorch", res, ADDRS, 29500, 3.0, 10.0)


def test_install_fleet_without_a_cluster_names_the_flag_the_user_typed(
    monkeypatch, capsys: pytest.CaptureFixture[str], tmp_path
) -> None:
    """`install --fleet slurm` used to say '--launcher slurm: …', a flag the user never typed."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("srun", "sbatch", "salloc", "scontrol", "sinfo"):  # Slurm's tools, but no cluster answers
        exe = bin_dir / tool
        exe.write_text(
            "#!/bin/sh\necho 'slurm_load_node error: Unable to contact slurm controller' >&2\nexit 1\n"
        )
        exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    code = main(["install", "pytorch", "--fleet", "slurm", "--nodes", "2", "--env", str(tmp_path / "env")])
    err = " ".join(capsys.readouterr().err.split())
    assert code != 0 and "--fleet slurm" in err, err
    assert "--launcher" not in err, err
    assert not (tmp_path / "env").exists()
