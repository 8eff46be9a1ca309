"""Nothing half-done: build an environment in a staging folder next to its target, swap it in only when it
is complete and smoke-tested, and serialise installs into one target with a lock.

Used by every backend that writes a folder (venv, conda). The pattern:

    with target_lock(target):            # <parent>/.<name>.fwsetup.lock (fcntl.flock; waits for a holder)
        recover(target)                  # undo what a killed run left: stale staging, a target moved aside
        if read_lock_file(target) ...    # same plan already there: no-op
        with Staging(target) as st:      # <parent>/.<name>.fwsetup-staging-<pid>-<rand>/ (empty, same fs)
            ... build into st.path, smoke-test it ...
            st.commit()                  # atomic swap: renameat2(RENAME_EXCHANGE), then the old one deleted
        # leaving the block without commit() (error, Ctrl-C, SIGTERM) removes the staging folder

Why this is safe against SIGKILL: every staging and moved-aside folder is created and removed only while the
target's lock is held, so whatever such folder a later run finds while *it* holds the lock belongs to a dead
run; `recover()` deletes it (or, for a target moved aside but never replaced, moves it back).

The environment's own metadata lives in `<env>/.fwsetup/` (META_DIR): lock.json (plan + resolved packages
with hashes; its schema: backends/transaction.py), plan.json, install.log. The install transaction built on
these pieces is written once, in backends/transaction.py, for venv and conda.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from fwsetup.errors import InstallError, UsageError
from fwsetup.text import human_bytes
from fwsetup.ui import state as ui_state

log = logging.getLogger("fwsetup")

META_DIR = ".fwsetup"  # inside an environment
LOCK_FILE = "lock.json"  # inside META_DIR
LOG_DIR = ".fwsetup-logs"  # beside the environments: failed runs' logs are kept here
LOCK_FILE_VERSION = 2  # backends/transaction.py: one schema for venv and conda (1: before it; still read)
LOCK_FILE_VERSIONS = (1, 2)  # the lock files fwsetup wrote and still recognises as its own
WRITTEN_BY = "fwsetup"  # lock.json's written_by
MADE_FILE = (
    "made.json"  # inside META_DIR: fwsetup's record that it made this folder, here (seal, made_problem)
)
FILES_FILE = "files.json"  # inside META_DIR: size and mtime of every installed file at the swap (seal)


# -- names ---------------------------------------------------------------------------------------------


def lock_path(target: Path) -> Path:
    target = Path(target)
    return target.parent / f".{target.name}.fwsetup.lock"


def _staging_prefix(target: Path) -> str:
    return f".{target.name}.fwsetup-staging-"


def _aside_prefix(target: Path) -> str:
    return f".{target.name}.fwsetup-old-"


def meta_dir(env: Path) -> Path:
    return Path(env) / META_DIR


def failure_log_dir(target: Path) -> Path:
    return Path(target).parent / LOG_DIR


# -- lock ----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def target_lock(
    target: Path,
    *,
    timeout: float | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[Path]:
    """Hold the install lock of `target` (blocking; `timeout` seconds at most, None = forever).

    When the target does not exist on release (the install was refused or failed before anything was put
    in place), the lock file is removed too: nothing is left behind. That is safe against waiters because a
    holder checks, once it has the lock, that the file it locked is still the one at the lock's path (a
    waiter that locked a removed file opens the new one and waits again).
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        msg = f"cannot create {target.parent}: {exc.strerror or exc}."
        raise InstallError(msg) from None
    path = lock_path(target)
    deadline = None if timeout is None else time.monotonic() + timeout
    told = False
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                        raise
                holder = _read_holder(fd)
                if not told and on_wait is not None:
                    on_wait(f"another fwsetup{holder} is installing into {target}; waiting for it to finish")
                    told = True
                if deadline is not None and time.monotonic() >= deadline:
                    msg = f"another fwsetup{holder} is still installing into {target} (lock {path})."
                    raise InstallError(msg, hint="Wait for it to finish, or stop it, and run again.")
                time.sleep(0.2)
        except BaseException:
            os.close(fd)
            raise
        if _same_file(fd, path):
            break
        os.close(fd)  # the holder before us removed the file we locked: lock the one there now
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            if not os.path.lexists(target):
                os.unlink(path)  # still held: a waiter sees that its file is gone and starts again
        os.close(fd)  # releases the flock


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _read_holder(fd: int) -> str:
    try:
        pid = os.pread(fd, 32, 0).decode().strip()
    except OSError:
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""


