"""Which library code a rule script runs, as one fingerprint.

Snakemake's ``code`` rerun trigger sees a rule's own script, not the library
modules that script imports. The fingerprint of a script and of every
``truthmap`` module it reaches through imports, passed to the rule as a
parameter, makes a change to a stage's library code rerun exactly the rules
whose scripts reach that code (and what depends on their outputs).

The fingerprint hashes each file's syntax tree, not its bytes: comments and
formatting do not rerun anything; any change to code or docstrings does.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

PACKAGE = "truthmap"


def imported_modules(source: str, package: str = PACKAGE, current: str | None = None) -> set[str]:
    """Dotted names of the ``package`` modules that ``source`` imports.

    ``current`` is the dotted name of the module ``source`` belongs to, used
    to resolve relative imports; ``from package import name`` counts ``name``
    as a module (a name that is not a module is dropped by ``module_files``).
    Imports nested in functions count: they run when the function does.
    """
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if _in_package(a.name, package))
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, current)
            if base is None or not _in_package(base, package):
                continue
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names if a.name != "*")
    return found


def _in_package(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _absolute(node: ast.ImportFrom, current: str | None) -> str | None:
    if node.level == 0:
        return node.module
    if current is None:
        return None
    parts = current.split(".")[: -node.level]
    return ".".join(parts + ([node.module] if node.module else [])) or None


def module_file(name: str, library: Path) -> Path | None:
    """The file of dotted module ``name`` under ``library`` (the folder holding the package)."""
    path = library.joinpath(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def module_files(script: Path, library: Path, package: str = PACKAGE) -> dict[str, Path]:
    """Every ``package`` module ``script`` reaches through imports, by dotted name."""
    seen: dict[str, Path] = {}
    todo = sorted(imported_modules(script.read_text(encoding="utf-8"), package))
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = module_file(name, library)
        if path is None:  # an attribute imported from a module, not a module
            continue
        seen[name] = path
        # importing a.b.c runs a/__init__.py and a/b/__init__.py first
        parents = [".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)]
        # a package's own relative imports resolve against the package
        current = f"{name}.__init__" if path.name == "__init__.py" else name
        todo.extend(parents)
        todo.extend(sorted(imported_modules(path.read_text(encoding="utf-8"), package, current)))
    return dict(sorted(seen.items()))


def syntax_digest(source: str) -> str:
    """A digest of the code in ``source``, blind to comments and formatting."""
    return hashlib.sha256(ast.dump(ast.parse(source)).encode()).hexdigest()


def code_fingerprint(script: Path, library: Path | None = None, package: str = PACKAGE) -> str:
    """One short hash over ``script`` and every library module it reaches."""
    script = Path(script)
    library = Path(library) if library is not None else script.parent
    digest = hashlib.sha256()
    digest.update(syntax_digest(script.read_text(encoding="utf-8")).encode())
    for name, path in module_files(script, library, package).items():
        digest.update(f"\0{name}\0{syntax_digest(path.read_text(encoding='utf-8'))}".encode())
    return digest.hexdigest()[:16]
