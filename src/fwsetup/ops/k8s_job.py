"""`fwsetup job NAME --nodes N --image REF --format k8s`: the multi-node smoke test as a Kubernetes job, for an
image `fwsetup build` made (or any image with the framework's Python as `python`).

The manifest (a v1 List, JSON, which is YAML too: `kubectl apply -f FILE`) holds:
- a ConfigMap with the smoke test (the zip smoke.slurm makes: dist_<framework>.py and its helpers), mounted
  read-only in every pod;
- a headless Service, so that pod 0 is reachable by name (JOB-0.JOB) from the others;
- an Indexed Job of N completions, all N pods at once (parallelism N), one rank each (JOB_COMPLETION_INDEX),
  no retries (backoffLimit 0: a failed rank fails the job), a deadline.
PyTorch pods run `torchrun` (c10d rendezvous at pod 0, port 29500, --node-rank from the index, --local-addr
the pod's IP, one process per GPU the pod asks for); JAX pods call `jax.distributed.initialize` with the
coordinator given explicitly (pod 0).

What a pod asks for comes from the Plan (job_plan: a saved `fwsetup plan --json`, or planned here for a node's
HostProfile like `fwsetup plan`): a GPU plan's accelerator names the device plugin's resource
(data/k8s-gpu-resources.toml: nvidia.com/gpu for cuda, amd.com/gpu for rocm) and its GPUs how many; a CPU
plan asks for none.

There is no cluster here: the tests validate the manifest against the Kubernetes schemas (kubernetes-validate).
"""

from __future__ import annotations

import base64
import re
from functools import cache
from typing import Any

from fwsetup.errors import PlanRefused, UsageError
from fwsetup.gpu_vendors import accelerator_vendor_title
from fwsetup.inputfile import InputFileError, read_input
from fwsetup.ops.plan import plan_for
from fwsetup.plan import build_request
from fwsetup.plan.model import Plan, plan_from_json
from fwsetup.recipes.validate import IMAGE_REF_RE
from fwsetup.resources import compat_dir
from fwsetup.smoke.slurm import smoke_zip, write_output

GPU_RESOURCES_FILE = "k8s-gpu-resources.toml"
MAX_PLAN_BYTES = 4 * 2**20  # a plan JSON is a few KiB
PORT = 29500
_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,40}[a-z0-9])?$")  # a DNS label short enough for "NAME-INDEX-xxxxx"
_MOUNT = "/fwsetup"

# One pod's command (sh; values come in the environment, never in the text).
_TORCHRUN = (
    'if [ "$JOB_COMPLETION_INDEX" = 0 ]; then host=1; else host=0; fi; '
    'exec python -m torch.distributed.run --nnodes="$NNODES" --nproc-per-node="$NPROC" '
    '--node-rank="$JOB_COMPLETION_INDEX" --rdzv-backend=c10d --rdzv-endpoint="$RDZV_HOST:$RDZV_PORT" '
    '--rdzv-id="$JOB_NAME" --rdzv-conf="is_host=$host,join_timeout=$RANK_TIMEOUT" --max-restarts=0 '
    '--local-addr="$POD_IP" "$SMOKE" --launcher torchrun --master-addr "$RDZV_HOST" '
    '--master-port "$RDZV_PORT" --addr "$POD_IP" --timeout "$RANK_TIMEOUT" --device "$DEVICE"'
)
_JAX = (
    'exec python "$SMOKE" --launcher explicit --rank "$JOB_COMPLETION_INDEX" --world "$NNODES" '
    '--master-addr "$RDZV_HOST" --master-port "$RDZV_PORT" --addr "$POD_IP" --timeout "$RANK_TIMEOUT" '
    '--device "$DEVICE"'
)


def check_image(image: str) -> None:
    """UsageError (exit 2) unless `image` is an image reference the pods can run."""
    if not IMAGE_REF_RE.fullmatch(image):
        msg = f"--image {image!r} is not an image reference (registry/name:tag, lower-case, no spaces)."
        raise UsageError(msg)


@cache
def gpu_resource_names() -> dict[str, str]:
    """accelerator -> the Kubernetes resource of its device plugin (data/k8s-gpu-resources.toml)."""
    import sys

    if sys.version_info >= (3, 11):
        import tomllib  # lazy: read only when a job is written
    else:
        import tomli as tomllib

    data = tomllib.loads((compat_dir() / GPU_RESOURCES_FILE).read_text())
    return {acc: str(name) for acc, name in data["resource"].items()}


