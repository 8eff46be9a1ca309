"""The image lock without an index (unit tests have no network): fwsetup.backends.docker.lock.compile_lock
replaced by a resolver that pins each requirement to the version it names (or a wheelhouse wheel's that matches it), with a made-up sha256, and takes a
wheel of that name and version from the wheelhouse where there is one (as uv does from find-links). The real
`uv pip compile` runs in the docker integration tests (test_pinned_images.py)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import fwsetup.backends.docker.lock as lock
from fwsetup.backends.docker.lock import ImageLock, LockedPackage

CALLS: list[dict[str, Any]] = []


def fake_compile_lock(requirements: Sequence[str], **kw: Any) -> ImageLock:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    CALLS.append({"requirements": list(requirements), **kw})
    wheelhouse: Path | None = kw.get("wheelhouse")
    out = []
    for text in requirements:
        req = Requirement(text)
        pins = [s.version for s in req.specifier if s.operator in ("==", "===")]
        version = pins[0] if pins else "0"
        wheel = None
        if wheelhouse is not None:
            for f in sorted(wheelhouse.glob("*.whl")):
                name, ver = f.name.split("-")[:2]
                if canonicalize_name(name) == canonicalize_name(req.name) and req.specifier.contains(ver):
                    wheel, version = f.name, ver
        digest = hashlib.sha256(f"{req.name}=={version}".encode()).hexdigest()
        out.append(LockedPackage(name=req.name, version=version, hashes=(digest,), wheel=wheel))
    return ImageLock(packages=tuple(out))


@pytest.fixture
def fake_image_lock(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:

    monkeypatch.setattr(lock, "compile_lock", fake_compile_lock)
    CALLS.clear()
    yield CALLS
