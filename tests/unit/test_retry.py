from __future__ import annotations

import random

import pytest

from storefront_jobs import DEFAULT_RETRY_POLICIES, ConfigurationError, Priority, RetryPolicy, countdown_s


@pytest.mark.parametrize(
    ("priority", "expected_s"),
    [
        (Priority.CRITICAL, [0.5, 0.75, 1.125, 1.6875, 2.53125]),
        (Priority.HIGH, [1.0, 2.0, 4.0]),
        (Priority.DEFAULT, [1.0, 2.0, 4.0]),
        (Priority.LOW, [1.0, 2.0, 4.0]),
    ],
)
def test_the_runbook_table_gives_exact_countdowns(priority: Priority, expected_s: list[float]) -> None:
    policy = DEFAULT_RETRY_POLICIES[priority]
    assert policy.max_retries == len(expected_s)
    assert [countdown_s(policy, n) for n in range(1, policy.max_retries + 1)] == expected_s


def test_bulk_never_retries() -> None:
    assert DEFAULT_RETRY_POLICIES[Priority.BULK].max_retries == 0
    assert DEFAULT_RETRY_POLICIES[Priority.BULK].max_attempts == 1


def test_the_delay_is_capped_at_max_delay() -> None:
    critical = DEFAULT_RETRY_POLICIES[Priority.CRITICAL]
    assert countdown_s(critical, 20) == 30.0
    assert countdown_s(DEFAULT_RETRY_POLICIES[Priority.HIGH], 12) == 300.0


def test_jitter_draws_from_the_upper_half_of_the_delay() -> None:
    policy = RetryPolicy(max_retries=3, initial_delay_s=4.0, max_delay_s=60.0, multiplier=2.0, jitter=True)
    rng = random.Random(7)
    draws = [countdown_s(policy, 2, rng) for _ in range(200)]
    assert all(4.0 <= d <= 8.0 for d in draws)
    assert len(set(draws)) > 100


def test_retry_numbers_start_at_one() -> None:
    with pytest.raises(ValueError, match="starts at 1"):
        countdown_s(DEFAULT_RETRY_POLICIES[Priority.HIGH], 0)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"max_retries": -1}, "max_retries must be >= 0"),
        ({"max_retries": 1, "initial_delay_s": 10.0, "max_delay_s": 1.0}, "max_delay_s"),
        ({"max_retries": 1, "multiplier": 0.5}, "multiplier must be >= 1"),
    ],
)
def test_an_invalid_policy_is_refused(fields: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        RetryPolicy(**fields)  # type: ignore[arg-type]


def test_overrides_replace_fields_and_reject_unknown_ones() -> None:
    base = DEFAULT_RETRY_POLICIES[Priority.HIGH]
    assert base.with_overrides({"max_retries": 1}).max_retries == 1
    with pytest.raises(ConfigurationError, match="unknown retry policy field"):
        base.with_overrides({"retries": 1})