def gpu_limits(plan: Plan) -> dict[str, int]:
    """What each pod asks for, from the plan: its GPUs of its accelerator's resource; nothing for a CPU plan.
    UsageError (exit 2) for a GPU plan whose GPUs no known device plugin serves (Apple, Intel)."""
    if plan.accelerator in (None, "cpu"):
        return {}
    name = gpu_resource_names().get(plan.accelerator)
    if name is None:
        title = accelerator_vendor_title(plan.accelerator) or plan.accelerator
        msg = (
            f"the plan uses {title} GPUs ({plan.accelerator}), which fwsetup job cannot ask Kubernetes for "
            f"(it knows the device plugins' resources of {' and '.join(gpu_resource_names())} plans); plan with "
            "--cpu, or for a node with NVIDIA or AMD GPUs."
        )
        raise UsageError(msg)
    return {name: max(1, len(plan.gpus))}


def job_plan(
    name: str,
    *,
    plan_file: str | None = None,
    host_profile: str | None = None,
    gpu: bool = False,
    cpu: bool = False,
    all_gpus: bool = False,
    vendor: str = "auto",
    version: str | None = None,
) -> Plan:
    """The plan the pods run: read from `plan_file` (`fwsetup plan NAME --json`, or an image's io.fwsetup.plan
    label), or made for the node in `host_profile` (default: this machine) from the same options as `fwsetup
    plan`. PlanRefused (exit 3) for a refusal; UsageError for a plan of another framework or a bad file."""
    if plan_file is not None:
        if host_profile or gpu or cpu or all_gpus or vendor != "auto" or version:
            msg = "--plan FILE says what the pods run: give it alone, or plan with --host-profile/--gpu/--cpu/--version."
            raise UsageError(msg)
        try:
            plan = plan_from_json(read_input(plan_file, limit=MAX_PLAN_BYTES))
        except InputFileError as exc:
            raise UsageError(f"cannot read --plan {plan_file}: {exc}") from None
        except ValueError as exc:  # msgspec.DecodeError / ValidationError
            msg = f"--plan {plan_file}: not a plan (`fwsetup plan NAME --json`): {exc}"
            raise UsageError(msg) from None
        if plan.framework != name:
            msg = f"--plan {plan_file} is a plan of {plan.framework}, not {name}."
            raise UsageError(msg)
    else:
        request = build_request(name, gpu=gpu, cpu=cpu, all_gpus=all_gpus, vendor=vendor, version=version)
        plan = plan_for(request, host_profile)
    if plan.status != "ok":
        where = (
            f"the node in {host_profile}"
            if host_profile
            else "this machine"
            if plan_file is None
            else plan_file
        )
        msg = f"no build of {name} runs on {where}: " + (" ".join(plan.reasons) or "the plan was refused")
        raise PlanRefused(msg, hint="`fwsetup plan NAME --host-profile FILE` says why and what would work.")
    return plan


def write_manifest(path: str, text: str) -> None:
    """--output FILE: written whole or not at all, mode 0644 (the rule of every file a user names)."""
    write_output(path, text, 0o644)


def job_manifest(
    framework: str,
    *,
    nodes: int,
    image: str,
    name: str | None = None,
    limits: dict[str, int] | None = None,
    rank_timeout: float = 300.0,
    deadline_s: int = 3600,
    steps: int | None = None,
) -> dict[str, Any]:
    """The manifest (a v1 List of ConfigMap, Service, Job); `limits`: what each pod asks for (gpu_limits)."""
    if framework not in ("pytorch", "jax"):
        msg = f"fwsetup job runs the multi-node smoke test of pytorch or jax; {framework} has none."
        raise UsageError(msg)
    gpus = sum((limits or {}).values())
    if framework == "jax" and gpus:
        msg = "the multi-node JAX smoke test runs on the CPU (gloo); plan jax for the pods with --cpu."
        raise UsageError(msg)
    if nodes < 1 or nodes > 1000:
        raise UsageError(f"--nodes {nodes}: give 1 to 1000 pods.")
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
        {"name": "DEVICE", "value": "cuda" if gpus else "cpu"},  # torch's name for NVIDIA's and AMD's (HIP)
        {"name": "NPROC", "value": str(max(1, gpus))},  # torchrun: one process per GPU of the pod
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
    if gpus:
        container["resources"] = {"limits": dict(limits or {})}
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
