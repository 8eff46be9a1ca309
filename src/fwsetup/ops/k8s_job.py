"""`fwsetup job NAME --nodes N --image REF --format k8s`: the multi-node smoke test as a Kubernetes job, for an
image `fwsetup build` made (or any image with the framework's Python as `python`).

The manifest (a v1 List, JSON, which is YAML too: `kubectl apply -f FILE`) holds:
- a ConfigMap with the smoke test (the zip smoke.slurm makes: dist_<framework>.py and its helpers), mounted
  read-only in every pod;
- a headless Service, so that pod 0 is reachable by name (JOB-0.JOB) from the others;
- an Indexed Job of N completions, all N pods at once (parallelism N), one rank each (JOB_COMPLETION_INDEX),
  no retries (backoffLimit 0: a failed rank fails the job), a deadline.
PyTorch pods run `torchrun` (c10d rendezvous at pod 0, port 29500, --node-rank from the index, --local-addr
the pod's IP); JAX pods call `jax.distributed.initialize` with the coordinator given explicitly (pod 0).
`--gpu` asks each pod for one GPU of the vendor's resource (nvidia.com/gpu, amd.com/gpu).

There is no cluster here: the tests validate the manifest against the Kubernetes schemas (kubernetes-validate).
"""

from __future__ import annotations

import base64
import re
from typing import Any

from fwsetup.errors import UsageError
from fwsetup.recipes.validate import IMAGE_REF_RE
from fwsetup.smoke.slurm import smoke_zip, write_output

GPU_RESOURCES = {"nvidia": "nvidia.com/gpu", "amd": "amd.com/gpu"}  # the vendors' device plugins
PORT = 29500
_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,40}[a-z0-9])?$")  # a DNS label short enough for "NAME-INDEX-xxxxx"
_MOUNT = "/fwsetup"

# One pod's command (sh; values come in the environment, never in the text).
_TORCHRUN = (
    'if [ "$JOB_COMPLETION_INDEX" = 0 ]; then host=1; else host=0; fi; '
    'exec python -m torch.distributed.run --nnodes="$NNODES" --nproc-per-node=1 '
    '--node-rank="$JOB_COMPLETION_INDEX" --rdzv-backend=c10d --rdzv-endpoint="$RDZV_HOST:$RDZV_PORT" '
    '--rdzv-id="$JOB_NAME" --rdzv-conf="is_host=$host,join_timeout=$RANK_TIMEOUT" --max-restarts=0 '
    '--local-addr="$POD_IP" "$SMOKE" --launcher torchrun --master-addr "$RDZV_HOST" '
    '--master-port "$RDZV_PORT" --addr "$POD_IP" --timeout "$RANK_TIMEOUT" --device "$DEVICE"'
)
_JAX = (
    'exec python "$SMOKE" --launcher fwsetup --rank "$JOB_COMPLETION_INDEX" --world "$NNODES" '
    '--master-addr "$RDZV_HOST" --master-port "$RDZV_PORT" --addr "$POD_IP" --timeout "$RANK_TIMEOUT" '
    '--device "$DEVICE"'
)


def check_image(image: str) -> None:
    """UsageError (exit 2) unless `image` is an image reference the pods can run."""
    if not IMAGE_REF_RE.fullmatch(image):
        msg = f"--image {image!r} is not an image reference (registry/name:tag, lower-case, no spaces)."
        raise UsageError(msg)


def write_manifest(path: str, text: str) -> None:
    """--output FILE: written whole or not at all, mode 0644 (the rule of every file a user names)."""
    write_output(path, text, 0o644)


def job_manifest(
    framework: str,
    *,
    nodes: int,
    image: str,
    name: str | None = None,
    gpu: bool = False,
    vendor: str = "nvidia",
    rank_timeout: float = 300.0,
    deadline_s: int = 3600,
    steps: int | None = None,
) -> dict[str, Any]:
    """The manifest (a v1 List of ConfigMap, Service, Job)."""
    if framework not in ("pytorch", "jax"):
        msg = f"fwsetup job runs the multi-node smoke test of pytorch or jax; {framework} has none."
        raise UsageError(msg)
    if framework == "jax" and gpu:
        raise UsageError("the multi-node JAX smoke test runs on the CPU (gloo); drop --gpu for jax.")
    if nodes < 1 or nodes > 1000:
        raise UsageError(f"--nodes {nodes}: give 1 to 1000 pods.")
    if gpu and vendor not in GPU_RESOURCES:
        raise UsageError(f"--vendor {vendor}: give {' or '.join(GPU_RESOURCES)} for --gpu.")
    job = name or f"fwsetup-smoke-{framework}"
    if not _NAME.match(job):
        msg = f"--name {job}: give a lower-case DNS label (a-z, 0-9, '-'), at most 42 characters."
        raise UsageError(msg)
    labels = {"app.kubernetes.io/name": "fwsetup-smoke", "app.kubernetes.io/instance": job}
    env = [
        {"name": "NNODES", "value": str(nodes)},
        {"name": "JOB_NAME", "value": job},
        {"name": "RDZV_HOST", "value": f"{job}-0.{job}"},  # pod 0 through the headless service
        {"name": "RDZV_PORT", "value": str(PORT)},
        {"name": "RANK_TIMEOUT", "value": f"{rank_timeout:g}"},
        {"name": "DEVICE", "value": "cuda" if gpu else "cpu"},
        {"name": "SMOKE", "value": f"{_MOUNT}/smoke.pyz"},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
    ]
    command = _TORCHRUN if framework == "pytorch" else _JAX
    if steps is not None:
        command += f" --steps {int(steps)}"
    container: dict[str, Any] = {
        "name": "rank",
        "image": image,
        "command": ["sh", "-c", command],
        "env": env,
        "ports": [{"name": "rendezvous", "containerPort": PORT, "protocol": "TCP"}],
        "volumeMounts": [{"name": "smoke", "mountPath": _MOUNT, "readOnly": True}],
    }
    if gpu:
        container["resources"] = {"limits": {GPU_RESOURCES[vendor]: 1}}
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{job}-smoke", "labels": labels},
        "binaryData": {"smoke.pyz": base64.b64encode(smoke_zip(framework)).decode()},
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": job, "labels": labels},
        "spec": {
            "clusterIP": "None",
            "selector": {"job-name": job},
            "publishNotReadyAddresses": True,  # pod 0 is reachable by name before it is "ready"
            "ports": [{"name": "rendezvous", "port": PORT, "targetPort": PORT, "protocol": "TCP"}],
        },
    }
    job_obj = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": job, "labels": labels},
        "spec": {
            "completionMode": "Indexed",
            "completions": nodes,
            "parallelism": nodes,
            "backoffLimit": 0,
            "activeDeadlineSeconds": int(deadline_s),
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "subdomain": job,
                    "restartPolicy": "Never",
                    "containers": [container],
                    "volumes": [{"name": "smoke", "configMap": {"name": f"{job}-smoke"}}],
                },
            },
        },
    }
    return {"apiVersion": "v1", "kind": "List", "items": [config, service, job_obj]}
