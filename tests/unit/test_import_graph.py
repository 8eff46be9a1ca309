"""The import graph of src/fwsetup holds by contract (ARCHITECTURE.md): no cycle, in-function and TYPE_CHECKING
imports included, and the import-linter contracts of pyproject.toml ([tool.importlinter]) are kept. scripts/test
runs `lint-imports` too (its report names each broken import); this test keeps the unit suite honest alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# the test extra installs import-linter (and grimp with it); a venv made before it was added says so
grimp = pytest.importorskip("grimp", reason="import-linter is not installed: pip install -e '.[test]'")

ROOT = Path(__file__).resolve().parents[2]

# Cycles that exist today, each to go with the change named (the list only shrinks).
KNOWN: frozenset[frozenset[str]] = frozenset()


def strongly_connected(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Tarjan's strongly connected components of more than one module (iterative: no recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[frozenset[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                comp = set()
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    comp.add(top)
                    if top == node:
                        break
                if len(comp) > 1:
                    out.append(frozenset(comp))
    return out


def test_tarjan_finds_a_cycle_hidden_in_a_longer_chain() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert strongly_connected(graph) == [frozenset({"a", "b", "c"})]


def test_no_import_cycle_in_src() -> None:
    g = grimp.build_graph("fwsetup")  # every import statement, in functions and under TYPE_CHECKING too
    graph = {m: set(g.find_modules_directly_imported_by(m)) for m in g.modules}
    cycles = [c for c in strongly_connected(graph) if c not in KNOWN]
    details = []
    for comp in cycles:
        for a in sorted(comp):
            for b in sorted(graph[a] & comp):
                for d in g.get_import_details(importer=a, imported=b):
                    details.append(f"{a}:{d['line_number']} {d['line_contents']}")
    assert not cycles, "import cycles in src/fwsetup:\n" + "\n".join(details)


def test_the_import_contracts_hold() -> None:
    tool = Path(sys.executable).with_name("lint-imports")  # installed by the test extra, beside this Python
    if not tool.exists():
        pytest.skip("import-linter is not installed: pip install -e '.[test]'")
    done = subprocess.run([str(tool), "--no-cache", "--no-logo"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
