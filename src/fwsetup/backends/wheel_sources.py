"""Where a venv's packages come from: the wheels already here (--wheelhouse, pip's find-links) and the plan's
own index, probed before an install; IndexUnreachable when that index is needed and cannot be reached."""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging import tags
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from fwsetup import net, pipconfig
from fwsetup.backends.base import InstallOptions
from fwsetup.errors import NetworkError
from fwsetup.plan import Plan
from fwsetup.redact import has_credentials, redact_text
from fwsetup.settings import resolve


def _target_tags(python: str | None) -> set[str]:
    if python and re.fullmatch(r"3\.\d+", python):
        ver = tuple(int(x) for x in python.split("."))
    else:
        ver = sys.version_info[:2]
    platforms = list(tags.platform_tags())
    out = {str(t) for t in tags.cpython_tags(python_version=ver, platforms=platforms)}
    out |= {str(t) for t in tags.compatible_tags(python_version=ver, platforms=platforms)}
    return out


def local_wheels(dirs: Sequence[str | Path], python: str | None) -> dict[str, list[tuple[Any, Path]]]:
    """canonical name -> [(Version, wheel path)] of the wheels in `dirs` that can install on `python`."""
    ok_tags = _target_tags(python)
    found: dict[str, list[tuple[Any, Path]]] = {}
    for d in dirs:
        p = pipconfig.local_path(str(d))
        if p is None or not p.is_dir():
            continue
        for whl in sorted(p.glob("*.whl")):
            try:
                name, version, _build, wtags = parse_wheel_filename(whl.name)
            except (InvalidWheelFilename, ValueError):
                continue
            if any(str(t) in ok_tags for t in wtags):
                found.setdefault(canonicalize_name(name), []).append((version, whl))
    return found


def _pinned(requirements: Sequence[str]) -> list[Any]:
    out = []
    for text in requirements:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            continue
        if any(s.operator in ("==", "===") for s in req.specifier):
            out.append(req)
    return out


class IndexUnreachable(NetworkError):
    """The plan's own index cannot be reached and no local wheel provides what it was for."""

    def __init__(
        self, url: str, *, names: Sequence[str], local: Mapping[str, Sequence[str]], detail: str
    ) -> None:
        what = " and ".join(names) or "the framework"
        url, detail = redact_text(url), redact_text(detail)
        msg = f"cannot reach {url} ({detail}): use --wheelhouse DIR with the {what} wheel"
        have = "; ".join(f"{n} {', '.join(vs)}" for n, vs in local.items() if vs)
        hint = f"Local wheels found: {have} (choose one with --version)." if have else None
        super().__init__(msg, hint=hint)
        self.url = url
        self.names = list(names)
        self.local = {k: list(v) for k, v in local.items()}


@dataclass(frozen=True, kw_only=True)
class Sources:
    """Where the packages will come from."""

    plan_indexes: tuple[str, ...]  # the plan's indexes still used
    local: Mapping[str, str] = field(default_factory=dict)  # pinned requirement -> local wheel path
    notes: tuple[str, ...] = ()


PROBE_DEADLINE = 10.0  # seconds in all for one index probe, unless pip's timeout says otherwise


@functools.cache
def probe_index(url: str, cafile: str | None = None, timeout: float = PROBE_DEADLINE) -> str | None:
    """None when the index answers (any HTTP status) within `timeout` seconds in all (fwsetup.net.fetch: a
    total deadline, not per read), else why not (one phrase)."""
    if url.startswith("file:"):
        p = pipconfig.local_path(url)
        return None if p is not None and p.is_dir() else "no such folder"
    ca = {"capath": cafile} if cafile and Path(cafile).is_dir() else {"cafile": cafile}
    try:
        net.fetch(url.rstrip("/") + "/", method="HEAD", deadline=timeout, max_bytes=1 << 20, **ca)
    except net.FetchError as exc:
        return exc.reason
    return None


def check_sources(
    plan: Plan, options: InstallOptions, settings: pipconfig.PipSettings | None = None, *, probe: bool = True
) -> Sources:
    """Decide whether the plan's own index is needed; IndexUnreachable when it is and cannot be reached."""
    env = dict(options.env) if options.env else dict(os.environ)
    settings = settings if settings is not None else resolve(env).pip
    if not plan.index_urls:
        return Sources(plan_indexes=())
    if options.offline:
        return Sources(plan_indexes=(), notes=("--offline: no index is contacted, local wheels only",))
    dirs = ([str(options.wheelhouse)] if options.wheelhouse else []) + list(settings.find_links)
    found = local_wheels(dirs, options.python or plan.python)
    pinned = _pinned(plan.requirements)

    local: dict[str, str] = {}
    for req in pinned:
        hits = [
            w
            for v, w in found.get(canonicalize_name(req.name), [])
            if req.specifier.contains(v, prereleases=True)
        ]
        if hits:
            local[str(req)] = str(hits[-1])
    if pinned and len(local) == len(pinned):
        where = ", ".join(sorted({str(Path(p).parent) for p in local.values()}))
        note = f"{', '.join(local)} from the local wheels in {where}; not contacting {', '.join(plan.index_urls)}"
        return Sources(plan_indexes=(), local=local, notes=(note,))
    if not probe:
        return Sources(plan_indexes=tuple(plan.index_urls), local=local)
    # pip's cert (REQUESTS_CA_BUNDLE included, pipconfig), in addition to the system store (net.tls_context)
    cert = Path(settings.cert).expanduser() if settings.cert else None
    cafile = str(cert) if cert is not None and cert.exists() else env.get("SSL_CERT_FILE")
    try:  # pip's timeout (PIP_TIMEOUT, pip.conf), here the probe's total deadline
        deadline = float(settings.timeout) if settings.timeout else PROBE_DEADLINE
    except ValueError:
        deadline = PROBE_DEADLINE
    for url in plan.index_urls:
        why = probe_index(url, cafile, deadline)
        if why is not None:
            names = [r.name for r in pinned if str(r) not in local] or [
                r.split("[")[0].split("=")[0] for r in plan.requirements[:1]
            ]
            versions = {n: [str(v) for v, _ in sorted(found.get(canonicalize_name(n), []))] for n in names}
            raise IndexUnreachable(url, names=names, local=versions, detail=why)
    return Sources(plan_indexes=tuple(plan.index_urls), local=local)


def pip_index_env(plan_indexes: Sequence[str], settings: pipconfig.PipSettings) -> dict[str, str]:
    """pip fallback: plan indexes that carry a credential go through PIP_EXTRA_INDEX_URL, never argv (with
    the user's own extra indexes, which that variable would otherwise hide). {} when none does."""
    if not any(has_credentials(u) for u in plan_indexes):
        return {}
    return {"PIP_EXTRA_INDEX_URL": " ".join(dict.fromkeys([*plan_indexes, *settings.extra_index_urls]))}


def index_cache(env: Mapping[str, str]) -> Path | None:
    """Where generated wheel indexes go (pipconfig.wheel_index): fwsetup's cache folder; None turns it off."""
    return resolve(env).cache_dir
