"""Retry policy: the runbook's table as data, and the backoff as one pure function.

A job's failure lifecycle:

1. The job body raises. If the error is non-retryable (:class:`PermanentFailure`
   or one of the task's ``non_retryable`` classes) the job fails at once.
2. Otherwise, while the job has retries left, it is re-sent to its own lane
   with ``countdown_s(policy, n)`` for retry ``n`` (1, 2, ...). The execution id
   stays the same; the attempt number grows.
3. When retries run out (BULK has none) the job fails for good: the
   ``job_exhausted`` signal fires with the reason, and the DLQ takes it.

Celery's own ``retry_backoff`` only knows whole seconds and base 2, so it cannot
express CRITICAL's 0.5 s x 1.5: the countdown is computed here instead.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping
from typing import Any

from storefront_jobs.errors import ConfigurationError
from storefront_jobs.jobs.priorities import Priority


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How often and how late a failed job is tried again.

    ``max_retries`` counts retries, so a job runs at most ``max_retries + 1``
    times. ``jitter`` spreads each delay uniformly over ``[delay/2, delay]`` so
    that a burst of failures does not come back as a burst.
    """

    max_retries: int
    initial_delay_s: float = 1.0
    max_delay_s: float = 300.0
    multiplier: float = 2.0
    jitter: bool = False

    def __post_init__(self) -> None:
        problems = []
        if self.max_retries < 0:
            problems.append(f"max_retries must be >= 0, got {self.max_retries}")
        if self.initial_delay_s < 0:
            problems.append(f"initial_delay_s must be >= 0, got {self.initial_delay_s}")
        if self.max_delay_s < self.initial_delay_s:
            problems.append(
                f"max_delay_s ({self.max_delay_s}) must be >= initial_delay_s ({self.initial_delay_s})"
            )
        if self.multiplier < 1:
            problems.append(f"multiplier must be >= 1, got {self.multiplier}")
        if problems:
            raise ConfigurationError("invalid retry policy: " + "; ".join(problems))

    @property
    def max_attempts(self) -> int:
        return self.max_retries + 1

    def with_overrides(self, overrides: Mapping[str, Any]) -> RetryPolicy:
        """A copy with some fields replaced; unknown field names are an error."""
        fields = {f.name for f in dataclasses.fields(self)}
        unknown = set(overrides) - fields
        if unknown:
            raise ConfigurationError(
                f"unknown retry policy field(s) {sorted(unknown)}; accepted: {sorted(fields)}"
            )
        return dataclasses.replace(self, **dict(overrides))


#: The runbook's retry table. BULK never retries: its first failure is final.
DEFAULT_RETRY_POLICIES: Mapping[Priority, RetryPolicy] = {
    Priority.CRITICAL: RetryPolicy(max_retries=5, initial_delay_s=0.5, max_delay_s=30.0, multiplier=1.5),
    Priority.HIGH: RetryPolicy(max_retries=3, initial_delay_s=1.0, max_delay_s=300.0, multiplier=2.0),
    Priority.DEFAULT: RetryPolicy(max_retries=3, initial_delay_s=1.0, max_delay_s=300.0, multiplier=2.0),
    Priority.LOW: RetryPolicy(max_retries=3, initial_delay_s=1.0, max_delay_s=300.0, multiplier=2.0),
    Priority.BULK: RetryPolicy(max_retries=0, initial_delay_s=0.0, max_delay_s=0.0, multiplier=1.0),
}


def countdown_s(policy: RetryPolicy, retry_number: int, rng: random.Random | None = None) -> float:
    """Delay before retry ``retry_number`` (1 for the first retry).

    ``min(initial * multiplier ** (n - 1), max)``; with jitter, a uniform draw
    from the upper half of that delay.
    """
    if retry_number < 1:
        raise ValueError(f"retry_number starts at 1, got {retry_number}")
    delay = min(policy.initial_delay_s * policy.multiplier ** (retry_number - 1), policy.max_delay_s)
    if policy.jitter:
        return (rng or random).uniform(delay / 2, delay)
    return delay


def build_policy(
    priority: Priority, base: RetryPolicy, retry: RetryPolicy | Mapping[str, Any] | None, task_name: str
) -> RetryPolicy:
    """A task's policy for its declared priority: the priority's (with settings overrides), then its own."""
    if retry is None:
        policy = base
    elif isinstance(retry, RetryPolicy):
        policy = retry
    elif isinstance(retry, Mapping):
        try:
            policy = base.with_overrides(retry)
        except (ConfigurationError, TypeError) as exc:
            raise ConfigurationError(f"task {task_name}: {exc}") from None
    else:
        raise ConfigurationError(f"task {task_name}: retry must be a RetryPolicy or a mapping, got {retry!r}")
    if priority is Priority.BULK and policy.max_retries > 0:
        raise ConfigurationError(
            f"task {task_name}: BULK jobs never retry (they go to the DLQ on their first failure); "
            "use Priority.LOW for a background job that should retry"
        )
    return policy


def task_policies(
    declared: Priority,
    retry: RetryPolicy | Mapping[str, Any] | None,
    task_name: str,
    base: Mapping[Priority, RetryPolicy] | None = None,
) -> dict[Priority, RetryPolicy]:
    """The retry policy of a task's job of each priority.

    A job's priority is the lane it was sent to, and so is its retry table:
    ``base`` (the runbook's table with the settings' overrides). The task's
    own ``retry`` fields refine the row of its declared priority only; a job
    sent to another lane retries as every job of that lane does.
    """
    table = dict(base if base is not None else DEFAULT_RETRY_POLICIES)
    table[declared] = build_policy(declared, table[declared], retry, task_name)
    return table
