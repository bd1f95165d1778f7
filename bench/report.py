"""The text report of bench.core: medians, ratios to bare Celery, and each goal met or missed."""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable
from typing import Any

Percentile = Callable[[list[float], float], float]

#: The goals of the core runtime (the brief of this benchmark).
ENQUEUE_GOAL = 0.90
DRAIN_GOAL = 0.95
LATENCY_GOALS_MS = {"storefront_shared": 500.0, "storefront_reserved": 10.0, "storefront_dedicated": 10.0}

_DRAIN_TITLES = {
    "bare": "bare celery worker -c 2 -P prefork (defaults)",
    "storefront": "storefront-jobs worker --priorities DEFAULT",
    "storefront_log_warning": "  same, LOG_LEVEL=WARNING (info)",
    "storefront_all_lanes": "storefront-jobs worker --priorities all (info)",
}
_LATENCY_TITLES = {
    "bare_shared": "bare: one worker on 5 queues, defaults",
    "storefront_shared": "storefront: one pool on all lanes",
    "storefront_dedicated": "storefront: CRITICAL pool + BULK pool",
    "storefront_reserved": "storefront: one pool, 1 process reserved",
}


def cpu_count() -> int:
    """CPUs this process may run on (the affinity mask, which is what a container grants)."""
    return len(os.sched_getaffinity(0))


def _load(values: Any) -> str:
    return "/".join(f"{v:.1f}" for v in values) if values else "?"


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def _paired_ratio(ours: list[float], bare: list[float]) -> float:
    """Median of round-by-round ratios: each pair ran back to back, so shares the same noise."""
    return statistics.median(o / b for o, b in zip(ours, bare, strict=True))


def render_enqueue(rates: dict[str, list[float]]) -> list[str]:
    med = {label: statistics.median(values) for label, values in rates.items()}
    ratio = med["storefront"] / med["bare"]
    us = {label: 1e6 / rate for label, rate in med.items()}
    n = len(rates["bare"])
    return [
        f"1. Enqueue, {n} interleaved rounds (medians)",
        f"   bare apply_async                      {med['bare']:8.0f} jobs/s  {us['bare']:6.1f} us/job",
        f"   storefront delay (capacity check on)  {med['storefront']:8.0f} jobs/s"
        f"  {us['storefront']:6.1f} us/job",
        f"   ratio {ratio:.3f} (paired {_paired_ratio(rates['storefront'], rates['bare']):.3f}),"
        f" goal >= {ENQUEUE_GOAL}: {_verdict(ratio >= ENQUEUE_GOAL)}",
        "   cost split:",
        f"     storefront with the check stubbed   {us['storefront_ungated']:6.1f} us/job"
        f"  (+{us['storefront_ungated'] - us['bare']:.1f} us over bare: headers, lane routing, signal)",
        f"     capacity check alone (EVALSHA)      {us['capacity_check']:6.1f} us/call",
        f"     Redis PING (one round trip)         {us['redis_ping']:6.1f} us/call",
        f"     => of storefront's +{us['storefront'] - us['bare']:.1f} us per enqueue,"
        f" {us['storefront'] - us['storefront_ungated']:.1f} us is the check",
    ]


def render_drain(drain: dict[str, dict[str, list[float]]]) -> list[str]:
    rates, cpu, redis_cpu = drain["rate"], drain["worker_cpu_us"], drain["redis_cpu_us"]
    bare = statistics.median(rates["bare"])
    bare_cpu = statistics.median(cpu["bare"])
    lines = [
        f"2. Processing no-op jobs, {len(rates['bare'])} interleaved rounds (medians)",
        f"   {'':48s} {'wall clock':>17s}   {'CPU per job: worker + redis':>28s}",
    ]
    for label, values in rates.items():
        rate, job_cpu = statistics.median(values), statistics.median(cpu[label])
        line = (
            f"   {_DRAIN_TITLES.get(label, label):48s} {rate:7.0f} jobs/s"
            f"  {job_cpu:6.0f} us + {statistics.median(redis_cpu[label]):4.0f} us"
        )
        if label != "bare":
            line += (
                f"  ratio {rate / bare:.3f} (paired {_paired_ratio(values, rates['bare']):.3f};"
                f" by worker CPU {bare_cpu / job_cpu:.3f})"
            )
        if label == "storefront":
            line += f"  goal >= {DRAIN_GOAL} (wall clock): {_verdict(rate / bare >= DRAIN_GOAL)}"
        lines.append(line)
    return lines


