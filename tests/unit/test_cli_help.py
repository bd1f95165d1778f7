"""Every setting a command's ``--help`` names is spelled as docs/configuration.md spells it.

``storefront-jobs flower --help`` once named ``FLOWER_BASIC_AUTH`` (Flower's own
variable, which this command does not read) while the docs said
``STOREFRONT_JOBS_FLOWER_BASIC_AUTH``. A name in a help text must be a
variable the docs list, written in full.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from storefront_jobs.cli import main
from storefront_jobs.settings import ENV_PREFIX
from tests.support.settings_doc import UNPREFIXED, is_setting_variable

DOC = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
VARIABLE = re.compile(r"\b[A-Z][A-Z0-9]*(?:__?[A-Z0-9<>]+)+\b")
#: Upper-case words of help texts that are no variables.
NOT_VARIABLES = {"N/s", "PRIORITY", "EXECUTION_IDS", "FILE", "NAME", "TEXT", "INTEGER", "FLOAT"}


def commands(group: click.Command = main, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    if isinstance(group, click.Group):
        for name, command in sorted(group.commands.items()):
            yield from commands(command, (*path, name))


PATHS = sorted(commands())


@functools.cache
def help_text(path: tuple[str, ...]) -> str:
    # Rendered in the test, not at collection: some commands' help builds the default app.
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "storefront-jobs")
def test_every_variable_a_help_text_names_is_documented_in_full(path: tuple[str, ...]) -> None:
    text = " ".join(help_text(path).split())  # click wraps lines; a name never spans two
    for name in set(VARIABLE.findall(text)) - NOT_VARIABLES:
        if name in UNPREFIXED.values():
            continue  # the runbook's spelling, documented as an alias
        assert name.startswith(ENV_PREFIX) or not is_setting_variable(ENV_PREFIX + name), (
            f"`storefront-jobs {' '.join(path)} --help` says {name}: write {ENV_PREFIX}{name}"
        )
        if name.startswith(ENV_PREFIX):
            assert f"`{name}`" in DOC, (
                f"--help of {' '.join(path)} names {name}, which docs/configuration.md lacks"
            )


def test_the_help_texts_were_found() -> None:
    assert ("flower",) in PATHS
    assert ("dlq", "replay") in PATHS
    assert "STOREFRONT_JOBS_FLOWER_BASIC_AUTH" in " ".join(help_text(("flower",)).split())
