"""Moved to fwsetup.smoke.runner (issue 10); this name stays importable until every caller has moved."""

from fwsetup.smoke.runner import (
    SMOKE_TIMEOUT,
    Runner,
    SmokeReport,
    check_result,
    environment_for,
    run_smoke,
    smoke_args,
    smoke_argv,
    smoke_env,
)

__all__ = [
    "SMOKE_TIMEOUT",
    "Runner",
    "SmokeReport",
    "check_result",
    "environment_for",
    "run_smoke",
    "smoke_args",
    "smoke_argv",
    "smoke_env",
]
