"""Every lane name and Redis key storefront-jobs uses, in one place.

Storage layout (one Redis database, shared with kombu):

``p0.critical`` ... ``p4.bulk``
    The five lanes: kombu lists, one per priority. The ``pN.`` prefix makes
    the names sort in priority order, so the ``sorted`` queue-order strategy
    polls them highest first whatever the ``-Q`` order, and a lane that is
    cancelled and consumed again keeps its place.
``<lane>\\x06\\x163``, ``<lane>\\x06\\x166``, ``<lane>\\x06\\x169``
    kombu's per-message-priority sub-lists of a lane. storefront-jobs never
    sets a message priority, but a foreign producer could: depth counts them.
``unacked``, ``unacked_index``, ``unacked_mutex``
    kombu's record of messages held by workers (late ack, ETA retries).
``storefront:overflow``
    Hash, priority label -> number of enqueues refused because the lane was
    full. Counted in Redis so that every producer process adds to one number.
"""

from __future__ import annotations

from collections.abc import Sequence

from storefront_jobs.priorities import Priority

#: Prefix of every key that storefront-jobs itself owns.
KEY_PREFIX = "storefront:"

#: kombu's defaults; they are part of the wire format, so every process keeps them.
KOMBU_PRIORITY_STEPS: tuple[int, ...] = (0, 3, 6, 9)
KOMBU_SEP = "\x06\x16"

OVERFLOW_COUNTS = KEY_PREFIX + "overflow"


def lane_name(priority: Priority) -> str:
    """The Celery queue of a priority: ``p0.critical`` ... ``p4.bulk``."""
    return f"p{priority.value}.{priority.label}"


LANES: dict[Priority, str] = {p: lane_name(p) for p in Priority}
PRIORITY_OF_LANE: dict[str, Priority] = {lane: p for p, lane in LANES.items()}


def priority_of_lane(lane: str) -> Priority | None:
    """The priority a lane name belongs to, or ``None`` for a foreign queue."""
    return PRIORITY_OF_LANE.get(lane)


def lane_lists(
    lane: str,
    steps: Sequence[int] = KOMBU_PRIORITY_STEPS,
    sep: str = KOMBU_SEP,
    prefix: str = "",
) -> list[str]:
    """Every Redis list that holds waiting messages of ``lane``.

    Mirrors kombu's ``_q_for_pri``: priority 0 is the plain list, every other
    step gets its own list.
    """
    return [prefix + lane] + [f"{prefix}{lane}{sep}{step}" for step in steps if step]
