"""Every Redis client of the platform is bounded by the settings, and says why when Redis does not answer."""

from __future__ import annotations

import os
import pickle
import signal
import threading
from typing import Any

import pytest
import redis
from kombu.exceptions import OperationalError

from storefront_jobs import create_app, load_settings
from storefront_jobs.broker import clients
from storefront_jobs.embedded import EmbeddedRedis
from storefront_jobs.errors import BrokerUnavailableError, ConfigurationError, StorefrontJobsError


def refused_connection() -> redis.ConnectionError:
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except ConnectionRefusedError:
            raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused.") from None
    except redis.ConnectionError as exc:
        return exc


def test_the_app_client_and_kombu_s_take_the_timeouts_from_the_settings() -> None:
    settings = load_settings(broker_socket_timeout_s=2.5, broker_connect_timeout_s=1.5)
    app = create_app(settings)
    kwargs = app.redis.connection_pool.connection_kwargs
    assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (2.5, 1.5)
    options = app.conf.broker_transport_options
    assert (options["socket_timeout"], options["socket_connect_timeout"]) == (2.5, 1.5)


def test_celery_s_publish_retries_end_at_a_timeout_but_not_at_a_closed_connection() -> None:
    app = create_app(load_settings())
    errback = app.conf.task_publish_retry_policy["errback"]
    with pytest.raises(redis.TimeoutError):
        errback(redis.TimeoutError("Timeout reading from socket"), 0)
    errback(redis.ConnectionError("Connection closed by server."), 0)  # kombu reconnects and sends again
    assert app.conf.task_publish_retry_policy["max_retries"] == 3


def test_a_timeout_says_the_job_may_still_be_queued_and_names_it() -> None:
    error = clients.unavailable(
        "enqueue send_receipt", redis.TimeoutError("Timeout reading from socket"), job_id="j-1"
    )
    assert isinstance(error, BrokerUnavailableError)
    assert isinstance(error, StorefrontJobsError)
    assert isinstance(error, OperationalError)
    assert error.maybe_sent
    assert "did not answer in time (STOREFRONT_JOBS_BROKER_SOCKET_TIMEOUT_S)" in str(error)
    assert "job j-1 may still be queued" in str(error)


def test_a_refused_connection_says_nothing_was_sent() -> None:
    error = clients.unavailable("enqueue send_receipt", refused_connection(), job_id="j-1")
    assert not error.maybe_sent
    assert "Redis is unreachable" in str(error)
    assert "may still be queued" not in str(error)


def test_the_error_survives_pickling_with_what_it_knows() -> None:
    error = pickle.loads(pickle.dumps(BrokerUnavailableError("no answer", maybe_sent=True)))
    assert (str(error), error.maybe_sent) == ("no answer", True)


def test_the_socket_timeout_must_outlast_the_fetch_s_one_second_wait() -> None:
    with pytest.raises(ConfigurationError, match="STOREFRONT_JOBS_BROKER_SOCKET_TIMEOUT_S"):
        load_settings(broker_socket_timeout_s=0.5)


def test_a_child_forked_while_another_thread_holds_the_pool_gets_a_pool_of_its_own(
    redis_server: EmbeddedRedis,
) -> None:
    # Given the app's client, and a thread of this process stopped inside the client's pool (redis-py
    # makes a new connection while it holds the pool's lock: a connection class that waits does it)
    client = clients.redis_client(redis_server.url, load_settings())
    inside, leave = threading.Event(), threading.Event()

    class WaitingConnection(redis.Connection):
        def __init__(self, **kwargs: Any) -> None:
            inside.set()
            leave.wait(30)
            super().__init__(**kwargs)

    client.connection_pool.connection_class = WaitingConnection
    holder = threading.Thread(target=client.ping)
    holder.start()
    assert inside.wait(30)

    # When this process forks (as a prefork pool starts a child) and the child uses the client
    pid = os.fork()
    if pid == 0:
        signal.alarm(10)  # a child stuck on the inherited lock dies of the alarm instead
        os._exit(0 if client.ping() else 1)
    leave.set()
    holder.join(30)
    _, status = os.waitpid(pid, 0)

    # Then the child reached Redis; it did not wait for a lock held by a thread it does not have
    assert os.waitstatus_to_exitcode(status) == 0
    client.close()
