"""conda backend: create a conda environment for a Plan (`fwsetup install NAME --method conda`).

render() is the environment.yml (what --dry-run prints); install() solves, creates, smoke-tests and only
then puts the environment in place, with a lock file of the exact packages (name, version, build, channel,
url, sha256, md5). A repeat of the same plan on an intact environment is a no-op.

Where the environment is built, and why (conda prefixes are not relocatable):
  Conda packages hold absolute paths: entry-point shebangs, and text files in which the build prefix is
  replaced by the install prefix when the package is linked. Building in a staging folder and renaming it
  would leave every such path pointing at the staging folder. So:
  - py-rattler and micromamba (libmamba's --relocate-prefix) *link into the staging folder while writing
    the final path into the files* (rattler's alternative_target_prefix). The staged environment is
    smoke-tested with its own python (which finds its prefix from its own location, so it loads the
    staged packages, not the old environment's), then swapped in atomically (staging.py). After the swap
    every recorded path is the final one: the environment is byte for byte what an install at the final
    path makes. tests/test_conda_install.py checks a prefix-replaced file and an entry-point script after
    the swap.
  - conda and mamba 1.x cannot do that, so they build *at the final path*: the old environment is first
    moved aside (same filesystem, one rename, its own paths unchanged) and moved back if anything fails,
    including a run killed half-way (a marker file beside the target says what to undo; the target's
    install lock makes sure the marker's writer is dead when another run reads it).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import secrets
import shlex
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fwsetup import env_ownership, envmeta, pipconfig, proc, staging
from fwsetup.backends import envvars, transaction
from fwsetup.backends.base import Backend, InstallOptions, InstallResult, Progress, no_progress
from fwsetup.backends.conda_env import CondaEnv, conda_env_for, render_environment_yml, spec_name
from fwsetup.backends.conda_tools import (
    Installer,
    Solution,
    describe_installer,
    find_installer,
    python_in,
    read_conda_meta,
)
from fwsetup.errors import FwsetupError, InstallError
from fwsetup.plan import Plan, plan_to_dict
from fwsetup.redact import has_credentials, redact_data, redact_text

ENV_FILE = "environment.yml"  # in <env>/.fwsetup/
PIP_TIMEOUT = 1800.0


def _platform_subdir() -> str:
    machine = platform.machine().lower()
    arch = {"x86_64": "64", "amd64": "64", "aarch64": "aarch64", "arm64": "arm64"}.get(machine, machine)
    system = {"linux": "linux", "darwin": "osx", "windows": "win"}.get(platform.system().lower(), "linux")
    return f"{system}-{arch}"


class CondaBackend(Backend):
    name = "conda"

    def __init__(self, installer: Installer | None = None) -> None:
        # Tests and callers may hand in an installer; by default the machine's (find_installer).
        self._installer = installer

    # -- render ------------------------------------------------------------------------------------------

    def environment(self, plan: Plan, options: InstallOptions) -> CondaEnv:
        return conda_env_for(plan, options.env, name=Path(options.target).name or "env")

    def render(self, plan: Plan, options: InstallOptions) -> str:
        env = self.environment(plan, options)
        text = render_environment_yml(env)
        target = Path(options.target).absolute()
        label = self._installer.label if self._installer else describe_installer(options.env)
        cuda = env.cuda_driver or '""'
        arch = f" CONDA_OVERRIDE_CUDA_ARCH={env.cuda_arch}" if env.cuda_arch else ""
        lines = [
            f"# installer: {label}",
            f"# equivalent: CONDA_OVERRIDE_CUDA={cuda}{arch} micromamba create -y -p {target} -f {ENV_FILE}",
        ]
        if plan.smoke is not None and options.run_smoke:
            lines.append(
                f"# then: smoke test {plan.smoke.script} on {plan.smoke.device} with {python_in(target)}"
            )
        return redact_text(text + "\n".join(lines) + "\n")  # channel or index credentials shown as ***

    # -- install -----------------------------------------------------------------------------------------

    def install(self, plan: Plan, options: InstallOptions, progress: Progress = no_progress) -> InstallResult:
        """The shared install transaction (backends/transaction.py) with a conda build."""
        env = self.environment(plan, options)
        digest = envmeta.plan_digest(
            plan_to_dict(plan),
            {
                "method": "conda",
                "conda": env.digest_data(),
                "subdir": _platform_subdir(),
                "smoke": options.run_smoke,
            },
        )
        job = _CondaJob(self, plan, options, env, digest)
        return transaction.install(job, plan, options, digest=digest, progress=progress)


class _CondaJob:
    """One conda install, as the shared transaction asks for it (transaction.Job)."""

    method = "conda"

    def __init__(
        self, backend: CondaBackend, plan: Plan, options: InstallOptions, env: CondaEnv, digest: str
    ) -> None:
        self.backend, self.plan, self.options, self.env, self.digest = backend, plan, options, env, digest

    def render(self) -> str:
        return self.backend.render(self.plan, self.options)

    def recover(self, target: Path) -> list[str]:
        return _recover_in_place(target)

    def still_same(self, target: Path, lock: Mapping[str, Any]) -> bool:
        return _unchanged(target, lock)

    def damage(self, target: Path, lock: Mapping[str, Any]) -> str | None:
        return _damaged(target)

    def build(self, target: Path, progress: Progress) -> transaction.Built:
        plan, options, env = self.plan, self.options, self.env
        installer = self.backend._installer or find_installer(options.env)
        progress("resolve", f"solving {len(env.specs)} conda specs with {installer.label}")
        solution = installer.solve(env)
        progress("resolve", f"{len(solution.packages)} packages from {', '.join(env.channels)}")
        build = _build_staged if installer.relocates else _build_in_place
        smoke, packages = build(plan, options, env, installer, solution, target, self.digest, progress)
        names = ", ".join(f"{p['name']} {p['version']}" for p in packages if p["name"] in _wanted(env))
        return transaction.Built(
            message=f"created conda environment {target} ({names or f'{len(packages)} packages'})"
            + (", smoke test passed." if smoke else "."),
            packages=packages,
            smoke=smoke,
            log_file=envmeta.meta_dir(target) / "install.log",
        )


def _wanted(env: CondaEnv) -> set[str]:
    return {spec_name(s) for s in env.specs} - {"python", "pip", "cuda-version"}


# -- no-op check -----------------------------------------------------------------------------------------


def _unchanged(target: Path, lock: Mapping[str, Any]) -> bool:
    """Whether `target`, whose lock file has this plan's digest, still holds what it lists: the packages in
    the lock file must still be the ones in conda-meta (nobody ran `conda install` into it since) and the
    python must still start."""
    want = {(p["name"], p["version"], p.get("build")) for p in lock.get("packages", [])}
    have = {(p["name"], p["version"], p.get("build")) for p in read_conda_meta(target)}
    if not want or want != have:
        return False
    python = python_in(target)
    return not (
        (python.exists() or os.path.lexists(python))
        and not proc.run([str(python), "-c", "pass"], timeout=60).ok
    )


def _damaged(target: Path) -> str | None:
    """What is missing from an environment whose conda-meta still lists the locked packages: each conda
    package's files (conda-meta's `files`; prefix-replaced files change size, so existence only). The pip
    section's distributions (their RECORD) are the transaction's check. None when all is there."""
    missing: list[str] = []
    for record in sorted((target / "conda-meta").glob("*.json")):
        try:
            data = json.loads(record.read_text())
        except (OSError, ValueError):
            missing.append(f"{record.name} cannot be read")
            continue
        files = data.get("files") if isinstance(data, dict) else None
        gone = [f for f in files or () if isinstance(f, str) and not os.path.lexists(target / f)]
        if gone:
            missing.append(
                f"{data.get('name')} {data.get('version')}: {len(gone)} of {len(files or ())} files missing (e.g. {gone[0]})"
            )
    return "; ".join(missing[:3]) or None


# -- the two ways to build -------------------------------------------------------------------------------


def _build_staged(
    plan: Plan,
    options: InstallOptions,
    env: CondaEnv,
    installer: Installer,
    solution: Solution,
    target: Path,
    digest: str,
    progress: Progress,
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    with _TempLog(target) as log, staging.Staging(target) as st:
        staging.check_free_space(target.parent, _size_of(solution))
        if installer.kind != "rattler":
            st.path.rmdir()  # libmamba wants to create the prefix itself; the name stays ours (lock held)
        progress(
            "install", f"linking {len(solution.packages)} packages into {st.path.name} (prefix {target})"
        )
        try:
            installer.create(env, solution, prefix=st.path, final=target, log=log.path)
            smoke, packages = _finish(
                plan, options, env, installer, solution.packages, st.path, target, digest, log, progress
            )
        except BaseException as exc:
            _keep_log(log, exc)
            raise
        progress("swap", f"moving the new environment into {target}")
        st.commit()
    return smoke, packages


def _marker(target: Path) -> Path:
    return target.parent / f".{target.name}.fwsetup-conda-inplace.json"


def _build_in_place(
    plan: Plan,
    options: InstallOptions,
    env: CondaEnv,
    installer: Installer,
    solution: Solution,
    target: Path,
    digest: str,
    progress: Progress,
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    staging.check_free_space(target.parent, _size_of(solution))
    marker = _marker(target)
    aside: Path | None = None
    if os.path.lexists(target):
        # Named like staging.py's moved-aside folders: a run killed before the marker is written is
        # repaired by staging.recover() (aside present, target missing -> moved back).
        aside = target.parent / f".{target.name}.fwsetup-old-{os.getpid()}-{secrets.token_hex(3)}"
        os.rename(target, aside)
    marker.write_text(json.dumps({"aside": str(aside) if aside else None, "pid": os.getpid()}))
    with _TempLog(target) as log:
        try:
            progress(
                "install", f"creating {target} with {installer.label} (the old environment is kept aside)"
            )
            installer.create(env, solution, prefix=target, final=target, log=log.path)
            smoke, packages = _finish(
                plan, options, env, installer, solution.packages, target, target, digest, log, progress
            )
        except BaseException as exc:
            _keep_log(log, exc)
            with staging._deferred_signals():
                if os.path.lexists(target):
                    staging._rmtree(target)
                if aside is not None:
                    os.rename(aside, target)
                marker.unlink(missing_ok=True)
            raise
    env_ownership.seal(
        target, target
    )  # fwsetup's record that it made this folder (env_ownership.made_problem)
    staging.hold_signals()  # complete from here on
    # Marker first: once it is gone, a leftover aside folder is only rubbish that recover() deletes.
    marker.unlink(missing_ok=True)
    if aside is not None:
        staging._rmtree(aside)
    return smoke, packages


def _recover_in_place(target: Path) -> list[str]:
    """Undo an in-place build killed half-way (call with the target's lock held)."""
    marker = _marker(target)
    if not marker.exists():
        return []
    try:
        aside = json.loads(marker.read_text()).get("aside")
    except (OSError, ValueError, AttributeError):
        aside = None
    done = []
    if os.path.lexists(target):
        staging._rmtree(target)
        done.append(f"removed the half-made environment {target}, left by an interrupted run")
    if aside and os.path.lexists(aside):
        os.rename(aside, target)
        done.append(f"restored {target} from {Path(aside).name}, left by an interrupted run")
    marker.unlink(missing_ok=True)
    return done


def _keep_log(log: _TempLog, exc: BaseException) -> None:
    log.keep()
    if log.kept is not None and isinstance(exc, FwsetupError):
        exc.hint = f"{exc.hint + ' ' if exc.hint else ''}Log: {log.kept}"


# -- after the packages are linked -----------------------------------------------------------------------


def _finish(
    plan: Plan,
    options: InstallOptions,
    env: CondaEnv,
    installer: Installer,
    installer_rows: tuple[dict[str, Any], ...],
    prefix: Path,
    target: Path,
    digest: str,
    log: _TempLog,
    progress: Progress,
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    python = python_in(prefix)
    pip_rows: list[dict[str, str]] = []
    if env.pip:
        pip_rows = _pip_install(env, options, python, log.path, progress)
        if prefix != target:
            _fix_shebangs(prefix, target)
    if env.variables:
        _write_state(prefix, env.variables)  # `conda activate`
    # and every interpreter of the env, with or without activation (envvars: a .pth in site-packages)
    envvars.write(prefix, envvars.runtime_env(plan))
    packages = read_conda_meta(prefix)
    if not packages:
        msg = f"{installer.label} created {prefix} but it holds no conda packages (no conda-meta records)."
        raise InstallError(msg)
    if options.run_smoke and plan.smoke is not None:
        progress("smoke", f"training step ({plan.smoke.script}, {plan.smoke.device}) with {python}")
    smoke = transaction.smoke(
        python, plan, options, log=log.path, where=f"in the new conda environment {prefix}", prefix=prefix
    )
    meta = envmeta.meta_dir(prefix)
    meta.mkdir(parents=True, exist_ok=True)
    (meta / ENV_FILE).write_text(redact_text(render_environment_yml(env)))  # no credentials on disk
    (meta / "plan.json").write_text(json.dumps(redact_data(plan_to_dict(plan)), indent=2) + "\n")
    # conda-meta holds url, sha256 and md5 for every tool; the solver's answer fills what a tool left out.
    solved = {p["name"]: p for p in installer_rows}
    rows = [{**solved.get(p["name"], {}), **{k: v for k, v in p.items() if v is not None}} for p in packages]
    transaction.write_lock(
        prefix,
        method="conda",
        digest=digest,
        plan=plan,
        installer=installer.label,
        python=next((str(p["version"]) for p in rows if p.get("name") == "python"), plan.python),
        packages=rows,
        pip_packages=pip_rows,
        smoke=smoke,
        details={
            "subdir": _platform_subdir(),
            "channels": list(env.channels),
            "specs": list(env.specs),
            "pip": list(env.pip),
            "virtual_packages": {
                "__cuda": env.cuda_driver,
                **({"__cuda_arch": env.cuda_arch} if env.cuda_arch else {}),
                "source": env.cuda_source,
            },
            "prefix": str(target),
        },
    )
    log.move_into(meta / "install.log")
    return smoke, rows


def _size_of(solution: Solution) -> int:
    # Package archives are compressed; an environment is about 3x its downloads. Unknown sizes count 0.
    return 3 * sum(int(p.get("size") or 0) for p in solution.packages)


def _write_state(prefix: Path, variables: Mapping[str, str]) -> None:
    """Environment variables the framework needs, where `conda activate` sets them (conda-meta/state)."""
    path = prefix / "conda-meta" / "state"
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        state = {}
    state.setdefault("env_vars", {}).update(variables)
    path.write_text(json.dumps(state, indent=2) + "\n")


def _uv() -> list[str]:
    uv = shutil.which("uv")
    return [uv] if uv else [sys.executable, "-m", "uv"]


_UV_URL_VARS = {
    "--index-url": "UV_INDEX_URL",
    "--extra-index-url": "UV_EXTRA_INDEX_URL",
    "--find-links": "UV_FIND_LINKS",
}
_SHORT = {"-i": "--index-url", "-f": "--find-links"}


def _credentials_to_env(argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """uv's URL options whose values carry a credential, moved from argv (visible in ps) to uv's variables
    (each option wholly: a flag would hide its variable). The rest of argv is unchanged."""
    values: dict[str, list[str]] = {}
    rest: list[str] = []
    i = 0
    while i < len(argv):
        flag, eq, value = argv[i].partition("=")
        flag = _SHORT.get(flag, flag)
        if flag in _UV_URL_VARS and (eq or i + 1 < len(argv)):
            if not eq:
                i += 1
                value = argv[i]
            values.setdefault(flag, []).append(value)
        else:
            rest.append(argv[i])
        i += 1
    out_env: dict[str, str] = {}
    for flag, vals in values.items():
        if not any(has_credentials(v) for v in vals):
            rest += [x for v in vals for x in (flag, v)]
        elif flag == "--index-url":
            out_env["UV_INDEX_URL"] = vals[-1]  # the last one wins, as with the flag
        else:
            out_env[_UV_URL_VARS[flag]] = ("," if flag == "--find-links" else " ").join(vals)
    return rest, out_env


def _pip_install(
    env: CondaEnv, options: InstallOptions, python: Path, log: Path, progress: Progress
) -> list[dict[str, str]]:
    """The environment.yml pip: section, with uv into the environment's own python. Returns what pip
    installed (name, version) for the lock file; conda's records do not list those."""
    progress("install", f"pip section: {', '.join(env.pip)}")
    argv = [*_uv(), "pip", "install", "--python", str(python)]
    if options.wheelhouse:
        argv += ["--find-links", str(options.wheelhouse)]
    if options.offline:
        argv += ["--offline", "--no-index"]
    for line in env.pip:  # requirement-file lines: options ("--extra-index-url URL") or requirements
        argv += shlex.split(line) if line.startswith("-") else [line]
    argv, uv_env = _credentials_to_env(argv)
    base_env = dict(options.env or os.environ)
    # pip's trust and auth (system trust store, cert / REQUESTS_CA_BUNDLE, keyring), as for the venv backend
    trust = pipconfig.trust_env(pipconfig.read_pip_settings(base_env), base_env)
    run_env = {**base_env, **trust, **uv_env}
    res = proc.run(argv, timeout=PIP_TIMEOUT, env=run_env)
    with contextlib.suppress(OSError), open(log, "a") as f:
        f.write(redact_text(f"+ {shlex.join(res.argv)}\n{res.stdout}\n{res.stderr}\n"))
    if not res.ok:
        lines = [ln.strip() for ln in res.stderr.strip().splitlines() if ln.strip()]
        why = redact_text(res.error or (lines[0] if lines else "no output"))
        msg = redact_text(f"the pip section of the environment ({', '.join(env.pip)}) failed: {why}")
        raise InstallError(msg, hint="Check the pip requirements in the recipe's conda table.")
    listed = proc.run([*_uv(), "pip", "list", "--format", "json", "--python", str(python)], timeout=120)
    try:
        items = json.loads(listed.stdout) if listed.ok else []
    except ValueError:
        items = []
    conda_names = {p["name"] for p in read_conda_meta(python.parent.parent)}
    return [
        {"name": str(i["name"]), "version": str(i["version"])}
        for i in items
        if isinstance(i, dict) and str(i.get("name", "")).lower() not in conda_names
    ]


def _fix_shebangs(prefix: Path, target: Path) -> None:
    """pip/uv write the interpreter's path into console scripts: point those at the final prefix."""
    old, new = f"#!{prefix}/".encode(), f"#!{target}/".encode()
    bindir = prefix / "bin"
    for path in bindir.iterdir() if bindir.is_dir() else ():
        if path.is_symlink() or not path.is_file():
            continue
        with contextlib.suppress(OSError):
            with open(path, "rb") as f:
                head = f.read(len(old))
            if head == old:
                data = path.read_bytes()
                path.write_bytes(new + data[len(old) :])


class _TempLog:
    """The install log, outside the prefix until it is complete (installers want an empty prefix)."""

    def __init__(self, target: Path) -> None:
        self.target = target
        fd, name = tempfile.mkstemp(prefix=f"fwsetup-conda-{target.name}-", suffix=".log")
        os.close(fd)
        self.path = Path(name)
        self.kept: Path | None = None

    def keep(self) -> None:
        self.kept = staging.keep_failure_log(self.path, self.target)

    def move_into(self, dest: Path) -> None:
        with contextlib.suppress(OSError):
            shutil.copyfile(self.path, dest)

    def __enter__(self) -> _TempLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.path.unlink(missing_ok=True)
