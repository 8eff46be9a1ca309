"""detect/docker_messages.py: one test per message of the Docker engine, runc and the NVIDIA container runtime
that fwsetup reads (each a real message, its source named), and what anything else reads as."""

from __future__ import annotations

import pytest

from fwsetup.detect.docker_messages import is_build_error, run_failure


@pytest.mark.parametrize(
    ("text", "code"),
    [
        # docker/cli#2425 (and this machine's engine: tests/integration/docker/test_gpu_runtime_missing.py)
        ('docker: Error response from daemon: could not select device driver "" with capabilities: [[gpu]].',
         "no-gpu-driver"),
        # the docker SDK's APIError text for the same (400 Client Error ... ("could not select device driver ..."))
        ('400 Client Error for http+docker://localhost/v1.41/containers/abc/start: Bad Request ("could not select '
         'device driver "" with capabilities: [[gpu]]")', "no-gpu-driver"),
        # runc: the command is not in the image (the container itself was made)
        ('docker: Error response from daemon: failed to create task for container: failed to create shim task: OCI '
         'runtime create failed: runc create failed: unable to start container process: exec: "true": executable '
         'file not found in $PATH: unknown.', "no-entrypoint"),
        # older runc
        ('OCI runtime create failed: container_linux.go:349: starting container process caused "exec: \\"true\\": '
         'stat true: no such file or directory": unknown', "no-entrypoint"),
        # libnvidia-container (NVIDIA/nvidia-docker#1648, NVIDIA/nvidia-container-toolkit#154)
        ('OCI runtime create failed: container_linux.go:380: starting container process caused: process_linux.go:545: '
         'container init caused: Running hook #0:: error running hook: exit status 1, stdout: , stderr: '
         'nvidia-container-cli: initialization error: nvml error: driver not loaded: unknown', "nvidia"),
        ('nvidia-container-cli: requirement error: unsatisfied condition: cuda>=12.4, please update your driver to '
         'a newer version, or use an earlier cuda container: unknown', "nvidia"),
        ("Error response from daemon: No such image: fwsetup/none:latest", "other"),
        ("", "other"),
    ],
)  # fmt: skip
def test_each_engine_message_reads_as_its_code(text: str, code: str) -> None:
    assert run_failure(text) == code


@pytest.mark.parametrize(
    ("line", "failed"),
    [
        # BuildKit's plain progress (moby/buildkit util/progress/progressui/printer.go)
        ('#7 ERROR: process "/bin/sh -c exit 3" did not complete successfully: exit code: 3', True),
        # the buildx client's last word
        (
            'ERROR: failed to solve: process "/bin/sh -c exit 3" did not complete successfully: exit code: 3',
            True,
        ),
        ("#7 0.412 collecting numpy", False),
        ("#7 DONE 0.9s", False),
    ],
)
def test_a_build_line_that_states_the_failure_is_told_from_progress(line: str, failed: bool) -> None:
    assert is_build_error(line) is failed
