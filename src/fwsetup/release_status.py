"""Official status of a build: what the framework's own release matrix says about its variant
(data/release-matrix.toml, each framework with its sources).

`status_of(framework, version, variant, accelerator, wsl=...)` is "stable", "experimental", "unlisted" (the
matrix speaks for this release and accelerator but does not list the variant), or None (not judged: an
accelerator or release the matrix does not cover, or a framework without one). Read once per process.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, Final, Literal

from fwsetup.errors import RecipeError
from fwsetup.recipes.load import read_toml
from fwsetup.resources import compat_dir

RELEASE_MATRIX_FILE: Final = "release-matrix.toml"
Status = Literal["stable", "experimental", "unlisted"]
STATUSES: Final[tuple[Status, ...]] = ("stable", "experimental", "unlisted")
# Ranking: higher is better (plan/choose.py); None (not judged) ranks with stable.
STATUS_RANK: Final[dict[Status | None, int]] = {"stable": 2, None: 2, "experimental": 1, "unlisted": 0}
_SERIES_RE: Final = re.compile(r"^(\*|\d+(\.\d+)*)$")


@dataclass(frozen=True, eq=False)
class FrameworkMatrix:
    covers: frozenset[str]
    releases: dict[str, dict[str, Status]]  # series -> variant -> status
    wsl: Status | None = None  # the best status any covered build has under WSL2
    sources: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)  # compared (and cached) by identity: one per data file read
class ReleaseMatrix:
    frameworks: dict[str, FrameworkMatrix] = field(default_factory=dict)

    def status_of(
        self, framework: str, version: str, variant: str, accelerator: str, *, wsl: bool = False
    ) -> Status | None:
        return _status_of(self, framework, version, variant, accelerator, wsl)


@lru_cache(maxsize=8192)
def _status_of(
    matrix: ReleaseMatrix, framework: str, version: str, variant: str, accelerator: str, wsl: bool
) -> Status | None:
    """ReleaseMatrix.status_of, cached (a plan asks once per build)."""
    fm = matrix.frameworks.get(framework)
    if fm is None or accelerator not in fm.covers:
        return None
    table = _series_table(fm, version)
    if table is None:
        return None
    status: Status = table.get(variant, "unlisted")
    if wsl and fm.wsl is not None and STATUS_RANK[fm.wsl] < STATUS_RANK[status]:
        status = fm.wsl
    return status


def _series_table(fm: FrameworkMatrix, version: str) -> dict[str, Status] | None:
    parts = version.split("+")[0].split(".")
    # The longest series that is a prefix of the version ("2.10" for 2.10.1), then "*".
    for n in range(len(parts), 0, -1):
        table = fm.releases.get(".".join(parts[:n]))
        if table is not None:
            return table
    return fm.releases.get("*")


def _problem(path: str, key: str, what: str) -> RecipeError:
    return RecipeError(f"{path}: {key}: {what}", hint="Fix the data file (data/release-matrix.toml).")


def _strings(value: Any, path: str, key: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _problem(path, key, f"expected a list of names, got {value!r}")
    return list(value)


def matrix_from_data(raw: dict[str, Any], *, source: str = RELEASE_MATRIX_FILE) -> ReleaseMatrix:
    """Validate the parsed TOML; a malformed entry is a RecipeError naming the file and the key."""
    frameworks: dict[str, FrameworkMatrix] = {}
    for name, body in raw.items():
        if name in ("retrieved", "source"):
            continue
        if not isinstance(body, dict):
            raise _problem(source, name, "expected a table ([name]) with covers, sources and release entries")
        covers = _strings(body.get("covers"), source, f"{name}.covers")
        sources = _strings(body.get("sources"), source, f"{name}.sources")
        wsl = body.get("wsl")
        if wsl is not None and wsl not in STATUSES:
            raise _problem(source, f"{name}.wsl", f"expected one of {', '.join(STATUSES)}, got {wsl!r}")
        releases: dict[str, dict[str, Status]] = {}
        entries = body.get("release", [])
        if not isinstance(entries, list):
            raise _problem(source, f"{name}.release", "expected [[release]] entries")
        for i, entry in enumerate(entries):
            key = f"{name}.release[{i}]"
            if not isinstance(entry, dict):
                raise _problem(source, key, "expected a table")
            unknown = set(entry) - {"series", "stable", "experimental"}
            if unknown:
                raise _problem(
                    source, f"{key}.{sorted(unknown)[0]}", "unknown key (series, stable, experimental)"
                )
            series = entry.get("series")
            if not isinstance(series, str) or not _SERIES_RE.match(series):
                raise _problem(
                    source,
                    f"{key}.series",
                    f'expected a release series such as "2.10" or "*", got {series!r}',
                )
            if series in releases:
                raise _problem(source, f"{key}.series", f"{series!r} is listed twice")
            table: dict[str, Status] = {}
            for status in ("stable", "experimental"):
                for variant in _strings(entry.get(status, []), source, f"{key}.{status}"):
                    if variant in table:
                        raise _problem(source, f"{key}.{status}", f"{variant!r} is listed twice")
                    table[variant] = "stable" if status == "stable" else "experimental"
            releases[series] = table
        frameworks[name] = FrameworkMatrix(frozenset(covers), releases, wsl, tuple(sources))
    return ReleaseMatrix(frameworks)


def read_release_matrix(path: str | Path) -> ReleaseMatrix:
    p = Path(path)
    if not p.is_file():
        return ReleaseMatrix()
    return matrix_from_data(read_toml(p), source=str(p))


@cache
def load_release_matrix() -> ReleaseMatrix:
    """The shipped release matrix (cached)."""
    return read_release_matrix(compat_dir() / RELEASE_MATRIX_FILE)
