"""The plan use case: the machine (detected or --host-profile), the recipe and the Request -> the Plan.

`fwsetup plan` prints what plan_for returns; install and build start from the same call, so the Plan
printed is the Plan executed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fwsetup.plan import Plan, Request
    from fwsetup.profile import HostProfile
    from fwsetup.recipes import Recipe


def load_inputs(request: Request, host_profile: str | None) -> tuple[HostProfile, Recipe]:
    """The machine and the recipe a Request is planned with. Only a docker plan asks the Docker engine."""
    from fwsetup.detect import get_host
    from fwsetup.recipes import load_recipes

    recipe = load_recipes().get(request.framework)
    profile = get_host(host_profile, docker=request.method == "docker")
    return profile, recipe


def plan_for(request: Request, host_profile: str | None = None) -> Plan:
    """The Plan for a Request: a docker plan is the image's plan, the one `fwsetup build` builds."""
    from fwsetup.plan import make_plan

    profile, recipe = load_inputs(request, host_profile)
    if request.method == "docker":
        from fwsetup.plan.container import plan_image

        plan, _notes = plan_image(recipe, profile, request)
        return plan
    return make_plan(profile, recipe, request)
