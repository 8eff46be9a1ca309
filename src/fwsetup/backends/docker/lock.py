"""The image's lock and SBOM: the plan's requirements resolved once, on this machine, for the image's platform.

`uv pip compile --format pylock.toml` (PEP 751) resolves the plan's requirements for the image's Python and
platform against the same sources the build uses (the plan's indexes that are still used, the user's index
settings, the wheelhouse), with the sha256 of every artifact (a local wheel's computed from the file). From it:

- build/requirements.txt: every package pinned (`name==version`) with its hashes, installed by the builder
  stage with `uv pip sync --require-hashes` (pip: `--require-hashes --no-deps`): a wheel that is not the one
  locked (a tampered or swapped file in the wheelhouse or a committed bake folder, a changed index) fails the
  build. It names no URL, so an index credential never reaches it.
- app/sbom.cdx.json: a CycloneDX 1.6 document of the image's Python packages (cyclonedx-python-lib), copied
  into the image at /opt/fwsetup/sbom.cdx.json (label io.fwsetup.sbom). Deterministic (serial number from the
  lock's content, no timestamp), so an unchanged lock leaves the build cache intact.
- the wheelhouse files the lock uses, and only those, go into the context.

The lock is resolved for manylinux_2_28 (glibc 2.28: Debian 10, Ubuntu 20.04 and every newer base image
meet it), so a wheel needing a newer glibc than the base has is never chosen.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import sys
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from fwsetup import __version__, pipconfig, proc
from fwsetup.errors import InstallError
from fwsetup.pipconfig import local_path
from fwsetup.redact import redact_text

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

SBOM_FILE: Final = "sbom.cdx.json"  # in app/, so /opt/fwsetup/sbom.cdx.json in the image
SBOM_PATH: Final = "/opt/fwsetup/" + SBOM_FILE
GLIBC_FLOOR: Final = "2_28"
LOCK_TIMEOUT: Final = 900.0


def uv_binary() -> Path | None:
    """The uv binary fwsetup itself depends on, when it can run inside a linux/amd64 (or arm64) image."""
    if platform.system() != "Linux":
        return None
    try:
        import uv  # in here: ImportError is an answer (a fwsetup installed without its uv)

        found = Path(uv.find_uv_bin())
    except (ImportError, FileNotFoundError):
        found_str = shutil.which("uv")
        if not found_str:
            return None
        found = Path(found_str)
    return found if found.is_file() else None


@dataclass(frozen=True, kw_only=True)
class LockedPackage:
    name: str
    version: str
    hashes: tuple[str, ...]  # sha256 hex of every artifact the lock allows (its wheels, its sdist)
    wheel: str | None = None  # the file name, where it is a wheel of the wheelhouse


@dataclass(frozen=True, kw_only=True)
class ImageLock:
    packages: tuple[LockedPackage, ...]

    @property
    def local_wheels(self) -> tuple[str, ...]:
        return tuple(sorted(p.wheel for p in self.packages if p.wheel))

    def requirements(self) -> str:
        """A pip/uv requirements file, every line `name==version --hash=sha256:...` (no URL, no index)."""
        lines = []
        for p in sorted(self.packages, key=lambda p: p.name):
            hashes = " ".join(f"--hash=sha256:{h}" for h in p.hashes)
            lines.append(f"{p.name}=={p.version} {hashes}".rstrip())
        return "".join(line + "\n" for line in lines)

    def digest(self) -> str:
        return hashlib.sha256(self.requirements().encode()).hexdigest()

    def version_of(self, name: str) -> str | None:
        from packaging.utils import (
            canonicalize_name,  # lazy: it imports packaging.tags (~12 ms, -X importtime)
        )

        want = canonicalize_name(name)
        return next((p.version for p in self.packages if canonicalize_name(p.name) == want), None)


def python_platform(platform: str) -> str:
    """uv's --python-platform for a Docker platform (linux/amd64, linux/arm64)."""
    arch = platform.rsplit("/", 1)[-1]
    machine = {"amd64": "x86_64", "x86_64": "x86_64", "arm64": "aarch64", "aarch64": "aarch64"}.get(arch)
    if machine is None:
        msg = (
            f"no Python wheels are locked for the platform {platform!r}: expected linux/amd64 or linux/arm64."
        )
        raise InstallError(msg)
    return f"{machine}-manylinux_{GLIBC_FLOOR}"


