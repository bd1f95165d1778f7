"""Task messages for replay, built by Celery and kombu but pushed by the DLQ store's own script.

A replay must move an entry to its lane atomically: the message appears in
the lane if and only if the entry leaves the DLQ. kombu publishes with a
plain ``LPUSH``, which cannot share a transaction with the DLQ's keys, so
the message is built here exactly as ``send_task`` would build it (Celery's
protocol-2 headers and body, ``before_task_publish`` receivers, kombu's
envelope and routing), and kombu's final Redis command is collected instead
of run: the store's MOVE script then runs that ``LPUSH`` together with the
removal of the entry.

The collection uses kombu 5.7's publish-batch hook
(:func:`storefront_jobs.broker.accessors.collect_publish`); a kombu that stops
calling it makes :meth:`KombuMessageBuilder.build` fail loudly rather than
publish anything behind the store's back.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

from celery import Celery
from celery.utils.nodenames import anon_nodename
from kombu.serialization import dumps

from storefront_jobs.broker.accessors import collect_publish
from storefront_jobs.errors import StorefrontJobsError
from storefront_jobs.jobs.message import after_publish, before_publish, short_repr


@dataclasses.dataclass(frozen=True)
class BuiltMessage:
    """A task message ready to push: the Redis list and the exact bytes kombu would LPUSH."""

    task: str
    task_id: str
    lane: str
    list_key: str
    payload: str
    headers: dict[str, Any]
    body: Any


class MessageBuilder(Protocol):
    def build(
        self,
        *,
        task: str,
        task_id: str,
        args: list[Any],
        kwargs: dict[str, Any],
        lane: str,
        headers: dict[str, Any],
    ) -> BuiltMessage: ...

    def published(self, message: BuiltMessage) -> None:
        """Called once the message is in its lane."""


class KombuMessageBuilder:
    """Builds replay messages on an app's broker connection (one channel, reused)."""

    def __init__(self, app: Celery) -> None:
        self._app = app
        self._connection = app.connection_for_write()
        self._channel: Any = self._connection.default_channel
        # Read once: Celery's config lookups are a large part of building a message.
        self._serializer = app.conf.task_serializer
        self._ignore_result = bool(app.conf.task_ignore_result)
        self._repr_max = int(app.amqp.argsrepr_maxsize)
        self._origin = anon_nodename()

    def close(self) -> None:
        self._connection.release()

    def build(
        self,
        *,
        task: str,
        task_id: str,
        args: list[Any],
        kwargs: dict[str, Any],
        lane: str,
        headers: dict[str, Any],
    ) -> BuiltMessage:
        app = self._app
        message_headers, properties, body, _ = app.amqp.create_task_message(
            task_id,
            task,
            args,
            kwargs,
            ignore_result=self._ignore_result,
            origin=self._origin,
            # The arguments are JSON values (they came out of a JSON record), so plain repr is
            # safe; Celery's saferepr would cost more than the rest of the message.
            argsrepr=short_repr(args, self._repr_max),
            kwargsrepr=short_repr(kwargs, self._repr_max),
        )
        message_headers.update(headers)
        # What send_task does for a direct lane: the anonymous exchange, routing key = queue.
        before_publish(task, body, lane, message_headers, properties, {})
        content_type, content_encoding, raw = dumps(body, serializer=self._serializer)
        properties["delivery_mode"] = 2
        envelope = self._channel.prepare_message(
            raw, 0, content_type, content_encoding, message_headers, properties
        )
        commands = collect_publish(self._channel, envelope, lane)
        pushes = [args for name, args in commands if name == "lpush"]
        if len(commands) != 1 or len(pushes) != 1:
            raise StorefrontJobsError(
                f"kombu produced {commands!r} for one message; replay needs exactly one LPUSH "
                "(is kombu older or newer than 5.7?)"
            )
        list_key, payload = pushes[0]
        return BuiltMessage(
            task=task,
            task_id=task_id,
            lane=lane,
            list_key=str(list_key),
            payload=payload if isinstance(payload, str) else payload.decode(),
            headers=message_headers,
            body=body,
        )

    def published(self, message: BuiltMessage) -> None:
        after_publish(message.task, message.body, message.lane, message.headers)
