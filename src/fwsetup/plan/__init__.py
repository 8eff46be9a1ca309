"""Every decision: HostProfile + Recipe + Request -> Plan (or a refusal), for every method.

`fwsetup plan --json` prints what these functions return, and install, build and smoke do exactly that.
"""

from fwsetup.plan.evaluate import GPU_ACCELERATORS, norm_arch
from fwsetup.plan.explain import where_it_runs
from fwsetup.plan.model import (
    ImagePlan,
    Method,
    Plan,
    Rejection,
    Request,
    SmokeSpec,
    Want,
    plan_from_json,
    plan_to_dict,
    plan_to_json,
)
from fwsetup.plan.planner import make_plan
from fwsetup.plan.request import build_request, request_flags

__all__ = [
    "GPU_ACCELERATORS",
    "ImagePlan",
    "Method",
    "Plan",
    "Rejection",
    "Request",
    "SmokeSpec",
    "Want",
    "build_request",
    "make_plan",
    "norm_arch",
    "plan_from_json",
    "plan_to_dict",
    "plan_to_json",
    "request_flags",
    "where_it_runs",
]
