"""A producer process for the chaos tests: enqueues chaos jobs and writes down what each enqueue answered.

Run as ``python -m tests.chaos.producer --run RUN --prefix P --count N [--rate R] [--go-key K]
[--stop-key K] [--countdown-every N] --out FILE``, with the broker and settings in the environment
(``tests.support.workers.worker_env``).
Each line of ``FILE`` is ``{"id": ..., "ok": true}`` for an enqueue that returned (acknowledged),
or ``{"id": ..., "error": "<type>", "message": ...}`` for one that raised: the producer was told.
Every line also has ``tookS`` (how long the call took), ``atS`` (when it was made, seconds after the
producer began) and ``path``: ``lean`` for an ordinary
enqueue, ``celery`` for one with a countdown (Celery's own send; ``--countdown-every N`` sends every
Nth job that way). Nothing is retried here, so every id has exactly one answer.

``--go-key`` makes the producer count itself ready (``INCR <go-key>:ready`` on the ledger) and wait
until ``<go-key>`` exists, so several producers start racing at the same instant. ``--stop-key``
makes it stop, between two enqueues, once that key exists on the ledger: a test that must act while
the producer is still producing gives it a count it cannot reach and stops it when done.

Tests start one with :func:`start_producer` and read its answers from the :class:`Producer`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import redis

from tests.chaos.accounting import LEDGER_URL_VAR
from tests.support.workers import REPO_ROOT, worker_env


def wait_for_go(client: redis.Redis, go_key: str, timeout_s: float = 180.0) -> None:
    # Long: the first producer ready waits for the last one to start, on a machine that may be busy.
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
    parser.add_argument("--stop-key")
    parser.add_argument("--countdown-every", type=int, default=0, help="every Nth job with a countdown")
    parser.add_argument("--out", required=True)
    options = parser.parse_args()

    from tests.integration import jobs

    ledger = redis.Redis.from_url(os.environ[LEDGER_URL_VAR])
    if options.go_key:
        wait_for_go(ledger, options.go_key)
    started = time.monotonic()
    with open(options.out, "w", encoding="utf-8") as out:
        for n in range(options.count):
            if options.stop_key and ledger.exists(options.stop_key):
                break
            if options.rate:
                time.sleep(max(0.0, started + n / options.rate - time.monotonic()))
            job_id = f"{options.prefix}-{n:05d}"
            celery_path = bool(options.countdown_every) and n % options.countdown_every == 0
            line: dict[str, object] = {"id": job_id, "path": "celery" if celery_path else "lean"}
            call_started = time.monotonic()
            try:
                work = (options.run, job_id, options.sleep)
                if celery_path:
                    jobs.chaos_work.apply_async(work, task_id=job_id, countdown=0.01)
                else:
                    jobs.chaos_work.apply_async(work, task_id=job_id)
                line["ok"] = True
            except Exception as exc:  # every failure is written down; the test decides which are fine
                line.update(error=type(exc).__name__, message=str(exc)[:300])
            line["tookS"] = round(time.monotonic() - call_started, 3)
            line["atS"] = round(call_started - started, 3)
            out.write(json.dumps(line) + "\n")
            out.flush()


# --- test side ------------------------------------------------------------------------------------


class Producer:
    """A `tests.chaos.producer` process and the answers it wrote down."""

    def __init__(self, proc: subprocess.Popen[bytes], out: Path, log: Path) -> None:
        self.proc = proc
        self.out = out
        self.log = log

    def wait(self, timeout_s: float = 120.0) -> None:
        code = self.proc.wait(timeout_s)
        assert code == 0, f"producer exited with {code}:\n{self.log.read_text()[-3000:]}"

    def answers(self) -> list[dict[str, object]]:
        if not self.out.exists():
            return []
        return [json.loads(line) for line in self.out.read_text().splitlines() if line.strip()]

    def acknowledged(self) -> list[str]:
        return [str(a["id"]) for a in self.answers() if a.get("ok")]

    def refused(self) -> dict[str, str]:
        return {str(a["id"]): str(a["error"]) for a in self.answers() if not a.get("ok")}


def start_producer(
    broker_url: str,
    tmp_path: Path,
    *,
    run: str,
    prefix: str,
    count: int,
    rate: float = 0.0,
    sleep_s: float = 0.0,
    go_key: str | None = None,
    stop_key: str | None = None,
    countdown_every: int = 0,
    settings: dict[str, str] | None = None,
) -> Producer:
    out, log = tmp_path / f"producer-{prefix}.jsonl", tmp_path / f"producer-{prefix}.log"
    cmd = [sys.executable, "-m", "tests.chaos.producer", "--run", run, "--prefix", prefix]
    cmd += ["--count", str(count), "--rate", str(rate), "--sleep", str(sleep_s), "--out", str(out)]
    if go_key:
        cmd += ["--go-key", go_key]
    if stop_key:
        cmd += ["--stop-key", stop_key]
    if countdown_every:
        cmd += ["--countdown-every", str(countdown_every)]
    with log.open("wb") as log_file:
        proc = subprocess.Popen(
            cmd,
            env=worker_env(broker_url, **(settings or {})),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=REPO_ROOT,
        )
    return Producer(proc, out, log)


if __name__ == "__main__":
    main()
