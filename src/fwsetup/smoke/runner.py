"""Run a smoke script with some interpreter and turn its report into a value, or a SmokeError with the reason.

The interpreter is an argv prefix, so the same code checks a venv (`[env/bin/python]`), any Python
(`fwsetup smoke --python`) or, through `check_result`, a container (DockerBackend.smoke: the engine runs
the command, this module judges what came back). Every path validates the report the same way
(`SmokeReport`, `check_result`): the JSON line must be there, say ok, and name the device asked for (a
GPU run that trained on the CPU fails). The runner is injectable for tests and for callers that run
commands their own way; it has the signature of fwsetup.proc.run (whose children die with fwsetup).
"""

from __future__ import annotations

import contextlib
import shlex
import signal
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import msgspec

from fwsetup import proc
from fwsetup.errors import SmokeError
from fwsetup.plan import SmokeSpec
from fwsetup.smoke import interpreter_of, parse_report, script_path

SMOKE_TIMEOUT = 900.0  # seconds; Theano's first compile alone takes ~20 s on 2 cores, TF imports in ~5 s
# A report's device naming one of these ran on an accelerator (ROCm's is "cuda", Intel's "xpu").
GPU_WORDS = ("cuda", "gpu", "mps", "xpu", "rocm")


class SmokeReport(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The JSON line a smoke script prints (smoke/_harness.py; DESIGN.md "Smoke tests"), validated.

    Keys a script adds beyond these (backend, optimizer, distributed, cuda_build, …) are kept in `extra`
    and written back by to_dict(), so the report shown to users and kept in lock.json is the script's own.
    """

    ok: bool
    framework: str = ""
    version: str | None = None
    device: str | None = None
    devices: int | None = None
    steps: int | None = None
    loss_before: float | None = None
    loss_after: float | None = None
    seconds: float | None = None
    import_seconds: float | None = None
    seconds_total: float | None = None
    python: str | None = None
    device_requested: str | None = None
    all_gpus: bool | None = None
    error: str | None = None
    extra: dict[str, Any] = msgspec.field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SmokeReport:
        """msgspec.ValidationError when a known key has the wrong type."""
        known = set(cls.__struct_fields__) - {"extra"}
        body = {k: v for k, v in data.items() if k in known}
        extra = {k: v for k, v in data.items() if k not in known}
        return msgspec.convert({**body, "extra": extra}, cls, strict=False)

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in msgspec.structs.asdict(self).items() if k != "extra" and v is not None}
        return {**out, **self.extra}

    def on_accelerator(self) -> bool:
        device = (self.device or "").lower()
        return any(word in device for word in GPU_WORDS)


class Runner(Protocol):
    def __call__(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        env: Mapping[str, str] | None = None,
        env_overrides: Mapping[str, str] | None = None,
    ) -> proc.Result: ...


def smoke_args(spec: SmokeSpec, *, steps: int | None = None) -> list[str]:
    """The script's arguments for a SmokeSpec."""
    args = ["--device", spec.device]
    if spec.all_gpus:
        args.append("--all-gpus")
    if steps is not None:
        args += ["--steps", str(steps)]
    if spec.backend:
        args += ["--backend", spec.backend]
    return args


# What a new environment's smoke test must not inherit from the caller's shell: another environment's
# activation (VIRTUAL_ENV, CONDA_PREFIX), a PYTHONHOME or PYTHONPATH that would load other packages.
_NOT_INHERITED = ("VIRTUAL_ENV", "PYTHONHOME", "PYTHONPATH", "CONDA_PREFIX")


def environment_for(base: Mapping[str, str]) -> dict[str, str]:
    """The one environment a freshly built environment (venv or conda) is smoke-tested in: the caller's,
    without another environment's activation, and with the user's site-packages off."""
    out = {k: v for k, v in base.items() if k not in _NOT_INHERITED}
    out["PYTHONNOUSERSITE"] = "1"
    return out


def smoke_argv(
    argv_prefix: Sequence[str], script: Path | str, spec: SmokeSpec, *, steps: int | None = None
) -> list[str]:
    """The full command: prefix + script + arguments. A bare name ("pytorch") is resolved to fwsetup's own
    script; a path is used as given (it may be a path inside a container). A Lua script (Torch7) runs on
    LuaJIT whatever the prefix names (fwsetup.smoke.interpreter_of): the prefix is the environment's Python."""
    if isinstance(script, str) and "/" not in script:
        script = script_path(script)
    other = interpreter_of(script)
    prefix = [other] if other is not None else list(map(str, argv_prefix))
    return [*prefix, str(script), *smoke_args(spec, steps=steps)]


def run_smoke(
    argv_prefix: Sequence[str],
    script: Path | str,
    spec: SmokeSpec,
    *,
    env: Mapping[str, str] | None = None,
    env_overrides: Mapping[str, str] | None = None,
    timeout: float = SMOKE_TIMEOUT,
    log_file: Path | None = None,
    runner: Runner | Callable[..., proc.Result] = proc.run,
    where: str = "",
    steps: int | None = None,
) -> dict[str, Any]:
    """Run the smoke test; return its report (the parsed JSON line) or raise SmokeError with the reason.

    env: the whole environment of the child (default: this process's); env_overrides: added on top. Nothing
    else is added: an environment fwsetup made carries the plan's run-time variables itself
    (backends/envvars), and its smoke test sees only what a user's command would. where: how to name the environment in messages
    ("in /path/to/env"). log_file: the command and all its output are appended there.
    """
    argv = smoke_argv(argv_prefix, script, spec, steps=steps)
    res = runner(argv, timeout=timeout, env=env, env_overrides=dict(env_overrides or {}))
    if log_file is not None:
        with contextlib.suppress(OSError), open(log_file, "a") as f:
            cut = f"--- ({_left_out(res)})\n" if res.left_out else ""
            f.write(f"+ {shlex.join(argv)}\n{cut}--- stdout\n{res.stdout}\n--- stderr\n{res.stderr}\n")
    report = check_result(
        res,
        device=spec.device,
        backend=spec.backend,
        framework=_script_framework(spec),
        where=where,
        timeout=timeout,
        log_file=log_file,
    )
    return report.to_dict()


def check_result(
    res: proc.Result,
    *,
    device: str,
    framework: str,
    backend: str | None = None,
    where: str = "",
    timeout: float = SMOKE_TIMEOUT,
    log_file: Path | None = None,
) -> SmokeReport:
    """Judge what a smoke run gave back (exit status, stdout, stderr), wherever it ran: the report, or
        SmokeError with the reason. `device` is the device asked for: a report from a GPU run (cuda, mps) that
        names no accelerator fails, even when the script said ok; so does one that names another backend than
    `backend` (the plan's: Keras 3's tensorflow, jax or torch)."""
    raw = parse_report(res.stdout)
    report: SmokeReport | None = None
    if raw is not None:
        try:
            report = SmokeReport.from_dict(raw)
        except msgspec.ValidationError as exc:
            head = _head(framework, where)
            msg = f"{head}: its report is malformed ({exc})"
            raise SmokeError(msg, hint=_hint(res, None, log_file)) from None
    if res.ok and report is not None and report.ok:
        _check_device(report, device, framework, where)
        _check_backend(report, backend, framework, where)
        return report
    raise SmokeError(_reason(res, report, framework, where, timeout), hint=_hint(res, report, log_file))


def _script_framework(spec: SmokeSpec) -> str:
    return Path(spec.script).stem.removeprefix("train_")


def _head(framework: str, where: str) -> str:
    return f"the smoke test of {framework} failed" + (f" {where}" if where else "")


def _reason(res: proc.Result, report: SmokeReport | None, framework: str, where: str, timeout: float) -> str:
    head = _head((report.framework if report else "") or framework, where)
    if report is not None and report.error:
        return f"{head}: {report.error}"
    if res.timed_out:
        return f"{head}: it did not finish in {timeout:g} s"
    if res.returncode is None:
        return f"{head}: could not start {res.argv[0] if res.argv else 'it'} ({res.error or 'unknown error'})"
    last = _last_line(res.stderr)
    if res.returncode < 0 or res.returncode > 128:
        signum = -res.returncode if res.returncode < 0 else res.returncode - 128
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        what = f"the interpreter was killed by {name}"
        if name == "SIGILL":
            what += " (an instruction this CPU lacks: the build needs newer CPU features, e.g. AVX)"
        elif name == "SIGKILL":
            what += " (out of memory?)"
        return f"{head}: {what}" + (f"; last error line: {last}" if last else "")
    if report is None:
        return f"{head}: it printed no report (exit status {res.returncode})" + (f"; {last}" if last else "")
    return f"{head}: exit status {res.returncode} with report ok={report.ok!r}"


def _check_device(report: SmokeReport, device: str, framework: str, where: str) -> None:
    # The script checks this itself; a second look here keeps a wrong or old script from passing.
    if device == "cpu" or report.on_accelerator():
        return
    ran = (report.device or "").lower() or "an unknown device"
    msg = f"the smoke test of {report.framework or framework} ran on {ran}, not {device}" + (
        f" {where}" if where else ""
    )
    raise SmokeError(msg)


def _check_backend(report: SmokeReport, backend: str | None, framework: str, where: str) -> None:
    # The script checks this itself (--backend); a second look here keeps an old script from passing.
    ran = report.extra.get("backend")
    if not backend or ran == backend:
        return
    msg = (
        f"the smoke test of {report.framework or framework} ran on the {ran or 'unknown'} backend, not {backend}"
        + (f" {where}" if where else "")
    )
    raise SmokeError(msg)


def _left_out(res: proc.Result) -> str:
    return f"it printed more than fwsetup keeps: the first {res.left_out / 2**20:.1f} MiB of its output were left out"


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


def _hint(res: proc.Result, report: SmokeReport | None, log_file: Path | None) -> str | None:
    tail = "\n".join(line[:500] for line in res.stderr.strip().splitlines()[-8:])
    parts = []
    if tail and (report is None or not report.error):
        parts.append("last lines of its output:\n" + tail)
    if getattr(res, "left_out", 0):
        parts.append(_left_out(res))
    if log_file is not None:
        parts.append(f"full output: {log_file}")
    return "\n".join(parts) or None
