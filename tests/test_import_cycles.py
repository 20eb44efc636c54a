"""The package's modules import each other without a cycle.

Every `import` and `from ... import` statement of every module under pretrain_jax/ counts, those under
`if TYPE_CHECKING:` and inside functions included (a cycle hidden in a function is still a cycle in
the design). `from pretrain_jax.a import b` is an edge to pretrain_jax.a.b when that is a module, else
to pretrain_jax.a. A package's own `__init__` is not an edge of its submodules (Python runs it first,
but it only gathers their names).
"""

import ast
import os

PACKAGE = "pretrain_jax"
ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), PACKAGE)


def module_files() -> dict[str, str]:
    """{dotted module name: path} of every .py file in the package."""
    modules = {}
    for directory, _, files in os.walk(ROOT):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                parts = os.path.relpath(path, os.path.dirname(ROOT))[: -len(".py")].split(os.sep)
                modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imports_of(module: str, path: str, modules: dict[str, str]) -> set[str]:
    """The package modules that `module` imports."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    is_package = path.endswith("__init__.py")
    targets = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # Relative: resolved against this module's package.
                package = module.split(".") if is_package else module.split(".")[:-1]
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        targets.update(name for name in names if name in modules and name != module)
    return targets


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle [a, b, ..., a] of the directed graph, or None (depth-first search with colours)."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done.
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_planted_cycle():
    # a -> b -> c -> a is a cycle; d -> a is not part of it.
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_the_package_has_no_import_cycle():
    modules = module_files()
    assert len(modules) > 50 and "pretrain_jax.models.cache" in modules
    graph = {module: imports_of(module, path, modules) for module, path in modules.items()}
    # The walk sees real edges (so a clean result means something): layers imports cache.
    assert "pretrain_jax.models.cache" in graph["pretrain_jax.models.layers"]
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)
