"""Lane capacity: refuse an enqueue into a full lane instead of letting Redis grow.

The rule is written once, in Lua (``scripts/lib/admission.lua``): a lane whose
lists (the plain list, kombu's priority sub-lists and, for a fair share per
tenant, its tenant lists: :func:`keys.depth_keys`) hold ``capacity`` or more
messages is full; a refusal is counted per priority in
``storefront:overflow`` and an admitted job per label set in
``storefront:enqueued``, in the same round trip. Three scripts apply it:

* ``admit_and_push``, inside the publish of storefront-jobs' transport
  (:mod:`storefront_jobs.broker.transport`): check, count and push are one
  atomic step, so a lane never holds more than its capacity;
* ``admit``, :meth:`CapacityGate.admit`, for a broker on another transport:
  the publish that follows is kombu's own, so check and publish are two
  steps: with ``N`` producers enqueueing into the same nearly-full lane at the
  same instant, the lane can end up at most ``N - 1`` jobs above capacity
  (each producer can pass the check once before the others' publishes land).
  A single producer never overshoots;
* ``room``, :meth:`CapacityGate.room`, once per batch of a DLQ replay, whose
  MOVE script counts each job it pushes.

Jobs held by workers (running with late ack, or waiting out a retry
countdown) are not "waiting" and do not count against capacity; retries are
never refused, since refusing one would drop a job that was already accepted.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

import redis

from storefront_jobs.broker import keys, scripts
from storefront_jobs.errors import BrokerUnavailableError, QueueOverflowError
from storefront_jobs.jobs.priorities import Priority

if TYPE_CHECKING:
    from storefront_jobs.settings import Settings

#: Separates the labels packed into one field of the enqueued-counter hash.
FIELD_SEP = "\t"


def enqueued_field(priority: Priority, job_queue: str, task: str, host: str) -> str:
    """The enqueued-counter field of one label set; tabs cannot occur in any of them."""
    return FIELD_SEP.join((priority.label, job_queue, task, host))


def parse_enqueued_field(field: str) -> tuple[str, str, str, str] | None:
    parts = field.split(FIELD_SEP)
    if len(parts) != 4:
        return None
    return parts[0], parts[1], parts[2], parts[3]


_ADMIT_KEYS = {
    p: (*keys.depth_keys(keys.lane_name(p)), keys.OVERFLOW_COUNTS, keys.ENQUEUED_COUNTS) for p in Priority
}


def admission_call(priority: Priority, capacity: int, field: str) -> tuple[list[str], list[Any]]:
    """The KEYS and ARGV of the ``admit`` script for one job; ``admit_and_push`` appends its own."""
    return [*_ADMIT_KEYS[priority]], [capacity, priority.label, field]


def depth_or_refuse(reply: Any, lane: str, capacity: int) -> int:
    """The depth an admission script replied, or :class:`QueueOverflowError` for its refusal."""
    result = int(reply)
    if result < 0:
        raise QueueOverflowError(lane, -result - 1, capacity)
    return result


class CapacityGate:
    """Admits or refuses enqueues by lane depth; shared by every producer in a process."""

    def __init__(self, client: redis.Redis[bytes], settings: Settings) -> None:
        self._client = client
        self._settings = settings
        self._host = socket.gethostname()

    def admit(self, priority: Priority, *, job_queue: str = "unknown", task: str = "unknown") -> int:
        """Return the lane's depth before this job, or raise :class:`QueueOverflowError`.

        An admitted job is counted as enqueued (per priority, job queue, task
        and producer host) in the same call.
        """
        capacity = self._settings.capacity(priority)
        script_keys, args = admission_call(
            priority, capacity, enqueued_field(priority, job_queue, task, self._host)
        )
        try:
            reply = scripts.ADMIT(self._client, script_keys, args)
        except redis.RedisError as exc:
            raise BrokerUnavailableError(
                f"cannot check the capacity of lane {keys.lane_name(priority)!r}: {exc}"
            ) from exc
        return depth_or_refuse(reply, keys.lane_name(priority), capacity)

    def room(self, priority: Priority) -> int:
        """Jobs the lane can still take, or :class:`QueueOverflowError` (counted) when it is full."""
        capacity = self._settings.capacity(priority)
        lane = keys.lane_name(priority)
        script_keys = [*keys.depth_keys(lane), keys.OVERFLOW_COUNTS]
        reply = scripts.ROOM(self._client, script_keys, [capacity, priority.label])
        return capacity - depth_or_refuse(reply, lane, capacity)

    def depth(self, priority: Priority) -> int:
        """Waiting jobs of a lane, over all of its Redis lists (its tenant lists included)."""
        return int(scripts.DEPTH(self._client, keys.depth_keys(keys.lane_name(priority))))

    def overflow_counts(self) -> dict[Priority, int]:
        """Refused enqueues per priority since the counter was created."""
        raw = self._client.hgetall(keys.OVERFLOW_COUNTS)
        counts = {Priority.parse(k.decode()): int(v) for k, v in raw.items()}
        return {p: counts.get(p, 0) for p in Priority}
