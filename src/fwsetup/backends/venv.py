"""venv backend: a virtual environment for a Plan, made with uv (pip when uv cannot be used).

The steps, each shown as progress and logged to <env>/.fwsetup/install.log:
  1. lock <parent>/.<name>.fwsetup.lock, repair what a killed run left, and stop here when the environment
     already holds the same plan (lock.json's plan_digest): "already installed: same plan".
  2. `uv venv --relocatable` in a staging folder beside the target (same filesystem), and at the same time
  3. resolve: `uv pip compile --format pylock.toml` (PEP 751): exact versions, wheel URLs, sha256 and sizes,
     against the interpreter the venv is made from (so the two need not wait for each other).
  4. a disk-space check from those sizes, then `uv pip install -r pylock.toml` (hash-checked).
  5. the smoke test, with the staging folder's own python.
  6. lock.json + plan.json + pylock.toml in <env>/.fwsetup/, then the atomic swap into place.
A failure at any step leaves the target as it was; the log is kept in <parent>/.fwsetup-logs/.

Why --relocatable: a venv's scripts and activate files embed its absolute path, and we build under another
name than the final one. uv's relocatable venvs use relative paths (entry points re-exec through their own
directory); whatever still names the staging path after the install (pip's fallback writes absolute
shebangs) is rewritten to the final path before the swap (fix_paths).

The user's pip configuration (pip.conf, PIP_*) is carried to uv (pipconfig.py). The plan's own index (e.g.
PyTorch's) is not contacted when a local wheel (--wheelhouse, or find-links from the pip configuration)
already provides every pinned requirement, or with --offline. Index credentials reach uv and pip through
their environment, never argv; every log line, message and file written here goes through fwsetup.redact.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shlex
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fwsetup import pipconfig, proc, staging
from fwsetup.backends import envvars, transaction
from fwsetup.backends.base import Backend, InstallOptions, InstallResult, Progress, no_progress
from fwsetup.errors import FwsetupError, InstallError, NetworkError, SmokeError, UsageError
from fwsetup.plan import Plan, plan_to_dict
from fwsetup.proc import env_secrets, run_streamed
from fwsetup.redact import has_credentials, redact_data, redact_text
from fwsetup.settings import resolve

INSTALL_TIMEOUT = 3600.0
EXPANSION = 2.5  # installed size / wheel size, roughly (torch 190 MB wheel -> ~450 MB installed)
PYLOCK = "pylock.toml"
PLAN_FILE = "plan.json"
LOG_NAME = "install.log"


# -- the installer -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Installer:
    kind: str  # "uv" | "pip"
    exe: str | None  # the uv binary (None for pip)
    version: str

    def describe(self) -> str:
        return f"{self.kind} {self.version}"


@functools.cache
def _uv_version(exe: str) -> str | None:
    from fwsetup.detect.tools import bundled_uv_version

    if (bundled := bundled_uv_version(exe)) is not None:
        return bundled
    res = proc.run([exe, "--version"], timeout=20)
    if not res.ok:
        return None
    m = re.search(r"uv (\S+)", res.stdout)
    return m.group(1) if m else None


def find_uv(env: Mapping[str, str]) -> str | None:
    """The uv binary: $FWSETUP_UV, the `uv` Python package's own, then PATH. None when none runs."""
    candidates: list[str] = []
    if uv_override := resolve(env).uv:
        candidates.append(uv_override)
    try:
        import uv  # the PyPI package ships the binary

        candidates.append(uv.find_uv_bin())
    except (ImportError, FileNotFoundError):
        pass
    if which := shutil.which("uv", path=env.get("PATH")):
        candidates.append(which)
    for exe in candidates:
        if _uv_usable(_uv_version(exe)):
            return exe
    return None


MIN_UV = (
    "0.7"  # pylock.toml (PEP 751) from `uv pip compile` and into `uv pip install -r` (0.6.15, settled by 0.7)
)


def _uv_usable(version: str | None) -> bool:
    from packaging.version import InvalidVersion, Version

    if not version:
        return False
    try:
        return Version(version) >= Version(MIN_UV)
    except InvalidVersion:
        return True


def find_installer(env: Mapping[str, str]) -> Installer:
    """uv unless FWSETUP_INSTALLER=pip asks for pip, or no uv binary runs here."""
    want = resolve(env).installer
    if want not in ("", "uv", "pip"):
        from fwsetup.errors import UsageError

        msg = f"FWSETUP_INSTALLER={want!r}: expected uv or pip."
        raise UsageError(msg)
    if want != "pip":
        exe = find_uv(env)
        if exe:
            return Installer("uv", exe, _uv_version(exe) or "?")
        if want == "uv":
            msg = f"FWSETUP_INSTALLER=uv, but no working uv >= {MIN_UV} was found (pip install -U uv)."
            raise InstallError(msg)
    return Installer("pip", None, "")


# -- local wheels and the plan's index -------------------------------------------------------------------


def _target_tags(python: str | None) -> set[str]:
    from packaging import tags

    if python and re.fullmatch(r"3\.\d+", python):
        ver = tuple(int(x) for x in python.split("."))
    else:
        ver = sys.version_info[:2]
    platforms = list(tags.platform_tags())
    out = {str(t) for t in tags.cpython_tags(python_version=ver, platforms=platforms)}
    out |= {str(t) for t in tags.compatible_tags(python_version=ver, platforms=platforms)}
    return out


