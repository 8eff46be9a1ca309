"""settings: every FWSETUP_* variable resolved into one typed Settings, and each documented in README.md."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

import fwsetup.pipconfig as pipconfig
from fwsetup import settings

ROOT = Path(__file__).resolve().parents[2]


def test_defaults() -> None:
    s = settings.from_env({"HOME": "/home/u"})
    assert s.recipes_dir is None and s.smoke_dirs == () and s.env_dir is None
    assert s.cache_dir == Path("/home/u/.cache/fwsetup") and not s.no_cache
    assert s.override_cuda is None and s.override_driver is None
    assert (s.nvml_timeout, s.engine_timeout) == (settings.NVML_TIMEOUT, settings.ENGINE_PING_TIMEOUT)
    assert (s.installer, s.conda_tool, s.builder, s.uv, s.build_network) == ("", "", "", None, None)


def test_every_variable() -> None:
    s = settings.from_env({
        "FWSETUP_RECIPES": "/r", "FWSETUP_SMOKE_DIR": f"/a{os.pathsep}{os.pathsep}/b", "FWSETUP_ENV_DIR": "/e",
        "FWSETUP_CACHE_DIR": "/c", "FWSETUP_OVERRIDE_CUDA": "", "FWSETUP_OVERRIDE_DRIVER": " 580.65.06 ",
        "FWSETUP_NVML_TIMEOUT": "30", "FWSETUP_ENGINE_TIMEOUT": "nope", "FWSETUP_INSTALLER": " PIP ",
        "FWSETUP_UV": "/bin/uv", "FWSETUP_CONDA_TOOL": "micromamba", "FWSETUP_BUILDER": "Classic",
        "FWSETUP_BUILD_NETWORK": "host",
    })  # fmt: skip
    assert (
        s.recipes_dir == Path("/r") and s.smoke_dirs == (Path("/a"), Path("/b")) and s.env_dir == Path("/e")
    )
    assert s.cache_dir == Path("/c")
    assert s.override_cuda == settings.Override(None) and s.override_driver == settings.Override("580.65.06")
    assert s.nvml_timeout == 30.0 and s.engine_timeout == settings.ENGINE_PING_TIMEOUT
    assert (s.installer, s.uv, s.conda_tool, s.build_network) == ("pip", "/bin/uv", "micromamba", "host")
    assert s.buildx_disabled


@pytest.mark.parametrize("value", ["0", "-1", "3600", "inf", "nan"])
def test_timeouts_out_of_range_fall_back(value: str) -> None:
    assert settings.from_env({"FWSETUP_NVML_TIMEOUT": value}).nvml_timeout == settings.NVML_TIMEOUT


def test_no_cache_wins() -> None:
    s = settings.from_env({"FWSETUP_NO_CACHE": "1", "FWSETUP_CACHE_DIR": "/c"})
    assert s.no_cache and s.cache_dir is None
    assert settings.from_env({"XDG_CACHE_HOME": "/x", "HOME": "/h"}).cache_dir == Path("/x/fwsetup")


def test_current_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FWSETUP_BUILD_NETWORK", "host")
    first = settings.current()
    assert first.build_network == "host"
    assert settings.current() is first  # resolved once
    monkeypatch.setenv("FWSETUP_BUILD_NETWORK", "none")
    assert settings.current().build_network == "none"
    assert settings.refresh().build_network == "none"


def test_pip_settings_are_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    real = pipconfig.read_pip_settings
    monkeypatch.setattr(pipconfig, "read_pip_settings", lambda env: calls.append(1) or real(env))
    env = {"PIP_CONFIG_FILE": os.devnull, "PIP_INDEX_URL": "https://example.org/simple", "FWSETUP_UV": "x"}
    s = settings.resolve(env)
    assert (
        s.pip.index_url == "https://example.org/simple"
        and s.pip.index_url
        and settings.resolve(dict(env)) is s
    )
    assert calls == [1]


def test_every_variable_read_in_src_is_a_setting_and_documented() -> None:
    readme = (ROOT / "README.md").read_text()
    src = ROOT / "src" / "fwsetup"
    used: set[str] = set()
    for path in src.rglob("*.py"):
        text = path.read_text()
        names = set(re.findall(r"\bFWSETUP_[A-Z_]+\b", text))
        used |= names
        if path.name != "settings.py":
            # nothing outside settings.py reads one: no os.environ.get("FWSETUP_…") / env["FWSETUP_…"]
            assert not re.search(r"""(?:environ|env)(?:\.get\(|\[)\s*["']FWSETUP_""", text), path
    settings_text = (src / "settings.py").read_text()
    for name in sorted(used):
        assert name in settings_text, f"{name} is not read by settings.py"
        assert f"| `{name}` |" in readme, f"{name} is not in README.md's table"
