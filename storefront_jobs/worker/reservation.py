"""Reserved processes: a pool that consumes several lanes keeps some processes for its urgent lanes.

``--reserve CRITICAL,HIGH=1`` (setting ``WORKER_RESERVE``) on a pool of ``c``
processes: a job of any other lane is fetched only while fewer than
``c - 1`` processes hold jobs of other lanes, so a flood of slow BULK jobs
can never occupy every process and an urgent job starts as soon as it is
fetched, not after the first BULK job ends. The rule is
:func:`lanes_open`, a pure function of the pool's state; the channel's fetch
asks it before every fetch (:mod:`storefront_jobs.broker.fetch`).

With ``lend`` (``--lend-reserved``) the reserved processes also take lower
lanes' jobs while the urgent lanes are empty at fetch time: more throughput
for the lower lanes, and an urgent job that arrives then waits for the first
process to free up, as without a reservation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from storefront_jobs.broker.keys import lane_name
from storefront_jobs.jobs.priorities import Priority, parse_priorities


@dataclasses.dataclass(frozen=True)
class Reservation:
    """Processes kept for some lanes; ``lend`` lets lower lanes use them while those lanes are empty."""

    priorities: tuple[Priority, ...]
    processes: int
    lend: bool = False

    @property
    def lanes(self) -> frozenset[str]:
        return frozenset(lane_name(p) for p in self.priorities)

    def describe(self) -> str:
        """``CRITICAL,HIGH=1``, as the option is written (``+lend`` when lending)."""
        text = ",".join(p.name for p in self.priorities) + f"={self.processes}"
        return text + (" +lend" if self.lend else "")

    def check_pool(self, consumed: Sequence[Priority], concurrency: int) -> None:
        """Raise ValueError when this reservation cannot work on a pool of these lanes and processes."""
        missing = [p.name for p in self.priorities if p not in consumed]
        if missing:
            raise ValueError(
                f"reserved lane(s) {','.join(missing)} are not consumed by this pool "
                f"(--priorities {','.join(p.name for p in consumed)})"
            )
        if all(p in self.priorities for p in consumed):
            raise ValueError("every lane of the pool is reserved: reserve some lanes, not all of them")
        if self.processes >= concurrency:
            raise ValueError(
                f"{self.processes} reserved process(es) leave none of the pool's {concurrency} for the "
                "other lanes; reserve fewer or raise --concurrency"
            )


def parse_reservation(text: str, *, lend: bool = False) -> Reservation:
    """``"CRITICAL,HIGH=1"`` as a :class:`Reservation`; ValueError says what is accepted."""
    lanes_text, equals, count_text = text.partition("=")
    if not equals:
        raise ValueError(f"{text!r} is not LANES=PROCESSES, e.g. CRITICAL,HIGH=1")
    try:
        processes = int(count_text.strip())
    except ValueError:
        raise ValueError(f"{count_text.strip()!r} in {text!r} is not a number of processes") from None
    if processes < 1:
        raise ValueError(f"reserve at least 1 process, not {processes}")
    return Reservation(tuple(parse_priorities(lanes_text)), processes, lend)


def lanes_open(
    consumed: Sequence[str],
    reservation: Reservation | None,
    *,
    concurrency: int,
    busy_lanes: Iterable[str],
) -> list[str]:
    """The lanes a pool may fetch from now, in the order given.

    ``busy_lanes``: the lane of every job the pool holds for a process
    (running, or handed to the pool and waiting for a free process; a job
    waiting out a retry countdown holds none). Lower lanes are closed while
    they hold ``concurrency - reservation.processes`` processes or more.
    """
    if reservation is None or reservation.lend:
        return list(consumed)
    reserved = reservation.lanes
    lower_busy = sum(1 for lane in busy_lanes if lane not in reserved)
    if lower_busy < concurrency - reservation.processes:
        return list(consumed)
    return [lane for lane in consumed if lane in reserved]
