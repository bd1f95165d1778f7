"""Per-job cost against bare Celery in one run: single enqueue, enqueue_many, processing, chunked items.

``python -m bench.per_job [--rounds 3] [--enqueue-jobs 2000] [--jobs 3000] [--items 60000]``

Everything runs against one private Redis (no persistence), bare Celery and
storefront-jobs alternating round by round (``round_order``) so that noise on
the shared machine hits both; each figure is a median over rounds and every
goal is a ratio to bare Celery measured in the same run.

1. **Enqueue**, one producer process per kind: bare ``apply_async``,
   storefront ``delay`` (the lean path), storefront ``delay`` through Celery's
   ``send_task`` and kombu (a producer of the caller's forces that path: the
   cost before the lean path), ``enqueue_many`` in chunks of 500, and Redis's
   own limit: pipelined ``LPUSH`` of a message of the same size, 500 per round trip.
2. **Processing** no-op jobs on 2 processes (``-c 2``): prefork and threads
   pools, bare and storefront (``--priorities DEFAULT``), each alone, from
   worker-ready to all acknowledged (:func:`bench.drain.drain_once`).
3. **Chunked items**: ``--items`` no-op calls by ``enqueue_chunked`` (500 per
   message) drained by a storefront prefork pool; items per second against
   bare Celery's jobs per second of phase 2.
"""

from __future__ import annotations

import argparse
import statistics
import sys

from bench.core import bench_run
from bench.drain import DrainCase, drain_once
from bench.harness import Run, reset_broker, round_order
from bench.procs import REPO_ROOT

ENQUEUE_OPS: dict[str, tuple[str, str]] = {
    "bare": ("bare", "enqueue"),
    "storefront": ("storefront", "enqueue"),
    "storefront_celery_path": ("storefront", "enqueue_celery"),
    "enqueue_many": ("storefront", "enqueue_many"),
    "redis_pipelined": ("storefront", "pipelined"),
}
PROCESSING_CASES: dict[str, DrainCase] = {
    "bare_prefork": DrainCase("bare", "", "celery"),
    "storefront_prefork": DrainCase("storefront", "DEFAULT", "p2.default"),
    "bare_threads": DrainCase("bare", "", "celery", pool="threads"),
    "storefront_threads": DrainCase("storefront", "DEFAULT", "p2.default", pool="threads"),
}
CHUNKED = DrainCase("storefront", "DEFAULT", "p2.default", preload="enqueue_chunked", items_per_message=500)
GOALS = {"enqueue": 3.0, "enqueue_many": 10.0, "processing": 2.0, "chunked": 10.0}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--rounds", type=int, default=3, help="interleaved rounds of every comparison (default 3)")
    add("--enqueue-jobs", type=int, default=2000, help="enqueues per sample (default 2000)")
    add("--jobs", type=int, default=3000, help="no-op jobs a pool drains per sample (default 3000)")
    add("--items", type=int, default=60000, help="chunked items per sample (default 60000)")
    add("--only", action="append", choices=["enqueue", "processing"], help="run only this part")
    return parser.parse_args(argv)


def bench_enqueue(run: Run) -> dict[str, list[float]]:
    n: int = run.args.enqueue_jobs
    for kind, op in ENQUEUE_OPS.values():  # warm-up: connections, script SHAs, templates
        run.producers[kind].call(op, n=500)
    rates: dict[str, list[float]] = {label: [] for label in ENQUEUE_OPS}
    for r in range(run.args.rounds):
        for label in round_order(list(ENQUEUE_OPS), r):
            reset_broker(run.client)
            kind, op = ENQUEUE_OPS[label]
            rates[label].append(n / run.producers[kind].call(op, n=n))
        print("  enqueue round", r + 1, {k: round(v[-1]) for k, v in rates.items()}, flush=True)
    reset_broker(run.client)
    return rates


def bench_processing(run: Run) -> dict[str, list[float]]:
    rates: dict[str, list[float]] = {label: [] for label in [*PROCESSING_CASES, "chunked_items"]}
    for r in range(run.args.rounds):
        for label in round_order(list(rates), r):
            if label == "chunked_items":
                rates[label].append(drain_once(run, CHUNKED, run.args.items).rate)
            else:
                rates[label].append(drain_once(run, PROCESSING_CASES[label]).rate)
        print("  processing round", r + 1, {k: round(v[-1]) for k, v in rates.items()}, flush=True)
    return rates


def _verdict(ratio: float, goal: float) -> str:
    return f"goal >= {goal:g}x: {'met' if ratio >= goal else 'MISSED'}"


def render(enqueue: dict[str, list[float]], processing: dict[str, list[float]]) -> str:
    return "\n".join(
        [
            *(_render_enqueue(enqueue) if enqueue else []),
            *(_render_processing(processing) if processing else []),
        ]
    )


def _render_enqueue(enqueue: dict[str, list[float]]) -> list[str]:
    e = {label: statistics.median(v) for label, v in enqueue.items()}
    bare = e["bare"]
    lines = [f"1. Enqueue, one producer, {len(enqueue['bare'])} interleaved rounds (medians)"]
    titles = {
        "bare": "bare apply_async",
        "storefront": "storefront delay (lean path)",
        "storefront_celery_path": "storefront delay via send_task + kombu",
        "enqueue_many": "storefront enqueue_many (500 per call)",
        "redis_pipelined": "Redis limit: pipelined LPUSH, 500/trip",
    }
    for label, title in titles.items():
        lines.append(
            f"   {title:42s} {e[label]:9.0f} jobs/s {1e6 / e[label]:7.1f} us/job {e[label] / bare:6.2f}x"
        )
    single = e["storefront"] / bare
    lines.append(f"   single enqueue {single:.2f}x bare, {_verdict(single, GOALS['enqueue'])}")
    many = e["enqueue_many"] / bare
    lines.append(
        f"   enqueue_many {many:.2f}x bare, {_verdict(many, GOALS['enqueue_many'])};"
        f" {e['enqueue_many'] / e['redis_pipelined']:.0%} of the pipelined limit"
    )
    return lines


def _render_processing(processing: dict[str, list[float]]) -> list[str]:
    p = {label: statistics.median(v) for label, v in processing.items()}
    lines = []
    lines.append(
        f"2. Processing no-op jobs, -c 2, {len(processing['bare_prefork'])} interleaved rounds (medians)"
    )
    for pool in ("prefork", "threads"):
        b, s = p[f"bare_{pool}"], p[f"storefront_{pool}"]
        lines.append(
            f"   {pool:8s} bare {b:7.0f} jobs/s, storefront {s:7.0f} jobs/s: {s / b:.2f}x,"
            f" {_verdict(s / b, GOALS['processing'])}"
        )
    chunked = p["chunked_items"] / p["bare_prefork"]
    lines.append(
        f"3. Chunked items (500 per message, prefork -c 2): {p['chunked_items']:.0f} items/s,"
        f" {chunked:.1f}x bare prefork jobs/s, {_verdict(chunked, GOALS['chunked'])}"
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    phases = args.only or ["enqueue", "processing"]
    # bench.drain reads --jobs from the args; the core benchmark's other options are not used.
    with bench_run(args, "per-job") as run:
        run.results["enqueue"] = bench_enqueue(run) if "enqueue" in phases else {}
        run.results["processing"] = bench_processing(run) if "processing" in phases else {}
    print()
    print(f"machine: {run.results['machine']}")
    print(render(run.results["enqueue"], run.results["processing"]))
    print(f"\nraw samples and worker logs: {run.children.log_dir.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
