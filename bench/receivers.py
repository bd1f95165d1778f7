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
    from storefront_jobs import get_default_app
    from storefront_jobs.logs import configure_logging
    from storefront_jobs.metrics.pool import JobMetrics
    from storefront_jobs.worker import signals
    from storefront_jobs.worker.hooks import HookChain

    # The registered task, as a worker runs it (jobs.noop is the producer's proxy of it).
    task, task_id = get_default_app().tasks[jobs.noop.name], str(uuid.uuid4())
    chain: HookChain = task.app.storefront_hooks
    metrics_hook = chain.find(JobMetrics)
    assert metrics_hook is not None
    worker = types.SimpleNamespace(app=task.app, hostname="bench@host")
    metrics_hook.worker_init(worker)  # multiprocess files and metrics, as in a pool
    delivery = {"routing_key": "p2.default"}
    headers = {"enqueuedAt": time.time(), "priority": "DEFAULT", "jobQueue": "bench.noop"}
    received = types.SimpleNamespace(name=task.name, hostname="bench@host", delivery_info=delivery)
    consumer = types.SimpleNamespace(app=task.app)

    def every_hook() -> None:
        # One delivery through the router, as Celery's signals drive it: every hook of
        # the chain (logs and tenant, metrics, DLQ bookkeeping) on a fresh job context.
        task.push_request(
            id=task_id, hostname="bench@host", delivery_info=delivery, headers=headers, retries=0
        )
        signals.on_task_received(sender=consumer, request=received)  # main process
        signals.on_task_prerun(task_id=task_id, task=task)  # pool process, from here on
        signals.on_task_postrun(task_id=task_id, task=task, state="SUCCESS")
        task.pop_request()

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
                (
                    "hooks: received + started + finished (context, logs, metrics, DLQ)",
                    per_call_us(every_hook, calls),
                ),
                ("Celery's 2 INFO lines per job, JSON (LOG_LEVEL=INFO)", per_call_us(log_lines, calls)),
            ]
    finally:
        metrics_hook.worker_shutdown(worker)
    for name, us in rows:
        print(f"{name:70s} {us:7.1f} us/job")
    print(f"{'total':70s} {sum(us for _, us in rows):7.1f} us/job")


if __name__ == "__main__":
    main()
