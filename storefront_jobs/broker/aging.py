"""Aging: a job that waited longer than its lane's threshold is promoted one lane up.

Strict priority lets a LOW job wait for as long as DEFAULT work keeps
coming. Aging bounds that wait: a job that has waited longer than
``settings.aging.threshold_s(priority)`` in its lane moves to the lane above
(BULK to LOW, ..., HIGH to CRITICAL), where it is the next job out, and from
then on it is a job of that lane (retry table, metrics, DLQ record: the job
context's rule), with the header ``promotedFrom`` naming the lane it first
left. One lane per sweep: a job that keeps starving climbs again once it has
waited out the threshold of its new lane.

The wait is measured from when the message entered the lane it waits in:
the transport stamps ``laneSince`` on every push into a lane (the first
publish, a retry, a replay), and a promotion stamps it anew; a message
without it falls back on ``enqueuedAt``, one with neither (a foreign
producer's) is never promoted, and a retry counts only from its ``eta``.

A sweep (:func:`sweep`), run by the one worker that holds the aging lease
(:mod:`storefront_jobs.worker.aging`):

1. reads the oldest messages of every aging lane, ``SWEEP_BATCH`` per list
   at most (kombu pushes on the left and workers take from the right, so
   they are at the right end), and the set of paused lanes;
2. decides in Python which are due, and builds each one's promoted message;
3. runs one script per job (``scripts/aging/promote.lua``), all pipelined:
   if the lane above is full the job stays where it is and the refusal is
   counted (``storefront:aging:blocked``); if the job is no longer in its
   list (a worker took it) nothing happens; otherwise it is removed from its
   list and pushed as the next job out of the lane above, the lane's doorbell
   rung and the promotion counted (``storefront:aging:promoted``), in one step.

Only messages read in step 1 are moved, each by a script that finds it gone
if anything else moved it first, so no job is promoted twice in one sweep,
nor by two sweepers at once; and its fresh ``laneSince`` keeps it from
climbing again before it waited out its new lane's threshold. A paused lane
is left alone, in both directions: promoting out of it would run the jobs an
operator paused, promoting into it would strand them.

Lanes with a fair share per tenant keep part of their jobs in per-tenant
lists: a sweep also reads the oldest ``TENANT_BATCH`` jobs of up to
``TENANTS_SWEPT`` tenants of each aging lane (those whose turns come next
and a random stretch of the ring), and a job promoted out of a tenant list leaves the lane's fair share
accounting in the same script. It enters the lane above through its plain
list, which takes a turn like one more tenant there.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import random
from collections import Counter as Tally
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import redis

from storefront_jobs.broker import keys, scripts
from storefront_jobs.jobs import envelope
from storefront_jobs.jobs.priorities import Priority

if TYPE_CHECKING:
    from storefront_jobs.settings import AgingSettings, Settings

#: Messages read per list per sweep, oldest first: bounds the work of one sweep whatever the backlog.
SWEEP_BATCH = 100
#: Separates the two priority labels of a counter field, as the enqueued counter does.
FIELD_SEP = "\t"

#: A promotion: (from, to).
Step = tuple[Priority, Priority]


@dataclasses.dataclass(frozen=True)
class AgingLane:
    """A lane with aging on: its jobs move to ``target`` after ``threshold_s`` of waiting."""

    source: Priority
    target: Priority
    threshold_s: float


def aging_lanes(aging: AgingSettings) -> list[AgingLane]:
    """The lanes whose jobs age, highest first; CRITICAL never does (it has no lane above)."""
    lanes = []
    for priority in Priority:
        threshold_s = aging.threshold_s(priority)
        if threshold_s is not None and priority is not Priority.CRITICAL:
            lanes.append(AgingLane(priority, Priority(priority - 1), threshold_s))
    return lanes


def counter_field(source: Priority, target: Priority) -> str:
    """The field of the promoted and blocked counters for one step: ``low\\tdefault``."""
    return FIELD_SEP.join((source.label, target.label))


def parse_counter_field(field: str) -> Step | None:
    parts = field.split(FIELD_SEP)
    if len(parts) != 2:
        return None
    try:
        return Priority.parse(parts[0]), Priority.parse(parts[1])
    except ValueError:
        return None


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _eta_s(value: Any) -> float | None:
    """Celery's ``eta`` header (ISO 8601; naive means UTC, as the app's clock is) as Unix seconds."""
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return when.timestamp()


def waited_s(headers: Mapping[str, Any], now_s: float) -> float | None:
    """How long a message has waited in its lane at ``now_s``; ``None`` when it cannot tell."""
    since_s = _seconds(headers.get(envelope.LANE_SINCE))
    if since_s is None:
        since_s = _seconds(headers.get(envelope.ENQUEUED_AT))
    if since_s is None:
        return None
    eta_s = _eta_s(headers.get(envelope.ETA))
    if eta_s is not None:
        since_s = max(since_s, eta_s)
    return now_s - since_s


def is_due(headers: Mapping[str, Any], threshold_s: float, now_s: float) -> bool:
    """Whether a message has waited ``threshold_s`` or longer in its lane."""
    waited = waited_s(headers, now_s)
    return waited is not None and waited >= threshold_s


def decode(raw: bytes | str) -> dict[str, Any] | None:
    """A list item as kombu's message, or ``None`` for anything else (left for the fetch to handle)."""
    try:
        message = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(message, dict):
        return None
    headers, properties = message.get("headers"), message.get("properties")
    if not isinstance(headers, dict) or not isinstance(properties, dict):
        return None
    if not isinstance(properties.get("delivery_tag"), str):
        return None
    return message