# -- recovery of what a killed run left ------------------------------------------------------------------


def recover(target: Path) -> list[str]:
    """Call with the lock held. Returns what was done, one sentence each (for the log)."""
    target = Path(target)
    done: list[str] = []
    if not target.parent.is_dir():
        return done
    asides = sorted(p for p in target.parent.iterdir() if p.name.startswith(_aside_prefix(target)))
    if asides and not os.path.lexists(target):
        # Killed between "target moved aside" and "staging moved in" (the two-rename fallback only).
        os.rename(asides[-1], target)
        done.append(f"restored {target} from {asides[-1].name}, left by an interrupted run")
        asides = asides[:-1]
    for p in asides + sorted(
        p for p in target.parent.iterdir() if p.name.startswith(_staging_prefix(target))
    ):
        _rmtree(p)
        done.append(f"removed {p.name}, left by an interrupted run")
    for line in done:
        log.info("%s", line)
    return done


def _rmtree(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
        return

    def retry(func: Any, p: str, _exc: Any) -> None:  # read-only folders inside wheels, etc.
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(p), 0o700)
            if os.path.isdir(p) and not os.path.islink(p):
                os.chmod(p, 0o700)
            func(p)

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=retry)
    else:
        shutil.rmtree(path, onerror=retry)


# -- atomic swap ---------------------------------------------------------------------------------------

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2). False when the system cannot do it."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    rc = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(a))


def swap_into_place(staging: Path, target: Path) -> None:
    """Make `staging` the new `target`; the old target (if any) is deleted. At no moment is `target`
    missing or half-written when renameat2 works; otherwise the window is two renames long and
    `recover()` repairs a run killed inside it."""
    staging, target = Path(staging), Path(target)
    if not os.path.lexists(target):
        os.rename(staging, target)
        return
    if _exchange(staging, target):
        _rmtree(staging)  # now holds the old environment
        return
    aside = target.parent / f"{_aside_prefix(target)}{os.getpid()}-{os.urandom(3).hex()}"
    os.rename(target, aside)
    try:
        os.rename(staging, target)
    except BaseException:
        os.rename(aside, target)
        raise
    _rmtree(aside)


# -- staging folder ------------------------------------------------------------------------------------


class Staging:
    """An empty folder beside `target` (same filesystem, so the final rename is atomic).

    Leaving the `with` block without `commit()` deletes it; with `keep_log` the staging's install log
    is first copied to <parent>/.fwsetup-logs/ and its path put in `failure_log`.
    """

    def __init__(self, target: Path, *, log_name: str = "install.log") -> None:
        self.target = Path(target).absolute()
        self.path = self.target.parent / f"{_staging_prefix(self.target)}{os.getpid()}-{os.urandom(3).hex()}"
        self.committed = False
        self.log_name = log_name
        self.failure_log: Path | None = None

    @property
    def meta(self) -> Path:
        return self.path / META_DIR

    @property
    def log_file(self) -> Path:
        """Where the installer's log goes while building (inside the staging env's META_DIR)."""
        return self.meta / self.log_name

    def __enter__(self) -> Staging:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.path.mkdir()
        ui_state.install_target, ui_state.staging_inode = self.target, self.path.stat().st_ino  # for cli.main
        return self

    def commit(self) -> None:
        seal(self.path, self.target)
        hold_signals()  # from here on the install completes: an interrupt no longer undoes anything
        swap_into_place(self.path, self.target)
        self.committed = True
        ui_state.committed_target = self.target  # cli.main: an interrupt from now on is a success

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self.committed:
            return
        if exc_type is not None:
            self.failure_log = keep_failure_log(self.log_file, self.target)
        with _deferred_signals():
            if self.path.exists():
                _rmtree(self.path)


def keep_failure_log(log_file: Path, target: Path) -> Path | None:
    """Copy a failed run's log to <parent>/.fwsetup-logs/<name>-<time>.log; None when there is none."""
    if not Path(log_file).is_file():
        return None
    dest_dir = failure_log_dir(target)
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
        dest = dest_dir / f"{Path(target).name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
        shutil.copyfile(log_file, dest)
    except OSError as exc:
        log.debug("could not keep the log %s: %s", log_file, exc)
        return None
    return dest


