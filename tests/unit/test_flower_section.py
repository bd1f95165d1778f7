"""The Dead letters section's parts that need no server: who may do what, and the navigation entry."""

from __future__ import annotations

import base64
from pathlib import Path

import flower
import pytest

from storefront_jobs.errors import ConfigurationError
from storefront_jobs.flower.access import basic_auth_user, operator_for
from storefront_jobs.flower.handler import format_time, top_counts
from storefront_jobs.flower.templates import NAVBAR, FlowerTemplates, with_nav_item
from storefront_jobs.scopes import SCOPES
from storefront_jobs.settings import load_settings

FLOWER_TEMPLATES = Path(flower.__file__).parent / "templates"


def _basic(user_password: str) -> str:
    return "Basic " + base64.b64encode(user_password.encode()).decode()


def test_the_user_is_read_from_the_basic_auth_header_flower_checked() -> None:
    assert basic_auth_user(_basic("alice:pa:ss")) == "alice"
    assert basic_auth_user(_basic("nocolon")) is None
    assert basic_auth_user("Bearer abc") is None
    assert basic_auth_user("Basic !!!not-base64") is None
    assert basic_auth_user(None) is None


def test_without_a_scope_table_every_logged_in_user_may_do_everything() -> None:
    assert operator_for("alice", {}, authenticated=True).scopes == frozenset(SCOPES)
    # Nobody proved who they are: look, do not touch
    assert operator_for("anonymous", {}, authenticated=False).scopes == frozenset({"dlq:read"})


def test_with_a_scope_table_a_user_not_named_has_no_scope() -> None:
    table = {"alice": ["dlq:read", "dlq:replay"]}
    alice = operator_for("alice", table, authenticated=True)
    assert alice.can("dlq:replay")
    assert not alice.can("dlq:delete")
    assert alice.actor == "flower:alice"
    assert operator_for("mallory", table, authenticated=True).scopes == frozenset()


def test_an_unknown_scope_in_the_setting_stops_start_up_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOREFRONT_JOBS_FLOWER_USER_SCOPES", '{"alice": ["dlq:write"]}')
    with pytest.raises(ConfigurationError, match=r"FLOWER_USER_SCOPES.*unknown scope 'dlq:write'"):
        load_settings()


def test_the_installed_flower_navbar_gets_the_dead_letters_entry_last_in_its_list() -> None:
    navbar = (FLOWER_TEMPLATES / NAVBAR).read_text()
    extended = with_nav_item(navbar)
    assert extended is not None, "Flower's navbar.html changed: see storefront_jobs/flower/templates.py"
    links = extended[: extended.index("</ul>")]
    assert links.index("'broker'") < links.index("'dead-letters'")


def test_a_navbar_without_the_list_is_left_alone() -> None:
    assert with_nav_item("<nav><ul class='other'></ul></nav>") is None


def test_the_loader_serves_flowers_templates_ours_and_the_extended_navbar() -> None:
    loader = FlowerTemplates(str(FLOWER_TEMPLATES))
    assert "Dead letters" in loader.load(NAVBAR).code
    assert loader.load("dlq_list.html").name == "dlq_list.html"
    assert "dead-letters" not in loader.load("workers.html").code


def test_times_read_as_utc_and_counts_biggest_first() -> None:
    assert format_time(0.0) == "1970-01-01 00:00:00 UTC"
    assert format_time(None) == "-"
    assert top_counts({"a": 1, "b": 5, "c": 5}, 2) == [("b", 5), ("c", 5)]