def promoted(message: Mapping[str, Any], source: Priority, target: Priority, now_s: float) -> dict[str, Any]:
    """The message of a job promoted from ``source`` to ``target``; ``message`` is left unchanged.

    Everything else is kept: the execution id, job queue, tenant, delivery
    tag and body. ``promotedFrom`` keeps the first lane the job left, if it
    climbs twice. The routing key (with the default exchange, which routes by
    it) is what the worker's job context and a retry read the lane from.
    """
    headers = dict(message.get("headers") or {})
    if not headers.get(envelope.PROMOTED_FROM):
        headers[envelope.PROMOTED_FROM] = source.name
    headers[envelope.PRIORITY] = target.name
    headers[envelope.LANE_SINCE] = now_s
    properties = dict(message.get("properties") or {})
    delivery_info = dict(properties.get("delivery_info") or {})
    delivery_info.update(exchange="", routing_key=keys.lane_name(target))
    properties["delivery_info"] = delivery_info
    return {**message, "headers": headers, "properties": properties}


@dataclasses.dataclass(frozen=True)
class Promotion:
    """One due job: the list it waits in, its message as stored, and its promoted message."""

    lane: AgingLane
    list_name: str
    raw: bytes
    new_raw: str
    #: The tenant whose list (in a lane with a fair share per tenant) the job waits in, else None.
    tenant: str | None = None


#: Tenants of a lane whose lists one sweep reads: half the next turns, half a random stretch of the ring.
TENANTS_SWEPT = 200
#: Oldest jobs read per tenant list and sweep.
TENANT_BATCH = 10


def plan(
    waiting: Mapping[AgingLane, list[tuple[str, list[bytes]]]], paused: set[str], now_s: float
) -> list[Promotion]:
    """The promotions of one sweep, from each aging lane's lists and their oldest messages.

    Each list's messages come as ``LRANGE`` gives them, youngest first, and
    are promoted in that order: each is pushed as the next job out of the
    lane above, so the oldest, pushed last, comes out first.
    """
    promotions = []
    for lane, lists in waiting.items():
        if {keys.lane_name(lane.source), keys.lane_name(lane.target)} & paused:
            continue
        for list_name, raws in lists:
            for raw in raws:
                message = decode(raw)
                if message is None or not is_due(message["headers"], lane.threshold_s, now_s):
                    continue
                new = promoted(message, lane.source, lane.target, now_s)
                tenant = tenant_of_list(lane, list_name)
                promotions.append(Promotion(lane, list_name, raw, json.dumps(new), tenant))
    return promotions


@dataclasses.dataclass(frozen=True)
class SweepResult:
    """What one sweep did, per (from, to) step."""

    promoted: Tally[Step] = dataclasses.field(default_factory=Tally)
    #: Due jobs left where they were because the lane above was full.
    blocked: Tally[Step] = dataclasses.field(default_factory=Tally)
    #: Due jobs a worker took (or another sweeper moved) between the read and the promotion.
    gone: int = 0
    #: Messages read.
    scanned: int = 0


def tenant_of_list(lane: AgingLane, list_name: str) -> str | None:
    """The tenant of a tenant list of ``lane``'s source lane; None for one of its kombu lists."""
    prefix = keys.tenant_list_prefix(keys.lane_name(lane.source))
    return list_name[len(prefix) :] if list_name.startswith(prefix) else None


