"""Benchmark of the dead-letter queue: export, replay and filtered listing at scale.

``python -m bench.dlq [--entries 100000] [--large 1000000] [--pages 200]``; results in docs/benchmarks.md.

1. **Export** of ``--entries`` entries with ``storefront-jobs dlq export``
   (JSON lines and JSON array), as a subprocess: wall time and peak RSS.
2. **Replay** of the same entries to their lane (no worker running), through
   the real replayer (kombu-built messages, the store's atomic MOVE script,
   the capacity gate): entries per second. Goal: >= 2,000/s.
3. **Filtered list**: one page of 50 at ``--large`` entries (queue, tenant
   and error cycle through 10 values, so one filter selects a tenth),
   median and p95 of ``--pages`` calls. Goal: < 50 ms.

Everything runs against a private redis-server on a free port. The DLQ is
filled with ``tests.support.dlq.bulk_load``, which writes the store's layout
directly (the add script runs once per capture, at worker speed; loading a
million entries through it would only measure the loader). Results go to
``bench/results/dlq-<time>/results.json`` (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from bench.procs import REPO_ROOT
from storefront_jobs import create_app, load_settings
from storefront_jobs.deadletter import Filter, ReplayRequest, replayer_for, store_for
from storefront_jobs.deadletter.store import DeadLetterStore
from storefront_jobs.embedded import EmbeddedRedis
from tests.support.dlq import bulk_load

_MEASURE_RSS = (
    "import resource, subprocess, sys, time; t = time.perf_counter(); rc = subprocess.call(sys.argv[1:]); "
    "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(rc)"
)


def timed_command(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of a command run by a fresh wrapper whose only child it is."""
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE_RSS, *argv], env=env, capture_output=True, text=True, check=True
    )
    wall_s, rss_kb = done.stdout.split()[-2:]
    return float(wall_s), int(rss_kb) / 1024


def bench_export(url: str, entries: int, out_dir: Path) -> dict[str, Any]:
    env = dict(os.environ, STOREFRONT_JOBS_BROKER_URL=url)
    cli = [sys.executable, "-m", "storefront_jobs", "dlq", "export"]
    results: dict[str, Any] = {"entries": entries}
    for fmt in ("jsonl", "json"):
        target = out_dir / f"export.{fmt}"
        wall_s, rss_mb = timed_command([*cli, "--format", fmt, "-o", str(target)], env)
        results[fmt] = {
            "wall_s": round(wall_s, 2),
            "entries_per_s": round(entries / wall_s),
            "peak_rss_mb": round(rss_mb, 1),
            "file_mb": round(target.stat().st_size / 2**20, 1),
        }
        target.unlink()
    return results


def bench_replay(app: Any, entries: int, client: redis.Redis) -> dict[str, Any]:
    with replayer_for(app) as replayer:
        started = time.perf_counter()
        report = replayer.replay(ReplayRequest(filter=Filter(queue="all")), actor="bench", source="cli")
        elapsed = time.perf_counter() - started
    lane_depth = int(client.llen("p2.default"))
    assert report.replayed_count == entries == lane_depth, (report.replayed_count, lane_depth)
    return {"entries": entries, "wall_s": round(elapsed, 2), "entries_per_s": round(entries / elapsed)}


def latency_ms(call: Callable[[], object], pages: int) -> dict[str, float]:
    samples = []
    for _ in range(pages):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return {
        "median_ms": round(samples[len(samples) // 2], 2),
        "p95_ms": round(samples[int(len(samples) * 0.95) - 1], 2),
        "max_ms": round(samples[-1], 2),
    }


def bench_list(store: DeadLetterStore, large: int, pages: int) -> dict[str, Any]:
    deep = store.page(Filter(queue="queue-3"), None, 50 * 100).next_cursor
    cases: dict[str, Callable[[], object]] = {
        "no filter, first page": lambda: store.page(Filter(), None, 50),
        "queue (1/10), first page": lambda: store.page(Filter(queue="queue-3"), None, 50).records(),
        "queue (1/10), page 101": lambda: store.page(Filter(queue="queue-3"), deep, 50).records(),
        "queue + tenant + error": lambda: store.page(
            Filter(queue="queue-3", tenant="tenant-3", error="Error3"), None, 50
        ).records(),
        "queue + since (last 10%)": lambda: store.page(
            Filter(queue="queue-3", since_s=1_800_000_000 + large * 0.9), None, 50
        ).records(),
        "count, queue + tenant": lambda: store.count(Filter(queue="queue-3", tenant="tenant-3")),
    }
    return {"entries": large, "page": 50} | {name: latency_ms(call, pages) for name, call in cases.items()}


def render(results: dict[str, Any]) -> str:
    export, replay, listing = results["export"], results["replay"], results["list"]
    lines = [
        f"DLQ benchmark on {results['machine']['cpus']} CPUs, Python {results['machine']['python']}, "
        f"redis-server {results['machine']['redis']}",
        "",
        f"| export of {export['entries']:,} entries | wall | entries/s | peak RSS | file |",
        "|---|---|---|---|---|",
    ]
    for fmt in ("jsonl", "json"):
        e = export[fmt]
        row = [
            fmt,
            f"{e['wall_s']} s",
            f"{e['entries_per_s']:,}",
            f"{e['peak_rss_mb']} MB",
            f"{e['file_mb']} MB",
        ]
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        f"replay of {replay['entries']:,} entries to their lane: {replay['wall_s']} s, "
        f"**{replay['entries_per_s']:,} entries/s** (goal >= 2,000/s)",
        "",
        f"| one page of {listing['page']} at {listing['entries']:,} entries | median | p95 | max |",
        "|---|---|---|---|",
    ]
    for name, value in listing.items():
        if isinstance(value, dict):
            lines.append(
                f"| {name} | {value['median_ms']} ms | {value['p95_ms']} ms | {value['max_ms']} ms |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dlq", description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=100_000, help="entries to export and replay")
    parser.add_argument("--large", type=int, default=1_000_000, help="entries for the filtered-list phase")
    parser.add_argument("--pages", type=int, default=200, help="timed calls per listing case")
    args = parser.parse_args(argv)
    out_dir = REPO_ROOT / "bench" / "results" / time.strftime("dlq-%Y%m%d-%H%M%S")
    out_dir.mkdir(parents=True, exist_ok=True)
    with EmbeddedRedis() as broker:
        client = redis.Redis.from_url(broker.url)
        settings = load_settings(
            broker_url=broker.url,
            dlq={"max_entries": args.large * 2, "retention_s": 10**9},
            queue_capacity={"default": args.entries * 2},
        )
        app = create_app(settings)
        results: dict[str, Any] = {
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "redis": client.info()["redis_version"],
            }
        }
        print(f"loading {args.entries:,} entries ...", file=sys.stderr)
        bulk_load(client, args.entries)
        results["export"] = bench_export(broker.url, args.entries, out_dir)
        print("replaying ...", file=sys.stderr)
        results["replay"] = bench_replay(app, args.entries, client)
        client.flushall()
        print(f"loading {args.large:,} entries ...", file=sys.stderr)
        bulk_load(client, args.large, variety=10)
        results["list"] = bench_list(store_for(app), args.large, args.pages)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2))
    print(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
