"""Every Redis client of the platform, built from the settings in one place.

Producers, workers, the CLI, the admin API and the metrics readers share one
shape of client (``StorefrontCelery.redis``, built here); kombu's own
connections get the same bounds through the transport options
(:func:`timeouts`), and Celery's publish retries end at a timeout
(:func:`publish_retry_policy`).

The bound that matters is **a reply is waited for ``BROKER_SOCKET_TIMEOUT_S``
at most, once.** A Redis that stops answering without closing its
connections (``SIGSTOP``, a frozen VM, a failover behind a NAT) holds every
caller otherwise: kombu's default is to wait forever, so a web request that
enqueues with a countdown waited as long as Redis was stuck, and Celery's
publish retries (three by default) multiply any timeout. A refused
connection fails at once, as redis-py does by default (measured: 0.0 s).
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from storefront_jobs.errors import BrokerUnavailableError

if TYPE_CHECKING:
    from storefront_jobs.settings import Settings


def timeouts(settings: Settings) -> dict[str, float]:
    """The bounds of every client, as redis-py's keyword options and kombu's Redis transport options."""
    return {
        "socket_timeout": settings.broker_socket_timeout_s,
        "socket_connect_timeout": settings.broker_connect_timeout_s,
    }


def redis_client(url: str, settings: Settings) -> redis.Redis[bytes]:
    """A client for storefront's own keys (the DLQ, heartbeats, pauses, admission, metrics readers).

    A process forked from this one (a prefork pool's child) gets a pool of its own for the client
    (:func:`renew_after_fork`).
    """
    client = _build(url, settings)
    os.register_at_fork(after_in_child=renew_after_fork(client, lambda: _build(url, settings)))
    return client


def _build(url: str, settings: Settings) -> redis.Redis[bytes]:
    return redis.Redis.from_url(
        url,
        socket_timeout=settings.broker_socket_timeout_s,
        socket_connect_timeout=settings.broker_connect_timeout_s,
    )


def renew_after_fork(
    client: redis.Redis[bytes], build: Callable[[], redis.Redis[bytes]]
) -> Callable[[], None]:
    """What a forked child runs for ``client``: a fresh connection pool in place of the parent's.

    A pool child is forked by the worker's main thread while its other threads
    (the heartbeat, the metrics endpoint) use the same client; a fork while one
    of them held the pool's lock hands the child that lock held, by a thread the
    child does not have. redis-py's own after-fork reset takes that lock, and
    so waited forever: the child stalled with the jobs assigned to it (seen in
    1 run in 7 of the 2,000-job metrics test). A new pool has a lock nobody
    holds; the parent's connections are left to the parent. The client is held
    weakly: an app that is gone leaves nothing to renew.
    """
    ref = weakref.ref(client)

    def renew() -> None:
        alive = ref()
        if alive is not None:
            alive.connection_pool = build().connection_pool

    return renew


def give_up_on_timeout(exc: BaseException, interval_s: float) -> None:
    """kombu's ``errback`` of Celery's publish retries: a Redis that timed out is not asked again.

    kombu calls it with each connection error before it reconnects and sends
    again; raising ends the retries. A closed connection is still retried.
    """
    if isinstance(exc, redis.TimeoutError):
        raise exc


def publish_retry_policy() -> dict[str, Any]:
    """Celery's default ``task_publish_retry_policy``, ending at the first timeout."""
    return {
        "max_retries": 3,
        "interval_start": 0,
        "interval_max": 1,
        "interval_step": 0.2,
        "errback": give_up_on_timeout,
    }


def probe(url: str, timeout_s: float) -> bool:
    """Whether the Redis at ``url`` answers a PING within ``timeout_s`` (start-up waits, health)."""
    client = redis.Redis.from_url(
        url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s, retry=Retry(NoBackoff(), 0)
    )
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def never_sent(exc: BaseException) -> bool:
    """Whether a redis-py error proves its command never reached Redis: the connection was refused."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def unavailable(doing: str, exc: BaseException, *, job_id: str | None = None) -> BrokerUnavailableError:
    """The error of an operation (``doing``: "enqueue send_receipt") that Redis did not answer.

    A command that may have reached Redis (a timeout, a connection lost
    mid-reply) may still take effect once Redis answers again: for an enqueue,
    the job may be queued after all, and the message says so, with its id.
    """
    maybe_sent = not never_sent(exc)
    if isinstance(exc, redis.TimeoutError):
        what = "Redis did not answer in time (STOREFRONT_JOBS_BROKER_SOCKET_TIMEOUT_S)"
    else:
        what = "Redis is unreachable"
    message = f"cannot {doing}: {what}: {exc}"
    if maybe_sent and job_id is not None:
        message += f"; job {job_id} may still be queued, and then runs once Redis answers again"
    return BrokerUnavailableError(message, maybe_sent=maybe_sent)
