"""A broker connection that fails over to the next URL of its list keeps the storefront transport.

kombu's own ``Connection.switch`` takes the transport from the next URL's scheme, so a worker or a
producer behind Sentinel went on, after its first failover, on kombu's Sentinel transport: no reliable
fetch, no capacity check inside the publish, no wait for replicas. (A chaos failover test lost three
jobs that way: after a second, quick failover the Celery path wrote to the stale primary without a WAIT.)
"""

from __future__ import annotations

from kombu import Connection

from storefront_jobs import create_app, load_settings
from storefront_jobs.broker.transport import SentinelTransport, Transport

NODES = "sentinel://127.0.0.1:26379;sentinel://127.0.0.1:26380;sentinel://127.0.0.1:26381/0"


def test_a_connection_that_fails_over_keeps_the_storefront_transport() -> None:
    app = create_app(load_settings(broker_url=NODES, broker_master_name="storefront"), main="failover")
    for connection in (app.connection_for_write(), app.connection_for_read()):
        assert isinstance(connection.transport, SentinelTransport)
        # When the connection moves on to the next Sentinel node, and the one after, and back
        for _ in range(3):
            connection.maybe_switch_next()
            # Then it is still served by the storefront transport
            assert isinstance(connection.transport, SentinelTransport)
            assert connection.transport_options["master_name"] == "storefront"
        connection.release()


def test_a_redis_failover_list_keeps_it_too() -> None:
    app = create_app(
        load_settings(broker_url="redis://127.0.0.1:6390/0;redis://127.0.0.1:6391/0"), main="redis-list"
    )
    connection = app.connection_for_write()
    connection.maybe_switch_next()
    assert type(connection.transport) is Transport
    assert connection.port == 6391
    connection.release()


def test_kombu_alone_drops_the_transport_it_was_given_which_is_why_the_app_needs_its_own() -> None:
    # Pins kombu's behaviour: once kombu keeps the given transport, StorefrontConnection can go.
    connection = Connection(NODES, transport="storefront_jobs.broker.transport:SentinelTransport")
    assert isinstance(connection.transport, SentinelTransport)
    connection.maybe_switch_next()
    assert not isinstance(connection.transport, SentinelTransport)
    connection.release()
