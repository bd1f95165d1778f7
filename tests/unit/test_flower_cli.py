"""``storefront-jobs flower`` without a broker: its arguments, its auth rules, its settings."""

from __future__ import annotations

from typing import Any

import click
import pytest

from storefront_jobs import ConfigurationError
from storefront_jobs.cli.flower import (
    DEFAULT_PURGE_OFFLINE_WORKERS_S,
    auth_sources,
    check_passthrough,
    flower_argv,
)
from storefront_jobs.settings import Settings, basic_auth_pairs


def _settings(**values: Any) -> Settings:
    return Settings(broker_url="redis://127.0.0.1:1/0", **values)


def test_the_defaults_listen_on_loopback_only() -> None:
    settings = _settings()
    assert (settings.flower_address, settings.flower_port, settings.flower_basic_auth) == (
        "127.0.0.1",
        5555,
        None,
    )


def test_argv_carries_port_address_users_and_a_purge_of_offline_workers() -> None:
    settings = _settings(flower_basic_auth="admin:s3cret-pass, ops:other-pass ")

    argv = flower_argv(settings, port=5601, address="0.0.0.0", environ={})

    assert argv == [
        "flower",
        "--port=5601",
        "--address=0.0.0.0",
        "--basic_auth=admin:s3cret-pass,ops:other-pass",
        f"--purge_offline_workers={DEFAULT_PURGE_OFFLINE_WORKERS_S}",
    ]


@pytest.mark.parametrize(
    ("extra", "environ"),
    [(("--purge-offline-workers=60",), {}), ((), {"FLOWER_PURGE_OFFLINE_WORKERS": "60"})],
)
def test_a_purge_chosen_by_the_caller_is_kept(extra: tuple[str, ...], environ: dict[str, str]) -> None:
    argv = flower_argv(_settings(), port=5555, address="127.0.0.1", extra=extra, environ=environ)

    assert not any(arg.startswith("--purge_offline_workers=") for arg in argv)
    assert argv[len(argv) - len(extra) :] == list(extra)


def test_passed_through_options_come_last_so_they_win() -> None:
    argv = flower_argv(_settings(), port=5555, address="127.0.0.1", extra=("--port=6000",), environ={})

    assert argv[-1] == "--port=6000"


@pytest.mark.parametrize(
    ("values", "extra", "environ", "expected"),
    [
        ({}, (), {}, []),
        ({"flower_basic_auth": "a:12345678"}, (), {}, ["STOREFRONT_JOBS_FLOWER_BASIC_AUTH"]),
        ({}, ("--basic-auth=a:b",), {}, ["--basic_auth"]),
        ({}, ("--auth=.*@shop\\.example",), {}, ["--auth"]),
        ({}, (), {"FLOWER_BASIC_AUTH": "a:b"}, ["FLOWER_BASIC_AUTH"]),
        ({}, (), {"FLOWER_AUTH": ""}, []),
    ],
)
def test_auth_sources(
    values: dict[str, str], extra: tuple[str, ...], environ: dict[str, str], expected: list[str]
) -> None:
    assert auth_sources(_settings(**values), extra, environ) == expected


@pytest.mark.parametrize("extra", [("--max_tasks=100", "--persistent", "--url-prefix=flower")])
def test_flower_options_pass(extra: tuple[str, ...]) -> None:
    check_passthrough(extra)


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ("--max_taks=100", "not a Flower option"),
        ("100", "not a Flower option"),
        ("--max_tasks", "needs a value"),
    ],
)
def test_options_flower_would_silently_drop_are_refused(arg: str, message: str) -> None:
    with pytest.raises(click.UsageError, match=message):
        check_passthrough([arg])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("admin:s3cret-pass", [("admin", "s3cret-pass")]),
        (" a:12345678 , b:with:colons ", [("a", "12345678"), ("b", "with:colons")]),
    ],
)
def test_basic_auth_pairs(text: str, expected: list[tuple[str, str]]) -> None:
    assert basic_auth_pairs(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("admin", "entry 1 of 1 is not user:password"),
        ("a:12345678,", "entry 2 of 2 is not user:password"),
        (":12345678", "entry 1 of 1 is not user:password"),
        ("a:short", "the password of user 'a' is shorter than 8 characters"),
    ],
)
def test_a_malformed_user_list_names_the_entry_not_its_text(text: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        _settings(flower_basic_auth=text)

    assert str(refused.value).startswith("STOREFRONT_JOBS_FLOWER_BASIC_AUTH: " + message)
    assert "12345678" not in str(refused.value)
