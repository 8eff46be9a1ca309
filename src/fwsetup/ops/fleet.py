"""Fleets: several machines' files (`fwsetup profile` or `fwsetup doctor --json` from each node) -> one Plan
for all of them (fwsetup.plan.fleet), or a comparison of what each node has installed (`doctor --fleet`).

A node is named by its file's stem (gpu-07.json -> gpu-07), or by a "hostname" field at the top of the file.
A doctor --json file holds the machine under "host" and the frameworks it found under "frameworks".
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fwsetup.errors import ProfileError, UsageError
from fwsetup.ops.doctor_findings import Finding, sort_findings
from fwsetup.ops.fleet_checks import check_fleet
from fwsetup.ops.plan import registry_for
from fwsetup.plan.fleet import Node, plan_fleet
from fwsetup.profile import loads, read_profile_bytes
from fwsetup.recipes.load import load_recipes

if TYPE_CHECKING:
    from collections.abc import Sequence

    from fwsetup.plan import Plan, Request
    from fwsetup.plan.fleet import Node
    from fwsetup.profile import HostProfile
    from fwsetup.registry.pages import Mode

_MAX_NODES = 10_000


@dataclass(frozen=True)
class NodeFile:
    name: str
    path: Path
    profile: HostProfile
    frameworks: list[dict[str, Any]] | None = None  # from doctor --json; None: not recorded
    extra: dict[str, Any] = field(default_factory=dict)


def node_paths(paths: Sequence[str | Path]) -> list[Path]:
    """Files named, and the *.json files of folders named (sorted), in order."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.suffix == ".json" and q.is_file())
            if not found:
                msg = f"{p}: no *.json files (profiles from `fwsetup profile --output NODE.json`) in this folder."
                raise UsageError(msg)
            out += found
        else:
            out.append(p)
    if len(out) > _MAX_NODES:
        msg = f"{len(out)} node files: at most {_MAX_NODES}."
        raise UsageError(msg)
    return out


def read_node(path: Path) -> NodeFile:
    raw_bytes = read_profile_bytes(path)  # a regular file of bounded size, or ProfileError (exit 2)
    try:
        raw = json.loads(raw_bytes)
    except (ValueError, RecursionError):
        return NodeFile(
            name=path.stem, path=path, profile=loads(raw_bytes, source=str(path))
        )  # says what is wrong
    name = path.stem
    if isinstance(raw, dict) and isinstance(raw.get("hostname"), str) and raw["hostname"].strip():
        name = raw["hostname"].strip()
    if isinstance(raw, dict) and isinstance(raw.get("host"), dict) and "frameworks" in raw:
        profile = loads(json.dumps(raw["host"]), source=f"{path} (its host)")
        fws = raw.get("frameworks")
        frameworks = [f for f in fws if isinstance(f, dict)] if isinstance(fws, list) else None
        return NodeFile(name=name, path=path, profile=profile, frameworks=frameworks)
    return NodeFile(name=name, path=path, profile=loads(raw_bytes, source=str(path)))


def read_nodes(paths: Sequence[str | Path]) -> list[NodeFile]:
    nodes = [read_node(p) for p in node_paths(paths)]
    seen: dict[str, Path] = {}
    for n in nodes:
        if n.name in seen:
            msg = f"two files name node {n.name!r}: {seen[n.name]} and {n.path}."
            raise ProfileError(msg, hint="Give each node's profile its own file name (NODE.json).")
        seen[n.name] = n.path
    return nodes


def fleet_nodes(paths: Sequence[str | Path]) -> list[Node]:
    return [Node(name=n.name, profile=n.profile) for n in read_nodes(paths)]


def is_fleet(paths: Sequence[str]) -> bool:
    """Several --host-profile values, or a folder: plan for a fleet."""
    return len(paths) > 1 or any(Path(p).is_dir() for p in paths)


def plan_fleet_for(request: Request, paths: Sequence[str], *, data: Mode = "auto") -> Plan:
    if request.method == "docker":
        msg = "--method docker plans one image per machine; a fleet plan covers venv and conda."
        raise UsageError(msg, hint="Plan the image with one --host-profile (the node it is built for).")
    recipe, registry = registry_for(load_recipes().get(request.framework), data)
    return plan_fleet(fleet_nodes(paths), recipe, request, registry=registry)


# -- doctor --fleet: what differs between the nodes ----------------------------------------------------------


