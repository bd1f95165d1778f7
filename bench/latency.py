"""Phase 3: how long a CRITICAL job waits to start while BULK jobs flood the pool(s)."""

from __future__ import annotations

import json
import time

from bench.harness import Run, percentile, reset_broker, wait_for
from bench.probes import STARTS_KEY
from bench.procs import start_worker, wait_ready

#: label -> (kind, pools as (lanes, concurrency)). Bare Celery has no lanes: five plain queues, defaults.
LATENCY_CASES: dict[str, tuple[str, tuple[tuple[str, int], ...]]] = {
    "bare_shared": ("bare", (("critical,high,default,low,bulk", 2),)),
    "storefront_shared": ("storefront", (("all", 2),)),
    "storefront_dedicated": ("storefront", (("CRITICAL", 2), ("BULK", 2))),
}


def critical_waits(run: Run, label: str) -> list[float]:
    """Seconds from enqueue to start of each CRITICAL probe sent during a BULK flood."""
    kind, pools = LATENCY_CASES[label]
    args = run.args
    reset_broker(run.client)
    workers = [start_worker(run.children, run.url, kind, lanes, concurrency=c) for lanes, c in pools]
    try:
        for worker in workers:
            wait_ready(run.control, worker)
        run.producers[kind].call("flood", n=args.flood, sleep_s=args.flood_sleep_s)
        time.sleep(1.0)  # let the pool(s) take their first BULK jobs (and, bare, prefetch more)
        run.producers[kind].call("probes", n=args.probes, spacing_s=args.probe_spacing_s)
        budget_s = args.flood * args.flood_sleep_s + 60  # bare may make probes wait out the whole flood
        wait_for(lambda: int(run.client.llen(STARTS_KEY)) >= args.probes, budget_s, "every probe to start")
        records = [json.loads(raw) for raw in run.client.lrange(STARTS_KEY, 0, -1)]
    finally:
        # A busy late-ack prefork pool can take ~30 s to stop warmly (billiard's children
        # wait for the parent to read results it no longer reads); nothing here needs a
        # warm stop, so give it 5 s, then SIGKILL. The reset drops the rest of the flood.
        for worker in workers:
            worker.stop(timeout_s=5.0)
        reset_broker(run.client)
    return [r["started_at"] - r["enqueued_at"] for r in sorted(records, key=lambda r: r["n"])]


def bench_latency(run: Run) -> dict[str, list[float]]:
    waits: dict[str, list[float]] = {label: [] for label in LATENCY_CASES}
    for r in range(run.args.latency_rounds):
        for label in LATENCY_CASES:
            waits[label] += critical_waits(run, label)
            p95_ms = percentile(waits[label], 95) * 1000
            print(f"  latency round {r + 1}: {label} p95 {p95_ms:.0f} ms", flush=True)
    return waits
