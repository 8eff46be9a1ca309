"""`fwsetup sync` with a real framework (issue 23): PyTorch installed from this machine's wheels and PyPI, its lock
taken alone (the copied .fwsetup/), a wheelhouse made of exactly the locked files, then rebuilt into a new path
with --offline and an empty uv cache (every file must come from the wheelhouse): the same installed files (every
RECORD identical), smoke-tested, listed by `fwsetup envs`.

Run with --run-network (the install reads PyPI; the torch wheel comes from pip's find-links on this machine).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fwsetup.backends.pylock import locked_requirements, read_locked
from fwsetup.backends.wheel_sources import local_wheels
from fwsetup.pipconfig import read_pip_settings

pytestmark = [pytest.mark.network, pytest.mark.slow]

PY = f"{sys.version_info[0]}.{sys.version_info[1]}"


def fwsetup(
    *args: str, env: dict[str, str] | None = None, timeout: float = 1500
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fwsetup", *args], capture_output=True, text=True,
                          timeout=timeout, check=False, env=env)  # fmt: skip


# What an installer writes about the install itself (PEP 376 INSTALLER, PEP 376/610 REQUESTED and direct_url.json,
# uv's uv_cache.json: where and when its cache got the wheel), not files of the package: left out of the comparison.
INSTALLER_FILES = ("INSTALLER", "REQUESTED", "direct_url.json", "uv_cache.json")


def records(env: Path) -> dict[str, list[str]]:
    """Every installed distribution's RECORD lines (file, sha256, size), by .dist-info name, sorted."""
    out = {}
    for d in env.glob("lib/python*/site-packages/*.dist-info"):
        lines = (d / "RECORD").read_text().splitlines()
        out[d.name] = sorted(ln for ln in lines if ln.split(",")[0].rsplit("/", 1)[-1] not in INSTALLER_FILES)
    return out


def test_pytorch_rebuilt_offline_from_a_wheelhouse_has_identical_files(tmp_path: Path) -> None:
    settings = read_pip_settings()
    if "torch" not in local_wheels(list(settings.find_links), PY):
        pytest.skip(
            "no torch wheel in the find-links of this machine's pip configuration (PyTorch's index is not reachable here)"
        )
    data = {**os.environ, "FWSETUP_DATA_DIR": str(tmp_path / "data")}
    a = tmp_path / "a"
    cp = fwsetup("install", "pytorch", "--cpu", "--python", PY, "--env", str(a), "--json", env=data)
    assert cp.returncode == 0, cp.stderr[-4000:]

    # the lock alone, as it would travel to another machine
    lock = tmp_path / "lock"
    subprocess.run(["cp", "-a", str(a / ".fwsetup"), str(lock)], check=True)
    # a wheelhouse of exactly the locked files (pip checks each against the lock's sha256)
    reqs = tmp_path / "locked.txt"
    reqs.write_text(locked_requirements(read_locked((lock / "pylock.toml").read_text()), "test"))
    wh = tmp_path / "wheelhouse"
    dl = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--require-hashes", "-d", str(wh),
                         "-r", str(reqs)], capture_output=True, text=True, timeout=1200, check=False)  # fmt: skip
    assert dl.returncode == 0, dl.stderr[-4000:]

    # no index, no find-links of the machine's, an empty uv cache: the wheelhouse or nothing
    offline = {k: v for k, v in data.items() if not k.startswith(("PIP_", "UV_"))}
    offline.update(PIP_CONFIG_FILE=os.devnull, UV_CACHE_DIR=str(tmp_path / "uv-cache"))
    b = tmp_path / "b"
    cp = fwsetup(
        "sync", str(b), "--from-lock", str(lock), "--wheelhouse", str(wh), "--offline", "--json", env=offline
    )
    assert cp.returncode == 0, cp.stderr[-4000:]
    res = json.loads(cp.stdout)
    assert res["status"] == "synced" and res["smoke"]["ok"] is True and res["smoke_status"] == "passed"
    ra, rb = records(a), records(b)
    assert "torch" in " ".join(ra) and ra == rb, sorted(set(ra) ^ set(rb))
    imp = subprocess.run([str(b / "bin" / "python"), "-c", "import torch; print(torch.ones(2).sum().item())"],
                         capture_output=True, text=True, timeout=300, env={"PATH": "/usr/bin:/bin"})  # fmt: skip
    assert imp.stdout.strip() == "2.0", imp.stderr
    listed = fwsetup("envs", "--json", "--no-size", env=data)
    assert {str(a), str(b)} <= {e["path"] for e in json.loads(listed.stdout)["envs"]}
