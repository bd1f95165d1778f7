"""The pure parts of ``storefront-jobs dev``: options, child commands, status rendering, stop signals."""

from __future__ import annotations

import datetime
import io
import json
import os
import signal
import sys
from pathlib import Path

import pytest
import redis
from rich.console import Console

from storefront_jobs.devserver import children, options, services, status
from storefront_jobs.devserver.supervisor import StopResult, StopSignals
from storefront_jobs.embedded import EmbeddedRedis
from storefront_jobs.examples import progress
from storefront_jobs.jobs.priorities import Priority
from storefront_jobs.settings import Settings


@pytest.mark.parametrize(
    ("text", "per_s"), [("20", 20.0), ("20/s", 20.0), (" 2.5/S ", 2.5), ("600/m", 10.0), ("30/min", 0.5)]
)
def test_rates_read_per_second_or_minute(text: str, per_s: float) -> None:
    assert options.parse_rate(text) == per_s


@pytest.mark.parametrize("text", ["", "fast", "0", "-1/s", "5/h", "nan"])
def test_a_bad_rate_says_what_it_should_look_like(text: str) -> None:
    with pytest.raises(ValueError, match="rate must look like 20, 20/s or 600/m"):
        options.parse_rate(text)


def test_pools_get_the_broker_and_the_examples_without_duplicates() -> None:
    env = children.child_env(
        {"PATH": "/bin", "STOREFRONT_JOBS_BROKER_URL": "redis://old"},
        "redis://127.0.0.1:6390/0",
        ["shop.jobs", "storefront_jobs.examples", "storefront_jobs.examples"],
    )
    assert env["STOREFRONT_JOBS_BROKER_URL"] == "redis://127.0.0.1:6390/0"
    assert env["STOREFRONT_JOBS_IMPORTS"] == "shop.jobs,storefront_jobs.examples"
    assert env["PATH"] == "/bin"


def test_a_pool_is_a_storefront_worker_for_one_lane_with_its_own_metrics_port() -> None:
    spec = children.pool_spec(
        Priority.HIGH,
        concurrency=2,
        env={"A": "1"},
        metrics_port=children.pool_metrics_port(9808, Priority.HIGH),
        ready=lambda: True,
    )
    assert spec.name == "high-dev"
    assert list(spec.argv) == [
        sys.executable, "-m", "storefront_jobs", "worker",
        "--priorities", "HIGH", "-c", "2", "-n", "high-dev@%h",
    ]  # fmt: skip
    assert spec.env == {"A": "1", "STOREFRONT_JOBS_METRICS_PORT": "9809"}
    assert spec.layer > 0  # stopped before Redis (layer 0)
    assert children.pool_metrics_port(0, Priority.BULK) == 0


def test_the_embedded_redis_stops_last(tmp_path: Path) -> None:
    spec = children.redis_spec(EmbeddedRedis(port=6390, data_dir=tmp_path, executable="/bin/redis-server"))
    assert spec.layer == 0
    assert list(spec.argv[:3]) == ["/bin/redis-server", "--port", "6390"]


def test_the_preferred_redis_port_is_used_only_when_free() -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        assert not children.port_is_free(taken)
        assert children.choose_redis_port(taken) != taken


def _snapshot(**changes: object) -> status.Snapshot:
    fields: dict[str, object] = {
        "elapsed_s": 12.0,
        "depths": {Priority.CRITICAL: 0, Priority.BULK: 7},
        "pools": {Priority.CRITICAL: "up (pid 10)"},
        "progress": {
            "process_payment_webhook": {"sent": 5, "done": 4, "retried": 2, "failed": 1, "refused": 0},
            "archive_orders": {"sent": 3, "done": 1, "retried": 0, "failed": 0, "refused": 1},
        },
        "job_lanes": {"process_payment_webhook": Priority.CRITICAL, "archive_orders": Priority.BULK},
    }
    fields.update(changes)
    return status.Snapshot(**fields)  # type: ignore[arg-type]


