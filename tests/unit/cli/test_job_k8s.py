"""`fwsetup job NAME --nodes N --image REF --format k8s`: the manifest validates against the Kubernetes schemas of
several versions (kubernetes-validate, offline, strict: no field a version does not know), runs the smoke test
the way each framework meets across pods, and asks for what the Plan decided: the GPU resource of the plan's
accelerator, as many as the plan's GPUs (none for a CPU plan). No cluster here: the manifest is what is
tested."""

from __future__ import annotations

import base64
import io
import json
import zipfile
from pathlib import Path

import pytest

from fwsetup.cli import main

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
CPU_NODE = ["--host-profile", str(FIXTURES / "no-gpu.json")]

kv = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is a test dependency (pyproject)")

VERSIONS = ["1.30.0", "1.37.0"]


def job(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict, str]:
    code = main(["job", *args])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 and out.strip() else {}), " ".join(err.split())


@pytest.mark.parametrize("framework", ["pytorch", "jax"])
def test_manifest_validates_against_kubernetes_schemas(
    framework: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, manifest, err = job(
        capsys, framework, "--nodes", "3", "--image", "registry.example/fw:1", "--format", "k8s", *CPU_NODE
    )
    assert code == 0, err
    assert manifest["kind"] == "List"
    kinds = [item["kind"] for item in manifest["items"]]
    assert kinds == ["ConfigMap", "Service", "Job"]
    for version in VERSIONS:
        for item in manifest["items"]:
            kv.validate(item, version, strict=True)  # raises ValidationError naming the field
    cm, svc, jb = manifest["items"]
    spec = jb["spec"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == spec["parallelism"] == 3
    assert spec["backoffLimit"] == 0 and svc["spec"]["clusterIP"] == "None"
    pod = spec["template"]["spec"]
    assert pod["subdomain"] == svc["metadata"]["name"] == jb["metadata"]["name"]
    (container,) = pod["containers"]
    command = container["command"][2]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["RDZV_HOST"] == f"{jb['metadata']['name']}-0.{svc['metadata']['name']}"
    if framework == "pytorch":
        assert "torch.distributed.run" in command and "--rdzv-backend=c10d" in command
    else:
        # jax.distributed.initialize with explicit coordinator arguments (pod 0, the number of pods, the index)
        assert "--launcher explicit" in command and "--master-addr" in command and "torch" not in command
    assert "resources" not in container  # a CPU plan: no GPU asked
    assert env["DEVICE"] == "cpu" and env["NPROC"] == "1"
    names = zipfile.ZipFile(io.BytesIO(base64.b64decode(cm["binaryData"]["smoke.pyz"]))).namelist()
    assert f"dist_{framework}.py" in names and "__main__.py" in names


@pytest.mark.parametrize(
    ("profile", "args", "limits"),
    [
        ("datacenter-h100.json", ["--gpu"], {"nvidia.com/gpu": 2}),  # a cuda plan of the node's 2 H100s
        ("datacenter-h100.json", [], {"nvidia.com/gpu": 2}),  # the GPU when it can be used, as `plan` does
        ("mi300x.json", [], {"amd.com/gpu": 1}),  # a rocm plan of its one MI300X
        ("datacenter-h100.json", ["--cpu"], {}),  # a CPU plan asks for none
    ],
)
def test_pods_ask_for_what_the_plan_uses(
    profile: str, args: list[str], limits: dict[str, int], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The pods' GPUs come from the node's plan (`fwsetup plan pytorch --host-profile FILE`), and a saved plan
    (--plan FILE) gives the same manifest."""
    node = ["--host-profile", str(FIXTURES / profile), *args]
    assert main(["plan", "pytorch", *node, "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert len(plan["gpus"]) == sum(limits.values()) or not limits
    code, manifest, err = job(capsys, "pytorch", "--nodes", "2", "--image", "x:1", *node)
    assert code == 0, err
    container = manifest["items"][2]["spec"]["template"]["spec"]["containers"][0]
    assert container.get("resources") == ({"limits": limits} if limits else None)
    env = {e["name"]: e.get("value") for e in container["env"]}
    # torchrun starts one process per GPU of the pod (the smoke test takes its GPU from LOCAL_RANK)
    assert (
        env["NPROC"] == str(max(1, sum(limits.values())))
        and '--nproc-per-node="$NPROC"' in container["command"][2]
    )
    assert env["DEVICE"] == ("cuda" if limits else "cpu")
    for version in VERSIONS:
        kv.validate(manifest["items"][2], version, strict=True)
    saved = tmp_path / "plan.json"
    saved.write_text(json.dumps(plan))
    code, from_file, err = job(capsys, "pytorch", "--nodes", "2", "--image", "x:1", "--plan", str(saved))
    assert code == 0 and from_file == manifest, err


def test_bad_input_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    plan_file = tmp_path / "cpu-plan.json"
    assert main(["plan", "pytorch", "--cpu", *CPU_NODE, "--json"]) == 0
    plan_file.write_text(capsys.readouterr().out)
    cases = [
        (["tensorflow", "--nodes", "2", "--image", "x"], "pytorch or jax"),
        (["pytorch", "--nodes", "2", "--image", "x", "--format", "slurm"], "give k8s"),
        (["pytorch", "--nodes", "2", "--image", "x", "--name", "Bad_Name"], "DNS label"),
        (
            ["jax", "--nodes", "2", "--image", "x", "--host-profile", str(FIXTURES / "datacenter-h100.json")],
            "plan jax for the pods with --cpu",
        ),
        (
            ["pytorch", "--nodes", "2", "--image", "x", "--host-profile", str(FIXTURES / "gpu-max.json")],
            "the plan uses Intel GPUs (xpu), which fwsetup job cannot ask Kubernetes for",
        ),
        (["pytorch", "--nodes", "2", "--image", "x", "--plan", str(FIXTURES / "no-gpu.json")], "not a plan"),
        (["pytorch", "--nodes", "2", "--image", "x", "--plan", str(plan_file), "--gpu"], "give it alone"),
        (["jax", "--nodes", "2", "--image", "x", "--plan", str(plan_file)], "a plan of pytorch, not jax"),
        (["pytorch", "--nodes", "2", "--image", "bad ref!!"], "not an image reference"),
        (["pytorch", "--nodes", "2", "--image", ""], "not an image reference"),
        (["pytorch", "--nodes", "2", "--image", "Registry/Upper:1"], "not an image reference"),
    ]
    for args, why in cases:
        code, _manifest, err = job(capsys, *args)
        assert code == 2 and why in err, (args, err)
    # A plan refused for the node: exit 3 with the planner's reasons, nothing written.
    code, _m, err = job(capsys, "pytorch", "--nodes", "2", "--image", "x", "--gpu", *CPU_NODE)
    assert code == 3 and "no build of pytorch runs on the node in" in err and "no usable NVIDIA GPU" in err, (
        err
    )
    out = tmp_path / "job.json"
    code, _m, err = job(capsys, "pytorch", "--nodes", "2", "--image", "x", "--output", str(out), *CPU_NODE)
    assert code == 0 and json.loads(out.read_text())["kind"] == "List" and "kubectl apply" in err
