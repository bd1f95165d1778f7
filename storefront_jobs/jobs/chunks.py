"""Many items per message, each item's outcome its own: batch work for tiny, numerous jobs.

Archive rows, migrations and backfills are millions of jobs whose body takes
microseconds; one message each spends nearly all of a job's time in
Celery's per-message path (fetch, pool hand-off, hooks, acknowledgement).
``task.enqueue_chunked(calls, chunk_size=500)`` sends the calls of one task as
messages of up to ``chunk_size`` items (``itemChunk`` header, the items as the
one argument); the worker runs the task's body once per item
(:func:`run_chunk`), and an item that raises is handled alone, as the job it
would have been:

* a retryable error with retries left in the job's lane (LOW: 3, BULK: none)
  sends that item again as an ordinary job of the same task, attempt 2, on
  the lane's retry schedule (its execution id is ``<chunk id>.<index>``,
  stable across its retries);
* otherwise the item fails for good: its own :class:`JobFailure` goes
  through the worker's hooks like any final failure (logged, counted,
  written to the DLQ with its own arguments, ``on_exhausted`` called), so
  its record replays one item as an ordinary job.

The other items complete. The chunk's message succeeds once every item has
an outcome, which is recorded before the message is acknowledged
(late ack), so nothing is lost if the worker dies: the whole chunk is then
delivered again, and items that had completed run a second time (the same
at-least-once rule as any job; bodies must be idempotent). What counts
against the lane's capacity and the time limit is the message: keep
``chunk_size`` times an item's duration well below ``task_time_limit``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from billiard.einfo import ExceptionInfo
from celery.exceptions import Retry

from storefront_jobs.jobs import envelope
from storefront_jobs.jobs.failures import is_retryable
from storefront_jobs.jobs.message import check_signature, split_call
from storefront_jobs.jobs.retry import countdown_s
from storefront_jobs.worker.hooks import HookChain

if TYPE_CHECKING:
    from storefront_jobs.jobs.context import JobContext
    from storefront_jobs.jobs.task import PriorityTask

#: Items per message of enqueue_chunked.
DEFAULT_CHUNK_ITEMS = 500


@dataclasses.dataclass(frozen=True, slots=True)
class ChunkOutcome:
    """What became of a chunk's items: the return value of its message."""

    done: int
    retried: int
    dead_lettered: int

    def as_result(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def item_calls(task: PriorityTask, calls: Iterable[Sequence[Any] | Mapping[str, Any]]) -> list[list[Any]]:
    """The calls as ``[args, kwargs]`` items, each checked against the task's signature now."""
    items: list[list[Any]] = []
    for call in calls:
        args, kwargs = split_call(task.name, call)
        check_signature(task, args, kwargs)  # a TypeError at the call site, as for one job
        items.append([list(args), dict(kwargs)])
    return items


def is_chunk(request: Any) -> bool:
    """Whether the delivery is a chunk of items (see the module docstring)."""
    return bool(envelope.read(request, envelope.ITEM_CHUNK))


def item_id(chunk_id: str, index: int) -> str:
    """The execution id of item ``index`` of a chunk: stable across the item's retries."""
    return f"{chunk_id}.{index}"


def run_chunk(task: PriorityTask, items: Sequence[Any]) -> dict[str, int]:
    """Run the task's body once per item; a failing item is retried or dead-lettered alone."""
    job = task.job
    done = retried = dead = 0
    for index, item in enumerate(items):
        args, kwargs = _item(item)
        try:
            task.run(*args, **kwargs)
        except Exception as exc:  # every item's error is its own outcome
            if _retry_item(task, job, index, args, kwargs, exc):
                retried += 1
            else:
                _fail_item(task, job, index, args, kwargs, exc)
                dead += 1
        else:
            done += 1
    return ChunkOutcome(done, retried, dead).as_result()


def _item(item: Any) -> tuple[list[Any], dict[str, Any]]:
    if isinstance(item, list | tuple) and len(item) == 2 and isinstance(item[1], Mapping):
        return list(item[0]), dict(item[1])
    raise TypeError(f"a chunk item is [args, kwargs], not {item!r}")


def _item_context(job: JobContext, index: int) -> JobContext:
    """The item as a job of its own: the chunk's facts, its own id, without the chunk marker."""
    headers = {k: v for k, v in job.headers.items() if k != envelope.ITEM_CHUNK}
    return dataclasses.replace(job, execution_id=item_id(job.execution_id, index), headers=headers)


def _retry_item(
    task: PriorityTask, job: JobContext, index: int, args: list[Any], kwargs: dict[str, Any], exc: Exception
) -> bool:
    """Send the item again as an ordinary job when its lane's policy has a retry for it."""
    policy = task.policy_for(job.priority)
    if policy.max_retries < 1 or not is_retryable(
        exc, retry_on=task.retry_on, non_retryable=task.non_retryable
    ):
        return False
    item = _item_context(job, index)
    countdown = countdown_s(policy, 1)
    task.apply_async(
        args,
        kwargs,
        task_id=item.execution_id,
        priority=job.priority,
        countdown=countdown,
        retries=1,  # its second attempt: a retry, which keeps its lane and skips the capacity check
        headers={k: v for k, v in item.headers.items() if k != envelope.ATTEMPT},
    )
    chain = _chain(task)
    if chain is not None:
        chain.emit("job_retried", task, item, task.request, Retry(exc=exc, when=countdown))  # type: ignore[arg-type]  # numbers.Real in the stubs
    return True


def _fail_item(
    task: PriorityTask, job: JobContext, index: int, args: list[Any], kwargs: dict[str, Any], exc: Exception
) -> None:
    """The item's final failure, through the worker's hooks: logged, counted, dead-lettered, called back."""
    item = _item_context(job, index)
    einfo = ExceptionInfo((type(exc), exc, exc.__traceback__))
    failure = task.final_failure(item, exc, args=args, kwargs=kwargs, einfo=einfo, now_s=time.time())
    chain = _chain(task)
    if chain is None:
        raise exc  # not a storefront app: nothing could keep the item, so fail the whole chunk
    chain.emit("job_failed", task, item, exc, einfo)
    chain.emit("job_exhausted", task, failure, exc, einfo)


def _chain(task: PriorityTask) -> HookChain | None:
    chain = getattr(task.app, "storefront_hooks", None)
    return chain if isinstance(chain, HookChain) else None
