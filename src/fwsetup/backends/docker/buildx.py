"""The docker CLI's buildx, run as a subprocess (docker-py has no BuildKit, docker/docker-py#2230; as
repo2docker does, jupyterhub/repo2docker#1402): whether it exists, a BuildKit build, the platforms its
builder can build, and multi-platform manifest lists (`docker buildx imagetools`). Every child runs through
fwsetup.proc: it dies with fwsetup and is killed when the build is left early.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from fwsetup import proc
from fwsetup.backends.docker.api import iter_within
from fwsetup.backends.docker.buildlog import parse_buildx
from fwsetup.backends.engine import BuildEvent, BuildSpec, ManifestList
from fwsetup.detect.tools import engine_host
from fwsetup.errors import InstallError
from fwsetup.redact import redact_text
from fwsetup.settings import resolve


def buildx_available(env: Mapping[str, str]) -> bool:
    if resolve(env).buildx_disabled:
        return False
    res = proc.run(["docker", "buildx", "version"], timeout=15)
    return res.ok and "buildx" in (res.stdout + res.stderr).lower()


def build_argv(spec: BuildSpec, iidfile: Path, network: str | None) -> list[str]:
    """The `docker buildx build` command line for spec (pure)."""
    argv = [
        "docker", "buildx", "build", "--progress=plain", "--load",
        "-t", spec.tag, "-f", str(spec.context / spec.dockerfile), "--iidfile", str(iidfile),
    ]  # fmt: skip
    if network:
        argv += ["--network", network]
    if spec.platform:
        argv += ["--platform", spec.platform]
    if spec.no_cache:
        argv.append("--no-cache")
    for ref in spec.cache_from:
        argv += ["--cache-from", f"type=registry,ref={ref}"]
    if spec.inline_cache:
        argv += ["--cache-to", "type=inline"]
    for sid, path in sorted(spec.secrets.items()):
        argv += ["--secret", f"id={sid},src={path}"]
    argv.append(str(spec.context))
    return argv


def build(spec: BuildSpec, env: Mapping[str, str], network: str | None) -> Iterator[BuildEvent]:
    """`docker buildx build` of spec as BuildEvents, all of it within FWSETUP_BUILD_TIMEOUT."""
    with tempfile.TemporaryDirectory(prefix="fwsetup-iid-") as tmp:
        iidfile = Path(tmp) / "iid"
        argv = build_argv(spec, iidfile, network)
        try:
            seconds = resolve(env).build_timeout
            with proc.open_lines(argv, env=env) as child:
                lines = iter_within("the build (docker buildx build)", seconds, child.lines,
                                    host=engine_host(env))  # fmt: skip
                yield from parse_buildx(lines, iidfile, child.wait)
        except FileNotFoundError:
            yield BuildEvent(kind="error", text="the docker CLI is not installed (needed for buildx)")


def build_platforms(env: Mapping[str, str]) -> tuple[str, ...] | None:
    """`docker buildx inspect`'s Platforms line (BuildKit reads binfmt_misc each time: a handler registered
    after the engine started is listed without a restart); None when it does not answer."""
    res = proc.run(["docker", "buildx", "inspect"], timeout=30, env=env)
    if not res.ok:
        return None
    return parse_buildx_platforms(res.stdout)


def parse_buildx_platforms(text: str) -> tuple[str, ...] | None:
    """The platforms of `docker buildx inspect`'s output ("Platforms: linux/amd64, linux/arm64*"; a star
    marks one set by the user), each once; None when it lists none."""
    out: list[str] = []
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Platforms":
            for word in value.split(","):
                name = word.strip().rstrip("*")
                if name and name not in out:
                    out.append(name)
    return tuple(out) or None


def create_manifest_list(target: str, sources: list[str], env: Mapping[str, str]) -> ManifestList:
    """Join images already in a registry (each REF@sha256:…, one per platform) into one multi-platform
    image, target (a manifest list, pushed by `docker buildx imagetools create`), and read it back from
    the registry: its digest and each platform's. InstallError with the tool's own words when it fails."""
    made = proc.run(
        ["docker", "buildx", "imagetools", "create", "-t", target, *sources], timeout=300, env=env
    )
    if not made.ok:
        why = redact_text((made.stderr or made.stdout or made.error or "").strip())[-600:]
        msg = f"could not push the manifest list {target} (docker buildx imagetools create): {why}"
        raise InstallError(msg)
    return inspect_manifest_list(target, env)


def inspect_manifest_list(ref: str, env: Mapping[str, str]) -> ManifestList:
    """What the registry serves for ref: a manifest list's digest and platforms (one image: one entry)."""
    got = proc.run(["docker", "buildx", "imagetools", "inspect", ref, "--format", "{{json .Manifest}}"],
                   timeout=120, env=env)  # fmt: skip
    try:
        data = json.loads(got.stdout) if got.ok else None
    except ValueError:
        data = None
    if not isinstance(data, dict) or not str(data.get("digest", "")).startswith("sha256:"):
        why = redact_text((got.stderr or got.error or got.stdout or "").strip())[-600:]
        msg = f"could not read {ref} back from its registry (docker buildx imagetools inspect): {why}"
        raise InstallError(msg)
    entries = []
    for m in data.get("manifests") or []:
        plat = m.get("platform") or {}
        name = f"{plat.get('os', '?')}/{plat.get('architecture', '?')}"
        if plat.get("variant"):
            name += f"/{plat['variant']}"
        entries.append((name, str(m.get("digest"))))
    return ManifestList(ref=ref, digest=str(data["digest"]), manifests=tuple(entries))
