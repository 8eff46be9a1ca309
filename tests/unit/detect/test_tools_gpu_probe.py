"""detect/tools.probe_gpu_run: the `docker run --gpus all` probe's answer as a closed state, the engine's words
beside it. The docker client is a stand-in script here (the subprocess boundary); the real engine's answer is
tests/integration/docker/test_gpu_runtime_missing.py::test_gpu_probe_container_on_this_engine."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from fwsetup.detect.tools import probe_gpu_run

MOBY_NO_GPU = (
    'docker: Error response from daemon: could not select device driver "" with capabilities: [[gpu]].'
)
RUNC_NO_TRUE = (
    "docker: Error response from daemon: failed to create task for container: OCI runtime create failed: "
    'runc create failed: unable to start container process: exec: "true": executable file not found in $PATH'
)


def _docker(tmp_path: Path, stderr: str, code: int) -> str:
    exe = tmp_path / "docker"
    exe.write_text(f"#!/bin/sh\ncat >&2 <<'EOF'\n{stderr}\nEOF\nexit {code}\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return str(exe)


@pytest.mark.parametrize(
    ("stderr", "code", "answer"),
    [("", 0, ("ok", None)),
     (MOBY_NO_GPU, 125, ("no-gpu-driver", MOBY_NO_GPU)),
     (RUNC_NO_TRUE, 127, ("ok", None)),
     ("Error response from daemon: No such image: x:y", 125,
      ("error", "Error response from daemon: No such image: x:y"))],
)  # fmt: skip
def test_the_probe_answers_with_a_state_and_the_engines_words(
    tmp_path: Path, stderr: str, code: int, answer
) -> None:
    assert probe_gpu_run(_docker(tmp_path, stderr, code), "img:1", timeout=20) == answer
