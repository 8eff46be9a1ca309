"""Settings: every FWSETUP_* variable (and the user's pip configuration) resolved once, typed and frozen.

README.md ("Environment variables") documents each one; this module is the only place that reads them.
`current()` resolves the process environment and keeps the answer while the environment is unchanged, so a
test that sets a variable (monkeypatch.setenv) is seen without ceremony; `refresh()` forgets it (a pip.conf
edited in between). Code that is handed an environment mapping (a backend's `env`) asks `resolve(env)`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from fwsetup.pipconfig import PipSettings

NVML_TIMEOUT: Final = 15.0  # seconds for the NVML probe (a hung driver: nvidia-smi itself hangs then)
# docker-py's own default is a 60 s connect and 600 s read time-out; a ping that needs more than this is a
# dead socket (doctor then says so instead of waiting).
ENGINE_PING_TIMEOUT: Final = 2.5
# Every other engine call (version, inspect, create, start, logs ...) is bounded as a whole (connect and the
# whole answer, not per read); a build and a smoke container by their own deadlines.
ENGINE_CALL_TIMEOUT: Final = 60.0
BUILD_TIMEOUT: Final = 7200.0
# The smoke test of an image for another architecture, under QEMU user emulation (fwsetup build --platform).
EMULATED_SMOKE_TIMEOUT: Final = 2400.0
_MAX_TIMEOUT: Final = 3600.0
REGISTRY_TTL: Final = 24 * 3600.0  # a day
REGISTRY_TIMEOUT: Final = 2.0

# The variables that can change Settings (a cheap key for current()'s cache): FWSETUP_* and what the cache
# folder and pip's configuration depend on.
_PREFIXES: Final = ("FWSETUP_", "PIP_", "XDG_", "HOME", "VIRTUAL_ENV", "PATH")


@dataclass(frozen=True)
class Override:
    """A probe override that is set: `value` None means "none" (FWSETUP_OVERRIDE_CUDA="")."""

    value: str | None


@dataclass(frozen=True, kw_only=True)
class Settings:
    recipes_dir: Path | None = None  # FWSETUP_RECIPES
    cache_dir: Path | None = None  # FWSETUP_CACHE_DIR, else $XDG_CACHE_HOME/fwsetup, ~/.cache/fwsetup
    no_cache: bool = False  # FWSETUP_NO_CACHE
    env_dir: Path | None = None  # FWSETUP_ENV_DIR
    # FWSETUP_DATA_DIR, else the user data folder by platformdirs' conventions (_data_dir): envs.json, envs/
    data_dir: Path = Path()
    smoke_dirs: tuple[Path, ...] = ()  # FWSETUP_SMOKE_DIR (os.pathsep-separated)
    override_cuda: Override | None = None  # FWSETUP_OVERRIDE_CUDA
    override_driver: Override | None = None  # FWSETUP_OVERRIDE_DRIVER
    override_rocm: Override | None = None  # FWSETUP_OVERRIDE_ROCM: the host ROCm runtime version
    sysfs_root: Path | None = None  # FWSETUP_SYSFS_ROOT: the AMD/Intel probes read /sys, /dev, /opt below it
    jetson_root: Path | None = None  # FWSETUP_JETSON_ROOT: read the Jetson probe's files below it
    nvml_timeout: float = NVML_TIMEOUT  # FWSETUP_NVML_TIMEOUT
    engine_timeout: float = ENGINE_PING_TIMEOUT  # FWSETUP_ENGINE_TIMEOUT
    engine_call_timeout: float = ENGINE_CALL_TIMEOUT  # FWSETUP_ENGINE_CALL_TIMEOUT
    build_timeout: float = BUILD_TIMEOUT  # FWSETUP_BUILD_TIMEOUT
    emulated_smoke_timeout: float = EMULATED_SMOKE_TIMEOUT  # FWSETUP_EMULATED_SMOKE_TIMEOUT
    uv: str | None = None  # FWSETUP_UV
    installer: str = ""  # FWSETUP_INSTALLER: "" (uv, else pip), "uv", "pip"; anything else is refused on use
    conda_tool: str = ""  # FWSETUP_CONDA_TOOL: micromamba | mamba | conda | rattler | a path
    builder: str = ""  # FWSETUP_BUILDER: "" (buildx where it works) | classic | legacy
    build_network: str | None = None  # FWSETUP_BUILD_NETWORK
    # The registries' data at plan time (fwsetup.registry.live): FWSETUP_OFFLINE (never ask an index: the
    # shipped snapshot), FWSETUP_REGISTRY_TTL (seconds a cached index page is used as is), and
    # FWSETUP_REGISTRY_TIMEOUT (seconds a plan waits for the indexes, all together).
    offline: bool = False
    registry_ttl: float = REGISTRY_TTL
    registry_timeout: float = REGISTRY_TIMEOUT
    # The environment these were read from: the user's pip configuration is read from it on first use.
    env: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @cached_property
    def pip(self) -> PipSettings:
        """The user's pip settings (PIP_* variables, pip.conf files), read once."""
        # lazy: pipconfig brings urllib.parse, ~10-40 ms at start-up here (-X importtime)
        from fwsetup.pipconfig import read_pip_settings

        return read_pip_settings(self.env)

    @property
    def buildx_disabled(self) -> bool:
        return self.builder in {"classic", "legacy"}


