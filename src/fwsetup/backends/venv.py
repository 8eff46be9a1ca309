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

import hashlib
import json
import os
import shlex
import shutil
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

from fwsetup import envmeta, installed_files, pipconfig, proc, staging
from fwsetup.backends import envvars, pip_messages, transaction, uv_messages
from fwsetup.backends.base import Backend, InstallOptions, InstallResult, Progress, no_progress
from fwsetup.backends.installer import MIN_UV, Installer, base_python, find_installer, own_interpreter
from fwsetup.backends.pylock import PYLOCK, locked_requirements, read_locked, read_pip_report, read_pylock
from fwsetup.backends.venv_failures import damaged_cache, last_line, raise_for, with_log
from fwsetup.backends.venv_paths import env_python, fix_paths, python_version
from fwsetup.backends.wheel_sources import Sources, check_sources, index_cache, pip_index_env
from fwsetup.errors import FwsetupError, InstallError, NetworkError, UsageError
from fwsetup.plan import Plan, plan_to_dict
from fwsetup.proc import env_secrets, run_streamed
from fwsetup.redact import redact_data, redact_text
from fwsetup.settings import resolve
from fwsetup.text import human_bytes

INSTALL_TIMEOUT = 3600.0
EXPANSION = 2.5  # installed size / wheel size, roughly (torch 190 MB wheel -> ~450 MB installed)
PLAN_FILE = "plan.json"
LOG_NAME = "install.log"
T = TypeVar("T")


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
        lines = locked_requirements(read_locked(options.locked.read_text(encoding="utf-8")), "")
        extra["locked"] = hashlib.sha256(lines.encode()).hexdigest()
    return envmeta.plan_digest({k: d.get(k) for k in keep}, extra)


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
        meta = where / envmeta.META_DIR
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
        base = base_python(py, _env(options))
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
            index_cache=index_cache(env) if install else None,
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
            from fwsetup.smoke.runner import smoke_argv  # kept out of this module's import: see _build_in

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
        resolving: _Background[proc.Result] | None = None
        if lockdir is not None:
            (lockdir / "requirements.in").write_text(requirements_in)
            resolving = _Background(
                lambda: run_streamed(cmds[1], env=run_env, log=lockdir / LOG_NAME, timeout=INSTALL_TIMEOUT),
                "fwsetup-resolve",
            )
        venv_made = _Background(lambda: proc.run(cmds[0], timeout=300, env=run_env), "fwsetup-venv")
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
        # What comes after, imported while uv works (the two cores are otherwise idle here): the smoke
        # runner, 9 ms here (measured with -X importtime), kept out of the module's own import for that
        import fwsetup.smoke.runner  # noqa: F401 - transaction.smoke

        first = venv_made.result()
        resolved = resolving.result() if resolving is not None else None
        st.meta.mkdir(parents=True, exist_ok=True)
        with open(st.log_file, "a") as f:
            f.write("\n".join(pre_log) + "\n")
            f.write(redact_text(f"+ {shlex.join(first.argv)}\n{first.stdout}{first.stderr}\n", hidden))
            if lockdir is not None and (lockdir / LOG_NAME).is_file():
                f.write((lockdir / LOG_NAME).read_text())  # redacted by run_streamed
        if not first.ok:
            why = redact_text(first.error or last_line(first.stderr), hidden)
            msg = f"could not create the environment with {shlex.join(cmds[0][:2])}: {why}"
            wanted = options.python or plan.python
            hint = f"Install it (uv python install {wanted}) or choose another with --python X.Y."
            cause = uv_messages.venv_failure(first.stderr or "") if inst.kind == "uv" else "other"
            # the program that makes the environment (uv, or pip's base python) could not be started: not here
            missing = first.returncode is None and shutil.which(cmds[0][0], path=run_env.get("PATH")) is None
            if cause == "interpreter_download":
                # issue 9, item 10: a Python that is not here and cannot be fetched is not a failed install (5)
                raise NetworkError(
                    f"Python {wanted} is not installed here and could not be downloaded: {why}", hint=hint
                )
            if cause == "interpreter_missing" or missing:
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
            raise_for(resolved, "resolving", inst.kind)
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
        checked = [p for p in packages if p.get("name") not in set(options.repair)]
        verified = _Background(lambda: installed_files.verify_hashes(st.path, checked), "fwsetup-verify")
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
            damaged_cache(bad, inst, cmds, run_env, st)
        changed = fix_paths(st.path, st.path, st.target)
        if changed:
            with open(st.log_file, "a") as f:
                f.write(f"fixed the staging path in: {', '.join(changed)}\n")
        py_version = python_version(env_python(st.path))
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
            raise_for(clean, "cleaning uv's cache", "uv")
        total = sum(p.get("size", 0) for p in packages)
        if total:
            staging.check_free_space(st.target.parent, int(total * (1 + EXPANSION)))
        n = len(packages)
        progress(
            "download",
            f"downloading {n} packages ({human_bytes(total)})" if total else f"downloading {n} packages",
        )

        def on_line(line: str) -> None:
            if uv_messages.is_prepared_line(line):
                progress("install", f"installing {n} packages")

        res = run_streamed(cmds[2], env=env, log=st.log_file, timeout=INSTALL_TIMEOUT, on_line=on_line)
        raise_for(res, "installing", "uv")
        bad = installed_files.verify_hashes(st.path, [{"name": n} for n in repair])
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
            if pip_messages.is_installing_line(line):
                progress("install", "pip: installing")

        res = run_streamed(cmds[1], env=env, log=st.log_file, timeout=INSTALL_TIMEOUT, on_line=on_line)
        raise_for(res, "installing", "pip")
        return read_pip_report(st.meta / "pip-report.json")


class _Background(Generic[T]):
    """A function run in a thread (a child process it waits on, or hashlib: the GIL is free meanwhile);
    result() joins it and returns its value or raises what it raised."""

    def __init__(self, fn: Callable[[], T], name: str) -> None:
        self._value: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn,), daemon=True, name=name)
        self._thread.start()

    def _run(self, fn: Callable[[], T]) -> None:
        try:
            self._value = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller by result()
            self._error = exc

    def result(self) -> T:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._value is not None
        return self._value


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
            raise with_log(exc, st) from None
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # one clear message, the log has the rest
            msg = f"installing {plan.framework} failed: {type(exc).__name__}: {redact_text(str(exc), env_secrets(env))}"
            raise with_log(InstallError(msg), st) from exc
        return transaction.Built(
            message=f"installed {plan.title or plan.framework} {plan.version} ({plan.variant}) in {target}"
            + (", smoke test passed" if result["smoke"] else "")
            + ".",
            packages=result["packages"],
            smoke=result["smoke"],
            log_file=envmeta.meta_dir(target) / LOG_NAME,
        )
