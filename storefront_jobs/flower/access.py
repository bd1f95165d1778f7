"""Who is logged into Flower, and which DLQ scopes that gives them.

Flower authenticates (basic auth, or OAuth with a session cookie); it does
not say *who* for basic auth (its ``current_user`` is then ``True``), so the
user name is read from the ``Authorization`` header Flower has just checked.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Mapping, Sequence

from storefront_jobs.scopes import SCOPES

#: The actor of a Flower started with ``--no-auth``.
ANONYMOUS = "anonymous"


@dataclasses.dataclass(frozen=True)
class Operator:
    """A Flower user as the DLQ pages see them: a name for the audit log, and scopes."""

    name: str
    scopes: frozenset[str]

    def can(self, scope: str) -> bool:
        return scope in self.scopes

    @property
    def actor(self) -> str:
        """The audit log's actor: which surface, and which user."""
        return f"flower:{self.name}"


def basic_auth_user(header: str | None) -> str | None:
    """The user of an ``Authorization: Basic ...`` header, or None for any other header."""
    scheme, _, encoded = (header or "").strip().partition(" ")
    if scheme != "Basic" or not encoded:
        return None
    try:
        user, colon, _ = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user if colon and user else None


def operator_for(user: str, user_scopes: Mapping[str, Sequence[str]], *, authenticated: bool) -> Operator:
    """The scopes of ``user``: as configured; every scope when nothing is configured.

    With authentication off, nobody has proved who they are: read-only,
    unless ``FLOWER_USER_SCOPES`` names ``anonymous`` on purpose.
    """
    if user_scopes:
        return Operator(user, frozenset(user_scopes.get(user, ())))
    return Operator(user, frozenset(SCOPES if authenticated else SCOPES[:1]))
