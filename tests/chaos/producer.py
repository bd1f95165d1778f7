"""A producer process for the chaos tests: enqueues chaos jobs and writes down what each enqueue answered.

Run as ``python -m tests.chaos.producer --run RUN --prefix P --count N [--rate R] [--go-key K]
--out FILE``, with the broker and settings in the environment (``tests.support.workers.worker_env``).
Each line of ``FILE`` is ``{"id": ..., "ok": true}`` for an enqueue that returned (acknowledged),
or ``{"id": ..., "error": "<type>", "message": ...}`` for one that raised: the producer was told.
Nothing is retried here, so every id has exactly one answer.

``--go-key`` makes the producer count itself ready (``INCR <go-key>:ready`` on the ledger) and wait
until ``<go-key>`` exists, so several producers start racing at the same instant.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import redis

from tests.chaos.accounting import LEDGER_URL_VAR


def wait_for_go(client: redis.Redis, go_key: str, timeout_s: float = 60.0) -> None:
    client.incr(f"{go_key}:ready")
    deadline = time.monotonic() + timeout_s
    while not client.exists(go_key):
        if time.monotonic() > deadline:
            raise SystemExit(f"no {go_key} within {timeout_s} s")
        time.sleep(0.005)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--rate", type=float, default=0.0, help="enqueues per second; 0: as fast as possible")
    parser.add_argument("--sleep", type=float, default=0.0, help="how long each job runs")
    parser.add_argument("--go-key")
    parser.add_argument("--out", required=True)
    options = parser.parse_args()

    from tests.integration import jobs

    ledger = redis.Redis.from_url(os.environ[LEDGER_URL_VAR])
    if options.go_key:
        wait_for_go(ledger, options.go_key)
    started = time.monotonic()
    with open(options.out, "w", encoding="utf-8") as out:
        for n in range(options.count):
            if options.rate:
                time.sleep(max(0.0, started + n / options.rate - time.monotonic()))
            job_id = f"{options.prefix}-{n:05d}"
            line: dict[str, object] = {"id": job_id}
            try:
                jobs.chaos_work.apply_async((options.run, job_id, options.sleep), task_id=job_id)
                line["ok"] = True
            except Exception as exc:  # every failure is written down; the test decides which are fine
                line.update(error=type(exc).__name__, message=str(exc)[:300])
            out.write(json.dumps(line) + "\n")
            out.flush()


if __name__ == "__main__":
    main()
