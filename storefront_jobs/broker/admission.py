"""Lane capacity: refuse an enqueue into a full lane instead of letting Redis grow.

The check is one Lua call that sums ``LLEN`` over every list of the lane (the
plain list and kombu's priority sub-lists) and, when the lane is full, counts
the overflow in the same round trip. The publish that follows is kombu's own,
so check and publish are two steps: with ``N`` producers enqueueing into the
same nearly-full lane at the same instant, the lane can end up at most
``N - 1`` jobs above capacity (each producer can pass the check once before
the others' publishes land). A single producer never overshoots.

Jobs held by workers (running with late ack, or waiting out a retry
countdown) are not "waiting" and do not count against capacity; retries are
never refused, since refusing one would drop a job that was already accepted.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import redis

from storefront_jobs.broker import keys
from storefront_jobs.errors import BrokerUnavailableError, QueueOverflowError
from storefront_jobs.jobs.priorities import Priority

if TYPE_CHECKING:
    from storefront_jobs.settings import Settings

# KEYS: the lane's lists..., the overflow hash, the enqueued hash.
# ARGV: capacity, priority label, enqueued-counter field.
# Returns the depth, negated (minus one) when the lane is full. Counting the
# accepted job here costs no extra round trip (the publish follows at once).
_ADMIT_LUA = """
local depth = 0
for i = 1, #KEYS - 2 do
  depth = depth + redis.call('LLEN', KEYS[i])
end
if depth >= tonumber(ARGV[1]) then
  redis.call('HINCRBY', KEYS[#KEYS - 1], ARGV[2], 1)
  return -depth - 1
end
redis.call('HINCRBY', KEYS[#KEYS], ARGV[3], 1)
return depth
"""

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


class CapacityGate:
    """Admits or refuses enqueues by lane depth; shared by every producer in a process."""

    def __init__(self, client: redis.Redis[bytes], settings: Settings) -> None:
        self._client = client
        self._settings = settings
        self._admit = client.register_script(_ADMIT_LUA)
        self._keys = {
            p: [*keys.lane_lists(keys.lane_name(p)), keys.OVERFLOW_COUNTS, keys.ENQUEUED_COUNTS]
            for p in Priority
        }
        self._host = socket.gethostname()

    def admit(self, priority: Priority, *, job_queue: str = "unknown", task: str = "unknown") -> int:
        """Return the lane's depth before this job, or raise :class:`QueueOverflowError`.

        An admitted job is counted as enqueued (per priority, job queue, task
        and producer host) in the same call.
        """
        capacity = self._settings.capacity(priority)
        field = enqueued_field(priority, job_queue, task, self._host)
        try:
            result = int(self._admit(keys=self._keys[priority], args=[capacity, priority.label, field]))
        except redis.RedisError as exc:
            raise BrokerUnavailableError(
                f"cannot check the capacity of lane {keys.lane_name(priority)!r}: {exc}"
            ) from exc
        if result < 0:
            raise QueueOverflowError(keys.lane_name(priority), -result - 1, capacity)
        return result

    def depth(self, priority: Priority) -> int:
        """Waiting jobs of a lane, over all of its Redis lists."""
        pipe = self._client.pipeline(transaction=False)
        for name in keys.lane_lists(keys.lane_name(priority)):
            pipe.llen(name)
        return sum(int(n) for n in pipe.execute())

    def overflow_counts(self) -> dict[Priority, int]:
        """Refused enqueues per priority since the counter was created."""
        raw = self._client.hgetall(keys.OVERFLOW_COUNTS)
        counts = {Priority.parse(k.decode()): int(v) for k, v in raw.items()}
        return {p: counts.get(p, 0) for p in Priority}
