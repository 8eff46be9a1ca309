"""The environments fwsetup made: a registry in the user's data folder, and each environment's own smoke record.

API (used by install, smoke, sync, `fwsetup envs` / `remove`, and doctor):

    registry_path(environ)          <data dir>/envs.json (settings.data_dir: FWSETUP_DATA_DIR, else platformdirs'
                                    user_data_dir conventions; ~/.local/share/fwsetup on Linux)
    record(env)                     add or refresh an environment fwsetup made (read from its .fwsetup/); never raises
    record_smoke(env, report|error) the result of a `fwsetup smoke` run in it: <env>/.fwsetup/smoke.json + registry
    smoke_status(env) -> SmokeStatus  passed | failed | untested | unknown, with its date and what it says
    known(environ) -> [EnvInfo]     every registered environment as it is now (missing ones say so)
    forget(path)                    drop one from the registry
    owned_problem(path) -> str|None why `path` is not an environment fwsetup can prove it made (None: it is)

Crash safety: the registry is only ever replaced whole (a temporary file beside it, fsync, os.replace), under
an exclusive lock (<data dir>/envs.json.lock, fcntl.flock) held for the read-modify-write, so two installs at
once both end up in it. A registry that cannot be read (not JSON, another schema) is moved aside to
envs.json.corrupt-<time> with a warning, and rebuilt from the environments fwsetup can prove it made in
<data dir>/envs/ (the default --env place); an entry whose folder was deleted by hand is reported as missing and
dropped. The registry is an index: what an environment is (framework, version, smoke result) is read from its
own .fwsetup/ files, which travel with it.

<env>/.fwsetup/smoke.json (written by install, `fwsetup smoke`, sync): {"status": "passed"|"failed"|"untested",
"date": ISO-8601 UTC, "by": "install"|"smoke"|"sync", "detail": one line, "report": the smoke report or null}.
`untested` is what `install --skip-smoke` leaves (its lock.json says `"smoke_skipped": "--skip-smoke"`) until a
`fwsetup smoke` with that env's python passes.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from fwsetup import env_ownership, envmeta, staging
from fwsetup.errors import UsageError
from fwsetup.settings import resolve
from fwsetup.ui import escape, info

log = logging.getLogger("fwsetup")

REGISTRY_FILE = "envs.json"
SMOKE_FILE = "smoke.json"  # inside <env>/.fwsetup/
SCHEMA = 1
LOCK_TIMEOUT = 30.0  # seconds to wait for another fwsetup writing the registry

Status = Literal["passed", "failed", "untested", "unknown"]


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def data_dir(environ: Mapping[str, str] | None = None) -> Path:
    return resolve(environ).data_dir


def registry_path(environ: Mapping[str, str] | None = None) -> Path:
    return data_dir(environ) / REGISTRY_FILE


def _warn(message: str) -> None:
    log.debug("%s", message)
    info(f"[yellow]warning:[/] {escape(message)}")


# -- an environment's own smoke record ------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SmokeStatus:
    status: Status
    date: str | None = None
    by: str | None = None  # install | smoke | sync
    detail: str = ""  # "loss 2.31 -> 0.41 on cpu", "--skip-smoke", the failure's reason

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _summary(report: Mapping[str, Any] | None) -> str:
    if not report:
        return ""
    try:
        return f"loss {float(report['loss_before']):.4g} -> {float(report['loss_after']):.4g} on {report.get('device')}"
    except (KeyError, TypeError, ValueError):
        return str(report.get("device") or "")


def write_smoke(
    env: Path,
    status: Status,
    *,
    by: str,
    report: Mapping[str, Any] | None = None,
    detail: str = "",
) -> None:
    """<env>/.fwsetup/smoke.json, replaced atomically (before the swap for install and sync)."""
    meta = envmeta.meta_dir(env)
    meta.mkdir(parents=True, exist_ok=True)
    body = {
        "written_by": envmeta.WRITTEN_BY,
        "status": status,
        "date": _now(),
        "by": by,
        "detail": detail or _summary(report),
        "report": dict(report) if report else None,
    }
    _atomic_write(meta / SMOKE_FILE, json.dumps(body, indent=2) + "\n")


def smoke_status(env: Path) -> SmokeStatus:
    """The last smoke result of an environment fwsetup made: its smoke.json, else (made before that file)
    lock.json's smoke (passed at the install) or `smoke_skipped` (untested); unknown when neither says."""
    try:
        data = json.loads((envmeta.meta_dir(env) / SMOKE_FILE).read_text())
        if isinstance(data, dict) and data.get("status") in ("passed", "failed", "untested"):
            return SmokeStatus(
                status=data["status"],
                date=str(data.get("date") or "") or None,
                by=str(data.get("by") or "") or None,
                detail=str(data.get("detail") or ""),
            )
    except (OSError, ValueError, UnicodeDecodeError):
        pass
    lock = envmeta.read_lock_file(env) or {}
    if lock.get("smoke_skipped"):
        return SmokeStatus(
            status="untested", date=lock.get("created"), by="install", detail=str(lock["smoke_skipped"])
        )
    if isinstance(lock.get("smoke"), dict) and lock["smoke"].get("ok", True):
        return SmokeStatus(
            status="passed", date=lock.get("created"), by="install", detail=_summary(lock["smoke"])
        )
    return SmokeStatus(status="unknown")


