"""What the Docker engine's and CLI's own words mean. Text that fwsetup did not write, matched here only, each
pattern from a real message (its source beside it; tests/unit/detect/test_docker_messages.py holds one test per
message), into a closed code that detection (detect/tools.py) and the docker backend act on.
"""

from __future__ import annotations

from typing import Literal

# Why `docker run` (or the engine's container create/start) failed:
# - "no-gpu-driver": the engine has no device driver with the "gpu" capability (no nvidia runtime, hook or CDI);
# - "no-entrypoint": the container was made, only its command is not in the image;
# - "nvidia": the NVIDIA container runtime itself failed (driver, NVML, library);
# - "other": anything else.
RunFailure = Literal["no-gpu-driver", "no-entrypoint", "nvidia", "other"]


def run_failure(text: str) -> RunFailure:
    # moby daemon/devices.go: `could not select device driver %q with capabilities: %v`, as the CLI shows it:
    # 'docker: Error response from daemon: could not select device driver "" with capabilities: [[gpu]].'
    if "could not select device driver" in text:
        return "no-gpu-driver"
    # runc, the command not in the image: 'exec: "true": executable file not found in $PATH'; older runc:
    # 'exec: "true": stat true: no such file or directory'
    low = text.lower()
    if "executable file not found" in low or "no such file or directory" in low:
        return "no-entrypoint"
    # nvidia-container-cli (libnvidia-container): 'nvidia-container-cli: initialization error: nvml error: driver
    # not loaded' and 'nvidia-container-cli: requirement error: unsatisfied condition: cuda>=12.4'
    if "nvidia" in low:
        return "nvidia"
    return "other"


def is_build_error(line: str) -> bool:
    """A line of a build's plain progress output that states the failure: BuildKit's `#7 ERROR: process "/bin/sh
    -c …" did not complete successfully: exit code: 1` and the buildx client's `ERROR: failed to solve: …`
    (moby/buildkit util/progress/progressui/printer.go; docker/buildx commands/build.go)."""
    return "ERROR:" in line or line.startswith("ERROR")
