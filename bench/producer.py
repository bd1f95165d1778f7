"""A producer process that bench.core drives over stdin/stdout: one JSON command per line, one reply.

``python -m bench.producer bare|storefront``. Each kind runs in a process of
its own because storefront connects receivers to Celery's *global* signals
(``before_task_publish`` stamps headers on every publish in the process): a
bare producer sharing the process would pay for them and flatter the ratio.
The process stays up for the whole run so that rounds measure steady-state
publishing, not imports and connection set-up.

Commands (``n`` jobs each; every reply carries ``elapsed_s``):

``enqueue``           no-op jobs, the way a user sends them (bare: ``apply_async``; storefront: ``delay``)
``enqueue_ungated``   storefront only: the same with the capacity check stubbed out
``admit``             storefront only: the capacity check (one Lua EVALSHA) alone
``ping``              Redis PINGs on the capacity check's own client: one bare round trip
``enqueue_many``      storefront only: no-op jobs by ``enqueue_many`` (chunks of 500)
``enqueue_celery``    storefront only: ``delay`` through Celery's send_task and kombu (before the lean path)
``enqueue_chunked``   storefront only: ``n`` no-op items by ``enqueue_chunked`` (500 per message)
``pipelined``         storefront only: the Redis limit, job-sized LPUSHes pipelined 500 per round trip
``flood``             BULK jobs that sleep ``sleep_s``
``probes``            CRITICAL probe jobs, ``spacing_s`` apart
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any
from unittest import mock


def _timed(n: int, send: Callable[[int], Any]) -> float:
    start = time.perf_counter()
    for i in range(n):
        send(i)
    return time.perf_counter() - start


def bare_handlers() -> dict[str, Callable[[dict[str, Any]], float]]:
    from bench import bare

    def probes(cmd: dict[str, Any]) -> float:
        def send(i: int) -> None:
            # Bare Celery stamps no enqueue time: the probe carries its send time.
            bare.probe.apply_async((i, time.time()), queue="critical")
            time.sleep(cmd["spacing_s"])

        return _timed(cmd["n"], send)

    return {
        "enqueue": lambda cmd: _timed(cmd["n"], lambda _: bare.noop.apply_async()),
        "flood": lambda cmd: _timed(
            cmd["n"], lambda _: bare.sleep.apply_async((cmd["sleep_s"],), queue="bulk")
        ),
        "probes": probes,
    }


def storefront_handlers() -> dict[str, Callable[[dict[str, Any]], float]]:
    from bench import jobs
    from storefront_jobs import Priority

    app = jobs.noop.app
    gate = app.capacity_gate

    def ungated(cmd: dict[str, Any]) -> float:
        # Only for the cost split: what an enqueue costs without the check's round trip.
        with mock.patch.object(gate, "admit", return_value=0):
            return _timed(cmd["n"], lambda _: jobs.noop.delay())

    def probes(cmd: dict[str, Any]) -> float:
        def send(i: int) -> None:
            jobs.probe.delay(i)
            time.sleep(cmd["spacing_s"])

        return _timed(cmd["n"], send)

    def many(cmd: dict[str, Any]) -> float:
        start = time.perf_counter()
        jobs.noop.enqueue_many([()] * cmd["n"])
        return time.perf_counter() - start

    def celery_path(cmd: dict[str, Any]) -> float:
        # A producer of the caller's own sends the job through Celery's send_task and kombu's publish.
        with app.producer_or_acquire() as producer:
            return _timed(cmd["n"], lambda _: jobs.noop.apply_async(producer=producer))

    def chunked(cmd: dict[str, Any]) -> float:
        start = time.perf_counter()
        jobs.noop.enqueue_chunked([()] * cmd["n"], chunk_size=500)
        return time.perf_counter() - start

    def pipelined(cmd: dict[str, Any]) -> float:
        # As many bytes per push as a real no-op job's message, on the same client.
        message = b"x" * int(cmd.get("message_bytes", 900))
        start = time.perf_counter()
        for first in range(0, cmd["n"], 500):
            pipe = app.redis.pipeline(transaction=False)
            for _ in range(min(500, cmd["n"] - first)):
                pipe.lpush("bench:pipelined", message)
            pipe.execute()
        elapsed = time.perf_counter() - start
        app.redis.delete("bench:pipelined")
        return elapsed

    return {
        "enqueue": lambda cmd: _timed(cmd["n"], lambda _: jobs.noop.delay()),
        "enqueue_many": many,
        "enqueue_celery": celery_path,
        "enqueue_chunked": chunked,
        "pipelined": pipelined,
        "enqueue_ungated": ungated,
        "admit": lambda cmd: _timed(cmd["n"], lambda _: gate.admit(Priority.DEFAULT)),
        "ping": lambda cmd: _timed(cmd["n"], lambda _: app.redis.ping()),
        "flood": lambda cmd: _timed(cmd["n"], lambda _: jobs.sleep_bulk.delay(cmd["sleep_s"])),
        "probes": probes,
    }


def serve(handlers: dict[str, Callable[[dict[str, Any]], float]]) -> None:
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] == "quit":
            return
        try:
            reply: dict[str, Any] = {"elapsed_s": handlers[cmd["op"]](cmd)}
        except Exception as exc:
            # Report instead of dying, so bench.core can show what failed and still clean up.
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(reply), flush=True)


def main() -> None:
    kind = sys.argv[1]
    serve(bare_handlers() if kind == "bare" else storefront_handlers())


if __name__ == "__main__":
    main()
