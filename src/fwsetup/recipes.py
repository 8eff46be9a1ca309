"""Recipe types (the data in recipes/*.toml) and their loader.

Recipes are data, never code. The loader validates every file on load: an error names the file, the key
and what was expected. Compatibility facts (CUDA -> minimum driver, ...) live in data/ (see compat.py).

TOML layout: the Recipe fields at top level, a `[facts]` table, an optional `[build_defaults]` table merged
into every `[[builds]]` entry (the entry's own keys win; tables such as `conda`/`docker`/`env` are merged
one level deep), and `[[builds]]` entries. An entry may give `versions = [...]` instead of `version`: it
expands to one build per version, and "{version}" in requirements, conda.packages, docker.base_image and
docker.official_image is replaced by that build's version.

Where recipes come from: the ones shipped with fwsetup, overlaid by a user directory (`--recipes DIR` or
FWSETUP_RECIPES): a user recipe with the same name replaces the shipped one.
"""

from __future__ import annotations

import contextlib
import re
import sys
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Final, Literal

import msgspec

from fwsetup.errors import RecipeError, UsageError
from fwsetup.redact import has_credentials

Status = Literal["active", "maintenance", "legacy", "retired", "cloud-only"]
AcceleratorName = Literal["cpu", "cuda", "mps", "rocm", "xpu"]  # xpu: Intel GPUs (SYCL / Level Zero)


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


def _check_text(value: Any, key: str, problems: _Problems) -> None:
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