def test_the_status_line_shows_waiting_jobs_and_totals() -> None:
    line = status.status_line(_snapshot())
    assert line == (
        "[ 12.0 s] waiting critical=0 high=0 default=0 low=0 bulk=7 | "
        "jobs sent=8 done=5 retried=2 failed=1 refused=1"
    )
    assert "send errors=2 (ConnectionError: x)" in status.status_line(
        _snapshot(send_errors=2, last_send_error="ConnectionError: x")
    )


def test_the_tables_show_lanes_pools_and_jobs_in_priority_order() -> None:
    out = io.StringIO()
    Console(file=out, width=120).print(status.render(_snapshot()))
    text = out.getvalue()
    assert "running for 12 s" in text
    assert "p0.critical" in text
    assert "up (pid 10)" in text
    assert text.index("process_payment_webhook") < text.index("archive_orders")
    final = io.StringIO()
    Console(file=final, width=120).print(status.render(_snapshot(), final=True))
    assert "ran for 12 s" in final.getvalue()


def test_the_table_columns_are_the_progress_outcomes() -> None:
    assert status.OUTCOMES == progress.OUTCOMES


def test_a_second_signal_forces_the_stop() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with StopSignals() as signals:
        os.kill(os.getpid(), signal.SIGTERM)
        assert signals.stop.wait(2)
        assert not signals.force.is_set()
        os.kill(os.getpid(), signal.SIGINT)
        assert signals.force.wait(2)
        assert signals.received == ["SIGTERM", "SIGINT"]
    assert signal.getsignal(signal.SIGTERM) == before


def test_stop_results_read_as_sentences() -> None:
    assert StopResult("redis", 5, 0, killed=False).describe() == "redis (pid 5) exited with code 0"
    assert (
        StopResult("bulk-dev", 6, -9, killed=True).describe()
        == "bulk-dev (pid 6) killed (did not stop in time)"
    )


def test_a_service_stopped_by_its_own_signal_reads_as_such() -> None:
    # uvicorn shuts down cleanly on SIGTERM, then re-raises it: exit status -15, not a crash
    assert StopResult("admin", 7, -15, killed=False).describe() == "admin (pid 7) exited on SIGTERM"


def _settings(**values: object) -> Settings:
    return Settings(broker_url="redis://127.0.0.1:1/0", **values)  # type: ignore[arg-type]


def test_dev_makes_credentials_only_for_what_is_not_configured() -> None:
    made = iter(["tok-generated-1", "pw-generated-2"])
    fresh = services.dev_credentials(_settings(), token=lambda: next(made))
    assert fresh.admin_token == "tok-generated-1"
    assert json.loads(fresh.admin_env["STOREFRONT_JOBS_ADMIN_TOKENS"]) == {
        "tok-generated-1": ["dlq:read", "dlq:replay", "dlq:delete"]
    }
    assert (fresh.flower_user, fresh.flower_password) == ("admin", "pw-generated-2")
    assert fresh.flower_env == {"STOREFRONT_JOBS_FLOWER_BASIC_AUTH": "admin:pw-generated-2"}

    configured = services.dev_credentials(
        _settings(admin_tokens={"configured-token": ["dlq:read"]}, flower_basic_auth="ops:long-password")
    )
    assert configured.admin_token is None
    assert configured.admin_env == {}
    assert (configured.flower_user, configured.flower_password, configured.flower_env) == ("ops", None, {})


def test_services_are_the_production_commands_stopped_before_the_pools(tmp_path: Path) -> None:
    credentials = services.dev_credentials(_settings(), token=lambda: "secret-1234")
    admin = services.admin_spec({"A": "1"}, credentials, 8080)
    assert list(admin.argv) == [
        sys.executable, "-m", "storefront_jobs", "serve", "--host", "127.0.0.1", "--port", "8080",
    ]  # fmt: skip
    assert admin.env is not None
    assert admin.env["A"] == "1"
    assert "STOREFRONT_JOBS_ADMIN_TOKENS" in admin.env
    assert "STOREFRONT_JOBS_FLOWER_BASIC_AUTH" not in admin.env  # each secret only where it is needed
    flower = services.flower_spec({}, credentials, 5555)
    assert list(flower.argv)[3:] == ["flower", "--port", "5555", "--address", "127.0.0.1"]
    assert flower.env == {
        "STOREFRONT_JOBS_FLOWER_BASIC_AUTH": "admin:secret-1234",
        "STOREFRONT_JOBS_FLOWER_PROTECT_MONITORING": "true",
    }
    beat = services.beat_spec({}, tmp_path, redis.Redis())
    assert list(beat.argv)[3:] == ["beat", "--schedule-file", str(tmp_path / "beat-schedule")]
    pool = children.pool_spec(Priority.BULK, concurrency=1, env={}, metrics_port=0, ready=lambda: True)
    assert {admin.layer, flower.layer, beat.layer} == {services.SERVICE_LAYER}
    assert pool.layer < services.SERVICE_LAYER  # stopped first


