"""Plans to render Dockerfiles from, and the stages of a rendered Dockerfile."""

from __future__ import annotations

import re

from fwsetup.plan import Plan, SmokeSpec

NO_PIP: dict[str, str] = {"PIP_CONFIG_FILE": "/dev/null", "HOME": "/nonexistent"}


def cpu_plan(**kw: object) -> Plan:
    base: dict[str, object] = dict(
        status="ok", framework="pytorch", title="PyTorch", version="2.13.0", variant="cpu", accelerator="cpu",
        method="docker", python="3.11", requirements=["torch==2.13.0"], smoke=SmokeSpec(script="pytorch"),
        env={"OMP_NUM_THREADS": "2"},
    )  # fmt: skip
    base.update(kw)
    return Plan(**base)  # type: ignore[arg-type]


def stages(text: str) -> tuple[str, str]:
    """(builder stage, final stage) of a rendered Dockerfile."""
    parts = re.split(r"^FROM ", text, flags=re.M)
    assert len(parts) == 3, text
    return "FROM " + parts[1], "FROM " + parts[2]