def _timeout(value: str | None, default: float, maximum: float = _MAX_TIMEOUT) -> float:
    try:
        t = float(value or default)
    except ValueError:
        return default
    return t if 0 < t < maximum else default


def _ttl(value: str | None) -> float:
    """FWSETUP_REGISTRY_TTL: seconds, 0 (always ask again) up to a year; anything else: the default."""
    try:
        t = float(value) if value not in (None, "") else REGISTRY_TTL
    except ValueError:
        return REGISTRY_TTL
    return t if 0 <= t <= 366 * 24 * 3600.0 else REGISTRY_TTL


def _override(env: Mapping[str, str], name: str) -> Override | None:
    return Override(env[name].strip() or None) if name in env else None


def _cache_dir(env: Mapping[str, str]) -> Path | None:
    if env.get("FWSETUP_NO_CACHE"):
        return None
    if env.get("FWSETUP_CACHE_DIR"):
        return Path(env["FWSETUP_CACHE_DIR"])
    if env.get("XDG_CACHE_HOME"):
        return Path(env["XDG_CACHE_HOME"]) / "fwsetup"
    if env.get("HOME"):
        return Path(env["HOME"]) / ".cache" / "fwsetup"
    # no HOME: Path.home() still answers from the password database (not on Windows without a profile)
    return Path.home() / ".cache" / "fwsetup" if os.name != "nt" else None


def _data_dir(env: Mapping[str, str]) -> Path:
    """FWSETUP_DATA_DIR, else the user data folder as platformdirs' user_data_dir("fwsetup") places it
    (platformdirs.unix/macos/windows): $XDG_DATA_HOME/fwsetup when that is an absolute path, else
    ~/.local/share/fwsetup; ~/Library/Application Support/fwsetup on macOS; %LOCALAPPDATA%\\fwsetup on Windows."""
    if env.get("FWSETUP_DATA_DIR"):
        return Path(env["FWSETUP_DATA_DIR"]).expanduser()
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    if sys.platform == "win32":
        local = env.get("LOCALAPPDATA")
        return (Path(local) if local else home / "AppData" / "Local") / "fwsetup"
    if sys.platform == "darwin":
        return home / "Library" / "Application Support" / "fwsetup"
    xdg = env.get("XDG_DATA_HOME", "").strip()
    return (Path(xdg) if xdg and os.path.isabs(xdg) else home / ".local" / "share") / "fwsetup"


