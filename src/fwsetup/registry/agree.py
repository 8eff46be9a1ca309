"""Do the recipes and the synced registry data agree?

Both directions, per recipe:
- a build claims (release, OS, arch, Python) and the data has no wheel for it ("claimed, not published");
- the data has a release, or a (release, OS, arch), or a Python of one, that no build of the recipe covers
  ("published, not in the recipe").

A difference is fine when data/registry/exceptions.toml records why (with a source). Builds that install from
an index the sync could not read (download.pytorch.org without a saved copy), from conda only, or from a
Docker image only are not checked: they come back as exemptions, each with its reason, so the test prints
them. Free-threaded wheels (cp313t) are left out: the recipes do not model them.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from fwsetup.errors import RecipeError
from fwsetup.recipes.load import load_recipes, read_toml
from fwsetup.recipes.parsers import parse_requirement, parse_specifier, parse_version
from fwsetup.registry import PYPI, Registry, Wheel, canonical, load_registry, registry_dir

# CPython minors a recipe's `python` range is read over.
PYTHONS: Final = tuple(f"3.{m}" for m in range(7, 16))
# (os, arch) pairs a host can be (detect/cpu.py: Apple silicon is "arm64", Linux and Windows on Arm "aarch64");
# a build's os and arch lists combine into these only.
HOSTS: Final = frozenset(
    {("linux", "x86_64"), ("linux", "aarch64"), ("darwin", "x86_64"), ("darwin", "arm64"),
     ("windows", "x86_64"), ("windows", "aarch64")}
)  # fmt: skip
PYPI_URLS: Final = ("https://pypi.org/simple", "https://pypi.python.org/simple")
Key = tuple[str, str, str, str]  # (release, os, arch, python)


_EXCEPTION_KEYS: Final = frozenset(
    {"recipe", "distribution", "versions", "os", "arch", "python", "reason", "source", "superseded"}
)


@dataclass(frozen=True)
class Exception_:
    kind: str  # "not_in_registry" | "not_in_recipe"
    recipe: str
    distribution: str
    versions: tuple[str, ...]  # () = every release
    os: str | None
    arch: str | None
    python: str | None  # "3.14" or None = every Python
    reason: str
    source: str
    # not_in_recipe only: every release the recipe does not list while it lists a newer one of the same
    # minor series (the recipe keeps the newest patch release of each minor)
    superseded: bool = False

    def covers(self, recipe: str, dist: str, key: Key, listed: Iterable[str] = ()) -> bool:
        version, os, arch, python = key
        if self.superseded and not any(_same_minor_newer(version, v) for v in listed):
            return False
        return (
            self.recipe == recipe
            and canonical(self.distribution) == dist
            and (not self.versions or version in self.versions)
            and (self.os is None or self.os == os)
            and (self.arch is None or self.arch == arch)
            and (self.python is None or python == "" or _python_matches(self.python, python))
        )


def load_exceptions(path: Path | None = None) -> list[Exception_]:
    path = path or registry_dir() / "exceptions.toml"
    if not path.is_file():
        return []
    raw = read_toml(path)
    for top in sorted(set(raw) - {"not_in_registry", "not_in_recipe"}):
        raise RecipeError(f"{path}: {top}: unknown table (expected [[not_in_recipe]] or [[not_in_registry]])")
    out: list[Exception_] = []
    for kind in ("not_in_registry", "not_in_recipe"):
        entries = raw.get(kind, [])
        if not isinstance(entries, list):
            raise RecipeError(f"{path}: {kind}: expected an array of tables ([[{kind}]])")
        for i, e in enumerate(entries):
            key = f"{kind}[{i}]"
            if not isinstance(e, dict):
                raise RecipeError(f"{path}: {key}: expected a table")
            unknown = set(e) - _EXCEPTION_KEYS
            if unknown:
                what = f"unknown key (expected one of {', '.join(sorted(_EXCEPTION_KEYS))})"
                raise RecipeError(f"{path}: {key}.{sorted(unknown)[0]}: {what}")
            for need in ("recipe", "distribution", "reason", "source"):
                if not isinstance(e.get(need), str) or not e[need].strip():
                    raise RecipeError(f"{path}: {key}.{need}: expected a non-empty string")
            if not e["source"].startswith("https://"):
                raise RecipeError(f"{path}: {key}.source: expected an https:// URL, got {e['source']!r}")
            versions = e.get("versions", [])
            if not isinstance(versions, list) or not all(isinstance(v, str) for v in versions):
                raise RecipeError(f"{path}: {key}.versions: expected an array of version strings")
            if not isinstance(e.get("superseded", False), bool):
                raise RecipeError(f"{path}: {key}.superseded: expected true or false")
            for opt in ("os", "arch", "python"):
                if opt in e and not isinstance(e[opt], str):
                    raise RecipeError(f"{path}: {key}.{opt}: expected a string")
            out.append(
                Exception_(
                    kind=kind,
                    recipe=e["recipe"],
                    distribution=e["distribution"],
                    versions=tuple(versions),
                    os=e.get("os"),
                    arch=e.get("arch"),
                    python=e.get("python"),
                    reason=e["reason"],
                    source=e["source"],
                    superseded=e.get("superseded", False),
                )
            )
    return out


@dataclass
class Report:
    recipe: str
    problems: list[str] = field(default_factory=list)
    exempt: list[str] = field(default_factory=list)  # builds not checked, and why
    excused: list[str] = field(default_factory=list)  # differences exceptions.toml explains
    checked: int = 0  # (release, os, arch, python) claims checked against the data
    used: set[Exception_] = field(default_factory=set)


def python_of(wheel: Wheel, minor: str) -> bool:
    """This wheel installs on CPython `minor` (3.X), by its interpreter and ABI tags (no free-threaded)."""
    want = "cp" + minor.replace(".", "")
    abis = wheel.abi_tag.split(".")
    for py in wheel.python_tag.split("."):
        if py in ("py3", f"py{minor.replace('.', '')}") and "none" in abis:
            return True
        if py == want and ({want, want + "m", want + "mu", "none"} & set(abis)):
            return True
        if py.startswith("cp3") and "abi3" in abis and int(py[3:]) <= int(want[3:]):
            return True
    return False


def _offers(wheels: Iterable[Wheel], os: str, arch: str, minor: str) -> bool:
    return any(
        not w.yanked and python_of(w, minor) and any(p.runs_on(os, arch) for p in w.platforms())
        for w in wheels
    )


def _pinned(b: Any) -> list[tuple[str, set[str]]]:
    """(distribution, extras) of every requirement pinned to the build's own version."""
    out = []
    for text in [*b.requirements, *(b.conda.pip if b.conda else [])]:
        req = parse_requirement(text)
        if [s.version for s in req.specifier if s.operator == "=="] == [b.version]:
            out.append((canonical(req.name), {canonical(e) for e in req.extras}))
    return out


