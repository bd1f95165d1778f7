"""Every environment variable the settings read, walked from ``Settings.model_fields``; for doc checks."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from storefront_jobs.settings import CONFIG_FILE_VAR, ENV_PREFIX, Settings

#: Read without the prefix too, as the runbook spells it.
UNPREFIXED = {"worker_priority_filter": "WORKER_PRIORITY_FILTER"}


def _walk(prefix: str, model: type[BaseModel], instance: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name in model.model_fields:
        value = getattr(instance, name)
        if isinstance(value, BaseModel):
            found |= _walk(f"{prefix}{name.upper()}__", type(value), value)
        else:
            found[prefix + name.upper()] = value
    return found


def setting_variables() -> dict[str, Any]:
    """``STOREFRONT_JOBS_<NAME>`` (nested: ``<SECTION>__<NAME>``) -> its default, for every setting.

    ``model_construct`` fills in the defaults without reading the environment.
    """
    return _walk(ENV_PREFIX, Settings, Settings.model_construct())


def is_setting_variable(variable: str) -> bool:
    """Whether ``variable`` (or a prefix of a nested one, e.g. ``..._RETRY__``) is a setting's name."""
    if variable == CONFIG_FILE_VAR or variable.upper() in UNPREFIXED.values():
        return True
    names = setting_variables()
    stem = variable.rstrip("_")
    return stem in names or any(name.startswith(stem + "__") for name in names)
