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

import dataclasses
import os
import ssl
import urllib.parse
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool

from storefront_jobs.errors import BrokerUnavailableError, ConfigurationError
from storefront_jobs.settings import ENV_PREFIX

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
    if is_sentinel(url):
        return _sentinel_primary(url, settings)
    client: redis.Redis[bytes] = redis.Redis.from_url(
        url,
        socket_timeout=settings.broker_socket_timeout_s,
        socket_connect_timeout=settings.broker_connect_timeout_s,
        **tls_options(url, settings),
    )
    return client


_VERIFY = {"required": ssl.CERT_REQUIRED, "optional": ssl.CERT_OPTIONAL, "none": ssl.CERT_NONE}


def tls_options(url: str, settings: Settings) -> dict[str, Any]:
    """redis-py's TLS options of a ``rediss://`` broker from ``BROKER_TLS__*``; Celery's
    ``broker_use_ssl`` takes the same (kombu hands them to redis-py). Empty for any other URL."""
    if not url.startswith("rediss://"):
        return {}
    tls = settings.broker_tls
    options: dict[str, Any] = {"ssl_cert_reqs": _VERIFY[tls.verify]}
    if tls.ca_file is not None:
        options["ssl_ca_certs"] = str(tls.ca_file)
    if tls.cert_file is not None and tls.key_file is not None:
        options["ssl_certfile"] = str(tls.cert_file)
        options["ssl_keyfile"] = str(tls.key_file)
    return options


def check_tls(client: redis.Redis[bytes], settings: Settings) -> None:
    """At start-up: a broker whose TLS certificate does not verify is a setting to fix, not a job's error.

    Raises :class:`ConfigurationError` naming the setting when the handshake
    fails; a Redis that is merely down is left to the reconnecting caller.
    A broker without TLS is not asked at all: start-up gains no round trip.
    """
    if not tls_options(settings.broker_url or "", settings):
        return
    try:
        client.ping()
    except redis.ConnectionError as exc:
        failure = _tls_failure(exc)
        if failure is None:
            return
        ca = settings.broker_tls.ca_file
        where = (
            f"{ENV_PREFIX}BROKER_TLS__CA_FILE={ca}"
            if ca
            else f"the system's CAs ({ENV_PREFIX}BROKER_TLS__CA_FILE unset)"
        )
        raise ConfigurationError(
            f"cannot start: the broker's TLS handshake failed ({failure}); check {where}, "
            f"{ENV_PREFIX}BROKER_TLS__CERT_FILE/KEY_FILE and {ENV_PREFIX}BROKER_TLS__VERIFY"
        ) from None
    except redis.RedisError:
        return


def _tls_failure(exc: BaseException) -> str | None:
    """The TLS error behind a connection error, if that is what it was."""
    behind = _behind(exc, ssl.SSLError)
    if behind is not None:
        return str(behind)
    text = str(exc)
    return text if "SSL" in text or "certificate" in text else None


def is_sentinel(url: str) -> bool:
    """Whether ``url`` names Sentinel nodes (``sentinel://h1:p1;sentinel://h2:p2``), not a Redis."""
    return url.startswith("sentinel://")


@dataclasses.dataclass(frozen=True)
class SentinelTarget:
    """What a ``sentinel://`` broker URL says: the Sentinel nodes, and the primary's database and login.

    As kombu reads it: the nodes from every ``;``-separated URL, the database,
    user and password from the first.
    """

    nodes: list[tuple[str, int]]
    db: int
    username: str | None
    password: str | None

    @classmethod
    def parse(cls, url: str) -> SentinelTarget:
        parts = [urllib.parse.urlsplit(part.strip()) for part in url.split(";") if part.strip()]
        nodes = [(part.hostname or "localhost", part.port or SENTINEL_PORT) for part in parts]
        first = parts[0]
        path = first.path.strip("/")
        return cls(
            nodes=nodes,
            db=int(path) if path else 0,
            username=urllib.parse.unquote(first.username) if first.username else None,
            password=urllib.parse.unquote(first.password) if first.password else None,
        )


#: Sentinel's own port, for a ``sentinel://`` URL that names none (kombu's default too).
SENTINEL_PORT = 26379


def sentinel_options(settings: Settings) -> dict[str, Any]:
    """How every client talks to the Sentinel nodes: the bounds of the settings, and their password."""
    options: dict[str, Any] = dict(timeouts(settings))
    if settings.broker_sentinel_password is not None:
        options["password"] = settings.broker_sentinel_password.get_secret_value()
    return options


def _sentinel_primary(url: str, settings: Settings) -> redis.Redis[bytes]:
    """A client on the current primary of the Sentinel group: it asks the nodes again after a failover.

    redis-py's Sentinel pool looks the primary up for each new connection, and
    a connection to a server that is no longer the primary fails (it answers
    READONLY, or not at all), so the next command reaches the new one.
    """
    target = SentinelTarget.parse(url)
    nodes = Sentinel(
        target.nodes,
        sentinel_kwargs=sentinel_options(settings),
        socket_timeout=settings.broker_socket_timeout_s,
        socket_connect_timeout=settings.broker_connect_timeout_s,
    )
    client: redis.Redis[bytes] = nodes.master_for(
        str(settings.broker_master_name),
        db=target.db,
        username=target.username,
        password=target.password,
    )
    return client


def primary_address(client: redis.Redis[bytes]) -> str | None:
    """The ``host:port`` of the primary a Sentinel client follows now, or None for a plain client."""
    pool = client.connection_pool
    if not isinstance(pool, SentinelConnectionPool):
        return None
    host, port = pool.get_master_address()
    return f"{host}:{port}"


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
    return _behind(exc, ConnectionRefusedError) is not None


def _behind(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    """The first error of type ``kind`` in ``exc``'s chain of causes (redis-py wraps socket errors)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kind):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


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
