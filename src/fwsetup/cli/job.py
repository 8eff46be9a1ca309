"""`fwsetup job NAME --nodes N --image REF --format k8s`: the multi-node smoke test as a Kubernetes Indexed Job
(fwsetup.ops.k8s_job makes it; this prints or writes it)."""

from __future__ import annotations

from typing import Annotated

import typer

from fwsetup.cli._app import app
from fwsetup.cli.options import VendorOpt, count, input_file, output_file, seconds
from fwsetup.errors import UsageError
from fwsetup.ui import info


@app.command("job")
def job_command(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Framework: pytorch or jax.")],
    nodes: Annotated[int, typer.Option("--nodes", metavar="N", parser=count, help="Pods, one rank each.")],
    image: Annotated[
        str,
        typer.Option(
            "--image", metavar="REF", help="The image the pods run (e.g. one `fwsetup build` made)."
        ),
    ],
    fmt: Annotated[str, typer.Option("--format", metavar="k8s", help="The manifest's kind: k8s.")] = "k8s",
    job_name: Annotated[
        str | None, typer.Option("--name", metavar="JOB", help="The Job's name (default fwsetup-smoke-NAME).")
    ] = None,
    plan_file: Annotated[
        str | None,
        typer.Option(
            "--plan",
            metavar="FILE",
            parser=input_file,
            help="The plan the pods run (`fwsetup plan NAME --json`, or the image's io.fwsetup.plan label): its "
            "accelerator and GPUs say what each pod asks for.",
        ),
    ] = None,
    host_profile: Annotated[
        str | None,
        typer.Option(
            "--host-profile",
            metavar="FILE",
            parser=input_file,
            help="Plan for the node in FILE (`fwsetup profile` on one of the cluster's nodes; default: this machine).",
        ),
    ] = None,
    gpu: Annotated[bool, typer.Option("--gpu", help="Plan a GPU build (as `fwsetup plan --gpu`).")] = False,
    cpu: Annotated[bool, typer.Option("--cpu", help="Plan a CPU build: the pods ask for no GPU.")] = False,
    all_gpus: Annotated[
        bool, typer.Option("--all-gpus", help="Plan for every usable GPU of the node (one rank per GPU).")
    ] = False,
    vendor: VendorOpt = "auto",
    version: Annotated[
        str | None, typer.Option("--version", metavar="V", help="The release to plan (as `fwsetup plan`).")
    ] = None,
    rank_timeout: Annotated[
        float,
        typer.Option(
            "--rank-timeout", metavar="S", parser=seconds, help="Seconds a rank waits to meet the others."
        ),
    ] = 300.0,
    output: Annotated[
        str | None,
        typer.Option(
            "--output", "-o", metavar="FILE", parser=output_file, help="Write the manifest to FILE."
        ),
    ] = None,
) -> None:
    """Write the multi-node smoke test of NAME as a Kubernetes Indexed Job (torchrun / jax.distributed across
    pods): `kubectl apply -f FILE`, then `kubectl logs -l job-name=JOB` shows each rank's report.
    Each pod asks for the GPUs the plan uses (nvidia.com/gpu for a cuda plan, amd.com/gpu for rocm; none for
    a CPU plan): the plan is --plan FILE, or made like `fwsetup plan` for --host-profile FILE (default: this
    machine).
    Exit 0 written, 2 bad input (a framework other than pytorch or jax, a bad --image, --name, --format, --plan;
    a GPU plan Kubernetes cannot be asked for), 3 the plan was refused.
    """
    import json

    from fwsetup.ops.k8s_job import (  # lazy: start-up (cli/__init__.py)
        check_image,
        gpu_limits,
        job_manifest,
        job_plan,
        write_manifest,
    )
    from fwsetup.ops.smoke import smoke_script  # lazy: start-up (cli/__init__.py)

    if fmt != "k8s":
        raise UsageError(f"--format {fmt}: give k8s.")
    check_image(image)
    framework = smoke_script(name)
    plan = job_plan(
        framework, plan_file=plan_file, host_profile=host_profile, gpu=gpu, cpu=cpu, all_gpus=all_gpus,
        vendor=vendor, version=version,
    )  # fmt: skip
    manifest = job_manifest(
        framework,
        nodes=nodes,
        image=image,
        name=job_name,
        limits=gpu_limits(plan),
        rank_timeout=rank_timeout,
    )
    text = json.dumps(manifest, indent=2) + "\n"
    if output is None:
        print(text, end="")
        return
    write_manifest(output, text)
    info(f"wrote {output}: `kubectl apply -f {output}`")