def _binary(reg: Registry, dist: str, version: str, extras: set[str], seen: set[str]) -> list[str]:
    """The distributions whose wheels decide where `dist` installs: itself when it has platform wheels,
    else the companions its release requires (jax -> jaxlib, jax[cuda12] -> jax-cuda12-plugin -> pjrt)."""
    from packaging.requirements import Requirement

    seen.add(dist)
    wheels = reg.wheels(dist, version)
    if any(p.os != "any" for w in wheels for p in w.platforms()):
        return [dist]
    rel = reg.release(dist, version)
    out: list[str] = []
    for text in rel.requires if rel else []:
        req = Requirement(text)
        name = canonical(req.name)
        marker = str(req.marker) if req.marker else ""
        if name in seen or name not in reg.distributions() or "cuda-runtime" in name:
            continue
        if "extra ==" in marker and not any(f'extra == "{e}"' in marker for e in extras):
            continue
        if not any(req.specifier.contains(v) for v in reg.versions(name)):
            continue
        pins = [v for v in reg.versions(name) if req.specifier.contains(v)]
        out += _binary(reg, name, pins[-1], {canonical(e) for e in req.extras}, seen)
    return out or [dist]


def _version_of(reg: Registry, dist: str, root: str, version: str) -> str:
    """The release of companion `dist` that `root`==`version` pins (jaxlib 0.9.2 for jax 0.9.2)."""
    return version if dist == root or reg.wheels(dist, version) else (reg.versions(dist) or [version])[-1]


