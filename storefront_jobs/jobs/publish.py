"""The lean enqueue: Celery's own task message, built from what a task's messages share, pushed in one call.

``PriorityTask.apply_async`` sends an ordinary call (``delay(...)``,
``apply_async(args, kwargs, priority=..., headers=...)``) through
:class:`LanePublisher` instead of Celery's ``send_task`` and kombu's
``publish``. What a worker reads is the same: a Celery protocol-2 message
(its headers made by Celery's own ``create_task_message``, once per task, as a
:class:`MessageTemplate`), in kombu's Redis envelope
(:mod:`storefront_jobs.broker.wire`), pushed by the same admission script as
the transport's (:mod:`storefront_jobs.broker.lanepush`). What users'
instrumentation sees is the same: ``before_task_publish`` (whose receivers may
change the headers, as storefront's own stamping does) and
``after_task_publish``, with Celery's arguments. What is skipped is the
per-call work a lane does not need: Celery's routing and option merging,
``saferepr`` of the arguments, and kombu's entity copies, declaration checks
and serializer registry.

Anything else takes Celery's path unchanged: links, countdowns and ETAs,
expiry, a producer or shadow name of the caller's, a result backend, sent
events, compression, another serializer, eager mode, retries, and a broker
served by kombu's own transport (:func:`serves`).

:meth:`LanePublisher.send_many` is ``enqueue_many``'s engine: it builds the
messages of a chunk the same way and admits and pushes the chunk in one
script call (one round trip for hundreds of jobs).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import redis
from celery import Task
from kombu.exceptions import OperationalError

from storefront_jobs.broker import lanepush, wire
from storefront_jobs.broker.clients import unavailable
from storefront_jobs.broker.held import HeldConnection
from storefront_jobs.broker.keys import lane_name
from storefront_jobs.broker.replicas import Quorum
from storefront_jobs.broker.transport import CAPACITY_OPTION
from storefront_jobs.errors import PartialEnqueueError, StorefrontJobsError
from storefront_jobs.jobs.message import (
    MessageTemplate,
    after_publish,
    before_publish,
    build_template,
    check_chunk_size,
    check_signature,
    chunks_of,
    encode_json,
    lineage,
    payload_error,
    short_repr,
    split_call,
)
from storefront_jobs.jobs.priorities import Priority

if TYPE_CHECKING:
    from storefront_jobs.jobs.task import PriorityTask

#: Options of apply_async the lean path serves (after PriorityTask has turned ``priority`` into ``queue``).
LEAN_OPTIONS = frozenset({"queue", "headers"})
#: Jobs per script call of enqueue_many: big enough that the round trip is a small part of a job,
#: small enough that one call holds Redis for about a millisecond.
DEFAULT_CHUNK_SIZE = 500


def serves(task: Task[Any, Any], options: Mapping[str, Any]) -> bool:
    """Whether the lean path serves this call: an ordinary enqueue of a storefront job on Redis.

    ``options`` are apply_async's keyword options besides args and kwargs
    (``task_id`` is served; link, link_error, producer and shadow arrive as
    options here when given).
    """
    app: Any = task.app
    if not getattr(app, "checks_capacity_in_transport", False) or app.conf.task_always_eager:
        return False
    if any(value is not None for key, value in options.items() if key not in LEAN_OPTIONS):
        return False
    return bool(app.lane_publisher.static_lean(task))


def _static_lean(task: Task[Any, Any]) -> bool:
    """What never changes for a task: its serializer, compression, expiry, results and sent events."""
    conf = task.app.conf
    return bool(
        (task.serializer or conf.task_serializer) == "json"
        and getattr(task, "compression", None) is None
        and conf.task_compression is None
        and task.expires is None
        and not conf.result_backend
        and not conf.task_send_sent_event
        and type(task).shadow_name is Task.shadow_name
        and int(conf.task_protocol) == 2
    )


@dataclasses.dataclass(slots=True)
class _Built:
    """One job's message, ready to push, with what after_task_publish reports."""

    task_id: str
    message: dict[str, Any]
    headers: dict[str, Any]
    body: tuple[Any, Any, Any]
    #: The task running in this thread when the job was sent (its parent), or None.
    parent: Any = None