@dataclass(frozen=True)
class Difference:
    """One thing the nodes do not agree on: the value most nodes have, and the odd ones out."""

    what: str  # "nvidia driver", "torch", "python", ...
    majority: str | None
    majority_nodes: int
    odd: dict[str, str | None]  # node -> its value (None: absent)


@dataclass(frozen=True)
class FleetComparison:
    nodes: list[str]
    differences: list[Difference]
    agree: dict[str, str | None]
    no_frameworks: list[
        str
    ]  # nodes whose file records no installed frameworks (a profile, not doctor --json)
    # what breaks a multi-node job (ops/fleet_checks.py): collective libraries, interfaces, clocks
    findings: tuple[Finding, ...] = ()

    @property
    def exit_code(self) -> int:
        problems = any(f.severity in ("error", "warning") for f in self.findings)
        return 1 if self.differences or problems else 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "nodes": self.nodes,
            "ok": self.exit_code == 0,
            "agree": self.agree,
            "differences": [
                {"what": d.what, "majority": d.majority, "majority_nodes": d.majority_nodes, "odd": d.odd}
                for d in self.differences
            ],
            "frameworks_unknown": self.no_frameworks,
            "findings": [
                {
                    "id": f.id,
                    "code": f.code,
                    "severity": f.severity,
                    "title": f.title,
                    "detail": f.detail,
                    "remedy": f.remedy,
                }
                for f in self.findings
            ],
        }


def _framework_text(f: dict[str, Any]) -> str:
    text = str(f.get("version") or "?")
    build = f.get("build")
    if build and build != "unknown":
        text += f" ({build}" + (f" {f['cuda']}" if f.get("cuda") else "") + ")"
    return text


def _facts(n: NodeFile) -> dict[str, str | None]:
    p = n.profile
    gpus = sorted({g.name or "?" for g in p.nvidia.gpus})
    out: dict[str, str | None] = {
        "os": " ".join(x for x in (p.os.system, p.os.distro_id, p.os.distro_version) if x) or None,
        "arch": p.cpu.arch,
        "libc": f"{p.os.libc} {p.os.libc_version}" if p.os.libc else None,
        "python": p.python_minor,  # 3.11.7 and 3.11.9 run the same wheels
        "nvidia driver": p.nvidia.driver_version,
        "cuda (driver)": p.nvidia.cuda_driver_version,
        "gpus": f"{len(p.nvidia.gpus)} x {', '.join(gpus)}" if gpus else None,
    }
    for f in n.frameworks or []:
        name = str(f.get("distribution") or f.get("name"))
        out[name] = _framework_text(f)
    return out


def compare_nodes(nodes: Sequence[NodeFile]) -> FleetComparison:
    """Per fact (driver, GPUs, Python, libc, each installed framework), the majority value and the nodes that
    differ. A framework installed on some nodes only is a difference (absent elsewhere); nodes whose file
    records no frameworks (a plain profile) are left out of the framework comparison."""
    from collections import Counter

    facts = {n.name: _facts(n) for n in nodes}
    with_fw = [n.name for n in nodes if n.frameworks is not None]
    keys: list[str] = []
    for f in facts.values():
        keys += [k for k in f if k not in keys]
    differences: list[Difference] = []
    agree: dict[str, str | None] = {}
    for key in keys:
        names = [n.name for n in nodes] if key in _HOST_FACTS else with_fw
        if not names:
            continue
        values = {name: facts[name].get(key) for name in names}
        counts = Counter(values.values())
        majority, count = max(counts.items(), key=lambda kv: (kv[1], kv[0] is not None, str(kv[0])))
        odd = {name: v for name, v in values.items() if v != majority}
        if odd:
            differences.append(Difference(what=key, majority=majority, majority_nodes=count, odd=odd))
        else:
            agree[key] = majority
    return FleetComparison(
        nodes=[n.name for n in nodes],
        differences=differences,
        agree=agree,
        no_frameworks=[n.name for n in nodes if n.frameworks is None],
        findings=sort_findings(check_fleet([(n.name, n.profile) for n in nodes])),
    )


_HOST_FACTS = ("os", "arch", "libc", "python", "nvidia driver", "cuda (driver)", "gpus")


def doctor_fleet(folder: str) -> FleetComparison:
    nodes = read_nodes([folder])
    return compare_nodes(nodes)
