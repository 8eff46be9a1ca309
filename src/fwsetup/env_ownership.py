"""May fwsetup put an environment here, or replace what is here? The install target checked before any
work (check_target), and fwsetup's record that it made a folder (seal, made_problem): a folder fwsetup did not
make, or one holding a user's own files, is never replaced."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import stat
from pathlib import Path
from typing import Any

from fwsetup.envmeta import (
    FILES_FILE,
    LOCK_FILE,
    MADE_FILE,
    META_DIR,
    WRITTEN_BY,
    lock_file_problem,
    meta_dir,
    read_lock_file,
)
from fwsetup.errors import UsageError
from fwsetup.installed_files import file_stamps, record_entries, site_packages

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


def foreign_reason(target: Path, *, yours: bool = True) -> str | None:
    """None when fwsetup may replace `target`: it does not exist, is an empty folder, or is an environment
    fwsetup made (its lock file and made.json: made_problem) holding nothing at its top that neither fwsetup
    nor a package put there (foreign_entries; not looked at with yours=False). Otherwise what was found."""
    return _foreign(target, yours=yours)[0]


def _foreign(target: Path, *, yours: bool) -> tuple[str | None, bool]:
    """(foreign_reason, whether fwsetup made the folder: only files of the user's were found in it)."""
    target = Path(target)
    if not os.path.lexists(target):
        return None, False
    if target.is_symlink():
        return f"a symbolic link to {os.readlink(target)}", False
    if not target.is_dir():
        return _kind(target), False
    try:
        entries = sorted(os.listdir(target))
    except OSError as exc:
        return f"a folder that cannot be read ({exc.strerror or exc})", False
    if not entries:
        return None, False
    problem = lock_file_problem(target) or made_problem(target)
    if problem is None:
        foreign = foreign_entries(target) if yours else []
        if not foreign:
            return None, True
        why = f"a folder fwsetup made, now also holding {_shown(foreign)}, which neither fwsetup nor a package put there"
        return why, True
    # what an environment does not hold first (a repository's .git, a user's code): those are what matter
    usual = _ENV_ENTRIES | _package_top_entries(target)
    entries = sorted(entries, key=lambda e: e in usual)
    return f"a folder holding {_shown(entries)}, with {problem}", False


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
    why, made_by_fwsetup = _foreign(target, yours=yours)
    if why is not None:
        msg = (
            f"{target} is an environment fwsetup made but holds files of yours: found {why}. It will not be replaced."
            if made_by_fwsetup
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
