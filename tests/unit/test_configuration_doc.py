"""docs/configuration.md lists every setting of ``Settings`` (nested sections too), with its real default."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from storefront_jobs.jobs.priorities import Priority
from storefront_jobs.jobs.retry import DEFAULT_RETRY_POLICIES
from storefront_jobs.settings import CONFIG_FILE_VAR, ENV_PREFIX
from tests.support.settings_doc import UNPREFIXED, setting_variables

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def documented() -> dict[str, str]:
    """Variable -> the default column's text, one entry per variable (``<PRIORITY>`` expanded)."""
    rows: dict[str, str] = {}
    for line in DOC.read_text().splitlines():
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        for name in re.findall(r"`([A-Z_<>]+)`", cells[0]):
            for variable in _expand(name):
                assert variable not in rows, f"{variable} is documented twice"
                rows[variable] = cells[1]
    return rows


def _expand(name: str) -> list[str]:
    if "<PRIORITY>" not in name:
        return [name]
    return [name.replace("<PRIORITY>", priority.name) for priority in Priority]


def _matches(text: str, default: Any) -> bool:
    """Whether the documented default (``text``) says ``default``."""
    literal = re.match(r"`([^`]*)`", text)
    if default is None:
        return text.startswith(("unset", "runbook table"))
    if default == [] or default == list(Priority):
        return text.startswith("empty" if default == [] else "all")
    if literal is None:
        return False
    if isinstance(default, bool):
        return literal.group(1) == str(default).lower()
    if isinstance(default, dict):
        return literal.group(1) == "{}" and not default
    return literal.group(1) == str(default)


def _retry_default(variable: str) -> Any:
    """A retry override is unset by default; what applies then is the runbook table's value."""
    _, priority, field = variable.removeprefix(ENV_PREFIX).split("__")
    return getattr(DEFAULT_RETRY_POLICIES[Priority.parse(priority)], field.lower())


def test_every_setting_is_documented_and_nothing_else() -> None:
    expected = set(setting_variables()) | {CONFIG_FILE_VAR, *UNPREFIXED.values()}
    assert sorted(expected - set(documented())) == [], "settings missing from docs/configuration.md"
    assert sorted(set(documented()) - expected) == [], (
        "docs/configuration.md names settings that do not exist"
    )


@pytest.mark.parametrize(("variable", "default"), sorted(setting_variables().items()))
def test_the_documented_default_is_the_real_one(variable: str, default: Any) -> None:
    text = documented()[variable]
    if variable.startswith(ENV_PREFIX + "RETRY__"):
        # "runbook table" (the override is unset), or the runbook's value spelled out, as for jitter
        assert _matches(text, None) or _matches(text, _retry_default(variable)), (variable, text)
        return
    assert _matches(text, default), f"{variable}: documented {text!r}, default {default!r}"


def test_the_matcher() -> None:
    assert _matches("`3600`", 3600)
    assert not _matches("`3600`", 60)
    assert _matches("`true`", True)
    assert _matches("unset", None)
    assert _matches("empty", [])
    assert _matches("all", list(Priority))
    assert _matches("`{}`", {})
    assert _matches("`2592000` (30 days)", 2592000)