def test_switched_off_services_are_not_started(tmp_path: Path) -> None:
    plan = services.DevServices.plan(_settings(), beat=True, admin=False, flower=False)
    assert (plan.admin_port, plan.flower_port) == (0, 0)
    assert [spec.name for spec in plan.specs({}, tmp_path, redis.Redis())] == ["beat"]


def test_the_printed_lines_give_every_url_and_the_made_credentials(tmp_path: Path) -> None:
    settings = _settings()
    credentials = services.dev_credentials(settings, token=lambda: "made-for-this-run")
    plan = services.DevServices(settings, credentials, beat=True, admin_port=8081, flower_port=5556)
    schedule = {"examples.warm_cache.home": {"schedule": 60.0}}
    text = "\n".join(
        plan.lines({"beat": 1, "admin": 2, "flower": 3}, schedule, tmp_path, "redis://127.0.0.1:6420/0")
    )
    # The line a second terminal pastes, so that `storefront-jobs queues` and `dlq` see this platform
    assert "cli     export STOREFRONT_JOBS_BROKER_URL=redis://127.0.0.1:6420/0" in text
    for url in ("/docs", "/q/health", "/q/metrics"):
        assert f"http://127.0.0.1:8081{url}" in text
    assert "token        made-for-this-run (dlq:read, dlq:replay, dlq:delete; generated for this run)" in text
    assert "flower  http://127.0.0.1:5556/ (pid 3) user admin password made-for-this-run (generated)" in text
    assert "beat    pid 1: examples.warm_cache.home every 60 s" in text
    assert (
        f"runbook export STOREFRONT_ADMIN_URL=http://127.0.0.1:8081 ADMIN_TOKEN=made-for-this-run "
        f"STOREFRONT_DEV_LOGS={tmp_path}"
    ) in text


def test_configured_secrets_are_never_printed(tmp_path: Path) -> None:
    settings = _settings(
        admin_tokens={"configured-token": ["dlq:read"]}, flower_basic_auth="ops:long-password"
    )
    plan = services.DevServices(settings, services.dev_credentials(settings), True, 8080, 5555)
    text = "\n".join(plan.lines({"admin": 2, "flower": 3}, {}, tmp_path, "redis://127.0.0.1:6379/0"))
    assert "configured-token" not in text
    assert "long-password" not in text
    assert "password from STOREFRONT_JOBS_FLOWER_BASIC_AUTH" in text


def test_dev_puts_flowers_metrics_and_healthcheck_behind_its_login_unless_told_otherwise(
    tmp_path: Path,
) -> None:
    credentials = services.dev_credentials(_settings(), token=lambda: "made-for-this-run")
    spec = services.flower_spec({}, credentials, 5556)
    assert spec.env["STOREFRONT_JOBS_FLOWER_PROTECT_MONITORING"] == "true"
    chosen = services.flower_spec({"STOREFRONT_JOBS_FLOWER_PROTECT_MONITORING": "false"}, credentials, 5556)
    assert chosen.env["STOREFRONT_JOBS_FLOWER_PROTECT_MONITORING"] == "false"


def test_the_schedule_is_described_by_entry_and_interval() -> None:
    assert services.describe_schedule({}) == "no periodic jobs"
    minutes = {"schedule": datetime.timedelta(minutes=2)}
    assert services.describe_schedule({"a": {"schedule": 60.0}, "b": {"schedule": 5}, "c": minutes}) == (
        "a every 60 s, b every 5 s, c every 120 s"
    )
