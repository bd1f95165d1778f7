"""Request size limits: headers over ``MAX_HEADER_BYTES`` get 431, bodies over ``max_body_bytes`` 413."""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from storefront_jobs.admin.problems import PROBLEM_JSON

#: Enough for 10,000 execution ids; an admin request never needs more.
MAX_BODY_BYTES = 1 << 20
#: All header lines of a request together; a bearer token is well under 1 KiB.
MAX_HEADER_BYTES = 16 << 10
#: What the HTTP server buffers of a request's head before the app sees it. Above our limit on
#: purpose: a head cut off by the server gets a closed connection, one that reaches
#: :class:`HeaderSizeLimit` gets a 431 that says what is wrong.
SERVER_HEAD_BYTES = 4 << 20


def problem_response(scope: Scope, status: int, title: str, detail: str) -> tuple[list[Any], bytes]:
    body = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": scope.get("path"),
    }
    payload = json.dumps(body).encode()
    headers = [(b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(payload)).encode())]
    return headers, payload


class HeaderSizeLimit:
    """ASGI middleware: a request whose header lines exceed ``max_header_bytes`` gets 431."""

    def __init__(self, app: ASGIApp, max_header_bytes: int = MAX_HEADER_BYTES) -> None:
        self.app = app
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            size = sum(len(name) + len(value) + 4 for name, value in scope.get("headers") or [])
            if size > self.max_header_bytes:
                detail = f"request headers are limited to {self.max_header_bytes} bytes; these have {size}"
                headers, payload = problem_response(scope, 431, "Request Header Fields Too Large", detail)
                await send({"type": "http.response.start", "status": 431, "headers": headers})
                await send({"type": "http.response.body", "body": payload})
                return
        await self.app(scope, receive, send)


class BodySizeLimit:
    """ASGI middleware: checks Content-Length up front, and counts the bytes of chunked bodies.

    The body is read here, at most ``max_body_bytes`` of it, before the app
    sees the request, then handed over whole. Refusing from inside the app's
    own read would not work: FastAPI turns any error raised while it reads a
    body into 400 "There was an error parsing the body".
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            await self._refuse(scope, send)
            return
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: let the app see it
                await self.app(scope, _replay([message], receive), send)
                return
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_body_bytes:
                await self._refuse(scope, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body: Message = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay([body], receive), send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        detail = f"request bodies are limited to {self.max_body_bytes} bytes"
        headers, payload = problem_response(scope, 413, "Content Too Large", detail)
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A receive that gives ``messages`` first, then the server's (a later disconnect)."""
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