def local_wheels(dirs: Sequence[str | Path], python: str | None) -> dict[str, list[tuple[Any, Path]]]:
    """canonical name -> [(Version, wheel path)] of the wheels in `dirs` that can install on `python`."""
    from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

    ok_tags = _target_tags(python)
    found: dict[str, list[tuple[Any, Path]]] = {}
    for d in dirs:
        p = pipconfig.local_path(str(d))
        if p is None or not p.is_dir():
            continue
        for whl in sorted(p.glob("*.whl")):
            try:
                name, version, _build, wtags = parse_wheel_filename(whl.name)
            except (InvalidWheelFilename, ValueError):
                continue
            if any(str(t) in ok_tags for t in wtags):
                found.setdefault(canonicalize_name(name), []).append((version, whl))
    return found


def _pinned(requirements: Sequence[str]) -> list[Any]:
    from packaging.requirements import InvalidRequirement, Requirement

    out = []
    for text in requirements:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            continue
        if any(s.operator in ("==", "===") for s in req.specifier):
            out.append(req)
    return out


class IndexUnreachable(NetworkError):
    """The plan's own index cannot be reached and no local wheel provides what it was for."""

    def __init__(
        self, url: str, *, names: Sequence[str], local: Mapping[str, Sequence[str]], detail: str
    ) -> None:
        what = " and ".join(names) or "the framework"
        url, detail = redact_text(url), redact_text(detail)
        msg = f"cannot reach {url} ({detail}): use --wheelhouse DIR with the {what} wheel"
        have = "; ".join(f"{n} {', '.join(vs)}" for n, vs in local.items() if vs)
        hint = f"Local wheels found: {have} (choose one with --version)." if have else None
        super().__init__(msg, hint=hint)
        self.url = url
        self.names = list(names)
        self.local = {k: list(v) for k, v in local.items()}


@dataclass(frozen=True, kw_only=True)
class Sources:
    """Where the packages will come from."""

    plan_indexes: tuple[str, ...]  # the plan's indexes still used
    local: Mapping[str, str] = field(default_factory=dict)  # pinned requirement -> local wheel path
    notes: tuple[str, ...] = ()


PROBE_DEADLINE = 10.0  # seconds in all for one index probe, unless pip's timeout says otherwise


@functools.cache
def probe_index(url: str, cafile: str | None = None, timeout: float = PROBE_DEADLINE) -> str | None:
    """None when the index answers (any HTTP status) within `timeout` seconds in all (fwsetup.net.fetch: a
    total deadline, not per read), else why not (one phrase)."""
    from fwsetup import net

    if url.startswith("file:"):
        p = pipconfig.local_path(url)
        return None if p is not None and p.is_dir() else "no such folder"
    ca = {"capath": cafile} if cafile and Path(cafile).is_dir() else {"cafile": cafile}
    try:
        net.fetch(url.rstrip("/") + "/", method="HEAD", deadline=timeout, max_bytes=1 << 20, **ca)
    except net.FetchError as exc:
        return exc.reason
    return None


def check_sources(
    plan: Plan, options: InstallOptions, settings: pipconfig.PipSettings | None = None, *, probe: bool = True
) -> Sources:
    """Decide whether the plan's own index is needed; IndexUnreachable when it is and cannot be reached."""
    env = _env(options)
    settings = settings if settings is not None else resolve(env).pip
    if not plan.index_urls:
        return Sources(plan_indexes=())
    if options.offline:
        return Sources(plan_indexes=(), notes=("--offline: no index is contacted, local wheels only",))
    dirs = ([str(options.wheelhouse)] if options.wheelhouse else []) + list(settings.find_links)
    found = local_wheels(dirs, options.python or plan.python)
    pinned = _pinned(plan.requirements)
    from packaging.utils import canonicalize_name

    local: dict[str, str] = {}
    for req in pinned:
        hits = [
            w
            for v, w in found.get(canonicalize_name(req.name), [])
            if req.specifier.contains(v, prereleases=True)
        ]
        if hits:
            local[str(req)] = str(hits[-1])
    if pinned and len(local) == len(pinned):
        where = ", ".join(sorted({str(Path(p).parent) for p in local.values()}))
        note = f"{', '.join(local)} from the local wheels in {where}; not contacting {', '.join(plan.index_urls)}"
        return Sources(plan_indexes=(), local=local, notes=(note,))
    if not probe:
        return Sources(plan_indexes=tuple(plan.index_urls), local=local)
    # pip's cert (REQUESTS_CA_BUNDLE included, pipconfig), in addition to the system store (net.tls_context)
    cert = Path(settings.cert).expanduser() if settings.cert else None
    cafile = str(cert) if cert is not None and cert.exists() else env.get("SSL_CERT_FILE")
    try:  # pip's timeout (PIP_TIMEOUT, pip.conf), here the probe's total deadline
        deadline = float(settings.timeout) if settings.timeout else PROBE_DEADLINE
    except ValueError:
        deadline = PROBE_DEADLINE
    for url in plan.index_urls:
        why = probe_index(url, cafile, deadline)
        if why is not None:
            names = [r.name for r in pinned if str(r) not in local] or [
                r.split("[")[0].split("=")[0] for r in plan.requirements[:1]
            ]
            versions = {n: [str(v) for v, _ in sorted(found.get(canonicalize_name(n), []))] for n in names}
            raise IndexUnreachable(url, names=names, local=versions, detail=why)
    return Sources(plan_indexes=tuple(plan.index_urls), local=local)


# -- running commands: fwsetup.proc (run_streamed, env_secrets; every child dies with fwsetup) ----------


# -- failure reasons -------------------------------------------------------------------------------------

_NET = re.compile(
    r"(dns error|failed to lookup address|Could not resolve host|Connection refused|connection error|"
    r"error sending request|Network is unreachable|timed out|Temporary failure in name resolution|"
    r"Failed to establish a new connection|certificate verify failed|invalid peer certificate)",
    re.I,
)


