"""Which DLQ entries an operation is about: filters, time bounds and cursors, as pure functions.

A :class:`Filter` is what the CLI flags and the HTTP query parameters both
parse into. Equality filters (queue, priority, task, tenant, error type,
reason) map to one index each; ``since``/``until`` bound the entry's score
(its ``failedAt``). A cursor is the score of the last entry a page returned:
scores are unique, so "older than the cursor" resumes exactly.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
from typing import Any

from storefront_jobs.deadletter.errors import InvalidFilterError
from storefront_jobs.jobs.failures import FailureReason
from storefront_jobs.jobs.priorities import Priority

#: ``--queue all`` (the runbook's spelling) means every job queue.
ALL = "all"

_DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d|w)$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclasses.dataclass(frozen=True)
class Filter:
    """Entries matching every given field; an empty filter matches the whole DLQ."""

    queue: str | None = None
    priority: Priority | None = None
    task: str | None = None
    tenant: str | None = None
    error: str | None = None
    reason: FailureReason | None = None
    since_s: float | None = None
    until_s: float | None = None

    def terms(self) -> list[tuple[str, str]]:
        """(index field, value) pairs, as in ``DeadLetter.index_values``."""
        values: dict[str, str | None] = {
            "queue": None if self.queue in (None, ALL) else self.queue,
            "priority": self.priority.name if self.priority is not None else None,
            "task": self.task,
            "tenant": self.tenant,
            "error": self.error,
            "reason": self.reason.value if self.reason is not None else None,
        }
        return [(field, value) for field, value in values.items() if value]

    def is_empty(self) -> bool:
        """Nothing given at all; ``queue=all`` is a choice (everything), not an empty filter."""
        return self.queue is None and not self.terms() and self.since_s is None and self.until_s is None

    def matches(self, index_values: dict[str, str], score: float) -> bool:
        """Whether an entry with these index values and score passes the filter."""
        if self.since_s is not None and score < self.since_s:
            return False
        if self.until_s is not None and score > self.until_s:
            return False
        return all(index_values.get(field) == value for field, value in self.terms())

    def not_before(self, cutoff_s: float) -> Filter:
        """The same filter, never reaching further back than ``cutoff_s`` (the retention)."""
        if self.since_s is not None and self.since_s >= cutoff_s:
            return self
        return dataclasses.replace(self, since_s=cutoff_s)

    def describe(self) -> dict[str, Any]:
        """The filter as JSON-ready fields, for the audit log and dry runs."""
        out: dict[str, Any] = dict(self.terms())
        if self.queue == ALL:
            out["queue"] = ALL
        if self.since_s is not None:
            out["since"] = self.since_s
        if self.until_s is not None:
            out["until"] = self.until_s
        return out


def parse_time(text: str, now_s: float) -> float:
    """Seconds since the epoch from ``1h``/``30m``/``2d`` ago, an ISO 8601 time or epoch seconds."""
    value = text.strip()
    match = _DURATION_RE.match(value.lower())
    if match:
        return now_s - float(match.group(1)) * _UNIT_S[match.group(2)]
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidFilterError(
            f"cannot read time {text!r}: use a duration ago (90s, 15m, 2h, 7d), ISO 8601 or epoch seconds"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


def utc_time(epoch_s: float | None, suffix: str = "") -> str:
    """A time stamp as operators read it, in UTC to the second (``-`` for none): the inverse of parse_time."""
    if epoch_s is None:
        return "-"
    return dt.datetime.fromtimestamp(epoch_s, dt.UTC).strftime("%Y-%m-%d %H:%M:%S") + suffix


def build_filter(
    *,
    queue: str | None = None,
    priority: str | None = None,
    task: str | None = None,
    tenant: str | None = None,
    error: str | None = None,
    reason: str | None = None,
    since: str | None = None,
    until: str | None = None,
    now_s: float,
) -> Filter:
    """A filter from the raw strings of a CLI or HTTP request; bad values raise InvalidFilterError."""
    try:
        parsed_priority = Priority.parse(priority) if priority else None
    except ValueError as exc:
        raise InvalidFilterError(str(exc)) from None
    try:
        parsed_reason = FailureReason(reason.strip().lower()) if reason else None
    except ValueError:
        accepted = ", ".join(r.value for r in FailureReason)
        raise InvalidFilterError(f"unknown reason {reason!r}; accepted values: {accepted}") from None
    return Filter(
        queue=queue.strip() if queue else None,
        priority=parsed_priority,
        task=task or None,
        tenant=tenant or None,
        error=error or None,
        reason=parsed_reason,
        since_s=parse_time(since, now_s) if since else None,
        until_s=parse_time(until, now_s) if until else None,
    )


def encode_cursor(score: str | float) -> str:
    """The cursor after an entry with this score (Redis' exact text of the score)."""
    return str(score)


def decode_cursor(cursor: str) -> float:
    try:
        value = float(cursor)
    except ValueError:
        raise InvalidFilterError(
            f"invalid cursor {cursor!r}: pass the nextCursor of a previous page"
        ) from None
    if not math.isfinite(value):
        raise InvalidFilterError(f"invalid cursor {cursor!r}")
    return value


def score_bounds(flt: Filter, cursor: str | None) -> tuple[str, str]:
    """(max, min) arguments of ZREVRANGEBYSCORE for a filter and a cursor; newest first."""
    upper = "+inf" if flt.until_s is None else repr(float(flt.until_s))
    if cursor is not None:
        after = decode_cursor(cursor)
        upper = f"({after!r}" if flt.until_s is None or after <= flt.until_s else upper
    lower = "-inf" if flt.since_s is None else repr(float(flt.since_s))
    return upper, lower
