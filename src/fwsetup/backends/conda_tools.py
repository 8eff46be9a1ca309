"""The programs that solve and create conda environments: micromamba, mamba or conda when the machine has
one, else py-rattler (the `fwsetup[conda]` extra) in-process.

Each installer does two things: `solve` (no side effects: the exact packages, or one clear error) and
`create` (link the solved packages into a prefix). Solver output is never shown raw: `explain()` turns it
into one message that names the package and the constraint.

Prefixes: conda packages carry absolute paths (shebangs, text files with the build prefix replaced at
link time), so an environment cannot be renamed after it is made. Installers that can write the final
prefix into files while linking into another folder (`relocates`: py-rattler's alternative_target_prefix,
micromamba's --relocate-prefix) build in the staging folder; the others (conda, mamba 1.x) must build at
the final path (see conda.py for how the old environment is kept safe meanwhile).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fwsetup import proc
from fwsetup.backends import conda_messages
from fwsetup.backends.conda_env import CondaEnv
from fwsetup.errors import FwsetupError, InstallError, NetworkError, UsageError
from fwsetup.redact import redact_text
from fwsetup.settings import resolve

SOLVE_TIMEOUT = 900.0
CREATE_TIMEOUT = 3600.0
TOOL_NAMES = ("micromamba", "mamba", "conda")
RATTLER_MISSING = "install fwsetup[conda] or micromamba"


@dataclass(frozen=True, kw_only=True)
class Solution:
    """The solver's answer: one dict per package (name, version, build, channel, subdir, url, sha256,
    md5, size), and whatever the installer needs to link exactly these (`native`)."""

    packages: tuple[dict[str, Any], ...]
    native: Any = None


class Installer(ABC):
    kind: str  # micromamba | mamba | conda | rattler
    version: str = ""
    relocates: bool = False

    @property
    def label(self) -> str:
        return f"{self.kind} {self.version}".strip()

    @abstractmethod
    def solve(self, env: CondaEnv) -> Solution: ...

    @abstractmethod
    def create(self, env: CondaEnv, solution: Solution, *, prefix: Path, final: Path, log: Path) -> None:
        """Link the solution into `prefix`; files must name `final` (== prefix unless `relocates`)."""

    @abstractmethod
    def command(self, env: CondaEnv, *, prefix: Path, final: Path) -> list[str]:
        """The equivalent command line, for --dry-run and the log."""


# -- finding one ----------------------------------------------------------------------------------------


def _which(name: str, env: Mapping[str, str]) -> str | None:
    return shutil.which(name, path=env.get("PATH", os.defpath))


def find_installer(env: Mapping[str, str]) -> Installer:
    """micromamba, mamba or conda (MAMBA_EXE, CONDA_EXE, then PATH), else py-rattler.

    FWSETUP_CONDA_TOOL=micromamba|mamba|conda|rattler (or a path to one of the programs) picks one."""
    choice = resolve(env).conda_tool
    if choice == "rattler":
        return RattlerInstaller.load(env=env)
    if choice:
        exe = choice if os.sep in choice else _which(choice, env)
        if not exe or not os.access(exe, os.X_OK):
            msg = f"FWSETUP_CONDA_TOOL={choice}: no such program."
            raise UsageError(msg, hint="Use micromamba, mamba, conda, rattler or the path of one of them.")
        return CliInstaller.probe(exe, env)
    candidates: list[str] = []
    for var in ("MAMBA_EXE", "CONDA_EXE"):
        value = env.get(var)
        if value and os.path.isfile(value) and os.access(value, os.X_OK):
            candidates.append(value)
    for name in TOOL_NAMES:
        exe = _which(name, env)
        if exe:
            candidates.append(exe)
    if candidates:
        # micromamba first (it can build at a staging prefix), then mamba, then conda.
        order = {name: i for i, name in enumerate(TOOL_NAMES)}
        candidates.sort(key=lambda p: order.get(_kind_of(p), len(order)))
        return CliInstaller.probe(candidates[0], env)
    return RattlerInstaller.load(env=env)


def describe_installer(env: Mapping[str, str]) -> str:
    """What find_installer would use, without failing (for --dry-run)."""
    try:
        return find_installer(env).label
    except FwsetupError as exc:
        return f"none ({exc.message})"


def _kind_of(exe: str) -> str:
    base = os.path.basename(exe).lower()
    for name in TOOL_NAMES:
        if base.startswith(name):
            return name
    return "conda"


# -- micromamba / mamba / conda ---------------------------------------------------------------------------


@dataclass(kw_only=True)
class CliInstaller(Installer):
    exe: str
    kind: str = "conda"
    version: str = ""
    relocates: bool = False
    base_env: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def probe(cls, exe: str, env: Mapping[str, str]) -> CliInstaller:
        kind = _kind_of(exe)
        ver = proc.run([exe, "--version"], timeout=60, env=env)
        version = ver.stdout.strip().split()[-1] if ver.ok and ver.stdout.strip() else ""
        # libmamba's create (micromamba, mamba 2) links with the final prefix while writing elsewhere.
        helptext = proc.run([exe, "create", "--help"], timeout=60, env=env)
        relocates = "--relocate-prefix" in (helptext.stdout + helptext.stderr)
        return cls(exe=exe, kind=kind, version=version, relocates=relocates, base_env=dict(env))

    def _argv(self, env: CondaEnv, prefix: Path, final: Path, *, dry_run: bool) -> list[str]:
        argv = [self.exe, "create", "--yes", "--json", "--prefix", str(prefix), "--override-channels"]
        if dry_run:
            argv.append("--dry-run")
        elif self.relocates and prefix != final:
            argv += ["--relocate-prefix", str(final)]
        for channel in env.channels:
            argv += ["--channel", channel]
        return argv + list(env.specs)

    def command(self, env: CondaEnv, *, prefix: Path, final: Path) -> list[str]:
        return [a for a in self._argv(env, prefix, final, dry_run=False) if a != "--json"]

    def _run(self, argv: Sequence[str], env: CondaEnv, timeout: float) -> proc.Result:
        return proc.run(argv, timeout=timeout, env=self.base_env, env_overrides=env.solver_env())

    def solve(self, env: CondaEnv) -> Solution:
        # A prefix that is never created: --dry-run only solves (and fetches repodata).
        probe = Path(self.base_env.get("TMPDIR", "/tmp")) / f"fwsetup-solve-{os.getpid()}"
        res = self._run(self._argv(env, probe, probe, dry_run=True), env, SOLVE_TIMEOUT)
        data = _json_out(res.stdout)
        if not res.ok or (isinstance(data, dict) and data.get("success") is False):
            raise explain(_error_text(res, data), env, tool=self.label)
        actions = data.get("actions", {}) if isinstance(data, dict) else {}
        link = actions.get("LINK", []) if isinstance(actions, dict) else []
        fetch = {
            (r.get("name"), r.get("version")): r
            for r in actions.get("FETCH", []) or []
            if isinstance(r, dict)
        }
        packages = []
        for rec in link:
            if not isinstance(rec, dict):
                continue
            full = {**fetch.get((rec.get("name"), rec.get("version")), {}), **rec}
            packages.append(_package_entry(full))
        return Solution(packages=tuple(sorted(packages, key=lambda p: p["name"])))

    def create(self, env: CondaEnv, solution: Solution, *, prefix: Path, final: Path, log: Path) -> None:
        if prefix != final and not self.relocates:
            msg = f"{self.label} cannot build at {prefix} for {final} (no --relocate-prefix)."
            raise InstallError(msg)
        argv = self._argv(env, prefix, final, dry_run=False)
        res = self._run(argv, env, CREATE_TIMEOUT)
        _append_log(log, res)
        if not res.ok:
            raise explain(_error_text(res, _json_out(res.stdout)), env, tool=self.label)


def _json_out(stdout: str) -> Any:
    text = stdout.strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        # Some versions print a line before the JSON document (mamba #207).
        start = text.find("{")
        try:
            return json.loads(text[start:]) if start >= 0 else None
        except ValueError:
            return None


def _error_text(res: proc.Result, data: Any) -> str:
    parts: list[str] = []
    if isinstance(data, dict):
        for key in ("solver_problems", "message", "error", "exception_name"):
            value = data.get(key)
            if isinstance(value, list):
                parts.extend(str(v) for v in value)
            elif value:
                parts.append(str(value))
    parts.append(res.stderr)
    if not isinstance(data, dict):
        parts.append(res.stdout)
    text = "\n".join(p for p in parts if p and p.strip())
    return text or f"{_status(res)}, no output"


def _append_log(log: Path, res: proc.Result) -> None:
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a") as f:
            f.write(redact_text(f"+ {' '.join(res.argv)}\n{res.stdout}\n{res.stderr}\n"))  # channel tokens
            f.write(f"exit: {res.returncode if res.error is None else res.error}\n")
    except OSError:
        pass


# -- py-rattler -------------------------------------------------------------------------------------------


def _rattler_version() -> str:
    """py-rattler's version, or InstallError with what to install. Imports nothing heavy."""
    from importlib import metadata
    from importlib.util import find_spec

    if find_spec("rattler") is None:
        msg = (
            "no conda installer here: no micromamba, mamba or conda on PATH, and py-rattler is not installed."
        )
        raise InstallError(msg, hint=f"To create conda environments, {RATTLER_MISSING}.")
    try:
        return metadata.version("py-rattler")
    except metadata.PackageNotFoundError:
        return ""


