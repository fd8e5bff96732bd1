"""The service packages under components/ import one another without cycles (a cycle makes the
result of an import depend on which package a process happens to import first), and each
package imports alone in a fresh interpreter."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

COMPONENTS = Path(__file__).resolve().parents[2] / "components"
PACKAGES = sorted(p.name for p in COMPONENTS.iterdir() if (p / "__init__.py").is_file())


def _imported(path: Path, module: str) -> set[str]:
    """Absolute names of the modules ``path`` imports, at any depth (function-level too)."""
    names = set()
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                names.add(".".join(base + ([node.module] if node.module else [])))
            else:
                names.add(node.module)
    return names


def package_graph() -> dict[str, set[str]]:
    """Service package -> the other components packages its modules import."""
    graph: dict[str, set[str]] = {p: set() for p in PACKAGES}
    for pkg in PACKAGES:
        for path in (COMPONENTS / pkg).rglob("*.py"):
            module = ".".join(("components",) + path.relative_to(COMPONENTS).with_suffix("").parts)
            for name in _imported(path, module):
                parts = name.split(".")
                if parts[0] == "components" and len(parts) > 1 and parts[1] in graph and parts[1] != pkg:
                    graph[pkg].add(parts[1])
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the current path, 2 done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [node, nxt] if nxt in path else [node, nxt]
            if nxt not in state and (found := visit(nxt, path + [node])):
                return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start, [])):
            return found
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_service_packages_import_one_another_without_cycles():
    graph = package_graph()
    assert "s2_harmonization" in graph["crop_lstm"]  # the graph sees real edges
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))
    assert graph["common"] == set(), "components.common must not depend on a service"


@pytest.mark.parametrize("module", ["components.timesen2crop.service", "components.s2_harmonization.service"])
def test_each_package_imports_first_in_a_fresh_interpreter(module):
    other = {"components.timesen2crop.service": "components.s2_harmonization",
             "components.s2_harmonization.service": "components.timesen2crop.dataset"}[module]
    code = (f"import sys, {module}\n"
            f"print({other!r} in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=COMPONENTS.parent)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False", f"importing {module} also imported {other}"