class _S(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class Facts(_S, frozen=True, kw_only=True):
    """The comparison-table facts people choose a framework by (FRAMEWORKS.md)."""

    developer: str
    language: str  # implementation language(s)
    platforms: list[str]
    interfaces: list[str]
    autograd: str
    pretrained: str
    cnn: str
    rnn: str
    multi_gpu: str
    multi_node: str
    status: Status
    status_note: str = ""
    license: str = ""
    homepage: str = ""
    successor: str | None = None


class CondaSpec(_S, frozen=True, kw_only=True):
    channels: list[str] = []
    packages: list[str] = []  # conda MatchSpecs, e.g. "pytorch=2.5.1", "cuda-version=12.6"
    cuda_version: str | None = None  # the cuda-version pin (conda-forge)
    # PEP 508 requirements for the environment.yml `pip:` section, installed after the conda packages.
    pip: list[str] = []
    # The `__cuda` virtual package the solver assumes (conda's CONDA_OVERRIDE_CUDA): the highest CUDA the
    # host's driver supports (HostProfile nvidia.cuda_driver_version). The planner fills it in the Plan;
    # None = no NVIDIA driver (packages that need `__cuda` cannot be solved).
    cuda_driver: str | None = None
    # The `__cuda_arch` virtual package (conda CEP 46): the lowest compute capability of the GPUs the plan uses,
    # so a solver that implements it refuses packages without kernels for them. Filled in by the planner.
    cuda_arch: str | None = None


class DockerSpec(_S, frozen=True, kw_only=True):
    base_image: str | None = None  # e.g. nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04
    official_image: str | None = None  # the framework's own image, used where the recipe prefers it
    use_official: bool = False
    system_packages: list[str] = []


AptDistro = Literal["debian", "ubuntu"]
_APT_RELEASE_RE: Final = re.compile(r"^\d{1,2}(\.\d{2})?$")
_APT_COMPONENTS: Final = ("main", "contrib", "non-free", "universe", "multiverse", "restricted")


class AptRelease(_S, frozen=True, kw_only=True):
    """One distribution release whose archive packages the framework (read from its Packages index)."""

    distro: AptDistro
    release: str  # os-release VERSION_ID: "11", "20.04"
    codename: str = ""  # "bullseye", "focal"
    component: str = "main"  # the archive component that must be enabled (universe, multiverse, ...)
    packages: list[str]  # what `apt-get install` takes (Debian package names)
    python: str  # the release's python3, which the packaged module is built for ("3.9")
    package_version: str = ""  # the version the archive serves
    source: str = ""  # the Packages index it was read from


class AptSpec(_S, frozen=True, kw_only=True):
    """The system-package route (`--method apt`): the releases whose archive has the framework."""

    releases: list[AptRelease] = []


class Build(_S, frozen=True, kw_only=True):
    version: str
    variant: str  # cpu | cu118 | cu126 | cu130 | mps | metal | ...
    accelerator: AcceleratorName = "cpu"
    cuda: str | None = None  # "12.6"
    cudnn: str | None = None
    python: str = ">=3.10"  # PEP 440 specifier
    os: list[str] = msgspec.field(default_factory=lambda: ["linux"])
    arch: list[str] = msgspec.field(default_factory=lambda: ["x86_64"])
    min_driver: str | None = None  # Linux; derived from data/cuda-drivers.toml when None
    min_driver_windows: str | None = None
    compute_capabilities: list[str] = []  # SASS targets, "8.0" = sm_80
    ptx: list[str] = []  # PTX targets the driver can JIT for newer GPUs
    cpu_features: list[str] = []  # required instruction sets (e.g. "avx")
    # ROCm builds (accelerator = "rocm"): the ROCm release it was built with ("7.2"), the LLVM targets its
    # HIP code objects cover (data/rocm.toml), and, for builds that use the host's ROCm installation rather
    # than bundling it (TensorFlow, JAX's -local plugins), the host ROCm versions it needs (PEP 440, ">=7.0,<8").
    rocm: str | None = None
    gfx_targets: list[str] = []
    rocm_runtime: str | None = None
    # XPU builds (accelerator = "xpu"): the Intel GPU families it supports (data/xpu.toml: arc-a, arc-b, max)
    xpu_families: list[str] = []
    requirements: list[str] = []  # PEP 508
    index_url: str | None = None  # the framework's own index (preferred over PyPI for its packages)
    extra_index_urls: list[str] = []
    env: dict[str, str] = {}
    # The framework's backend in this build, where it runs on several (Keras 3: tensorflow, jax, torch):
    # what `--backend NAME` picks, what the plan and the smoke test carry. A recipe names one in every
    # installable build or in none.
    backend: str | None = None
    multi_gpu: bool = True
    conda: CondaSpec | None = None
    docker: DockerSpec | None = None
    apt: AptSpec | None = None
    installable: bool = True
    notes: str = ""
    # NVIDIA Jetson builds (JetPack wheels, l4t containers): the L4T (Jetson Linux) releases they run on, as
    # release prefixes ("35" = any R35.x, "36.4" = R36.4.x). Empty: not a Jetson build; a CUDA build without
    # it is a server (x86_64 / SBSA aarch64) build, never planned on a Jetson.
    l4t: list[str] = []
    # Set by fwsetup, never in a recipe file: the release whose curated facts this build inherits (a release
    # newer than the recipe, read from an index: fwsetup.plan.inherit).
    facts_from: str | None = None
    facts_variant: str | None = None  # ... and of which variant, where it is another (a new +cu140 variant)


HostSystem = Literal["linux", "darwin", "windows", "wsl"]


class Alternative(_S, frozen=True, kw_only=True):
    """A sentence of advice that holds on some hosts only (`os`: linux, darwin, windows, or wsl for Linux
    under WSL2); a plain string in `alternatives` holds everywhere."""

    text: str
    os: list[HostSystem]


def alternative_text(a: str | Alternative) -> str:
    return a if isinstance(a, str) else a.text


def alternative_applies(a: str | Alternative, system: str | None, *, wsl: bool = False) -> bool:
    """Whether advice `a` is for this host (an unknown system gets only the advice that holds everywhere)."""
    if isinstance(a, str):
        return True
    return system in a.os or (wsl and "wsl" in a.os)


class Recipe(_S, frozen=True, kw_only=True):
    name: str  # "pytorch"
    title: str  # "PyTorch"
    aliases: list[str] = []
    import_name: str | None = None  # the module doctor imports ("torch")
    distribution: str | None = None  # the PyPI distribution doctor reads metadata of
    smoke: str | None = None  # smoke script name under fwsetup/smoke/ ("pytorch")
    facts: Facts
    never_install: list[str] = []  # PyPI names that are not the real project (placeholders)
    # what still works / what replaced it (sentences; a table {text, os} holds on those hosts only)
    alternatives: list[str | Alternative] = []
    sources: list[str] = []
    builds: list[Build] = []
    path: str = ""  # set by the loader


# ---------------------------------------------------------------------------------------------------------
# Loading and validation

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
_TOML_LINE_RE: Final = re.compile(r"^(?P<msg>.*?)\s*\(at line (?P<line>\d+), column (?P<col>\d+)\)$")
_TYPE_WORDS: Final = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "array": "an array",
    "object": "a table",
    "null": "nothing",
}