@dataclass(kw_only=True)
class RattlerInstaller(Installer):
    """py-rattler (the `fwsetup[conda]` extra), driven in a child process (conda_rattler.py says why)."""

    kind: str = "rattler"
    version: str = ""
    relocates: bool = True
    cache_dir: Path | None = None
    base_env: Mapping[str, str] | None = None  # the child's environment (proxies, certificates); None: ours

    @classmethod
    def load(cls, cache_dir: Path | None = None, env: Mapping[str, str] | None = None) -> RattlerInstaller:
        return cls(version=_rattler_version(), cache_dir=cache_dir, base_env=env)

    def command(self, env: CondaEnv, *, prefix: Path, final: Path) -> list[str]:
        # No program runs: fwsetup solves and links with py-rattler. This is the micromamba equivalent.
        argv = ["micromamba", "create", "--yes", "--prefix", str(prefix), "--override-channels"]
        if prefix != final:
            argv += ["--relocate-prefix", str(final)]
        for channel in env.channels:
            argv += ["--channel", channel]
        return argv + list(env.specs)

    def _call(
        self, request: dict[str, Any], env: CondaEnv, timeout: float, log: Path | None = None
    ) -> list[dict[str, Any]]:
        request = {
            "channels": list(env.channels),
            "specs": list(env.specs),
            "cuda": env.cuda_driver,
            "cuda_arch": env.cuda_arch,
            **request,
        }
        child_env = dict(self.base_env or os.environ)
        child_env.pop("PYTHONHOME", None)
        # The child must import this fwsetup, whatever the caller's PYTHONPATH says.
        src = str(Path(__file__).resolve().parents[2])
        child_env["PYTHONPATH"] = os.pathsep.join(p for p in (src, child_env.get("PYTHONPATH", "")) if p)
        res = proc.run(
            [sys.executable, "-m", "fwsetup.backends.conda_rattler"],
            timeout=timeout,
            env=child_env,
            input=json.dumps(request),
        )
        if log is not None:
            _append_log(log, res)
        answer = _json_out(res.stdout.strip().splitlines()[-1] if res.stdout.strip() else "")
        if not isinstance(answer, dict):
            msg = f"{self.label} stopped without an answer ({_status(res)}): {conda_messages.first_line(res.stderr) if res.stderr.strip() else 'no output'}."
            raise InstallError(msg)
        if answer.get("ok"):
            return list(answer.get("packages", []))
        if answer.get("kind") == "import":
            msg = f"py-rattler cannot be imported: {conda_messages.first_line(answer.get('error', ''))}."
            raise InstallError(msg, hint=f"Reinstall it: {RATTLER_MISSING}.")
        if answer.get("kind") == "changed":
            msg = f"the packages in {', '.join(env.channels)} changed while fwsetup was installing."
            raise InstallError(msg, hint="Run the command again.")
        raise explain(str(answer.get("error", "")), env, tool=self.label)

    def solve(self, env: CondaEnv) -> Solution:
        packages = self._call({"op": "solve"}, env, SOLVE_TIMEOUT + 60)
        return Solution(packages=tuple(_package_entry(p) for p in packages))

    def create(self, env: CondaEnv, solution: Solution, *, prefix: Path, final: Path, log: Path) -> None:
        request = {
            "op": "create",
            "prefix": str(prefix),
            "final": str(final),
            "cache_dir": str(self.cache_dir) if self.cache_dir else None,
            "expect": [dict(p) for p in solution.packages],
        }
        self._call(request, env, CREATE_TIMEOUT, log=log)


