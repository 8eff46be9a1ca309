"""The plan use case: the machine (detected or --host-profile), the recipe and the Request -> the Plan.

`fwsetup plan` prints what plan_for returns; install and build start from the same call, so the Plan
printed is the Plan executed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fwsetup import detect  # detect.get_host looked up when called (tests put a machine there)
from fwsetup.plan import make_plan
from fwsetup.plan.container import plan_image
from fwsetup.plan.inherit import extend
from fwsetup.recipes.load import load_recipes
from fwsetup.registry.live import live_registry

if TYPE_CHECKING:
    from fwsetup.plan import Plan, Request
    from fwsetup.profile import HostProfile
    from fwsetup.recipes.schema import Recipe
    from fwsetup.registry import Registry
    from fwsetup.registry.pages import Mode


def load_inputs(request: Request, host_profile: str | None) -> tuple[HostProfile, Recipe]:
    """The machine and the recipe a Request is planned with. Only a docker plan asks the Docker engine."""
    recipe = load_recipes().get(request.framework)
    profile = detect.get_host(host_profile, docker=request.method == "docker")
    return profile, recipe


def registry_for(recipe: Recipe, data: Mode = "auto") -> tuple[Recipe, Registry | None]:
    """What the indexes publish for the recipe now (cached; `data`: "refresh" asks again, "offline" reads
    the shipped snapshot only: fwsetup.registry.live), and the recipe with builds for the releases newer
    than its own, inheriting its curated facts (fwsetup.plan.inherit). Done before any narrowing of the
    recipe (a --variant, a fleet), which must not make an older release look like the newest."""
    registry = live_registry(recipe, mode=data)
    return extend(recipe, registry), registry


def plan_for(request: Request, host_profile: str | None = None, *, data: Mode = "auto") -> Plan:
    """The Plan for a Request: a docker plan is the image's plan, the one `fwsetup build` builds."""
    profile, recipe = load_inputs(request, host_profile)
    recipe, registry = registry_for(recipe, data)
    if request.method == "docker":
        plan, _notes = plan_image(recipe, profile, request, registry=registry)
        return plan
    return make_plan(profile, recipe, request, registry=registry)
