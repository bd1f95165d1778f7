"""Bearer tokens with scopes, from the ``ADMIN_TOKENS`` setting, compared in constant time.

A request without a usable ``Authorization: Bearer <token>`` gets 401; a
known token without the endpoint's scope gets 403. The presented token is
hashed and compared with the hash of *every* configured token with
``hmac.compare_digest`` (no early exit, equal lengths), so response time
says nothing about how much of a token was right. The audit log names a
token by a fingerprint of its hash, never by the secret.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from collections.abc import Callable, Mapping, Sequence

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from storefront_jobs.admin.problems import ProblemError
from storefront_jobs.deadletter.audit import token_actor
from storefront_jobs.scopes import DLQ_DELETE, DLQ_READ, DLQ_REPLAY, SCOPES

__all__ = ["DLQ_DELETE", "DLQ_READ", "DLQ_REPLAY", "SCOPES", "Principal", "TokenTable", "requires"]

_bearer = HTTPBearer(auto_error=False, description="A token from STOREFRONT_JOBS_ADMIN_TOKENS")


@dataclasses.dataclass(frozen=True)
class Principal:
    actor: str
    scopes: frozenset[str]


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class TokenTable:
    """The configured tokens, kept only as digests."""

    def __init__(self, tokens: Mapping[str, Sequence[str]]) -> None:
        self._entries = [(_digest(t), token_actor(t), frozenset(scopes)) for t, scopes in tokens.items()]

    def authenticate(self, presented: str) -> Principal | None:
        digest = _digest(presented)
        found: Principal | None = None
        for known, actor, scopes in self._entries:
            if hmac.compare_digest(digest, known) and found is None:
                found = Principal(actor, scopes)
        return found


def requires(table: TokenTable, scope: str) -> Callable[..., Principal]:
    """A FastAPI dependency: the caller's principal, if its token carries ``scope``."""

    def dependency(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),  # noqa: B008
    ) -> Principal:
        challenge = {"WWW-Authenticate": 'Bearer realm="storefront-jobs"'}
        # The bearer scheme reads the first header only: with two, which one counts would be
        # up to each proxy on the way. Refuse the ambiguity instead of choosing.
        if len(request.headers.getlist("authorization")) > 1:
            raise ProblemError(400, "Bad Request", "send exactly one Authorization header")
        if credentials is None or not credentials.credentials:
            raise ProblemError(401, "Unauthorized", "send Authorization: Bearer <token>", headers=challenge)
        principal = table.authenticate(credentials.credentials)
        if principal is None:
            raise ProblemError(401, "Unauthorized", "unknown token", headers=challenge)
        if scope not in principal.scopes:
            raise ProblemError(403, "Forbidden", f"this token lacks the {scope!r} scope")
        return principal

    return dependency
