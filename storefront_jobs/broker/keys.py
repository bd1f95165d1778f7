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
``storefront:doorbell:<lane>``
    List of wake-up tokens: every push into a lane by storefront-jobs also
    pushes a token here (kept to the newest 1,000), and an idle worker blocks
    on the tokens of its lanes instead of on the lanes themselves, so that the
    job is taken out of its lane by a script that records it as unacknowledged
    in the same step (:mod:`storefront_jobs.broker.fetch`). A
    token is only a hint: a worker also looks every second without one, and
    deletes a lane's tokens when it finds the lane empty.
``storefront:wake:<channel id>``
    List of wake-up tokens of one worker whose reserved processes close the
    lower lanes: the acknowledgement of a lower-lane job pushes one, so the
    worker's wait ends and its next fetch may take a lower lane's job again
    (:mod:`storefront_jobs.broker.fetch`). Expires a minute after its last token.
``storefront:fair:<lane>:t:<tenant>``
    List, the waiting jobs of one tenant in a lane with a fair share per
    tenant (:mod:`storefront_jobs.broker.tenants`): a first publish or a retry
    of a job with a ``tenantId`` goes here instead of the lane's plain list,
    pushed on the left and taken from the right as a lane is. Everything else
    (jobs without a tenant, kombu's restores, DLQ replays, aging's promotions,
    foreign producers) waits in the plain list, which takes a turn like a tenant.
``storefront:fair:<lane>:ring``
    List of the tenants with jobs waiting in the lane, in turn order: the one
    at the right end has the turn, and goes to the left end when its turn is
    over (``LMOVE``); a tenant joins at the left with its first waiting job and
    leaves when its list empties.
``storefront:fair:<lane>:tenants``
    Sorted set, tenant -> jobs waiting in its list: who is on the ring, and
    the top tenants that ``queues --tenants`` and the metrics show.
``storefront:fair:<lane>:state``
    Hash: ``waiting`` (jobs in all the lane's tenant lists, so that a lane's
    depth stays a few O(1) reads: the depth scripts read it by the ``fair:``
    prefix), ``taken`` (jobs the tenant at the right end of the ring took in
    its current turn), ``turns`` (tenant turns since the plain list last had one).
``storefront:overflow``
    Hash, priority label -> number of enqueues refused because the lane was
    full. Counted in Redis so that every producer process adds to one number.
``storefront:enqueued``
    Hash, ``<priority>\t<job queue>\t<task>\t<producer host>`` -> jobs
    accepted into a lane, counted by the same script that checks capacity
    (no extra round trip); the admin service exports it as
    ``storefront_jobs_job_enqueued_total`` and ``celery_task_sent_total``.
``storefront:aging:lease``
    String, the worker node name that sweeps the lanes for aging now; set
    with ``NX`` and a time to live, renewed only by its holder
    (:mod:`storefront_jobs.broker.lease`, :mod:`storefront_jobs.worker.aging`).
``storefront:aging:promoted``, ``storefront:aging:blocked``
    Hashes, ``<from priority>\t<to priority>`` -> jobs promoted one lane up
    by aging, and promotions left undone because the lane above was full;
    counted by the promotion script (:mod:`storefront_jobs.broker.aging`) and
    exported as ``storefront_jobs_job_promoted_total`` and
    ``storefront_jobs_job_promotion_blocked_total``.
``storefront:workers``
    Hash, worker node name -> JSON heartbeat of a pool (lanes, processes,
    running jobs, time), rewritten every 5 s (:mod:`storefront_jobs.worker.heartbeat`).
``storefront:paused``
    Set of lane names paused by ``storefront-jobs queues pause``; every pool
    re-reads it with each heartbeat, so a pause survives restarts and reaches
    a pool that missed the broadcast (:mod:`storefront_jobs.worker.pausing`).
``storefront:scheduler``
    Hash written by ``storefront-jobs beat``: ``enabled`` (1/0) and ``tick``
    (time of the last scheduler tick), read by ``/q/health``.
``storefront:demo:progress``
    Hash, ``<job>:<outcome>`` -> count (outcomes: sent, done, retried, failed,
    refused), written by the example jobs and the demo workload of
    ``storefront-jobs dev`` and read by its status table. Nothing else uses it.