def _package_entry(rec: Mapping[str, Any]) -> dict[str, Any]:
    """One lock-file row from a repodata/conda-meta/JSON-output record (field names differ by tool)."""
    channel = rec.get("channel") or rec.get("base_url") or ""
    if isinstance(channel, dict):  # conda's JSON: {"name": ..., "base_url": ...}
        channel = channel.get("base_url") or channel.get("name") or ""
    return {
        "name": str(rec.get("name", "")),
        "version": str(rec.get("version", "")),
        "build": str(rec.get("build") or rec.get("build_string") or ""),
        "channel": str(channel).rstrip("/"),
        "subdir": rec.get("subdir"),
        "url": rec.get("url"),
        "sha256": rec.get("sha256"),
        "md5": rec.get("md5"),
        "size": rec.get("size"),
    }


def read_conda_meta(prefix: Path) -> list[dict[str, Any]]:
    """The packages really installed in a prefix, from its conda-meta/*.json records (written the same
    way by conda, mamba, micromamba and rattler)."""
    rows = []
    meta = Path(prefix) / "conda-meta"
    for path in sorted(meta.glob("*.json")):
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(rec, dict) and rec.get("name"):
            rows.append(_package_entry(rec))
    return sorted(rows, key=lambda p: p["name"])


# -- solver output -> one message: conda_messages reads the solver's words; explain() says them --------


