from __future__ import annotations

import pytest

from storefront_jobs import create_app, load_settings
from storefront_jobs.application import uses_atomic_admission
from storefront_jobs.broker import clients
from storefront_jobs.broker.transport import CAPACITY_OPTION, SENTINEL_TRANSPORT, TRANSPORT, needs_admission
from storefront_jobs.errors import ConfigurationError

CAPACITIES = {"p2.default": 100}


def test_only_a_first_publish_into_a_lane_is_admitted() -> None:
    assert needs_admission("p2.default", {"headers": {"retries": 0}}, CAPACITIES)
    assert needs_admission("p2.default", {"headers": {}}, CAPACITIES)
    assert not needs_admission("p2.default", {"headers": {"retries": 2}}, CAPACITIES)
    assert not needs_admission("celery", {"headers": {}}, CAPACITIES)


def test_redis_brokers_get_the_admitting_transport() -> None:
    assert uses_atomic_admission("redis://127.0.0.1:6379/0")
    assert uses_atomic_admission("rediss://cache:6380/0")
    # Behind Sentinel too (it only changes where the pool points)
    assert uses_atomic_admission("sentinel://host:26379;sentinel://host2:26379")
    assert not uses_atomic_admission("amqp://guest@localhost//")
    app = create_app(load_settings(queue_capacity={"low": 7}), main="transport")
    assert app.conf.broker_transport == TRANSPORT
    assert app.checks_capacity_in_transport
    assert app.conf.broker_transport_options[CAPACITY_OPTION]["p3.low"] == 7


def test_connections_still_say_redis_in_their_uri() -> None:
    # Flower picks its queue-length client from the broker URI's scheme.
    app = create_app(load_settings(broker_url="redis://127.0.0.1:6399/3"), main="uri")
    with app.connection() as connection:
        assert connection.as_uri().startswith("redis://")
        assert connection.as_uri().endswith("127.0.0.1:6399/3")
        assert connection.transport_cls == TRANSPORT
    secure = create_app(load_settings(broker_url="rediss://cache:6380/0"), main="uri-tls")
    assert secure.conf.broker_transport.endswith(":SecureTransport")


def test_a_sentinel_broker_needs_its_group_and_says_so() -> None:
    with pytest.raises(ConfigurationError, match="STOREFRONT_JOBS_BROKER_MASTER_NAME: required"):
        load_settings(broker_url="sentinel://127.0.0.1:26379/0")
    app = create_app(
        load_settings(broker_url="sentinel://a:26379;sentinel://b:26380/2", broker_master_name="shop"),
        main="sentinel",
    )
    assert app.conf.broker_transport == SENTINEL_TRANSPORT
    options = app.conf.broker_transport_options
    assert options["master_name"] == "shop"
    assert options["sentinel_kwargs"]["socket_timeout"] == app.storefront_settings.broker_socket_timeout_s
    with app.connection_for_write() as conn:
        assert conn.as_uri().startswith("sentinel://")


def test_a_sentinel_url_names_every_node_and_the_primary_s_database() -> None:
    target = clients.SentinelTarget.parse("sentinel://u:p%40ss@a:26379/3;sentinel://b;sentinel://c:26381")
    assert target.nodes == [("a", 26379), ("b", 26379), ("c", 26381)]
    assert (target.db, target.username, target.password) == (3, "u", "p@ss")