# -- ownership --------------------------------------------------------------------------------------------


def owned_problem(path: Path) -> str | None:
    """None when `path` is an environment fwsetup made there (its lock.json and made.json: staging), else why
    not, in words."""
    path = Path(path)
    if not path.is_dir() or path.is_symlink():
        return "not a folder" if os.path.lexists(path) else "no such folder"
    return envmeta.lock_file_problem(path) or env_ownership.made_problem(path)


def env_of_python(python: str | Path) -> Path | None:
    """The environment fwsetup made that `python` (ENV/bin/python, as given: a venv's python is a link to the
    base interpreter, so it is not resolved) belongs to, or None."""
    p = Path(python).expanduser().absolute()
    for env in (p.parent.parent, p.parent):
        with contextlib.suppress(OSError):
            real = Path(os.path.realpath(env))
            if (envmeta.meta_dir(real) / envmeta.MADE_FILE).is_file() and owned_problem(real) is None:
                return real
    return None


# -- the registry file ---------------------------------------------------------------------------------------


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{os.urandom(3).hex()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    with contextlib.suppress(OSError):  # the rename itself reaches the disk
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / (REGISTRY_FILE + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + LOCK_TIMEOUT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
                if time.monotonic() >= deadline:
                    raise TimeoutError(
                        f"another fwsetup holds {folder / (REGISTRY_FILE + '.lock')}"
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


def _entry_ok(e: Any) -> bool:
    return isinstance(e, dict) and isinstance(e.get("path"), str) and os.path.isabs(e["path"])


def _read(path: Path) -> tuple[list[dict[str, Any]], str | None]:
    """(entries, why the file is unusable or None). A missing file is an empty registry."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return [], None
    except OSError as exc:
        return [], f"cannot be read ({exc.strerror or exc})"
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        return [], f"is not valid JSON ({exc})"
    if (
        not isinstance(data, dict)
        or data.get("schema_version") != SCHEMA
        or not isinstance(data.get("envs"), list)
    ):
        return [], "is not a registry this fwsetup wrote (schema_version 1, envs: [...])"
    return [e for e in data["envs"] if _entry_ok(e)], None


def _rebuilt(folder: Path) -> list[dict[str, Any]]:
    """Entries for the environments fwsetup can prove it made in <data dir>/envs/ (the default --env place)."""
    out = []
    envs = folder / "envs"
    with contextlib.suppress(OSError):
        for p in sorted(envs.iterdir()):
            if p.is_dir() and not p.name.startswith(".") and owned_problem(p) is None:
                out.append(_describe(p))
    return out


def _load(folder: Path) -> list[dict[str, Any]]:
    """The entries, the lock held. A corrupt file is moved aside and rebuilt (with a warning)."""
    path = folder / REGISTRY_FILE
    entries, problem = _read(path)
    if problem is None:
        return entries
    stamp = f"{REGISTRY_FILE}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}"
    aside = path.with_name(stamp)
    n = 1
    while os.path.lexists(aside):  # two corrupt files in one second: never replace the first one kept aside
        aside, n = path.with_name(f"{stamp}-{n}"), n + 1
    moved = False
    with contextlib.suppress(OSError):
        os.replace(path, aside)
        moved = True
    entries = _rebuilt(folder)
    kept = f"it was moved to {aside}" if moved else "it was left as it is"
    _warn(
        f"the registry of environments {path} {problem}: {kept}, and it was rebuilt from the environments "
        f"fwsetup made in {folder / 'envs'} ({len(entries)} found). Environments elsewhere are listed again "
        "by their next install or `fwsetup smoke`."
    )
    return entries


def _save(folder: Path, entries: list[dict[str, Any]]) -> None:
    body = {"schema_version": SCHEMA, "written_by": envmeta.WRITTEN_BY, "envs": entries}
    _atomic_write(folder / REGISTRY_FILE, json.dumps(body, indent=2) + "\n")


def _describe(env: Path) -> dict[str, Any]:
    """A registry entry from the environment's own files."""
    lock = envmeta.read_lock_file(env) or {}
    plan: dict[str, Any] = lock["plan"] if isinstance(lock.get("plan"), dict) else {}
    return {
        "path": str(env),
        "framework": lock.get("framework"),
        "title": plan.get("title") or lock.get("framework"),
        "version": lock.get("version"),
        "variant": lock.get("variant"),
        "method": lock.get("method", "venv"),
        "python": lock.get("python"),
        "created": lock.get("created"),
        "registered": _now(),
        "smoke": smoke_status(env).as_dict(),
    }


def _update(environ: Mapping[str, str] | None, change: Any) -> Any:
    """change(entries) -> result, under the lock; the entries are saved after. Registry trouble is a warning."""
    folder = data_dir(environ)
    try:
        with _locked(folder):
            entries = _load(folder)
            result = change(entries)
            _save(folder, entries)
            return result
    except (OSError, TimeoutError) as exc:
        _warn(f"could not update the registry of environments in {folder}: {exc}")
        return None


def record(env: Path, environ: Mapping[str, str] | None = None) -> None:
    """Add (or refresh) an environment fwsetup made. Never raises: the registry is an index, and an install
    that worked is not undone by it."""
    env = Path(env).absolute()
    if owned_problem(env) is not None:
        return
    entry = _describe(env)

    def change(entries: list[dict[str, Any]]) -> None:
        old = next((e for e in entries if e["path"] == entry["path"]), None)
        if old is not None:
            entry["registered"] = old.get("registered", entry["registered"])
            entries.remove(old)
        entries.append(entry)

    _update(environ, change)


def record_smoke(
    env: Path,
    *,
    report: Mapping[str, Any] | None = None,
    error: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> None:
    """The result of a `fwsetup smoke` in an environment fwsetup made: its smoke.json, then the registry."""
    try:
        write_smoke(
            env, "passed" if error is None else "failed", by="smoke", report=report, detail=error or ""
        )
    except OSError as exc:
        _warn(f"could not record the smoke result in {envmeta.meta_dir(env) / SMOKE_FILE}: {exc}")
        return
    record(env, environ)


def forget(path: Path, environ: Mapping[str, str] | None = None) -> bool:
    """Drop an environment from the registry; True when it was there."""
    want = str(Path(path).absolute())

    def change(entries: list[dict[str, Any]]) -> bool:
        before = len(entries)
        entries[:] = [e for e in entries if e["path"] != want]
        return len(entries) != before

    return bool(_update(environ, change))


# -- what `fwsetup envs` lists ----------------------------------------------------------------------------------

State = Literal["ok", "missing", "not-fwsetup"]


@dataclass(frozen=True, kw_only=True)
class EnvInfo:
    path: str
    state: State  # ok; missing (deleted by hand); not-fwsetup (something else is there now)
    framework: str | None = None
    title: str | None = None
    version: str | None = None
    variant: str | None = None
    method: str | None = None
    python: str | None = None
    created: str | None = None
    smoke: SmokeStatus = SmokeStatus(status="unknown")
    size_bytes: int | None = None
    problem: str | None = None  # why it is not an environment fwsetup made (state not-fwsetup)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["smoke"] = self.smoke.as_dict()
        return d


def folder_size(path: Path) -> int:
    """Bytes of the files under `path` (links not followed; a file hard-linked twice inside counted once)."""
    total, seen = 0, set()
    stack = [str(path)]
    while stack:
        top = stack.pop()
        try:
            with os.scandir(top) as it:
                for e in it:
                    try:
                        if e.is_dir(follow_symlinks=False):
                            stack.append(e.path)
                        elif e.is_file(follow_symlinks=False):
                            st = e.stat(follow_symlinks=False)
                            if st.st_nlink > 1:
                                if (st.st_dev, st.st_ino) in seen:
                                    continue
                                seen.add((st.st_dev, st.st_ino))
                            total += st.st_size
                    except OSError:
                        continue
        except OSError:
            continue
    return total


def known(
    environ: Mapping[str, str] | None = None, *, sizes: bool = True, prune: bool = True
) -> list[EnvInfo]:
    """Every registered environment as it is now. With `prune`, those deleted by hand (or replaced by a folder
    fwsetup did not make) are dropped from the registry; they are still in the list returned, once."""
    folder = data_dir(environ)
    if not folder.is_dir():
        if os.path.lexists(folder):  # a file (or a broken link) where the data folder goes: installs warn too
            _warn(
                f"the data folder {folder} is not a folder, so no registry of environments is kept there: "
                "make FWSETUP_DATA_DIR name a folder."
            )
        return []  # nothing registered yet: a listing makes no folder
    try:
        with _locked(folder):
            had = _read(folder / REGISTRY_FILE)[1]
            entries = _load(folder)
            if had is not None:
                _save(folder, entries)  # the rebuilt registry replaces the one moved aside
    except (OSError, TimeoutError) as exc:
        _warn(f"could not read the registry of environments in {folder}: {exc}")
        return []
    out: list[EnvInfo] = []
    gone: list[str] = []
    for e in entries:
        p = Path(e["path"])
        last: dict[str, Any] = e["smoke"] if isinstance(e.get("smoke"), dict) else {}
        if not os.path.lexists(p):
            gone.append(e["path"])
            out.append(_info(e, "missing", SmokeStatus(**_smoke_fields(last))))
            continue
        problem = owned_problem(p)
        if problem is not None:
            gone.append(e["path"])
            out.append(_info(e, "not-fwsetup", SmokeStatus(**_smoke_fields(last)), problem=problem))
            continue
        fresh = _describe(p)
        out.append(_info(fresh, "ok", smoke_status(p), size=folder_size(p) if sizes else None))
    if prune and gone:
        _update(
            environ,
            lambda entries: entries.__setitem__(slice(None), [x for x in entries if x["path"] not in gone]),
        )
    return out


def _smoke_fields(d: Mapping[str, Any]) -> dict[str, Any]:
    status = d.get("status") if d.get("status") in ("passed", "failed", "untested") else "unknown"
    return {"status": status, "date": d.get("date"), "by": d.get("by"), "detail": str(d.get("detail") or "")}


def _info(
    e: Mapping[str, Any],
    state: State,
    smoke: SmokeStatus,
    *,
    size: int | None = None,
    problem: str | None = None,
) -> EnvInfo:
    def s(key: str) -> str | None:
        v = e.get(key)
        return str(v) if v is not None else None

    return EnvInfo(
        path=str(e["path"]), state=state, framework=s("framework"), title=s("title"), version=s("version"),
        variant=s("variant"), method=s("method"), python=s("python"), created=s("created"), smoke=smoke,
        size_bytes=size, problem=problem,
    )  # fmt: skip


def find(name_or_path: str, environ: Mapping[str, str] | None = None) -> Path:
    """The environment a user named: a path (relative to here), else the one registered environment whose
    folder is called that (`fwsetup remove pytorch-cpu`). The path as given when neither matches."""
    given = Path(name_or_path).expanduser().absolute()
    # the folder's parent with its links resolved, the folder itself not (the registry holds real paths)
    given = Path(os.path.realpath(given.parent)) / given.name if given.name else given
    if os.path.lexists(given) or os.sep in name_or_path or name_or_path in (".", ".."):
        return given
    entries, _problem = _read(registry_path(environ))
    hits = [Path(e["path"]) for e in entries if Path(e["path"]).name == name_or_path]
    return hits[0] if len(hits) == 1 else given


# -- remove -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Removal:
    path: Path
    gone: bool  # already deleted (by hand): only dropped from the registry
    describe: str = ""


def _registered(path: Path, environ: Mapping[str, str] | None = None) -> bool:
    entries, _problem = _read(registry_path(environ))
    return any(e["path"] == str(path) for e in entries)


def removal(path: Path, environ: Mapping[str, str] | None = None) -> Removal:
    """What `fwsetup remove` would do, checked before anything is touched: UsageError (exit 2) unless `path`
    is an environment fwsetup made there (made.json) holding nothing of the user's at its top, or a registered
    environment that is gone already."""
    path = Path(path)
    if not os.path.lexists(path):
        if _registered(path, environ):
            return Removal(path=path, gone=True)
        msg = f"{path}: no such environment."
        raise UsageError(msg, hint="`fwsetup envs` lists the environments fwsetup made.")
    if path.is_symlink():
        msg = f"{path} is a symbolic link (to {os.readlink(path)}): nothing was removed."
        raise UsageError(msg, hint="Name the environment's folder itself.")
    problem = owned_problem(path)
    if problem is not None:
        msg = f"{path} is not an environment fwsetup made ({problem}): nothing was removed."
        raise UsageError(
            msg, hint="fwsetup removes only the folders it made; remove this one yourself if you mean to."
        )
    foreign = env_ownership.foreign_entries(path)
    if foreign:
        shown = ", ".join(foreign[:6]) + (f" and {len(foreign) - 6} more" if len(foreign) > 6 else "")
        msg = f"{path} is an environment fwsetup made, but it also holds files of yours: {shown}. Nothing was removed."
        raise UsageError(msg, hint="Move them out of it first, then run `fwsetup remove` again.")
    e = _describe(path)
    what = " ".join(str(x) for x in (e.get("title") or e.get("framework"), e.get("version")) if x)
    return Removal(path=path, gone=False, describe=f"{path} ({what}, {e.get('variant')}, {e.get('method')})")


def remove(path: Path, environ: Mapping[str, str] | None = None) -> None:
    """Delete an environment fwsetup made (checked again with its install lock held: no install is running in
    it), then drop it from the registry. It is first renamed to a staging name beside it, so that what a killed
    removal leaves is removed by the next install there (staging.recover), never half an environment."""
    path = Path(path)
    with staging.target_lock(path, on_wait=lambda message: info(escape(message))):
        if removal(path, environ).gone:
            forget(path, environ)
            return
        aside = path.parent / f"{staging._staging_prefix(path)}{os.getpid()}-{os.urandom(3).hex()}"
        os.rename(path, aside)
        forget(path, environ)
        staging._rmtree(aside)
