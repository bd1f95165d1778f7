"""The five priorities and what each one promises.

A priority is expressed only by the lane (Celery queue) a job is sent to,
never by a per-message priority: on Redis a message priority is a sub-list
that is polled before *every* queue's plain list, which would let a HIGH job
with priority 0 overtake a CRITICAL job (reference: celery-on-redis §1.5).
"""

from __future__ import annotations

import enum


class Priority(enum.IntEnum):
    """Job priority; a lower value is served first."""

    CRITICAL = 0
    HIGH = 1
    DEFAULT = 2
    LOW = 3
    BULK = 4

    @property
    def label(self) -> str:
        """Lower-case name, as used in metric labels and lane names."""
        return self.name.lower()

    @property
    def target_latency_s(self) -> float | None:
        """The runbook's target wait before a job starts; ``None`` is best effort."""
        return _TARGET_LATENCY_S[self]

    @classmethod
    def parse(cls, value: str | int | Priority) -> Priority:
        """Read a priority from a name (any case), a lane label or its order."""
        if isinstance(value, Priority):
            return value
        if isinstance(value, int):
            try:
                return cls(value)
            except ValueError:
                pass
        else:
            name = value.strip().upper()
            if name in cls.__members__:
                return cls[name]
        accepted = ", ".join(p.name for p in cls)
        raise ValueError(f"unknown priority {value!r}; accepted values: {accepted}")


_TARGET_LATENCY_S: dict[Priority, float | None] = {
    Priority.CRITICAL: 1.0,
    Priority.HIGH: 5.0,
    Priority.DEFAULT: 30.0,
    Priority.LOW: 120.0,
    Priority.BULK: None,
}


def parse_priorities(text: str) -> list[Priority]:
    """Parse ``"CRITICAL,HIGH"`` into priorities, highest first, without duplicates.

    ``"all"`` or ``"*"`` means every priority.
    """
    if text.strip().lower() in {"all", "*"}:
        return list(Priority)
    parts = [part for part in (p.strip() for p in text.split(",")) if part]
    if not parts:
        raise ValueError("no priority given; accepted values: " + ", ".join(p.name for p in Priority))
    return sorted({Priority.parse(part) for part in parts})