def _hint() -> str:
    return "Fix the file, then check it with `fwsetup recipes validate DIR`."


@dataclass(frozen=True)
class _Origin:
    """Where an expanded build came from, to name keys as the file spells them."""

    entry: int  # index of the [[builds]] entry in the file
    version: str | None  # the `versions` item this build was expanded from
    own_keys: frozenset[str]
    default_keys: frozenset[str]

    def key(self, field: str = "", rest: str = "") -> str:
        if field == "version" and self.version is not None:
            return f"builds[{self.entry}].versions"
        if field and field not in self.own_keys and field in self.default_keys:
            where = f"build_defaults.{field}{rest} (merged into builds[{self.entry}])"
        else:
            where = f"builds[{self.entry}]" + (f".{field}" if field else "") + rest
        return where


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return repr(value)


def _struct_fields(cls: type) -> dict[str, Any]:
    return {f.name: f.type for f in msgspec.structs.fields(cls)}


def _type_at(root: type, segments: list[str]) -> Any:
    """The annotation at a msgspec path below `root` (for enum choices and unknown-key suggestions)."""
    import typing

    tp: Any = root
    for seg in segments:
        if seg.startswith("["):
            args = typing.get_args(tp)
            tp = args[-1] if args else Any
            continue
        # unwrap Optional[X]
        members = [a for a in typing.get_args(tp) if a is not type(None)]
        if members and isinstance(members[0], type) and issubclass(members[0], msgspec.Struct):
            tp = members[0]
        if not (isinstance(tp, type) and issubclass(tp, msgspec.Struct)):
            return Any
        tp = _struct_fields(tp).get(seg, Any)
    members = [a for a in typing.get_args(tp) if a is not type(None)]
    if members and isinstance(members[0], type) and issubclass(members[0], msgspec.Struct):
        return members[0]
    return tp


def _split_path(path: str) -> list[str]:
    # ".builds[3].conda.packages[0]" -> ["builds", "[3]", "conda", "packages", "[0]"]
    return [s for s in re.findall(r"\[[^\]]*\]|[^.\[\]]+", path) if s]


def _lookup(raw: Any, segments: list[str]) -> Any:
    cur = raw
    for seg in segments:
        try:
            if seg.startswith("["):
                cur = cur[int(seg[1:-1])] if seg[1:-1].isdigit() else None
            else:
                cur = cur[seg]
        except (KeyError, IndexError, TypeError):
            return msgspec.UNSET
    return cur


def _explain_validation(exc: msgspec.ValidationError, root: type, raw: Any) -> tuple[list[str], str]:
    """msgspec's message -> (path segments of the offending key, what was expected)."""
    import typing

    from fwsetup.validation import split_error, type_words

    msg, path = split_error(exc)
    segments = _split_path(path)
    if mm := re.match(r"Object contains unknown field `(.+)`", msg):
        name = mm.group(1)
        import difflib

        tp = _type_at(root, segments)
        known = list(_struct_fields(tp)) if isinstance(tp, type) and issubclass(tp, msgspec.Struct) else []
        close = difflib.get_close_matches(name, known, n=1)
        what = "unknown key" + (f"; did you mean `{close[0]}`?" if close else "")
        if known:
            what += f" (expected one of: {', '.join(k for k in known if k != 'path')})"
        return [*segments, name], what
    if mm := re.match(r"Object missing required field `(.+)`", msg):
        return [*segments, mm.group(1)], "missing: this key is required"
    value = _lookup(raw, segments)
    got = "" if value is msgspec.UNSET else f", got {_describe(value)}"
    if mm := re.match(r"Expected `(.+?)`, got `(.+?)`", msg):
        return segments, f"expected {type_words(mm.group(1), _TYPE_WORDS)}{got}"
    if msg.startswith("Invalid enum value"):
        choices = typing.get_args(_type_at(root, segments))
        return segments, f"expected one of {', '.join(map(repr, choices))}{got}"
    return segments, msg[:1].lower() + msg[1:] + got


