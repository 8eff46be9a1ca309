"""doctor's look at the environments fwsetup made (issue 23): each one the registry knows (fwsetup.envs) and each
`doctor --env PATH`, checked as a person meets it:

- it is still there, and fwsetup's (envs.owned_problem): one deleted by hand is reported, and forgotten by the
  repair (`fwsetup remove PATH`, which only drops it from the registry);
- its files are what its lock says (installed_files.check_installed_files: every locked Python distribution against its
  RECORD, and the files written to since the swap, files.json);
- its framework imports with ENV/bin/python in a clean environment: no activation, no fwsetup variable, no
  PYTHONPATH, none of the caller's settings (what the env needs at run time it carries itself);
- its last smoke result (envs.smoke_status): failed or untested is said, with the command that tests it.

Each problem comes with the exact command that repairs it (EnvCheck.repair), the one `doctor --fix` runs.
Advice names only tools the env has (list_command: `uv pip list --python ENV/bin/python` where it has no pip).
"""

from __future__ import annotations

import os
import shlex
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from fwsetup import envmeta, envs, installed_files, proc
from fwsetup.backends.transaction import distributions
from fwsetup.ops.doctor_findings import Finding, finding
from fwsetup.ops.doctor_words import FindingCode
from fwsetup.recipes.load import load_recipes

State = Literal["ok", "missing", "not-fwsetup", "damaged", "broken", "not-an-env"]
IMPORT_TIMEOUT = 180.0
# What a clean login shell has: the system's PATH, a HOME, a locale. Nothing of fwsetup's or the caller's.
CLEAN_PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass(frozen=True, kw_only=True)
class EnvCheck:
    path: str
    state: State
    source: str  # "registry" | "--env"
    framework: str | None = None
    title: str | None = None
    version: str | None = None
    variant: str | None = None
    method: str | None = None
    import_name: str | None = None
    imported: bool | None = None  # None: not tried (missing, damaged)
    import_error: str | None = None
    damage: str | None = None  # what check_installed_files says, in words
    damaged: tuple[str, ...] = ()  # the distributions whose files are missing or changed
    smoke: dict[str, Any] = field(default_factory=dict)  # envs.SmokeStatus as a dict
    problem: str | None = None  # why it is not an environment fwsetup made (not-fwsetup, not-an-env)
    repair: str | None = None  # the exact command that repairs it (what `doctor --fix` runs)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["damaged"] = list(self.damaged)
        return d


def python_of(env: Path) -> Path:
    return env / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def has_pip(prefix: Path | str) -> bool:
    """Whether the environment at `prefix` has pip installed (a venv uv made has none)."""

    return any(
        (site / "pip" / "__init__.py").is_file() for site in installed_files.site_packages(Path(prefix))
    )


def list_command(python: str, prefix: str | None) -> str:
    """The command that lists an environment's packages, with a tool it has: its pip, else uv (fwsetup's
    installer) pointed at it."""
    if (prefix and has_pip(prefix)) or (not prefix and python == sys.executable):
        return f"{shlex.quote(python)} -m pip list"
    return f"uv pip list --python {shlex.quote(python)}"


