"""The runbook's storefront jobs, one module per priority, as a worked example.

=========  =======================================================  =====================
priority   jobs (job queue)                                         module
=========  =======================================================  =====================
CRITICAL   process_payment_webhook (payments.webhooks),             :mod:`.payments`
           confirm_order (orders.confirmations)
HIGH       send_notification (notifications.send),                 :mod:`.notifications`
           update_inventory (inventory.updates)
DEFAULT    generate_report (reporting.export),                      :mod:`.reporting`
           process_email (email.inbound), ReportingJobService
LOW        aggregate_analytics (analytics.aggregation),             :mod:`.analytics`
           warm_cache (cache.warming)
           aggregate_yesterday (analytics.aggregation), by beat     :mod:`.schedule`
BULK       archive_orders (archive.orders),                         :mod:`.archive`
           migrate_data (data.migrations)
=========  =======================================================  =====================

Every job validates its input (bad input is a ``PermanentFailure``) and
simulates its I/O with a short sleep (:mod:`.support`). Workers load them
with ``STOREFRONT_JOBS_IMPORTS=storefront_jobs.examples``, which
``storefront-jobs dev`` sets; :mod:`.demo` sends a mixed workload, and
:mod:`.progress` counts what happened to it.

Importing this package declares the tasks (on every app, as it starts),
connects the progress counters (see :func:`.progress.install` for why at
import) and has the periodic jobs of :mod:`.schedule` added to the schedule
of a beat as it starts; it builds no app and reads no setting.
"""

from __future__ import annotations

from collections.abc import Mapping

from celery import signals as celery_signals

from storefront_jobs.examples import (
    analytics,
    archive,
    notifications,
    payments,
    progress,
    reporting,
    schedule,
)
from storefront_jobs.jobs.task import PriorityTask

#: Every example job by its function name: the names the demo sends and progress counts.
JOBS: Mapping[str, PriorityTask] = {
    task.name.rsplit(".", 1)[-1]: task
    for task in (
        payments.process_payment_webhook,
        payments.confirm_order,
        notifications.send_notification,
        notifications.update_inventory,
        reporting.generate_report,
        reporting.process_email,
        analytics.aggregate_analytics,
        analytics.warm_cache,
        archive.archive_orders,
        archive.migrate_data,
    )
}

progress.install()
celery_signals.beat_init.connect(
    schedule.on_beat_init, weak=False, dispatch_uid="storefront_jobs.examples.schedule"
)

__all__ = ["JOBS", "analytics", "archive", "notifications", "payments", "progress", "reporting", "schedule"]
