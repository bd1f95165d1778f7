"""What a caller may do with the DLQ: the three scopes of the admin API's tokens and of Flower's users."""

from __future__ import annotations

from collections.abc import Iterable

DLQ_READ = "dlq:read"
DLQ_REPLAY = "dlq:replay"
DLQ_DELETE = "dlq:delete"
SCOPES = (DLQ_READ, DLQ_REPLAY, DLQ_DELETE)


def check_scopes(scopes: Iterable[str]) -> list[str]:
    """The scopes as given, or ValueError naming the first unknown one and the accepted names."""
    given = list(scopes)
    for scope in given:
        if scope not in SCOPES:
            raise ValueError(f"unknown scope {scope!r}; accepted: {', '.join(SCOPES)}")
    return given
