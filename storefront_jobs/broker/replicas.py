"""Writes that count as done only once replicas hold them (``BROKER_MIN_REPLICAS``, Redis's ``WAIT``).

Redis replicates asynchronously: it acknowledges a write before any replica
has it, and a failover that promotes a replica drops what the replica had not
received yet. With ``BROKER_MIN_REPLICAS`` above 0, every write that makes a
job exist (an enqueue, a retry, a replay, a DLQ capture) is followed on the
same connection by ``WAIT replicas timeout``: Redis answers how many replicas
have everything that connection wrote, and a write that fewer replicas hold
within ``BROKER_MIN_REPLICAS_TIMEOUT_S`` fails with :class:`ReplicationError`
(the job is on the primary and may or may not survive a failover; the error
carries its id) and is counted in ``storefront:replica_shortfalls``.

``WAIT`` must run on the connection that wrote (Redis waits for that
connection's own last write), so a write is made on one connection of the
pool (:func:`one_connection`), or on the lean enqueue's held one.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import redis

from storefront_jobs.broker import keys
from storefront_jobs.errors import ReplicationError

if TYPE_CHECKING:
    from storefront_jobs.settings import Settings

#: Transport option holding ``[replicas, timeout_s]``, for the writes under kombu's publish.
QUORUM_OPTION = "storefront_min_replicas"


@dataclasses.dataclass(frozen=True)
class Quorum:
    """How many replicas must hold a write, and how long a write waits for them."""

    replicas: int = 0
    timeout_s: float = 1.0

    @classmethod
    def of(cls, settings: Settings) -> Quorum:
        return cls(settings.broker_min_replicas, settings.broker_min_replicas_timeout_s)

    @classmethod
    def from_options(cls, options: Mapping[str, Any] | None) -> Quorum:
        """The quorum a transport option carries (none: Redis's own acknowledgement)."""
        value = (options or {}).get(QUORUM_OPTION)
        if not value:
            return cls()
        replicas, timeout_s = value
        return cls(int(replicas), float(timeout_s))

    def option(self) -> list[float]:
        return [self.replicas, self.timeout_s]

    @property
    def wanted(self) -> bool:
        return self.replicas > 0

    @property
    def timeout_ms(self) -> int:
        return max(1, round(self.timeout_s * 1000))


@contextlib.contextmanager
def one_connection(client: redis.Redis[Any], quorum: Quorum) -> Iterator[redis.Redis[Any]]:
    """``client`` itself, or, when replicas are awaited, a client on one connection of its pool."""
    if not quorum.wanted:
        yield client
        return
    single = client.client()
    try:
        yield single
    finally:
        single.close()


def confirm(client: redis.Redis[Any], quorum: Quorum, operation: str, doing: str, job_id: str | None) -> None:
    """After a write on ``client`` (from :func:`one_connection`): wait for the replicas, or raise."""
    if not quorum.wanted:
        return
    try:
        held = int(client.execute_command("WAIT", quorum.replicas, quorum.timeout_ms))
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        # The write was sent: not a connection error kombu would answer by publishing again.
        raise shortfall(quorum, None, doing, job_id, cause=exc) from exc
    if held < quorum.replicas:
        _count(client, operation)
        raise shortfall(quorum, held, doing, job_id)


def shortfall(
    quorum: Quorum, held: int | None, doing: str, job_id: str | None, *, cause: BaseException | None = None
) -> ReplicationError:
    """The error of a write fewer than ``quorum.replicas`` replicas confirmed (``held``; None: no answer)."""
    if held is None:
        seen = f"Redis did not answer the WAIT for {quorum.replicas} replica(s): {cause}"
    else:
        seen = f"{held} of {quorum.replicas} replica(s) confirmed it within {quorum.timeout_s} s"
    message = f"cannot {doing} durably: the primary has it, but {seen} (STOREFRONT_JOBS_BROKER_MIN_REPLICAS)"
    if job_id is not None:
        message += f"; job {job_id} may or may not survive a failover"
    return ReplicationError(message, job_id=job_id, replicas_confirmed=held)


def _count(client: redis.Redis[Any], operation: str) -> None:
    # Counted on the primary, like the overflow count: a metric of how often the quorum was missed.
    with contextlib.suppress(redis.RedisError):
        client.hincrby(keys.REPLICA_SHORTFALLS, operation, 1)


#: The writes that wait for replicas, as the shortfall counter's ``operation`` label.
OPERATIONS = ("enqueue", "retry", "replay", "dlq_capture")
