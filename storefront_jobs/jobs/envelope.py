"""What a job carries besides its arguments: the message headers storefront-jobs stamps.

Headers are stamped once, on the first publish, and travel unchanged through
retries (Celery copies a request's headers into the retry message), except
``attempt``, which is recomputed on every publish from Celery's ``retries``.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

from storefront_jobs.broker.keys import priority_of_lane

ENQUEUED_AT = "enqueuedAt"
TENANT_ID = "tenantId"
JOB_QUEUE = "jobQueue"
PRIORITY = "priority"
ATTEMPT = "attempt"
REPLAY_OF = "replayOf"
REPLAY_COUNT = "replayCount"
#: The priority name of the lane a job was first promoted out of by aging (storefront_jobs.broker.aging).
PROMOTED_FROM = "promotedFrom"
#: Set (true) on a message that carries many items of its task (storefront_jobs.jobs.chunks); kept in
#: the DLQ record of a whole chunk, so that its replay is a chunk again.
ITEM_CHUNK = "itemChunk"
#: Unix seconds when the message entered the lane it waits in: stamped by the transport on every
#: push into a lane (a retry and a promotion too), so that aging measures the wait in that lane.
LANE_SINCE = "laneSince"

#: Headers of Celery's task protocol (version 2) that storefront-jobs reads.
TASK_ID = "id"
TASK_NAME = "task"
RETRIES = "retries"
#: When a retry is due (ISO 8601), or None; aging counts a retry as waiting only from then on.
ETA = "eta"

#: Every header this module owns, in the order logs and DLQ records show them.
STAMPED_HEADERS = (
    ENQUEUED_AT,
    TENANT_ID,
    JOB_QUEUE,
    PRIORITY,
    ATTEMPT,
    REPLAY_OF,
    REPLAY_COUNT,
    PROMOTED_FROM,
    ITEM_CHUNK,
)


def stamp(
    headers: MutableMapping[str, Any],
    *,
    lane: str | None,
    now_s: float,
    tenant_id: str | None,
) -> None:
    """Fill in the storefront headers of a message about to be published.

    ``setdefault`` keeps the first publish's values on retries; the attempt
    is always recomputed because Celery bumps ``retries`` on every retry.
    """
    headers.setdefault(ENQUEUED_AT, now_s)
    if tenant_id is not None:
        headers.setdefault(TENANT_ID, tenant_id)
    priority = priority_of_lane(lane) if lane else None
    if priority is not None:
        headers[PRIORITY] = priority.name
    headers[ATTEMPT] = attempt_of(headers.get(RETRIES))


def stamp_lane_entry(message: MutableMapping[str, Any], now_s: float) -> None:
    """Record in a kombu message about to be pushed into a lane when it entered it (``laneSince``).

    Called by the transport on every push into a lane, after the producer's
    ``before_task_publish``: a retry is pushed with its first enqueue's
    ``enqueuedAt``, and aging must count its wait in the lane from this push.
    """
    headers = message.get("headers")
    if isinstance(headers, MutableMapping):
        headers[LANE_SINCE] = now_s


def attempt_of(retries: Any) -> int:
    """The attempt number of an execution after ``retries`` retries (Celery's count; None for none)."""
    return int(retries or 0) + 1


def read(request: Any, name: str, default: Any = None) -> Any:
    """A header of a Celery request, wherever this Celery version put it.

    Custom headers show up both in ``request.headers`` and as attributes of
    the request context, depending on the code path (pool child or main
    process after a lost worker); look in both.
    """
    headers = getattr(request, "headers", None)
    if isinstance(headers, Mapping) and name in headers:
        return headers[name]
    value = getattr(request, name, None)
    return default if value is None else value


def all_headers(request: Any) -> dict[str, Any]:
    """The storefront headers of a request, for logs and DLQ records."""
    found = {name: read(request, name) for name in STAMPED_HEADERS}
    return {name: value for name, value in found.items() if value is not None}
