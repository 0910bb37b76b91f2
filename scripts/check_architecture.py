"""Check advlab's layering: no import cycle, no import upward, no module over 400 lines.

Run from the repository root: ``python scripts/check_architecture.py``; exits 1 and lists
every violation. ``tests/test_architecture.py`` runs the same checks in CI.

A module may import modules of its own layer or of layers below it, never above, and the
module-level import graph (imports inside functions included) has no cycle.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "src" / "advlab"
MAX_LINES = 400

#: Lowest first. A name is a top-level module or package below ``advlab``.
LAYERS: list[set[str]] = [
    {"__init__", "__main__", "errors", "paths", "classnames", "progress", "spec"},
    {"models", "data", "results"},
    {"targets"},
    {"attacks"},
    {"defenses", "training"},
    {"evaluation"},
    {"reports"},
    {"workflows", "serve", "widgets", "dashboard"},
    {"cli"},
]


def layer_of(top: str) -> int:
    for index, names in enumerate(LAYERS):
        if top in names:
            return index
    raise KeyError(top)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path, name: str) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("advlab"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if not module.startswith("advlab"):
                continue
            found.add(module)
            # ``from advlab.attacks import pgd`` may name a submodule
            for alias in node.names:
                found.add(f"{module}.{alias.name}")
    return found


def check() -> list[str]:
    problems: list[str] = []
    modules = {module_name(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in sorted(modules.items()):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_LINES:
            problems.append(f"{path.relative_to(ROOT.parent)}: {lines} lines (max {MAX_LINES})")
        top = name.split(".")[1] if "." in name else "__init__"
        try:
            own = layer_of(top)
        except KeyError:
            problems.append(f"{name}: advlab.{top} is in no layer of scripts/check_architecture.py")
            continue
        for target in imports_of(path, name):
            if target not in modules or target == name:
                continue
            graph[name].add(target)
            other = target.split(".")[1] if "." in target else "__init__"
            if other in LAYERS[0] or other == top:
                continue
            if other not in {n for layer in LAYERS for n in layer} or layer_of(other) > own:
                problems.append(
                    f"{name} imports {target}: upward (advlab.{other} is above advlab.{top})"
                )
    problems.extend(_cycles(graph))
    return problems


def _cycles(graph: dict[str, set[str]]) -> list[str]:
    """Every strongly connected component of more than one module is a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[str] = []
    counter = [0]
    sys.setrecursionlimit(10000)

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append("import cycle: " + " <-> ".join(sorted(component)))

    for node in list(graph):
        if node not in index:
            visit(node)
    return found


if __name__ == "__main__":
    issues = check()
    for line in issues:
        print(line)
    print(f"{len(issues)} problem(s)")
    sys.exit(1 if issues else 0)
