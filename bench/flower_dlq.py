"""Benchmark of Flower's Dead letters pages at a million entries: server time per page, and memory.

``python -m bench.flower_dlq [--entries 1000000] [--pages 50]``; results in docs/benchmarks.md.

The DLQ is filled with ``tests.support.dlq.bulk_load`` (queue, tenant and
error cycle through 10 values, so one filter selects a tenth), then
``storefront-jobs flower`` runs as a subprocess on a private redis-server.
Each page is fetched ``--pages`` times over loopback; the server time is
the ``Server-Timing`` header the section sets (Redis calls and the template,
not the network), the wall time what the client waited. Goal: under 200 ms
server time for the first page and a filtered page. Flower's resident memory
is read before and after, and after exporting a tenth of the DLQ, to show
that no page holds the DLQ in memory.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import redis

from bench.procs import REPO_ROOT
from storefront_jobs import create_app, load_settings
from storefront_jobs.deadletter import Filter, store_for
from storefront_jobs.embedded import EmbeddedRedis
from tests.support.dlq import bulk_load
from tests.support.flower import running_flower

USER, PASSWORD = "bench", "bench-password"
_TIMING = re.compile(r"app;dur=([0-9.]+)")


def fetch(url: str) -> tuple[float, float, int]:
    """(server ms, wall ms, bytes) of one GET with basic auth."""
    request = urllib.request.Request(url)
    request.add_header("Authorization", "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode())
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as response:
        body = response.read()
        timing = response.headers.get("Server-Timing", "")
    wall_ms = (time.perf_counter() - started) * 1000
    match = _TIMING.search(timing)
    return (float(match.group(1)) if match else float("nan")), wall_ms, len(body)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_ms": round(ordered[len(ordered) // 2], 1),
        "p95_ms": round(ordered[max(0, int(len(ordered) * 0.95) - 1)], 1),
        "max_ms": round(ordered[-1], 1),
    }


def cases(client: redis.Redis, entries: int) -> dict[str, str]:
    # The cursor of page 101 of one queue: what "Older" links lead to after 100 clicks.
    url = client.connection_pool.connection_kwargs
    app = create_app(load_settings(broker_url=f"redis://{url['host']}:{url['port']}/0"))
    deep = store_for(app).page(Filter(queue="queue-3"), None, 50 * 100).next_cursor
    pages = {
        "first page, no filter": "/dead-letters",
        "filtered: tenant (1/10)": "/dead-letters?tenant=tenant-3",
        "filtered: queue + tenant + error": "/dead-letters?queue=queue-3&tenant=tenant-3&error=Error3",
        "one entry": f"/dead-letters/entry/bulk-{entries // 2:08d}",
        "replay preview, tenant (1/10)": "/dead-letters/replay?tenant=tenant-3",
        "audit log": "/dead-letters/audit",
    }
    if deep is not None:  # a DLQ too small for 101 pages has no such cursor
        pages["filtered: queue, page 101"] = f"/dead-letters?queue=queue-3&cursor={deep}"
    return pages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.flower_dlq", description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--pages", type=int, default=50, help="timed fetches per page")
    args = parser.parse_args(argv)
    out_dir = REPO_ROOT / "bench" / "results" / time.strftime("flower-dlq-%Y%m%d-%H%M%S")
    out_dir.mkdir(parents=True, exist_ok=True)
    with EmbeddedRedis() as broker:
        client = redis.Redis.from_url(broker.url)
        print(f"loading {args.entries:,} entries ...", file=sys.stderr)
        bulk_load(client, args.entries, variety=10)
        with running_flower(
            broker.url,
            out_dir / "flower.log",
            flower_basic_auth=f"{USER}:{PASSWORD}",
            dlq__max_entries=str(args.entries * 2),
            dlq__retention_s=str(10**9),
        ) as flower:
            base, pid = flower.url, flower.proc.pid
            results: dict[str, Any] = {"entries": args.entries, "rss_start_mb": round(rss_mb(pid), 1)}
            pages: dict[str, Any] = {}
            for name, path in cases(client, args.entries).items():
                fetch(base + path)  # warm: templates compiled, connections open
                server, wall = [], []
                for _ in range(args.pages):
                    s, w, size = fetch(base + path)
                    server.append(s)
                    wall.append(w)
                pages[name] = {"server": summary(server), "wall": summary(wall), "bytes": size}
            results["pages"] = pages
            results["rss_after_pages_mb"] = round(rss_mb(pid), 1)
            _, export_ms, export_bytes = fetch(base + "/dead-letters/export?tenant=tenant-3&format=jsonl")
            results["export_tenth"] = {
                "wall_s": round(export_ms / 1000, 1),
                "mb": round(export_bytes / 2**20, 1),
            }
            results["rss_after_export_mb"] = round(rss_mb(pid), 1)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2))
    print(render(results))
    return 0


def render(results: dict[str, Any]) -> str:
    lines = [
        f"Flower Dead letters pages at {results['entries']:,} entries (server time from Server-Timing)",
        "",
        "| page | server median | server p95 | wall median | wall p95 |",
        "|---|---|---|---|---|",
    ]
    for name, page in results["pages"].items():
        s, w = page["server"], page["wall"]
        lines.append(
            f"| {name} | {s['median_ms']} ms | {s['p95_ms']} ms | {w['median_ms']} ms | {w['p95_ms']} ms |"
        )
    export = results["export_tenth"]
    lines += [
        "",
        f"Flower RSS: {results['rss_start_mb']} MB at start, "
        f"{results['rss_after_pages_mb']} MB after the pages, {results['rss_after_export_mb']} MB after "
        f"exporting a tenth ({export['mb']} MB in {export['wall_s']} s)",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
