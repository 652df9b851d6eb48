"""Which library code a rule script runs, as one fingerprint.

Snakemake's own ``code`` trigger looks at a rule script's modification time
and never at the library modules the script imports. The workflow turns that
trigger off (the profiles' ``rerun-triggers``) and passes each rule, as a
parameter, the fingerprint of the code its script can reach, so that a rule
reruns exactly when code it runs has changed.

Reach is followed definition by definition, not file by file: the script's
top-level code uses some names; a name imported from a ``truthmap`` module
brings in that module's definition of it (a function, a class, an assigned
constant), whose body uses further names, and so on. Every statement a module
runs on import that is not a definition (``matplotlib.use("Agg")``, an ``if``
block) counts whenever the module is imported. A change to a function that
no path from the script reaches reruns nothing; a change to a settings class
reruns only the rules whose scripts use that class.

Each reached definition counts by its syntax tree with every docstring and
bare string statement removed: comments, docstrings, formatting and file
timestamps never rerun anything; any change to code does.

The analysis is static. It sees a module attribute read as ``module.name`` and
every name a definition mentions (a local variable that shadows a global name
only makes the reach larger). A module that uses ``globals()``, ``getattr`` on
a module, or ``import *`` counts as a whole.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

PACKAGE = "truthmap"

#: What an import binds a name to: (module, attribute) or (module, None) for the module itself.
Target = tuple[str, str | None]


def strip_docstrings(tree: ast.AST) -> ast.AST:
    """``tree`` without bare string statements (docstrings of modules, classes, functions, fields)."""
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list):
            kept = [s for s in body if not _is_bare_string(s)]
            node.body = kept or [ast.Pass()]
    return tree


def _is_bare_string(stmt: ast.AST) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)


def digest(node: ast.AST) -> str:
    """A digest of one piece of code (already without docstrings), blind to formatting."""
    return hashlib.sha256(ast.dump(node).encode()).hexdigest()


def syntax_digest(source: str) -> str:
    """A digest of the code in ``source``, blind to comments, docstrings and formatting."""
    return digest(strip_docstrings(ast.parse(source)))


@dataclass
class Unit:
    """A definition (or another top-level statement) of a module: its digest and what it uses."""

    digest: str
    names: set[str] = field(default_factory=set)
    """Names the code reads (``ast.Name``)."""
    attributes: set[tuple[str, ...]] = field(default_factory=set)
    """Dotted chains it reads (``files.read_tsv`` as ``("files", "read_tsv")``)."""
    imports: dict[str, Target] = field(default_factory=dict)
    """Names its own (function-level) imports bind."""
    getattr_of: set[str] = field(default_factory=set)
    """Names whose attributes it reads by ``getattr``: a module among them counts as a whole."""


@dataclass
class Module:
    """One parsed module: definitions by name, what runs on import, and its imports."""

    name: str
    definitions: dict[str, list[Unit]] = field(default_factory=dict)
    on_import: list[Unit] = field(default_factory=list)
    imports: dict[str, Target] = field(default_factory=dict)
    whole: bool = False
    """Uses ``globals()`` or ``import *``: every definition counts."""
    loads: list[Target] = field(default_factory=list)
    """What its top-level imports import (their import-time code runs with this module's)."""


def _absolute(node: ast.ImportFrom, current: str | None) -> str | None:
    """The absolute module an ``ImportFrom`` reads from (``current`` resolves relative imports)."""
    if node.level == 0:
        return node.module
    if current is None:
        return None
    parts = current.split(".")[: -node.level]
    return ".".join(parts + ([node.module] if node.module else [])) or None


def import_bindings(node: ast.AST, current: str | None, package: str = PACKAGE) -> dict[str, Target]:
    """The names an import statement binds to ``package`` modules or their attributes."""
    out: dict[str, Target] = {}
    if isinstance(node, ast.Import):
        for alias in node.names:
            if _in_package(alias.name, package):
                if alias.asname:
                    out[alias.asname] = (alias.name, None)
                else:  # ``import a.b`` binds ``a``
                    out[alias.name.split(".")[0]] = (alias.name.split(".")[0], None)
    elif isinstance(node, ast.ImportFrom):
        base = _absolute(node, current)
        if base is not None and _in_package(base, package):
            for alias in node.names:
                out[alias.asname or alias.name] = (base, alias.name)
    return out


def _in_package(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _unit(node: ast.AST, current: str | None, package: str) -> Unit:
    unit = Unit(digest(node))
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            unit.names.add(sub.id)
        elif isinstance(sub, ast.Attribute):
            chain = _chain(sub)
            if chain:
                unit.attributes.add(chain)
        elif isinstance(sub, (ast.Import, ast.ImportFrom)):
            unit.imports.update(import_bindings(sub, current, package))
        elif (isinstance(sub, ast.Call) and isinstance(sub.func, ast.Name) and sub.func.id == "getattr"
              and sub.args and isinstance(sub.args[0], ast.Name)):
            unit.getattr_of.add(sub.args[0].id)
    return unit


def _chain(node: ast.Attribute) -> tuple[str, ...] | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return (node.id, *reversed(parts))
    return None


def _defined_names(stmt: ast.stmt) -> list[str]:
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [stmt.name]
    targets = stmt.targets if isinstance(stmt, ast.Assign) else [getattr(stmt, "target", None)]
    names = []
    for target in targets:
        names += [n.id for n in ast.walk(target) if isinstance(n, ast.Name)] if target is not None else []
    return names


def parse_module(name: str, source: str, package: str = PACKAGE, is_package: bool = False) -> Module:
    """Split a module's top level into definitions, import-time statements and import bindings."""
    tree = strip_docstrings(ast.parse(source))
    current = f"{name}.__init__" if is_package else name
    module = Module(name)
    for stmt in tree.body:  # type: ignore[attr-defined]
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            if any(a.name == "*" for a in stmt.names):
                module.whole = True
            bindings = import_bindings(stmt, current, package)
            module.imports.update(bindings)
            module.loads += [(m, a) if isinstance(stmt, ast.ImportFrom) else (m, None) for m, a in bindings.values()]
            continue
        unit = _unit(stmt, current, package)
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assign,
                             ast.AnnAssign, ast.AugAssign)):
            for defined in _defined_names(stmt):
                module.definitions.setdefault(defined, []).append(unit)
        else:
            module.on_import.append(unit)
            module.imports.update(unit.imports)  # imports inside a top-level ``if``/``try``
            for node in ast.walk(stmt):
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                    module.definitions.setdefault(node.id, []).append(unit)
    if "globals" in _all_names(module):
        module.whole = True
    return module


