"""What every phase of bench.core shares: the run's handles, broker reset, polling, round order."""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis
from celery import Celery

from bench.procs import Children, Producer

POLL_S = 0.002
UNACKED = "unacked"  # kombu's hash of messages held by workers (delivered, not yet acknowledged)


@dataclass
class Run:
    """The broker, the processes, the options, and what was measured so far."""

    args: argparse.Namespace
    url: str
    client: redis.Redis[bytes]
    children: Children
    control: Celery  # a plain app, only for broadcast ping and inspect
    producers: dict[str, Producer]
    results: dict[str, Any] = field(default_factory=dict)


def reset_broker(client: redis.Redis[bytes]) -> None:
    """Empty every queue, unacked record and probe list; keep kombu's bindings.

    Not FLUSHDB: a producer declares its queue binding (``_kombu.binding.*``)
    once per process, and without it kombu would drop what it publishes.
    """
    doomed = [k for k in client.scan_iter(count=1000) if not k.startswith(b"_kombu.binding.")]
    if doomed:
        client.delete(*doomed)


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str, poll_s: float = POLL_S) -> float:
    """Poll until ``predicate`` holds; the perf_counter time it was first seen true."""
    deadline = time.perf_counter() + timeout_s
    while not predicate():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(poll_s)
    return time.perf_counter()


#: Polling while Redis counts commands: a few dozen polls per drain instead of ~500 a second.
QUIET_POLL_S = 0.05


def command_costs(client: redis.Redis[bytes]) -> dict[str, tuple[int, float]]:
    """Calls and microseconds per Redis command since the last ``CONFIG RESETSTAT`` (INFO commandstats)."""
    stats = client.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): (int(value["calls"]), float(value["usec"]))
        for name, value in stats.items()
    }


def round_order(labels: list[str], round_number: int) -> list[str]:
    """A B C, then C B A: neighbours stay neighbours, and a slow drift hits each side equally."""
    return labels if round_number % 2 == 0 else labels[::-1]


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile: with 20 samples, p95 is the 19th smallest."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]
