"""Validation of one recipe's TOML data: parse_recipe returns the Recipe or every problem, each
"FILE: KEY: what was expected".

TOML layout: the Recipe fields at top level, a `[facts]` table, an optional `[build_defaults]` table merged
into every `[[builds]]` entry (the entry's own keys win; tables such as `conda`/`docker`/`env` are merged
one level deep), and `[[builds]]` entries. An entry may give `versions = [...]` instead of `version`: it
expands to one build per version, and "{version}" in requirements, conda.packages, docker.base_image and
docker.official_image is replaced by that build's version.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any, Final

import msgspec

from fwsetup.recipes.parsers import canonical_name, parse_requirement, parse_specifier, parse_version
from fwsetup.recipes.problems import Origin, Problems, convert, describe, join_key
from fwsetup.recipes.schema import Build, Recipe
from fwsetup.redact import has_credentials, redact_url

# Names that end up in a Dockerfile: an image reference (registry/name:tag@digest) and a Debian package
# name (Debian Policy 5.6.1: lower-case letters, digits, + - .; at least two characters), with an
# optional =version. Anything else (spaces, ;, $, newlines) is refused, so no recipe text becomes shell.
IMAGE_REF_RE = re.compile(
    r"[a-z0-9][a-z0-9._/:-]*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?"
)
DEB_PACKAGE_RE = re.compile(r"[a-z0-9][a-z0-9+.-]+(?:=[A-Za-z0-9.+:~-]+)?")
# A build variant becomes part of an image tag (fwsetup/NAME:VERSION-VARIANT-pyX.Y), a bake target and a
# folder name: a Docker tag's characters, never "/" or "..".
VARIANT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# An environment variable name (POSIX: letters, digits and _, not starting with a digit): it is written
# unquoted into a Dockerfile ENV instruction and a shell `export`.
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
ENV_VALUE_MAX = 4096
# Variables a recipe may not set: they make the dynamic loader, the shell or Python load other code, or
# send the installers to other indexes / trust other certificates (the recipe's index_url says which
# index; the user's own configuration says the rest).
_HIJACK_ENV: Final = {
    "PATH": "the search path for programs",
    "PYTHONPATH": "Python's module search path",
    "PYTHONHOME": "where Python finds its standard library",
    "PYTHONSTARTUP": "a file Python runs at start-up",
    "PYTHONUSERBASE": "Python's user site-packages",
    "PYTHONEXECUTABLE": "the interpreter Python reports",
    "PYTHONINSPECT": "Python's interactive mode",
    "BASH_ENV": "a file every bash script runs first",
    "ENV": "a file every sh runs first",
    "GCONV_PATH": "where glibc loads character-set modules from",
    "VIRTUAL_ENV": "which environment is active",
    "SSL_CERT_FILE": "the certificates TLS trusts",
    "SSL_CERT_DIR": "the certificates TLS trusts",
    "REQUESTS_CA_BUNDLE": "the certificates TLS trusts",
    "CURL_CA_BUNDLE": "the certificates TLS trusts",
}
_HIJACK_PREFIXES: Final = {
    "LD_": "what the dynamic loader loads into every process",
    "DYLD_": "what the macOS dynamic loader loads into every process",
    "PIP_": "pip's index and trust settings",
    "UV_": "uv's index and trust settings",
}


def hijack_env(name: str) -> str | None:
    """What setting `name` would change, when a recipe may not set it (LD_PRELOAD, PATH, PIP_INDEX_URL...)."""
    upper = name.upper()
    if upper in _HIJACK_ENV:
        return _HIJACK_ENV[upper]
    return next((why for prefix, why in _HIJACK_PREFIXES.items() if upper.startswith(prefix)), None)


_CONTROL_CATEGORIES: Final = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
_CONTROL_NAMES: Final = {
    0: "NUL",
    9: "tab",
    10: "newline",
    11: "vertical tab",
    12: "form feed",
    13: "carriage return",
    27: "escape",
    127: "delete",
}


def control_character(text: str) -> str | None:
    """The first control or line-breaking character of `text` ("U+000A (newline) at position 3"), or None.
    Such characters never appear in a recipe string: rendered into a Dockerfile, a YAML or shell file they
    could start a new line (a new instruction)."""
    if text.isprintable():
        return None
    for i, ch in enumerate(text):
        if unicodedata.category(ch) in _CONTROL_CATEGORIES:
            code = ord(ch)
            name = _CONTROL_NAMES.get(code) or unicodedata.name(ch, "").lower() or "a control character"
            return f"U+{code:04X} ({name}) at position {i}"
    return None


def _toml_key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else repr(name)


def _check_text(value: Any, key: str, problems: Problems) -> None:
    """Every string of the file, table keys included: no control characters."""
    if isinstance(value, str):
        found = control_character(value)
        if found:
            problems.add_control(
                key or "(top level)",
                f"expected one line of text without control characters, got {value!r} ({found})",
            )
    elif isinstance(value, dict):
        for k, v in value.items():
            sub = f"{key}.{_toml_key(str(k))}" if key else _toml_key(str(k))
            found = control_character(str(k))
            if found:
                problems.add_control(sub, f"expected a key without control characters ({found})")
                continue
            _check_text(v, sub, problems)
    elif isinstance(value, list):
        for j, item in enumerate(value):
            _check_text(item, f"{key}[{j}]", problems)


KNOWN_OS: Final = ("linux", "darwin", "windows")
KNOWN_ARCH: Final = ("x86_64", "aarch64", "arm64")
VERSION_PLACEHOLDER: Final = "{version}"

_NAME_RE: Final = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_CC_RE: Final = re.compile(r"^\d{1,2}\.\d$")
_CUDA_RE: Final = re.compile(r"^\d{1,2}\.\d{1,2}(\.\d{1,3})?$")
_FEATURE_RE: Final = re.compile(r"^[a-z0-9_.]+$")
# "cu126", "cuda12", "torch-cu126": a variant that names a CUDA version.
CUDA_VARIANT_RE: Final = re.compile(r"(?:^|[-_+.])cu(?:da)?(\d{2,3})(?:$|[-_+.])")
_URL_PREFIXES: Final = ("https://", "http://", "file://")
_URL_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>`\\]+")


def _substitute(build: dict[str, Any]) -> None:
    version = build.get("version")
    if not isinstance(version, str):
        return

    def sub(v: Any) -> Any:
        return v.replace(VERSION_PLACEHOLDER, version) if isinstance(v, str) else v

    if isinstance(build.get("requirements"), list):
        build["requirements"] = [sub(r) for r in build["requirements"]]
    conda = build.get("conda")
    if isinstance(conda, dict) and isinstance(conda.get("packages"), list):
        build["conda"] = {**conda, "packages": [sub(p) for p in conda["packages"]]}
    docker = build.get("docker")
    if isinstance(docker, dict):
        build["docker"] = {
            **docker,
            **{k: sub(docker[k]) for k in ("base_image", "official_image") if k in docker},
        }


def _expand_builds(raw: dict[str, Any], problems: Problems) -> list[tuple[dict[str, Any], Origin]]:
    defaults = raw.get("build_defaults", {})
    if not isinstance(defaults, dict):
        problems.add("build_defaults", f"expected a table ([build_defaults]), got {describe(defaults)}")
        defaults = {}
    entries = raw.get("builds", [])
    if not isinstance(entries, list):
        problems.add("builds", f"expected an array of tables ([[builds]]), got {describe(entries)}")
        return []
    out: list[tuple[dict[str, Any], Origin]] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            problems.add(f"builds[{i}]", f"expected a table ([[builds]]), got {describe(entry)}")
            continue
        merged: dict[str, Any] = dict(defaults)
        for key, value in entry.items():
            base = merged.get(key)
            merged[key] = {**base, **value} if isinstance(base, dict) and isinstance(value, dict) else value
        versions = merged.pop("versions", None)
        own = frozenset(entry)
        dkeys = frozenset(defaults)
        if versions is None:
            _substitute(merged)
            out.append((merged, Origin(i, None, own, dkeys)))
            continue
        origin = Origin(i, None, own, dkeys)
        if "version" in merged:
            problems.add(origin.key("versions"), "expected either `version` or `versions`, not both")
            continue
        if not isinstance(versions, list) or not versions or not all(isinstance(v, str) for v in versions):
            problems.add(
                origin.key("versions"),
                f"expected a non-empty array of version strings, got {describe(versions)}",
            )
            continue
        for v in versions:
            build = {**merged, "version": v}
            _substitute(build)
            out.append((build, Origin(i, v, own, dkeys)))
    return out


def _credentials_problem(url: str) -> str:
    return (
        f"{redact_url(url)!r} holds credentials (user:password@, a ?token=/key=/sig=… query value or a conda /t/<token>/): expected a URL without them; "
        "keep credentials in your own pip/conda configuration, keyring or .netrc"
    )


def insecure_sources(b: Build) -> list[tuple[str, str]]:
    """The sources of build `b` that are not https package indexes (or local folders): each (source, why).
    The planner refuses a build with any unless the user passes --allow-insecure."""
    from packaging.requirements import InvalidRequirement  # on first use: see recipes.parsers

    out: list[tuple[str, str]] = []
    plain = "plain http: anyone on the network path can change the packages"
    for url in [*([b.index_url] if b.index_url else []), *b.extra_index_urls]:
        if url.lower().startswith("http://"):
            out.append((url, plain))
    for channel in b.conda.channels if b.conda else []:
        if channel.lower().startswith("http://"):
            out.append((channel, plain))
    for text in [*b.requirements, *(b.conda.pip if b.conda else [])]:
        if "@" not in text:
            continue
        try:
            url = parse_requirement(text).url
        except InvalidRequirement:  # the loader reports it
            continue
        if url:
            why = "a direct URL: it bypasses the package indexes"
            out.append((text, why + ("; " + plain if url.lower().startswith("http://") else "")))
    return out


def _check_build(b: Build, origin: Origin, problems: Problems, never_install: Mapping[str, str]) -> None:
    # packaging on first use, as in recipes.parsers: validated recipes usually come from the cache
    from packaging.requirements import InvalidRequirement
    from packaging.specifiers import InvalidSpecifier
    from packaging.version import InvalidVersion

    key = origin.key

    def add(k: str, what: str) -> None:
        problems.add(k, what, origin.version)

    try:
        parse_version(b.version)
        if b.version != b.version.strip() or " " in b.version:
            raise InvalidVersion(b.version)
    except InvalidVersion:
        add(key("version"), f"expected a version such as '2.5.1', got {b.version!r}")
    for name in ("facts_from", "facts_variant"):
        if getattr(b, name) is not None:
            add(key(name), "set by fwsetup for releases newer than the recipe; not a recipe key")
    if not VARIANT_RE.fullmatch(b.variant) or ".." in b.variant:
        add(
            key("variant"),
            "expected a variant name such as 'cu126' (letters, digits, '.', '_' and '-', at most 64, no '..': "
            f"it becomes part of an image tag and a folder name), got {b.variant!r}",
        )
    try:
        parse_specifier(b.python)
    except InvalidSpecifier:
        add(key("python"), f"expected a PEP 440 specifier such as '>=3.10,<3.14', got {b.python!r}")
    for release in b.l4t:
        if not re.fullmatch(r"\d{2}(\.\d{1,2}){0,2}", release):
            add(key("l4t"), f"expected L4T release prefixes such as '35' or '36.4', got {release!r}")
    if b.l4t and b.accelerator != "cuda":
        add(key("l4t"), "only a CUDA build (accelerator = 'cuda') is a Jetson build")
    if b.accelerator == "cuda":
        if not b.cuda:
            add(key("cuda"), "missing: a build with accelerator = 'cuda' needs its CUDA version, e.g. '12.6'")
    else:
        for field in ("cuda", "min_driver", "min_driver_windows", "compute_capabilities", "ptx"):
            if getattr(b, field):
                add(
                    key(field),
                    f"only meaningful for accelerator = 'cuda' (this build's is {b.accelerator!r})",
                )
    _check_rocm_xpu(b, key, add)
    if b.cuda and not _CUDA_RE.match(b.cuda):
        add(key("cuda"), f"expected a CUDA version such as '12.6', got {b.cuda!r}")
    if b.variant == "cpu" and b.accelerator != "cpu":
        add(key("accelerator"), f"expected 'cpu' for variant 'cpu', got {b.accelerator!r}")
    if m := CUDA_VARIANT_RE.search(b.variant):
        if b.accelerator != "cuda":
            add(key("accelerator"), f"expected 'cuda' for variant {b.variant!r}, got {b.accelerator!r}")
        elif b.cuda and _CUDA_RE.match(b.cuda):
            major, minor = b.cuda.split(".")[:2]
            if m.group(1) not in (major, major + minor):
                add(
                    key("variant"),
                    f"expected a variant that matches cuda = {b.cuda!r} (cu{major}{minor} or cuda{major}), "
                    f"got {b.variant!r}",
                )
    for field in ("compute_capabilities", "ptx"):
        for j, cc in enumerate(getattr(b, field)):
            if not _CC_RE.match(cc):
                add(key(field, f"[{j}]"), f"expected a compute capability such as '8.6', got {cc!r}")
    for field in ("min_driver", "min_driver_windows"):
        value = getattr(b, field)
        if value is not None:
            try:
                parse_version(value)
            except InvalidVersion:
                add(key(field), f"expected a driver version such as '525.60.13', got {value!r}")
    for j, system in enumerate(b.os):
        if system not in KNOWN_OS:
            add(key("os", f"[{j}]"), f"expected one of {', '.join(map(repr, KNOWN_OS))}, got {system!r}")
    for j, arch in enumerate(b.arch):
        if arch not in KNOWN_ARCH:
            add(key("arch", f"[{j}]"), f"expected one of {', '.join(map(repr, KNOWN_ARCH))}, got {arch!r}")
    for j, feat in enumerate(b.cpu_features):
        if not _FEATURE_RE.match(feat):
            add(key("cpu_features", f"[{j}]"), f"expected a lower-case CPU flag such as 'avx2', got {feat!r}")
    pip_lists = [("requirements", b.requirements), ("conda", b.conda.pip if b.conda else [])]
    for field, texts in pip_lists:
        rest = ".pip" if field == "conda" else ""
        for j, text in enumerate(texts):
            where = key(field, f"{rest}[{j}]")
            try:
                req = parse_requirement(text)
            except InvalidRequirement as exc:
                add(
                    where,
                    f"expected a PEP 508 requirement such as 'torch==2.5.1', got {text!r} "
                    f"({str(exc).splitlines()[0]})",
                )
                continue
            if req.url and has_credentials(req.url):
                add(where, _credentials_problem(req.url))
            owner = never_install.get(canonical_name(req.name))
            if owner:
                add(
                    where,
                    f"names {req.name!r}, which the {owner!r} recipe lists in never_install "
                    "(that PyPI name is not the real project): expected a different package",
                )
    urls = [("index_url", "", b.index_url)] if b.index_url is not None else []
    urls += [("extra_index_urls", f"[{j}]", url) for j, url in enumerate(b.extra_index_urls)]
    for field, rest, url in urls:
        if not (url.lower().startswith(_URL_PREFIXES) and _URL_RE.fullmatch(url)):
            add(
                key(field, rest),
                f"expected an https:// URL, a file:// URL (a local folder) or an http:// URL (used only with --allow-insecure), without spaces, got {url!r}",
            )
        elif has_credentials(url):
            add(key(field, rest), _credentials_problem(url))
    if b.conda is not None:
        for j, channel in enumerate(b.conda.channels):
            if has_credentials(channel):
                add(key("conda", f".channels[{j}]"), _credentials_problem(channel))
    for name, value in b.env.items():
        where = key("env", f".{_toml_key(name)}")
        if not ENV_NAME_RE.fullmatch(name):
            add(
                where,
                f"expected an environment variable name (letters, digits and _, not starting with a digit), got {name!r}",
            )
        elif why := hijack_env(name):
            add(
                where,
                f"a recipe may not set {name}: it changes {why}; expected a framework setting such as KERAS_BACKEND",
            )
        if len(value) > ENV_VALUE_MAX:
            add(where, f"expected a value of at most {ENV_VALUE_MAX} characters, got {len(value)}")
    if b.docker is not None:
        # These go into a Dockerfile (FROM, and an apt-get RUN line): only plain names, never shell text.
        for field in ("base_image", "official_image"):
            value = getattr(b.docker, field)
            if value is not None and not IMAGE_REF_RE.fullmatch(value):
                add(
                    key("docker", f".{field}"),
                    f"expected an image reference such as 'nvidia/cuda:12.6.3-runtime-ubuntu24.04', got {value!r}",
                )
        for j, pkg in enumerate(b.docker.system_packages):
            if not DEB_PACKAGE_RE.fullmatch(pkg):
                add(
                    key("docker", f".system_packages[{j}]"),
                    f"expected a Debian package name such as 'libgomp1' (optionally '=VERSION'), got {pkg!r}",
                )
    for j, rel in enumerate(b.apt.releases if b.apt is not None else []):
        where = key("apt", f".releases[{j}]")
        if not _APT_RELEASE_RE.fullmatch(rel.release):
            add(
                f"{where}.release",
                f"expected an os-release VERSION_ID such as '11' or '20.04', got {rel.release!r}",
            )
        if rel.component not in _APT_COMPONENTS:
            add(
                f"{where}.component",
                f"expected one of {', '.join(map(repr, _APT_COMPONENTS))}, got {rel.component!r}",
            )
        if not rel.packages:
            add(f"{where}.packages", "expected at least one Debian package name")
        for k, pkg in enumerate(rel.packages):
            if not DEB_PACKAGE_RE.fullmatch(pkg):
                add(
                    f"{where}.packages[{k}]",
                    f"expected a Debian package name such as 'python3-caffe' (optionally '=VERSION'), got {pkg!r}",
                )
        if not re.fullmatch(r"3\.\d{1,2}", rel.python):
            add(
                f"{where}.python", f"expected the release's python3 version such as '3.9', got {rel.python!r}"
            )
    has_docker = b.docker is not None and bool(b.docker.base_image or b.docker.official_image)
    has_apt = b.apt is not None and bool(b.apt.releases)
    if b.installable and not (b.requirements or (b.conda and b.conda.packages) or has_docker or has_apt):
        add(
            key(),
            "an installable build needs `requirements`, `conda.packages`, a docker image or `apt.releases` "
            "(or `installable = false`)",
        )


_APT_RELEASE_RE: Final = re.compile(r"^\d{1,2}(\.\d{2})?$")
_APT_COMPONENTS: Final = ("main", "contrib", "non-free", "universe", "multiverse", "restricted")
_GFX_RE: Final = re.compile(r"^gfx[0-9]{1,2}[0-9a-f]{2}$")
_ROCM_RE: Final = re.compile(r"^\d{1,2}\.\d{1,2}(\.\d{1,3})?$")
XPU_FAMILIES: Final = ("arc-a", "arc-b", "max", "flex", "integrated")


def _check_rocm_xpu(b: Build, key: Any, add: Any) -> None:
    """The ROCm / XPU fields: only on builds of that accelerator, and well-formed."""
    from packaging.specifiers import InvalidSpecifier  # on first use: see recipes.parsers

    if b.accelerator == "rocm":
        if not b.rocm:
            add(key("rocm"), "missing: a build with accelerator = 'rocm' needs its ROCm version, e.g. '6.4'")
    else:
        for field in ("rocm", "gfx_targets", "rocm_runtime"):
            if getattr(b, field):
                add(
                    key(field),
                    f"only meaningful for accelerator = 'rocm' (this build's is {b.accelerator!r})",
                )
    if b.accelerator != "xpu" and b.xpu_families:
        add(
            key("xpu_families"),
            f"only meaningful for accelerator = 'xpu' (this build's is {b.accelerator!r})",
        )
    if b.rocm and not _ROCM_RE.match(b.rocm):
        add(key("rocm"), f"expected a ROCm version such as '6.4', got {b.rocm!r}")
    for j, gfx in enumerate(b.gfx_targets):
        if not _GFX_RE.match(gfx):
            add(key("gfx_targets", f"[{j}]"), f"expected an LLVM target such as 'gfx942', got {gfx!r}")
    if b.rocm_runtime is not None:
        try:
            parse_specifier(b.rocm_runtime)
        except InvalidSpecifier:
            add(
                key("rocm_runtime"),
                f"expected a PEP 440 specifier such as '>=7.0,<8', got {b.rocm_runtime!r}",
            )
    for j, fam in enumerate(b.xpu_families):
        if fam not in XPU_FAMILIES:
            add(
                key("xpu_families", f"[{j}]"),
                f"expected one of {', '.join(map(repr, XPU_FAMILIES))}, got {fam!r}",
            )


def parse_recipe(
    raw: dict[str, Any], *, path: str, never_install: Mapping[str, str] | None = None
) -> tuple[Recipe | None, list[str]]:
    """Validate one recipe's TOML data. Returns the Recipe (None when it cannot be built) and the
    problems found, each "FILE: KEY: what was expected"."""
    problems = Problems(path)
    # Every string first: one with a control character is reported for that alone.
    _check_text({k: v for k, v in raw.items() if k != "path"}, "", problems)
    raw = dict(raw)
    expanded = _expand_builds(raw, problems)
    raw.pop("build_defaults", None)
    raw["builds"] = []
    raw.pop("path", None)
    top = convert(raw, Recipe, lambda seg, what: problems.add(join_key(seg) or "(top level)", what))
    own_never = {canonical_name(n): (top.name if top else "this") for n in (top.never_install if top else [])}
    all_never = {**(never_install or {}), **own_never}
    builds: list[Build] = []
    origins: list[Origin] = []
    seen: dict[tuple[str, str, str, str], str] = {}
    for data, origin in expanded:
        b = convert(
            data,
            Build,
            lambda seg, what, origin=origin: problems.add(
                origin.key(seg[0] if seg else "", join_key(seg[1:], lead=True)), what, origin.version
            ),
        )
        if b is None:
            continue
        _check_build(b, origin, problems, all_never)
        for system in b.os:
            for arch in b.arch:
                ident = (b.version, b.variant, system, arch)
                if ident in seen and seen[ident] != origin.key():
                    problems.add(
                        origin.key(),
                        f"duplicates {seen[ident]} (version {b.version}, variant {b.variant}, "
                        f"{system} {arch}): expected each build once",
                    )
                seen.setdefault(ident, origin.key())
        builds.append(b)
        origins.append(origin)
    if top is not None:
        if not _NAME_RE.match(top.name):
            problems.add("name", f"expected a lower-case name such as 'pytorch', got {top.name!r}")
        for j, alias in enumerate(top.aliases):
            if alias != alias.lower() or not alias.strip():
                problems.add(f"aliases[{j}]", f"expected a lower-case name, got {alias!r}")
        if top.smoke is not None and not _NAME_RE.match(top.smoke):
            problems.add("smoke", f"expected the name of a smoke script such as 'pytorch', got {top.smoke!r}")
        _check_backends(builds, origins, problems)
    if problems.items or top is None:
        return None, problems.items
    return msgspec.structs.replace(top, builds=builds, path=path), []


def _check_backends(builds: list[Build], origins: list[Origin], problems: Problems) -> None:
    """`backend`: a lower-case name, and in every installable build of a recipe that names one in any (a
    plan of such a recipe always says which backend it runs on)."""
    if not any(b.backend for b in builds):
        return
    for b, origin in zip(builds, origins, strict=True):
        if b.backend is not None and not _NAME_RE.match(b.backend):
            problems.add(origin.key("backend"), f"expected a lower-case name such as 'jax', got {b.backend!r}",
                         origin.version)  # fmt: skip
        elif b.backend is None and b.installable:
            problems.add(
                origin.key("backend"),
                "expected the build's backend: the recipe's other builds name theirs (one of "
                f"{', '.join(sorted({x.backend for x in builds if x.backend}))})",
                origin.version,
            )