Dead-letter queue (owned by :mod:`storefront_jobs.deadletter.store`; every
DLQ key starts with ``storefront:dlq:``). Each entry has a unique *score*,
its ``failedAt`` nudged by microseconds until no other entry has it, so a
score alone is a stable cursor:

``storefront:dlq:records``
    Hash, execution id -> the DLQ record as JSON (the export line).
``storefront:dlq:meta``
    Hash, execution id -> JSON object of the entry's index values
    (field -> value), so a removal knows which indexes to clean.
``storefront:dlq:timeline``
    Sorted set, execution id -> score: every entry, oldest first; trimming
    by count and age reads it.
``storefront:dlq:idx:<field>:<value>``
    Sorted set per index value (fields: queue, priority, task, tenant, error,
    reason), execution id -> score: filtered listing walks the smallest one.
``storefront:dlq:count:<field>``
    Hash, value -> number of entries; ``dlq stats`` and the depth gauges.
``storefront:dlq:stats``
    Hash of counters: ``added:<reason>``, ``removed:<action>`` (replay,
    delete, trim, expire), ``imported``.
``storefront:dlq:attempts:<execution id>``
    List of JSON attempt errors of a job still retrying; folded into its
    record at capture, expires on its own otherwise.
``storefront:dlq:replayed:<execution id>``
    String, the new execution id an entry was replayed as; expires with the
    DLQ retention. Makes a repeated replay of the same id a no-op.
``storefront:dlq:audit``
    Sorted set, operation id -> start time: the audit log, newest kept.
``storefront:dlq:audit:<operation id>``
    Hash: action, actor, source, filter, count, status, times.
``storefront:dlq:idempotency:<sha256 of key>``
    String, the stored answer of an admin API replay request; expires.
"""

from __future__ import annotations

from collections.abc import Sequence

from storefront_jobs.jobs.priorities import Priority

#: Prefix of every key that storefront-jobs itself owns.
KEY_PREFIX = "storefront:"

#: kombu's defaults; they are part of the wire format, so every process keeps them.
KOMBU_PRIORITY_STEPS: tuple[int, ...] = (0, 3, 6, 9)
KOMBU_SEP = "\x06\x16"
#: kombu's record of the messages held by workers: hash delivery tag -> [message, exchange, routing key].
KOMBU_UNACKED = "unacked"
#: Sorted set, delivery tag -> time it was taken; kombu's restore brings back the old ones.
KOMBU_UNACKED_INDEX = "unacked_index"

#: Most wake-up tokens kept per lane: enough to wake every idle worker of a lane at once.
DOORBELL_MAX = 1_000
#: The index of the last token kept, as the scripts that ring a doorbell take it (``LTRIM 0 <index>``).
DOORBELL_LAST_INDEX = DOORBELL_MAX - 1
OVERFLOW_COUNTS = KEY_PREFIX + "overflow"
#: hash operation -> writes fewer replicas confirmed than BROKER_MIN_REPLICAS (broker/replicas.py).
REPLICA_SHORTFALLS = KEY_PREFIX + "replica_shortfalls"
#: Hash, ``<priority>\t<job queue>\t<task>\t<producer host>`` -> first enqueues accepted (retries excluded).
ENQUEUED_COUNTS = KEY_PREFIX + "enqueued"
#: String, node name of the worker whose aging sweeper holds the lease; see storefront_jobs.broker.lease.
AGING_LEASE = KEY_PREFIX + "aging:lease"
#: Hashes, ``<from>\t<to>`` priority labels -> jobs promoted by aging / promotions refused by a full lane.
PROMOTED_COUNTS = KEY_PREFIX + "aging:promoted"
PROMOTION_BLOCKED_COUNTS = KEY_PREFIX + "aging:blocked"
#: Hash, worker node name -> JSON heartbeat (lanes, processes, running jobs, time); see heartbeat.py.
WORKERS = KEY_PREFIX + "workers"
#: Set of lane names whose consumption is paused; workers reconcile with it.
PAUSED_LANES = KEY_PREFIX + "paused"
#: Hash: the scheduler's state (enabled, last tick) as written by `storefront-jobs beat`.
SCHEDULER = KEY_PREFIX + "scheduler"
#: Progress counters of the example jobs (``storefront_jobs.examples``), for ``storefront-jobs dev``.
DEMO_PROGRESS = KEY_PREFIX + "demo:progress"


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


def lane_of_list(name: str, sep: str = KOMBU_SEP) -> str:
    """The lane (queue) a kombu list belongs to: the name without its priority suffix."""
    return name.split(sep, 1)[0]


def wake(channel_id: str) -> str:
    """The wake list of one worker channel whose reservation closed lower lanes (see the layout above)."""
    return f"{KEY_PREFIX}wake:{channel_id}"


def doorbell(lane: str) -> str:
    """The list of wake-up tokens of a lane (see the layout above)."""
    return f"{KEY_PREFIX}doorbell:{lane}"


# --- A fair share per tenant (storefront_jobs.broker.tenants) ------------------

#: Prefix of every key of a lane's fair share per tenant. ``scripts/lib/lane_depth.lua`` spells it
#: too: a depth key that starts with it is the lane's state hash, read with HGET, not LLEN.
FAIR_PREFIX = KEY_PREFIX + "fair:"
#: Field of a lane's fair state hash: the jobs waiting in its tenant lists (the Lua scripts spell it).
FAIR_WAITING = "waiting"


def tenant_list_prefix(lane: str) -> str:
    """What every tenant list of ``lane`` starts with; the fetch script appends the tenant id."""
    return f"{FAIR_PREFIX}{lane}:t:"


def tenant_list(lane: str, tenant: str) -> str:
    """The list of one tenant's waiting jobs in ``lane`` (see the layout above)."""
    return tenant_list_prefix(lane) + tenant