def failure_reason(output: str, what: str) -> tuple[str, bool]:
    """(one sentence, is-network) from uv's or pip's output."""
    lines = [ln.rstrip() for ln in output.splitlines() if ln.strip()]
    text = "\n".join(lines)
    # uv: "  ╰─▶ Because there is no version of foo==9 and you require foo==9, we can conclude ..." on a
    # terminal, "  cause: Because ..." elsewhere; the sentence may go on over indented lines.
    for i, ln in enumerate(lines):
        s = ln.strip()
        if s.startswith("╰─▶") or (s.startswith("cause:") and "Because" in s):
            parts = [s.removeprefix("╰─▶").removeprefix("cause:").strip()]
            for more in lines[i + 1 :]:
                if not more.startswith((" ", "\t")) or more.strip().startswith(("hint:", "help:", "cause:")):
                    break
                parts.append(more.strip())
            because = " ".join(parts)
            if "Because" in because or "no version" in because or "not found" in because:
                return f"no matching distribution: {because}", False
    m = re.search(r"No matching distribution found for (\S+)", text)  # pip
    if m:
        return f"no matching distribution for {m.group(1)}", False
    m = re.search(r"not found in the (?:package registry|provided package locations)[^\n]*", text)
    if m:
        return f"no matching distribution: {m.group(0)}", False
    net = _NET.search(text)
    if net:
        url = re.search(r"(https?://\S+?)[`'\"\s)]", text)
        where = f" ({url.group(1)})" if url else ""
        return f"could not reach the package index{where}: {net.group(1)}", True
    err = next((ln.strip() for ln in reversed(lines) if re.match(r"\s*(error|×|ERROR)", ln)), None)
    if err:
        return f"{what} failed: {err.lstrip('×').strip()}", False
    return f"{what} failed: {lines[-1].strip() if lines else 'no output'}", False


def _tail(path: Path | None, n: int = 15) -> str:
    if path is None:
        return ""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


# -- the lock data ---------------------------------------------------------------------------------------


def read_pylock(path: Path) -> list[dict[str, Any]]:
    """[{name, version, url, sha256, size}] from a PEP 751 pylock.toml (the wheel chosen for this machine)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10
        import tomli as tomllib

    data = tomllib.loads(path.read_text())
    out = []
    for pkg in data.get("packages", []):
        wheels = pkg.get("wheels") or []
        art = wheels[0] if wheels else (pkg.get("sdist") or pkg.get("archive") or {})
        entry: dict[str, Any] = {"name": pkg.get("name"), "version": pkg.get("version")}
        if art.get("url"):
            entry["url"] = art["url"]
        elif art.get("path"):
            entry["url"] = art["path"]
        sha = (art.get("hashes") or {}).get("sha256")
        if sha:
            entry["sha256"] = sha
        size = art.get("size")
        if size is None and str(entry.get("url", "")).startswith("file:"):
            p = pipconfig.local_path(entry["url"])
            with contextlib.suppress(OSError):
                size = p.stat().st_size if p else None
        if size is not None:
            entry["size"] = int(size)
        if not wheels and (pkg.get("sdist") or pkg.get("archive")):
            entry["sdist"] = True
        out.append(entry)
    return out


@dataclass(frozen=True, kw_only=True)
class LockedPackage:
    """One package of a pylock.toml, as `fwsetup sync` installs it: exactly this version, one of these files."""

    name: str
    version: str
    hashes: tuple[str, ...]  # sha256 hex of each file the lock lists (its wheels, its sdist)
    files: tuple[str, ...]  # those files' names (wheel tags: which machines it installs on)
    marker: str | None = None


def read_locked(text: str, where: str = "pylock.toml") -> list[LockedPackage]:
    """The packages of a PEP 751 lock (what `uv pip compile --format pylock.toml` writes). UsageError when it
    is not one, or when a package has no sha256 (it could not be installed hash-checked: never guessed)."""
    from urllib.parse import unquote, urlsplit

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10
        import tomli as tomllib
    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        msg = f"{where} is not a valid pylock.toml (PEP 751): {exc}"
        raise UsageError(msg) from None
    if not isinstance(data.get("packages"), list) or not str(data.get("lock-version", "")).startswith("1"):
        msg = f"{where} is not a pylock.toml (PEP 751: lock-version 1.x and [[packages]])."
        raise UsageError(msg)
    out: list[LockedPackage] = []
    for pkg in data["packages"]:
        if not isinstance(pkg, dict) or not pkg.get("name") or not pkg.get("version"):
            msg = f"{where}: a [[packages]] entry without a name and version ({str(pkg)[:80]})."
            raise UsageError(msg)
        arts = [
            a
            for a in [*(pkg.get("wheels") or []), pkg.get("sdist"), pkg.get("archive")]
            if isinstance(a, dict)
        ]
        hashes, files = [], []
        for a in arts:
            sha = (a.get("hashes") or {}).get("sha256") if isinstance(a.get("hashes"), dict) else None
            if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha):
                continue
            hashes.append(sha)
            ref = str(a.get("name") or a.get("url") or a.get("path") or "")
            files.append(unquote(urlsplit(ref).path.rsplit("/", 1)[-1]) if ref else "")
        if not hashes:
            msg = f"{where}: {pkg['name']} {pkg['version']} has no sha256 in the lock, so it cannot be installed hash-checked."
            raise UsageError(
                msg, hint="Rebuild the lock with `fwsetup install` (it records every file's hash)."
            )
        marker = pkg.get("marker") if isinstance(pkg.get("marker"), str) else None
        out.append(LockedPackage(name=str(pkg["name"]), version=str(pkg["version"]), hashes=tuple(hashes),
                                 files=tuple(files), marker=marker))  # fmt: skip
    return out


def locked_requirements(packages: Sequence[LockedPackage], where: str) -> str:
    """A requirements file for `uv pip sync --require-hashes` (pip: --no-deps --require-hashes): every locked
    package at its version, with the hash of each file the lock allows."""
    from packaging.requirements import InvalidRequirement, Requirement

    lines = [f"# fwsetup sync: exactly the packages of {where}" if where else "# fwsetup sync"]
    for p in sorted(packages, key=lambda p: p.name.lower()):
        try:  # names, versions and markers from a file: only what parses as a requirement goes in
            req = Requirement(f"{p.name}=={p.version}" + (f"; {p.marker}" if p.marker else ""))
        except InvalidRequirement as exc:
            msg = f"{where}: {p.name} {p.version}: not a valid requirement ({exc})."
            raise UsageError(msg) from None
        hashes = " ".join(f"--hash=sha256:{h}" for h in p.hashes)
        marker = f" ; {req.marker}" if req.marker else ""
        lines.append(f"{req.name}=={p.version}{marker} {hashes}")
    return "\n".join(lines) + "\n"


def read_pip_report(path: Path) -> list[dict[str, Any]]:
    """The same from `pip install --report`."""
    data = json.loads(path.read_text())
    out = []
    for item in data.get("install", []):
        meta = item.get("metadata", {})
        info = item.get("download_info", {})
        entry: dict[str, Any] = {
            "name": meta.get("name"),
            "version": meta.get("version"),
            "url": info.get("url"),
        }
        hashes = (info.get("archive_info") or {}).get("hashes") or {}
        if hashes.get("sha256"):
            entry["sha256"] = hashes["sha256"]
        out.append(entry)
    return out


# -- paths inside a built environment --------------------------------------------------------------------


def fix_paths(env_dir: Path, old: Path, new: Path) -> list[str]:
    """Rewrite `old` to `new` in the environment's text scripts (bin/*, pyvenv.cfg). Returns the files changed."""
    old_b, new_b = os.fsencode(str(old)), os.fsencode(str(new))
    changed = []
    candidates = [env_dir / "pyvenv.cfg"]
    bindir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    if bindir.is_dir():
        candidates += [p for p in bindir.iterdir() if p.is_file() and not p.is_symlink()]
    for p in candidates:
        try:
            if p.stat().st_size > 2_000_000:
                continue
            data = p.read_bytes()
        except OSError:
            continue
        if b"\0" in data[:4096] or old_b not in data:
            continue  # binaries (ELF launchers) and files that do not name the staging folder
        mode = p.stat().st_mode
        p.write_bytes(data.replace(old_b, new_b))
        os.chmod(p, mode)
        changed.append(p.name)
    return changed