class LanePublisher:
    """Sends storefront jobs without Celery's send_task (see the module docstring); one per app."""

    def __init__(self, app: Any) -> None:
        self._app = app
        self._templates: dict[str, MessageTemplate] = {}
        self._static: dict[str, bool] = {}
        options = app.conf.broker_transport_options or {}
        self._transport_options: Mapping[str, Any] = options
        self._capacities: Mapping[str, int] = options.get(CAPACITY_OPTION) or {}
        self._limit_bytes: int = app.storefront_settings.max_payload_bytes
        self._repr_max = int(app.amqp.argsrepr_maxsize)
        self._retry_policy = dict(app.conf.task_publish_retry_policy or {})
        self._held = HeldConnection(app.redis)
        self._quorum = Quorum.of(app.storefront_settings)
        self._result_cls = app.AsyncResult

    def static_lean(self, task: Task[Any, Any]) -> bool:
        """:func:`_static_lean` of a task, decided once: Celery's config lookups cost microseconds each."""
        known = self._static.get(task.name)
        if known is None:
            known = self._static[task.name] = _static_lean(task)
        return known

    def template(self, task: Task[Any, Any]) -> MessageTemplate:
        cached = self._templates.get(task.name)
        if cached is None or cached.pid != os.getpid():
            cached = self._templates[task.name] = build_template(task)
        return cached

    # --- one job --------------------------------------------------------------------------

    def send(
        self,
        task: PriorityTask,
        args: Any,
        kwargs: Any,
        *,
        priority: Priority,
        headers: Mapping[str, Any],
        task_id: str | None = None,
    ) -> Any:
        """Enqueue one job on ``priority``'s lane; its AsyncResult, or the error of Celery's path."""
        lane = lane_name(priority)
        built = self._build(task, args, kwargs, lane=lane, headers=headers, task_id=task_id)
        self._push_one(task, lane, built)
        return self._published(task, built, lane)

    # --- many jobs ------------------------------------------------------------------------

    def send_many(
        self,
        task: PriorityTask,
        calls: Iterable[Sequence[Any] | Mapping[str, Any]],
        *,
        priority: Priority,
        headers: Mapping[str, Any],
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        check_arguments: bool = True,
    ) -> list[Any]:
        """Enqueue one job per call, a chunk per script call; PartialEnqueueError says how far it got.

        A call is a sequence of positional arguments or a mapping of keyword
        arguments (``check_arguments=False``: already checked against the
        task's signature, as chunks of items are). A chunk that would overfill
        the lane is refused whole.
        Jobs of a tenant in a fair lane are admitted one by one (each onto its
        tenant's list), in the same order.
        """
        check_chunk_size(chunk_size)
        lane = lane_name(priority)
        results: list[Any] = []
        # Every call is checked before the first push: a bad one sends nothing.
        pending = [split_call(task.name, call) for call in calls]
        if check_arguments:
            for args, kwargs in pending:
                check_signature(task, args, kwargs)
        try:
            for chunk in chunks_of(pending, chunk_size):
                built = [
                    self._build(task, args, kwargs, lane=lane, headers=headers, check_arguments=False)
                    for args, kwargs in chunk
                ]
                if lanepush.fair_tenant(self._transport_options, lane, built[0].message) is not None:
                    for one in built:
                        self._push_one(task, lane, one)
                        results.append(self._published(task, one, lane))
                    continue
                with _broker_errors(task.name, lane):
                    lanepush.admit_and_push_many(
                        self._app.redis,
                        lane,
                        [b.message for b in built],
                        capacity=self._capacities[lane],
                        quorum=self._quorum,
                    )
                results.extend(self._published(task, one, lane) for one in built)
        except (StorefrontJobsError, OperationalError) as exc:
            raise PartialEnqueueError(task.name, results, len(pending), exc) from exc
        return results

    def _push_one(self, task: PriorityTask, lane: str, built: _Built) -> None:
        """One job admitted and pushed alone: onto its tenant's list in a fair lane, else the lane's."""
        tenant = lanepush.fair_tenant(self._transport_options, lane, built.message)
        with _broker_errors(task.name, lane, built.task_id):
            lanepush.admit_and_push(
                self._app.redis,
                lane,
                built.message,
                capacity=self._capacities[lane],
                target=lane,
                tenant=tenant,
                held=self._held,
                quorum=self._quorum,
            )

    # --- the message ----------------------------------------------------------------------

    def _build(
        self,
        task: PriorityTask,
        args: Any,
        kwargs: Any,
        *,
        lane: str,
        headers: Mapping[str, Any],
        task_id: str | None = None,
        check_arguments: bool = True,
    ) -> _Built:
        args = list(args or ())
        kwargs = dict(kwargs or {})
        if check_arguments:
            check_signature(task, args, kwargs)
        template = self.template(task)
        task_id = task_id or str(uuid.uuid4())
        message_headers = dict(template.headers)
        message_headers["id"] = task_id
        parent = self._app.current_worker_task
        message_headers["root_id"], message_headers["parent_id"] = lineage(parent, task_id)
        message_headers["argsrepr"] = short_repr(tuple(args), self._repr_max)
        message_headers["kwargsrepr"] = short_repr(kwargs, self._repr_max)
        message_headers.update(headers)
        properties: dict[str, Any] = {"correlation_id": task_id, "reply_to": self._app.thread_oid}
        body = (args, kwargs, dict(template.embed))
        before_publish(task.name, body, lane, message_headers, properties, self._retry_policy)
        # Encoded after the signal, as kombu does: a receiver may still change the arguments.
        args_json = encode_json(task.name, body[0]) if body[0] else "[]"
        kwargs_json = encode_json(task.name, body[1]) if body[1] else "{}"
        # The size check_payload measures: the JSON of the (args, kwargs) pair.
        error = payload_error(task.name, len(args_json) + len(kwargs_json) + 4, self._limit_bytes)
        if error is not None:
            raise error
        embed = body[2]
        embed_json = template.embed_json if embed == template.embed else encode_json(task.name, embed)
        body_json = f"[{args_json}, {kwargs_json}, {embed_json}]"
        message = wire.lane_message(body_json, message_headers, properties, lane=lane)
        return _Built(task_id, message, message_headers, body, parent)

    def _published(self, task: PriorityTask, built: _Built, lane: str) -> Any:
        after_publish(task.name, built.body, lane, built.headers)
        # What task.AsyncResult builds, without its per-call lookups of app and backend.
        result = self._result_cls(built.task_id, backend=task.backend, task_name=task.name)
        if built.parent:
            built.parent.add_trail(result)
        return result


@contextlib.contextmanager
def _broker_errors(task_name: str, lane: str, job_id: str | None = None) -> Iterator[None]:
    """Turns redis-py's connection errors and timeouts into BrokerUnavailableError (an OperationalError,
    which Celery's publish raises)."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise unavailable(f"enqueue {task_name} into lane {lane!r}", exc, job_id=job_id) from exc