def compare(recipe: Any, reg: Registry, exceptions: Sequence[Exception_] = ()) -> Report:
    rep = Report(recipe=recipe.name)
    synced = set(reg.distributions())
    not_synced = {u.rstrip("/") for u in reg.not_synced}
    covered: dict[str, set[Key]] = {}  # distribution -> what the builds cover (any index)
    covered_releases: dict[str, set[str]] = {}

    def excuse(kind: str, dist: str, key: Key) -> Exception_ | None:
        for e in exceptions:
            if e.kind == kind and e.covers(recipe.name, dist, key, covered_releases.get(dist, ())):
                rep.used.add(e)
                return e
        return None

    for b in recipe.builds:
        pins = [(d, ex) for d, ex in _pinned(b) if d in synced]
        where = f"{b.version} {b.variant} ({'/'.join(b.os)} {'/'.join(b.arch)})"
        if not b.installable:
            rep.exempt.append(f"{where}: not installable by fwsetup (conda or Docker image only)")
            continue
        if not pins:
            rep.exempt.append(
                f"{where}: installs no distribution pinned to its own version (nothing to compare)"
            )
            continue
        minors = [m for m in PYTHONS if b.python is None or _contains(b.python, m)]
        index = (b.index_url or "").rstrip("/")
        for dist, _ in pins:
            covered_releases.setdefault(dist, set()).add(b.version)
            cov = covered.setdefault(dist, set())
            for os, arch in _hosts(b):
                cov.update((b.version, os, arch, m) for m in minors)
        if index and index not in PYPI_URLS:
            has = any(w.index.rstrip("/") == index for d, _ in pins for w in reg.wheels(d, b.version))
            if not has:
                why = "not synced (no saved copy given to the sync)" if index in not_synced else "not synced"
                rep.exempt.append(f"{where}: index {index} {why}")
                continue
        for dist, extras in pins:
            for binary in _binary(reg, dist, b.version, extras, set()):
                ver = _version_of(reg, binary, dist, b.version)
                wheels = [w for w in reg.wheels(binary, ver) if w.index.rstrip("/") == (index or PYPI)]
                if not index:
                    wheels = [w for w in reg.wheels(binary, ver) if w.index == PYPI]
                for os, arch in _hosts(b):
                    for m in minors:
                        rep.checked += 1
                        if _offers(wheels, os, arch, m):
                            continue
                        key = (b.version, os, arch, m)
                        e = excuse("not_in_registry", dist, key)
                        text = (
                            f"{recipe.path}: {dist}=={b.version} {b.variant} claims {os} {arch} Python {m}; "
                            f"the registry has no {binary} {ver} wheel for it"
                        )
                        (rep.excused if e else rep.problems).append(text + (f" ({e.reason})" if e else ""))
    # the other way: what the data shows that no build covers
    # a (release, OS, arch, Python) counts as covered when any build has it, whichever distribution it
    # installs there (TensorFlow: tensorflow-cpu on Linux CPU, tensorflow with [and-cuda] for the GPU)
    releases = set().union(*covered_releases.values()) if covered_releases else set()
    # "a release the recipe lacks" is judged on the framework's own distribution (recipe.distribution):
    # a companion pinned by one build (jaxlib==V next to jax==V) publishes every release jax does
    own = canonical(recipe.distribution) if getattr(recipe, "distribution", None) else None
    primary = {own} if own in covered else set(covered)
    everything = set().union(*covered.values()) if covered else set()
    for dist in sorted(covered):
        floor = min(covered_releases[dist], key=_v)
        for version in reg.versions(dist):
            if _v(version) < _v(floor):
                continue
            wheels = [w for w in reg.wheels(dist, version) if w.index == PYPI and not w.yanked]
            rel = reg.release(dist, version)
            if not wheels or (rel is not None and rel.yanked):
                continue
            if version not in releases:
                if dist in primary:
                    e = excuse("not_in_recipe", dist, (version, "", "", ""))
                    text = f"{recipe.path}: {dist} {version} is on PyPI; no build of the recipe has it"
                    (rep.excused if e else rep.problems).append(text + (f" ({e.reason})" if e else ""))
                continue
            offered = {
                (os, arch, m)
                for w in wheels
                for p in w.platforms()
                if p.os in ("linux", "darwin", "windows")
                for arch in p.arch
                for os in [p.os]
                for m in PYTHONS
                if python_of(w, m)
            }
            platforms = sorted({(os, arch) for os, arch, _ in offered})
            for os, arch in platforms:
                if arch not in ("x86_64", "aarch64", "arm64"):
                    continue
                mine = {m for v, o, a, m in everything if (v, o, a) == (version, os, arch)}
                if not mine:
                    e = excuse("not_in_recipe", dist, (version, os, arch, ""))
                    text = f"{recipe.path}: PyPI has {dist} {version} for {os} {arch}; no build of the recipe has it"
                    (rep.excused if e else rep.problems).append(text + (f" ({e.reason})" if e else ""))
                    continue
                # Pythons: only wheels built for one CPython (cpXY) say which Pythons a release has; a
                # py3-none wheel (mxnet, jax-rocm7-pjrt) fits every Python and leaves the range to the recipe
                built = {
                    m
                    for w in wheels
                    if any(t.startswith("cp") for t in w.python_tag.split("."))
                    and any(p.runs_on(os, arch) for p in w.platforms())
                    for m in PYTHONS
                    if python_of(w, m)
                }
                for m in sorted(built - mine, key=_v):
                    e = excuse("not_in_recipe", dist, (version, os, arch, m))
                    text = (
                        f"{recipe.path}: PyPI has {dist} {version} for {os} {arch} Python {m}; "
                        "the recipe's python range leaves it out"
                    )
                    (rep.excused if e else rep.problems).append(text + (f" ({e.reason})" if e else ""))
    return rep