def env_python(env_dir: Path) -> Path:
    return env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _env(options: InstallOptions) -> dict[str, str]:
    return dict(options.env) if options.env else dict(os.environ)


def digest_for(plan: Plan, options: InstallOptions) -> str:
    d = plan_to_dict(plan)
    keep = (
        "framework",
        "version",
        "variant",
        "accelerator",
        "cuda",
        "python",
        "requirements",
        "index_urls",
        "env",
        "smoke",
    )
    extra: dict[str, Any] = {"method": "venv", "python": options.python, "smoke": options.run_smoke}
    if options.locked is not None:  # fwsetup sync: the locked set is part of what the environment is
        import hashlib

        lines = locked_requirements(read_locked(options.locked.read_text(encoding="utf-8")), "")
        extra["locked"] = hashlib.sha256(lines.encode()).hexdigest()
    return staging.plan_digest({k: d.get(k) for k in keep}, extra)


# -- the backend ---------------------------------------------------------------------------------------


class VenvBackend(Backend):
    name = "venv"

    def __init__(self, installer: Installer | None = None) -> None:
        self._installer = installer

    def installer(self, options: InstallOptions) -> Installer:
        if self._installer is None:
            self._installer = find_installer(_env(options))
        return self._installer

    # -- what would be run ---------------------------------------------------------------------------------

    def commands(
        self,
        plan: Plan,
        options: InstallOptions,
        where: Path,
        sources: Sources,
        uvcfg: pipconfig.UvConfig,
        *,
        lockdir: Path | None = None,
    ) -> list[list[str]]:
        """The installer's commands. uv: [venv, compile, install]. The compile resolves against the interpreter
        the venv is made from (the same --python request, and --system: uv's discovery for `uv venv`), not
        the venv, so that both can run at once; its input and output are in lockdir (default: the
        environment's .fwsetup/), and the install reads the lock from there too: uv's pylock.toml keeps
        wheel URLs as the index gave them, a query token included (`?token=…`), so the one that works stays in
        the private lockdir and .fwsetup/ gets a redacted copy."""
        inst = self.installer(options)
        py = options.python or plan.python
        meta = where / staging.META_DIR
        python_arg = own_interpreter(py) or py  # by path where it is fwsetup's own Python
        lock_in = lockdir if lockdir is not None else meta
        if inst.kind == "uv" and options.locked is not None:
            # fwsetup sync: exactly the locked set, each file hash-checked (requirements.in holds
            # name==version --hash=... for every package of the pylock: locked_requirements); no resolve
            assert inst.exe
            venv_argv = [inst.exe, "venv", "--relocatable", "--no-project",
                         *(["--python", python_arg] if python_arg else []), str(where)]  # fmt: skip
            sync_argv = [inst.exe, "pip", "sync", "--python", str(env_python(where)), "--require-hashes",
                         *uvcfg.args, str(meta / "requirements.in")]  # fmt: skip
            return [venv_argv, [], sync_argv]
        if inst.kind == "uv":
            assert inst.exe
            return [
                [
                    inst.exe,
                    "venv",
                    "--relocatable",
                    "--no-project",
                    *(["--python", python_arg] if python_arg else []),
                    str(where),
                ],
                [
                    inst.exe,
                    "pip",
                    "compile",
                    "--no-header",
                    "--quiet",
                    "--system",
                    *(["--python", python_arg] if python_arg else []),
                    *uvcfg.args,
                    "--format",
                    "pylock.toml",
                    "-o",
                    str(lock_in / PYLOCK),
                    str(lock_in / "requirements.in"),
                ],
                [
                    inst.exe,
                    "pip",
                    "install",
                    "--python",
                    str(env_python(where)),
                    *uvcfg.args,
                    "-r",
                    str(lock_in / PYLOCK),
                ],
            ]
        base = _base_python(py, _env(options))
        pip_args: list[str] = []
        if not pip_index_env(sources.plan_indexes, pipconfig.PipSettings()):  # else through the environment
            for url in sources.plan_indexes:
                pip_args += ["--extra-index-url", url]
        if options.wheelhouse:
            pip_args += ["--find-links", str(Path(options.wheelhouse).absolute())]
        if options.offline:
            pip_args.append("--no-index")
        if options.locked is not None:  # fwsetup sync: exactly the locked set, hash-checked
            pip_args += ["--no-deps", "--require-hashes"]
        return [
            [base, "-m", "venv", str(where)],
            [
                str(env_python(where)),
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                *pip_args,
                "--report",
                str(meta / "pip-report.json"),
                "-r",
                str(meta / "requirements.in"),
            ],
        ]

    def _sources(
        self, plan: Plan, options: InstallOptions, env: dict[str, str], *, install: bool
    ) -> tuple[pipconfig.PipSettings, Sources, pipconfig.UvConfig]:
        """The user's pip settings, the plan's sources (its index probed for an install, not for --dry-run)
        and what uv is given from both. --dry-run makes no generated wheel index (that writes to the cache):
        the install reads local wheel folders through one (pipconfig.wheel_index), which resolves to the
        same wheels."""
        settings = resolve(env).pip
        sources = check_sources(plan, options, settings, probe=install)
        uvcfg = pipconfig.to_uv(
            settings,
            plan_indexes=sources.plan_indexes,
            wheelhouse=options.wheelhouse,
            offline=options.offline,
            env=env,
            index_cache=_index_cache(env) if install else None,
            uv_version=self.installer(options).version if self.installer(options).kind == "uv" else None,
        )
        return settings, sources, uvcfg

    def render(self, plan: Plan, options: InstallOptions) -> str:
        settings, sources, uvcfg = self._sources(plan, options, _env(options), install=False)
        target = Path(options.target).absolute()
        lines = [
            f"# venv for {plan.title or plan.framework} {plan.version} ({plan.variant}) at {target}",
            f"# installer: {self.installer(options).describe()}",
        ]
        lines += [f"# {redact_text(n)}" for n in sources.notes]
        lines += [f"# warning: {w}" for w in uvcfg.warnings]
        variables = dict(uvcfg.env)
        if self.installer(options).kind == "pip":
            variables.update(pip_index_env(sources.plan_indexes, settings))
        for var, value in variables.items():  # credentials shown as ***: they stay in the user's settings
            lines.append(f"export {var}={shlex.quote(redact_text(value))}")
        lines.append(f"# requirements.in: {' '.join(plan.requirements)}")
        if options.locked is not None:
            lines.append(
                f"# requirements.in: every package of {options.locked}, name==version --hash=sha256:..."
            )
        for argv in self.commands(plan, options, target, sources, uvcfg):
            if argv:
                lines.append(redact_text(shlex.join(argv)))
        if plan.smoke is not None and options.run_smoke:
            from fwsetup.smoke.runner import smoke_argv

            lines.append(shlex.join(smoke_argv([str(env_python(target))], plan.smoke.script, plan.smoke)))
        lines.append(
            "# (built in a staging folder beside the target, swapped in after the smoke test passes)"
        )
        return "\n".join(lines)

    # -- install ------------------------------------------------------------------------------------------

    def install(self, plan: Plan, options: InstallOptions, progress: Progress = no_progress) -> InstallResult:
        """The shared install transaction (backends/transaction.py) with a venv build."""
        job = _VenvJob(self, plan, options, digest_for(plan, options))
        return transaction.install(job, plan, options, digest=job.digest, progress=progress)

    def _build(
        self,
        plan: Plan,
        options: InstallOptions,
        env: dict[str, str],
        st: staging.Staging,
        digest: str,
        progress: Progress,
    ) -> dict[str, Any]:
        progress = transaction.StageClock(progress)
        inst = self.installer(options)
        settings, sources, uvcfg = self._sources(plan, options, env, install=True)
        # uv: the resolve runs while the environment is created (commands()); its files wait in lockdir,
        # beside the staging folder (uv venv wants that one empty) and named like it (what a killed run
        # leaves is removed by the next: staging.recover), until the environment is there.
        lockdir = None
        if inst.kind == "uv" and options.locked is None:
            lockdir = st.path.with_name(st.path.name + "-resolve")
            lockdir.mkdir(mode=0o700)  # uv's pylock.toml there may hold an index's query token
        try:
            return self._build_in(
                plan, options, env, st, digest, progress, inst, settings, sources, uvcfg, lockdir
            )
        finally:
            if lockdir is not None:
                shutil.rmtree(lockdir, ignore_errors=True)

    def _build_in(
        self,
        plan: Plan,
        options: InstallOptions,
        env: dict[str, str],
        st: staging.Staging,
        digest: str,
        progress: transaction.StageClock,
        inst: Installer,
        settings: pipconfig.PipSettings,
        sources: Sources,
        uvcfg: pipconfig.UvConfig,
        lockdir: Path | None,
    ) -> dict[str, Any]:
        cmds = self.commands(plan, options, st.path, sources, uvcfg, lockdir=lockdir)
        run_env = {
            **env,
            **uvcfg.env,
            **(pip_index_env(sources.plan_indexes, settings) if inst.kind == "pip" else {}),
        }
        run_env.pop("VIRTUAL_ENV", None)  # uv would warn that it is not the target
        run_env.pop("PYTHONHOME", None)
        hidden = env_secrets(run_env)  # nothing written or shown below may hold them
        pre_log: list[str] = [
            f"fwsetup: {plan.framework} {plan.version} ({plan.variant}) -> {st.target}",
            f"installer: {inst.describe()}",
        ]
        pre_log += [f"note: {n}" for n in sources.notes] + [f"warning: {w}" for w in uvcfg.warnings]
        pre_log += [f"pip setting {k} from {v}" for k, v in settings.sources.items()]
        if inst.kind == "uv":
            pre_log += [f"env {k}={v}" for k, v in uvcfg.env.items()]
        pre_log = [redact_text(line, hidden) for line in pre_log]
        # 1. the environment (into the empty staging folder) and, with uv, the resolve beside it, started
        # before anything is shown (the first progress line brings in rich); then the environment's metadata
        # folder and the log
        requirements_in = "\n".join(plan.requirements) + "\n"
        locked_text = None
        if options.locked is not None:
            locked_text = options.locked.read_text(encoding="utf-8")
            requirements_in = locked_requirements(read_locked(locked_text), str(options.locked))
        resolving: _Background | None = None
        if lockdir is not None:
            (lockdir / "requirements.in").write_text(requirements_in)
            resolving = _Background(
                lambda: run_streamed(cmds[1], env=run_env, log=lockdir / LOG_NAME, timeout=INSTALL_TIMEOUT)
            )
        venv_made = _Background(lambda: proc.run(cmds[0], timeout=300, env=run_env))
        if inst.kind == "pip" and resolve(env).installer != "pip":
            note = (
                f"no working uv >= {MIN_UV} found: using python -m venv and pip (slower; pip install -U uv)"
            )
            pre_log.append(f"note: {note}")
            progress("resolve", note)
        for w in uvcfg.warnings:
            progress("resolve", f"warning: {w}")
        for n in sources.notes:
            progress("resolve", redact_text(n, hidden))
        if lockdir is not None:
            progress("resolve", f"creating the environment and resolving {' '.join(plan.requirements)} "
                                f"({inst.describe()})")  # fmt: skip
        else:
            progress("resolve", f"creating the environment ({inst.describe()})")
        # What comes after, imported while uv works (the two cores are otherwise idle here)
        import fwsetup.smoke.runner  # noqa: F401 - transaction.smoke

        if sys.version_info >= (3, 11):
            import tomllib  # noqa: F401 - read_pylock

        first = venv_made.result()
        resolved = resolving.result() if resolving is not None else None
        st.meta.mkdir(parents=True, exist_ok=True)
        with open(st.log_file, "a") as f:
            f.write("\n".join(pre_log) + "\n")
            f.write(redact_text(f"+ {shlex.join(first.argv)}\n{first.stdout}{first.stderr}\n", hidden))
            if lockdir is not None and (lockdir / LOG_NAME).is_file():
                f.write((lockdir / LOG_NAME).read_text())  # redacted by run_streamed
        if not first.ok:
            why = redact_text(first.error or _last(first.stderr), hidden)
            msg = f"could not create the environment with {shlex.join(cmds[0][:2])}: {why}"
            wanted, out = options.python or plan.python, first.stderr or ""
            hint = f"Install it (uv python install {wanted}) or choose another with --python X.Y."
            if "python-build-standalone" in out or ("download" in out.lower() and "cpython" in out.lower()):
                # issue 9, item 10: a Python that is not here and cannot be fetched is not a failed install (5)
                raise NetworkError(
                    f"Python {wanted} is not installed here and could not be downloaded: {why}", hint=hint
                )
            if "No interpreter found" in out or "not found" in why:
                raise UsageError(
                    f"no Python {wanted} is installed here to create the environment: {why}", hint=hint
                )
            raise InstallError(msg)
        (st.meta / "requirements.in").write_text(requirements_in)
        if locked_text is not None:  # the lock it was rebuilt from (already redacted where it came from)
            (st.meta / PYLOCK).write_text(redact_text(locked_text, hidden))
        if inst.kind == "uv" and locked_text is not None:
            packages = self._uv_install(plan, cmds, run_env, st, progress, repair=options.repair)
        elif inst.kind == "uv":
            assert resolved is not None and lockdir is not None
            _raise_for(resolved, "resolving", st)
            # the env keeps the lock with its credentials redacted; uv installs from lockdir's (removed after)
            shown = redact_text((lockdir / PYLOCK).read_text(), hidden)
            (st.meta / PYLOCK).write_text(shown)
            packages = self._uv_install(plan, cmds, run_env, st, progress, repair=options.repair)
            shutil.rmtree(lockdir, ignore_errors=True)
        else:
            packages = self._pip_install(plan, cmds, run_env, st, progress)

        # Every installed file against its package's RECORD, while the smoke test runs (hashlib leaves the
        # GIL): uv links files from its cache, and a cache entry damaged through another environment's hard
        # link would otherwise pass on unseen (torch: ~2.8 s of one core, issue 21).
        verified = _Verify(st.path, [p for p in packages if p.get("name") not in set(options.repair)])
        # the framework's run-time settings live in the env itself (envvars): the smoke test sees only those
        envvars.write_csh_activate(st.path, st.target)  # uv writes none for a relocatable venv
        envvars.write(st.path, envvars.runtime_env(plan))
        if options.run_smoke and plan.smoke is not None:
            progress(
                "smoke", f"training step ({plan.smoke.script} on {plan.smoke.device}) in the new environment"
            )
        smoke = transaction.smoke(
            env_python(st.path), plan, options, log=st.log_file, where="in the new environment"
        )
        if bad := verified.result():
            _damaged_cache(bad, inst, cmds, run_env, st)
        changed = fix_paths(st.path, st.path, st.target)
        if changed:
            with open(st.log_file, "a") as f:
                f.write(f"fixed the staging path in: {', '.join(changed)}\n")
        py_version = _python_version(env_python(st.path))
        (st.meta / PLAN_FILE).write_text(json.dumps(redact_data(plan_to_dict(plan), hidden), indent=2) + "\n")
        transaction.write_lock(
            st.path, method="venv", digest=digest, plan=plan, installer=inst.describe(), python=py_version,
            packages=packages, smoke=smoke, timings=progress.totals(), hidden=hidden,
            by="sync" if options.locked is not None else "install",
            details={
                "requirements": list(plan.requirements),
                "indexes": list(uvcfg.index_urls) if inst.kind == "uv" else list(sources.plan_indexes),
                "find_links": list(uvcfg.find_links),
                # --wheelhouse, as given (absolute): what a repair asks again (fwsetup.envcheck.repair_argv)
                "wheelhouse": str(Path(options.wheelhouse).absolute()) if options.wheelhouse else None,
            },
        )  # fmt: skip
        return {"smoke": smoke, "packages": packages}

    def _uv_install(
        self,
        plan: Plan,
        cmds: list[list[str]],
        env: dict[str, str],
        st: staging.Staging,
        progress: Progress,
        *,
        repair: Sequence[str] = (),
    ) -> list[dict[str, Any]]:
        packages = read_pylock(st.meta / PYLOCK)  # resolved by cmds[1] beside the environment's creation
        if repair:
            # uv links installed files from its cache (hard links where it can): the damage found in the
            # environment may be in the cache too. Those packages' cache entries go first, so that they are
            # unpacked again from their (hash-checked) wheels, never linked from a damaged copy.
            progress("resolve", f"removing {', '.join(repair)} from uv's cache: it may hold the same damage")
            clean = run_streamed(
                [cmds[2][0], "cache", "clean", *repair], env=env, log=st.log_file, timeout=600
            )
            _raise_for(clean, "cleaning uv's cache", st)
        total = sum(p.get("size", 0) for p in packages)
        if total:
            staging.check_free_space(st.target.parent, int(total * (1 + EXPANSION)))
        n = len(packages)
        progress(
            "download",
            f"downloading {n} packages ({staging.human_bytes(total)})"
            if total
            else f"downloading {n} packages",
        )

        def on_line(line: str) -> None:
            s = line.strip()
            if s.startswith("Prepared"):
                progress("install", f"installing {n} packages")

        res = run_streamed(cmds[2], env=env, log=st.log_file, timeout=INSTALL_TIMEOUT, on_line=on_line)
        _raise_for(res, "installing", st)
        bad = staging.verify_hashes(st.path, [{"name": n} for n in repair])
        if bad:
            name, files = next(iter(bad.items()))
            msg = f"{name} is still damaged after unpacking it again ({len(files)} files differ from its RECORD, e.g. {files[0]})."
            raise InstallError(msg, hint="Check the wheel and the disk; `uv cache clean` removes uv's cache.")
        return packages

    def _pip_install(
        self, plan: Plan, cmds: list[list[str]], env: dict[str, str], st: staging.Staging, progress: Progress
    ) -> list[dict[str, Any]]:
        progress("download", f"pip: resolving and downloading {' '.join(plan.requirements)}")

        def on_line(line: str) -> None:
            if line.startswith("Installing collected packages"):
                progress("install", "pip: installing")

        res = run_streamed(cmds[1], env=env, log=st.log_file, timeout=INSTALL_TIMEOUT, on_line=on_line)
        _raise_for(res, "installing", st)
        return read_pip_report(st.meta / "pip-report.json")


