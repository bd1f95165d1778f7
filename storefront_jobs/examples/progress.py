"""Progress counters of the example jobs, as ``storefront-jobs dev`` shows them.

One Redis hash (:data:`storefront_jobs.broker.keys.DEMO_PROGRESS`), field
``<job>:<outcome>``, written only through :func:`record`. The demo workload
counts ``sent`` and ``refused`` (lane full) when it enqueues; the workers
count the rest from the framework's own signals, so the job bodies stay
plain business code and a job cannot forget to report:

=================  =========  =================================================
signal             outcome    meaning
=================  =========  =================================================
``task_success``   done       the job finished (after any number of retries)
``task_retry``     retried    one failed attempt that will run again
``job_exhausted``  failed     a final failure: what the dead-letter queue gets
=================  =========  =================================================

A job is counted under its function name (``process_payment_webhook``), the
key of :data:`storefront_jobs.examples.JOBS`. Only tasks of this package are
counted: users' own jobs on the same workers are left alone.

Jobs that Celery beat sends (the examples' schedule) are counted ``sent`` by
beat itself, once its publish returned, so that ``done`` never runs ahead of
``sent`` on the dashboard.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import redis
from celery import signals as celery_signals

from storefront_jobs.application import StorefrontCelery
from storefront_jobs.broker import keys
from storefront_jobs.jobs.failures import JobFailure
from storefront_jobs.jobs.task import PriorityTask
from storefront_jobs.worker.signals import job_exhausted

Outcome = Literal["sent", "done", "retried", "failed", "refused"]
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)

_PACKAGE = __name__.rsplit(".", 1)[0] + "."


def record(client: redis.Redis[bytes], job: str, outcome: Outcome, n: int = 1) -> None:
    """Add ``n`` to the ``outcome`` count of ``job``: the one place progress is written."""
    client.hincrby(keys.DEMO_PROGRESS, f"{job}:{outcome}", n)


def read(client: redis.Redis[bytes]) -> dict[str, dict[Outcome, int]]:
    """Every job's counts, each outcome present (0 when never counted)."""
    counts: dict[str, dict[Outcome, int]] = {}
    for field, value in client.hgetall(keys.DEMO_PROGRESS).items():
        job, _, outcome = field.decode().rpartition(":")
        if outcome in OUTCOMES:
            per_job = counts.setdefault(job, dict.fromkeys(OUTCOMES, 0))
            per_job[outcome] = int(value)
    return counts


def reset(client: redis.Redis[bytes]) -> None:
    client.delete(keys.DEMO_PROGRESS)


def job_name(task: Any) -> str | None:
    """The progress name of an example task, or ``None`` for any other task."""
    if isinstance(task, PriorityTask) and task.name.startswith(_PACKAGE):
        return task.name.rsplit(".", 1)[-1]
    return None


def _record_for(task: Any, outcome: Outcome) -> None:
    name = job_name(task)
    if name is not None and isinstance(task.app, StorefrontCelery):
        record(task.app.redis, name, outcome)


def count_success(sender: Any = None, **_: Any) -> None:
    _record_for(sender, "done")


def count_retry(sender: Any = None, **_: Any) -> None:
    _record_for(sender, "retried")


def count_exhausted(sender: Any = None, failure: JobFailure | None = None, **_: Any) -> None:
    _record_for(sender, "failed")


def count_beat_sends(sender: Any = None, **_: Any) -> None:
    """At ``beat_init``: count every example job this beat process publishes as ``sent``."""
    app = getattr(sender, "app", None)
    if not isinstance(app, StorefrontCelery):
        return
    client = app.redis

    def sent(sender: Any = None, **_: Any) -> None:
        # after_task_publish's sender is the task's name (a string), not the task.
        name = str(sender or "")
        if name.startswith(_PACKAGE):
            record(client, name.rsplit(".", 1)[-1], "sent")

    celery_signals.after_task_publish.connect(sent, weak=False, dispatch_uid=f"{__name__}.beat_sent")


def install() -> None:
    """Connect the counters; idempotent (each receiver has a dispatch_uid).

    Called when :mod:`storefront_jobs.examples` is imported, because a
    worker's ``IMPORTS`` are the only code of ours it is sure to load.
    """
    for signal, receiver in (
        (celery_signals.task_success, count_success),
        (celery_signals.task_retry, count_retry),
        (job_exhausted, count_exhausted),
        (celery_signals.beat_init, count_beat_sends),
    ):
        signal.connect(receiver, weak=False, dispatch_uid=f"{__name__}.{receiver.__name__}")
