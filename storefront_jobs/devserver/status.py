"""What ``storefront-jobs dev`` shows while it runs: a :class:`Snapshot` and two ways to render it.

A terminal gets :func:`render` (rich tables, redrawn about twice a second);
a pipe or a log file gets :func:`status_line` every few seconds instead,
since redrawing means nothing there. Both are pure, so they are tested
without a broker.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from storefront_jobs.broker import keys
from storefront_jobs.jobs.priorities import Priority

if TYPE_CHECKING:
    # Not at run time: importing the examples package registers its tasks on
    # the default app, which ``dev`` builds only once it has chosen a broker.
    from storefront_jobs.examples.progress import Outcome

#: Columns of the jobs table, in lifecycle order; the same names as progress.OUTCOMES (a test checks).
OUTCOMES: tuple[Outcome, ...] = ("sent", "done", "retried", "failed", "refused")


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """The platform at one moment."""

    elapsed_s: float
    #: Waiting jobs per lane (every Redis sub-list counted).
    depths: Mapping[Priority, int]
    #: Pool state per lane, e.g. "up (pid 123)" or "exited with code 1".
    pools: Mapping[Priority, str]
    #: Example job -> outcome -> count (storefront_jobs.examples.progress).
    progress: Mapping[str, Mapping[Outcome, int]]
    #: Example job -> its lane, for the jobs table.
    job_lanes: Mapping[str, Priority]
    send_errors: int = 0
    last_send_error: str | None = None

    def totals(self) -> dict[Outcome, int]:
        return {o: sum(counts.get(o, 0) for counts in self.progress.values()) for o in OUTCOMES}


def _job_order(snapshot: Snapshot) -> list[str]:
    names = set(snapshot.job_lanes) | set(snapshot.progress)
    return sorted(names, key=lambda n: (snapshot.job_lanes.get(n, Priority.BULK), n))


def render(snapshot: Snapshot, *, final: bool = False) -> RenderableType:
    """The lanes table and the example jobs table, under a one-line heading."""
    lanes = Table(title="lanes", title_justify="left", expand=False)
    lanes.add_column("lane")
    lanes.add_column("pool")
    lanes.add_column("waiting", justify="right")
    for priority in Priority:
        lanes.add_row(
            keys.lane_name(priority), snapshot.pools.get(priority, "-"), str(snapshot.depths.get(priority, 0))
        )
    jobs = Table(title="example jobs", title_justify="left", expand=False, show_footer=True)
    jobs.add_column("job", footer="total")
    jobs.add_column("lane")
    totals = snapshot.totals()
    for outcome in OUTCOMES:
        jobs.add_column(outcome, justify="right", footer=str(totals[outcome]))
    for name in _job_order(snapshot):
        counts = snapshot.progress.get(name, {})
        lane = snapshot.job_lanes.get(name)
        jobs.add_row(
            name, lane.label if lane is not None else "?", *(str(counts.get(o, 0)) for o in OUTCOMES)
        )
    parts: list[RenderableType] = [
        Text(
            f"storefront-jobs dev: ran for {snapshot.elapsed_s:.0f} s"
            if final
            else f"storefront-jobs dev: running for {snapshot.elapsed_s:.0f} s; Ctrl-C stops everything"
        ),
        lanes,
        jobs,
    ]
    if snapshot.send_errors:
        parts.append(Text(f"send errors: {snapshot.send_errors} (last: {snapshot.last_send_error})", "red"))
    return Group(*parts)


def status_line(snapshot: Snapshot) -> str:
    """One line for logs: elapsed time, waiting per lane, totals per outcome."""
    waiting = " ".join(f"{p.label}={snapshot.depths.get(p, 0)}" for p in Priority)
    totals = " ".join(f"{outcome}={n}" for outcome, n in snapshot.totals().items())
    line = f"[{snapshot.elapsed_s:5.1f} s] waiting {waiting} | jobs {totals}"
    if snapshot.send_errors:
        line += f" | send errors={snapshot.send_errors} ({snapshot.last_send_error})"
    return line