class _Verify:
    """staging.verify_hashes in a thread; result() joins it."""

    def __init__(self, env: Path, packages: Sequence[Mapping[str, Any]]) -> None:
        import threading

        self._bad: dict[str, list[str]] = {}
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(env, list(packages)), daemon=True)
        self._thread.start()

    def _run(self, env: Path, packages: list[Any]) -> None:
        try:
            self._bad = staging.verify_hashes(env, packages)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller by result()
            self._error = exc

    def result(self) -> dict[str, list[str]]:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._bad


def _damaged_cache(
    bad: Mapping[str, list[str]],
    inst: Installer,
    cmds: list[list[str]],
    env: dict[str, str],
    st: staging.Staging,
) -> None:
    """Installed files that are not what their package's RECORD says: a damaged cache entry (uv linked it).
    Those packages are removed from uv's cache, so that the next run unpacks them again; InstallError."""
    names = sorted(bad)
    name, files = names[0], bad[names[0]]
    msg = (
        f"{name} was installed with {len(files)} files that differ from its RECORD (e.g. {files[0]}): "
        "the installer's cache holds a damaged copy"
    )
    if inst.kind == "uv":
        clean = run_streamed([cmds[2][0], "cache", "clean", *names], env=env, log=st.log_file, timeout=600)
        msg += (
            f"; {', '.join(names)} removed from uv's cache"
            if clean.ok
            else f"; `uv cache clean {' '.join(names)}` failed"
        )
    raise InstallError(
        msg + ".", hint="Run the same command again: the packages are unpacked again from their wheels."
    )


