"""Undecodable messages: anything in a lane that is not a job lands in the DLQ (reason ``undecodable``).

Left to Celery and kombu, such a message vanishes: Celery's consumer logs it and acknowledges or
rejects it (a body that does not decode, a content type it does not accept, a malformed task
message, a message that is no task message), and kombu's Redis transport, handed a list item that
is not a kombu message at all, raises out of the worker's event loop: the worker exits, the item
is gone. Two hooks keep it instead:

1. :class:`storefront_jobs.broker.fetch.FetchingChannel` wraps a list item that is not a kombu message into
   one whose content type no worker accepts (``WRAPPED_CONTENT_TYPE``), the item as its body, and
   delivers that like any message, so it is held as unacknowledged and reaches step 2;
2. :class:`UndecodableCapturingConsumer`, Celery's ``worker_consumer`` (set by ``create_app``),
   stores a DLQ record with the raw message, then lets Celery acknowledge or reject it: capture
   before ack, as for every dead job.

A task message naming a task the worker has no code for (a producer deployed before its workers)
is a job, not garbage: Celery logs "Received unregistered task" and drops it; here it becomes an
ordinary, replayable dead letter (reason ``rejected``, error ``NotRegistered``, its arguments kept),
to replay once the code is deployed.

The entry's id is ``undecodable-<delivery tag>``, so a redelivery after a crash is stored once.
There is no job in it to send again: replay reports it as not replayable and leaves it in the DLQ;
``dlq show`` (or the API) displays ``rawMessage`` for an operator to read.
"""

from __future__ import annotations

import base64
import logging
import time
import uuid
from collections.abc import Mapping
from typing import Any, Literal

from celery.worker.consumer import Consumer

from storefront_jobs.broker import keys
from storefront_jobs.broker.fetch import WRAP_ERROR_HEADER, WRAP_LANE_HEADER, WRAPPED_CONTENT_TYPE
from storefront_jobs.deadletter.binding import store_for
from storefront_jobs.deadletter.capture import capture as capture_failure
from storefront_jobs.deadletter.record import AttemptError, DeadLetter, ErrorInfo, Payload, RawMessage
from storefront_jobs.jobs import envelope
from storefront_jobs.jobs.failures import FailureReason, JobFailure
from storefront_jobs.jobs.priorities import Priority

logger = logging.getLogger("storefront_jobs.dlq")

#: The task name of an entry whose message names none.
NO_TASK = "(undecodable)"


def _text(value: Any, limit: int = 200) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def raw_message(message: Any, max_bytes: int) -> RawMessage:
    """What the message was, readable: text when it is UTF-8, else base64; at most ``max_bytes`` kept."""
    headers = dict(getattr(message, "headers", None) or {})
    body = getattr(message, "body", b"") or b""
    data = body.encode() if isinstance(body, str) else bytes(body)
    wrapped = getattr(message, "content_type", None) == WRAPPED_CONTENT_TYPE
    kept = data[:max_bytes]
    encoding: Literal["utf-8", "base64"] = "utf-8"
    try:
        text = kept.decode("utf-8")
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(kept).decode(), "base64"
    return RawMessage(
        source="list-item" if wrapped else "body",
        content_type=None if wrapped else getattr(message, "content_type", None),
        content_encoding=None if wrapped else getattr(message, "content_encoding", None),
        headers={} if wrapped else headers,
        properties={} if wrapped else dict(getattr(message, "properties", None) or {}),
        body=text,
        body_encoding=encoding,
        body_bytes=len(data),
        truncated=len(data) > max_bytes,
    )


def _enqueued_at(headers: Mapping[str, Any]) -> float | None:
    value = headers.get(envelope.ENQUEUED_AT)
    return float(value) if isinstance(value, int | float) else None


def _lane(message: Any) -> str | None:
    headers = getattr(message, "headers", None) or {}
    if getattr(message, "content_type", None) == WRAPPED_CONTENT_TYPE:
        return _text(headers.get(WRAP_LANE_HEADER))
    info: Mapping[str, Any] = getattr(message, "delivery_info", None) or {}
    return _text(info.get("routing_key"))


