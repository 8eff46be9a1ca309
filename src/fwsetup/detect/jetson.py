"""NVIDIA Jetson (L4T / Jetson Linux): the release file, the device-tree model and the kernel release.

- /etc/nv_tegra_release, first line: "# R36 (release), REVISION: 4.0, GCID: ..., BOARD: generic, EABI: aarch64,
  DATE: ..." -> L4T 36.4.0 (the format NVIDIA's own jetson-containers parse, jetson_containers/l4t_version.py).
- /proc/device-tree/model: "NVIDIA Jetson AGX Orin Developer Kit" (NUL-terminated).
- the kernel release: L4T kernels end in "-tegra" ("5.15.148-tegra").
JetPack, its CUDA and the module's compute capability come from data/jetson.toml (NVIDIA's JetPack archive
and CUDA GPUs tables). Pure file reads, no subprocess; nothing is read on a machine without the release
file or a "-tegra" kernel beyond two stat calls.

FWSETUP_JETSON_ROOT (settings.py) reads every path below another root (tests point it at fixture trees;
the kernel release is then read from <root>/proc/sys/kernel/osrelease).
"""

from __future__ import annotations

import platform
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Final

from fwsetup.profile import JetsonInfo
from fwsetup.resources import compat_dir
from fwsetup.settings import current

RELEASE_FILE: Final = "etc/nv_tegra_release"
MODEL_FILE: Final = "proc/device-tree/model"
OSRELEASE_FILE: Final = "proc/sys/kernel/osrelease"
_RELEASE_RE: Final = re.compile(r"^#\s*R(?P<major>\d+)\s*\(release\),\s*REVISION:\s*(?P<rev>\d+(?:\.\d+)?)")
_BOARD_RE: Final = re.compile(r"BOARD:\s*(?P<board>[\w.-]+)")
_MAX_READ: Final = 4096


def _read(path: Path) -> str | None:
    try:
        with path.open("rb") as f:
            return f.read(_MAX_READ).decode("utf-8", "replace")
    except OSError:
        return None


def parse_release(text: str) -> tuple[str | None, str | None]:
    """(L4T release "36.4.0", board) from nv_tegra_release's first line; (None, None) if it is not one."""
    line = text.splitlines()[0] if text else ""
    m = _RELEASE_RE.match(line.strip())
    if not m:
        return None, None
    rev = m["rev"] if "." in m["rev"] else m["rev"] + ".0"
    board = _BOARD_RE.search(line)
    return f"{m['major']}.{rev}", board["board"] if board else None


@dataclass(frozen=True)
class JetsonTables:
    l4t: dict[str, tuple[str, str | None]]  # "36.4.0" -> (JetPack "6.1", CUDA "12.6")
    modules: tuple[tuple[str, str], ...]  # ("Orin", "8.7"), first match wins


@cache
def load_tables() -> JetsonTables:
    from fwsetup.recipes.load import read_toml  # lazy: recipes costs ~30-60 ms at `fwsetup profile` start-up

    path = compat_dir() / "jetson.toml"
    if not path.is_file():
        return JetsonTables({}, ())
    raw = read_toml(path)
    l4t = {str(e["release"]): (str(e["jetpack"]), e.get("cuda")) for e in raw.get("l4t", [])}
    modules = tuple((str(e["match"]), str(e["compute_capability"])) for e in raw.get("module", []))
    return JetsonTables(l4t, modules)


@dataclass(frozen=True)
class JetsonWheel:
    """A wheel NVIDIA publishes for Jetson (data/jetson.toml [[wheel]]): the exact L4T releases it is built for."""

    framework: str  # recipe name
    version: str
    jetpack: tuple[str, ...]
    l4t: tuple[str, ...]
    python: str  # "3.8": the one CPython it is built for
    url: str


@cache
def load_wheels() -> tuple[JetsonWheel, ...]:
    from fwsetup.recipes.load import read_toml  # lazy: recipes costs ~30-60 ms at `fwsetup profile` start-up

    path = compat_dir() / "jetson.toml"
    if not path.is_file():
        return ()
    raw = read_toml(path)
    return tuple(
        JetsonWheel(
            framework=str(e["framework"]),
            version=str(e["version"]),
            jetpack=tuple(map(str, e["jetpack"])),
            l4t=tuple(map(str, e["l4t"])),
            python=str(e["python"]),
            url=str(e["url"]),
        )
        for e in raw.get("wheel", [])
    )


def wheels_for(framework: str, l4t: str | None) -> list[JetsonWheel]:
    """NVIDIA's wheels of `framework` built for this exact L4T release, newest first."""
    if not l4t:
        return []
    from fwsetup.recipes.parsers import parse_version  # lazy: recipes costs ~30-60 ms at start-up

    found = [w for w in load_wheels() if w.framework == framework and l4t in w.l4t]
    return sorted(found, key=lambda w: parse_version(w.version), reverse=True)


def jetpack_of(l4t: str, tables: JetsonTables) -> tuple[str | None, str | None]:
    """(JetPack, CUDA) of an L4T release: the exact release, else None (no guess from a neighbour)."""
    found = tables.l4t.get(l4t)
    return found if found else (None, None)


def compute_capability_of(model: str | None, tables: JetsonTables) -> str | None:
    if not model:
        return None
    return next((cc for name, cc in tables.modules if re.search(rf"\b{re.escape(name)}\b", model)), None)


def probe_jetson(notes: list[str], root: str | Path | None = None) -> JetsonInfo:
    if root is None:
        root = current().jetson_root
    base = Path(root) if root else Path("/")
    if root:
        kernel = (_read(base / OSRELEASE_FILE) or "").strip() or None
    else:
        kernel = platform.release() or None
    release_text = _read(base / RELEASE_FILE)
    if release_text is None and not (kernel or "").endswith("-tegra"):
        return JetsonInfo()  # not a Jetson: nothing else is read
    model = (_read(base / MODEL_FILE) or "").replace("\x00", "").strip() or None
    l4t, board = parse_release(release_text or "")
    if l4t is None:
        if release_text is not None:
            notes.append(f"jetson: {base / RELEASE_FILE}: not an L4T release line")
        elif kernel:
            notes.append(f"jetson: kernel {kernel} is an L4T kernel, but {base / RELEASE_FILE} is missing")
        return JetsonInfo(model=model, kernel=kernel)
    tables = load_tables()
    jetpack, cuda = jetpack_of(l4t, tables)
    if jetpack is None:
        notes.append(f"jetson: L4T {l4t} is not in data/jetson.toml: JetPack unknown")
    return JetsonInfo(
        l4t=l4t,
        jetpack=jetpack,
        model=model,
        kernel=kernel,
        board=board,
        compute_capability=compute_capability_of(model, tables),
        cuda=cuda,
    )
