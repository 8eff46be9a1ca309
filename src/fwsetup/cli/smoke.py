"""`fwsetup smoke NAME`: a real training step in an existing environment (one fwsetup did not build, too),
or in an image `fwsetup build` made. Exit 0 when the loss fell, 6 when the smoke test failed.

Parse, call fwsetup.ops.smoke, render: the report as one JSON line on stdout (alone with --json), the
summary on stderr.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from fwsetup.cli._app import app
from fwsetup.cli.options import count, input_file, interpreter, output_file, seconds
from fwsetup.cli.render import smoke_summary
from fwsetup.errors import SmokeError, UsageError
from fwsetup.ui import emit_json, err_console, escape, info

if TYPE_CHECKING:
    from fwsetup.errors import SmokeError
    from fwsetup.ops.result import SmokeOutcome
    from fwsetup.smoke.ranks import Progress


@app.command("smoke")
def smoke_command(
    name: Annotated[
        str,
        typer.Argument(
            metavar="NAME", help="Framework: pytorch, tensorflow, keras, jax, mxnet, theano, pytensor."
        ),
    ],
    python: Annotated[
        str | None,
        typer.Option(
            "--python",
            metavar="EXE",
            parser=interpreter,
            help="The interpreter to check (default: $VIRTUAL_ENV's python, else this one).",
        ),
    ] = None,
    gpu: Annotated[
        bool, typer.Option("--gpu", help="Train on the GPU; fail if the work runs on the CPU.")
    ] = False,
    all_gpus: Annotated[
        bool,
        typer.Option(
            "--all-gpus", help="Data-parallel over every visible GPU (two CPU workers without --gpu)."
        ),
    ] = False,
    steps: Annotated[
        int | None, typer.Option("--steps", metavar="N", parser=count, help="Training steps (default 30).")
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", metavar="S", parser=seconds, help="Give up after S seconds.")
    ] = 900.0,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the smoke report as JSON on stdout.")
    ] = False,
    image: Annotated[
        str | None,
        typer.Option(
            "--image",
            metavar="TAG",
            help="Check an image made by `fwsetup build`: train in a fresh container (no network, non-root).",
        ),
    ] = None,
    nodes: Annotated[
        int | None,
        typer.Option(
            "--nodes",
            metavar="N",
            parser=count,
            help="Train as N ranks that rendezvous over the network (pytorch, jax); rank 0's address is the rendezvous.",
        ),
    ] = None,
    node_addr: Annotated[
        list[str] | None,
        typer.Option("--node-addr", metavar="ADDR", help="With --nodes: each rank's address, in rank order."),
    ] = None,
    netns: Annotated[
        list[str] | None,
        typer.Option(
            "--netns",
            metavar="NS",
            help="With --nodes: run each rank in this network namespace (ip netns exec).",
        ),
    ] = None,
    hostfile: Annotated[
        str | None,
        typer.Option(
            "--hostfile",
            metavar="FILE",
            parser=input_file,
            help="With --nodes: one rank per line, `ADDR [netns=NS] [python=EXE]`.",
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            "--port",
            metavar="P",
            help="With --nodes: the rendezvous port (default: a free one, 29500 in a netns).",
        ),
    ] = None,
    rank: Annotated[
        list[int] | None,
        typer.Option(
            "--rank",
            metavar="R",
            help="With --nodes: start only rank R here (repeat; the other ranks are started on their own nodes).",
        ),
    ] = None,
    rank_timeout: Annotated[
        float,
        typer.Option(
            "--rank-timeout",
            metavar="S",
            parser=seconds,
            help="With --nodes: seconds a rank waits to meet the others, and for each all-reduce.",
        ),
    ] = 60.0,
    launcher: Annotated[
        str | None,
        typer.Option(
            "--launcher",
            metavar="L",
            help="With --nodes, who starts the ranks. `torchrun` (pytorch, the default): torchrun on each rank's "
            "host (c10d rendezvous at rank 0's address and --port). `jax` (jax, the default): each rank calls "
            "jax.distributed.initialize with rank 0's address as coordinator, the number of ranks and its own. "
            "`slurm` (pytorch, jax, tensorflow): one rank per node of a Slurm allocation (torchrun under srun; "
            "jax.distributed's own Slurm detection; MultiWorkerMirroredStrategy with TF_CONFIG from Slurm).",
        ),
    ] = None,
    emit_sbatch: Annotated[
        str | None,
        typer.Option(
            "--emit-sbatch",
            metavar="FILE",
            parser=output_file,
            help="With --launcher slurm: write the sbatch script of the job to FILE (submit it with sbatch).",
        ),
    ] = None,
) -> None:
    """Run a real training step of NAME in an existing environment (one fwsetup did not build, too).

    Exit 0 when the loss fell, 6 when the smoke test failed (the reason is printed).
    """
    import json

    from fwsetup.ops import envs as ops_envs  # lazy: start-up (cli/__init__.py)
    from fwsetup.ops import smoke as ops  # lazy: start-up (cli/__init__.py)
    from fwsetup.ops import smoke_multinode as multi  # lazy: start-up (cli/__init__.py)

    if image is not None:
        if python is not None:
            raise UsageError("--python and --image exclude each other: check an interpreter or an image.")
        _render(ops.smoke_image(name, image, gpu=gpu, all_gpus=all_gpus, timeout=timeout), json_out=json_out)
        return
    multi.check_launcher(launcher, name)
    if launcher == "slurm" or emit_sbatch:
        job = multi.slurm_job(
            name, python, nodes=nodes, others=bool(node_addr or netns or hostfile or rank), port=port,
            launcher=launcher or "",
        )  # fmt: skip
        try:
            report = multi.run_slurm_job(
                job, port=port, steps=steps, gpu=gpu, rank_timeout=rank_timeout, timeout=timeout,
                emit_sbatch=emit_sbatch, progress=_progress_printer(),
            )  # fmt: skip
        except SmokeError as exc:
            _failed(job.framework, job.nodes, exc, json_out=json_out)
            raise
        _render_slurm(job.framework, report, emit_sbatch, json_out=json_out)
        return
    if nodes is not None or node_addr or netns or hostfile or rank:
        job = multi.hosts_job(
            name, python, nodes=nodes, addrs=node_addr or [], netns=netns or [], hostfile=hostfile, port=port
        )
        try:
            report = multi.run_hosts_job(
                job, port=port, steps=steps, gpu=gpu, rank_timeout=rank_timeout, timeout=timeout, here=rank,
                progress=_progress_printer(),
            )  # fmt: skip
        except SmokeError as exc:
            _failed(job.framework, job.nodes, exc, json_out=json_out)
            raise
        _render_multinode(job.framework, report, json_out=json_out)
        return
    script = ops.smoke_script(name)
    exe = python or ops.default_python()
    con = err_console()

    def spinner(what: str) -> object:
        return con.status(escape(what))

    try:
        outcome = ops_envs.smoke_recorded(
            script, exe, gpu=gpu, all_gpus=all_gpus, steps=steps, timeout=timeout,
            waiting=spinner if con.is_terminal and not json_out else None,  # type: ignore[arg-type]
        )  # fmt: skip
    except SmokeError as exc:
        if json_out:
            emit_json(json.dumps({"ok": False, "framework": script, "python": exe, "error": exc.message}))
        raise
    _render(outcome, json_out=json_out)


def _failed(framework: str, nodes: int, exc: SmokeError, *, json_out: bool) -> None:
    import json

    if json_out:
        emit_json(json.dumps({"ok": False, "framework": framework, "nodes": nodes, "error": exc.message}))


def _render_multinode(framework: str, report: dict[str, Any], *, json_out: bool) -> None:
    """`--nodes N` (on the hosts given: torchrun or jax): the report on stdout, the summary on stderr."""
    import json

    if json_out:
        emit_json(json.dumps(report))
        return
    print(json.dumps(report))
    err_console().print(
        f"[green]✓[/] {escape(framework)} {escape(str(report['version']))}: {report['nodes']} ranks, "
        f"{escape(_where_ranks_ran(report['ranks']))}, started by {escape(str(report.get('started_by')))}; "
        f"loss {report['loss_before']:.4g} -> "
        f"{report['loss_after']:.4g}, identical weights on every rank, all-reduce {report['allreduce_seconds'] * 1000:.2f} ms "
        f"per step, {report['seconds_total']:.1f} s in all"
    )


def _render_slurm(framework: str, report: dict[str, Any], emit_sbatch: str | None, *, json_out: bool) -> None:
    """`--nodes N --launcher slurm`: the report on stdout, the summary on stderr."""
    import json

    if json_out:
        emit_json(json.dumps(report))
        return
    print(json.dumps(report))
    where = ", ".join(f"{r['node']} at {r.get('addr_seen')}" for r in report["ranks"][:4])
    err_console().print(
        f"[green]✓[/] {escape(framework)} {escape(str(report['version']))}: {report['nodes']} Slurm nodes "
        f"({escape(where)}), started by {escape(report['started_by'])}; loss {report['loss_before']:.4g} -> "
        f"{report['loss_after']:.4g}, identical weights on every node, all-reduce "
        f"{report['allreduce_seconds'] * 1000:.2f} ms per step, {report['seconds_total']:.1f} s in all"
        + (f"; sbatch script: {escape(emit_sbatch)}" if emit_sbatch else "")
    )


def _where_ranks_ran(ranks: list[dict[str, object]]) -> str:
    """Where the ranks started here ran, as each saw it: host and address (and namespace), a few named."""
    shown = [
        f"rank {r['rank']} on {r.get('host') or '?'} at {r.get('addr_seen')}"
        + (f" (netns {r['netns']})" if r.get("netns") else "")
        for r in ranks[:4]
    ]
    more = f" and {len(ranks) - 4} more" if len(ranks) > 4 else ""
    return f"{len(ranks)} started here: " + ", ".join(shown) + more


def _progress_printer() -> Progress:
    """Progress of a multi-node job on stderr: each phase's count at most once a second, and when done."""
    import time

    last: dict[str, float] = {}

    def show(what: str, done: int, total: int) -> None:
        now = time.monotonic()
        started = last.setdefault(what, now)  # a phase that ends within a second shows its end only
        if done == total or now - started >= 1.0:
            last[what] = now
            info(f"[dim]{what}: {done}/{total}[/]")

    return show


def _render(outcome: SmokeOutcome, *, json_out: bool) -> None:
    import json

    if json_out:
        emit_json(json.dumps(outcome.as_dict()))
        return
    print(json.dumps(outcome.as_dict()))
    where = f" [dim]({escape(outcome.where)})[/]" if outcome.image else ""
    err_console().print(f"[green]✓[/] {escape(smoke_summary(outcome.report))}{where}")