class _Problems:
    """Problems of one file; the same problem in several builds expanded from one `versions` list is
    reported once, naming the versions."""

    def __init__(self, file: str) -> None:
        self.file = file
        self._found: dict[tuple[str, str], list[str]] = {}
        self._control: list[str] = []  # keys whose text holds a control character (reported once)

    def add_control(self, key: str, what: str) -> None:
        self._control.append(key)
        self._found.setdefault((key, what), [])

    def add(self, key: str, what: str, version: str | None = None) -> None:
        if any(key == k or key.startswith((f"{k}.", f"{k}[")) for k in self._control):
            return  # the same text: its control character was the problem reported
        versions = self._found.setdefault((key, what), [])
        if version is not None:
            versions.append(version)

    @property
    def items(self) -> list[str]:
        out = []
        for (key, what), versions in self._found.items():
            where = key
            if versions:
                plural = "s" if len(versions) > 1 else ""
                where += f" (for version{plural} {', '.join(map(repr, versions))} of `versions`)"
            out.append(f"{self.file}: {where}: {what}")
        return out


MAX_RECIPE_BYTES = 4 << 20  # the largest shipped recipe is ~60 KiB
MAX_RECIPE_DEPTH = 32  # a recipe nests 4 deep (builds -> docker -> env); no key of one nests 32 deep


