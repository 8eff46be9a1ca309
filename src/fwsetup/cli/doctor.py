"""`fwsetup doctor`: what this machine is, what is installed, what is wrong and what to do (fwsetup.doctor
decides; this module renders). Exit 0 when nothing is wrong, 1 when a problem was found.

Heavy imports (rich, the probes) happen inside the command, so that `fwsetup --help` and the other
commands do not pay for them.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Annotated

import typer

from fwsetup.cli._app import app
from fwsetup.cli.options import HostProfileOpt, any_path_text, input_dir, seconds
from fwsetup.errors import UsageError
from fwsetup.text import printable
from fwsetup.ui import emit_json, err_console, escape, info, out_console

if TYPE_CHECKING:
    from rich.console import Console

    from fwsetup.detect.environment import Framework
    from fwsetup.ops.doctor import DoctorReport
    from fwsetup.ops.doctor_findings import Finding
    from fwsetup.profile import HostProfile, IntelGPU


@app.command("doctor")
def doctor_command(
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON on stdout.")] = False,
    host_profile: HostProfileOpt = None,
    python: Annotated[
        str | None,
        typer.Option(
            "--python",
            metavar="EXE",
            parser=any_path_text,  # one that is missing is a finding (env.inspect-failed), not a usage error
            help="The environment to inspect (default: $VIRTUAL_ENV, else $CONDA_PREFIX, else fwsetup's own).",
        ),
    ] = None,
    deep: Annotated[
        bool, typer.Option("--deep", help="Import every framework, even when metadata already answers.")
    ] = False,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout", metavar="SECONDS", parser=seconds, help="Time allowed for each framework import."
        ),
    ] = 180.0,
    env_paths: Annotated[
        list[str] | None,
        typer.Option(
            "--env",
            metavar="PATH",
            parser=any_path_text,
            help="Also check this environment fwsetup made (again for several). The ones in `fwsetup envs` "
            "are always checked.",
        ),
    ] = None,
    fix: Annotated[
        bool,
        typer.Option(
            "--fix",
            help="Apply the repairs proposed for the environments fwsetup made (rebuilt as locked, staged, "
            "smoke-tested, then swapped in; one deleted by hand is forgotten). Asks first unless --yes.",
        ),
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="--fix: repair without asking first.")] = False,
    fleet: Annotated[
        str | None,
        typer.Option(
            "--fleet",
            metavar="DIR",
            parser=input_dir,
            help="Compare the nodes in DIR (one `fwsetup doctor --json` or `fwsetup profile` file per node): "
            "drivers, GPUs, Python, installed frameworks; the odd ones out (exit 1 when any).",
        ),
    ] = None,
) -> None:
    """What this machine is, what is installed, what is wrong and what to do (exit 1 when something is wrong)."""
    if fleet is not None:
        _fleet(fleet, json_out=json_out)
    # lazy: the planner, the recipes and the probes behind doctor cost start-up time for every other command
    from fwsetup.ops.doctor import report_to_json, run_doctor

    def progress(message: str) -> None:
        if not json_out or sys.stderr.isatty():
            err_console().print(f"[dim]{message}[/]")

    def run() -> DoctorReport:
        return run_doctor(host_profile=host_profile, python=python, deep=deep, import_timeout=timeout,
                          progress=progress, envs=env_paths or ())  # fmt: skip

    report = run()
    if fix:
        report = _fix(report, run, yes=yes, json_out=json_out)
    if json_out:
        emit_json(report_to_json(report))
    else:
        render(report, out_console())
    raise typer.Exit(report.exit_code)


def _fix(
    report: DoctorReport, again: Callable[[], DoctorReport], *, yes: bool, json_out: bool
) -> DoctorReport:
    """doctor --fix: say which repairs will run, ask (unless --yes), run each (fwsetup.envcheck.apply), then
    look again: the report returned is the one after the repairs (exit 1 while something is still wrong)."""
    from fwsetup.ops.doctor import repair, repairs  # lazy: as run_doctor above

    todo = repairs(report)
    if not todo:
        info("[bold]--fix[/]: nothing to repair among the environments fwsetup made.")
        return report
    info(f"[bold]--fix[/] will run {len(todo)} repair{'s' if len(todo) != 1 else ''}:")
    for c in todo:
        info(f"  {escape(c.path)} ({escape(c.state)}): {escape(c.repair or '')}")
    if not yes:
        if not sys.stdin.isatty():
            msg = "doctor --fix changes environments: confirm with --yes when there is no terminal to ask."
            raise UsageError(msg)
        if not typer.confirm("Go ahead?", default=False, err=True):
            raise typer.Exit(1)
    for c in todo:
        info(f"[bold]repairing[/] {escape(c.path)}: {escape(c.repair or '')}")
        done = repair(c, output=None if not json_out else (lambda line: print(line, file=sys.stderr)))
        mark = "[green]✓[/]" if done.ok else "[red]✘[/]"
        info(f"{mark} {escape(c.path)}: {escape(done.detail or 'repaired')}")
    return again()


def _fleet(folder: str, *, json_out: bool) -> None:
    """`doctor --fleet DIR`: what differs between the nodes (fwsetup.ops.fleet decides)."""
    from fwsetup.ops.fleet import doctor_fleet  # lazy: start-up (cli/__init__.py)

    cmp = doctor_fleet(folder)
    if json_out:
        import json

        emit_json(json.dumps(cmp.as_dict()))
        raise typer.Exit(cmp.exit_code)
    con = out_console()
    con.print(f"[bold]fleet[/] {len(cmp.nodes)} nodes: {escape(', '.join(cmp.nodes))}")
    for what, value in cmp.agree.items():
        con.print(f"  {MARKS['ok']} {escape(what)}: {escape(value or 'none')} on every node")
    for d in cmp.differences:
        odd = "; ".join(f"{name}: {v or 'none'}" for name, v in d.odd.items())
        con.print(
            f"  {MARKS['error']} {escape(d.what)}: {escape(d.majority or 'none')} on {d.majority_nodes} "
            f"node{'s' if d.majority_nodes != 1 else ''}, but {escape(odd)}"
        )
    if cmp.no_frameworks:
        con.print(
            f"  {MARKS['info']} installed frameworks unknown for {escape(', '.join(cmp.no_frameworks))} "
            "(a profile; `fwsetup doctor --json > NODE.json` on the node records them)"
        )
    for f in cmp.findings:  # what breaks a multi-node job: collective libraries, interfaces, clocks
        con.print(f"  {MARKS[f.severity]} {escape(f.title)}")
        for text in (f.detail, f.remedy and f"→ {f.remedy}"):
            if text:
                con.print(f"      [dim]{escape(text)}[/]")
    raise typer.Exit(cmp.exit_code)


# -- rendering ------------------------------------------------------------------------------------------

MARKS = {
    "ok": "[bold green]✔[/]",
    "warning": "[bold yellow]![/]",
    "error": "[bold red]✘[/]",
    "info": "[bold blue]i[/]",
    "none": "[dim]·[/]",
}


def _worst(findings: list[Finding], prefixes: tuple[str, ...], default: str = "ok") -> str:
    sev = [f.severity for f in findings if f.id.startswith(prefixes)]
    for s in ("error", "warning", "info"):
        if s in sev:
            return s
    return default


def _gib(n: int | None) -> str:
    return f"{n / 1024**3:.1f} GiB" if n is not None else "unknown"


class _Section:
    """One heading and its checks, as a grid: mark, label, text (long text wraps in its own column)."""

    def __init__(self, console: Console, title: str) -> None:
        from rich.table import Table

        self.console = console
        self.title = title
        self.table = Table.grid(padding=(0, 1))
        self.table.add_column(width=1)
        self.table.add_column(min_width=13, no_wrap=True)
        self.table.add_column(overflow="fold")

    def add(self, mark: str, label: str, text: str) -> None:
        from rich.text import Text

        self.table.add_row(MARKS[mark], escape(label), Text(printable(text)))

    def print(self) -> None:
        from rich.padding import Padding

        self.console.print(self.title)
        _print_trimmed(self.console, Padding(self.table, (0, 0, 0, 2)))


_TRAILING = re.compile(r"[ ]+((?:\x1b\[[0-9;]*m)*)$")


def _print_trimmed(console: Console, renderable: object) -> None:
    # Grids pad every cell to the column width: drop the trailing blanks so logs and diffs stay clean.
    with console.capture() as cap:
        console.print(renderable)
    text = "\n".join(_TRAILING.sub(r"\1", line) for line in cap.get().splitlines())
    console.file.write(text + "\n")
    console.file.flush()


def _machine(sec: _Section, host: HostProfile, findings: list[Finding]) -> None:
    o, c = host.os, host.cpu
    distro = " ".join(x for x in (o.distro_id, o.distro_version) if x)
    os_text = f"{o.system or '?'} {o.release or ''}".strip() + (f" ({distro})" if distro else "")
    if o.libc:
        os_text += f", {o.libc} {o.libc_version or ''}".rstrip()
    if o.wsl:
        os_text += ", WSL"
    sec.add("ok" if o.system else "none", "OS", os_text)
    cpu_text = ", ".join(
        x for x in (c.model, c.arch, f"{c.cores} cores" if c.cores else None, c.microarch) if x
    )
    if c.features:
        cpu_text += ": " + " ".join(c.features)
    sec.add(_worst(findings, ("cpu.",)), "CPU", cpu_text or "unknown")
    sec.add("ok" if host.memory_bytes else "none", "Memory", _gib(host.memory_bytes))
    sec.add(
        _worst(findings, ("disk.",)),
        "Disk",
        f"{_gib(host.disk_free_bytes)} free at {host.disk_path or '?'}",
    )
    p = host.python
    sec.add("ok", "Python", f"{p.version or '?'} ({p.implementation or '?'}) {p.executable or ''}".rstrip())


def _nvidia(sec: _Section, host: HostProfile, findings: list[Finding]) -> None:
    nv = host.nvidia
    mark = _worst(findings, ("nvidia.",))
    if nv.nvml == "ok":
        sec.add(
            mark,
            "Driver",
            f"{nv.driver_version or '?'} (supports CUDA {nv.cuda_driver_version or '?'}), "
            f"{len(nv.gpus)} GPU(s)",
        )
    elif nv.nvml == "missing":
        sec.add(mark, "Driver", "not installed (the NVML library libnvidia-ml.so.1 was not found)")
    else:
        sec.add(mark, "Driver", f"not working: {nv.nvml_detail or nv.nvml}")
    for g in nv.gpus:
        gmark = _worst(findings, (f"nvidia.gpu{g.index}.",))
        parts = [
            g.name or "?",
            _gib(g.memory_bytes) if g.memory_bytes else None,
            f"compute capability {g.compute_capability}" if g.compute_capability else None,
            "MIG on" if g.mig else None,
            g.error,
        ]
        sec.add(gmark, f"GPU {g.index}", ", ".join(p for p in parts if p))
    for link in nv.links:
        kind = f"NVLink x{link.nvlink_count}" if link.kind == "nvlink" and link.nvlink_count else link.kind
        sec.add("none", f"GPU {link.a}↔{link.b}", kind + (f" ({link.detail})" if link.detail else ""))
    if nv.pci_devices and nv.nvml != "ok":
        sec.add(mark, "PCI", "NVIDIA GPU(s) on the bus: " + ", ".join(nv.pci_devices))
    elif nv.nvml != "ok":
        sec.add("none", "PCI", "no NVIDIA GPU on the PCI bus" if host.os.system == "linux" else "not scanned")
    tk = host.cuda_toolkit
    if tk.version or tk.nvcc:
        where = ", ".join(x for x in (tk.home, f"nvcc {tk.nvcc}" if tk.nvcc else None) if x)
        sec.add(_worst(findings, ("cuda.",)), "CUDA toolkit", f"{tk.version or '?'} ({where})")
    else:
        sec.add("none", "CUDA toolkit", "not installed (pip builds of the frameworks bring their own)")
    dnn = host.cudnn
    sec.add(
        "ok" if dnn.version else "none",
        "cuDNN",
        f"{dnn.version} ({dnn.path})" if dnn.version else "not found on the system",
    )


def _amd_intel(sec: _Section, host: HostProfile, findings: list[Finding], intel: Sequence[IntelGPU]) -> None:
    """AMD and Intel GPUs (shown only on machines that have one)."""
    amd = host.amd
    if amd.gpus or amd.pci_devices:
        mark = _worst(findings, ("amd.driver", "amd.no-"))
        rocm = f"ROCm {amd.rocm_version} ({amd.rocm_path})" if amd.rocm_version else "no ROCm installation"
        driver = "amdgpu loaded (/sys/class/kfd)" if amd.kfd else "amdgpu not loaded"
        access = {True: ", /dev/kfd usable", False: ", no access to /dev/kfd", None: ""}[amd.kfd_access]
        sec.add(mark, "AMD", f"{driver}{access}; {rocm}")
        for g in amd.gpus:
            parts = [g.name, g.gfx, _gib(g.memory_bytes) if g.memory_bytes else None, g.pci]
            sec.add(
                _worst(findings, (f"amd.gpu{g.index}.",)), f"GPU {g.index}", ", ".join(p for p in parts if p)
            )
        if not amd.gpus:
            sec.add(mark, "PCI", "AMD GPU(s) on the bus: " + ", ".join(amd.pci_devices))
    if intel:
        lz = f"Level Zero {host.intel.level_zero}" if host.intel.level_zero else "no Level Zero loader"
        sec.add(_worst(findings, ("intel.driver", "intel.no-")), "Intel", lz)
        for ig in intel:
            gmark = _worst(findings, (f"intel.gpu{ig.index}.",))
            sec.add(gmark, f"GPU {ig.index}", f"{ig.name}, {ig.driver or 'no driver'}, {ig.pci}")


def _tools(sec: _Section, host: HostProfile, findings: list[Finding]) -> None:
    d, t = host.tools.docker, host.tools
    mark = _worst(findings, ("docker.",))
    if d.server:
        rt = {True: ", NVIDIA runtime", False: ", no NVIDIA runtime", None: ""}[d.nvidia_runtime]
        text = f"client {d.client or '-'}, engine {d.server} at {d.host or '?'}{rt}"
    elif d.engine == "not-answering":
        text = f"client {d.client or '-'}; engine not answering at {d.host or '?'}"
    elif d.client:
        text = f"client {d.client}; engine unreachable at {d.host or '?'}"
    else:
        text = "not installed"
    if d.buildx:
        text += f", buildx {d.buildx}"
    sec.add(mark, "Docker", text)
    sec.add(
        _worst(findings, ("tools.",)),
        "Installers",
        ", ".join(f"{n} {v}" for n, v in (("uv", t.uv), ("pip", t.pip)) if v) or "none",
    )
    conda = ", ".join(
        f"{n} {v}" for n, v in (("conda", t.conda), ("mamba", t.mamba), ("micromamba", t.micromamba)) if v
    )
    sec.add("ok" if conda else "none", "Conda", conda or "not installed")


def _framework_line(fw: Framework, findings: list[Finding], host: HostProfile) -> tuple[str, str]:
    from fwsetup.ops.doctor_frameworks import cpu_build_gpus  # lazy: as run_doctor above

    mark = _worst(findings, (f"framework.{fw.name}.", f"env.ld-library-path.shadows-{fw.name}"), default="")
    g = fw.gpu
    build = {
        "cpu": "CPU build",
        "cuda": f"CUDA {fw.cuda} build" if fw.cuda else "CUDA build",
        "rocm": "ROCm build",
        "backend": f"backend {fw.details.get('backend', '?')}",
    }.get(fw.build, "build unknown")
    text = f"{fw.version or '?'}  {build}"
    if fw.build == "backend":
        pass  # its GPU is its backend's: see that framework's line
    elif g.visible:
        text += f"; sees the GPU ({', '.join(g.devices)})" if g.devices else "; sees the GPU"
    elif fw.build == "cpu" and g.checked == "metadata" and g.visible is False:
        text += cpu_build_gpus(host)  # the label says "CPU build" already: the reason without it
    elif g.reason:
        text += f"; {g.reason}"
    how = {"metadata": "decided from metadata, not imported", "import": "imported", "skipped": "not checked"}[
        g.checked
    ]
    if fw.imported is not None:
        if fw.imported.ok:
            how = (
                f"imported in {fw.imported.seconds:.1f} s" if fw.imported.seconds is not None else "imported"
            )
        else:
            how = "import failed"
    text += f"  [{how}]"
    if not mark:
        mark = "ok" if (g.visible or fw.build in ("cpu", "backend") or g.checked == "metadata") else "none"
    return mark, text


def render(report: DoctorReport, console: Console) -> None:
    from rich.padding import Padding
    from rich.table import Table
    from rich.text import Text

    findings = list(report.findings)
    host = report.host
    src = "" if report.host_source == "detected" else f" (from {report.host_source})"
    sections = [
        (f"[bold]Machine[/]{escape(src)}", _machine),
        ("[bold]NVIDIA[/]", _nvidia),
        *(
            [("[bold]AMD / Intel GPUs[/]", lambda s, h, f: _amd_intel(s, h, f, report.intel_gpus))]
            if report.other_gpus
            else []
        ),
        ("[bold]Tools[/]", _tools),
    ]
    for title, fill in sections:
        sec = _Section(console, title)
        fill(sec, host, findings)
        sec.print()
    env = report.environment
    if env is not None:
        head = f"{env.executable}"
        if env.version:
            head += f" (Python {env.version}, {env.kind or '?'}, from {env.source})"
        sec = _Section(console, f"[bold]Environment[/] {escape(head)}")
        if env.error:
            sec.add(_worst(findings, ("env.inspect",)), "inspect", env.error)
        elif not report.frameworks:
            sec.add("info", "frameworks", "none installed")
        for fw in report.frameworks:
            mark, text = _framework_line(fw, findings, host)
            sec.add(mark, fw.name, text)
        sec.print()
    if report.envs:
        sec = _Section(console, "[bold]Environments fwsetup made[/]")
        for i, c in enumerate(report.envs):
            what = " ".join(
                x for x in (c.title or c.framework, c.version, f"({c.variant})" if c.variant else "") if x
            )
            text = {
                "ok": f"{what}: imports with its python in a clean shell; files as locked",
                "missing": "gone (deleted by hand)",
                "not-fwsetup": "no longer the environment fwsetup made there",
                "not-an-env": "not an environment fwsetup made",
                "damaged": f"{what}: files changed since the install",
                "broken": f"{what}: does not import",
            }[c.state]
            smoke = c.smoke.get("status")
            if c.state == "ok" and smoke:
                text += f"; smoke {smoke}" + (f" {c.smoke['date']}" if c.smoke.get("date") else "")
            mark = "ok" if c.state == "ok" else _worst(findings, (f"env.made.{i}.",), "info")
            sec.add(mark, c.path, text)
        sec.print()
    console.print("[bold]Findings[/]")
    if not findings:
        console.print(f"  {MARKS['ok']} nothing to report")
    grid = Table.grid(padding=(0, 1))
    grid.add_column(width=1)
    grid.add_column(overflow="fold")
    for f in findings:  # findings quote what the machine or a profile file said: shown by the one rule
        body = Text(printable(f.title), style="bold")
        if f.detail:
            body.append("\n" + printable(f.detail), style="dim" if f.severity == "info" else "")
        if f.remedy:
            body.append("\n→ ", style="cyan")
            body.append(printable(f.remedy))
        grid.add_row(MARKS[f.severity], body)
    if findings:
        _print_trimmed(console, Padding(grid, (0, 0, 0, 2)))
    n = {s: sum(1 for f in findings if f.severity == s) for s in ("error", "warning", "info")}
    if n["error"]:
        console.print(
            f"[bold red]{n['error']} error(s)[/], {n['warning']} warning(s), {n['info']} note(s): exit 1"
        )
    elif n["warning"]:
        console.print(f"[bold green]No errors[/]; {n['warning']} warning(s), {n['info']} note(s)")
    else:
        console.print(f"[bold green]No problems found[/] ({n['info']} note(s))")
