"""Fleet planning: many machines (HostProfiles, one per node) + Recipe + Request -> one Plan that runs on
every node. Pure.

Each build of the recipe is judged on each distinct machine (identical profiles are grouped, so a fleet of
200 identical nodes costs one evaluation) with the same checks as one machine (evaluate.py: OS, arch,
Python, CPU instructions, driver floor, the compute capability of every GPU, and whatever checks are added
there later). A (release, variant) runs on the fleet when, on every group, one of its builds passes. The
choice among those follows the one-machine rule (choose.py): a GPU build unless --cpu or a node has no
usable GPU, the newest release, then the variant's rank (with the oldest driver's native CUDA). What held
a better choice back is recorded per node as structured failures (reasons.Failure): which node, which
check, and, for a driver, the minimum compat.py gives (never typed here). explain.py words them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from fwsetup.compat import load_compat, usable_gpus
from fwsetup.plan import explain
from fwsetup.plan.choose import gpu_wanted, rank, variant_family
from fwsetup.plan.evaluate import GPU_ACCELERATORS, evaluate, make_target, ver, version_filter
from fwsetup.plan.model import Fleet, FleetGroup, FleetNode, Plan, Rejection, Request
from fwsetup.plan.planner import make_plan, plan_data
from fwsetup.plan.reasons import Failure, Reason, Suggestion
from fwsetup.plan.suggest import ranked
from fwsetup.plan.target import Evaluation
from fwsetup.profile import to_dict
from fwsetup.registry import load_registry

if TYPE_CHECKING:
    from fwsetup.compat import CompatData
    from fwsetup.profile import HostProfile
    from fwsetup.recipes.schema import Recipe
    from fwsetup.registry import Registry

Key = tuple[str, str]  # (version, variant)


@dataclass(frozen=True)
class Node:
    """One machine of the fleet: its name (the profile file's stem, or its hostname) and its profile."""

    name: str
    profile: HostProfile


@dataclass
class _Group:
    index: int
    names: list[str]
    profile: HostProfile
    evals: dict[Key, list[Evaluation]]

    def verdict(self, key: Key) -> Evaluation | None:
        """The build of (version, variant) that passes here, else its closest one (None: no such build)."""
        evs = self.evals.get(key)
        if not evs:
            return None
        ok = [ev for ev in evs if ev.ok]
        if ok:
            return ok[0]
        return min(evs, key=lambda ev: (len(ev.kinds() & {"os", "arch"}), len(ev.fails)))

    def runs(self, key: Key) -> bool:
        ev = self.verdict(key)
        return ev is not None and ev.ok


# Fields that tell machines apart without changing what runs on them (ids, free space, paths; when and where a
# profile was captured, and what doctor --fleet compares: profile_fleet.py).
_IDENTITY = ("disk_free_bytes", "disk_path", "memory_bytes", "probe_errors", "captured_at", "capture_group",
             "network", "collectives")  # fmt: skip


def group_key(profile: HostProfile) -> str:
    """Identical machines, as far as planning goes, have the same key."""
    d = to_dict(profile)
    for k in _IDENTITY:
        d.pop(k, None)
    d.get("python", {}).pop("executable", None)
    for g in d.get("nvidia", {}).get("gpus", []):
        g.pop("uuid", None)
    tools = d.get("tools", {})
    if isinstance(tools.get("docker"), dict):
        for k in ("host", "error"):
            tools["docker"].pop(k, None)
    return msgspec.json.encode(d, order="deterministic").decode()


def group_nodes(nodes: Sequence[Node]) -> list[tuple[list[str], HostProfile]]:
    groups: dict[str, tuple[list[str], HostProfile]] = {}
    for n in nodes:
        groups.setdefault(group_key(n.profile), ([], n.profile))[0].append(n.name)
    return list(groups.values())


def _node_list(names: Sequence[str]) -> tuple[str, ...]:
    return tuple(names)


def plan_fleet(
    nodes: Sequence[Node],
    recipe: Recipe,
    request: Request,
    compat: CompatData | None = None,
    *,
    registry: Literal["shipped"] | Registry | None = "shipped",
) -> Plan:
    """One Plan for every node, or a refusal that names the nodes in the way. Its `fleet` field holds the
    groups of identical machines and a verdict per node."""
    if compat is None:
        compat = load_compat()
    request = msgspec.structs.replace(request, framework=recipe.name)
    in_range = version_filter(request.version)
    # The recipe's published wheels, as make_plan reads them: the wheel-tag checks (glibc, musl, macOS floors).
    if registry == "shipped":
        registry = load_registry(recipe.name)
    # Every GPU of every node is checked (evaluate checks them all with all_gpus); the multi-GPU check
    # itself only when --all-gpus was asked.
    every_gpu = msgspec.structs.replace(request, all_gpus=True)
    groups: list[_Group] = []
    for i, (names, profile) in enumerate(group_nodes(nodes)):
        t = make_target(profile, request)
        evals: dict[Key, list[Evaluation]] = {}
        for bi, b in enumerate(recipe.builds):
            if not in_range(b.version):
                continue
            ev = evaluate(b, bi, profile, every_gpu, t, compat, registry=registry)
            if not request.all_gpus:
                ev.fails = [f for f in ev.fails if f.kind != "multi_gpu"]
            evals.setdefault((b.version, b.variant), []).append(ev)
        groups.append(_Group(index=i, names=names, profile=profile, evals=evals))

    alone = {g.index: make_plan(g.profile, recipe, request, compat, registry=registry) for g in groups}
    keys = list(groups[0].evals) if groups else []
    runs_all = [k for k in keys if all(g.runs(k) for g in groups)]
    # The rank's "native CUDA" is the oldest driver's: what every node's driver supports natively.
    rank_profile = min(
        (g.profile for g in groups),
        key=lambda p: ver(p.nvidia.cuda_driver_version or "9999"),
    )
    families = list(dict.fromkeys(variant_family(b.variant) for b in recipe.builds))
    fleet_gpu = request.want == "gpu" or (
        request.want == "auto" and all(gpu_wanted(g.profile, request) for g in groups)
    )

    def order(k: Key) -> tuple[object, ...]:
        ev = next(e for g in groups for e in g.evals[k])
        gpu = ev.build.accelerator in GPU_ACCELERATORS and fleet_gpu
        return (gpu, ver(k[0]), rank(ev, rank_profile, request, families))

    n_nodes = len(nodes)
    base: dict[str, Any] = {"framework": recipe.name, "title": recipe.title, "method": request.method,
                            "data": plan_data(registry)}  # fmt: skip
    title = recipe.title
    chosen = max(runs_all, key=order) if runs_all else None
    # Better choices: what runs on some node but not on all, above the chosen one (all of them on a refusal).
    better = sorted(
        (
            k
            for k in keys
            if k not in runs_all
            and any(g.runs(k) for g in groups)
            and (chosen is None or order(k) > order(chosen))
            and _wanted(k, groups, request)
        ),
        key=order,
        reverse=True,
    )
    blocked: list[Reason] = []
    sugg: list[Suggestion] = []
    # Per group of nodes, the best choice it holds back and why (the JSON's per-node verdicts list all).
    for g in groups:
        for k in better:
            held = g.verdict(k)
            if held is None or held.ok:
                continue
            blocked.append(
                Reason(
                    "fleet_blocked",
                    title=title,
                    version=k[0],
                    variant=k[1],
                    nodes=_node_list(g.names),
                    driver=g.profile.nvidia.driver_version,
                    why=tuple(held.fails),
                )
            )
            needs = [f.get("need") for f in held.fails if f.code == "driver_too_old"]
            if needs and len(held.fails) == len(needs):  # the driver alone holds it back
                sugg.append(
                    Suggestion(
                        "fleet_upgrade_driver",
                        nodes=_node_list(g.names),
                        need=needs[0],
                        title=title,
                        version=k[0],
                        variant=k[1],
                    )
                )
            break
    fleet = _fleet(groups, chosen, better, alone, compat)
    if chosen is None:
        reasons = [Reason("fleet_none", title=title, nodes=n_nodes, groups=len(groups)), *blocked]
        if not blocked:
            # Nothing runs anywhere: each group's own refusal says why.
            for g in groups:
                reasons.append(
                    Reason(
                        "fleet_node_refused",
                        nodes=_node_list(g.names),
                        reasons=tuple(alone[g.index].reasons),
                    )
                )
        return _plan(
            "refused",
            base,
            reasons,
            sugg,
            python=request.python,
            fleet=fleet,
            rejected=_rejected(groups, better),
        )

    # The chosen (release, variant) as make_plan writes it (requirements, indexes, smoke, ...), for the
    # first machine: the recipe narrowed to that one choice, so nothing else can be picked.
    rep = groups[0]
    narrow = msgspec.structs.replace(
        recipe, builds=[b for b in recipe.builds if (b.version, b.variant) == chosen]
    )
    plan = make_plan(rep.profile, narrow, request, compat, registry=registry)
    first = Reason(
        "fleet_chosen",
        title=title,
        version=chosen[0],
        variant=chosen[1],
        nodes=n_nodes,
        groups=len(groups),
    )
    reasons = [first]
    need = plan.min_driver
    if need:
        oldest = min(
            (g for g in groups if g.profile.nvidia.driver_version),
            key=lambda g: ver(g.profile.nvidia.driver_version or "0"),
            default=None,
        )
        if oldest is not None:
            reasons.append(
                Reason(
                    "fleet_driver",
                    need=need,
                    cuda=plan.cuda,
                    have=oldest.profile.nvidia.driver_version,
                    nodes=_node_list(oldest.names),
                )
            )
    pythons: dict[str, list[str]] = {}
    for g in groups:
        py = request.python or g.profile.python_minor or "?"
        pythons.setdefault(py, []).extend(g.names)
    if len(pythons) > 1:
        reasons.append(
            Reason("fleet_pythons", pythons=tuple((py, tuple(ns)) for py, ns in sorted(pythons.items())))
        )
    reasons += blocked
    if plan.status != "ok":  # the chosen build itself refused (e.g. insecure sources): say so, keep fleet
        return msgspec.structs.replace(plan, fleet=fleet)
    sugg_texts = list(dict.fromkeys(explain.suggestion(s) for s in sugg))
    return msgspec.structs.replace(
        plan,
        reasons=[explain.reason(r) for r in reasons],
        reason_codes=[explain.code(r) for r in reasons],
        suggestions=sugg_texts,
        suggestion_codes=[explain.code(s) for s in dict.fromkeys(sugg)],
        rejected=_rejected(groups, better),
        fleet=fleet,
    )


def _wanted(k: Key, groups: Sequence[_Group], request: Request) -> bool:
    """A (version, variant) of the kind asked for (--cpu: CPU builds; --gpu: GPU builds)."""
    ev = next(e for g in groups for e in g.evals[k])
    gpu = ev.build.accelerator in GPU_ACCELERATORS
    return not ((request.want == "cpu" and gpu) or (request.want == "gpu" and not gpu))


def _rejected(groups: Sequence[_Group], better: Sequence[Key]) -> list[Rejection]:
    out = []
    for k in better:
        why = []
        for g in groups:
            ev = g.verdict(k)
            if ev is not None and not ev.ok:
                why.append(f"node {', '.join(g.names)}: {explain.failures(ev.fails)}")
        out.append(Rejection(version=k[0], variant=k[1], why=why))
    return out


def _fleet(
    groups: Sequence[_Group],
    chosen: Key | None,
    better: Sequence[Key],
    alone: dict[int, Plan],
    compat: CompatData,
) -> Fleet:
    fgroups: list[FleetGroup] = []
    fnodes: list[FleetNode] = []
    for g in groups:
        p = g.profile
        fgroups.append(
            FleetGroup(
                index=g.index,
                nodes=list(g.names),
                system=p.os.system,
                arch=p.cpu.arch,
                python=p.python_minor,
                libc=p.os.libc,
                libc_version=p.os.libc_version,
                driver=p.nvidia.driver_version,
                gpus=[
                    f"{gpu.name or 'NVIDIA GPU'} (compute capability {gpu.compute_capability or '?'})"
                    for gpu in usable_gpus(p)
                ],
            )
        )
        holds: list[Failure] = []
        holds_keys: list[list[str]] = []
        for k in better:
            ev = g.verdict(k)
            if ev is not None and not ev.ok:
                holds += ev.fails
                holds_keys += [[k[0], k[1]]] * len(ev.fails)
        a = alone[g.index]
        chosen_ev = g.verdict(chosen) if chosen else None
        for name in g.names:
            fnodes.append(
                FleetNode(
                    name=name,
                    group=g.index,
                    runs=chosen_ev is not None and chosen_ev.ok,
                    alone_status=a.status,
                    alone_version=a.version,
                    alone_variant=a.variant,
                    holds_back=[
                        f"{v} ({var}): {explain.failure(f)}"
                        for (v, var), f in zip(holds_keys, holds, strict=True)
                    ],
                    holds_back_codes=[
                        {"version": v, "variant": var, **explain.code(f)}
                        for (v, var), f in zip(holds_keys, holds, strict=True)
                    ],
                )
            )
    return Fleet(nodes=fnodes, groups=fgroups)


def _plan(
    status: str,
    base: dict[str, Any],
    reasons: Sequence[Reason],
    suggestions: Sequence[Suggestion],
    **kw: Any,
) -> Plan:
    suggestions = ranked(suggestions)  # the same order as a single machine's plan
    return Plan(
        status=status,  # type: ignore[arg-type]
        reasons=[explain.reason(r) for r in reasons],
        reason_codes=[explain.code(r) for r in reasons],
        suggestions=list(dict.fromkeys(explain.suggestion(s) for s in suggestions)),
        suggestion_codes=[explain.code(s) for s in suggestions],
        **base,
        **kw,
    )
