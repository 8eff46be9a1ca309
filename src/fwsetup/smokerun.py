"""Run a smoke script with some interpreter and turn its report into a value, or a SmokeError with the reason.

The interpreter is an argv prefix, so the same code checks a venv (`[env/bin/python]`), any Python
(`fwsetup smoke --python`) or a container (`["docker", "run", "--rm", ..., image, "/opt/venv/bin/python"]`:
the script path is then the path *inside* the container). The runner is injectable for tests and for
callers that run commands their own way; it has the signature of fwsetup.proc.run.
"""

from __future__ import annotations

import contextlib
import shlex
import signal
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from fwsetup import proc
from fwsetup.errors import SmokeError
from fwsetup.plan import SmokeSpec
from fwsetup.smoke import parse_report, script_path

SMOKE_TIMEOUT = 900.0  # seconds; Theano's first compile alone takes ~20 s on 2 cores, TF imports in ~5 s


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
    return args


def smoke_env(spec: SmokeSpec, plan_env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment variables the smoke test needs: the plan's run-time variables, then the spec's."""
    return {**dict(plan_env or {}), **spec.env}


def smoke_argv(argv_prefix: Sequence[str], script: Path | str, spec: SmokeSpec, *, steps: int | None = None) -> list[str]:
    """The full command: prefix + script + arguments. A bare name ("pytorch") is resolved to fwsetup's own
    script; a path is used as given (it may be a path inside a container)."""
    if isinstance(script, str) and "/" not in script:
        script = script_path(script)
    return [*map(str, argv_prefix), str(script), *smoke_args(spec, steps=steps)]


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

    env: the whole environment of the child (default: this process's); env_overrides: added on top (the
    plan's and spec's variables, see smoke_env()). where: how to name the environment in messages
    ("in /path/to/env"). log_file: the command and all its output are appended there.
    """
    argv = smoke_argv(argv_prefix, script, spec, steps=steps)
    overrides = {**spec.env, **dict(env_overrides or {})}
    res = runner(argv, timeout=timeout, env=env, env_overrides=overrides)
    if log_file is not None:
        with contextlib.suppress(OSError), open(log_file, "a") as f:
            f.write(f"+ {shlex.join(argv)}\n--- stdout\n{res.stdout}\n--- stderr\n{res.stderr}\n")
    report = parse_report(res.stdout)
    if res.ok and report is not None and report.get("ok") is True:
        _check_device(report, spec, where)
        return report
    raise SmokeError(_reason(res, report, spec, where, timeout), hint=_hint(res, report, log_file))


def _framework(report: dict[str, Any] | None, spec: SmokeSpec) -> str:
    return str((report or {}).get("framework") or Path(spec.script).stem.removeprefix("train_"))


def _reason(res: proc.Result, report: dict[str, Any] | None, spec: SmokeSpec, where: str, timeout: float) -> str:
    head = f"the smoke test of {_framework(report, spec)} failed" + (f" {where}" if where else "")
    if report is not None and report.get("error"):
        return f"{head}: {report['error']}"
    if res.error and "timed out" in res.error:
        return f"{head}: it did not finish in {timeout:g} s"
    if res.returncode is None:
        return f"{head}: could not start {res.argv[0]} ({res.error or 'unknown error'})"
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
    return f"{head}: exit status {res.returncode} with report ok={report.get('ok')!r}"


def _check_device(report: dict[str, Any], spec: SmokeSpec, where: str) -> None:
    # The script checks this itself; a second look here keeps a wrong or old script from passing.
    if spec.device == "cpu":
        return
    device = str(report.get("device", "")).lower()
    if not any(word in device for word in ("cuda", "gpu", "mps")):
        msg = f"the smoke test of {_framework(report, spec)} ran on {device or 'an unknown device'}, not {spec.device}" + (
            f" {where}" if where else ""
        )
        raise SmokeError(msg)


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


def _hint(res: proc.Result, report: dict[str, Any] | None, log_file: Path | None) -> str | None:
    tail = "\n".join(res.stderr.strip().splitlines()[-8:])
    parts = []
    if tail and (report is None or not report.get("error")):
        parts.append("last lines of its output:\n" + tail)
    if log_file is not None:
        parts.append(f"full output: {log_file}")
    return "\n".join(parts) or None
