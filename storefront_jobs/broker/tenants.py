"""A fair share per tenant: within a lane, the jobs of different tenants are taken in turn.

Without it a lane is one FIFO list, and a tenant that enqueued 50,000 jobs
delays every other tenant's next job by 50,000 jobs. With it (per lane,
``settings.tenant_fairness``, off by default), a tenant's next job waits for
at most one turn of each other tenant with waiting jobs. The story of a job
(keys in :mod:`storefront_jobs.broker.keys`):

1. **Publish.** The transport (:mod:`storefront_jobs.broker.transport`) sends a
   first publish or a retry of a job with a ``tenantId`` into a fair lane to
   its tenant's list, ``storefront:fair:<lane>:t:<tenant>``, in one script
   that also checks the lane's capacity (a first publish), counts the job in
   the lane's ``waiting`` field and in the tenant's count, puts a tenant that
   had nothing waiting at the back of the lane's *ring*, and rings the lane's
   doorbell (``scripts/tenants/``). Jobs without a tenant, kombu's restores
   (visibility timeout, warm shutdown), DLQ replays, aging's promotions and
   foreign producers go to the lane's plain list, as before.
2. **Fetch.** The reliable fetch (``scripts/fetch.lua``) reaches a lane at its
   usual place (strict priority between lanes is unchanged) and takes from it
   by the turn rule (``scripts/tenants/lib/take.lua``): the tenant at the
   front of the ring takes its weight in jobs (``weights``, 1 by default),
   then goes to the back; the plain list takes a turn of one job like one more
   tenant. The job is recorded as unacknowledged as any other, under the
   lane's name, so acknowledgement and restore are unchanged. A tenant whose
   list empties leaves the ring.
3. **Depth.** Every script that reads a lane's depth (capacity, ``depth``,
   ``room``, aging's target check) adds the ``waiting`` field of the lane's
   state hash to its lists' lengths: still O(1) whatever the number of tenants.

The fetch takes tenant lists of every lane it consumes, whatever the
worker's own settings say: whether a job goes to a tenant list is decided by
the producer's settings only, so a producer and a worker that disagree, or
a lane whose fairness is turned off with jobs still in tenant lists, never
strand a job. The worker's settings give the weights, which every process
should share.

Known limits: aging sweeps only the lane's kombu lists, so a job in a tenant
list is never promoted; Flower's broker page (``LLEN`` of the lane lists)
leaves the tenant lists out; a restored job waits in the plain list. Never
delete a tenant list by hand: ``celery purge`` (the transport's ``_purge``)
deletes them with the counts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import redis

from storefront_jobs.broker import keys, scripts
from storefront_jobs.jobs import envelope
from storefront_jobs.jobs.priorities import Priority

if TYPE_CHECKING:
    from storefront_jobs.settings import TenantFairness

#: Transport option ``{"lanes": [lane, ...], "weights": {tenant: jobs per turn}}``; set by create_app.
FAIRNESS_OPTION = "storefront_tenant_fairness"
#: Tenants (those with the most waiting jobs) whose oldest job the age of a lane's oldest job reads:
#: bounds that read whatever the number of tenants.
OLDEST_TENANTS_READ = 50


def fairness_option(fairness: TenantFairness) -> dict[str, Any]:
    """The transport option of ``settings.tenant_fairness``."""
    weights = {tenant: int(w) for tenant, w in fairness.weights.items() if int(w) != 1}
    return {"lanes": [keys.lane_name(p) for p in fairness.lanes()], "weights": weights}


def _option(options: Mapping[str, Any] | None) -> Mapping[str, Any]:
    found = (options or {}).get(FAIRNESS_OPTION)
    return found if isinstance(found, Mapping) else {}


def fair_lanes(options: Mapping[str, Any] | None) -> frozenset[str]:
    """The lanes whose tenant jobs this process publishes to tenant lists."""
    return frozenset(_option(options).get("lanes") or ())


def weight_args(options: Mapping[str, Any] | None) -> list[Any]:
    """The fetch script's tail of (tenant, jobs per turn) pairs, for the tenants whose weight is not 1."""
    weights: Mapping[str, int] = _option(options).get("weights") or {}
    return [part for tenant, weight in sorted(weights.items()) for part in (tenant, int(weight))]