class _Background:
    """A function run in a thread (a child process it waits on: the GIL is free meanwhile); result() joins it
    and returns its value or raises what it raised."""

    def __init__(self, fn: Callable[[], proc.Result]) -> None:
        import threading

        self._value: proc.Result | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn,), daemon=True, name="fwsetup-resolve")
        self._thread.start()

    def _run(self, fn: Callable[[], proc.Result]) -> None:
        try:
            self._value = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller by result()
            self._error = exc

    def result(self) -> proc.Result:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._value is not None
        return self._value


def _raise_for(res: proc.Result, what: str, st: staging.Staging) -> None:
    if res.ok:
        return
    if res.returncode is None:
        msg = f"{what} failed: {res.error}"
        raise InstallError(msg)
    reason, network = failure_reason(res.stderr, what)
    raise (NetworkError if network else InstallError)(reason)


def _with_log(exc: FwsetupError, st: staging.Staging) -> FwsetupError:
    """Add the last lines of the install log and where it was kept to the error's hint."""
    log = st.failure_log
    tail = _tail(log, 12)
    parts = [exc.hint] if exc.hint else []
    if tail and not isinstance(exc, SmokeError):
        parts.append("last lines of the log:\n" + "\n".join("  " + ln for ln in tail.splitlines()))
    if log is not None:
        parts.append(f"full log: {log}")
    parts.append(f"{st.target} was left as it was.")
    exc.hint = "\n".join(parts)
    return exc


