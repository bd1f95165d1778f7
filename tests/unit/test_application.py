from __future__ import annotations

import storefront_jobs
from storefront_jobs import Priority, create_app, load_settings
from storefront_jobs.application import pool_prefetch, transport_options
from storefront_jobs.cli.worker import worker_argv


def test_the_app_makes_priority_real_on_redis() -> None:
    conf = create_app(load_settings(visibility_timeout_s=900), main="conf").conf
    assert [q.name for q in conf.task_queues] == ["p0.critical", "p1.high", "p2.default", "p3.low", "p4.bulk"]
    assert conf.broker_transport_options["queue_order_strategy"] == "sorted"
    assert conf.broker_transport_options["visibility_timeout"] == 900
    assert conf.task_acks_late is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.worker_disable_prefetch is True
    assert conf.task_default_priority is None
    assert conf.task_create_missing_queues is False
    assert conf.task_reject_on_worker_lost is False
    assert conf.task_retry_on_worker_lost is True


def test_expired_unacked_jobs_are_swept_soon_after_the_visibility_timeout() -> None:
    assert transport_options(load_settings(visibility_timeout_s=3600))["unacked_restore_interval"] == 10
    assert transport_options(load_settings(visibility_timeout_s=5))["unacked_restore_interval"] == 1


def test_only_single_slow_lane_pools_prefetch() -> None:
    settings = load_settings()
    assert pool_prefetch([Priority.BULK], settings) == (4, False)
    assert pool_prefetch([Priority.DEFAULT], settings) == (4, False)
    assert pool_prefetch([Priority.CRITICAL], settings) == (1, True)
    assert pool_prefetch([Priority.LOW, Priority.BULK], settings) == (1, True)


def test_a_pool_consumes_its_lanes_in_priority_order() -> None:
    argv = worker_argv(
        [Priority.BULK, Priority.CRITICAL], concurrency=2, pool="prefork", loglevel="INFO", hostname=None
    )
    assert argv[:4] == ["worker", "-Q", "p0.critical,p4.bulk", "-n"]
    assert argv[4] == "critical-bulk@%h"
    assert argv[-4:] == ["-c", "2", "-P", "prefork"]


def test_the_public_api_is_what_all_says() -> None:
    for name in storefront_jobs.__all__:
        assert hasattr(storefront_jobs, name), name
    assert storefront_jobs.app is storefront_jobs.get_default_app()
