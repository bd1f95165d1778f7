"""Query parameters an endpoint does not know are refused (400), not ignored.

FastAPI drops unknown query parameters in silence, so ``?tennant=t-1`` would
list the whole DLQ and ``DELETE ?queue=x&tenant=t`` with a typo would delete
more than asked. Every route of the admin API declares what it accepts with
:func:`accepts`; tests/e2e/test_admin_api.py checks that none is missing it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from fastapi import Request

from storefront_jobs.admin.problems import ProblemError

#: Set on the dependency, so a test can find which routes check their parameters.
MARKER = "storefront_accepted_query"


def accepts(*groups: Iterable[str] | str) -> Callable[[Request], None]:
    """A route dependency that refuses any query parameter outside these names."""
    allowed = frozenset(name for group in groups for name in ([group] if isinstance(group, str) else group))

    def check(request: Request) -> None:
        unknown = sorted(set(request.query_params.keys()) - allowed)
        if unknown:
            accepted = ", ".join(sorted(allowed)) or "none"
            raise ProblemError(
                400, "Bad Request", f"unknown query parameter(s): {', '.join(unknown)}; accepted: {accepted}"
            )

    setattr(check, MARKER, allowed)
    return check
