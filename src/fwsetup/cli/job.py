"""`fwsetup job NAME --nodes N --image REF --format k8s`: the multi-node smoke test as a Kubernetes Indexed Job
(fwsetup.ops.k8s_job makes it; this prints or writes it)."""

from __future__ import annotations

from typing import Annotated

import typer

from fwsetup.cli._app import app
from fwsetup.cli.options import count, output_file, seconds
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
    gpu: Annotated[
        bool,
        typer.Option("--gpu", help="One GPU per pod (nvidia.com/gpu, or amd.com/gpu with --vendor amd)."),
    ] = False,
    vendor: Annotated[
        str, typer.Option("--vendor", metavar="nvidia|amd", help="Whose GPU resource.")
    ] = "nvidia",
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
    Exit 0 written, 2 bad input (a framework other than pytorch or jax, a bad --image, --name, --format, --vendor).
    """
    import json

    from fwsetup.ops.k8s_job import (  # lazy: start-up (cli/__init__.py)
        check_image,
        job_manifest,
        write_manifest,
    )
    from fwsetup.ops.smoke import smoke_script  # lazy: start-up (cli/__init__.py)

    if fmt != "k8s":
        raise UsageError(f"--format {fmt}: give k8s.")
    check_image(image)
    manifest = job_manifest(
        smoke_script(name),
        nodes=nodes,
        image=image,
        name=job_name,
        gpu=gpu,
        vendor=vendor,
        rank_timeout=rank_timeout,
    )
    text = json.dumps(manifest, indent=2) + "\n"
    if output is None:
        print(text, end="")
        return
    write_manifest(output, text)
    info(f"wrote {output}: `kubectl apply -f {output}`")
