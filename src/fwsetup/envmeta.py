"""An environment's own metadata folder, <env>/.fwsetup/ (META_DIR): the names of the files fwsetup keeps
there, lock.json (written, read, and recognised as fwsetup's: lock_file_problem) and the plan digest that
tells a repeat install it has nothing to do."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

META_DIR = ".fwsetup"  # inside an environment
LOCK_FILE = "lock.json"  # inside META_DIR
LOCK_FILE_VERSION = 2  # backends/transaction.py: one schema for venv and conda (1: before it; still read)
LOCK_FILE_VERSIONS = (1, 2)  # the lock files fwsetup wrote and still recognises as its own
WRITTEN_BY = "fwsetup"  # lock.json's written_by
MADE_FILE = (
    "made.json"  # inside META_DIR: fwsetup's record that it made this folder, here (seal, made_problem)
)
FILES_FILE = "files.json"  # inside META_DIR: size and mtime of every installed file at the swap (seal)


def meta_dir(env: Path) -> Path:
    return Path(env) / META_DIR


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
