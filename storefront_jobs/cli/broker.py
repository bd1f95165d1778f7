"""Which broker a command talks to, said once on stderr and in table headers.

Without ``BROKER_URL`` every command falls back to ``redis://127.0.0.1:6379/0``;
an operator who forgot to export the variable would otherwise read an empty
DLQ of some other Redis and believe it. Passwords are masked.
"""

from __future__ import annotations

from typing import Any

import click
from kombu.utils.url import maybe_sanitize_url

from storefront_jobs.settings import ENV_PREFIX


def broker_label(app: Any) -> str:
    """The broker URL, password masked, and whether it is the fallback."""
    url = str(maybe_sanitize_url(app.conf.broker_url))
    if app.storefront_settings.broker_url is None:
        return f"{url} ({ENV_PREFIX}BROKER_URL not set: the default)"
    return url


def announce(app: Any) -> str:
    """Say on stderr which broker this command uses; the label, for table titles."""
    label = broker_label(app)
    click.echo(f"storefront-jobs: broker {label}", err=True)
    return label
