"""Capacity planning: the runbook's scaling formula, per lane.

``target_replicas = ceil(queue_depth / jobs_per_worker_per_minute / target_latency_minutes)``

e.g. DEFAULT with 3,000 waiting, 10 jobs per worker per minute and a 30 s
target: ``ceil(3000 / 10 / 0.5) = 600`` (likely past any maxReplicas: the
runbook's hint to look at the workload rather than scale blindly).
"""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

from storefront_jobs.jobs.priorities import Priority

#: The fewest replicas a pool with a latency target is planned with, unless told otherwise: the
#: HPA overlays' minReplicas. A lane with nothing waiting still needs a worker ready to meet
#: its target when the next job comes (KEDA can scale to zero: plan with a minimum of 0 there).
DEFAULT_MIN_REPLICAS = 1

#: The runbook's "scale up" depths per lane.
SCALE_UP_DEPTH: dict[Priority, int] = {
    Priority.CRITICAL: 100,
    Priority.HIGH: 500,
    Priority.DEFAULT: 1000,
    Priority.LOW: 5000,
    Priority.BULK: 5000,
}


def recommended_replicas(
    depth: int, jobs_per_worker_per_minute: float, target_latency_s: float | None
) -> int | None:
    """Workers needed to drain ``depth`` jobs within the target; ``None`` for best effort (BULK)."""
    if depth < 0:
        raise ValueError(f"depth must be >= 0, got {depth}")
    if jobs_per_worker_per_minute <= 0:
        raise ValueError(f"jobs per worker per minute must be > 0, got {jobs_per_worker_per_minute}")
    if target_latency_s is None:
        return None
    # Exact rational arithmetic: floats would turn 500 / 120 / (5 / 60) into 50.000000001 and ceil it to 51.
    needed = Fraction(depth * 60) / (Fraction(jobs_per_worker_per_minute) * Fraction(target_latency_s))
    return math.ceil(needed)


@dataclasses.dataclass(frozen=True)
class LanePlan:
    priority: Priority
    depth: int
    jobs_per_worker_per_minute: float | None
    current_replicas: int
    #: What the runbook's formula gives (None: best effort, or throughput unknown).
    formula_replicas: int | None
    min_replicas: int = DEFAULT_MIN_REPLICAS

    @property
    def recommended_replicas(self) -> int | None:
        """The formula's answer, never below the pool's minimum."""
        if self.formula_replicas is None:
            return None
        return max(self.formula_replicas, self.min_replicas)

    @property
    def note(self) -> str:
        """Why the recommendation differs from the formula, if it does."""
        if self.formula_replicas is not None and self.formula_replicas < self.min_replicas:
            return (
                f"the formula gives {self.formula_replicas}; kept at the pool minimum of "
                f"{self.min_replicas} (--min-replicas) so a new job meets its target"
            )
        return ""

    @property
    def threshold(self) -> int:
        return SCALE_UP_DEPTH[self.priority]

    @property
    def action(self) -> str:
        if self.depth > self.threshold:
            return "scale up now (depth above the runbook threshold)"
        if self.recommended_replicas is not None and self.recommended_replicas > self.current_replicas:
            return "scale up"
        if self.jobs_per_worker_per_minute is None and self.depth > 0:
            return "unknown throughput: pass --jobs-per-worker-per-minute"
        return "ok"


def plan_lane(
    priority: Priority,
    depth: int,
    jobs_per_worker_per_minute: float | None,
    current_replicas: int,
    min_replicas: int = DEFAULT_MIN_REPLICAS,
) -> LanePlan:
    formula = (
        recommended_replicas(depth, jobs_per_worker_per_minute, priority.target_latency_s)
        if jobs_per_worker_per_minute
        else None
    )
    return LanePlan(priority, depth, jobs_per_worker_per_minute, current_replicas, formula, min_replicas)


def throughput_per_worker_per_minute(
    before: dict[str, int], after: dict[str, int], elapsed_s: float
) -> float | None:
    """Average jobs per pool per minute between two readings of pools' ``processed`` counters."""
    pools = [name for name in after if name in before and after[name] >= before[name]]
    if not pools or elapsed_s <= 0:
        return None
    per_pool = [(after[name] - before[name]) / elapsed_s * 60.0 for name in pools]
    average = sum(per_pool) / len(per_pool)
    return average if average > 0 else None
