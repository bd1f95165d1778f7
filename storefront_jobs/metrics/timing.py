"""Pure time arithmetic for metrics."""

from __future__ import annotations

import datetime as dt
from typing import Any


def parse_eta_s(eta: Any) -> float | None:
    """A Celery ETA (ISO string or datetime) as Unix seconds; ``None`` when absent or unreadable."""
    if eta is None or eta == "":
        return None
    if isinstance(eta, dt.datetime):
        moment = eta
    else:
        try:
            moment = dt.datetime.fromisoformat(str(eta))
        except ValueError:
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def wait_time_s(now_s: float, *, enqueued_at: Any, eta: Any) -> float | None:
    """How long an execution waited to start: from its due time (ETA) or its enqueue time.

    A retry is due at its ETA, so the countdown itself is not waiting; a first
    run is due when it was enqueued. Clock skew between hosts can make the
    difference negative: it is floored at 0.
    """
    due = parse_eta_s(eta)
    if due is None:
        try:
            due = float(enqueued_at) if enqueued_at is not None else None
        except (TypeError, ValueError):
            due = None
    if due is None:
        return None
    return max(0.0, now_s - due)
