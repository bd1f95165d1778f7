"""The admin HTTP API (FastAPI): the DLQ endpoints of DESIGN.md and ``/q/health``.

Endpoints parse the request, call the DLQ model and format the answer; the
DLQ logic lives in :mod:`storefront_jobs.deadletter`, shared with the CLI.
The OpenAPI document is served at ``/openapi.json`` (``/docs`` renders it).
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi_offline import FastAPIOffline

from storefront_jobs.admin import auth
from storefront_jobs.admin.health import health
from storefront_jobs.admin.idempotency import IdempotencyKeys, fingerprint
from storefront_jobs.admin.limits import BodySizeLimit, HeaderSizeLimit
from storefront_jobs.admin.metrics import metrics_router
from storefront_jobs.admin.problems import PROBLEM_RESPONSES, ProblemError, install_problem_handlers
from storefront_jobs.admin.schemas import FILTER_PARAMETERS, MAX_PER_REQUEST, FilterQuery, ReplayBody
from storefront_jobs.admin.strict import accepts
from storefront_jobs.deadletter import (
    DeadLetter,
    DeadLetterNotFound,
    Filter,
    ReplayRequest,
    build_filter,
    maintenance,
    replayer_for,
    store_for,
    transfer,
)
from storefront_jobs.deadletter.store import DeadLetterStore, iter_json
from storefront_jobs.jobs.priorities import Priority

Text = Annotated[str | None, Query(min_length=1, max_length=200)]
MEDIA = {"json": "application/json", "jsonl": "application/x-ndjson"}


def _filter(values: dict[str, Any]) -> Filter:
    return build_filter(**values, now_s=time.time())


def read_routes(router: APIRouter, store: DeadLetterStore, tokens: auth.TokenTable) -> None:
    """GET endpoints (scope dlq:read); none of them changes anything."""
    read = Depends(auth.requires(tokens, auth.DLQ_READ))

    only = {
        "list": Depends(accepts(FILTER_PARAMETERS, "format", "limit", "cursor")),
        "none": Depends(accepts()),
        "audit": Depends(accepts("limit")),
    }

    @router.get("/dlq", dependencies=[read, only["list"]], responses={200: {"model": list[DeadLetter]}})
    def list_dlq(
        filters: Annotated[FilterQuery, Query()],
        format: Literal["json", "jsonl"] = "json",
        limit: Annotated[int | None, Query(ge=1, le=MAX_PER_REQUEST)] = None,
        cursor: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    ) -> Response:
        """Entries, newest first: all streamed, or one page with ``limit`` (next page: X-Next-Cursor)."""
        flt = _filter(filters.model_dump())
        if limit is None and cursor is None:
            return StreamingResponse(
                transfer.encode_records(iter_json(store, flt), format), media_type=MEDIA[format]
            )
        page = store.page(flt, cursor, limit or 50)
        headers = {"X-Next-Cursor": page.next_cursor} if page.next_cursor else {}
        body = "".join(transfer.encode_records(page.items, format))
        return Response(body, media_type=MEDIA[format], headers=headers)

    @router.get("/dlq/stats", dependencies=[read, only["none"]])
    def dlq_stats() -> dict[str, Any]:
        """Entries per field, added and removed counters, bounds."""
        return store.stats().to_dict()

    @router.get(
        "/dlq/{execution_id}", dependencies=[read, only["none"]], responses={200: {"model": DeadLetter}}
    )
    def show(execution_id: Annotated[str, Path(min_length=1, max_length=200)]) -> Response:
        """One entry."""
        record = store.get(execution_id)
        if record is None:
            raise DeadLetterNotFound(execution_id)
        return Response(record.to_json(), media_type="application/json")

    @router.get("/audit", dependencies=[read, only["audit"]])
    def audit(limit: Annotated[int, Query(ge=1, le=MAX_PER_REQUEST)] = 50) -> list[dict[str, Any]]:
        """Replays, purges and imports, newest first."""
        return [entry.to_dict() for entry in store.audit.entries(limit)]


def write_routes(router: APIRouter, celery_app: Any, store: DeadLetterStore, tokens: auth.TokenTable) -> None:
    """POST replay (scope dlq:replay) and DELETE (scope dlq:delete)."""
    idempotency = IdempotencyKeys(celery_app.redis)
    # Plain defaults, not Annotated: these are locals, which string annotations cannot see.
    replay_scope = Depends(auth.requires(tokens, auth.DLQ_REPLAY))
    delete_scope = Depends(auth.requires(tokens, auth.DLQ_DELETE))

    @router.post("/replay", dependencies=[Depends(accepts())])
    def replay(
        body: ReplayBody,
        idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)] = None,
        principal: auth.Principal = replay_scope,
    ) -> JSONResponse:
        """Replay by id (an exported record works as the body), ids or filter; at most 10,000 per request."""
        print_ = fingerprint(body.model_dump_json().encode())
        if idempotency_key:
            stored = idempotency.claim(idempotency_key, print_)
            if stored is not None:
                return JSONResponse(stored["body"], stored["status"], headers={"Idempotent-Replayed": "true"})
        try:
            answer = _replay(celery_app, body, principal)
        except BaseException:
            if idempotency_key:
                idempotency.release(idempotency_key)
            raise
        if idempotency_key:
            idempotency.store(idempotency_key, print_, 200, answer)
        return JSONResponse(answer)

    @router.delete("/dlq", dependencies=[Depends(accepts(FILTER_PARAMETERS))])
    def purge(
        filters: Annotated[FilterQuery, Query()], principal: auth.Principal = delete_scope
    ) -> dict[str, Any]:
        """Delete the matching entries; ``queue=all`` deletes every entry (a filter is required)."""
        flt = _filter(filters.model_dump())
        if flt.is_empty():
            raise ProblemError(400, "Bad Request", "give a filter: queue=NAME, or queue=all for every entry")
        return maintenance.purge(store, flt, actor=principal.actor, source="http").to_dict()


def _replay(celery_app: Any, body: ReplayBody, principal: auth.Principal) -> dict[str, Any]:
    flt = _filter(body.filter.model_dump()) if body.filter is not None else None
    try:
        target = Priority.parse(body.to_priority) if body.to_priority else None
    except ValueError as exc:
        raise ProblemError(400, "Bad Request", str(exc)) from None
    request = ReplayRequest(
        execution_ids=body.ids(),
        filter=flt,
        limit=body.limit or (MAX_PER_REQUEST if flt is not None else None),
        priority=target,
    )
    with replayer_for(celery_app) as replayer:
        if body.dry_run:
            count, sample = replayer.preview(request)
            return {
                "dryRun": True,
                "count": count,
                "sample": [r.model_dump(by_alias=True, mode="json") for r in sample],
            }
        report = replayer.replay(request, actor=principal.actor, source="http")
    if body.execution_id is not None and report.missing:
        raise DeadLetterNotFound(body.execution_id)
    if body.execution_id is not None and report.not_replayable:
        raise ProblemError(422, "Unprocessable Content", report.not_replayable[body.execution_id])
    if report.stopped and report.replayed_count == 0:
        raise ProblemError(
            429, "Too Many Requests", report.stopped, extra={"operationId": report.operation_id}
        )
    answer = report.to_dict()
    if flt is not None:
        answer["remaining"] = store_for(celery_app).count(flt)
    return answer


def create_admin_app(celery_app: Any | None = None) -> FastAPI:
    """The admin API of a storefront app (the default app when none is given)."""
    if celery_app is None:
        from storefront_jobs.application import get_default_app  # noqa: PLC0415 - lazy default app

        celery_app = get_default_app()
    tokens = auth.TokenTable(celery_app.storefront_settings.admin_tokens)
    # FastAPIOffline: a FastAPI whose /docs and /redoc load their scripts from the package, not a CDN.
    app = FastAPIOffline(
        title="storefront-jobs admin API",
        version="1",
        description="Dead-letter queue and health of a storefront-jobs deployment. "
        "Bearer tokens with scopes dlq:read, dlq:replay, dlq:delete (STOREFRONT_JOBS_ADMIN_TOKENS).",
        responses=PROBLEM_RESPONSES,
    )
    install_problem_handlers(app)
    app.add_middleware(BodySizeLimit)
    app.add_middleware(HeaderSizeLimit)  # added last: runs first
    router = APIRouter(prefix="/admin/jobs", tags=["dlq"], responses=PROBLEM_RESPONSES)
    store = store_for(celery_app)
    read_routes(router, store, tokens)
    write_routes(router, celery_app, store, tokens)
    app.include_router(router)
    app.include_router(metrics_router(celery_app, store.stats))

    @app.get("/q/health", tags=["health"], dependencies=[Depends(accepts())])
    def q_health() -> JSONResponse:
        """Broker reachable, workers per lane, scheduler state; no token needed."""
        status, body = health(celery_app)
        return JSONResponse(body, status)

    return app
