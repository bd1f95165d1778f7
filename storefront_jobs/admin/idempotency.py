"""Idempotency keys for replay requests: a retried request gets the first answer, not a second replay.

The first request with a key claims it (``SET NX``, with a short TTL while it
runs) and stores its answer for a day. A retry with the same key and body
gets that answer back; one with the same key but another body is refused
(422), and one that arrives while the first still runs is told so (409).
Keys are stored by digest: a client's key may carry anything.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import redis

from storefront_jobs.admin.problems import ProblemError
from storefront_jobs.broker import keys

ANSWER_TTL_S = 24 * 3600
RUNNING_TTL_S = 600
MAX_KEY_LENGTH = 200


def fingerprint(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


class IdempotencyKeys:
    def __init__(self, client: redis.Redis[bytes]) -> None:
        self._client = client

    @staticmethod
    def _key(idempotency_key: str) -> str:
        if not idempotency_key or len(idempotency_key) > MAX_KEY_LENGTH:
            raise ProblemError(400, "Bad Request", f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} characters")
        return keys.dlq_idempotency(hashlib.sha256(idempotency_key.encode()).hexdigest())

    def claim(self, idempotency_key: str, request_fingerprint: str) -> dict[str, Any] | None:
        """None if this request should run; else the stored answer ({status, body})."""
        key = self._key(idempotency_key)
        for _ in range(3):
            running = json.dumps({"state": "running", "fingerprint": request_fingerprint})
            if self._client.set(key, running, nx=True, ex=RUNNING_TTL_S):
                return None
            raw = self._client.get(key)
            if raw is None:
                continue  # expired between the two calls: claim it again
            stored: dict[str, Any] = json.loads(raw)
            if stored.get("fingerprint") != request_fingerprint:
                raise ProblemError(
                    422,
                    "Unprocessable Content",
                    "this Idempotency-Key was used with a different request body",
                )
            if stored.get("state") == "running":
                raise ProblemError(409, "Conflict", "a request with this Idempotency-Key is still running")
            return stored
        raise ProblemError(409, "Conflict", "could not claim the Idempotency-Key; try again")

    def store(self, idempotency_key: str, request_fingerprint: str, status: int, body: Any) -> None:
        answer = {"state": "done", "fingerprint": request_fingerprint, "status": status, "body": body}
        self._client.set(self._key(idempotency_key), json.dumps(answer), ex=ANSWER_TTL_S)

    def release(self, idempotency_key: str) -> None:
        """Forget a claim whose request failed, so that a retry runs again."""
        self._client.delete(self._key(idempotency_key))