def from_env(env: Mapping[str, str]) -> Settings:
    """Settings from an environment mapping (pure apart from pip's configuration files, read lazily)."""
    return Settings(
        recipes_dir=Path(env["FWSETUP_RECIPES"]) if env.get("FWSETUP_RECIPES") else None,
        cache_dir=_cache_dir(env),
        no_cache=bool(env.get("FWSETUP_NO_CACHE")),
        env_dir=Path(env["FWSETUP_ENV_DIR"]) if env.get("FWSETUP_ENV_DIR") else None,
        data_dir=_data_dir(env),
        smoke_dirs=tuple(Path(d) for d in env.get("FWSETUP_SMOKE_DIR", "").split(os.pathsep) if d),
        override_cuda=_override(env, "FWSETUP_OVERRIDE_CUDA"),
        override_driver=_override(env, "FWSETUP_OVERRIDE_DRIVER"),
        override_rocm=_override(env, "FWSETUP_OVERRIDE_ROCM"),
        sysfs_root=Path(env["FWSETUP_SYSFS_ROOT"]) if env.get("FWSETUP_SYSFS_ROOT") else None,
        jetson_root=Path(env["FWSETUP_JETSON_ROOT"]) if env.get("FWSETUP_JETSON_ROOT") else None,
        nvml_timeout=_timeout(env.get("FWSETUP_NVML_TIMEOUT"), NVML_TIMEOUT),
        engine_timeout=_timeout(env.get("FWSETUP_ENGINE_TIMEOUT"), ENGINE_PING_TIMEOUT),
        engine_call_timeout=_timeout(env.get("FWSETUP_ENGINE_CALL_TIMEOUT"), ENGINE_CALL_TIMEOUT),
        build_timeout=_timeout(env.get("FWSETUP_BUILD_TIMEOUT"), BUILD_TIMEOUT, 7 * 86400.0),
        emulated_smoke_timeout=_timeout(
            env.get("FWSETUP_EMULATED_SMOKE_TIMEOUT"), EMULATED_SMOKE_TIMEOUT, 86400.0
        ),
        uv=env.get("FWSETUP_UV") or None,
        installer=env.get("FWSETUP_INSTALLER", "").strip().lower(),
        conda_tool=env.get("FWSETUP_CONDA_TOOL", "").strip(),
        builder=env.get("FWSETUP_BUILDER", "").strip().lower(),
        build_network=env.get("FWSETUP_BUILD_NETWORK") or None,
        offline=env.get("FWSETUP_OFFLINE", "").strip().lower() not in ("", "0", "false", "no", "off"),
        registry_ttl=_ttl(env.get("FWSETUP_REGISTRY_TTL")),
        registry_timeout=_timeout(env.get("FWSETUP_REGISTRY_TIMEOUT"), REGISTRY_TIMEOUT),
        env=dict(env),
    )


# Resolved settings by environment (the variables that matter, see _PREFIXES): the process's own, and the
# copies backends are handed (dict(os.environ) plus a few), each resolved once.
_resolved: dict[tuple[tuple[str, str], ...], Settings] = {}
_MAX_RESOLVED: Final = 16


def _key(env: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in env.items() if k.startswith(_PREFIXES)))


def resolve(env: Mapping[str, str] | None = None) -> Settings:
    """The settings of `env` (default: this process's environment), resolved once per distinct environment,
    so a test that sets a variable (monkeypatch.setenv) is seen on the next call."""
    env = os.environ if env is None else env
    key = _key(env)
    found = _resolved.get(key)
    if found is None:
        if len(_resolved) >= _MAX_RESOLVED:
            _resolved.clear()
        found = _resolved[key] = from_env(env)
    return found


def current() -> Settings:
    """The settings of this process's environment."""
    return resolve(os.environ)


def refresh() -> Settings:
    """Forget every resolved setting (and the pip configuration read with them), then resolve again."""
    _resolved.clear()
    return current()


def registry_login(env: Mapping[str, str]) -> tuple[str | None, str | None, str | None]:
    """(FWSETUP_REGISTRY_USER, FWSETUP_REGISTRY_PASSWORD, FWSETUP_REGISTRY_PASSWORD_FILE) of env: credentials for
    image registries (fwsetup.backends.docker.imageregistry.credentials). Read here like every variable, but kept
    out of Settings: a secret is never part of what settings show or cache."""
    return (
        env.get("FWSETUP_REGISTRY_USER") or None,
        env.get("FWSETUP_REGISTRY_PASSWORD") or None,
        env.get("FWSETUP_REGISTRY_PASSWORD_FILE") or None,
    )