def tenant_ring(lane: str) -> str:
    """The tenants with waiting jobs in ``lane``, in turn order (see the layout above)."""
    return f"{FAIR_PREFIX}{lane}:ring"


def tenant_counts(lane: str) -> str:
    """Sorted set, tenant -> its waiting jobs in ``lane`` (see the layout above)."""
    return f"{FAIR_PREFIX}{lane}:tenants"


def fair_state(lane: str) -> str:
    """Hash of ``lane``'s fair share: waiting, taken, turns (see the layout above)."""
    return f"{FAIR_PREFIX}{lane}:state"


def depth_keys(lane: str) -> list[str]:
    """Every key a lane's depth is read from: its lists (:func:`lane_lists`) and its fair state hash."""
    return [*lane_lists(lane), fair_state(lane)]


# --- Dead-letter queue -------------------------------------------------------

DLQ_PREFIX = KEY_PREFIX + "dlq:"
DLQ_RECORDS = DLQ_PREFIX + "records"
DLQ_META = DLQ_PREFIX + "meta"
DLQ_TIMELINE = DLQ_PREFIX + "timeline"
#: Prefix of the per-value index sorted sets; the Lua scripts append ``<field>:<value>``.
DLQ_INDEX_PREFIX = DLQ_PREFIX + "idx:"
#: Prefix of the per-field count hashes; the Lua scripts append ``<field>``.
DLQ_COUNT_PREFIX = DLQ_PREFIX + "count:"
DLQ_STATS = DLQ_PREFIX + "stats"
DLQ_AUDIT = DLQ_PREFIX + "audit"
#: Fields a DLQ entry is indexed by, in the order of ``storefront:dlq:meta`` values.
DLQ_INDEX_FIELDS: tuple[str, ...] = ("queue", "priority", "task", "tenant", "error", "reason")


def dlq_index(field: str, value: str) -> str:
    """Sorted set of the entries whose ``field`` is ``value``."""
    return f"{DLQ_INDEX_PREFIX}{field}:{value}"


def dlq_counts(field: str) -> str:
    """Hash, value of ``field`` -> number of entries."""
    return DLQ_COUNT_PREFIX + field


def dlq_attempts(execution_id: str) -> str:
    """List of the attempt errors of a job that is still retrying."""
    return f"{DLQ_PREFIX}attempts:{execution_id}"


def dlq_replayed(execution_id: str) -> str:
    """The execution id an entry was replayed as."""
    return f"{DLQ_PREFIX}replayed:{execution_id}"


def dlq_audit_entry(operation_id: str) -> str:
    """Hash describing one audited DLQ operation."""
    return f"{DLQ_AUDIT}:{operation_id}"


def dlq_idempotency(key_digest: str) -> str:
    """Stored answer of an admin API request with an idempotency key (by its digest)."""
    return f"{DLQ_PREFIX}idempotency:{key_digest}"
