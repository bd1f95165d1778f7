"""What the example jobs use instead of real payment providers, mail servers and buckets.

:func:`external_call` sleeps as if waiting on a service. The demo workload of
``storefront-jobs dev`` makes some jobs fail there the way real integrations
do: it sets the ``demoFlakyAttempts`` header to N, and the first N attempts
of that job raise :class:`TransientError`, so the job retries on its
priority's schedule and then succeeds (a BULK job, which never retries, goes
to the dead-letter queue instead). A replayed job (``replayOf`` header) finds
the outage over, which is the runbook's "wait for the service to recover,
then replay".

:func:`require` is how the examples validate their input. Bad input cannot
get better by waiting, so it fails the job at once with
:class:`~storefront_jobs.PermanentFailure` instead of spending retries.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import Any

from celery import current_task

from storefront_jobs.errors import PermanentFailure
from storefront_jobs.jobs import envelope
from storefront_jobs.jobs.context import job_context

#: Header the demo workload sets: how many first attempts of the job fail.
FLAKY_HEADER = "demoFlakyAttempts"

_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class TransientError(ConnectionError):
    """A stand-in for a timeout of an external service; retried like any such error."""


def require(condition: bool, message: str) -> None:
    """Fail the job for good with ``message`` unless ``condition`` holds."""
    if not condition:
        raise PermanentFailure(message)


def require_text(value: Any, name: str) -> str:
    require(
        isinstance(value, str) and bool(value.strip()), f"{name} must be a non-empty string, got {value!r}"
    )
    text: str = value
    return text


def require_int(value: Any, name: str, low: int, high: int) -> int:
    # bool is an int subclass; True as a batch size is a caller's bug, not 1.
    require(
        isinstance(value, int) and not isinstance(value, bool) and low <= value <= high,
        f"{name} must be an integer from {low} to {high}, got {value!r}",
    )
    number: int = value
    return number


def require_choice(value: Any, name: str, choices: frozenset[str]) -> str:
    require(value in choices, f"unknown {name} {value!r}; accepted: {', '.join(sorted(choices))}")
    text: str = value
    return text


def require_email(value: Any, name: str) -> str:
    require(
        isinstance(value, str) and bool(_EMAIL_RE.match(value)),
        f"{name} must be an e-mail address, got {value!r}",
    )
    text: str = value
    return text


def require_date(value: Any, name: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        raise PermanentFailure(f"{name} must be an ISO date (YYYY-MM-DD), got {value!r}") from None


def fails_now(flaky_attempts: int, attempt: int, replayed: bool) -> bool:
    """Whether a simulated outage fails this attempt: the first ``flaky_attempts``, unless replayed."""
    return not replayed and attempt <= flaky_attempts


def external_call(service: str, seconds: float) -> None:
    """Wait ``seconds`` on ``service``; raise :class:`TransientError` on attempts the demo marked flaky."""
    task = current_task
    request = task.request if task else None
    if task is not None and request is not None and not request.called_directly:
        flaky = int(envelope.read(request, FLAKY_HEADER, 0) or 0)
        job = job_context(task, request)  # every example job is a storefront job
        attempt = job.attempt
        if fails_now(flaky, attempt, replayed=job.replay_of is not None):
            time.sleep(seconds / 2)
            raise TransientError(f"{service} timed out (simulated: attempt {attempt}, first {flaky} fail)")
    time.sleep(seconds)
