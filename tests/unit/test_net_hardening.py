"""Issue 21, "every wait bounded" for the network: an index that sends its headers a byte a second.

The whole command runs as a user runs it (`python -m fwsetup install … --dry-run`), against a small real
server on 127.0.0.1 that this test starts: the plan's index probe has a total deadline (pip's timeout,
else 10 s), so the command ends in time with exit 7 and names the index, its credentials redacted.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from slow_server import serve, trickle_headers
from support import FACTS

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TOKEN = "qtok-51c0ffee7d"


def recipe(index: str) -> str:
    return (
        """
name = "slowfw"
title = "SlowFW"
smoke = "slowfw"
"""
        + FACTS
        + f"""
[[builds]]
version = "1.0"
variant = "cpu"
python = ">=3.8"
os = ["linux"]
arch = ["x86_64", "aarch64"]
requirements = ["slowfw==1.0"]
index_url = "{index}"
"""
    )


def test_install_dry_run_against_a_trickling_index_ends_within_its_deadline(tmp_path: Path) -> None:
    with serve(trickle_headers) as base:
        recipes = tmp_path / "recipes"
        recipes.mkdir()
        (recipes / "slowfw.toml").write_text(recipe(base + "/simple"))
        env = {
            **os.environ,
            "PIP_CONFIG_FILE": os.devnull,
            "PIP_TIMEOUT": "3",  # pip's timeout: the probe's total deadline
            "FWSETUP_CACHE_DIR": str(tmp_path / "cache"),
        }
        for var in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_NO_INDEX"):
            env.pop(var, None)
        t0 = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "fwsetup", "--recipes", str(recipes), "install", "slowfw",
             "--allow-insecure", "--python", "3.11", "--env", str(tmp_path / "env"), "--dry-run",
             "--host-profile", str(FIXTURES / "this-machine-cpu.json")],
            capture_output=True, text=True, env=env, timeout=120, check=False,
        )  # fmt: skip
        took = time.monotonic() - t0
    err = " ".join(proc.stderr.split())
    assert proc.returncode == 7, proc.stderr + proc.stdout
    assert took < 20, f"install --dry-run took {took:.1f} s against a 3 s deadline"
    assert f"cannot reach {base}/simple" in err and "timed out after 3 s" in err
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "env").exists()
