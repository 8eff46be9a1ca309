"""The conda form of a Plan: the specs the solver gets, the `__cuda` virtual package it assumes, and the
environment.yml a person can read (and feed to micromamba/mamba/conda themselves).

Pure: no I/O, no solver. The backend (conda.py) executes what this module describes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fwsetup.errors import UsageError
from fwsetup.plan import Plan
from fwsetup.recipes.schema import CondaSpec
from fwsetup.recipes.validate import control_character

# A MatchSpec's package name: an optional "channel::" prefix, then the name (conda's name characters).
_NAME = re.compile(r"^\s*(?:[^\s:]+::)?([A-Za-z0-9_][A-Za-z0-9_.\-]*)")


def spec_name(spec: str) -> str:
    """The package name of a conda MatchSpec ("pytorch=2.5.1=*cuda*" -> "pytorch")."""
    m = _NAME.match(spec)
    return m.group(1).lower() if m else spec.strip().lower()


@dataclass(frozen=True, kw_only=True)
class CondaEnv:
    """What to create: channels in priority order, MatchSpecs, the pip section and the virtual CUDA."""

    name: str
    channels: tuple[str, ...]
    specs: tuple[str, ...]
    pip: tuple[str, ...] = ()
    variables: Mapping[str, str] = field(default_factory=dict)
    # The `__cuda` virtual package version the solver is told about (CONDA_OVERRIDE_CUDA semantics:
    # None = no CUDA driver, so packages that depend on `__cuda` are not installable).
    cuda_driver: str | None = None
    cuda_source: str = ""  # a phrase: where cuda_driver came from, for messages
    # The `__cuda_arch` virtual package (conda CEP 46: the lowest compute capability of the GPUs; absent when
    # `__cuda` is): solvers that implement it refuse packages built without kernels for it.
    cuda_arch: str | None = None
    header: tuple[str, ...] = ()  # comment lines for environment.yml

    def solver_env(self) -> dict[str, str]:
        """The variables conda, mamba and micromamba read for the virtual CUDA packages. CONDA_OVERRIDE_CUDA_ARCH
        is CEP 46's: conda reads it where the nvidia-virtual-packages plugin is installed; a solver without
        `__cuda_arch` support ignores it (the plan's own compute-capability check still applies). Without
        `__cuda` there is no `__cuda_arch` (CEP 46)."""
        out = {"CONDA_OVERRIDE_CUDA": self.cuda_driver or ""}
        if self.cuda_driver and self.cuda_arch:
            out["CONDA_OVERRIDE_CUDA_ARCH"] = self.cuda_arch
        return out

    def digest_data(self) -> dict[str, Any]:
        """Everything that changes the environment: same data, same environment (the no-op check)."""
        return {
            "channels": list(self.channels),
            "specs": list(self.specs),
            "pip": list(self.pip),
            "variables": dict(sorted(self.variables.items())),
            "cuda_driver": self.cuda_driver,
            # only where known, so that the digest of an environment made before __cuda_arch is unchanged
            **({"cuda_arch": self.cuda_arch} if self.cuda_arch else {}),
        }


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pip_requirements(requirements: list[str], conda_packages: list[str]) -> list[str]:
    """The plan's pip requirements that the conda packages do not already provide (by name): a build that
    mixes takes its CUDA libraries from conda and the framework from pip (TensorFlow 2.10 on Windows)."""
    have = {_canonical(spec_name(s)) for s in conda_packages}
    out = []
    for req in requirements:
        m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req)
        if m and _canonical(m.group(1)) in have:
            continue
        out.append(req)
    return out


def virtual_cuda(plan: Plan, env: Mapping[str, str]) -> tuple[str | None, str]:
    """The `__cuda` version to solve with, and where it came from.

    The caller's CONDA_OVERRIDE_CUDA wins, as it does for conda itself (an empty value means "no CUDA");
    otherwise the host profile's driver (the planner copies nvidia.cuda_driver_version into
    plan.conda.cuda_driver). fwsetup never lets the solver probe libcuda on its own: the plan may be for
    another machine (--host-profile), and the answer must be the one the plan was made with.
    """
    if "CONDA_OVERRIDE_CUDA" in env:
        value = env["CONDA_OVERRIDE_CUDA"].strip()
        return (value or None), "CONDA_OVERRIDE_CUDA"
    driver = plan.conda.cuda_driver if plan.conda is not None else None
    if driver:
        return driver, "the host profile's NVIDIA driver"
    return None, "the host profile has no NVIDIA driver"


def virtual_cuda_arch(plan: Plan, env: Mapping[str, str], cuda: str | None) -> str | None:
    """The `__cuda_arch` version to solve with (CEP 46): None when there is no `__cuda`; the caller's
    CONDA_OVERRIDE_CUDA_ARCH wins (empty: none); otherwise the plan's (the lowest compute capability of the
    GPUs it uses)."""
    if cuda is None:
        return None
    if "CONDA_OVERRIDE_CUDA_ARCH" in env:
        return env["CONDA_OVERRIDE_CUDA_ARCH"].strip() or None
    return plan.conda.cuda_arch if plan.conda is not None else None


def conda_env_for(plan: Plan, env: Mapping[str, str], *, name: str) -> CondaEnv:
    """The conda environment a Plan asks for; UsageError when the plan has no conda form."""
    if plan.status != "ok":
        msg = f"the plan for {plan.framework} was refused; there is nothing to create."
        raise UsageError(msg, hint="Run `fwsetup plan` to see why.")
    spec = plan.conda or CondaSpec()
    pip = list(spec.pip) or _pip_requirements(plan.requirements, spec.packages)
    if not spec.packages and not pip:
        what = f"{plan.framework} {plan.version or ''} ({plan.variant or 'any variant'})".replace("  ", " ")
        msg = f"the recipe has no conda build for {what}: no conda packages and no pip requirements."
        raise UsageError(msg, hint="Use --method venv, or add a conda table to the recipe's build.")
    # Only pip packages (pytorch.toml: the `pytorch` channel stopped at 2.5, so its wheels go into the
    # conda environment): conda still provides the interpreter, from conda-forge unless the recipe says.
    channels = list(spec.channels) or (["conda-forge"] if not spec.packages else [])
    if not channels:
        msg = f"the conda build of {plan.framework} {plan.version or ''} names no channel."
        raise UsageError(msg, hint='Add channels = ["conda-forge"] (or your mirror) to its conda table.')

    specs: list[str] = []
    names = {spec_name(s) for s in spec.packages}
    if plan.python and "python" not in names:
        specs.append(f"python={plan.python}")
    specs.extend(spec.packages)
    # conda-forge pins the CUDA minor of every CUDA package through the `cuda-version` metapackage.
    if spec.cuda_version and "cuda-version" not in names and plan.accelerator == "cuda":
        specs.append(f"cuda-version={spec.cuda_version}")
    if pip and "pip" not in names:
        specs.append("pip")
    pip_lines = [f"--extra-index-url {url}" for url in plan.index_urls] + pip if pip else []

    cuda, source = virtual_cuda(plan, env)
    arch = virtual_cuda_arch(plan, env, cuda)
    title = f"{plan.framework} {plan.version or ''} ({plan.variant or '?'}) for Python {plan.python or '?'}"
    if cuda:
        solve_line = f"solve with CONDA_OVERRIDE_CUDA={cuda} (__cuda from {source})"
        if arch:
            solve_line += (
                f" and CONDA_OVERRIDE_CUDA_ARCH={arch} (__cuda_arch, CEP 46: the GPU's compute capability)"
            )
    else:
        solve_line = f'solve with CONDA_OVERRIDE_CUDA="" (no __cuda: {source})'
    header = [f"fwsetup: {title}", solve_line]
    return CondaEnv(
        name=name,
        channels=tuple(channels),
        specs=tuple(specs),
        pip=tuple(pip_lines),
        variables=dict(plan.env),
        cuda_driver=cuda,
        cuda_source=source,
        cuda_arch=arch,
        header=tuple(header),
    )


# -- environment.yml --------------------------------------------------------------------------------------

# A plain YAML scalar needs no quotes when it starts with a letter/digit/underscore and holds none of the
# characters that mean something to YAML (": ", " #", flow brackets...). Everything else is written as a
# double-quoted scalar with escapes.
_PLAIN = re.compile(r"^[A-Za-z0-9_./][A-Za-z0-9_.\-=<>,*!~+/ ]*$")
_YAML_WORDS = frozenset({"yes", "no", "true", "false", "null", "on", "off", "y", "n", "~"})


def _scalar(value: str) -> str:
    # YAML 1.1 reads 0x1f, 0o17, 1_000, 1:30, .inf, .nan as numbers: anything that starts like a number
    # (or is one of the special floats) is quoted.
    looks_numeric = re.match(r"[-+.]?[0-9]", value) is not None or value.lower().lstrip("+-") in (
        ".inf",
        ".nan",
    )
    if (
        _PLAIN.match(value)
        and not value.endswith(" ")
        and value.lower() not in _YAML_WORDS
        and not looks_numeric
    ):
        return value
    return _quoted(value)


def _quoted(value: str) -> str:
    """A YAML double-quoted scalar: printable ASCII as is, everything else as \\uXXXX / \\UXXXXXXXX
    (not json.dumps: its surrogate pairs for characters beyond U+FFFF are not read back by YAML parsers)."""
    out = []
    for ch in value:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 0x20 <= code < 0x7F:
            out.append(ch)
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return '"' + "".join(out) + '"'


def _one_line(text: str) -> str:
    """A comment's text: every control or line-breaking character (YAML breaks lines at U+0085, U+2028
    too) as a space."""
    if control_character(text) is None:
        return text
    return "".join(" " if control_character(ch) else ch for ch in text)


def render_environment_yml(env: CondaEnv) -> str:
    lines = [f"# {_one_line(h)}" for h in env.header]
    lines.append(f"name: {_scalar(env.name)}")
    lines.append("channels:")
    lines.extend(f"  - {_scalar(c)}" for c in env.channels)
    lines.append("dependencies:")
    lines.extend(f"  - {_scalar(s)}" for s in env.specs)
    if env.pip:
        lines.append("  - pip:")
        lines.extend(f"      - {_scalar(r)}" for r in env.pip)
    if env.variables:
        lines.append("variables:")
        lines.extend(f"  {_scalar(k)}: {_quoted(v)}" for k, v in sorted(env.variables.items()))
    return "\n".join(lines) + "\n"
