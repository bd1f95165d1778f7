"""DEFAULT jobs (started within 30 s, retried 3 times from 1 s): reports and inbound e-mail.

:class:`ReportingJobService` is the runbook's interim replay path, in Python::

    from storefront_jobs.examples.reporting import ReportingJobService

    job_id = ReportingJobService().enqueue_export(
        "sales_by_period",
        "csv",
        {"start": "2025-01-01", "end": "2025-01-31"},
        "admin@villagecompute.com",
    )

A request is checked twice: by the service, so a caller's mistake is a
``ValueError`` at the call and nothing is enqueued, and again by the job,
because messages also arrive from replays and older producers; there a bad
request fails at once with ``PermanentFailure`` (retrying cannot fix it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from storefront_jobs import PermanentFailure, Priority, priority_task
from storefront_jobs.examples.support import external_call, require_int, require_text

#: Export formats a report can be written in.
FORMATS = frozenset({"csv", "json"})
#: Known reports and the parameters each one needs.
REPORTS: Mapping[str, frozenset[str]] = {
    "sales_by_period": frozenset({"start", "end"}),
    "inventory_snapshot": frozenset(),
    "top_customers": frozenset({"start", "end"}),
}
#: Longest period a report may cover: a year of orders is the largest export the shop serves.
MAX_PERIOD_DAYS = 366
MAX_EMAIL_KB = 25_000


def export_problems(report_name: Any, fmt: Any, params: Any, requested_by: Any) -> list[str]:
    """Everything wrong with an export request, in words; empty when it is valid."""
    problems: list[str] = []
    if report_name not in REPORTS:
        problems.append(f"unknown report {report_name!r}; accepted: {', '.join(sorted(REPORTS))}")
    if fmt not in FORMATS:
        problems.append(f"unknown report format {fmt!r}; accepted: {', '.join(sorted(FORMATS))}")
    if not isinstance(requested_by, str) or "@" not in requested_by:
        problems.append(f"requested_by must be an e-mail address, got {requested_by!r}")
    if not isinstance(params, Mapping) or not all(isinstance(v, str) for v in params.values()):
        problems.append(f"params must map names to strings, got {params!r}")
    elif report_name in REPORTS:
        problems += _param_problems(REPORTS[report_name], params)
    return problems


def _param_problems(needed: frozenset[str], params: Mapping[str, str]) -> list[str]:
    missing = sorted(needed - params.keys())
    if missing:
        return [f"missing report parameter(s) {', '.join(missing)}"]
    if "start" not in needed:
        return []
    try:
        start, end = dt.date.fromisoformat(params["start"]), dt.date.fromisoformat(params["end"])
    except ValueError:
        return [f"start and end must be ISO dates (YYYY-MM-DD), got {params['start']!r}, {params['end']!r}"]
    if not 0 <= (end - start).days <= MAX_PERIOD_DAYS:
        return [f"the period {start}..{end} must run forward and span at most {MAX_PERIOD_DAYS} days"]
    return []


@priority_task(Priority.DEFAULT, queue="reporting.export")
def generate_report(report_name: str, fmt: str, params: dict[str, str], requested_by: str) -> str:
    """Render a report export and store it; returns the object key the requester gets a link to."""
    problems = export_problems(report_name, fmt, params, requested_by)
    if problems:
        raise PermanentFailure("; ".join(problems))
    external_call("reporting-warehouse", 0.12)
    suffix = "-".join(params[name] for name in sorted(params))
    return f"exports/{report_name}{'-' + suffix if suffix else ''}.{fmt}"


@priority_task(Priority.DEFAULT, queue="email.inbound")
def process_email(message_id: str, mailbox: str, size_kb: int) -> str:
    """Parse an inbound e-mail (a reply to an order, a supplier's invoice) and file it; returns its id."""
    require_text(message_id, "message_id")
    require_text(mailbox, "mailbox")
    require_int(size_kb, "size_kb", 1, MAX_EMAIL_KB)
    external_call("mail-store", 0.03 + size_kb * 0.00005)
    return message_id


class ReportingJobService:
    """Enqueues report exports; the runbook's ``ReportingJobService.enqueueExport``."""

    def enqueue_export(self, report_name: str, fmt: str, params: Mapping[str, str], requested_by: str) -> str:
        """Enqueue one export and return its execution id.

        Raises ``ValueError`` for a bad request (nothing is enqueued), and
        :class:`~storefront_jobs.QueueOverflowError` when the DEFAULT lane is full.
        """
        problems = export_problems(report_name, fmt, params, requested_by)
        if problems:
            raise ValueError("cannot enqueue export: " + "; ".join(problems))
        result = generate_report.apply_async(
            kwargs={
                "report_name": report_name,
                "fmt": fmt,
                "params": dict(params),
                "requested_by": requested_by,
            }
        )
        execution_id: str = result.id
        return execution_id