def explain(text: str, env: CondaEnv, *, tool: str) -> FwsetupError:
    """One clear error for a failed solve or link: which package, which constraint, what to do (the solver's
    words read by conda_messages, said here by code). Channel credentials (`/t/<token>/`, `user:pass@`) are
    hidden in it."""
    exc = _explain(text, env, tool=tool)
    exc.message = redact_text(exc.message)
    exc.hint = redact_text(exc.hint) if exc.hint else exc.hint
    exc.args = (exc.message,)
    return exc


def _explain(text: str, env: CondaEnv, *, tool: str) -> FwsetupError:
    failure = conda_messages.read_failure(text)
    channels = ", ".join(env.channels)
    channel = conda_messages.channel_named(text, env.channels) or channels
    if failure.code == "needs_cuda":
        name = failure.package or "a package in the environment"
        constraint = failure.detail
        have = (
            f"this machine's driver supports CUDA {env.cuda_driver} (__cuda={env.cuda_driver}, "
            f"from {env.cuda_source})"
            if env.cuda_driver
            else f"there is no CUDA driver (no __cuda virtual package: {env.cuda_source})"
        )
        msg = f"{name} needs a driver that supports CUDA {constraint} (it depends on __cuda {constraint}), but {have}."
        return InstallError(
            msg,
            hint="Update the NVIDIA driver, choose a build for an older CUDA (--version), or use --cpu. "
            "CONDA_OVERRIDE_CUDA=X.Y tells the solver to assume another driver.",
        )
    if failure.code == "network":
        msg = f"cannot reach conda channel {channel}: {failure.detail}."
        return NetworkError(
            msg,
            hint="conda channels need network access. Use a mirror (a channel URL in your recipe, or "
            "CONDA_CHANNEL_ALIAS) or a local channel folder.",
        )
    if failure.code == "no_channel":
        msg = (
            f"conda channel {channel} does not exist or has no packages for this platform ({failure.detail})."
        )
        return InstallError(msg, hint="Check the channel name or URL in the recipe's conda table.")
    if failure.code == "invalid_spec":
        msg = f"a conda package spec is not valid: {failure.detail}."
        return UsageError(msg, hint="Fix the recipe's conda packages (MatchSpec syntax, e.g. pytorch=2.5.1).")
    if failure.code == "missing_package":
        msg = f"no package in conda channel(s) {channels} matches {failure.detail}."
        return InstallError(msg, hint="Check the package name and version in the recipe, and its channels.")
    if failure.code == "unsatisfiable":
        msg = f"the conda packages {', '.join(env.specs)} cannot be installed together: {failure.detail}"
        return InstallError(msg, hint="Relax the versions in the recipe, or pick another --version.")
    msg = f"{tool} failed: {failure.detail}."
    return InstallError(msg)


def _status(res: proc.Result) -> str:
    if res.error:
        return res.error
    rc = res.returncode or 0
    return f"killed by signal {-rc}" if rc < 0 else f"exit status {rc}"


def python_in(prefix: Path) -> Path:
    return Path(prefix) / ("python.exe" if sys.platform == "win32" else "bin/python")
