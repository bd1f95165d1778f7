"""Which broker a command talks to, said once on stderr and in table headers.

Without ``BROKER_URL`` every command falls back to ``redis://127.0.0.1:6379/0``;
an operator who forgot to export the variable would otherwise read an empty
DLQ of some other Redis and believe it. Passwords are masked.
"""

from __future__ import annotations

from typing import Any

import click
import redis
from kombu.utils.url import maybe_sanitize_url

from storefront_jobs.broker import clients
from storefront_jobs.settings import ENV_PREFIX


def broker_label(app: Any) -> str:
    """The broker URL, password masked, and whether it is the fallback (or which primary Sentinel names)."""
    url = str(maybe_sanitize_url(app.conf.broker_url))
    if app.storefront_settings.broker_url is None:
        return f"{url} ({ENV_PREFIX}BROKER_URL not set: the default)"
    if clients.is_sentinel(url):
        return f"{url} ({sentinel_primary_label(app)})"
    return url


def sentinel_primary_label(app: Any) -> str:
    """Which primary the Sentinel nodes name now: what a failover changes."""
    group = app.storefront_settings.broker_master_name
    try:
        return f"Sentinel group {group}, primary {clients.primary_address(app.redis)}"
    except redis.RedisError as exc:
        return f"Sentinel group {group}, primary unknown: {exc}"


def announce(app: Any) -> str:
    """Say on stderr which broker this command uses; the label, for table titles."""
    label = broker_label(app)
    click.echo(f"storefront-jobs: broker {label}", err=True)
    return label
