"""What produced a result: the project code a module runs (its import closure, read from the
source) and content digests of code, files and folders.

The closure follows every `import` and `from ... import` of the project's packages, function-level
ones included, the packages whose `__init__` an import runs, and every module of a package whose
`__init__` calls `import_submodules` (the registries' packages). A run's training identity
(`pipeline_lib.training.identity`) does not follow a package's imports of the modules it imports
only so that they register (every method, architecture, dataset and attribution), and adds the
run's own method and architecture instead.

A module's digest is that of its syntax tree without docstrings: a comment, a docstring or a
re-wrapped line changes no digest, so it retrains nothing.
"""
from __future__ import annotations

import ast
import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline_lib", "stages")
# Plumbing that cannot change a result (atomic file writes, error types, the name registry, the
# params base class, the stages' shared command-line handling): what it imports still counts.
PLUMBING = frozenset({"pipeline_lib/io.py", "pipeline_lib/errors.py", "pipeline_lib/registry.py",
                      "pipeline_lib/strict.py", "stages/common.py"})


def module_file(name: str) -> str | None:
    """The repository path of a dotted module name, or None when it is not project code."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = ROOT.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.exists():
            return path.relative_to(ROOT).as_posix()
    return None


def imported_modules(path: str) -> set[str]:
    """Dotted names a file imports anywhere in its body, with the packages that importing runs."""
    tree = ast.parse((ROOT / path).read_text())
    package = path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
    if not path.endswith("__init__.py"):
        package = package.rpartition(".")[0]
    names = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "import_submodules"
                and path.endswith("/__init__.py")):  # a package that imports every module of its own
            names.update(f"{package}.{f.stem}" for f in (ROOT / path).parent.glob("*.py") if not f.name.startswith("_"))
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names)  # `from pkg import submodule`
    with_parents = set()
    for name in names:
        parts = name.split(".")
        with_parents.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return with_parents


def closure(entries: Iterable[str], registrations: Iterable[str] = ()) -> set[str]:
    """The project files the `entries` (repository paths) run, transitively, less the plumbing and
    the two packages' empty `__init__`s. A package `__init__`'s imports of `registrations` (the
    modules it imports so that they register) are not followed; other files' imports of them are."""
    registrations, seen, todo = set(registrations), set(), list(entries)
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        skipped = registrations if path.endswith("/__init__.py") else set()
        todo.extend(f for f in map(module_file, imported_modules(path)) if f and f not in seen and f not in skipped)
    return seen - PLUMBING - {"pipeline_lib/__init__.py", "stages/__init__.py"}


def source_file(obj) -> str:
    """The repository path of the module that defines `obj` (a class or a function)."""
    import inspect

    return Path(inspect.getsourcefile(obj)).resolve().relative_to(ROOT).as_posix()


def source_digest(path: str) -> str:
    """The digest of a module's code: its syntax tree without docstrings (`ast.dump` leaves out
    comments, blank lines and line numbers)."""
    tree = ast.parse((ROOT / path).read_text())
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.dump(tree).encode()).hexdigest()[:16]


def code_digests(files: Iterable[str]) -> dict[str, str]:
    return {f: source_digest(f) for f in sorted(files)}


def content_digest(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes, or of a folder's files (relative paths and contents, in sorted
    order, symlinks followed): what DVC's own hash of the same dependency covers."""
    path = Path(path)
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        if f is not path:
            digest.update(f.relative_to(path).as_posix().encode() + b"\0")
        with open(f, "rb") as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()[:16]
