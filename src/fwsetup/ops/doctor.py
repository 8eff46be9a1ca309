"""doctor: what is wrong with this machine and its Python environment, and what to do about each problem.

`diagnose()` is pure: a HostProfile, the inspected environment and its frameworks in, Findings out, so it
is tested on crafted profiles. `run_doctor()` gathers those inputs (detection, one inspection script in the
target interpreter, and framework imports only where the answer is not already known from metadata).
The checks: ops/doctor_host.py (the machine), ops/doctor_frameworks.py (what is installed); the findings'
model: ops/doctor_findings.py; rendering: cli/doctor.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgspec

from fwsetup import envcheck
from fwsetup.detect import cuda as cuda_probe
from fwsetup.detect import environment, get_host
from fwsetup.detect.environment import Framework, GpuCheck, ImportResult, PythonEnv
from fwsetup.gpu_vendors import has_other_gpu, intel_gpus
from fwsetup.ops.doctor_findings import Finding, finding, sort_findings
from fwsetup.ops.doctor_frameworks import check_frameworks, damaged, decide_gpu, written_since_install
from fwsetup.ops.doctor_host import check_host
from fwsetup.profile import HostProfile, IntelGPU, to_dict

SCHEMA_VERSION = 1


class DoctorReport(msgspec.Struct, frozen=True, kw_only=True):
    schema_version: int = SCHEMA_VERSION
    host: HostProfile
    host_source: str = "detected"  # "detected" or the --host-profile path
    environment: PythonEnv | None = None
    frameworks: tuple[Framework, ...] = ()
    findings: tuple[Finding, ...] = ()
    # The environments fwsetup made (its registry, and --env PATH), each as a user meets it (fwsetup.envcheck)
    envs: tuple[Any, ...] = ()

    @property
    def exit_code(self) -> int:
        return 1 if any(f.severity == "error" for f in self.findings) else 0

    @property
    def intel_gpus(self) -> tuple[IntelGPU, ...]:
        """The Intel GPUs a framework could use (gpu_vendors.intel_gpus): what the report lists as Intel GPUs."""
        return tuple(intel_gpus(self.host))

    @property
    def other_gpus(self) -> bool:
        """An AMD or Intel GPU is here (working or not): the report has a section for them."""
        return bool(self.host.amd.gpus or self.host.amd.pci_devices or has_other_gpu(self.host))


def repairs(report: DoctorReport) -> list[envcheck.EnvCheck]:
    """What `doctor --fix` would repair among the environments fwsetup made (fwsetup.envcheck)."""
    return envcheck.repairs(report.envs)


def repair(check: envcheck.EnvCheck, *, output: Callable[[str], None] | None = None) -> envcheck.Repair:
    """Run one repair (fwsetup.envcheck.apply)."""
    return envcheck.apply(check, output=output)


def diagnose(
    host: HostProfile,
    env: PythonEnv | None = None,
    frameworks: Sequence[Framework] = (),
    *,
    cudart_on_path: Sequence[tuple[str, str, str | None]] = (),
    extra: Iterable[Finding] = (),
) -> tuple[Finding, ...]:
    """All findings for a host and an environment (pure)."""
    found = (
        check_host(host)
        + check_frameworks(host, env, frameworks, cudart_on_path=cudart_on_path)
        + list(extra)
    )
    return sort_findings(found)


# -- gathering ------------------------------------------------------------------------------------------


def _env_findings(env: PythonEnv) -> list[Finding]:
    if env.error is None:
        return []
    explicit = env.source == "--python"
    return [
        finding(
            "env.inspect-failed",
            id="env.inspect-failed",
            severity="error" if explicit else "warning",
            python=env.executable,
            source=env.source,
            error=env.error,
            explicit=explicit,
        )
    ]


def run_doctor(
    *,
    host_profile: str | None = None,
    python: str | None = None,
    deep: bool = False,
    import_timeout: float | None = None,
    progress=None,
    envs: Sequence[str] = (),
    made_envs: bool = True,
) -> DoctorReport:
    """The report. `envs` (--env PATH) and, with `made_envs` on a detected host, every environment fwsetup's
    registry knows: each checked as a user meets it (fwsetup.envcheck: still there, files as locked, imports in
    a clean shell, last smoke result), with the command that repairs it."""

    host = get_host(host_profile)
    exe, source = environment.resolve_python(python)
    env, frameworks = environment.inspect_env(exe, source=source)
    frameworks = written_since_install(env, frameworks)
    from_file = bool(host_profile)

    decided: dict[str, GpuCheck | None] = {fw.name: decide_gpu(host, fw) for fw in frameworks}
    # Import only what metadata cannot answer (a CUDA build on a machine with a usable GPU), or everything
    # with --deep. A profile read from a file describes another machine: importing here would not answer.
    # A framework whose files are missing is reported as damaged (check_frameworks), not imported.
    to_import = [
        fw for fw in frameworks if not from_file and not damaged(fw) and (deep or decided[fw.name] is None)
    ]
    results: dict[str, tuple[ImportResult, GpuCheck | None]] = {}
    if to_import:
        if progress:
            progress("importing " + ", ".join(fw.name for fw in to_import) + f" in {exe} …")
        timeout = import_timeout or environment.IMPORT_TIMEOUT
        with ThreadPoolExecutor(max_workers=min(4, len(to_import))) as pool:
            futures = {
                fw.name: pool.submit(environment.import_check, exe, fw.name, timeout=timeout)
                for fw in to_import
            }
            results = {name: f.result() for name, f in futures.items()}
    final = []
    for fw in frameworks:
        gpu = decided[fw.name]
        imported = None
        if fw.name in results:
            imported, checked = results[fw.name]
            if checked is not None and (gpu is None or gpu.visible is None or checked.visible):
                gpu = checked
            elif checked is not None and gpu is not None:
                gpu = msgspec.structs.replace(gpu, devices=checked.devices)
        if gpu is None:
            gpu = GpuCheck(
                visible=None,
                checked="skipped",
                reason="not imported: the host profile was read from a file" if from_file else None,
            )
        final.append(msgspec.structs.replace(fw, gpu=gpu, imported=imported))
    cudart = cuda_probe.cudart_on_library_path()
    checks: list[Any] = []
    if envs or (made_envs and not from_file):  # a profile from a file is another machine: not its envs
        checks = envcheck.check_envs(
            envs,
            registry=made_envs and not from_file,
            timeout=import_timeout or envcheck.IMPORT_TIMEOUT,
            progress=progress,
        )
    extra = _env_findings(env)
    if checks:
        extra += envcheck.findings(checks)
    findings = diagnose(host, env, final, cudart_on_path=cudart, extra=extra)
    return DoctorReport(
        host=host,
        host_source=host_profile or "detected",
        environment=env,
        frameworks=tuple(final),
        findings=findings,
        envs=tuple(checks),
    )


def report_to_json(report: DoctorReport) -> str:

    data = {
        "schema_version": report.schema_version,
        "host": to_dict(report.host),
        "host_source": report.host_source,
        "environment": msgspec.to_builtins(report.environment) if report.environment else None,
        "frameworks": msgspec.to_builtins(list(report.frameworks)),
        "findings": [
            {k: v for k, v in msgspec.to_builtins(f).items() if k != "facts"} for f in report.findings
        ],
        "envs": [c.as_dict() for c in report.envs],
        "summary": {
            s: sum(1 for f in report.findings if f.severity == s) for s in ("error", "warning", "info")
        },
    }
    return msgspec.json.format(msgspec.json.encode(data), indent=2).decode()
