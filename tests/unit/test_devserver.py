"""The pure parts of ``storefront-jobs dev``: options, child commands, status rendering, stop signals."""

from __future__ import annotations

import io
import os
import signal
import sys
from pathlib import Path

import pytest
from rich.console import Console

from storefront_jobs.devserver import children, platform, status
from storefront_jobs.devserver.supervisor import StopResult, StopSignals
from storefront_jobs.embedded import EmbeddedRedis
from storefront_jobs.examples import progress
from storefront_jobs.priorities import Priority


@pytest.mark.parametrize(
    ("text", "per_s"), [("20", 20.0), ("20/s", 20.0), (" 2.5/S ", 2.5), ("600/m", 10.0), ("30/min", 0.5)]
)
def test_rates_read_per_second_or_minute(text: str, per_s: float) -> None:
    assert platform.parse_rate(text) == per_s


@pytest.mark.parametrize("text", ["", "fast", "0", "-1/s", "5/h", "nan"])
def test_a_bad_rate_says_what_it_should_look_like(text: str) -> None:
    with pytest.raises(ValueError, match="rate must look like 20, 20/s or 600/m"):
        platform.parse_rate(text)


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