def _tenant_lists(client: redis.Redis[Any], lanes: list[AgingLane]) -> dict[AgingLane, list[str]]:
    """The tenant lists a sweep reads, per lane: the tenants whose turns come next, and a random stretch.

    A starved lane's ring does not turn, so the next turns alone would never
    reach a tenant beyond them: the random stretch of the ring reaches every
    tenant over a few sweeps, however many wait.
    """
    half = TENANTS_SWEPT // 2
    rings = [keys.tenant_ring(keys.lane_name(lane.source)) for lane in lanes]
    lengths = client.pipeline(transaction=False)
    for ring in rings:
        lengths.llen(ring)
    pipe = client.pipeline(transaction=False)
    for ring, length in zip(rings, lengths.execute(), strict=True):
        pipe.lrange(ring, -half, -1)
        start = random.randrange(max(1, int(length) - 2 * half + 1))  # a sample of tenants, not a secret
        pipe.lrange(ring, start, start + half - 1)
    replies = pipe.execute()
    found = {}
    for i, lane in enumerate(lanes):
        members = {
            t.decode() if isinstance(t, bytes) else str(t) for t in replies[2 * i] + replies[2 * i + 1]
        }
        lane_name = keys.lane_name(lane.source)
        found[lane] = [keys.tenant_list(lane_name, tenant) for tenant in sorted(members)]
    return found


def _read_waiting(
    client: redis.Redis[Any], lanes: list[AgingLane], batch: int
) -> tuple[dict[AgingLane, list[tuple[str, list[bytes]]]], set[str]]:
    tenant_lists = _tenant_lists(client, lanes)
    names = {lane: keys.lane_lists(keys.lane_name(lane.source)) + tenant_lists[lane] for lane in lanes}
    pipe = client.pipeline(transaction=False)
    for lists in names.values():
        for name in lists:
            pipe.lrange(name, -(TENANT_BATCH if name.startswith(keys.FAIR_PREFIX) else batch), -1)
    pipe.smembers(keys.PAUSED_LANES)
    replies = pipe.execute()
    paused = {m.decode() if isinstance(m, bytes) else str(m) for m in replies[-1]}
    waiting: dict[AgingLane, list[tuple[str, list[bytes]]]] = {}
    position = 0
    for lane, lists in names.items():
        waiting[lane] = [(name, replies[position + i]) for i, name in enumerate(lists)]
        position += len(lists)
    return waiting, paused


def sweep(
    client: redis.Redis[Any], settings: Settings, now_s: float, *, batch: int = SWEEP_BATCH
) -> SweepResult:
    """Promote every due job of every aging lane (see the module docstring); safe to run concurrently."""
    lanes = aging_lanes(settings.aging)
    if not lanes:
        return SweepResult()
    waiting, paused = _read_waiting(client, lanes, batch)
    scanned = sum(len(raws) for lists in waiting.values() for _, raws in lists)
    promotions = plan(waiting, paused, now_s)
    result = SweepResult(scanned=scanned)
    if not promotions:
        return result
    # One round trip for the whole sweep; each script is still atomic on its own.
    pipe = client.pipeline(transaction=False)
    for promotion in promotions:
        source, target = promotion.lane.source, promotion.lane.target
        target_lane, source_lane = keys.lane_name(target), keys.lane_name(source)
        # The capacity check reads the whole depth: a fair lane's tenant lists too.
        depth_keys = keys.depth_keys(target_lane)
        script_keys = [
            *depth_keys,
            promotion.list_name,
            target_lane,
            keys.doorbell(target_lane),
            keys.PROMOTED_COUNTS,
            keys.PROMOTION_BLOCKED_COUNTS,
        ]
        args: list[Any] = [
            settings.capacity(target),
            counter_field(source, target),
            promotion.raw,
            promotion.new_raw,
            keys.DOORBELL_LAST_INDEX,
            len(depth_keys),
        ]
        if promotion.tenant is not None:
            script_keys += [
                keys.tenant_ring(source_lane),
                keys.tenant_counts(source_lane),
                keys.fair_state(source_lane),
            ]
            args.append(promotion.tenant)
        scripts.AGING_PROMOTE(pipe, script_keys, args)
    gone = 0
    for promotion, reply in zip(promotions, pipe.execute(), strict=True):
        step = (promotion.lane.source, promotion.lane.target)
        if int(reply) > 0:
            result.promoted[step] += 1
        elif int(reply) < 0:
            result.blocked[step] += 1
        else:
            gone += 1
    return dataclasses.replace(result, gone=gone)


def read_counts(client: redis.Redis[Any]) -> tuple[Tally[Step], Tally[Step]]:
    """Jobs promoted and promotions blocked per (from, to) step, since the counters were created."""
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(keys.PROMOTED_COUNTS)
    pipe.hgetall(keys.PROMOTION_BLOCKED_COUNTS)
    promoted_raw, blocked_raw = pipe.execute()
    return _tally(promoted_raw), _tally(blocked_raw)


def _tally(raw: Mapping[Any, Any]) -> Tally[Step]:
    tally: Tally[Step] = Tally()
    for field, value in raw.items():
        step = parse_counter_field(field.decode() if isinstance(field, bytes) else str(field))
        if step is not None:
            tally[step] += int(value)
    return tally
