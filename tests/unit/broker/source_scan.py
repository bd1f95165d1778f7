"""What storefront_jobs' source does with underscore names, read from its syntax trees.

A *use* is ``obj._name`` (read, written or deleted), ``getattr(obj, "_name")``
and its siblings, a ``_name=`` keyword in a call, and ``"_name" in ...``. A
name the package *defines* is a private function, method or class, or the
target of an assignment (``_name = ...``, ``self._name = ...``). The scan is
by name, not by type: a use of a name the package also defines somewhere
counts as the package's own.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
from collections.abc import Iterator
from pathlib import Path

import storefront_jobs

PACKAGE = Path(storefront_jobs.__file__).parent
ROOT = PACKAGE.parent
_ATTRIBUTE_FUNCTIONS = {"getattr", "hasattr", "setattr", "delattr"}


def is_private(name: str) -> bool:
    """``_name``, not ``__name__`` nor ``__name`` (mangled, always the class's own)."""
    return len(name) > 1 and name.startswith("_") and not name.startswith("__")


@dataclasses.dataclass(frozen=True)
class Use:
    path: str
    line: int
    name: str


def sources() -> dict[str, ast.Module]:
    """Every module of the package by its path from the repository root."""
    return {
        path.relative_to(ROOT).as_posix(): ast.parse(path.read_text(encoding="utf-8"))
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def _string(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _used_names(node: ast.AST) -> Iterator[str]:
    if isinstance(node, ast.Attribute):
        yield node.attr
    elif isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Name) and func.id in _ATTRIBUTE_FUNCTIONS and len(node.args) > 1:
            yield from filter(None, [_string(node.args[1])])
        yield from (k.arg for k in node.keywords if k.arg)
    elif isinstance(node, ast.Compare) and any(isinstance(op, ast.In | ast.NotIn) for op in node.ops):
        yield from filter(None, [_string(node.left)])


def uses(trees: dict[str, ast.Module]) -> list[Use]:
    return [
        Use(path, getattr(node, "lineno", 0), name)
        for path, tree in trees.items()
        for node in ast.walk(tree)
        for name in _used_names(node)
        if is_private(name)
    ]


def _defined_names(node: ast.AST) -> Iterator[str]:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        yield node.name
    elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
        yield node.id
    elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
        yield node.attr
    elif isinstance(node, ast.alias) and node.asname:
        yield node.asname


def defined(trees: dict[str, ast.Module]) -> set[str]:
    return {name for tree in trees.values() for node in ast.walk(tree) for name in _defined_names(node)}


def module_name(path: str) -> str:
    return path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


def classes(trees: dict[str, ast.Module]) -> Iterator[tuple[str, type, set[str]]]:
    """Each class the package defines: its module path, the class, and the private names it sets.

    The names are those the class body defines and the ``self._name = ...`` of its methods.
    """
    for path, tree in trees.items():
        if path.endswith("__main__.py"):
            continue
        module = importlib.import_module(module_name(path))
        for node in ast.walk(tree):
            cls = getattr(module, node.name, None) if isinstance(node, ast.ClassDef) else None
            if not isinstance(cls, type) or cls.__module__ != module.__name__:
                continue
            names = {name for child in node.body for name in _defined_names(child) if is_private(name)}
            names |= {
                name
                for child in node.body
                if isinstance(child, ast.Assign | ast.AnnAssign)
                for target in ast.walk(child)
                for name in _defined_names(target)
                if is_private(name)
            }
            names |= {
                sub.attr
                for sub in ast.walk(node)
                if isinstance(sub, ast.Attribute)
                and isinstance(sub.ctx, ast.Store)
                and isinstance(sub.value, ast.Name)
                and sub.value.id == "self"
                and is_private(sub.attr)
            }
            yield path, cls, names