def record_for(
    message: Any, exc: BaseException | None, *, worker: str | None, now_s: float, max_bytes: int
) -> DeadLetter:
    """The DLQ record of a message that is not a job."""
    headers = getattr(message, "headers", None) or {}
    if getattr(message, "content_type", None) == WRAPPED_CONTENT_TYPE:
        error_type, error_message = "NotAKombuMessage", str(headers.get(WRAP_ERROR_HEADER) or "")
    elif exc is None:
        error_type, error_message = "NotATaskMessage", "the message carries no task name"
    else:
        error_type, error_message = type(exc).__name__, str(exc)
    error_message = error_message[:2_000]
    lane = _lane(message)
    task = _text(headers.get(envelope.TASK_NAME)) or NO_TASK
    tenant = _text(headers.get(envelope.TENANT_ID))
    tag = _text(getattr(message, "delivery_tag", None)) or uuid.uuid4().hex
    return DeadLetter(
        execution_id=f"undecodable-{tag}"[:200],
        task=task,
        queue=_text(headers.get(envelope.JOB_QUEUE)) or lane or "(unknown)",
        priority=(keys.priority_of_lane(lane) if lane else None) or Priority.DEFAULT,
        attempt_number=1,
        payload=Payload(task=task),
        tenant_id=tenant,
        last_error=ErrorInfo(type=error_type, message=error_message),
        errors=[AttemptError(attempt=1, type=error_type, message=error_message, at=now_s)],
        reason=FailureReason.UNDECODABLE,
        enqueued_at=_enqueued_at(headers),
        failed_at=now_s,
        worker=worker,
        raw_message=raw_message(message, max_bytes),
    )


def capture(app: Any, message: Any, exc: BaseException | None, worker: str | None) -> bool:
    """Store the record of an undecodable message; True if new. Never raises: Celery acks next."""
    record = None
    try:
        max_bytes = app.storefront_settings.max_payload_bytes
        record = record_for(message, exc, worker=worker, now_s=time.time(), max_bytes=max_bytes)
        added = store_for(app).add(record)
    except Exception:
        # Logged whole: an operator can still import it by hand.
        logger.exception(
            "DLQ capture failed", extra={"record": record.to_json() if record is not None else None}
        )
        return False
    if added:
        logger.warning(
            "Undecodable message moved to DLQ",
            extra={
                "executionId": record.execution_id,
                "queue": record.queue,
                "priority": record.priority.name,
                "lastError": f"{record.last_error.type}: {record.last_error.message}",
                "reason": record.reason.value,
                "worker": worker,
            },
        )
    return added


def unknown_task_failure(
    message: Any, exc: BaseException, *, worker: str | None, now_s: float
) -> JobFailure | None:
    """The dead letter of a task message naming a task the worker does not know, or None if unreadable."""
    headers: dict[str, Any] = dict(getattr(message, "headers", None) or {})
    try:
        args, kwargs, _embed = message.decode()
        execution_id, task = str(headers[envelope.TASK_ID]), str(headers[envelope.TASK_NAME])
    except Exception:
        return None
    if not isinstance(args, list | tuple) or not isinstance(kwargs, dict):
        return None
    lane = _lane(message)
    priority = (keys.priority_of_lane(lane) if lane else None) or Priority.DEFAULT
    return JobFailure(
        execution_id=execution_id,
        task=task,
        job_queue=_text(headers.get(envelope.JOB_QUEUE)) or lane or "(unknown)",
        priority=priority,
        attempt=envelope.attempt_of(headers.get(envelope.RETRIES)),
        reason=FailureReason.REJECTED,
        error_type="NotRegistered",
        error_message=f"no worker of this lane knows the task {task!r} ({type(exc).__name__}: {exc})"[:2_000],
        traceback=None,
        args=list(args),
        kwargs=dict(kwargs),
        headers=headers,
        tenant_id=_text(headers.get(envelope.TENANT_ID)),
        enqueued_at=_enqueued_at(headers),
        failed_at=now_s,
        worker=worker,
    )


class UndecodableCapturingConsumer(Consumer):
    """Celery's consumer, with every message it would drop as undecodable kept in the DLQ first."""

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        capture(self.app, message, exc, self.hostname)
        super().on_decode_error(message, exc)

    def on_invalid_task(self, body: Any, message: Any, exc: Exception) -> None:
        capture(self.app, message, exc, self.hostname)
        super().on_invalid_task(body, message, exc)

    def on_unknown_task(self, body: Any, message: Any, exc: Exception) -> None:
        # A job this worker has no code for (a producer deployed before its workers): Celery logs it
        # and drops it. Kept as a replayable dead letter instead; replay it once the code is deployed.
        failure = unknown_task_failure(message, exc, worker=self.hostname, now_s=time.time())
        if failure is None:  # not even a readable job: kept raw, as undecodable
            capture(self.app, message, exc, self.hostname)
        else:  # a redelivery finds its entry there already; a failed write is logged whole
            capture_failure(store_for(self.app), failure)
        super().on_unknown_task(body, message, exc)

    def on_unknown_message(self, body: Any, message: Any) -> None:
        capture(self.app, message, None, self.hostname)
        super().on_unknown_message(body, message)