def tenant_of(message: Mapping[str, Any]) -> str | None:
    """The tenant a kombu message is for (its ``tenantId`` header), or ``None``."""
    headers = message.get("headers")
    if not isinstance(headers, Mapping):
        return None
    tenant = headers.get(envelope.TENANT_ID)
    if tenant is None or isinstance(tenant, bool):
        return None
    text = str(tenant)
    return text if text.strip() else None


def push_keys(lane: str, tenant: str) -> list[str]:
    """The keys of the tenant push scripts after the capacity check's: list, doorbell, ring, counts, state."""
    return [
        keys.tenant_list(lane, tenant),
        keys.doorbell(lane),
        keys.tenant_ring(lane),
        keys.tenant_counts(lane),
        keys.fair_state(lane),
    ]


def fetch_part(lanes: Sequence[str], weights: Sequence[Any]) -> tuple[list[str], list[Any]]:
    """The KEYS and ARGV the fetch script takes after its own: each lane's fair keys, prefixes, weights.

    Every lane gets its part, fair or not: an empty ring costs the fetch one
    ``LLEN``, and a lane whose fairness was turned off is still drained.
    """
    fair_keys = [
        key
        for lane in lanes
        for key in (keys.tenant_ring(lane), keys.tenant_counts(lane), keys.fair_state(lane))
    ]
    return fair_keys, [*(keys.tenant_list_prefix(lane) for lane in lanes), *weights]


@dataclasses.dataclass(frozen=True)
class TenantDepths:
    """The tenant side of one lane: its jobs in tenant lists, its tenants, and the top ones."""

    priority: Priority
    #: Jobs waiting in the lane's tenant lists (part of the lane's depth).
    waiting: int
    #: Tenants with jobs waiting in the lane.
    tenants: int
    #: (tenant, waiting jobs) of the tenants with the most, most first.
    top: tuple[tuple[str, int], ...]


def read_tenants(client: redis.Redis[Any], limit: int) -> dict[Priority, TenantDepths]:
    """Every lane's tenant side, with its ``limit`` top tenants; one pipelined round trip."""
    pipe = client.pipeline(transaction=False)
    for priority in Priority:
        lane = keys.lane_name(priority)
        pipe.hget(keys.fair_state(lane), keys.FAIR_WAITING)
        pipe.zcard(keys.tenant_counts(lane))
        if limit > 0:
            pipe.zrevrange(keys.tenant_counts(lane), 0, limit - 1, withscores=True)
    replies = iter(pipe.execute())
    found = {}
    for priority in Priority:
        waiting, tenants = next(replies), next(replies)
        top = next(replies) if limit > 0 else []
        found[priority] = TenantDepths(
            priority,
            max(0, int(waiting or 0)),
            int(tenants),
            tuple((_text(tenant), int(score)) for tenant, score in top),
        )
    return found


def read_tails(
    client: redis.Redis[Any], depths: Mapping[Priority, TenantDepths]
) -> dict[Priority, list[Any]]:
    """The oldest job (the right end) of each top tenant's list, per lane; no round trip when none wait."""
    wanted = [(p, tenant) for p, d in depths.items() for tenant, _ in d.top]
    tails: dict[Priority, list[Any]] = {p: [] for p in depths}
    if not wanted:
        return tails
    pipe = client.pipeline(transaction=False)
    for priority, tenant in wanted:
        pipe.lindex(keys.tenant_list(keys.lane_name(priority), tenant), -1)
    for (priority, _), raw in zip(wanted, pipe.execute(), strict=True):
        if raw is not None:
            tails[priority].append(raw)
    return tails


def waiting(client: redis.Redis[Any], lane: str) -> int:
    """Jobs waiting in ``lane``'s tenant lists."""
    return max(0, int(client.hget(keys.fair_state(lane), keys.FAIR_WAITING) or 0))


def purge(client: redis.Redis[Any], lane: str) -> int:
    """Delete every job in ``lane``'s tenant lists, with its ring and counts; the jobs deleted."""
    fair_keys = [keys.tenant_ring(lane), keys.tenant_counts(lane), keys.fair_state(lane)]
    return int(scripts.TENANT_PURGE(client, fair_keys, [keys.tenant_list_prefix(lane)]))


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
