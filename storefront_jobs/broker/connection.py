"""The broker connection of a storefront app: kombu's, except that a failover keeps our transport.

A broker URL of several ``;``-separated URLs (every ``sentinel://`` broker:
one URL per Sentinel node) is a failover list to kombu. When a connection
fails, kombu moves to the next URL with ``Connection.switch``, which parses
that URL again and takes the transport from its scheme: ``sentinel`` is
kombu's own Sentinel transport, not the one the app was built with. A
worker or a producer that lost its primary then went on without the
reliable fetch, the capacity check inside the publish, the wait for
replicas (``BROKER_MIN_REPLICAS``) and the doorbells, until it restarted;
a failover test lost jobs that way. :class:`StorefrontConnection` keeps the
storefront transport across the switch for every URL it serves
(:func:`~storefront_jobs.broker.transport.transport_for`).
"""

from __future__ import annotations

from celery.app.amqp import AMQP
from kombu import Connection

from storefront_jobs.broker.transport import transport_for


class StorefrontConnection(Connection):
    """kombu's Connection; a switch to the next URL of a failover list keeps the storefront transport."""

    def switch(self, conn_str: str) -> None:
        super().switch(conn_str)
        ours = transport_for(conn_str) if "://" in conn_str else None
        if ours is not None:
            self.transport_cls = ours


class StorefrontAMQP(AMQP):
    """Celery's AMQP helpers, building every broker connection as a :class:`StorefrontConnection`."""

    Connection = StorefrontConnection
