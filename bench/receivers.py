"""What storefront adds to each job inside a worker, piece by piece, without a broker.

``python -m bench.receivers [--calls 20000]``: calls the worker-side signal
receivers and the two log lines Celery writes per job at INFO, the way a pool
process would for one no-op job, and prints microseconds per job for each.
bench.core measures the whole pool; this says where its extra CPU goes.
Nothing is sent anywhere: the broker URL is never contacted, metrics count in
a temporary multiprocess directory, log lines go to /dev/null (a real log file
costs more).
"""

from __future__ import annotations

import argparse
import logging
import os
import time
import types
import uuid
from collections.abc import Callable

from bench.probes import BROKER_URL_VAR

# Settings are read when storefront builds its app, on the first import of bench.jobs.
os.environ.setdefault("STOREFRONT_JOBS_BROKER_URL", "redis://127.0.0.1:9/0")
os.environ.setdefault(BROKER_URL_VAR, "redis://127.0.0.1:9/0")


def per_call_us(fn: Callable[[], None], calls: int) -> float:
    for _ in range(min(500, calls)):  # warm-up: first label sets, caches
        fn()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.receivers", description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20000, help="simulated jobs per measurement")
    calls = parser.parse_args(argv).calls

    from bench import jobs
    from storefront_jobs.deadletter import capture
    from storefront_jobs.logs import configure_logging
    from storefront_jobs.metrics import pool
    from storefront_jobs.metrics.definitions import create_pool_metrics
    from storefront_jobs.worker import signals

    pool.prepare_multiprocess_dir()
    pool.install(create_pool_metrics(registry=None))
    task, task_id = jobs.noop, str(uuid.uuid4())
    delivery = {"routing_key": "p2.default"}
    headers = {"enqueuedAt": time.time(), "priority": "DEFAULT", "jobQueue": "bench.noop"}
    task.push_request(id=task_id, hostname="bench@host", delivery_info=delivery, headers=headers, retries=0)
    received = types.SimpleNamespace(name=task.name, hostname="bench@host", delivery_info=delivery)

    def metrics() -> None:
        pool.on_received(request=received)  # main process
        pool.on_prerun(task_id=task_id, task=task)  # pool process, from here on
        pool.on_postrun(task_id=task_id, task=task, state="SUCCESS")

    def context() -> None:
        signals.enter_job(task_id=task_id, task=task)
        signals.leave_job(task=task, state="SUCCESS")
        capture.forget_attempts(task=task, task_id=task_id, state="SUCCESS")

    data = {"id": task_id, "name": task.name, "args": "()", "kwargs": "{}", "eta": None}

    def log_lines() -> None:
        # The two INFO lines Celery writes per job, as storefront's JSON formatter renders them.
        logging.getLogger("celery.worker.strategy").info(
            "Task %s[%s] received", task.name, task_id, extra={"data": data}
        )
        logging.getLogger("celery.app.trace").info(
            "Task %s[%s] succeeded in %ss: %r", task.name, task_id, 0.0003, None, extra={"data": data}
        )

    try:
        with open(os.devnull, "w") as sink:
            configure_logging("INFO", "json", stream=sink)
            rows = [
                ("metrics: on_received + on_prerun + on_postrun", per_call_us(metrics, calls)),
                ("job context: enter_job + leave_job + forget_attempts", per_call_us(context, calls)),
                ("Celery's 2 INFO lines per job, JSON (LOG_LEVEL=INFO)", per_call_us(log_lines, calls)),
            ]
    finally:
        pool.remove_multiprocess_dir()
    for name, us in rows:
        print(f"{name:56s} {us:7.1f} us/job")
    print(f"{'total':56s} {sum(us for _, us in rows):7.1f} us/job")


if __name__ == "__main__":
    main()
