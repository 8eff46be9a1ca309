"""`fwsetup job NAME --nodes N --image REF --format k8s`: the manifest validates against the Kubernetes schemas of
several versions (kubernetes-validate, offline, strict: no field a version does not know), runs the smoke test
the way each framework meets across pods, and asks for the GPU resource of the vendor. No cluster here: the
manifest is what is tested."""

from __future__ import annotations

import base64
import io
import json
import zipfile

import pytest

from fwsetup.cli import main

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
        capsys, framework, "--nodes", "3", "--image", "registry.example/fw:1", "--format", "k8s"
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
        assert "--master-addr" in command and "torch" not in command
    assert "resources" not in container  # no GPU asked
    names = zipfile.ZipFile(io.BytesIO(base64.b64decode(cm["binaryData"]["smoke.pyz"]))).namelist()
    assert f"dist_{framework}.py" in names and "__main__.py" in names


@pytest.mark.parametrize(("vendor", "resource"), [("nvidia", "nvidia.com/gpu"), ("amd", "amd.com/gpu")])
def test_gpu_pods_ask_for_the_vendors_resource(
    vendor: str, resource: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, manifest, err = job(
        capsys, "pytorch", "--nodes", "2", "--image", "x:1", "--gpu", "--vendor", vendor
    )
    assert code == 0, err
    container = manifest["items"][2]["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"] == {"limits": {resource: 1}}
    for version in VERSIONS:
        kv.validate(manifest["items"][2], version, strict=True)


def test_bad_input_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    cases = [
        (["tensorflow", "--nodes", "2", "--image", "x"], "pytorch or jax"),
        (["pytorch", "--nodes", "2", "--image", "x", "--format", "slurm"], "give k8s"),
        (["pytorch", "--nodes", "2", "--image", "x", "--name", "Bad_Name"], "DNS label"),
        (["jax", "--nodes", "2", "--image", "x", "--gpu"], "drop --gpu"),
        (["pytorch", "--nodes", "2", "--image", "x", "--gpu", "--vendor", "intel"], "nvidia or amd"),
        (["pytorch", "--nodes", "2", "--image", "bad ref!!"], "not an image reference"),
        (["pytorch", "--nodes", "2", "--image", ""], "not an image reference"),
        (["pytorch", "--nodes", "2", "--image", "Registry/Upper:1"], "not an image reference"),
    ]
    for args, why in cases:
        code, _manifest, err = job(capsys, *args)
        assert code == 2 and why in err, (args, err)
    out = tmp_path / "job.json"
    code, _m, err = job(capsys, "pytorch", "--nodes", "2", "--image", "x", "--output", str(out))
    assert code == 0 and json.loads(out.read_text())["kind"] == "List" and "kubectl apply" in err
