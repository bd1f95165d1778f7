"""Tenant context: which shop a job is for.

A producer wraps its enqueues in ``with tenant("t-42"):``; the id travels in
the message's ``tenantId`` header, and the worker sets the same context
variable around the job, so code on both sides reads :func:`current_tenant`.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

_tenant: contextvars.ContextVar[str | None] = contextvars.ContextVar("storefront_jobs_tenant", default=None)


def current_tenant() -> str | None:
    """The tenant of the current context, or ``None``."""
    return _tenant.get()


@contextmanager
def tenant(tenant_id: str | None) -> Iterator[str | None]:
    """Run a block in the context of ``tenant_id`` (``None`` clears it)."""
    if tenant_id is not None and (not isinstance(tenant_id, str) or not tenant_id.strip()):
        raise ValueError(f"tenant id must be a non-empty string, got {tenant_id!r}")
    token = _tenant.set(tenant_id)
    try:
        yield tenant_id
    finally:
        _tenant.reset(token)


def set_tenant(tenant_id: str | None) -> contextvars.Token[str | None]:
    """Set the tenant without a block; the worker uses it around each job."""
    return _tenant.set(tenant_id)


def reset_tenant(token: contextvars.Token[str | None]) -> None:
    _tenant.reset(token)
