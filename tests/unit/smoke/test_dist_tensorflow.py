"""dist_tensorflow.py's cluster, without TensorFlow: the TF_CONFIG each Slurm task makes from Slurm's
variables and `scontrol` (a small fake one here: the real cluster runs it in tests/integration/slurm), and
the workers it names when TensorFlow's coordination service says some did not register."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fwsetup.smoke import SMOKE_DIR

sys.path.insert(0, str(SMOKE_DIR))
try:
    import _harness
    import dist_tensorflow as dtf
finally:  # the script puts its folder on sys.path too: take every copy off again
    while str(SMOKE_DIR) in sys.path:
        sys.path.remove(str(SMOKE_DIR))

STEP = {"SLURM_PROCID": "1", "SLURM_STEP_NUM_TASKS": "3", "SLURM_STEP_TASKS_PER_NODE": "1(x3)"}
ADDRS = {"n9": "10.0.0.9", "n10": "10.0.0.10", "n11": "10.0.0.11"}


def test_workers_follow_slurms_order_not_string_order() -> None:
    """Slurm numbers tasks in its hostlist order (n9, n10, n11); SlurmClusterResolver sorts the names as
    strings (n10, n11, n9) and so gives task 1 another node's address. Ours keeps Slurm's order."""
    workers, index = dtf.slurm_workers(STEP, ["n9", "n10", "n11"], ADDRS, 29500)
    assert workers == ["10.0.0.9:29500", "10.0.0.10:29500", "10.0.0.11:29500"] and index == 1
    config = dtf.tf_config(workers, index)
    assert config == {"cluster": {"worker": workers}, "task": {"type": "worker", "index": 1}}
    assert json.loads(json.dumps(config)) == config  # what goes into TF_CONFIG


def test_a_node_without_an_address_is_reached_by_its_name() -> None:
    workers, _ = dtf.slurm_workers(STEP, ["n9", "n10", "other"], ADDRS, 2222)
    assert workers[-1] == "other:2222"


def test_the_job_steps_variables_are_read_before_the_jobs() -> None:
    env = {"SLURM_PROCID": "0", "SLURM_NTASKS": "2", "SLURM_TASKS_PER_NODE": "1,1"}
    workers, index = dtf.slurm_workers(env, ["n9", "n10"], ADDRS, 1)
    assert index == 0 and len(workers) == 2


@pytest.mark.parametrize(
    ("env", "why"),
    [
        ({}, "does not run in a Slurm job step"),
        ({**STEP, "SLURM_PROCID": "x"}, "does not run in a Slurm job step"),
        ({**STEP, "SLURM_STEP_TASKS_PER_NODE": "2,1"}, "one task per node; this step has 3 tasks on 3 nodes"),
        ({**STEP, "SLURM_STEP_NUM_TASKS": "4"}, "one task per node; this step has 4 tasks on 3 nodes"),
        ({**STEP, "SLURM_PROCID": "3"}, "SLURM_PROCID 3 is not a task of this step (0 to 2)"),
    ],
)
def test_a_step_that_is_not_one_task_per_node_is_refused(env: dict[str, str], why: str) -> None:
    with pytest.raises(_harness.Fail, match=why.replace("(", r"\(").replace(")", r"\)")):
        dtf.slurm_workers(env, ["n9", "n10", "n11"], ADDRS, 29500)


@pytest.mark.parametrize(
    ("value", "one"),
    [("1(x3)", True), ("1", True), ("1,1(x2)", True), ("2(x2)", False), ("1,2", False), ("", False)],
)
def test_tasks_per_node(value: str, one: bool) -> None:
    assert dtf.one_task_per_node(value) is one


def test_node_addresses_from_scontrol() -> None:
    text = (
        "NodeName=n9 Arch=x86_64 CoresPerSocket=1 NodeAddr=10.0.0.9 NodeHostName=n9 State=IDLE\n"
        "NodeName=n10 NodeHostName=n10 State=IDLE\n"
    )
    assert dtf.parse_node_addrs(text) == {"n9": "10.0.0.9", "n10": "n10"}


def test_slurm_cluster_asks_scontrol(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The nodelist is expanded by Slurm's own scontrol (its hostlist syntax), each node at its NodeAddr."""
    fake = tmp_path / "scontrol"
    fake.write_text(
        "#!/bin/sh\n"
        'echo "$@" >>"$0.log"\n'
        'if [ "$1 $2" = "show hostnames" ]; then printf "n9\\nn10\\n"; exit 0; fi\n'
        'if [ "$1 $2 $3" = "show node -o" ]; then\n'
        '  echo "NodeName=n10 NodeAddr=10.0.0.10"; echo "NodeName=n9 NodeAddr=10.0.0.9"; exit 0; fi\n'
        'echo "scontrol: error: Invalid node name specified" >&2; exit 1\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    for k, v in {"SLURM_PROCID": "1", "SLURM_STEP_NUM_TASKS": "2", "SLURM_STEP_TASKS_PER_NODE": "1(x2)",
                 "SLURM_STEP_NODELIST": "n[9-10]"}.items():  # fmt: skip
        monkeypatch.setenv(k, v)
    assert dtf.slurm_cluster(29501) == (["10.0.0.9:29501", "10.0.0.10:29501"], 1)
    assert "show hostnames n[9-10]" in (tmp_path / "scontrol.log").read_text()
    monkeypatch.setenv("SLURM_STEP_NODELIST", "bad")
    fake.write_text('#!/bin/sh\necho "scontrol: error: Invalid hostlist" >&2; exit 1\n')
    with pytest.raises(_harness.Fail, match="scontrol show hostnames bad: scontrol: error: Invalid hostlist"):
        dtf.slurm_cluster(29501)
    monkeypatch.delenv("SLURM_STEP_NODELIST")
    monkeypatch.delenv("SLURM_JOB_NODELIST", raising=False)
    with pytest.raises(_harness.Fail, match="no SLURM_STEP_NODELIST"):
        dtf.slurm_cluster(29501)


# TensorFlow 2.21's words when worker 1 never registered (captured from a run with worker 0 alone).
BARRIER = (
    "Barrier timed out. Id: [Init]Wait_for_all_tasks_to_register::0. This usually happens because a task "
    "triggered the barrier too early or too slowly. Please look at the task logs (both timed out and first "
    "task) to debug further.\n# of tasks that reached the barrier: 1/2.\nThe first task at the barrier: "
    "/job:worker/replica:0/task:0. Some timed out task names:\n/job:worker/replica:0/task:1\n"
)


def test_the_workers_that_did_not_register_are_named_with_their_address() -> None:
    workers = ["10.0.0.9:29500", "10.0.0.10:29500"]
    assert dtf.missing_workers(BARRIER, workers) == ["worker 1 (10.0.0.10:29500)"]
    assert dtf.missing_workers("Could not start gRPC server", workers) == []


def test_the_script_runs_without_tensorflow_and_says_what_it_is() -> None:
    """It is run as a file by the target interpreter: --help needs only the standard library."""
    res = subprocess.run(
        [sys.executable, "-I", str(SMOKE_DIR / "dist_tensorflow.py"), "--help"],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert res.returncode == 0 and "--launcher" in res.stdout, res.stderr