def _units(module: Module) -> list[Unit]:
    return module.on_import + [u for units in module.definitions.values() for u in units]


def _all_names(module: Module) -> set[str]:
    return set().union(*(u.names for u in _units(module))) if _units(module) else set()


@lru_cache(maxsize=256)
def _parsed(name: str, source: str, package: str, is_package: bool) -> Module:
    """Parsing by content: a Snakemake run fingerprints every rule, each module is parsed once."""
    return parse_module(name, source, package, is_package)


class Library:
    """The ``package`` modules under ``root`` (the folder that holds the package), read once."""

    def __init__(self, root: Path, package: str = PACKAGE) -> None:
        self.root = Path(root)
        self.package = package
        self._modules: dict[str, Module | None] = {}

    def path(self, name: str) -> Path | None:
        """The file of dotted module ``name``, or None when it is not a module."""
        base = self.root.joinpath(*name.split("."))
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
        return None

    def module(self, name: str) -> Module | None:
        if name not in self._modules:
            path = self.path(name)
            self._modules[name] = None if path is None else _parsed(
                name, path.read_text(encoding="utf-8"), self.package, path.name == "__init__.py")
        return self._modules[name]


class Reach:
    """Everything a script reaches: the walk over modules and definitions."""

    def __init__(self, library: Library) -> None:
        self.library = library
        self.loaded: set[str] = set()
        self.used: dict[str, dict[str, list[Unit]]] = {}
        self.todo: list[tuple[str, str | None]] = []

    def run_script(self, source: str) -> None:
        script = parse_module("__main__", source, self.library.package)
        for unit in _units(script):
            self._follow_unit(script, unit)
        self._drain()

    def _drain(self) -> None:
        while self.todo:
            module, name = self.todo.pop()
            if name is None:
                self._load(module)
            else:
                self._use(module, name)

    def _load(self, name: str) -> None:
        """Importing module ``name``: its parents' and its own import-time code."""
        if name in self.loaded:
            return
        module = self.library.module(name)
        if module is None:
            return
        self.loaded.add(name)
        self.used.setdefault(name, {})
        parent = name.rpartition(".")[0]
        if parent:
            self.todo.append((parent, None))
        for unit in module.on_import:
            self._follow_unit(module, unit)
        for imported, attr in module.loads:  # imported modules run their import-time code
            sub = f"{imported}.{attr}" if attr is not None else None
            self.todo.append((sub if sub and self.library.path(sub) else imported, None))
        if module.whole:
            for defined in module.definitions:
                self.todo.append((name, defined))

    def _use(self, module_name: str, name: str) -> None:
        """Reading ``name`` from module ``module_name``."""
        self._load(module_name)
        module = self.library.module(module_name)
        if module is None:
            return
        if name in module.definitions:
            if name in self.used[module_name]:
                return
            self.used[module_name][name] = module.definitions[name]
            for unit in module.definitions[name]:
                self._follow_unit(module, unit)
        elif name in module.imports:
            self._follow_target(module.imports[name])
        elif self.library.path(f"{module_name}.{name}") is not None:
            self.todo.append((f"{module_name}.{name}", None))

    def _follow_target(self, target: Target, attributes: tuple[str, ...] = ()) -> None:
        """An imported name, and the attribute chain read from it."""
        module, attr = target
        if attr is not None:
            if self.library.path(f"{module}.{attr}") is not None:  # ``from pkg import submodule``
                module, attr = f"{module}.{attr}", None
            else:
                self.todo.append((module, attr))
                return
        self.todo.append((module, None))
        for part in attributes:  # ``mod.sub.name``: walk into submodules, stop at a definition
            if self.library.path(f"{module}.{part}") is not None:
                module = f"{module}.{part}"
                self.todo.append((module, None))
            else:
                self.todo.append((module, part))
                return

    def _use_whole(self, target: Target) -> None:
        """Every definition of a module whose attributes are read by name."""
        module, attr = target
        if attr is not None and self.library.path(f"{module}.{attr}") is not None:
            module = f"{module}.{attr}"
        elif attr is not None:
            return  # getattr on an object, not a module
        parsed = self.library.module(module)
        for defined in parsed.definitions if parsed else ():
            self.todo.append((module, defined))

    def _follow_unit(self, module: Module, unit: Unit) -> None:
        def target_of(name: str) -> Target | None:
            if name in unit.imports:
                return unit.imports[name]
            if name in module.imports:
                return module.imports[name]
            return None

        for name in unit.getattr_of:
            target = target_of(name)
            if target is not None:
                self._use_whole(target)
        for chain in unit.attributes:
            target = target_of(chain[0])
            if target is not None:
                self._follow_target(target, chain[1:])
        for name in unit.names:
            target = target_of(name)
            if target is not None:
                self._follow_target(target)
            elif name in module.definitions and module.name != "__main__":
                self.todo.append((module.name, name))

    def fingerprint(self) -> str:
        """One hash over every reached module's import-time code and used definitions."""
        h = hashlib.sha256()
        for name in sorted(self.used):
            module = self.library.module(name)
            assert module is not None
            h.update(f"\0module {name}\0".encode())
            for unit in module.on_import:
                h.update(unit.digest.encode())
            for defined in sorted(self.used[name]):
                h.update(f"\0{defined}\0".encode())
                for unit in self.used[name][defined]:
                    h.update(unit.digest.encode())
        return h.hexdigest()

    def reached(self) -> dict[str, list[str]]:
        """Reached modules and, for each, the definitions used (for tests and curiosity)."""
        return {name: sorted(defs) for name, defs in sorted(self.used.items())}


