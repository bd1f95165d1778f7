"""What a developer chose for ``storefront-jobs dev``: :class:`DevOptions`, built by ``cli/dev.py``."""

from __future__ import annotations

import dataclasses
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class DevOptions:
    demo: bool = True
    rate_per_s: float = 5.0
    #: Pool processes per priority.
    concurrency: int = 1
    #: Seconds to run the workload; None runs until stopped.
    duration_s: float | None = None
    failure_rate: float = 0.1
    seed: int | None = None
    #: Where child logs go; None: a new temporary directory (kept after exit).
    log_dir: Path | None = None
    #: Celery beat with the example schedule (``storefront-jobs beat``).
    beat: bool = True
    #: The admin API (``storefront-jobs serve``): DLQ endpoints, /q/health, /q/metrics.
    admin: bool = True
    #: Flower (``storefront-jobs flower``), behind basic auth.
    flower: bool = True


def parse_rate(text: str) -> float:
    """Jobs per second from ``"20"``, ``"20/s"`` or ``"600/m"``."""
    number, _, unit = text.strip().lower().partition("/")
    per = {"": 1.0, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0}.get(unit.strip())
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if per is None or not value > 0:
        raise ValueError(f"rate must look like 20, 20/s or 600/m (jobs per second or minute), got {text!r}")
    return value / per