def read_lock(pylock: Path, wheelhouse: Path | None) -> ImageLock:
    """The packages of a pylock.toml, each with all its hashes; a wheel from the wheelhouse by file name."""
    data = tomllib.loads(pylock.read_text())
    local_dir = wheelhouse.resolve() if wheelhouse is not None else None
    out = []
    for pkg in data.get("packages", []):
        arts = [*(pkg.get("wheels") or []), *[a for a in (pkg.get("sdist"), pkg.get("archive")) if a]]
        hashes = sorted({h for a in arts for h in [(a.get("hashes") or {}).get("sha256")] if h})
        if not hashes:
            msg = f"the lock has no sha256 for {pkg.get('name')} {pkg.get('version')}: it cannot be hash-checked."
            raise InstallError(msg)
        wheel = None
        for art in arts:
            where = art.get("path") or art.get("url") or ""
            path = local_path(where) if "://" in where else (pylock.parent / where if where else None)
            if path is not None and local_dir is not None and path.resolve().parent == local_dir:
                wheel = path.name
        out.append(
            LockedPackage(
                name=str(pkg["name"]), version=str(pkg["version"]), hashes=tuple(hashes), wheel=wheel
            )
        )
    return ImageLock(packages=tuple(out))


def compile_lock(
    requirements: Sequence[str],
    *,
    python: str,
    platform: str,
    plan_indexes: Sequence[str],
    index_url: str | None,
    extra_index_urls: Sequence[str],
    trusted_hosts: Sequence[str],
    cert: Path | None,
    wheelhouse: Path | None,
    offline: bool,
    env: Mapping[str, str],
) -> ImageLock:
    """Resolve requirements for the image (its Python and platform) with uv, against the sources the build
    itself uses; InstallError with uv's own words when they cannot be resolved."""
    uv = uv_binary()
    if uv is None:
        msg = "no uv here to lock the image's packages with (fwsetup depends on the `uv` package)."
        raise InstallError(msg)
    settings = pipconfig.PipSettings(
        index_url=index_url,
        extra_index_urls=tuple(extra_index_urls),
        trusted_hosts=tuple(trusted_hosts),
        cert=str(cert) if cert else None,
    )
    uvcfg = pipconfig.to_uv(
        settings, plan_indexes=plan_indexes, wheelhouse=wheelhouse, offline=offline, env=env
    )
    with tempfile.TemporaryDirectory(prefix="fwsetup-lock-") as tmp:
        req_in = Path(tmp) / "requirements.in"
        req_in.write_text("".join(r + "\n" for r in requirements))
        out = Path(tmp) / "pylock.toml"  # may hold index URLs with a token: it stays here
        argv = [
            str(uv), "pip", "compile", "--no-header", "--quiet", "--no-config",
            "--python-version", python, "--python-platform", python_platform(platform),
            *uvcfg.args, "--format", "pylock.toml", "-o", str(out), str(req_in),
        ]  # fmt: skip
        run_env = {k: v for k, v in env.items() if not k.startswith("UV_")}
        res = proc.run(argv, timeout=LOCK_TIMEOUT, env=run_env, env_overrides=dict(uvcfg.env))
        if res.returncode != 0 or not out.is_file():
            words = redact_text((res.stderr or res.stdout or res.error or "").strip(), uvcfg.secrets)
            msg = "the image's packages could not be locked (uv pip compile): " + (
                words.splitlines()[-1] if words else "no output"
            )
            raise InstallError(
                msg, hint="uv said:\n" + "\n".join(words.splitlines()[-15:]) if words else None
            )
        return read_lock(out, wheelhouse)


def sbom(lock: ImageLock, *, name: str, version: str, description: str) -> str:
    """The CycloneDX 1.6 JSON document of the image's Python packages (cyclonedx-python-lib); deterministic."""
    # lazy: cyclonedx-python-lib is heavy and needed only when an image is built
    from cyclonedx.model import HashAlgorithm, HashType
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.output.json import JsonV1Dot6
    from packageurl import PackageURL

    bom = Bom(serial_number=uuid.uuid5(uuid.NAMESPACE_URL, f"fwsetup:{name}:{lock.digest()}"))
    bom.metadata.timestamp = None  # type: ignore[assignment]  # the same lock gives the same bytes
    root = Component(
        name=name, version=version, type=ComponentType.CONTAINER, description=description, bom_ref="image"
    )
    bom.metadata.component = root
    bom.metadata.tools.components.add(
        Component(name="fwsetup", version=__version__, type=ComponentType.APPLICATION, bom_ref="fwsetup")
    )
    parts = []
    for p in sorted(lock.packages, key=lambda p: p.name):
        purl = PackageURL("pypi", name=p.name, version=p.version)
        c = Component(
            name=p.name,
            version=p.version,
            type=ComponentType.LIBRARY,
            purl=purl,
            bom_ref=purl.to_string(),
            hashes=[HashType(alg=HashAlgorithm.SHA_256, content=h) for h in p.hashes],
        )
        bom.components.add(c)
        parts.append(c)
    bom.register_dependency(root, parts)
    text: str = JsonV1Dot6(bom).output_as_string(indent=2)
    return json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"


def sbom_packages(text: str) -> dict[str, str]:
    """{name: version} of the library components of a CycloneDX JSON document (for tests and users)."""
    data: Any = json.loads(text)
    return {c["name"]: c["version"] for c in data.get("components", []) if c.get("type") == "library"}
