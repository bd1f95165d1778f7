"""Broker-side metrics, read from Redis at scrape time by the admin service.

Nothing here depends on a worker being up: a lane whose pools are scaled to
zero still reports its depth and the age of its oldest job, which is what
autoscaling and the backlog alerts need. One scrape costs a handful of
pipelined Redis calls plus one pass over kombu's ``unacked`` hash (jobs held
by workers: bounded by processes x prefetch plus retries waiting out their
countdown).
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Iterator, Mapping
from typing import Any

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from storefront_jobs.broker import clock, keys, replicas, tenants
from storefront_jobs.broker.admission import parse_enqueued_field
from storefront_jobs.broker.aging import read_counts
from storefront_jobs.broker.snapshot import LaneState, read_lanes
from storefront_jobs.jobs.priorities import Priority
from storefront_jobs.metrics.definitions import BROKER_METRICS
from storefront_jobs.settings import Settings
from storefront_jobs.worker.heartbeat import WorkerBeat, read_workers


def _family(name: str, *, labels: tuple[str, ...]) -> GaugeMetricFamily | CounterMetricFamily:
    kind, doc, declared = BROKER_METRICS[name]
    assert declared == labels, (name, declared, labels)
    if kind == "counter":
        return CounterMetricFamily(name, doc, labels=list(labels))
    return GaugeMetricFamily(name, doc, labels=list(labels))


class BrokerCollector:
    """A prometheus-client collector over the broker; register it on the admin service's registry."""

    def __init__(self, client: redis.Redis[bytes], settings: Settings, dlq_stats: Any = None) -> None:
        self._client = client
        self._settings = settings
        # A callable returning the DLQ store's Stats (total, by_field, counters), or None.
        self._dlq_stats = dlq_stats

    def collect(self) -> Iterator[Metric]:
        now_s = time.time()
        lanes = read_lanes(self._client)
        pipe = self._client.pipeline(transaction=False)
        pipe.hgetall(keys.OVERFLOW_COUNTS)
        pipe.hgetall(keys.ENQUEUED_COUNTS)
        pipe.smembers(keys.PAUSED_LANES)
        pipe.time()
        pipe.hgetall(keys.REPLICA_SHORTFALLS)
        overflow_raw, enqueued_raw, paused_raw, time_raw, shortfalls_raw = pipe.execute()
        # Heartbeats are on Redis's clock (storefront_jobs.broker.clock).
        redis_s = clock.from_time_reply(time_raw)
        workers = read_workers(self._client, redis_s)

        yield from self._lanes(lanes, {m.decode() for m in paused_raw}, now_s)
        yield from self._producers(overflow_raw, enqueued_raw)
        yield self._shortfalls(shortfalls_raw)
        yield from self._workers(workers, redis_s)
        yield from self._aging()
        yield from self._tenants()
        known_queues = {parsed[1] for f in enqueued_raw if (parsed := parse_enqueued_field(f.decode()))}
        yield from self._dlq(known_queues)

    def _lanes(self, lanes: Mapping[Priority, LaneState], paused: set[str], now_s: float) -> Iterator[Metric]:
        p = "storefront_jobs_"
        depth_f = _family(p + "queue_depth", labels=("priority",))
        reserved_f = _family(p + "queue_reserved", labels=("priority",))
        capacity_f = _family(p + "queue_capacity", labels=("priority",))
        age_f = _family(p + "job_age_seconds", labels=("priority",))
        paused_f = _family(p + "lane_paused", labels=("priority",))
        length_f = _family("celery_queue_length", labels=("queue_name",))
        for priority, state in lanes.items():
            label = [priority.label]
            depth_f.add_metric(label, state.depth)
            reserved_f.add_metric(label, state.reserved)
            capacity_f.add_metric(label, self._settings.capacity(priority))
            age_f.add_metric(label, state.oldest_age_s(now_s))
            paused_f.add_metric(label, int(keys.lane_name(priority) in paused))
            length_f.add_metric([keys.lane_name(priority)], state.depth)
        yield from (depth_f, reserved_f, capacity_f, age_f, paused_f, length_f)

    def _producers(
        self, overflow_raw: dict[bytes, bytes], enqueued_raw: dict[bytes, bytes]
    ) -> Iterator[Metric]:
        overflow_f = _family("storefront_jobs_queue_overflow", labels=("priority",))
        overflow = {k.decode(): int(v) for k, v in overflow_raw.items()}
        for priority in Priority:
            overflow_f.add_metric([priority.label], overflow.get(priority.label, 0))
        enqueued_f = _family("storefront_jobs_job_enqueued", labels=("queue", "priority"))
        sent_f = _family("celery_task_sent", labels=("name", "hostname", "queue_name"))
        per_job: Tally[tuple[str, str]] = Tally()
        for field, value in enqueued_raw.items():
            parsed = parse_enqueued_field(field.decode())
            if parsed is None:
                continue
            label, job_queue, task, host = parsed
            per_job[(job_queue, label)] += int(value)
            sent_f.add_metric([task, host, keys.lane_name(Priority.parse(label))], int(value))
        for (job_queue, label), count in sorted(per_job.items()):
            enqueued_f.add_metric([job_queue, label], count)
        yield from (overflow_f, enqueued_f, sent_f)

    def _shortfalls(self, raw: dict[bytes, bytes]) -> Metric:
        family = _family("storefront_jobs_replica_shortfall", labels=("operation",))
        counts = {k.decode(): int(v) for k, v in raw.items()}
        for operation in replicas.OPERATIONS:
            family.add_metric([operation], counts.get(operation, 0))
        return family

    def _workers(self, workers: list[WorkerBeat], now_s: float) -> Iterator[Metric]:
        up_f = _family("celery_worker_up", labels=("hostname",))
        pools_f = _family("storefront_jobs_workers", labels=("priority",))
        active_workers_f = _family("celery_active_worker_count", labels=("queue_name",))
        processes_f = _family("celery_active_process_count", labels=("queue_name",))
        kept_f = _family("storefront_jobs_reserved_processes", labels=("priority",))
        offset_f = _family("storefront_jobs_worker_clock_offset_seconds", labels=("hostname",))
        pools: Tally[str] = Tally()
        kept: Tally[str] = Tally()
        processes: Tally[str] = Tally()
        up_by_host: dict[str, int] = {}
        offsets: dict[str, float] = {}
        for beat in workers:
            alive = beat.alive(now_s)
            up_by_host[beat.hostname] = max(up_by_host.get(beat.hostname, 0), int(alive))
            if alive:
                for lane in beat.lanes:
                    pools[lane] += 1
                    processes[lane] += beat.concurrency
                    kept[lane] += beat.reserves(lane)
                # The largest offset of a host's live pools, with its sign: the one to fix first.
                known = offsets.get(beat.hostname)
                if known is None or abs(beat.clock_offset_s) > abs(known):
                    offsets[beat.hostname] = beat.clock_offset_s
        for host, up in sorted(up_by_host.items()):
            up_f.add_metric([host], up)
        for host, offset_s in sorted(offsets.items()):
            offset_f.add_metric([host], offset_s)
        for priority in Priority:
            lane = keys.lane_name(priority)
            pools_f.add_metric([priority.label], pools.get(lane, 0))
            active_workers_f.add_metric([lane], pools.get(lane, 0))
            processes_f.add_metric([lane], processes.get(lane, 0))
            kept_f.add_metric([priority.label], kept.get(lane, 0))
        yield from (up_f, pools_f, active_workers_f, processes_f, kept_f, offset_f)

    def _aging(self) -> Iterator[Metric]:
        promoted, blocked = read_counts(self._client)
        promoted_f = _family("storefront_jobs_job_promoted", labels=("from", "to"))
        blocked_f = _family("storefront_jobs_job_promotion_blocked", labels=("from", "to"))
        # Every step (bulk->low ... high->critical), 0 until its first promotion, so rate() has a series.
        for source in Priority:
            if source is Priority.CRITICAL:
                continue
            step = (source, Priority(source - 1))
            labels = [step[0].label, step[1].label]
            promoted_f.add_metric(labels, promoted.get(step, 0))
            blocked_f.add_metric(labels, blocked.get(step, 0))
        yield from (promoted_f, blocked_f)

    def _tenants(self) -> Iterator[Metric]:
        limit = self._settings.tenant_fairness.top_tenants
        lanes = tenants.read_tenants(self._client, limit)
        # The tenant label is an id, which metrics otherwise never carry: only the top `limit`
        # tenants of each lane, so the label set stays bounded whatever the number of tenants.
        depth_f = _family("storefront_jobs_queue_tenant_depth", labels=("priority", "tenant"))
        count_f = _family("storefront_jobs_queue_tenants", labels=("priority",))
        for priority, side in lanes.items():
            count_f.add_metric([priority.label], side.tenants)
            for tenant, waiting in side.top:
                depth_f.add_metric([priority.label, tenant], waiting)
        yield from (depth_f, count_f)

    def _dlq(self, known_queues: set[str]) -> Iterator[Metric]:
        if self._dlq_stats is None:
            return
        stats = self._dlq_stats()
        depth_f = _family("storefront_jobs_dlq_depth", labels=("queue",))
        # Job queues that ever enqueued report 0 rather than vanish, so that
        # the runbook's `dlq_depth == 0` check after a purge has a series to read.
        depths = dict.fromkeys(known_queues, 0) | dict(stats.by_field.get("queue", {}))
        for queue, count in sorted(depths.items()):
            depth_f.add_metric([queue], count)
        added_f = _family("storefront_jobs_dlq_added", labels=("reason",))
        removed_f = _family("storefront_jobs_dlq_removed", labels=("action",))
        for name, count in sorted(stats.counters.items()):
            kind, _, value = name.partition(":")
            if kind == "added":
                added_f.add_metric([value], count)
            elif kind == "removed":
                removed_f.add_metric([value], count)
        yield from (depth_f, added_f, removed_f)
