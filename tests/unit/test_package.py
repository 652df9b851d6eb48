"""The library's shape: no import cycles (function-level imports count), no module too long to read."""

from __future__ import annotations

import ast
from pathlib import Path

from truthmap.provenance import import_bindings

LIBRARY = Path(__file__).resolve().parents[2] / "scripts"
MODULES = sorted((LIBRARY / "truthmap").rglob("*.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(LIBRARY).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """The truthmap modules ``path`` imports, at its top or inside functions (not for type checking only)."""
    name = module_name(path)
    current = f"{name}.__init__" if path.name == "__init__.py" else name
    known = {module_name(p) for p in MODULES}
    out = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {id(n) for stmt in tree.body if isinstance(stmt, ast.If) and "TYPE_CHECKING" in ast.dump(stmt.test)
                   for n in ast.walk(stmt)}
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        for module, attr in import_bindings(node, current).values():
            out.add(f"{module}.{attr}" if f"{module}.{attr}" in known else module)
    return out - {name, "truthmap"}


def test_no_import_cycles():
    graph = {module_name(p): imports_of(p) for p in MODULES}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            assert state.get(nxt) != 1, f"import cycle: {' -> '.join([*path, nxt])}"
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [node])


def test_no_module_is_over_600_lines():
    long = {module_name(p): n for p in MODULES if (n := len(p.read_text(encoding="utf-8").splitlines())) > 600}
    assert not long, f"split these into modules that each do one job: {long}"
