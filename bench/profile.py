"""Where a job's time goes: the enqueue, and the worker's fetch to acknowledgement, by package.

``python -m bench.profile [--jobs 3000] [--pool prefork|solo] [--short]``

1. **Enqueue.** ``noop.delay()`` (a DEFAULT storefront job) ``--jobs`` times
   under cProfile, in this process, against a private Redis.
2. **Execution.** A ``storefront-jobs worker --priorities DEFAULT -c 2``
   drains those jobs; each of its processes profiles itself
   (:mod:`bench.profiled`) and bench.profile adds the files up.

Each function's own time (cProfile's ``tottime``) is charged to the package
its code lives in: ours (``storefront_jobs``), Celery, kombu, billiard,
redis-py, prometheus-client, json, the socket calls of the round trips, and
the rest (the standard library, builtins). Time a process spends waiting
for work (``epoll``, a pool child reading its pipe, a thread on a lock) is
shown apart and left out of the cost per job. The worker's profile runs from
``worker_init`` to its exit, so it includes the pool's start and stop: use
thousands of jobs to make them small. cProfile slows Python down about twice, the same for every
package, so the shares are what to read; the microseconds are inflated.
The count of Redis round trips per job comes from redis-py's
``read_response`` calls. ``--short`` runs 200 jobs: the suite runs it so the
script keeps working; its numbers are not checked anywhere.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import os
import pstats
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import redis

from bench.procs import BENCH_CAPACITY, STARTUP_FLAGS, Children, child_env
from bench.profiled import PROFILE_DIR_VAR
from storefront_jobs.embedded import EmbeddedRedis

#: (category, path fragments of its code), first match wins; builtins are matched by name below.
PACKAGES = (
    ("storefront-jobs", ("/storefront_jobs/",)),
    ("celery", ("/celery/",)),
    ("kombu", ("/kombu/",)),
    ("billiard", ("/billiard/",)),
    ("redis-py", ("/redis/",)),
    ("prometheus-client", ("/prometheus_client/",)),
    ("json", ("/json/",)),
)
IDLE = "waiting for work"
ROUND_TRIPS = "socket I/O (round trips)"
BUILTIN_CATEGORIES = (
    # A process blocked: the event loop's poll, a pool child reading its pipe, a thread on a lock.
    (IDLE, ("epoll", "poll", "select", "posix.read", "waitpid", "'acquire' of '_thread.lock'", "sleep")),
    (ROUND_TRIPS, ("socket", "sendall", "recv")),
    ("json", ("json", "_json")),
)
OTHER = "other (stdlib, builtins)"


def category(filename: str, function: str) -> str:
    """The package a function's own time is charged to."""
    for name, fragments in PACKAGES:
        if any(fragment in filename for fragment in fragments):
            return name
    if (
        filename == "~"
    ):  # a builtin: cProfile names it like "<method 'recv_into' of '_socket.socket' objects>"
        for name, words in BUILTIN_CATEGORIES:
            if any(word in function for word in words):
                return name
    return OTHER


def breakdown(stats: pstats.Stats) -> tuple[Counter[str], int]:
    """Own seconds per category, and the number of Redis replies read."""
    seconds: Counter[str] = Counter()
    replies = 0
    for (filename, _line, function), row in stats.stats.items():  # type: ignore[attr-defined]
        _calls, primitive_calls, own_s, _cumulative_s, _callers = row
        seconds[category(filename, function)] += own_s
        if function == "read_response" and "/redis/connection" in filename:
            replies += primitive_calls
    return seconds, replies


def render(title: str, seconds: Counter[str], replies: int, jobs: int) -> str:
    busy_s = sum(s for name, s in seconds.items() if name != IDLE)
    lines = [
        f"{title}: {busy_s / jobs * 1e6:.0f} us profiled per job, {replies / jobs:.2f} Redis replies per job"
    ]
    for name, own_s in seconds.most_common():
        if name == IDLE:
            continue
        lines.append(f"   {name:28s} {own_s / jobs * 1e6:8.1f} us/job  {own_s / busy_s:6.1%}")
    if seconds[IDLE]:
        lines.append(f"   ({IDLE}: {seconds[IDLE]:.2f} s in all, not counted)")
    return "\n".join(lines)


def profile_enqueue(jobs: int, broker_url: str) -> pstats.Stats:
    """Profile ``jobs`` enqueues in this process; they stay in the DEFAULT lane for the worker."""
    os.environ.update(
        STOREFRONT_JOBS_BROKER_URL=broker_url, STOREFRONT_JOBS_QUEUE_CAPACITY__DEFAULT=BENCH_CAPACITY
    )
    from bench import jobs as bench_jobs  # builds the app from the variables just set

    for _ in range(50):  # connections, script loading, the first publish's declarations
        bench_jobs.noop.delay()
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(jobs):
        bench_jobs.noop.delay()
    profile.disable()
    return pstats.Stats(profile)


def profile_execution(pool: str, broker_url: str, client: redis.Redis[bytes], out: Path) -> pstats.Stats:
    """Drain the DEFAULT lane with a worker whose processes profile themselves; their statistics added up."""
    children = Children(out)
    env = child_env(broker_url, "storefront")
    env[PROFILE_DIR_VAR] = str(out)
    argv = [sys.executable, "-m", "storefront_jobs", "worker", "--priorities", "DEFAULT", "-P", pool]
    argv += ["-c", "1" if pool == "solo" else "2", "--imports", "bench.jobs,bench.profiled", *STARTUP_FLAGS]
    try:
        proc = children.spawn(argv, env, "worker.log")
        deadline = time.monotonic() + 600
        while client.llen("p2.default") or client.hlen("unacked"):
            if proc.poll() is not None or time.monotonic() > deadline:
                log = (out / "worker.log").read_text()[-3000:]
                raise RuntimeError(f"the profiled worker stopped or stalled:\n{log}")
            time.sleep(0.05)
        # A warm stop (SIGTERM to the main process): every process writes its statistics on its way out.
        children.stop(proc, timeout_s=120)
    finally:
        children.close()
    files = sorted(str(path) for path in out.glob("*.prof"))
    if not files:
        raise RuntimeError("the worker wrote no profile:\n" + (out / "worker.log").read_text()[-3000:])
    return pstats.Stats(*files)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=3000, help="jobs enqueued, then drained (default 3000)")
    parser.add_argument("--pool", choices=["prefork", "solo"], default="prefork", help="the worker's pool")
    parser.add_argument("--short", action="store_true", help="200 jobs: a check that the script still runs")
    parser.add_argument("--top", type=int, default=12, help="functions listed by own time (default 12)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    jobs = 200 if args.short else args.jobs
    with contextlib.ExitStack() as stack:
        broker = stack.enter_context(EmbeddedRedis())
        client = stack.enter_context(redis.Redis.from_url(broker.url))
        out = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-profile-")))
        enqueue = profile_enqueue(jobs, broker.url)
        # The worker drains what the enqueue phase sent: its warm-up jobs too.
        drained = int(client.llen("p2.default"))
        execution = profile_execution(args.pool, broker.url, client, out)
        print(render("1. enqueue (noop.delay)", *breakdown(enqueue), jobs))
        enqueue.strip_dirs().sort_stats("tottime").print_stats(args.top)
        print(
            render(
                f"2. execution ({args.pool} pool: fetch, run, acknowledge)", *breakdown(execution), drained
            )
        )
        execution.strip_dirs().sort_stats("tottime").print_stats(args.top)
    print("(cProfile slows every function down; read the shares, not the microseconds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