@contextlib.contextmanager
def _deferred_signals() -> Iterator[None]:
    """Let a second Ctrl-C wait until the clean-up is done (main thread only)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []

    def note(signum: int, frame: Any) -> None:
        got.append(signum)

    old = {s: signal.signal(s, note) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        _restore(old, note)
    if got:
        raise KeyboardInterrupt


def _restore(old: Mapping[signal.Signals, Any], mine: Any) -> None:
    """Put back the handlers `old`, for the signals whose handler is still `mine` (one set since, such as
    hold_signals', stays)."""
    for s, h in old.items():
        if signal.getsignal(s) is mine:
            signal.signal(s, h)


def hold_signals() -> None:
    """From the swap on, SIGINT, SIGTERM and SIGHUP are noted (ui_state.held_signals), not acted on: the new
    environment is in place, and what is left (deleting the old one, printing the report) must end with
    the install's own exit status, not a death by signal. Only when cli.main asks for it
    (ui_state.hold_after_commit), in the main thread; cli.main puts the handlers back."""
    import threading

    if not ui_state.hold_after_commit or threading.current_thread() is not threading.main_thread():
        return
    if ui_state.held_signals is None:
        ui_state.held_signals = []
    held = ui_state.held_signals

    def note(signum: int, frame: Any) -> None:
        held.append(signum)

    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, note)


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP raise KeyboardInterrupt (as SIGINT does), so that `with Staging` clean-up runs.
    A no-op outside the main thread."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        _restore(old, handler)


# -- disk space ----------------------------------------------------------------------------------------


def check_free_space(directory: Path, needed_bytes: int, *, margin: float = 1.2) -> None:
    """InstallError "needs ~X GB in DIR, Y free" when `needed_bytes` (times `margin`) will not fit."""
    directory = Path(directory)
    probe = directory
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError:
        return
    if needed_bytes * margin > free:
        msg = f"needs ~{human_bytes(int(needed_bytes * margin))} in {directory}, {human_bytes(free)} free."
        raise InstallError(msg, hint="Free some space, or choose another place with --env PATH.")


# -- the environment's lock file -------------------------------------------------------------------------