def script_reach(script: Path, library: Path | None = None, package: str = PACKAGE) -> Reach:
    """Walk everything ``script`` reaches in the ``package`` modules under ``library``."""
    script = Path(script)
    reach = Reach(Library(Path(library) if library is not None else script.parent, package))
    reach.run_script(script.read_text(encoding="utf-8"))
    return reach


def code_fingerprint(script: Path, library: Path | None = None, package: str = PACKAGE) -> str:
    """One short hash over ``script``'s own code and every library definition it reaches."""
    script = Path(script)
    reach = script_reach(script, library, package)
    h = hashlib.sha256()
    h.update(syntax_digest(script.read_text(encoding="utf-8")).encode())
    h.update(reach.fingerprint().encode())
    return h.hexdigest()[:16]


CACHE = Path("__pycache__") / "truthmap-fingerprints.json"
"""Where :func:`cached_code_fingerprint` keeps fingerprints, under the scripts' folder (as Python
keeps compiled code next to its source): {key: fingerprint}."""

CACHE_ENTRIES = 512
"""Most fingerprints kept: the oldest go first."""


def cached_code_fingerprint(script: Path, library: Path | None = None, package: str = PACKAGE) -> str:
    """:func:`code_fingerprint`, kept on disk by the bytes of everything that decides it.

    Walking the reach parses every module a script reaches: about 1.2 s for the workflow's 31
    scripts, on every Snakemake start (a dry run takes 2.5 s in all). The key hashes this module,
    the script and every module of the package: an edit anywhere in the package recomputes it,
    which is never wrong and costs one start. A folder that cannot be written is read only."""
    script = Path(script)
    root = Path(library) if library is not None else script.parent
    key = hashlib.sha256(b"\0".join([
        _file_bytes(Path(__file__)), script.read_bytes(), package_digest(root, package).encode(),
    ])).hexdigest()
    path = root / CACHE
    entries = _read_cache(path)
    if key not in entries:
        entries[key] = code_fingerprint(script, library, package)
        _write_cache(path, dict(list(entries.items())[-CACHE_ENTRIES:]))
    return entries[key]