def pip_index_env(plan_indexes: Sequence[str], settings: pipconfig.PipSettings) -> dict[str, str]:
    """pip fallback: plan indexes that carry a credential go through PIP_EXTRA_INDEX_URL, never argv (with
    the user's own extra indexes, which that variable would otherwise hide). {} when none does."""
    if not any(has_credentials(u) for u in plan_indexes):
        return {}
    return {"PIP_EXTRA_INDEX_URL": " ".join(dict.fromkeys([*plan_indexes, *settings.extra_index_urls]))}


def _index_cache(env: Mapping[str, str]) -> Path | None:
    """Where generated wheel indexes go (pipconfig.wheel_index): fwsetup's cache folder; None turns it off."""
    return resolve(env).cache_dir


def own_interpreter(py: str | None) -> str | None:
    """The base interpreter fwsetup itself runs on, when the plan asks for its version ("3.11"), else None.

    The plan was made for the Python detection saw (detect.python: this one), so the environment is made
    from it. Named by path, uv does not search for it: its discovery of "3.11" queries every candidate
    interpreter on the machine (pyenv's shims each run a shell script) and took 0.13-0.22 s of each install
    here, twice (`uv venv` and the resolve beside it). A free-threaded build (3.13t) is not named by its
    version alone, nor is another implementation: uv chooses those."""
    from fwsetup.detect.python import probe_python

    me = probe_python([])
    if not py or me.implementation != "cpython" or me.free_threaded:
        return None
    if py != ".".join((me.version or "").split(".")[:2]):
        return None
    for candidate in (getattr(sys, "_base_executable", None), sys.executable):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def _base_python(py: str | None, env: Mapping[str, str]) -> str:
    """The interpreter `python -m venv` runs with (pip fallback)."""
    if py and os.sep in py:
        return py
    if py:
        found = shutil.which(f"python{py}", path=env.get("PATH"))
        if found:
            return found
        if f"{sys.version_info[0]}.{sys.version_info[1]}" == py:
            return sys.executable
        msg = f"no python{py} on PATH to create the environment with (the pip fallback needs one)."
        raise InstallError(msg, hint="Install uv (pip install uv), or install that Python.")
    return sys.executable