def plan_digest(plan_data: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> str:
    """A stable hash of what was asked for: the plan (as plain data) plus the install options that change
    the result (e.g. the Python). Same digest = same environment. The plan's `data` (which registry data it
    was made from, and when) is left out: the same build planned from today's cache is the same environment."""
    plan_data = {k: v for k, v in plan_data.items() if k != "data"}
    blob = json.dumps({"plan": plan_data, "extra": dict(extra or {})}, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(blob.encode()).hexdigest()


def write_lock_file(env: Path, data: Mapping[str, Any]) -> Path:
    """Write <env>/.fwsetup/lock.json atomically. `data` should hold at least: plan_digest, plan, packages
    (a list of {name, version, sha256?, url?}); backends/transaction.write_lock gives the whole schema. The
    version of this format is added."""
    meta = meta_dir(env)
    meta.mkdir(parents=True, exist_ok=True)
    path = meta / LOCK_FILE
    tmp = path.with_name(path.name + ".tmp")
    body = {"lock_version": LOCK_FILE_VERSION, "written_by": WRITTEN_BY, **dict(data)}
    tmp.write_text(json.dumps(body, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)
    return path


def read_lock_file(env: Path) -> dict[str, Any] | None:
    """The lock file of an environment, or None when there is none or it cannot be read."""
    try:
        data = json.loads((meta_dir(env) / LOCK_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# -- the target: where an environment may go, and what may be replaced -------------------------------------

_KERNEL_FILESYSTEMS = (Path("/proc"), Path("/sys"), Path("/dev"))


def check_target(target: Path, *, flag: str = "--env") -> Path:
    """The real path of an install target, checked before any work starts (no lock, no folder made).

    Symbolic links are resolved: the lock and the swap act on the folder itself, so that two names of one
    environment lock as one, and a link is never replaced by a folder while its environment goes stale.
    UsageError (bad --env) when the target cannot hold an environment: a file or other non-folder, a kernel
    filesystem (/proc, /sys, /dev), a place that cannot be written, or a folder fwsetup did not make. `flag`:
    how the user named the target (--env of install, ENV of sync), in the messages."""
    how = f" with {flag} PATH" if flag.startswith("--") else f" as {flag}"
    given = Path(target).expanduser().absolute()
    try:
        real = Path(os.path.realpath(given, strict=True))
    except (FileNotFoundError, NotADirectoryError):
        real = Path(os.path.realpath(given))  # (a link to) a place that does not exist yet, or under a file
    except OSError as exc:
        msg = f"{flag} {given}: {exc.strerror or exc} (a symbolic link that never reaches a folder)."
        raise UsageError(msg, hint=f"Point {flag} at a folder, or at a new path.") from None
    for kernel in _KERNEL_FILESYSTEMS:
        if real.is_relative_to(kernel):
            msg = f"{flag} {given}{_via(given, real)} is inside {kernel}, a kernel filesystem, not a disk."
            raise UsageError(msg, hint=f"Choose a folder on a disk{how}.")
    if os.path.lexists(real) and not real.is_dir():
        msg = f"{flag} {given}{_via(given, real)} is {_kind(real)}, not a folder."
        raise UsageError(msg, hint=f"Choose a new or empty folder{how}.")
    probe = real.parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    why = _not_writable(probe)
    if why:
        msg = f"{flag} {given}{_via(given, real)}: cannot write in {probe} ({why})."
        raise UsageError(msg, hint=f"Choose a place you can write to{how}.")
    if real.is_dir() and is_mount_point(real):
        msg = (
            f"{flag} {given}{_via(given, real)} is a mount point (a filesystem of its own): an environment is "
            "built beside its place and swapped in by a rename, and a mount point cannot be renamed."
        )
        raise UsageError(
            msg, hint=f"Install into a folder inside it ({flag} {real / 'env'}), or choose another."
        )
    refuse_foreign(
        real, yours=False, how=how
    )  # files of yours in an environment fwsetup made: when it would be replaced
    return real


def is_mount_point(path: Path) -> bool:
    """Whether `path` is where a filesystem is mounted: another device than its parent's, or a mount
    listed in /proc/self/mountinfo (a bind mount of a folder of the same filesystem is only seen there)."""
    if os.path.ismount(path):
        return True
    try:
        table = Path("/proc/self/mountinfo").read_text(errors="replace")
    except OSError:
        return False
    want = str(path)
    for line in table.splitlines():
        fields = line.split(" ")
        if len(fields) > 4 and re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4]) == want:
            return True
    return False


def _via(given: Path, real: Path) -> str:
    return f" (a link to {real})" if given != real else ""


def _kind(path: Path) -> str:
    import stat

    mode = path.stat().st_mode
    for test, name in (
        (stat.S_ISREG, "a file"),
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return name
    return "not a folder"


def _not_writable(folder: Path) -> str | None:
    """Why no environment can be made in `folder` (the nearest existing one), or None."""
    if not folder.is_dir():
        return f"{_kind(folder)}, not a folder"
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return "a read-only filesystem"
    except OSError as exc:
        return exc.strerror or str(exc)
    if not os.access(folder, os.W_OK | os.X_OK):
        return "permission denied"
    return None


_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def lock_file_problem(env: Path) -> str | None:
    """None when <env>/.fwsetup/lock.json is one fwsetup wrote (this format, a plan digest, a package list),
    else what is wrong with it, in words."""
    path = meta_dir(env) / LOCK_FILE
    if not meta_dir(env).is_dir():
        return f"no {META_DIR}/{LOCK_FILE}"
    if not path.is_file():
        return f"a {META_DIR}/ folder with no {LOCK_FILE} in it"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return f"a {META_DIR}/{LOCK_FILE} that is not valid JSON"
    if not isinstance(data, dict):
        return f"a {META_DIR}/{LOCK_FILE} that fwsetup did not write (not a JSON object)"
    if data.get("lock_version") not in LOCK_FILE_VERSIONS or data.get("written_by", WRITTEN_BY) != WRITTEN_BY:
        return (
            f"a {META_DIR}/{LOCK_FILE} that fwsetup did not write (lock_version {data.get('lock_version')!r})"
        )
    if not isinstance(data.get("plan_digest"), str) or not _DIGEST.fullmatch(data["plan_digest"]):
        return f"a {META_DIR}/{LOCK_FILE} that fwsetup did not write (no plan digest)"
    if not isinstance(data.get("packages"), list):
        return f"a {META_DIR}/{LOCK_FILE} that fwsetup did not write (no package list)"
    return None


def foreign_reason(target: Path, *, yours: bool = True) -> str | None:
    """None when fwsetup may replace `target`: it does not exist, is an empty folder, or is an environment
    fwsetup made (its lock file and made.json: made_problem) holding nothing at its top that neither fwsetup
    nor a package put there (foreign_entries; not looked at with yours=False). Otherwise what was found."""
    target = Path(target)
    if not os.path.lexists(target):
        return None
    if target.is_symlink():
        return f"a symbolic link to {os.readlink(target)}"
    if not target.is_dir():
        return _kind(target)
    try:
        entries = sorted(os.listdir(target))
    except OSError as exc:
        return f"a folder that cannot be read ({exc.strerror or exc})"
    if not entries:
        return None
    problem = lock_file_problem(target) or made_problem(target)
    if problem is None:
        foreign = foreign_entries(target) if yours else []
        if not foreign:
            return None
        return f"a folder fwsetup made, now also holding {_shown(foreign)}, which neither fwsetup nor a package put there"
    # what an environment does not hold first (a repository's .git, a user's code): those are what matter
    usual = _ENV_ENTRIES | _package_top_entries(target)
    entries = sorted(entries, key=lambda e: e in usual)
    return f"a folder holding {_shown(entries)}, with {problem}"


# what a venv or conda environment holds at its top (uv, venv, conda), beside the packages' own folders
_ENV_ENTRIES = frozenset(
    {META_DIR, "bin", "lib", "lib64", "include", "pyvenv.cfg", ".gitignore", "CACHEDIR.TAG", "share",
     "etc", "conda-meta", "Lib", "Scripts", "Include", "man", "ssl", "libexec", "x86_64-conda-linux-gnu"}
)  # fmt: skip


def _shown(names: list[str], n: int = 6) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def refuse_foreign(target: Path, *, yours: bool = True, how: str = " with --env PATH") -> None:
    """UsageError unless fwsetup may replace `target` (foreign_reason); nothing is touched. yours=False: an
    environment fwsetup made is accepted even with files of yours in it (a repeat of its plan is a no-op)."""
    why = foreign_reason(target, yours=yours)
    if why is not None:
        head = "an environment fwsetup made" if why.startswith("a folder fwsetup made") else None
        msg = (
            f"{target} is {head} but holds files of yours: found {why}. It will not be replaced."
            if head
            else f"{target} is not an environment fwsetup made: found {why}. It will not be replaced."
        )
        raise UsageError(
            msg,
            hint=f"Choose a new or empty folder{how}, or move this one (or those files) away yourself.",
        )


# -- "fwsetup made this folder": a record that cannot be copied into another folder by accident ------------


def _sha256_file(path: Path) -> str | None:
    try:
        return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def seal(env: Path, final: Path) -> None:
    """Written last, just before the swap (or at the end of an in-place build): <env>/.fwsetup/files.json
    (size and mtime of every file of the locked Python distributions: the cheap intact-check of a repeat
    install) and made.json, fwsetup's record that it made this folder: the final path, the folder's device
    and inode (a rename keeps them; a copy, a clone or a checkout of a repository has others), the top-level
    entries it holds, and the digests of lock.json and files.json. A folder whose made.json does not match
    all of these is not one fwsetup made (made_problem)."""
    env, meta = Path(env), meta_dir(env)
    meta.mkdir(parents=True, exist_ok=True)
    lock = read_lock_file(env) or {}
    key = "packages" if lock.get("method", "venv") == "venv" else "pip_packages"
    stamps = file_stamps(env, [p for p in lock.get(key) or [] if isinstance(p, dict)])
    sites = {os.path.relpath(site, env): sorted(os.listdir(site)) for site in site_packages(env)}
    _write_json(meta / FILES_FILE, {"written_by": WRITTEN_BY, "dists": stamps, "site_entries": sites})
    st = os.stat(env)
    body = {
        "written_by": WRITTEN_BY,
        "path": str(final),
        "dev": st.st_dev,
        "ino": st.st_ino,
        "entries": sorted(os.listdir(env)),
        "lock": _sha256_file(meta / LOCK_FILE),
        "files": _sha256_file(meta / FILES_FILE),
    }
    _write_json(meta / MADE_FILE, body)


def _write_json(path: Path, body: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(body, separators=(",", ":")) + "\n")
    tmp.replace(path)


def _read_made(target: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((meta_dir(target) / MADE_FILE).read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def made_problem(target: Path) -> str | None:
    """None when made.json proves that fwsetup made this very folder here (seal), else why not, in words.
    An environment made before fwsetup wrote this record is not proven either: it is not replaced."""
    target = Path(target)
    if not (meta_dir(target) / MADE_FILE).is_file():
        return f"no {META_DIR}/{MADE_FILE} (fwsetup's record that it made this folder)"
    made = _read_made(target)
    if made is None or made.get("written_by") != WRITTEN_BY:
        return f"a {META_DIR}/{MADE_FILE} that fwsetup did not write"
    try:
        st = os.stat(target)
    except OSError as exc:
        return f"a folder that cannot be read ({exc.strerror or exc})"
    if made.get("path") != str(target):
        return (
            f"fwsetup's record of a folder made at {made.get('path')}, not here (a copy, or a moved folder)"
        )
    if (made.get("dev"), made.get("ino")) != (st.st_dev, st.st_ino):
        return "fwsetup's record of another folder (a copy: not the device and inode fwsetup made)"
    if made.get("lock") != _sha256_file(meta_dir(target) / LOCK_FILE):
        return f"a {META_DIR}/{LOCK_FILE} that changed since fwsetup wrote it"
    return None


def foreign_entries(target: Path) -> list[str]:
    """The top-level entries of an environment fwsetup made that neither fwsetup (made.json's entries) nor
    an installed package (a RECORD, conda-meta's file lists) put there: a user's own files."""
    made = _read_made(target) or {}
    known = set(made.get("entries") or ())
    try:
        entries = sorted(os.listdir(target))
    except OSError:
        return []
    extra = [e for e in entries if e not in known]
    if extra:
        owned = _package_top_entries(Path(target))
        extra = [e for e in extra if e not in owned]
    return extra


def _package_top_entries(env: Path) -> set[str]:
    """The top-level entries of `env` that installed packages' files are under."""
    out: set[str] = set()
    for site in site_packages(env):
        rel_site = os.path.relpath(site, env)
        out.add(rel_site.split(os.sep)[0])
        for d in site.glob("*.dist-info"):
            for path, _h, _s in record_entries(d):
                rel = os.path.relpath(path, env)
                if not rel.startswith(".."):
                    out.add(rel.split(os.sep)[0])
    for record in (env / "conda-meta").glob("*.json"):
        with contextlib.suppress(OSError, ValueError, AttributeError, TypeError):
            for f in json.loads(record.read_text()).get("files") or ():
                out.add(str(f).split("/")[0])
    return out


# -- are the installed files still there? --------------------------------------------------------------------


def site_packages(env: Path) -> list[Path]:
    env = Path(env)
    return [
        p
        for p in (*sorted(env.glob("lib/python*/site-packages")), env / "Lib" / "site-packages")
        if p.is_dir()
    ]


def _dist_infos(env: Path) -> dict[str, Path]:
    """canonical distribution name -> its .dist-info folder, in the environment's site-packages."""
    from packaging.utils import canonicalize_name

    found: dict[str, Path] = {}
    for site in site_packages(env):
        for d in site.glob("*.dist-info"):
            found.setdefault(canonicalize_name(d.name[: -len(".dist-info")].split("-")[0]), d)
    return found


def _same_version(a: str, b: str) -> bool:
    from packaging.version import InvalidVersion, Version

    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def record_entries(dist_info: Path) -> list[tuple[str, str, str]]:
    """(absolute path, hash "sha256=...", size) of each file a .dist-info's RECORD lists, byte code (.pyc, a
    cache Python rewrites) left out. [] when there is no RECORD."""
    try:
        text = (dist_info / "RECORD").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return _parse_record(text, str(dist_info.parent))


def _parse_record(text: str, site: str) -> list[tuple[str, str, str]]:
    """The one reading of a RECORD's lines (path,hash,size): (absolute path, hash, size), .pyc left out."""
    out = []
    for line in text.splitlines():
        head, _, size = line.rpartition(",")
        rel, _, digest = head.rpartition(",")
        if not rel or rel.endswith(".pyc"):
            continue
        if rel.startswith('"') and rel.endswith('"'):  # csv quoting (a comma in the name)
            rel = rel[1:-1].replace('""', '"')
        path = rel if rel.startswith("/") else site + os.sep + rel
        if ".." in rel:
            path = os.path.normpath(path)
        out.append((path, digest, size))
    return out


def file_stamps(env: Path, packages: list[Any]) -> dict[str, dict[str, list[int]]]:
    """canonical name -> {path relative to the environment: [size, mtime_ns]} of every file the RECORD of
    each Python distribution in `packages` lists (seal: written at the swap)."""
    infos = _dist_infos(env)
    out: dict[str, dict[str, list[int]]] = {}
    from packaging.utils import canonicalize_name

    for pkg in packages:
        name = canonicalize_name(str(pkg.get("name") or ""))
        d = infos.get(name)
        if d is None:
            continue
        files: dict[str, list[int]] = {}
        for path, _h, _s in record_entries(d):
            try:
                st = os.stat(path)
            except OSError:
                continue
            files[os.path.relpath(path, env)] = [st.st_size, st.st_mtime_ns]
        out[name] = files
    return out


def _record_hash_ok(path: str, digest: str) -> bool | None:
    """Whether the file's content has the RECORD hash ("sha256=<urlsafe b64>"); None when there is none."""
    import base64

    algo, _, want = digest.partition("=")
    if not want or algo not in hashlib.algorithms_guaranteed:
        return None
    h = hashlib.new(algo)
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    except OSError:
        return False
    return base64.urlsafe_b64encode(h.digest()).rstrip(b"=").decode() == want


def changed_files(env: Path, name: str, dist_info: Path) -> list[str] | None:
    """The files of a distribution whose size or mtime is not what files.json recorded at the swap and whose
    content is not what its RECORD says (hashed only then): written to since. None when the environment has
    no files.json record of it (made before fwsetup wrote one)."""
    try:
        stamps = json.loads((meta_dir(env) / FILES_FILE).read_text())["dists"][name]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    hashes = {p: h for p, h, _s in record_entries(dist_info)}
    changed = []
    for rel, (size, mtime) in stamps.items():
        path = os.path.join(env, rel)
        try:
            st = os.stat(path)
        except OSError:
            continue  # missing: record_problems says so
        if st.st_size == size and st.st_mtime_ns == mtime:
            continue
        if st.st_size != size or _record_hash_ok(path, hashes.get(os.path.normpath(path), "")) is not True:
            changed.append(rel)
    return changed


def added_since_install(env: Path) -> list[str]:
    """What was added to site-packages since fwsetup installed the environment (files.json's site_entries):
    each package installed since ("name version", from its .dist-info; its files go with it) and each other
    file or folder ("site-packages/NAME"). [] when there is no such record."""
    try:
        before = json.loads((meta_dir(env) / FILES_FILE).read_text())["site_entries"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    if not isinstance(before, dict):
        return []
    packages: list[str] = []
    loose: list[str] = []
    for site in site_packages(env):
        rel_site = os.path.relpath(site, env)
        known = set(before.get(rel_site) or ())
        try:
            new = sorted(n for n in os.listdir(site) if n not in known and n != "__pycache__")
        except OSError:
            continue
        owned: set[str] = set()
        for n in new:
            if n.endswith(".dist-info"):
                name, _, version = n[: -len(".dist-info")].partition("-")
                packages.append(f"{name} {version}".strip())
                owned |= {os.path.relpath(p, site).split(os.sep)[0] for p, _h, _s in record_entries(site / n)}
        loose += [f"site-packages/{n}" for n in new if not n.endswith(".dist-info") and n not in owned]
    return packages + loose


def distribution_changes(env: Path, name: str) -> list[str]:
    """The files of the distribution `name` in an environment fwsetup made that were written to since the
    install (changed_files), as paths relative to site-packages; [] when none or when there is no record."""
    from packaging.utils import canonicalize_name

    key = canonicalize_name(name)
    d = _dist_infos(env).get(key)
    if d is None:
        return []
    return [os.path.relpath(os.path.join(env, c), d.parent) for c in changed_files(env, key, d) or []]


def verify_hashes(env: Path, packages: list[Any]) -> dict[str, list[str]]:
    """canonical name -> the files whose content is not what the distribution's RECORD says (every file
    hashed: for a repaired distribution, before the swap). {} when all match.

    The .dist-info folder's own files are not judged: they are the wheel's metadata, not code that runs, and
    a wheel can ship them unlike its RECORD (PyPI's torch 1.10.2 wheels: METADATA is 24,828 bytes, RECORD
    says 24,834 with another hash), which a fresh unpack repeats: no damaged cache explains it."""
    from packaging.utils import canonicalize_name

    infos = _dist_infos(env)
    bad: dict[str, list[str]] = {}
    for pkg in packages:
        name = canonicalize_name(str(pkg.get("name") or ""))
        d = infos.get(name)
        if d is None:
            continue
        own = str(d) + os.sep
        wrong = [
            os.path.relpath(path, env)
            for path, digest, _s in record_entries(d)
            if not path.startswith(own) and _record_hash_ok(path, digest) is False
        ]
        if wrong:
            bad[name] = wrong
    return bad


def record_problems(dist_info: Path) -> tuple[int, int, list[str]]:
    """(files listed, files missing or of another size, the first few of those) from a .dist-info's RECORD.

    Cheap on purpose (it runs on every repeat install): whether a file is there is read from one listing of
    each folder, not one stat per file; sizes are compared for the files of 1 MB and more (the native
    libraries, where truncation matters). Byte code (.pyc) is not counted: it is a cache Python rewrites."""
    site = str(dist_info.parent)
    try:
        text = (dist_info / "RECORD").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return 0, 1, [f"{dist_info.name}/RECORD"]
    wanted: dict[str, list[str]] = {}  # folder -> the names RECORD lists in it
    big: list[tuple[str, int]] = []
    for path, _digest, size in _parse_record(text, site):
        folder, _, name = path.rpartition(os.sep)
        wanted.setdefault(folder, []).append(name)
        if len(size) > 6 and size.isdigit():
            big.append((path, int(size)))
    listed = sum(len(v) for v in wanted.values())
    gone: list[str] = []
    for folder, names in wanted.items():
        try:
            have = set(os.listdir(folder))
        except OSError:
            have = set()
        if not have.issuperset(names):
            gone += [folder + os.sep + n for n in names if n not in have]
    for path, recorded in big:  # 1 MB and more
        try:
            if os.stat(path).st_size != recorded:
                gone.append(path)
        except OSError:
            pass  # counted above
    return listed, len(gone), [os.path.relpath(p, site) for p in gone[:3]]


def check_installed_files(env: Path, packages: list[Any], damaged: list[str] | None = None) -> str | None:
    """None when every Python distribution in `packages` (lock.json's [{name, version}]) is installed in the
    environment with all the files its RECORD lists, at their recorded sizes; else what is wrong (a sentence).
    Cheap: one stat per file (torch's ~16,000 in well under a second)."""
    from packaging.utils import canonicalize_name

    infos = _dist_infos(env)
    wrong: list[str] = []
    for pkg in packages:
        if not isinstance(pkg, dict) or not pkg.get("name") or pkg.get("sdist"):
            continue
        name, version = str(pkg["name"]), str(pkg.get("version") or "")
        d = infos.get(canonicalize_name(name))
        if d is None:
            wrong.append(f"{name} {version} is not installed any more")
            if damaged is not None:
                damaged.append(name)
            continue
        have = d.name[: -len(".dist-info")].partition("-")[2]
        if version and have and not _same_version(have, version):
            wrong.append(f"{name} is {have}, not {version} as installed")
            continue
        listed, bad, examples = record_problems(d)
        changed = changed_files(env, canonicalize_name(name), d) or []
        changed = [c for c in changed if os.path.relpath(os.path.join(env, c), d.parent) not in examples]
        if bad or changed:
            if damaged is not None:
                damaged.append(name)
            shown = [*examples, *(os.path.relpath(os.path.join(env, c), d.parent) for c in changed)][:3]
            wrong.append(
                f"{name} {version}: {bad + len(changed)} of {listed} files missing or changed (e.g. {', '.join(shown)})"
            )
    if not wrong:
        return None
    return "; ".join(wrong[:3]) + (f"; and {len(wrong) - 3} more packages" if len(wrong) > 3 else "")