def clean_environ(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a user's plain `ENV/bin/python` starts in: the system PATH, HOME and the locale; no
    VIRTUAL_ENV, CONDA_PREFIX, PYTHONPATH, framework or fwsetup variable."""
    env = os.environ if environ is None else environ
    out = {"PATH": CLEAN_PATH, "HOME": env.get("HOME") or tempfile.gettempdir()}
    for key in ("LANG", "LC_ALL", "TMPDIR"):
        if env.get(key):
            out[key] = env[key]
    return out


def _import_name(framework: str | None) -> str | None:
    if not framework:
        return None
    try:
        recipe = load_recipes().get(framework)
        return recipe.import_name or recipe.name
    except Exception:  # noqa: BLE001 - a framework no recipe knows (a user's own recipe, gone): its own name
        return framework.replace("-", "_")


def import_in_env(
    env: Path, module: str, *, timeout: float, environ: Mapping[str, str] | None = None
) -> str | None:
    """Import `module` with ENV/bin/python in a clean environment, from a neutral folder; None when it
    imported, else why not (its last error line)."""

    with tempfile.TemporaryDirectory(prefix="fwsetup-doctor-") as cwd:
        res = proc.run(
            [str(python_of(env)), "-c", f"import {module}"],
            timeout=timeout,
            env=clean_environ(environ),
            cwd=cwd,
        )
    if res.ok:
        return None
    if res.returncode is None:
        return res.error or "it did not run"
    lines = [ln.strip() for ln in res.stderr.strip().splitlines() if ln.strip()]
    last = lines[-1][:300] if lines else ""
    return last or f"exit status {res.returncode}"


def repair_argv(
    env: Path,
    lock: Mapping[str, Any] | None,
    environ: Mapping[str, str] | None = None,
    *,
    force: bool = False,
) -> list[str] | None:
    """The command that puts the environment back as its lock says. A venv: `fwsetup sync ENV`, which rebuilds
    exactly the locked, hash-checked set in a staging folder, smoke-tests it and only then swaps it in (nothing
    half-done; the damaged packages are taken again, not from uv's cache). A conda env (sync rebuilds venvs
    only), and one that does not import although its files are intact (`force`: a sync of an intact env is a
    no-op): the install that made it, asked again (the same framework, version, Python, device, method and
    backend), which stages, smoke-tests and swaps the same way. Both with the --wheelhouse it was made with."""
    if not lock or not lock.get("framework"):
        return None
    # The folder of local wheels it was made from (--wheelhouse; lock.json says since issue 23)
    wheelhouse = lock.get("wheelhouse")
    local = ["--wheelhouse", wheelhouse] if isinstance(wheelhouse, str) and os.path.isdir(wheelhouse) else []
    if lock.get("method", "venv") == "venv" and not force:
        return ["fwsetup", "sync", str(env), *local]
    plan: Mapping[str, Any] = lock["plan"] if isinstance(lock.get("plan"), Mapping) else {}
    argv = ["fwsetup", "install", str(lock["framework"]), "--env", str(env)]
    if lock.get("version"):
        argv += ["--version", str(lock["version"])]
    if lock.get("python"):
        argv += ["--python", ".".join(str(lock["python"]).split(".")[:2])]
    if plan.get("accelerator") == "cpu":
        argv.append("--cpu")
    elif plan.get("accelerator"):
        argv.append("--gpu")
    if lock.get("method", "venv") != "venv":
        argv += ["--method", str(lock["method"])]
    if plan.get("backend"):
        argv += ["--backend", str(plan["backend"])]
    argv += local
    return [*argv, "--force"] if force else argv


def check_env(
    env: Path,
    *,
    source: str = "--env",
    timeout: float = IMPORT_TIMEOUT,
    environ: Mapping[str, str] | None = None,
) -> EnvCheck:
    """One environment, as a person meets it (see the module's docstring)."""

    env = Path(env).absolute()
    path = str(env)
    if not os.path.lexists(env) and source == "registry":  # deleted by hand
        return EnvCheck(
            path=path, state="missing", source=source, repair=shlex.join(["fwsetup", "remove", path])
        )
    problem = envs.owned_problem(env)
    if problem is not None:
        state: State = "not-fwsetup" if source == "registry" else "not-an-env"
        repair = shlex.join(["fwsetup", "remove", path]) if source == "registry" else None
        return EnvCheck(path=path, state=state, source=source, problem=problem, repair=repair)
    lock: dict[str, Any] = envmeta.read_lock_file(env) or {}
    plan: Mapping[str, Any] = lock["plan"] if isinstance(lock.get("plan"), Mapping) else {}
    base: dict[str, Any] = {
        "path": path,
        "source": source,
        "framework": lock.get("framework"),
        "title": plan.get("title") or lock.get("framework"),
        "version": lock.get("version"),
        "variant": lock.get("variant"),
        "method": lock.get("method", "venv"),
        "smoke": envs.smoke_status(env).as_dict(),
    }
    names: list[str] = []
    damage = installed_files.check_installed_files(env, distributions(lock), names)
    module = _import_name(lock.get("framework"))
    if damage:
        argv = repair_argv(env, lock, environ)
        return EnvCheck(state="damaged", damage=damage, damaged=tuple(names), import_name=module,
                        repair=shlex.join(argv) if argv else None, **base)  # fmt: skip
    error = import_in_env(env, module, timeout=timeout, environ=environ) if module else None
    argv = repair_argv(env, lock, environ, force=True) if error else None
    return EnvCheck(state="broken" if error else "ok", import_name=module, imported=error is None,
                    import_error=error, repair=shlex.join(argv) if argv else None, **base)  # fmt: skip


def check_envs(
    paths: Sequence[str | Path] = (),
    *,
    registry: bool = True,
    timeout: float = IMPORT_TIMEOUT,
    environ: Mapping[str, str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[EnvCheck]:
    """The registry's environments (unless `registry` is False) and `paths` (`--env`), each once, in order."""
    todo: dict[str, str] = {}
    if registry:
        for info in envs.known(environ, sizes=False, prune=False):
            todo.setdefault(info.path, "registry")
    for p in paths:
        todo[str(Path(p).expanduser().absolute())] = "--env"
    if not todo:
        return []
    if progress:
        progress(f"checking {len(todo)} environment{'s' if len(todo) != 1 else ''} fwsetup made …")
    with ThreadPoolExecutor(max_workers=min(4, len(todo))) as pool:
        futures = [
            pool.submit(check_env, Path(p), source=src, timeout=timeout, environ=environ)
            for p, src in todo.items()
        ]
        return [f.result() for f in futures]


def findings(checks: Sequence[EnvCheck]) -> list[Any]:
    """doctor's Findings for the checks (ids env.made.<n>.<what>; the remedy names the repair command): codes and
    facts, worded by doctor's one table (ops/doctor_words.py)."""
    out: list[Finding] = []
    for n, c in enumerate(checks):
        fid = f"env.made.{n}"
        what = f"{c.title or c.framework or 'environment'} {c.version or ''}".strip()
        python = str(python_of(Path(c.path)))
        where = {"path": c.path, "repair": c.repair}
        if c.state == "missing":
            out.append(finding("envs.gone", id=f"{fid}.missing", severity="warning", **where))
        elif c.state == "not-fwsetup":
            out.append(
                finding("envs.replaced", id=f"{fid}.replaced", severity="warning", problem=c.problem, **where)
            )
        elif c.state == "not-an-env":
            out.append(finding("envs.not-fwsetup", id=f"{fid}.not-fwsetup", severity="error", path=c.path,
                               problem=c.problem))  # fmt: skip
        elif c.state == "damaged":
            out.append(finding("envs.files-changed", id=f"{fid}.files-changed", severity="error", what=what,
                               damage=c.damage, **where))  # fmt: skip
        elif c.state == "broken":
            out.append(finding("envs.import-failed", id=f"{fid}.import-failed", severity="error", what=what,
                               python=python, import_name=c.import_name, import_error=c.import_error,
                               list_command=list_command(python, c.path), **where))  # fmt: skip
        if c.state in ("ok", "broken", "damaged") and c.smoke.get("status") in ("failed", "untested"):
            status = c.smoke["status"]
            code: FindingCode = "envs.smoke-failed" if status == "failed" else "envs.smoke-untested"
            out.append(finding(code, id=f"{fid}.smoke-{status}", severity="warning", what=what,
                               path=c.path, detail=str(c.smoke.get("detail") or ""),
                               smoke_command=f"fwsetup smoke {c.framework or 'NAME'} --python {shlex.quote(python)}"))  # fmt: skip
    return out


# -- doctor --fix ------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Repair:
    path: str
    command: str
    ok: bool
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def repairs(checks: Sequence[EnvCheck]) -> list[EnvCheck]:
    """The checks `doctor --fix` acts on: each with a repair command."""
    return [c for c in checks if c.repair and c.state in ("missing", "not-fwsetup", "damaged", "broken")]


def apply(
    check: EnvCheck, *, environ: Mapping[str, str] | None = None, output: Callable[[str], None] | None = None
) -> Repair:
    """Run one repair: forget an environment that is gone (or no longer fwsetup's: its files are never
    touched), or run the repair command (an install: staged, smoke-tested, swapped in; on failure the env is
    left as it was). The command's output goes to stderr (`output`: each line instead)."""
    assert check.repair is not None
    if check.state in ("missing", "not-fwsetup"):
        envs.forget(Path(check.path), environ)
        return Repair(path=check.path, command=check.repair, ok=True, detail="forgotten")
    import subprocess

    argv = shlex.split(check.repair)
    env = dict(os.environ if environ is None else environ)
    cp = subprocess.run(  # the command shown, run as shown: fwsetup with this interpreter
        [sys.executable, "-m", "fwsetup", *argv[1:]],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False,
    )  # fmt: skip
    lines = cp.stdout.splitlines()
    for line in lines:
        if output is not None:
            output(line)
        else:
            print(line, file=sys.stderr)
    last = next((ln.strip() for ln in reversed(lines) if ln.strip()), "")
    return Repair(path=check.path, command=check.repair, ok=cp.returncode == 0,
                  detail="" if cp.returncode == 0 else f"exit status {cp.returncode}: {last[:300]}")  # fmt: skip
