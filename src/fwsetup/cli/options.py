"""Option values: every command checks its numbers and paths here, at parse time (typer's `parser=`).

A bad value is a usage error (exit 2) that names the option, before any work starts. Never a per-command
copy. The options several commands share are here too.
"""

from __future__ import annotations

import errno
import math
import os
import re
from pathlib import Path
from typing import Annotated, NoReturn

import typer

MAX_SECONDS = 7 * 24 * 3600.0  # beyond this a timeout is a typo (and overflows poll())
MAX_COUNT = 1_000_000


def _bad(message: str) -> NoReturn:
    raise typer.BadParameter(message)


def seconds(value: str | float) -> float:
    """--timeout S: a finite number of seconds, above 0."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        _bad(f"{value!r} is not a number of seconds; give one such as 60 or 2.5.")
    if not math.isfinite(v) or v <= 0:
        _bad(f"{value!r}: give a number of seconds above 0, such as 60.")
    if v > MAX_SECONDS:
        _bad(f"{value!r}: at most {MAX_SECONDS:g} seconds (a week).")
    return v


def count(value: str | int) -> int:
    """--steps N, --newest N: a whole number, 1 or more."""
    text = str(value).strip()
    if isinstance(value, bool) or not text.lstrip("+-").isdigit() or len(text) > 12:
        _bad(f"{value!r} is not a whole number; give one such as 10.")
    n = int(text)
    if not 1 <= n <= MAX_COUNT:
        _bad(f"{value!r}: give a whole number from 1 to {MAX_COUNT}.")
    return n


def python_minor(value: str) -> str:
    """--python X.Y (a Python version to plan or build for): 3.11, python3.12, 3.12.4 -> 3.12."""
    m = re.match(r"^(?:python)?3\.(\d{1,2})(?:\.\d+)?$", str(value).strip())
    if not m:
        _bad(f"{value!r}: expected a Python version such as 3.11.")
    return f"3.{m.group(1)}"


def _path(value: str | Path, what: str) -> Path:
    """A path the system can look at: not '', no NUL character, no name longer than the file system takes
    (os.stat's ENAMETOOLONG, which Path.exists/is_dir raise instead of answering False)."""
    text = str(value)
    if not text.strip():
        _bad(f"'': give {what}.")
    shown = repr(text) if len(text) <= 80 else repr(text[:77]) + "…"
    if "\0" in text:
        _bad(f"{shown}: a path cannot hold a NUL character.")
    p = Path(text).expanduser()
    try:
        os.lstat(p)
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            _bad(
                f"{shown}: the path, or a name in it, is longer than this system allows ({len(os.fsencode(text))} bytes)."
            )
    except ValueError as exc:  # a path the system cannot hold at all
        _bad(f"{shown}: {exc}.")
    return p


def any_path(value: str | Path) -> Path:
    """A path whose meaning is the command's to judge (--env, --wheelhouse): only checked to be one."""
    return _path(value, "a path")


def any_path_text(value: str) -> str:
    """any_path, kept as the text given (recipes validate DIR)."""
    _path(value, "a path")
    return str(value)


def input_file(value: str | Path) -> str:
    """A file fwsetup reads (--host-profile): a path, not ''. Whether it can be read is the reader's to
    say (profile.load: exit 2, naming the file and why)."""
    _path(value, "the path of a file")
    return str(value)


def input_dir(value: str | Path) -> str:
    """A folder fwsetup reads (--recipes): it must exist and be a folder."""
    p = _path(value, "the path of a folder")
    if not p.is_dir():
        _bad(f"{value}: no such folder." if not p.exists() else f"{value} is a file, not a folder.")
    return str(value)


def output_file(value: str | Path) -> str:
    """A file fwsetup writes (profile --output): not a folder, in a folder that exists and can be written."""
    p = _path(value, "a file name, such as profile.json")
    if p.is_dir():
        _bad(f"{value} is a folder: give a file name, such as {p / 'profile.json'}.")
    parent = p.absolute().parent
    if not parent.is_dir():
        _bad(f"{value}: the folder {parent} does not exist.")
    if not _writable(parent):
        _bad(f"{value}: cannot write in {parent}.")
    return str(value)


def output_dir(value: str | Path) -> Path:
    """A folder fwsetup writes into (matrix --out-dir): made when missing; not a file, not read-only."""
    p = _path(value, "a folder name")
    if p.exists() and not p.is_dir():
        _bad(f"{value} is a file, not a folder: give a folder (it is made when missing).")
    here = p.absolute()
    while not here.exists():  # the nearest folder that exists is where it will be made
        here = here.parent
    if not here.is_dir():
        _bad(f"{value}: {here} is a file, not a folder.")
    if not _writable(here):
        _bad(f"{value}: cannot write in {here}.")
    return p


def interpreter(value: str) -> str:
    """--python EXE: a Python interpreter that exists (a path, or a name on PATH)."""
    p = _path(value, "a Python interpreter, such as ENV/bin/python")
    if os.sep in str(value) or (os.altsep and os.altsep in str(value)):
        if p.is_dir():
            _bad(f"{value} is a folder: give its interpreter, such as {p / 'bin' / 'python'}.")
        if not p.exists():
            _bad(f"{value}: no such file.")
        if not os.access(p, os.X_OK):
            _bad(f"{value}: not an executable file.")
        return str(value)
    import shutil

    if shutil.which(str(value)) is None:
        _bad(f"{value}: not found on PATH; give the path of a Python interpreter.")
    return str(value)


_PSEUDO_FS = ("/proc", "/sys", "/dev")


def _writable(folder: Path) -> bool:
    real = os.path.realpath(folder)
    if any(real == fs or real.startswith(fs + "/") for fs in _PSEUDO_FS):
        return False  # root may "write" there, but nothing fwsetup writes belongs there
    return os.access(real, os.W_OK | os.X_OK)


# -- options several commands share -------------------------------------------------------------------------

JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
# --allow-insecure (plan, install, build): the plan records the sources accepted (Plan.insecure_sources).
AllowInsecureOpt = Annotated[
    bool,
    typer.Option(
        "--allow-insecure",
        help="Accept the recipe's http:// indexes/channels and direct URL requirements (the plan lists them).",
    ),
]
# --allow-experimental (plan, install, build): builds the framework's own release matrix lists as experimental,
# or not at all, may be chosen (stable ones still rank first); Plan.official_status says which was.
AllowExperimentalOpt = Annotated[
    bool,
    typer.Option(
        "--allow-experimental",
        help="Also consider builds the framework's release matrix lists as experimental, or does not list.",
    ),
]
VendorOpt = Annotated[
    str,
    typer.Option(
        "--vendor",
        metavar="nvidia|amd|intel",
        help="Whose GPU builds to use when the machine has GPUs of several vendors (default: the one present).",
    ),
]
BackendOpt = Annotated[
    str | None,
    typer.Option(
        "--backend",
        metavar="NAME",
        help="The framework's backend, where it runs on several (Keras: tensorflow, jax or torch).",
    ),
]
HostProfileOpt = Annotated[
    str | None,
    typer.Option(
        "--host-profile",
        metavar="FILE",
        parser=input_file,
        help="Read the machine from FILE (`fwsetup profile --output FILE`).",
    ),
]
# --refresh / --offline (plan; install and build have --offline of their own, which implies it): which
# registry data the plan reads (fwsetup.registry.live).
RefreshOpt = Annotated[
    bool,
    typer.Option(
        "--refresh",
        help="Read the package indexes again now, even where the cached copy is less than a day old.",
    ),
]
OfflineDataOpt = Annotated[
    bool,
    typer.Option(
        "--offline",
        help="Contact no index: plan from the registry data shipped with fwsetup (FWSETUP_OFFLINE=1).",
    ),
]


def data_mode(*, refresh: bool, offline: bool) -> str:
    """The registry data a command plans with: "offline" wins over "refresh"."""
    return "offline" if offline else "refresh" if refresh else "auto"
