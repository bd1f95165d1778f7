"""Benchmark of the core runtime against bare Celery 5.7: one run, one private Redis, ratios.

``python -m bench.core [--rounds 5] [--jobs 3000]``; see bench/README.md.

1. **Enqueue rate** (bench.enqueue): storefront ``delay`` with the capacity
   check on, against bare ``apply_async`` of a bare task on a bare app.
2. **Processing rate** (bench.drain): pools draining pre-loaded no-op jobs,
   one after the other and, as a cross-check, side by side.
3. **CRITICAL wait** (bench.latency): enqueue-to-start of CRITICAL probes sent
   while half-second BULK jobs flood the pool(s).

Comparisons are interleaved (bare, ours, ours, bare, ...) and reported as
medians: the machine is shared and noisy, and interleaving spreads its noise
over both sides. Logs and a JSON copy of the results go to
``bench/results/core-<time>/`` (git-ignored).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

import redis
from celery import Celery

from bench import report
from bench.drain import bench_drain, bench_side_by_side
from bench.enqueue import bench_enqueue
from bench.harness import Run, percentile
from bench.latency import bench_latency, bench_reserved
from bench.procs import REPO_ROOT, Children, Producer
from storefront_jobs.embedded import EmbeddedRedis

PHASES: dict[str, Callable[[Run], dict[str, Any]]] = {
    "enqueue": bench_enqueue,
    "drain": bench_drain,
    "side_by_side": bench_side_by_side,
    "latency": bench_latency,
    # Not part of a plain run (see DEFAULT_PHASES): ``--only reserved``.
    "reserved": bench_reserved,
}
#: The phases a run without ``--only`` measures: the core comparison with bare Celery.
DEFAULT_PHASES = ("enqueue", "drain", "side_by_side", "latency")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.core", description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--rounds", type=int, default=5, help="interleaved rounds of each drain comparison (default 5)")
    add("--jobs", type=int, default=3000, help="no-op jobs a pool drains per round (default 3000)")
    add("--enqueue-rounds", type=int, default=15, help="interleaved rounds of the enqueue phase (default 15)")
    add("--enqueue-jobs", type=int, default=1000, help="enqueues per sample (default 1000)")
    add("--latency-rounds", type=int, default=1, help="floods per latency case (default 1)")
    add("--flood", type=int, default=100, help="BULK jobs in each flood (default 100)")
    add("--flood-sleep-s", type=float, default=0.5, help="duration of each BULK job (default 0.5)")
    add("--probes", type=int, default=20, help="CRITICAL probes per flood (default 20)")
    add("--probe-spacing-s", type=float, default=0.15, help="gap between probes (default 0.15)")
    add("--throughput-jobs", type=int, default=400, help="BULK jobs of the reserved drain (default 400)")
    add("--throughput-sleep-s", type=float, default=0.05, help="their duration (default 0.05)")
    add("--only", action="append", choices=list(PHASES), help="run only this phase (repeatable)")
    return parser.parse_args(argv)


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Turn SIGTERM into an exception so that the ExitStack stops every child and the Redis.
    raise KeyboardInterrupt


def machine_facts(client: redis.Redis[bytes], args: argparse.Namespace) -> dict[str, object]:
    return {
        "cpus": report.cpu_count(),
        "python": platform.python_version(),
        "celery": importlib.metadata.version("celery"),
        "kombu": importlib.metadata.version("kombu"),
        "redis_server": client.info("server")["redis_version"],
        "git": git_state(),
        # The machines are shared: the load others put on them is part of the result.
        "loadavg_start": os.getloadavg(),
        "args": vars(args),
    }


def git_state() -> str:
    """The commit measured, and whether storefront_jobs/ had uncommitted changes on top."""
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    )
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "storefront_jobs"],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO_ROOT,
    )
    changed = len(dirty.stdout.splitlines())
    return head.stdout.strip() + (f" + {changed} uncommitted paths in storefront_jobs/" if changed else "")


def run_phases(run: Run) -> None:
    for name, phase in PHASES.items():
        if name not in (run.args.only or DEFAULT_PHASES):
            continue
        print(f"{name} ...", flush=True)
        started = time.monotonic()
        run.results[name] = phase(run)
        print(f"  ({time.monotonic() - started:.0f} s)", flush=True)


@contextlib.contextmanager
def bench_run(args: argparse.Namespace, name: str) -> Iterator[Run]:
    """A run of a benchmark: a private Redis, a control app, one producer per kind, its results directory.

    The results (``run.results``, with the machine's facts) are written to
    ``results.json`` in ``run.children.log_dir`` at the end, also after a
    failure or Ctrl-C: whatever was measured is still worth keeping.
    """
    out_dir = REPO_ROOT / "bench" / "results" / time.strftime(f"{name}-%Y%m%d-%H%M%S")
    out_dir.mkdir(parents=True)
    # Closed in reverse order: producers and workers first, while their Redis is still up.
    with contextlib.ExitStack() as stack:
        broker = stack.enter_context(EmbeddedRedis())
        client = stack.enter_context(redis.Redis.from_url(broker.url))
        control = Celery("bench_control", broker=broker.url, set_as_current=False)
        stack.callback(control.close)
        children = Children(out_dir)
        stack.callback(children.close)
        producers = {kind: Producer(children, kind, broker.url) for kind in ("bare", "storefront")}
        run = Run(args, broker.url, client, children, control, producers)
        run.results["machine"] = machine_facts(client, args)
        try:
            yield run
        finally:
            run.results["machine"]["loadavg_end"] = os.getloadavg()
            (out_dir / "results.json").write_text(json.dumps(run.results, indent=2))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    with bench_run(args, "core") as run:
        run_phases(run)
    print()
    print(report.render(run.results, percentile))
    print(f"\nraw samples and worker logs: {run.children.log_dir.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
