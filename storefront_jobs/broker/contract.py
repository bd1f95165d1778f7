"""Checks the registry of private names (:mod:`storefront_jobs.broker.internals`) against what is installed.

Every problem is one line naming the installed version, the name, what is
wrong and what relies on it, e.g.::

    kombu 5.7.0: kombu.transport.redis.Channel._brpop_start is missing
    (storefront_jobs/broker/fetch.py relies on it: overridden: sends the fetch script or a doorbell wait)

``tests/unit/broker/test_private_names.py`` fails on any; before widening a
pin, run it (or ``python -m storefront_jobs.broker.contract``) in an
environment with the candidate version (docs/architecture.md, "Upgrading kombu").
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re
import sys
from collections.abc import Callable, Iterable
from functools import cached_property
from importlib import metadata
from typing import Any

from storefront_jobs.broker.internals import REGISTRY, Internal

_MISSING = object()


def installed(distribution: str) -> str:
    """``kombu 5.7.0``: a distribution and its installed version."""
    try:
        return f"{distribution} {metadata.version(distribution)}"
    except metadata.PackageNotFoundError:
        return f"{distribution} (not installed)"


def resolve(owner: str) -> Any:
    """The module or class ``package.module[:Class]``, or None when it is gone."""
    module_name, _, class_path = owner.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError:
        return None
    for part in filter(None, class_path.split(".")):
        target = getattr(target, part, None)
        if target is None:
            return None
    return target


def parameters(function: Callable[..., Any]) -> str:
    """A callable's parameters as the registry writes them: ``(self, queue, **kwargs)``."""
    names = [_starred(p) for p in inspect.signature(function).parameters.values()]
    return f"({', '.join(names)})"


def _starred(parameter: inspect.Parameter) -> str:
    if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
        return "*" + parameter.name
    if parameter.kind is inspect.Parameter.VAR_KEYWORD:
        return "**" + parameter.name
    return parameter.name


def assigned_by(cls: type, name: str) -> bool:
    """Whether a class of ``cls``'s MRO sets ``self.<name>`` in its source (an instance attribute)."""
    pattern = re.compile(rf"self\.{name}\s*=(?!=)|self\.__dict__\[['\"]{name}['\"]\]\s*=")
    return any(
        (source := _class_source(klass)) is not None and pattern.search(source) for klass in cls.__mro__[:-1]
    )


@functools.cache
def _class_source(klass: type) -> str | None:
    """A class's source, read once: ``inspect.getsource`` parses the class's whole module at every call."""
    try:
        return inspect.getsource(klass)
    except (OSError, TypeError):
        return None


def _comparable(value: object) -> object:
    return tuple(value) if isinstance(value, list | tuple) else value


def _attribute_issue(entry: Internal, owner: Any) -> str | None:
    static = inspect.getattr_static(owner, entry.name, _MISSING)
    if static is _MISSING and not (isinstance(owner, type) and assigned_by(owner, entry.name)):
        return "is missing"
    if entry.value is not None and _comparable(static) != _comparable(entry.value):
        return f"is {static!r}, not {entry.value!r} as storefront-jobs writes it"
    return None


def _property_issue(entry: Internal, owner: Any) -> str | None:
    static = inspect.getattr_static(owner, entry.name, _MISSING)
    if static is _MISSING:
        return "is missing"
    if not isinstance(static, property | cached_property):
        return f"is no longer a property (it is a {type(static).__name__})"
    return None


def _method_issue(entry: Internal, owner: Any) -> str | None:
    function = getattr(owner, entry.name, None)
    if function is None:
        return "is missing"
    if not callable(function):
        return f"is no longer a method (it is a {type(function).__name__})"
    found = parameters(function)
    if entry.params and found != entry.params:
        return f"has the parameters {found}, not {entry.params}"
    names = {p.lstrip("*") for p in found.strip("()").split(", ")}
    gone = [name for name in entry.accepts if name not in names]
    if gone:
        return f"no longer takes {', '.join(gone)}"
    return None


def _kwarg_issue(entry: Internal, owner: Any) -> str | None:
    reader = getattr(owner, entry.method, None)
    if reader is None:
        return f"is missing: {entry.method} is gone"
    source = inspect.getsource(reader)
    if entry.name not in parameters(reader) and not re.search(rf"['\"]{entry.name}['\"]", source):
        return f"is missing: {entry.method} no longer reads it"
    return None


_CHECKS: dict[str, Callable[[Internal, Any], str | None]] = {
    "attribute": _attribute_issue,
    "module attribute": _attribute_issue,
    "property": _property_issue,
    "method": _method_issue,
    "kwarg": _kwarg_issue,
}


def problem(entry: Internal) -> str | None:
    """What is wrong with ``entry`` on the installed versions, as one line; None when nothing is."""
    owner = resolve(entry.owner)
    issue = f"is missing: {entry.owner} is gone" if owner is None else _CHECKS[entry.kind](entry, owner)
    if issue is None:
        return None
    return (
        f"{installed(entry.distribution)}: {entry.qualified_name} {issue} "
        f"({', '.join(entry.used_in)} relies on it: {entry.why})"
    )


def problems(registry: Iterable[Internal] = REGISTRY) -> list[str]:
    """Every problem of the registry on the installed versions."""
    return [found for entry in registry if (found := problem(entry)) is not None]


def main() -> int:
    found = problems()
    for line in found:
        print(line)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
