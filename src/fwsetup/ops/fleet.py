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

if TYPE_CHECKING:
    from collections.abc import Sequence

    from fwsetup.plan import Plan, Request
    from fwsetup.plan.fleet import Node
    from fwsetup.profile import HostProfile

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
    from fwsetup.profile import MAX_PROFILE_BYTES, load, loads

    try:
        raw_bytes = path.read_bytes()[: MAX_PROFILE_BYTES + 1]
        raw = json.loads(raw_bytes)
    except (OSError, ValueError):
        return NodeFile(name=path.stem, path=path, profile=load(path))  # load says what is wrong
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
    from fwsetup.plan.fleet import Node

    return [Node(name=n.name, profile=n.profile) for n in read_nodes(paths)]


def is_fleet(paths: Sequence[str]) -> bool:
    """Several --host-profile values, or a folder: plan for a fleet."""
    return len(paths) > 1 or any(Path(p).is_dir() for p in paths)


def plan_fleet_for(request: Request, paths: Sequence[str]) -> Plan:
    from fwsetup.plan.fleet import plan_fleet
    from fwsetup.recipes import load_recipes

    if request.method == "docker":
        msg = "--method docker plans one image per machine; a fleet plan covers venv and conda."
        raise UsageError(msg, hint="Plan the image with one --host-profile (the node it is built for).")
    recipe = load_recipes().get(request.framework)
    return plan_fleet(fleet_nodes(paths), recipe, request)
