"""Both sides of the interoperability test: a bare Celery app and a storefront job of the same name.

``bare_app`` has Celery's default settings and only a broker; importing it
must not import storefront_jobs, so that a worker started on it is plain
Celery through and through. The two tasks share a name: whichever side runs
a message, the same body records it.
"""

from __future__ import annotations

import json
import os
from typing import Any

from celery import Celery

from tests.support.broker import broker_redis

RECORD_NAME = "tests.interop.record"
#: One JSON entry per run: who ran it and what it got.
RUNS = "test:interop:runs"

bare_app = Celery("interop_bare", broker=os.environ.get("STOREFRONT_JOBS_BROKER_URL"))


def record(side: str, order_id: str, copies: int, request: Any) -> None:
    entry = {"side": side, "order_id": order_id, "copies": copies, "id": request.id}
    broker_redis().rpush(RUNS, json.dumps(entry))


# shared=False: Celery would otherwise add the task to every app, storefront's too, where it would
# collide with storefront's task of the same name (which of the two wins depends on set order).
@bare_app.task(name=RECORD_NAME, bind=True, shared=False)
def bare_record(self: Any, order_id: str, copies: int = 1) -> None:
    record("bare", order_id, copies, self.request)
