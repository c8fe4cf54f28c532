"""The layers hold: the import-linter contracts in pyproject.toml, and no import cycle in the product.

Both read the source of this checkout (not an installed copy): every import counts, including those
inside functions and under ``TYPE_CHECKING``, because a cycle hidden in a function is still a cycle.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grimp

REPO = Path(__file__).resolve().parents[1]
PRODUCT = ("contracts", "engine", "producer", "worker", "shared")


def test_the_import_contracts_in_pyproject_hold():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--no-cache"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def _strongly_connected(graph: dict[str, set[str]]) -> Iterator[list[str]]:
    """Tarjan's algorithm without recursion (a deep import chain would overflow the stack)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            for nxt in successors:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    yield sorted(component)


def _cycle_through(start: str, component: set[str], graph: dict[str, set[str]]) -> list[str]:
    """The shortest import path from ``start`` back to itself inside one component."""
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(graph[node] & component):
                if nxt == start:
                    return paths[node] + [start]
                if nxt not in paths:
                    paths[nxt] = paths[node] + [nxt]
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"{start} is in a component but on no cycle")


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    return [_cycle_through(component[0], set(component), graph) for component in _strongly_connected(graph)
            if len(component) > 1 or component[0] in graph[component[0]]]


def test_cycles_are_found_and_shown():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}, "f": {"d"}}
    assert _cycles(graph) == [["a", "b", "c", "a"], ["e", "e"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_among_the_product_modules():
    for package in PRODUCT:  # grimp reads whichever copy the import system finds
        origin = Path(importlib.util.find_spec(package).origin)
        assert origin.is_relative_to(REPO), f"{package} imports from {origin}: run with PYTHONPATH={REPO}"
    found = grimp.build_graph(*PRODUCT, include_external_packages=False)
    graph = {module: set(found.find_modules_directly_imported_by(module)) for module in found.modules}
    cycles = _cycles(graph)
    shown = []
    for cycle in cycles:
        steps = []
        for importer, imported in zip(cycle, cycle[1:], strict=False):
            lines = sorted(d["line_number"] for d in found.get_import_details(importer=importer, imported=imported))
            steps.append(f"  {importer} -> {imported} (line {', '.join(map(str, lines))})")
        shown.append("\n".join(steps))
    assert not cycles, "import cycles:\n" + "\n\n".join(shown)