def package_digest(root: Path, package: str = PACKAGE) -> str:
    """A hash over the names and bytes of every module of ``package`` under ``root``; files are read
    again only when one's size or modification time changed."""
    files = sorted((root / package).rglob("*.py"))
    state = tuple((p.relative_to(root).as_posix(), *_stamp(p)) for p in files)
    return _digest_of(root, state)


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size


@lru_cache(maxsize=64)
def _digest_of(root: Path, state: tuple) -> str:
    h = hashlib.sha256()
    for name, *_ in state:
        h.update(name.encode() + b"\0" + hashlib.sha256((root / name).read_bytes()).digest())
    return h.hexdigest()


@lru_cache(maxsize=4)
def _file_bytes(path: Path) -> bytes:
    return path.read_bytes()


def _read_cache(path: Path) -> dict[str, str]:
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return entries if isinstance(entries, dict) else {}


def _write_cache(path: Path, entries: dict[str, str]) -> None:
    """Written whole under a temporary name, then renamed: a reader sees the old file or the new."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(json.dumps(entries), encoding="utf-8")
        os.replace(temporary, path)
    except OSError:
        temporary.unlink(missing_ok=True)


def asset_digest(folder: Path) -> str:
    """One short hash over the names and bytes of the files in ``folder`` (non-Python code a rule
    inlines, such as a page's script): any byte changed, added or removed changes it."""
    h = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        h.update(path.relative_to(folder).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()[:16]
