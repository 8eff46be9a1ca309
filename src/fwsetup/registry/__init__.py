"""What the package registries publish for each framework, as committed data (data/registry/<recipe>.json).

`scripts/sync-registry` (`python -m fwsetup.registry.sync`) writes the files; the planner and the tests
read them through `load_registry(name)`. One file per recipe:

    {"schema_version": 1, "framework": "pytorch", "synced": "2026-11-28",
     "sources": ["https://pypi.org/pypi/torch/json", ...],
     "not_synced": ["https://download.pytorch.org/whl/cu128", ...],
     "releases": {"torch": {"2.8.0": {"requires_python": ">=3.9.0", "uploaded": "2025-08-06", ...}}},
     "distributions": {"torch": {"2.8.0": [
        {"filename": "torch-2.8.0-cp311-cp311-manylinux_2_28_x86_64.whl", "index": "pypi",
         "python_tag": "cp311", "abi_tag": "cp311", "platform_tag": "manylinux_2_28_x86_64",
         "size": 123, "sha256": "..."}, ...]}}}

Tag sets: `python_tag`, `abi_tag` and `platform_tag` are the wheel filename's own three fields, compressed
sets kept as the filename writes them (PEP 425: "py2.py3", "manylinux_2_17_x86_64.manylinux2014_x86_64").
`Wheel.tags()` expands them into packaging.tags.Tag; `Wheel.platforms()` reads each platform tag into a
`Platform` (OS, arch, libc and its floor, minimum macOS). `index` is "pypi" or the URL of the index the
wheel was read from (a saved copy of it: `sources` says which). Only wheels are stored, no sdists.

Import cost: msgspec only; packaging is imported when tags are first expanded. Files are read lazily, once
per process, and only for the recipe asked for.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import msgspec

from fwsetup.errors import RecipeError
from fwsetup.recipes.parsers import parse_version
from fwsetup.registry.platforms import Platform, parse_platform
from fwsetup.resources import compat_dir
from fwsetup.validation import split_error, type_words

if TYPE_CHECKING:
    from packaging.tags import Tag

__all__ = [
    "SCHEMA_VERSION",
    "Registry",
    "ReleaseInfo",
    "Wheel",
    "canonical",
    "load_registry",
    "registry_dir",
]

SCHEMA_VERSION: Final = 1
PYPI: Final = "pypi"

_SHA256_RE: Final = re.compile(r"[0-9a-f]{64}")
_DATE_RE: Final = re.compile(r"\d{4}-\d{2}-\d{2}")


def canonical(name: str) -> str:
    """PEP 503 normalized distribution name ("TensorFlow_CPU" -> "tensorflow-cpu")."""
    return re.sub(r"[-_.]+", "-", name).lower()


class Wheel(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    filename: str
    index: str  # "pypi", or the index URL (e.g. https://download.pytorch.org/whl/cu128)
    python_tag: str  # as in the filename: "cp311", "py3", "py2.py3", "cp313t" is in abi_tag
    abi_tag: str  # "cp311", "cp313t" (free-threaded), "abi3", "none"
    platform_tag: str  # "manylinux_2_28_x86_64", "macosx_11_0_arm64", "win_amd64", "any", or a dotted set
    size: int | None = None  # bytes; None where the index does not say (PEP 503 HTML)
    sha256: str | None = None
    requires_python: str | None = None  # the file's own Requires-Python, where it differs from the release's
    yanked: bool = False

    def tags(self) -> frozenset[Tag]:
        """Every (interpreter, abi, platform) tag this wheel installs for."""
        return _expand(self.python_tag, self.abi_tag, self.platform_tag)

    def platforms(self) -> tuple[Platform, ...]:
        """The platform tags, read: OS, arch, libc floor, minimum macOS ("any" for pure wheels)."""
        return tuple(parse_platform(p) for p in self.platform_tag.split("."))

    @property
    def free_threaded(self) -> bool:
        """A free-threaded CPython build (PEP 703: abi tag cp313t)."""
        return any(a.endswith("t") and a.startswith("cp") for a in self.abi_tag.split("."))


class ReleaseInfo(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """What the registry says about one release besides its files."""

    requires_python: str | None = None
    uploaded: str | None = None  # date of the first file (YYYY-MM-DD)
    yanked: bool = False
    # requires_dist entries the sync followed (companion distributions, e.g. jax -> jaxlib) and the
    # NVIDIA CUDA runtime a PyPI wheel pulls (the "PyPI default CUDA"), as the registry writes them.
    requires: list[str] = []
    # the requirements were read from the release's own metadata at plan time (fwsetup.registry.live), even
    # where none was kept: nothing to inherit
    read: bool = False


class _Doc(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    schema_version: int
    framework: str
    synced: str
    sources: list[str]
    distributions: dict[str, dict[str, list[Wheel]]]
    releases: dict[str, dict[str, ReleaseInfo]] = {}
    # index URLs the recipes install from that this sync could not read (no saved copy given)
    not_synced: list[str] = []


class Registry:
    """The synced data of one recipe: wheels per distribution and release."""

    __slots__ = ("_dists", "_releases", "data", "framework", "not_synced", "path", "sources", "synced")

    def __init__(self, doc: _Doc, path: Path) -> None:
        self.framework = doc.framework
        self.synced = doc.synced
        self.sources: tuple[str, ...] = tuple(doc.sources)
        self.not_synced: tuple[str, ...] = tuple(doc.not_synced)
        self.path = path
        self._dists = {canonical(k): v for k, v in doc.distributions.items()}
        self._releases = {canonical(k): v for k, v in doc.releases.items()}
        # Which data this is (fwsetup.registry.live.DataInfo: live / cache / snapshot, per index, and when);
        # None: the shipped snapshot as read from data/registry/.
        self.data: Any = None

    def __repr__(self) -> str:
        return f"Registry({self.framework!r}, synced={self.synced!r}, {self.path})"

    def distributions(self) -> list[str]:
        return sorted(self._dists)

    def versions(self, distribution: str) -> list[str]:
        """The releases synced for `distribution`, oldest first (PEP 440 order); [] when not synced."""
        return sorted(self._dists.get(canonical(distribution), {}), key=parse_version)

    def _key(self, table: dict[str, object], version: str) -> str | None:
        if version in table:
            return version
        want = parse_version(version)
        return next((v for v in table if parse_version(v) == want), None)

    def wheels(self, distribution: str, version: str) -> list[Wheel]:
        """The wheels of one release ("2.8" finds "2.8.0"); [] when the release has none synced."""
        table = self._dists.get(canonical(distribution), {})
        key = self._key(table, version)  # type: ignore[arg-type]
        return list(table[key]) if key is not None else []

    def release(self, distribution: str, version: str) -> ReleaseInfo | None:
        table = self._releases.get(canonical(distribution), {})
        key = self._key(table, version)  # type: ignore[arg-type]
        return table[key] if key is not None else None


@cache
def _expand(python_tag: str, abi_tag: str, platform_tag: str) -> frozenset[Tag]:
    from packaging.tags import parse_tag

    return parse_tag(f"{python_tag}-{abi_tag}-{platform_tag}")


@cache
def registry_dir() -> Path:
    return compat_dir() / "registry"


_TYPES: Final = {
    "str": "a string",
    "int": "an integer",
    "bool": "true or false",
    "array": "an array",
    "object": "an object",
    "null": "null",
}


def _key_of(path: str) -> str:
    # msgspec's "$.distributions.torch['2.8.0'][3].size" -> "distributions.torch.2.8.0[3].size"
    key = re.sub(r"\['([^']*)'\]", r".\1", path)
    return key.lstrip(".") or "(top level)"


def _problem(path: Path, key: str, what: str) -> RecipeError:
    msg = f"{path}: {key}: {what}"
    return RecipeError(msg, hint="Run scripts/sync-registry to write the registry data again.")


def _check(doc: _Doc, path: Path, name: str) -> None:
    if doc.schema_version != SCHEMA_VERSION:
        what = f"expected schema_version {SCHEMA_VERSION}, got {doc.schema_version}"
        raise _problem(path, "schema_version", what)
    if doc.framework != name:
        raise _problem(path, "framework", f"expected {name!r} (the file's name), got {doc.framework!r}")
    if not _DATE_RE.fullmatch(doc.synced):
        raise _problem(path, "synced", f"expected a date YYYY-MM-DD, got {doc.synced!r}")
    for dist, releases in doc.distributions.items():
        for version, wheels in releases.items():
            for i, w in enumerate(wheels):
                key = f"distributions.{dist}.{version}[{i}]"
                stem = f"-{w.python_tag}-{w.abi_tag}-{w.platform_tag}.whl"
                if not w.filename.endswith(stem):
                    what = f"expected a wheel filename ending in {stem!r}, got {w.filename!r}"
                    raise _problem(path, f"{key}.filename", what)
                if w.sha256 is not None and not _SHA256_RE.fullmatch(w.sha256):
                    raise _problem(path, f"{key}.sha256", f"expected 64 hex digits, got {w.sha256!r}")
                if w.size is not None and w.size <= 0:
                    raise _problem(path, f"{key}.size", f"expected a positive size, got {w.size}")


def _words(text: str) -> str:
    text = re.sub(r"`([^`]*)`", lambda m: type_words(m.group(1), _TYPES), text)
    return text[:1].lower() + text[1:]


def _explain(path: Path, data: bytes, exc: msgspec.ValidationError) -> RecipeError:
    """The failing key with its real names (msgspec writes dict keys as [...]): the wheels are checked
    one by one, then the rest of the file."""
    raw = msgspec.json.decode(data)
    for section, cls in (("distributions", Wheel), ("releases", ReleaseInfo)):
        table = raw.get(section) if isinstance(raw, dict) else None
        for dist, releases in (table or {}).items() if isinstance(table, dict) else ():
            for version, items in releases.items() if isinstance(releases, dict) else ():
                many = section == "distributions"
                for i, item in enumerate(items if many and isinstance(items, list) else [items]):
                    key = f"{section}.{dist}.{version}" + (f"[{i}]" if many else "")
                    try:
                        msgspec.convert(item, cls)
                    except msgspec.ValidationError as sub:
                        what, at = split_error(sub)
                        return _problem(path, f"{key}.{_key_of(at)}" if at else key, _words(what))
    what, at = split_error(exc)
    return _problem(path, _key_of(at), _words(what))


def read_registry(path: Path, name: str | None = None) -> Registry:
    """Read and check one data file; a malformed file raises RecipeError naming the file and the key."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        msg = f"{path}: cannot read registry data: {exc.strerror or exc}."
        raise RecipeError(msg) from None
    try:
        doc = msgspec.json.decode(data, type=_Doc)
    except msgspec.ValidationError as exc:
        raise _explain(path, data, exc) from None
    except msgspec.DecodeError as exc:
        raise _problem(path, "(file)", f"expected JSON: {exc}") from None
    _check(doc, path, name or path.stem)
    return Registry(doc, path)


@cache
def _load(directory: Path, name: str) -> Registry | None:
    path = directory / f"{name}.json"
    if not path.is_file():
        return None
    return read_registry(path, name)


def load_registry(name: str, directory: str | Path | None = None) -> Registry | None:
    """The synced data of recipe `name` (cached per process); None when there is no file for it."""
    return _load(Path(directory) if directory is not None else registry_dir(), name)
