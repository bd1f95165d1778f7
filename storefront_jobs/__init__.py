"""storefront-jobs: priority lanes, retry tables and a dead-letter queue for Celery on Redis.

``storefront_jobs.app`` is the default Celery app, built from the environment
on first use, so ``celery -A storefront_jobs worker`` works as usual.
"""

from __future__ import annotations

from typing import Any

from storefront_jobs.application import StorefrontCelery, create_app, get_default_app
from storefront_jobs.errors import (
    BrokerFullError,
    BrokerUnavailableError,
    ConfigurationError,
    EnqueueError,
    PartialEnqueueError,
    PayloadError,
    PermanentFailure,
    QueueOverflowError,
    ReplicationError,
    StorefrontJobsError,
)
from storefront_jobs.jobs.context import JobContext
from storefront_jobs.jobs.declare import priority_task
from storefront_jobs.jobs.failures import FailureReason, JobFailure
from storefront_jobs.jobs.priorities import Priority
from storefront_jobs.jobs.retry import DEFAULT_RETRY_POLICIES, RetryPolicy, countdown_s
from storefront_jobs.jobs.task import PriorityTask
from storefront_jobs.jobs.tenancy import current_tenant, tenant
from storefront_jobs.settings import Settings, get_settings, load_settings
from storefront_jobs.worker.hooks import Hook
from storefront_jobs.worker.signals import job_exhausted

__all__ = [
    "DEFAULT_RETRY_POLICIES",
    "BrokerFullError",
    "BrokerUnavailableError",
    "ConfigurationError",
    "EnqueueError",
    "FailureReason",
    "Hook",
    "JobContext",
    "JobFailure",
    "PartialEnqueueError",
    "PayloadError",
    "PermanentFailure",
    "Priority",
    "PriorityTask",
    "QueueOverflowError",
    "ReplicationError",
    "RetryPolicy",
    "Settings",
    "StorefrontCelery",
    "StorefrontJobsError",
    "countdown_s",
    "create_app",
    "current_tenant",
    "get_default_app",
    "get_settings",
    "job_exhausted",
    "load_settings",
    "priority_task",
    "tenant",
]


def __getattr__(name: str) -> Any:
    # `app` is built lazily so that importing the package reads no settings
    # and opens no connection; Celery's `-A storefront_jobs` finds it here.
    if name == "app":
        return get_default_app()
    raise AttributeError(f"module 'storefront_jobs' has no attribute {name!r}")
