"""--launcher slurm for TensorFlow without a cluster: the sbatch script (its rank: TF_CONFIG from Slurm in the
rank, a worker that never outlives its task), the version probe that accepts tensorflow or tensorflow-cpu,
and the verdict over the workers' report lines. The real cluster runs it in tests/integration/slurm."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from fwsetup.errors import SmokeError
from fwsetup.smoke import slurm


def _payload(text: str) -> bytes:
    line = next(ln for ln in text.splitlines() if ln.startswith("export FWSMOKE_PYZ="))
    return base64.b64decode(shlex.split(line.split("=", 1)[1])[0])


def test_sbatch_script_for_tensorflow(tmp_path: Path) -> None:
    text = slurm.sbatch_script(
        "tensorflow", "/opt/tf env/bin/python", 2, port=29555, steps=5, rank_timeout=12
    )
    script = tmp_path / "tf.sbatch"
    script.write_text(text)
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True, check=False).returncode == 0
    assert "#SBATCH --nodes=2" in text and "PORT=29555" in text and "MultiWorkerMirroredStrategy" in text
    assert "torch.distributed.run" not in text and '--master-port "$port"' in text
    names = zipfile.ZipFile(io.BytesIO(_payload(text))).namelist()
    assert sorted(names) == sorted(["_harness.py", "_dist.py", "dist_tensorflow.py", "__main__.py"])
    pyz = tmp_path / "smoke.pyz"
    pyz.write_bytes(_payload(text))
    res = subprocess.run(
        [sys.executable, "-I", str(pyz), "--help"], capture_output=True, text=True, check=False, timeout=60
    )
    assert res.returncode == 0 and "--master-port" in res.stdout, res.stderr


def _rank(tmp_path: Path, python: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TMPDIR": str(tmp_path / "tmp"), "FWSMOKE_PYZ": base64.b64encode(b"zip").decode()}
    (tmp_path / "tmp").mkdir()
    argv = ["bash", "-c", slurm.LAUNCH["tensorflow"].rank, "fwsetup-rank", str(python), "10.0.0.1", "29500",
            "15", "--steps", "3"]  # fmt: skip
    return subprocess.Popen(argv, env=env, start_new_session=True)


def test_the_worker_never_outlives_its_task(tmp_path: Path) -> None:
    """TensorFlow catches SIGTERM (its preemption notifier) and, blocked in a collective, never acts on it:
    when Slurm stops the task (SIGTERM to the task's bash), the worker is killed, and the task's temporary
    folder (the smoke test, autograph's modules) is removed."""
    pidfile = tmp_path / "pid"
    python = tmp_path / "python"
    python.write_text(
        "#!/bin/bash\n"
        "trap '' TERM\n"  # deaf to SIGTERM, as a TensorFlow worker is
        f'echo "$$ $TMPDIR $*" >{pidfile}\n'
        "while :; do sleep 0.1; done\n"
    )
    python.chmod(0o755)
    task = _rank(tmp_path, python)
    try:
        deadline = time.monotonic() + 30
        while not (pidfile.exists() and pidfile.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.05)
        pid, tmpdir, *args = pidfile.read_text().split()
        assert Path(tmpdir).parent == tmp_path / "tmp" and (Path(tmpdir) / "smoke.pyz").read_bytes() == b"zip"
        assert args[2:] == [
            "--launcher",
            "slurm",
            "--master-port",
            "29500",
            "--timeout",
            "15",
            "--steps",
            "3",
        ]
        task.send_signal(signal.SIGTERM)
        code = task.wait(timeout=30)
        assert code != 0
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not Path(f"/proc/{pid}").exists(), "the worker outlived its task"
        assert list((tmp_path / "tmp").iterdir()) == []
    finally:  # whatever happened, nothing of the task's process group is left behind
        with contextlib.suppress(ProcessLookupError):
            os.killpg(task.pid, signal.SIGKILL)
        task.wait()


def test_a_worker_that_ends_gives_its_exit_status(tmp_path: Path) -> None:
    python = tmp_path / "python"
    python.write_text('#!/bin/sh\ntest -f "$2" && echo report && exit 3\n')
    python.chmod(0o755)
    task = _rank(tmp_path, python)
    assert task.wait(timeout=30) == 3
    assert list((tmp_path / "tmp").iterdir()) == []


def test_the_version_probe_takes_whichever_distribution_is_installed() -> None:
    """tensorflow-cpu is TensorFlow too: the nodes are compared on the version of whichever is there."""
    import importlib.metadata as m

    res = subprocess.run(
        [sys.executable, "-I", "-c", slurm._PROBE, "fwsetup-not-a-dist|pytest", "fwsetup-no|fwsetup-nope"],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    found = json.loads(res.stdout)["versions"]
    assert found == {"fwsetup-not-a-dist": m.version("pytest"), "fwsetup-no": None}
    assert slurm.LAUNCH["tensorflow"].distributions == ("tensorflow|tensorflow-cpu",)


def _report(node: str, addr: str, **kw: object) -> str:
    base = {"ok": True, "framework": "tensorflow", "version": "2.21.0", "node": node, "addr_seen": addr,
            "world": 2, "rendezvous": "10.0.0.1:29500", "loss_before": 1.65, "loss_after": 0.17,
            "weights_sha256": "e4d1", "allreduce_seconds": 0.006, "steps": 20,
            "backend": "collective ops (RING, gRPC)"}  # fmt: skip
    return json.dumps({**base, **kw})


ADDRS = {"a": "10.0.0.1", "b": "10.0.0.2"}
HEAD = "fwsetup-nodes: a b\nfwsetup-rendezvous: 10.0.0.1:29500\n"


def test_the_verdict_over_tensorflow_workers() -> None:
    out = HEAD + f"0: {_report('a', '10.0.0.1')}\n1: W0000 noise\n1: {_report('b', '10.0.0.2')}\n"
    report = slurm._slurm_verdict(
        "tensorflow",
        SimpleNamespace(stdout=out, stderr="", returncode=0, error=None),
        ADDRS,
        29500,
        9.0,
        15.0,
    )
    assert report["ok"] and report["started_by"] == "MultiWorkerMirroredStrategy (TF_CONFIG from Slurm)"
    assert report["rendezvous"] == "10.0.0.1:29500" and [r["node"] for r in report["ranks"]] == ["a", "b"]
    assert report["loss_after"] < report["loss_before"] and report["backend"].startswith("collective ops")


def test_workers_with_different_weights_fail() -> None:
    out = HEAD + f"0: {_report('a', '10.0.0.1')}\n1: {_report('b', '10.0.0.2', weights_sha256='ffff')}\n"
    with pytest.raises(SmokeError, match="the ranks ended with different weights"):
        slurm._slurm_verdict(
            "tensorflow",
            SimpleNamespace(stdout=out, stderr="", returncode=0, error=None),
            ADDRS,
            29500,
            9.0,
            15.0,
        )


def test_a_worker_that_cannot_reach_worker_0_is_named_with_address_and_port() -> None:
    late = _report("a", "10.0.0.1", ok=False, error="the workers did not meet at 10.0.0.1:29500 (worker 0) "
                   "within 15 s: worker 1 (10.0.0.2:29500) did not register")  # fmt: skip
    unreachable = _report(
        "b",
        "10.0.0.2",
        ok=False,
        error="could not reach the rendezvous at 10.0.0.1:29500 within 15 s (timed out)",
    )
    res = SimpleNamespace(stdout=HEAD + f"0: {late}\n1: {unreachable}\n", stderr="", returncode=1, error=None)
    with pytest.raises(SmokeError) as exc:
        slurm._slurm_verdict("tensorflow", res, ADDRS, 29500, 9.0, 15.0)
    msg = exc.value.message
    assert "node b (10.0.0.2): could not reach the rendezvous at 10.0.0.1:29500 within 15 s" in msg, msg
    assert "worker 1 (10.0.0.2:29500) did not register" in msg
