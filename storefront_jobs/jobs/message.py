"""A job's Celery message, piece by piece, and the shapes of the calls that make them.

What the lean enqueue (:mod:`storefront_jobs.jobs.publish`) and the DLQ replay
(:mod:`storefront_jobs.deadletter.messages`) build alike: the per-task
:class:`MessageTemplate` of Celery's protocol-2 headers, the argument reprs,
the JSON of the arguments and the payload limit, the signature check, the
two publish signals as ``send_task`` sends them for a lane, and the
``root_id``/``parent_id`` lineage. Also the calls of ``enqueue_many`` and
``enqueue_chunked`` (:mod:`storefront_jobs.jobs.batch`): how a call is read
and how calls are cut into chunks.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any

from celery import Task
from celery import signals as celery_signals
from celery.utils.nodenames import anon_nodename
from kombu.exceptions import EncodeError

from storefront_jobs.broker import wire
from storefront_jobs.errors import PayloadError


def short_repr(value: Any, max_size: int) -> str:
    """``repr`` cut to ``max_size`` characters, as Celery shows arguments in events and logs.

    The arguments are JSON values (the serializer is JSON), so plain ``repr``
    is safe; Celery's ``saferepr`` costs more than the rest of the message.
    """
    text = repr(value)
    return text if len(text) <= max_size else text[: max_size - 3] + "..."


def payload_error(task: str, size: int, limit_bytes: int) -> PayloadError | None:
    """The error of a job whose arguments take ``size`` bytes as JSON, or None within the limit."""
    if size <= limit_bytes:
        return None
    return PayloadError(
        f"cannot enqueue {task}: its arguments take {size} bytes as JSON, over the limit of "
        f"{limit_bytes} (STOREFRONT_JOBS_MAX_PAYLOAD_BYTES); pass a reference to the data (an id, "
        "an object-store key) instead"
    )


def encode_json(task: str, value: Any) -> str:
    """``value`` as kombu's JSON serializer writes it, or PayloadError naming the task.

    (:func:`storefront_jobs.broker.wire.to_json`).
    """
    try:
        return wire.to_json(value)
    except (TypeError, ValueError, EncodeError) as exc:
        raise PayloadError(f"cannot enqueue {task}: arguments are not JSON-serializable: {exc}") from exc


def check_signature(task: Task[Any, Any], args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    """Celery's check of a call against the task's signature: a TypeError at the call site."""
    header_check = getattr(task, "__header__", None) if task.typing else None
    if header_check is not None:
        header_check(*args, **kwargs)


def before_publish(
    task: str, body: Any, lane: str, headers: dict[str, Any], properties: dict[str, Any], retry_policy: Any
) -> None:
    """``before_task_publish`` as send_task sends it for a direct lane (the default exchange)."""
    celery_signals.before_task_publish.send(
        sender=task,
        body=body,
        exchange="",
        routing_key=lane,
        declare=[],
        headers=headers,
        properties=properties,
        retry_policy=retry_policy,
    )


def after_publish(task: str, body: Any, lane: str, headers: dict[str, Any]) -> None:
    """``after_task_publish`` as send_task sends it once the message is in ``lane``."""
    celery_signals.after_task_publish.send(
        sender=task, body=body, exchange="", routing_key=lane, headers=headers
    )


@dataclasses.dataclass(frozen=True, slots=True)
class MessageTemplate:
    """What every message of one task shares, built by Celery once per task and process."""

    task: str
    #: Celery's protocol-2 headers of a plain call; ``id``, ``root_id``, ``parent_id`` and the reprs
    #: are filled per job.
    headers: Mapping[str, Any]
    #: The third part of the body (callbacks, errbacks, chain, chord): all None for a plain call.
    embed: Mapping[str, Any]
    pid: int
    #: ``embed`` as JSON: the body's third part of nearly every job.
    embed_json: str = "null"


def build_template(task: Task[Any, Any]) -> MessageTemplate:
    headers, _properties, body, _sent = task.app.amqp.create_task_message(
        "",
        task.name,
        (),
        {},
        time_limit=task.time_limit,
        soft_time_limit=task.soft_time_limit,
        ignore_result=task.ignore_result,
        origin=anon_nodename(),  # gen<pid>@host: per process
        argsrepr="",
        kwargsrepr="",
    )
    embed = dict(body[2])
    return MessageTemplate(task.name, dict(headers), embed, os.getpid(), wire.to_json(embed))


def lineage(parent: Any, task_id: str) -> tuple[str, str | None]:
    """``root_id`` and ``parent_id`` as send_task sets them: from the task running here, if any."""
    if not parent:
        return task_id, None
    request = parent.request
    return (request.root_id or request.id or task_id), request.id


def split_call(task: str, call: Sequence[Any] | Mapping[str, Any]) -> tuple[Any, Any]:
    if isinstance(call, Mapping):
        return (), call
    if isinstance(call, (list, tuple)):
        return call, {}
    raise TypeError(
        f"enqueue_many of {task}: each call is a list or tuple of positional arguments or a mapping "
        f"of keyword arguments, not {type(call).__name__}"
    )


def check_chunk_size(size: int) -> None:
    if size < 1:
        raise ValueError(f"chunk_size must be at least 1, not {size}")


def chunks_of(items: Sequence[Any], size: int) -> list[list[Any]]:
    """``items`` in order, ``size`` at a time (the last chunk may be shorter)."""
    check_chunk_size(size)
    return [list(items[i : i + size]) for i in range(0, len(items), size)]
