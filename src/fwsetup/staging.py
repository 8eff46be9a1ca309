"""Nothing half-done: build an environment in a staging folder next to its target, swap it in only when it
is complete and smoke-tested, and serialise installs into one target with a lock.

Used by every backend that writes a folder (venv, conda). The pattern:

    with target_lock(target):            # <parent>/.<name>.fwsetup.lock (fcntl.flock; waits for a holder)
        recover(target)                  # undo what a killed run left: stale staging, a target moved aside
        if read_lock_file(target) ...    # same plan already there: no-op (fwsetup.envmeta)
        with Staging(target) as st:      # <parent>/.<name>.fwsetup-staging-<pid>-<rand>/ (empty, same fs)
            ... build into st.path, smoke-test it ...
            st.commit()                  # seal (fwsetup.env_ownership), then the atomic swap:
                                         # renameat2(RENAME_EXCHANGE), then the old one deleted
        # leaving the block without commit() (error, Ctrl-C, SIGTERM) removes the staging folder

Why this is safe against SIGKILL: every staging and moved-aside folder is created and removed only while the
target's lock is held, so whatever such folder a later run finds while *it* holds the lock belongs to a dead
run; `recover()` deletes it (or, for a target moved aside but never replaced, moves it back).

The environment's own metadata lives in `<env>/.fwsetup/` (META_DIR: fwsetup.envmeta): lock.json (plan +
resolved packages with hashes; its schema: backends/transaction.py), plan.json, install.log. Whether a target
may be used or replaced is fwsetup.env_ownership's; whether its installed files are intact,
fwsetup.installed_files'. The install transaction built on these pieces is written once, in
backends/transaction.py, for venv and conda.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from fwsetup.env_ownership import seal
from fwsetup.envmeta import META_DIR
from fwsetup.errors import InstallError
from fwsetup.text import human_bytes
from fwsetup.ui import state as ui_state

log = logging.getLogger("fwsetup")

LOG_DIR = ".fwsetup-logs"  # beside the environments: failed runs' logs are kept here


# -- names ---------------------------------------------------------------------------------------------


def lock_path(target: Path) -> Path:
    target = Path(target)
    return target.parent / f".{target.name}.fwsetup.lock"


def _staging_prefix(target: Path) -> str:
    return f".{target.name}.fwsetup-staging-"


def _aside_prefix(target: Path) -> str:
    return f".{target.name}.fwsetup-old-"


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
        import ctypes  # only for a swap: 2-8 ms of start-up (-X importtime)

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
