"""The DLQ record: everything an operator needs to understand a dead job and send it again.

The JSON form (camelCase, the export line and what Redis stores) is the one in
DESIGN.md::

    executionId, task, queue, priority, attemptNumber,
    payload {task, args, kwargs, headers},       <- what replay resends
    args, kwargs, headers, tenantId,
    lastError {type, message, traceback},
    errors [{attempt, type, message, at}],       <- every attempt, oldest first
    reason, enqueuedAt, failedAt, worker, replayOf, replayCount,
    promotedFrom                                 <- the lane aging promoted it from, or null
    rawMessage                                   <- undecodable entries only

Times are seconds since the epoch (floats), like the ``enqueuedAt`` header.
``args``/``kwargs`` are the job's real JSON values, never reprs, so a record
can be replayed and exported without loss.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SerializerFunctionWrapHandler,
    model_serializer,
)
from pydantic.alias_generators import to_camel

from storefront_jobs.jobs import envelope
from storefront_jobs.jobs.failures import FailureReason, JobFailure
from storefront_jobs.jobs.priorities import Priority

#: A priority read from its name (any case) or order, written as its name ("CRITICAL").
PriorityName = Annotated[
    Priority, BeforeValidator(Priority.parse), PlainSerializer(lambda p: p.name, return_type=str)
]


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore", strict=False
    )


class Payload(_Model):
    """What replay resends: the task, its arguments and the storefront headers."""

    task: str = Field(min_length=1)
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    headers: dict[str, Any] = {}


class ErrorInfo(_Model):
    """The final error of a job."""

    type: str
    message: str
    traceback: str | None = None


class AttemptError(_Model):
    """The error of one attempt, and when it happened."""

    attempt: int = Field(ge=1)
    type: str
    message: str
    at: float


class RawMessage(_Model):
    """The message of an ``undecodable`` entry, as it was found, so an operator can read it.

    ``source`` is ``body`` when kombu's envelope was readable but the job in it
    was not (a foreign content type, a body that is not JSON, a malformed task
    message), ``list-item`` when the lane's list item was not a kombu message
    at all. ``body`` is text when it was UTF-8, else base64 (``bodyEncoding``);
    it keeps at most ``MAX_PAYLOAD_BYTES`` (``bodyBytes`` is the full size).
    """

    source: Literal["body", "list-item"]
    content_type: str | None = None
    content_encoding: str | None = None
    headers: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    body: str = ""
    body_encoding: Literal["utf-8", "base64"] = "utf-8"
    body_bytes: int = Field(default=0, ge=0)
    truncated: bool = False


class DeadLetter(_Model):
    """One entry of the DLQ, keyed by ``execution_id``."""

    execution_id: str = Field(min_length=1, max_length=200)
    task: str = Field(min_length=1)
    queue: str = Field(min_length=1)
    priority: PriorityName
    attempt_number: int = Field(ge=1)
    payload: Payload
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    headers: dict[str, Any] = {}
    tenant_id: str | None = None
    last_error: ErrorInfo
    errors: list[AttemptError] = []
    reason: FailureReason
    enqueued_at: float | None = None
    failed_at: float
    worker: str | None = None
    replay_of: str | None = None
    replay_count: int = Field(default=0, ge=0)
    #: The lane aging first promoted the job out of; ``priority`` is the lane it failed in.
    promoted_from: PriorityName | None = None
    #: Only on ``undecodable`` entries; absent from every other record's JSON.
    raw_message: RawMessage | None = None

    # Unannotated return on purpose: pydantic then keeps the model's own schema
    # for serialization (the OpenAPI document); with one it would use that type.
    @model_serializer(mode="wrap")
    def _omit_absent_raw_message(self, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]
        data = handler(self)
        if isinstance(data, dict):
            for key in ("rawMessage", "raw_message"):
                if key in data and data[key] is None:
                    del data[key]
        return data

    @property
    def replayable(self) -> bool:
        """An undecodable message is no job: there is nothing to send again."""
        return self.reason is not FailureReason.UNDECODABLE

    def to_json(self) -> str:
        """The canonical JSON line: what Redis stores and what export writes."""
        return self.model_dump_json(by_alias=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> DeadLetter:
        return cls.model_validate_json(text)

    def index_values(self) -> dict[str, str]:
        """The values this entry is indexed (and filtered) by; fields of keys.DLQ_INDEX_FIELDS."""
        values = {
            "queue": self.queue,
            "priority": self.priority.name,
            "task": self.task,
            "error": self.last_error.type,
            "reason": self.reason.value,
        }
        if self.tenant_id:
            values["tenant"] = self.tenant_id
        return values


def _replay_count(headers: dict[str, Any]) -> int:
    try:
        return max(0, int(headers.get(envelope.REPLAY_COUNT) or 0))
    except (TypeError, ValueError):
        return 0


def record_from_failure(failure: JobFailure, attempts: list[AttemptError]) -> DeadLetter:
    """Build the record of a final failure; ``attempts`` are the earlier attempts' errors.

    The final attempt's error is appended unless the list already ends with it
    (a re-capture after a crash reads the same attempts again).
    """
    final = AttemptError(
        attempt=failure.attempt, type=failure.error_type, message=failure.error_message, at=failure.failed_at
    )
    # Oldest first by attempt, not by arrival: under load a retry can fail and record its error
    # before the pool process of the attempt before it has recorded its own.
    earlier = sorted((a for a in attempts if a.attempt < failure.attempt), key=lambda a: a.attempt)
    errors = [*earlier, final]
    # Only the headers a resend needs: the rest (attempt, enqueuedAt) belong to this execution.
    resend_headers = {
        k: v
        for k, v in failure.headers.items()
        if k in (envelope.TENANT_ID, envelope.JOB_QUEUE, envelope.REPLAY_OF, envelope.REPLAY_COUNT)
    }
    resend_headers.setdefault(envelope.JOB_QUEUE, failure.job_queue)
    replay_of = failure.headers.get(envelope.REPLAY_OF)
    return DeadLetter(
        execution_id=failure.execution_id,
        task=failure.task,
        queue=failure.job_queue,
        priority=failure.priority,
        attempt_number=failure.attempt,
        payload=Payload(task=failure.task, args=failure.args, kwargs=failure.kwargs, headers=resend_headers),
        args=failure.args,
        kwargs=failure.kwargs,
        headers=dict(failure.headers),
        tenant_id=failure.tenant_id,
        last_error=ErrorInfo(
            type=failure.error_type, message=failure.error_message, traceback=failure.traceback
        ),
        errors=errors,
        reason=failure.reason,
        enqueued_at=failure.enqueued_at,
        failed_at=failure.failed_at,
        worker=failure.worker,
        replay_of=str(replay_of) if replay_of else None,
        replay_count=_replay_count(failure.headers),
        promoted_from=failure.promoted_from,
    )