def _python_version(python: Path) -> str | None:
    # uv and venv write it into pyvenv.cfg (version_info / version); ask the interpreter only when not
    with contextlib.suppress(OSError):
        for line in (python.parent.parent / "pyvenv.cfg").read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() in ("version_info", "version") and value.strip():
                return value.strip()
    res = proc.run([str(python), "-c", "import platform; print(platform.python_version())"], timeout=60)
    return res.stdout.strip() if res.ok else None


def _last(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


class _VenvJob:
    """One venv install, as the shared transaction asks for it (transaction.Job)."""

    method = "venv"

    def __init__(self, backend: VenvBackend, plan: Plan, options: InstallOptions, digest: str) -> None:
        self.backend, self.plan, self.options, self.digest = backend, plan, options, digest

    def render(self) -> str:
        return self.backend.render(self.plan, self.options)

    def recover(self, target: Path) -> list[str]:
        return []  # a venv's leftovers are staging folders: staging.recover

    def still_same(self, target: Path, lock: Mapping[str, Any]) -> bool:
        # an env made before it carried its settings (envvars), or whose settings were removed, is rebuilt
        return env_python(target).exists() and envvars.read(target) == envvars.runtime_env(self.plan)

    def damage(self, target: Path, lock: Mapping[str, Any]) -> str | None:
        return None  # its Python distributions' RECORDs: the transaction checks those

    def build(self, target: Path, progress: Progress) -> transaction.Built:
        plan, options = self.plan, self.options
        env = _env(options)
        st = staging.Staging(target, log_name=LOG_NAME)
        try:
            with st:
                result = self.backend._build(plan, options, env, st, self.digest, progress)
                progress("swap", f"moving the new environment into place at {target}")
                st.commit()
        except FwsetupError as exc:
            raise _with_log(exc, st) from None
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # one clear message, the log has the rest
            msg = f"installing {plan.framework} failed: {type(exc).__name__}: {redact_text(str(exc), env_secrets(env))}"
            raise _with_log(InstallError(msg), st) from exc
        return transaction.Built(
            message=f"installed {plan.title or plan.framework} {plan.version} ({plan.variant}) in {target}"
            + (", smoke test passed" if result["smoke"] else "")
            + ".",
            packages=result["packages"],
            smoke=result["smoke"],
            log_file=staging.meta_dir(target) / LOG_NAME,
        )
