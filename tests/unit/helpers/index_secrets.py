"""Index URLs holding a test credential, and the clean pip settings every credentials test starts from (an
autouse fixture): shared by the tests of issue 9, item 4 (test_redact_secrets.py, test_pipconfig_secrets.py,
test_proc_secrets.py, backends/test_venv_secrets.py, backends/test_conda_secrets.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fwsetup.backends import wheel_sources

TOKEN = "tok-9f3c2e71d0b4a85e"  # a test credential
INDEX = f"https://alice:{TOKEN}@mirror.example/simple"
EXTRA = f"https://bob:{TOKEN}x@extra.example/simple"


@pytest.fixture(autouse=True)
def clean_pip_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("FWSETUP_CACHE_DIR", str(tmp_path / "cache"))
    for var in (
        "PIP_FIND_LINKS",
        "PIP_INDEX_URL",
        "PIP_EXTRA_INDEX_URL",
        "PIP_NO_INDEX",
        "UV_INDEX_URL",
        "UV_EXTRA_INDEX_URL",
        "UV_FIND_LINKS",
    ):
        monkeypatch.delenv(var, raising=False)
    wheel_sources.probe_index.cache_clear()