def render_latency(waits: dict[str, list[float]], percentile: Percentile) -> list[str]:
    lines = ["3. CRITICAL wait (enqueue -> start) during a BULK flood"]
    for label, values in waits.items():
        p50, p95, worst = (percentile(values, p) * 1000 for p in (50, 95, 100))
        line = (
            f"   {_LATENCY_TITLES.get(label, label):40s} n={len(values):3d}"
            f"  p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  max {worst:7.1f} ms"
        )
        if label in LATENCY_GOALS_MS:
            goal = LATENCY_GOALS_MS[label]
            line += f"  goal p95 < {goal:.0f} ms: {_verdict(p95 < goal)}"
        lines.append(line)
    return lines


def render_reserved(reserved: dict[str, Any], percentile: Percentile) -> list[str]:
    lines = render_latency(reserved["waits"], percentile)
    lines[0] = "4. Reserved processes: CRITICAL wait during a BULK flood, pools of 2"
    rates = reserved["bulk_rates"]
    ratios = [r / u for r, u in zip(rates["reserved"], rates["unreserved"], strict=True)]
    ratio = statistics.median(ratios)
    unreserved, kept = statistics.median(rates["unreserved"]), statistics.median(rates["reserved"])
    lines.append(
        f"   BULK drain, pool of 4 on all lanes: unreserved {unreserved:.1f} jobs/s,"
        f" 1 reserved {kept:.1f} jobs/s; ratio {ratio:.3f}  goal >= (c - reserved) / c = 0.75:"
        f" {_verdict(ratio >= 0.75)}; per process left to BULK {ratio / 0.75:.3f} of the unreserved pool's"
    )
    return lines


def render_side_by_side(rates: dict[str, list[float]]) -> list[str]:
    ratios = [o / b for o, b in zip(rates["storefront"], rates["bare"], strict=True)]
    return [
        f"2b. Side by side (both pools draining at once), {len(ratios)} rounds (cross-check)",
        f"   bare {statistics.median(rates['bare']):.0f} jobs/s, storefront"
        f" {statistics.median(rates['storefront']):.0f} jobs/s; ratio per round"
        f" {', '.join(f'{r:.2f}' for r in ratios)}; median {statistics.median(ratios):.3f}",
    ]


def render(results: dict[str, Any], percentile: Percentile) -> str:
    m = results["machine"]
    lines = [
        f"storefront-jobs core benchmark: {m['cpus']} CPUs, Python {m['python']}, celery {m['celery']},"
        f" kombu {m['kombu']}, redis-server {m['redis_server']} (embedded, private)",
        f"tree: {m.get('git', '?')}; load average (1, 5, 15 min) at start"
        f" {_load(m.get('loadavg_start'))}, at end {_load(m.get('loadavg_end'))}",
    ]
    if "enqueue" in results:
        lines += ["", *render_enqueue(results["enqueue"])]
    if "drain" in results:
        lines += ["", *render_drain(results["drain"])]
    if "side_by_side" in results:
        lines += ["", *render_side_by_side(results["side_by_side"])]
    if "latency" in results:
        lines += ["", *render_latency(results["latency"], percentile)]
    if "reserved" in results:
        lines += ["", *render_reserved(results["reserved"], percentile)]
    return "\n".join(lines)
