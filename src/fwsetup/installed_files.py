"""Are an environment's installed files still there? Each Python distribution's RECORD (sizes, hashes) and
the size and mtime of every file at the swap (files.json, written by env_ownership.seal): what is missing,
changed or added since fwsetup installed it."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from fwsetup.envmeta import FILES_FILE, meta_dir

# packaging (canonicalize_name, Version) is imported where it is used: packaging.utils brings packaging.tags,
# ~30 ms of start-up here (-X importtime), which the commands that only read an environment's lock need not pay.


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