def read_toml(path: Path) -> dict[str, Any]:
    """A recipe file's TOML: a regular file of at most MAX_RECIPE_BYTES (fwsetup.inputfile: a FIFO, a device,
    a folder named *.toml is refused without blocking), UTF-8 with or without a byte order mark, nested at most
    MAX_RECIPE_DEPTH levels (a "TOML bomb" is a RecipeError, not a RecursionError); RecipeError (exit 2)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib
    from fwsetup.inputfile import InputFileError, read_input

    try:
        data = read_input(path, limit=MAX_RECIPE_BYTES)
    except InputFileError as exc:
        msg = f"{path}: cannot read recipe: {exc}."
        raise RecipeError(msg, hint=_hint()) from None
    try:
        # A byte order mark (Windows editors write one) is not TOML's, and says nothing here: skipped.
        doc = tomllib.loads(data.decode("utf-8").removeprefix("\ufeff"))
    except UnicodeDecodeError as exc:
        msg = f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})."
        raise RecipeError(msg, hint=_hint()) from None
    except RecursionError:
        msg = f"{path}: nested too deeply to parse (arrays or inline tables inside each other, hundreds deep); no recipe key nests more than {MAX_RECIPE_DEPTH} levels."
        raise RecipeError(msg, hint=_hint()) from None
    except tomllib.TOMLDecodeError as exc:
        text = str(exc)
        m = _TOML_LINE_RE.match(text)
        where = f"{path}, line {m.group('line')}, column {m.group('col')}" if m else str(path)
        what = m.group("msg") if m else text
        msg = f"{where}: TOML syntax error: {what}."
        raise RecipeError(msg, hint=_hint()) from None
    _check_depth(doc, path)
    return doc


def _check_depth(doc: dict[str, Any], path: Path) -> None:
    """No value nested deeper than MAX_RECIPE_DEPTH (walked without recursion)."""
    stack: list[tuple[object, str, int]] = [(doc, "", 0)]
    while stack:
        obj, key, depth = stack.pop()
        if depth > MAX_RECIPE_DEPTH:
            shown = key if len(key) <= 80 else key[:79] + "…"
            msg = f"{path}: {shown}: nested deeper than {MAX_RECIPE_DEPTH} levels; no recipe key is."
            raise RecipeError(msg, hint=_hint())
        if isinstance(obj, dict):
            stack.extend((v, f"{key}.{k}" if key else str(k), depth + 1) for k, v in obj.items())
        elif isinstance(obj, list):
            stack.extend((v, f"{key}[{i}]", depth + 1) for i, v in enumerate(obj))


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


def _expand_builds(raw: dict[str, Any], problems: _Problems) -> list[tuple[dict[str, Any], _Origin]]:
    defaults = raw.get("build_defaults", {})
    if not isinstance(defaults, dict):
        problems.add("build_defaults", f"expected a table ([build_defaults]), got {_describe(defaults)}")
        defaults = {}
    entries = raw.get("builds", [])
    if not isinstance(entries, list):
        problems.add("builds", f"expected an array of tables ([[builds]]), got {_describe(entries)}")
        return []
    out: list[tuple[dict[str, Any], _Origin]] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            problems.add(f"builds[{i}]", f"expected a table ([[builds]]), got {_describe(entry)}")
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
            out.append((merged, _Origin(i, None, own, dkeys)))
            continue
        origin = _Origin(i, None, own, dkeys)
        if "version" in merged:
            problems.add(origin.key("versions"), "expected either `version` or `versions`, not both")
            continue
        if not isinstance(versions, list) or not versions or not all(isinstance(v, str) for v in versions):
            problems.add(
                origin.key("versions"),
                f"expected a non-empty array of version strings, got {_describe(versions)}",
            )
            continue
        for v in versions:
            build = {**merged, "version": v}
            _substitute(build)
            out.append((build, _Origin(i, v, own, dkeys)))
    return out


# Cached parsers (packaging imported on first use): recipes repeat the same strings many times.
@cache
def parse_specifier(text: str) -> Any:
    from packaging.specifiers import SpecifierSet

    return SpecifierSet(text)


@cache
def parse_version(text: str) -> Any:
    from packaging.version import Version

    return Version(text)


@cache
def parse_requirement(text: str) -> Any:
    from packaging.requirements import Requirement

    return Requirement(text)


def canonical_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _credentials_problem(url: str) -> str:
    from fwsetup.redact import redact_url

    return (
        f"{redact_url(url)!r} holds credentials (user:password@, a ?token=/key=/sig=… query value or a conda /t/<token>/): expected a URL without them; "
        "keep credentials in your own pip/conda configuration, keyring or .netrc"
    )


def insecure_sources(b: Build) -> list[tuple[str, str]]:
    """The sources of build `b` that are not https package indexes (or local folders): each (source, why).
    The planner refuses a build with any unless the user passes --allow-insecure."""
    from packaging.requirements import InvalidRequirement

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


def _check_build(b: Build, origin: _Origin, problems: _Problems, never_install: Mapping[str, str]) -> None:
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


_GFX_RE: Final = re.compile(r"^gfx[0-9]{1,2}[0-9a-f]{2}$")
_ROCM_RE: Final = re.compile(r"^\d{1,2}\.\d{1,2}(\.\d{1,3})?$")
XPU_FAMILIES: Final = ("arc-a", "arc-b", "max", "flex", "integrated")


def _check_rocm_xpu(b: Build, key: Any, add: Any) -> None:
    """The ROCm / XPU fields: only on builds of that accelerator, and well-formed."""
    from packaging.specifiers import InvalidSpecifier

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


def _convert(data: dict[str, Any], cls: type[Any], report: Any) -> Any:
    """msgspec.convert, reporting every problem rather than the first: the offending key is dropped and
    the conversion tried again (a dropped key falls back to its default, or is reported missing)."""
    import copy

    try:
        return msgspec.convert(data, cls)
    except msgspec.ValidationError:
        data = copy.deepcopy(data)  # below, failing keys are dropped one by one: work on a copy
    dropped: set[tuple[str, ...]] = set()
    for _ in range(64):
        try:
            return msgspec.convert(data, cls)
        except msgspec.ValidationError as exc:
            segments, what = _explain_validation(exc, cls, data)
        # Drop the key that failed (a whole array for a bad item), then retry.
        cut: list[str] = []
        for seg in segments:
            if seg.startswith("["):
                break
            cut.append(seg)
        if what.startswith("missing") and tuple(cut) in dropped:
            return None  # the key was reported already and dropped by us
        report(segments, what)
        if what.startswith("missing") or not cut:
            return None
        parent: Any = data
        for seg in cut[:-1]:
            parent = parent.get(seg) if isinstance(parent, dict) else None
        if not isinstance(parent, dict) or cut[-1] not in parent:
            return None
        del parent[cut[-1]]
        dropped.add(tuple(cut))
    return None


def parse_recipe(
    raw: dict[str, Any], *, path: str, never_install: Mapping[str, str] | None = None
) -> tuple[Recipe | None, list[str]]:
    """Validate one recipe's TOML data. Returns the Recipe (None when it cannot be built) and the
    problems found, each "FILE: KEY: what was expected"."""
    problems = _Problems(path)
    # Every string first: one with a control character is reported for that alone.
    _check_text({k: v for k, v in raw.items() if k != "path"}, "", problems)
    raw = dict(raw)
    expanded = _expand_builds(raw, problems)
    raw.pop("build_defaults", None)
    raw["builds"] = []
    raw.pop("path", None)
    top = _convert(raw, Recipe, lambda seg, what: problems.add(_join(seg) or "(top level)", what))
    own_never = {canonical_name(n): (top.name if top else "this") for n in (top.never_install if top else [])}
    all_never = {**(never_install or {}), **own_never}
    builds: list[Build] = []
    origins: list[_Origin] = []
    seen: dict[tuple[str, str, str, str], str] = {}
    for data, origin in expanded:
        b = _convert(
            data,
            Build,
            lambda seg, what, origin=origin: problems.add(
                origin.key(seg[0] if seg else "", _join(seg[1:], lead=True)), what, origin.version
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


def _check_backends(builds: list[Build], origins: list[_Origin], problems: _Problems) -> None:
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


def _join(segments: list[str], *, lead: bool = False) -> str:
    out = ""
    for seg in segments:
        out += seg if seg.startswith("[") else f".{seg}"
    return out if lead else out.lstrip(".")


def _raise(problems: list[str]) -> None:
    if len(problems) == 1:
        raise RecipeError(problems[0], hint=_hint())
    msg = f"{len(problems)} problems in recipes:\n" + "\n".join(f"  {p}" for p in problems)
    raise RecipeError(msg, hint=_hint())


def load_recipe_file(path: str | Path, *, never_install: Mapping[str, str] | None = None) -> Recipe:
    p = Path(path)
    recipe, problems = parse_recipe(read_toml(p), path=str(p), never_install=never_install)
    if problems or recipe is None:
        _raise(problems)
    assert recipe is not None
    return recipe


@dataclass(frozen=True)
class RecipeSet:
    """All recipes, by name, with alias lookup."""

    recipes: dict[str, Recipe]
    aliases: dict[str, str]  # alias -> recipe name

    def __iter__(self):
        return iter(self.recipes.values())

    def __len__(self) -> int:
        return len(self.recipes)

    def names(self) -> list[str]:
        return list(self.recipes)

    def resolve(self, name: str) -> str | None:
        key = name.strip().lower()
        if key in self.recipes:
            return key
        return self.aliases.get(key)

    def get(self, name: str) -> Recipe:
        found = self.resolve(name)
        if found is not None:
            return self.recipes[found]
        import difflib

        choices = {**{n: n for n in self.recipes}, **self.aliases}
        key = name.strip().lower()
        close = difflib.get_close_matches(key, list(choices), n=3, cutoff=0.6)
        if close:  # the closest, and others only as close
            best = difflib.SequenceMatcher(None, key, close[0]).ratio()
            close = [c for c in close if difflib.SequenceMatcher(None, key, c).ratio() >= best - 0.05]
        names = list(dict.fromkeys(choices[c] for c in close))
        msg = f"unknown framework {name!r}."
        hint = (
            f"Did you mean {' or '.join(names)}? " if names else ""
        ) + "`fwsetup recipes list` shows them all."
        raise UsageError(msg, hint=hint)


def _recipe_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        msg = f"recipes directory {directory} does not exist or is not a directory."
        raise RecipeError(msg, hint="Point --recipes (or FWSETUP_RECIPES) at a folder of *.toml recipes.")
    # Every *.toml entry, files or not: one that is not a regular file (a folder, a FIFO) is reported by
    # read_toml, never skipped in silence (nor read, which would block on a FIFO).
    return sorted(directory.glob("*.toml"))


def _never_install_of(raws: Iterable[tuple[Path, dict[str, Any]]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for path, raw in raws:
        names = raw.get("never_install")
        name = raw.get("name")
        owner = name if isinstance(name, str) else path.stem
        if isinstance(names, list):
            for n in names:
                if isinstance(n, str):
                    out.setdefault(canonical_name(n), owner)
    return out


def _collect(
    dirs: tuple[Path, ...], context: tuple[Path, ...] = ()
) -> tuple[dict[str, Recipe], dict[str, str], list[str]]:
    """Read every *.toml of `dirs` (later dirs replace earlier recipes of the same name). The never_install
    lists of the recipes in `context` count too (a user's recipe may not install the shipped placeholders)."""
    problems: list[str] = []
    raws: list[tuple[Path, dict[str, Any]]] = []
    for d in dirs:
        for path in _recipe_files(d):
            try:
                raws.append((path, read_toml(path)))
            except RecipeError as exc:
                problems.append(exc.message)
    others: list[tuple[Path, dict[str, Any]]] = []
    for d in context:
        for path in _recipe_files(d) if d.is_dir() and d not in dirs else []:
            with contextlib.suppress(RecipeError):  # reported when that folder itself is validated
                others.append((path, read_toml(path)))
    never = {**_never_install_of(others), **_never_install_of(raws)}
    by_name: dict[str, Recipe] = {}
    for path, raw in raws:
        recipe, found = parse_recipe(raw, path=str(path), never_install=never)
        problems.extend(found)
        if recipe is not None:
            prev = by_name.get(recipe.name)
            if prev is not None and Path(prev.path).parent == path.parent:
                problems.append(
                    f"{path}: name: {recipe.name!r} is also the name in {prev.path}: expected a unique name"
                )
            by_name[recipe.name] = recipe
    aliases: dict[str, str] = {}
    for recipe in by_name.values():
        for alias in recipe.aliases:
            other = aliases.get(alias) or (alias if alias in by_name and alias != recipe.name else None)
            if other and other != recipe.name:
                problems.append(
                    f"{recipe.path}: aliases: {alias!r} already names the {other!r} recipe: "
                    "expected a unique alias"
                )
                continue
            aliases[alias] = recipe.name
    return dict(sorted(by_name.items())), aliases, problems


def validate_dir(directory: str | Path) -> tuple[list[Recipe], list[str]]:
    """Every recipe of `directory` and every problem found (for `fwsetup recipes validate`)."""
    try:
        recipes, _, problems = _collect((Path(directory).resolve(),), (shipped_recipes_dir().resolve(),))
    except RecipeError as exc:
        return [], [exc.message]
    return list(recipes.values()), problems


@cache
def _load(dirs: tuple[Path, ...]) -> RecipeSet:
    cache_file = _cache_file(dirs)
    cached = _read_cache(cache_file)
    if cached is not None:
        return cached
    recipes, aliases, problems = _collect(dirs)
    if problems:
        _raise(problems)
    result = RecipeSet(recipes=recipes, aliases=aliases)
    _write_cache(cache_file, result)
    return result


# -- the validated recipes, cached on disk ----------------------------------------------------------------
# Parsing and validating every TOML file costs ~0.2 s, more than the rest of `fwsetup plan`; the validated
# result is kept in one msgpack file per set of inputs (each recipe file's path, size and mtime, and this
# module's own), so an edited recipe, or a new fwsetup, is validated again. FWSETUP_NO_CACHE=1 turns it off.


class _CacheDoc(msgspec.Struct, frozen=True):
    recipes: list[Recipe]
    aliases: dict[str, str]


def cache_dir() -> Path | None:
    from fwsetup.settings import current

    return current().cache_dir


def _cache_file(dirs: tuple[Path, ...]) -> Path | None:
    import hashlib

    base = cache_dir()
    if base is None:
        return None
    h = hashlib.sha256()
    try:
        for p in [Path(__file__), *(f for d in dirs for f in _recipe_files(d))]:
            st = p.stat()
            h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    except (OSError, RecipeError):
        return None
    return base / f"recipes-{h.hexdigest()[:24]}.msgpack"


def _read_cache(path: Path | None) -> RecipeSet | None:
    if path is None:
        return None
    try:
        doc = msgspec.msgpack.decode(path.read_bytes(), type=_CacheDoc)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None
    return RecipeSet(recipes={r.name: r for r in doc.recipes}, aliases=dict(doc.aliases))


def _write_cache(path: Path | None, result: RecipeSet) -> None:
    if path is None:
        return
    import os

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Keep a few (shipped recipes alone, with a user folder, ...); older inputs are never read again.
        olds = sorted(path.parent.glob("recipes-*.msgpack"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in olds[3:]:
            old.unlink(missing_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(
            msgspec.msgpack.encode(_CacheDoc(recipes=list(result.recipes.values()), aliases=result.aliases))
        )
        tmp.replace(path)
    except OSError:
        pass  # a cache that cannot be written is only slower


def shipped_recipes_dir() -> Path:
    from fwsetup.resources import recipes_dir

    return recipes_dir()


def load_recipes(user_dir: str | Path | None = None) -> RecipeSet:
    """The shipped recipes, overlaid by `user_dir` (default: --recipes / FWSETUP_RECIPES). Cached."""
    if user_dir is None:
        from fwsetup.ui import recipes_dir_override

        user_dir = recipes_dir_override()
    dirs = [shipped_recipes_dir()]
    if user_dir:
        dirs.append(Path(user_dir).expanduser().resolve())
    return _load(tuple(dirs))