def _python_matches(spec: str, minor: str) -> bool:
    return spec == minor if spec[:1].isdigit() else _contains(spec, minor)


def _same_minor_newer(version: str, other: str) -> bool:
    a, b = _v(version), _v(other)
    return bool(a.release[:2] == b.release[:2] and b > a)


def _hosts(b: Any) -> list[tuple[str, str]]:
    return [(os, arch) for os in b.os for arch in b.arch if (os, arch) in HOSTS]


def _v(text: str) -> Any:
    return parse_version(text)


def _contains(spec: str, minor: str) -> bool:
    return bool(parse_specifier(spec).contains(minor + ".0", prereleases=True))


def main(argv: list[str] | None = None) -> int:
    """Print the comparison for every recipe with registry data (python -m fwsetup.registry.agree)."""
    exceptions = load_exceptions()
    bad = 0
    for recipe in load_recipes(None):
        reg = load_registry(recipe.name)
        if reg is None:
            continue
        rep = compare(recipe, reg, exceptions)
        print(f"{recipe.name}: {rep.checked} claims checked, {len(rep.problems)} problems, "
              f"{len(rep.excused)} excused, {len(rep.exempt)} builds exempt")  # fmt: skip
        for p in rep.problems:
            print(f"  PROBLEM {p}")
        if argv and "-v" in argv:
            for x in rep.exempt + rep.excused:
                print(f"  note {x}")
        bad += len(rep.problems)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
