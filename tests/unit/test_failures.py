from __future__ import annotations

import pytest
from billiard.exceptions import WorkerLostError
from celery.exceptions import Reject, TimeLimitExceeded

from storefront_jobs import DEFAULT_RETRY_POLICIES, FailureReason, PermanentFailure, Priority
from storefront_jobs.jobs.failures import classify_failure, is_retryable

CRITICAL = DEFAULT_RETRY_POLICIES[Priority.CRITICAL]
BULK = DEFAULT_RETRY_POLICIES[Priority.BULK]


class InvalidPayloadError(Exception):
    pass


@pytest.mark.parametrize(
    ("exc", "retries", "policy", "reason"),
    [
        (RuntimeError("boom"), 5, CRITICAL, FailureReason.EXHAUSTED),
        (RuntimeError("boom"), 0, BULK, FailureReason.NO_RETRY),
        (PermanentFailure("gone"), 0, CRITICAL, FailureReason.NON_RETRYABLE),
        (InvalidPayloadError("bad"), 0, CRITICAL, FailureReason.NON_RETRYABLE),
        (WorkerLostError("signal 9"), 5, CRITICAL, FailureReason.WORKER_LOST),
        (WorkerLostError("signal 9"), 0, BULK, FailureReason.WORKER_LOST),
        (TimeLimitExceeded(30), 1, CRITICAL, FailureReason.TIME_LIMIT),
        (Reject("cannot publish retry", requeue=False), 2, CRITICAL, FailureReason.REJECTED),
        (KeyboardInterrupt(), 0, CRITICAL, FailureReason.NON_RETRYABLE),
    ],
)
def test_every_final_failure_gets_one_reason(
    exc: BaseException, retries: int, policy: object, reason: FailureReason
) -> None:
    assert (
        classify_failure(
            exc,
            retries=retries,
            policy=policy,  # type: ignore[arg-type]
            non_retryable=(InvalidPayloadError,),
        )
        is reason
    )


def test_non_retryable_classes_win_over_retry_on() -> None:
    assert not is_retryable(
        InvalidPayloadError(), retry_on=(Exception,), non_retryable=(InvalidPayloadError,)
    )
    assert not is_retryable(PermanentFailure(), retry_on=(Exception,), non_retryable=())
    assert not is_retryable(ValueError(), retry_on=(ConnectionError,), non_retryable=())
    assert is_retryable(ConnectionError(), retry_on=(ConnectionError,), non_retryable=())
