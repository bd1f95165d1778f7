"""``storefront-jobs dlq`` end to end: formats, jq, backup and restore, exit codes, memory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from storefront_jobs.cli import main
from storefront_jobs.cli.dlq import EXIT_MALFORMED, EXIT_NOT_CONFIRMED, EXIT_NOT_FOUND
from storefront_jobs.deadletter import Filter, store_for
from storefront_jobs.deadletter.store import DeadLetterStore
from storefront_jobs.embedded import EmbeddedRedis
from tests.support.dlq import bulk_load, make_record
from tests.support.workers import REPO_ROOT, worker_env

pytestmark = pytest.mark.e2e

T0 = 1_800_000_000.0
RUNBOOK_JQ = ".[] | {executionId, priority, attemptNumber, lastError, payload}"


@pytest.fixture
def store(app: Any) -> DeadLetterStore:
    return store_for(app)


@pytest.fixture
def filled(store: DeadLetterStore) -> DeadLetterStore:
    for i in range(12):
        store.add(
            make_record(
                f"e-{i:02d}",
                failed_at=T0 + i,
                queue="reporting.export" if i % 3 else "payments.webhooks",
                priority="CRITICAL" if i % 3 == 0 else "DEFAULT",
                tenant="t-1" if i % 2 else None,
                kwargs={"period": {"start": "2025-01-01"}},
            )
        )
    return store


def dlq(*args: str, stdin: str | None = None) -> Any:
    return CliRunner().invoke(main, ["dlq", *args], input=stdin, catch_exceptions=False)


def test_list_show_stats_and_audit_in_every_format(filled: DeadLetterStore) -> None:
    table = dlq("list", "--queue", "payments.webhooks", "--limit", "3")
    assert table.exit_code == 0
    assert "e-09" in table.output
    assert "e-00" not in table.output
    assert "more entries: --cursor" in table.stderr
    as_json = json.loads(dlq("list", "--tenant", "t-1", "--format", "json").stdout)
    assert [r["executionId"] for r in as_json] == ["e-11", "e-09", "e-07", "e-05", "e-03", "e-01"]
    lines = dlq("list", "--priority", "critical", "--format", "jsonl").stdout.splitlines()
    assert [json.loads(line)["executionId"] for line in lines] == ["e-09", "e-06", "e-03", "e-00"]

    shown = json.loads(dlq("show", "e-04").stdout)
    assert shown["kwargs"] == {"period": {"start": "2025-01-01"}}
    assert dlq("show", "ghost").exit_code == EXIT_NOT_FOUND

    stats = json.loads(dlq("stats", "--format", "json").stdout)
    assert stats["total"] == 12
    assert stats["byField"]["queue"] == {
        "payments.webhooks": 4,
        "reporting.export": 8,
    }
    assert dlq("stats").exit_code == 0
    assert json.loads(dlq("audit", "--format", "json").stdout) == []


def test_bad_filters_are_usage_errors(filled: DeadLetterStore) -> None:
    assert dlq("list", "--priority", "urgent").exit_code == 2
    assert dlq("list", "--since", "last tuesday").exit_code == 2
    assert dlq("replay", "--yes").exit_code == 2  # neither ids nor a filter
    assert dlq("purge", "--yes").exit_code == 2


def test_replay_and_purge_ask_first_and_dry_run_changes_nothing(filled: DeadLetterStore) -> None:
    dry = json.loads(dlq("replay", "--queue", "all", "--dry-run", "--format", "json").stdout)
    assert dry == {
        "dryRun": True,
        "count": 12,
        "toPriority": None,
        "sample": ["e-11", "e-10", "e-09", "e-08", "e-07"],
    }
    assert dlq("purge", "--queue", "all", "--dry-run").exit_code == 0
    assert dlq("purge", "--queue", "all").exit_code == EXIT_NOT_CONFIRMED  # no terminal to ask on
    assert dlq("replay", "e-01").exit_code == EXIT_NOT_CONFIRMED
    assert filled.count(Filter()) == 12
    assert dlq("replay", "ghost", "--yes").exit_code == EXIT_NOT_FOUND


def test_purge_with_backup_then_import_gives_back_the_same_records(
    filled: DeadLetterStore, tmp_path: Path
) -> None:
    before = dlq("export", "--format", "jsonl").stdout
    backup = tmp_path / "dlq_backup.json"

    purged = dlq("purge", "--queue", "all", "--backup", str(backup), "--yes", "--format", "json")
    assert purged.exit_code == 0, purged.output
    assert json.loads(purged.stdout)["deleted"] == 12
    assert filled.count(Filter()) == 0
    assert len(json.loads(backup.read_text())) == 12

    restored = dlq("import", str(backup), "--format", "json")
    assert json.loads(restored.stdout)["added"] == 12
    assert dlq("export", "--format", "jsonl").stdout == before
    actions = [e["action"] for e in json.loads(dlq("audit", "--format", "json").stdout)]
    assert actions == ["import", "purge"]


def test_a_malformed_import_is_rejected_before_anything_is_written(
    store: DeadLetterStore, tmp_path: Path
) -> None:
    good = make_record("e-1").to_json()
    bad = tmp_path / "bad.jsonl"
    bad.write_text(good + "\n" + '{"executionId": "e-2"}\n')

    result = dlq("import", str(bad))

    assert result.exit_code == EXIT_MALFORMED
    assert "line 2" in result.stderr
    assert store.count(Filter()) == 0


def _sh(broker_url: str, script: str, **settings: str) -> subprocess.CompletedProcess[str]:
    env = worker_env(broker_url, **settings)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return subprocess.run(
        ["bash", "-o", "pipefail", "-c", script],
        check=False,
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _runbook_view(export: list[dict[str, Any]]) -> list[dict[str, Any]]:
    fields = ("executionId", "priority", "attemptNumber", "lastError", "payload")
    return [{f: record[f] for f in fields} for record in export]


def test_export_json_reads_with_the_runbooks_jq_line(
    filled: DeadLetterStore, redis_server: EmbeddedRedis
) -> None:
    if shutil.which("jq") is None:
        if os.environ.get("CI"):
            pytest.fail("jq is required in CI (.ci/run installs it)")
        pytest.skip("jq is not installed")
    piped = _sh(
        redis_server.url, f"storefront-jobs dlq export --queue all --format json | jq -c '{RUNBOOK_JQ}'"
    )
    assert piped.returncode == 0, piped.stderr
    from_jq = [json.loads(line) for line in piped.stdout.splitlines()]
    exported = json.loads(dlq("export", "--queue", "all").stdout)
    assert from_jq == _runbook_view(exported)
    assert from_jq[0]["payload"] == {
        "task": "tests.integration.jobs.noop",
        "args": [1],
        "kwargs": {"period": {"start": "2025-01-01"}},
        "headers": {"jobQueue": "reporting.export", "tenantId": "t-1"},
    }


def test_celery_answers_the_same_dlq_group(filled: DeadLetterStore, redis_server: EmbeddedRedis) -> None:
    done = _sh(
        redis_server.url, "celery -A storefront_jobs dlq list --queue payments.webhooks --format jsonl"
    )
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["executionId"] for line in done.stdout.splitlines()] == [
        "e-09",
        "e-06",
        "e-03",
        "e-00",
    ]


def test_retention_setting_bounds_the_dlq_and_counts_trims(
    store: DeadLetterStore, redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    file = tmp_path / "many.jsonl"
    file.write_text(
        "".join(make_record(f"e-{i:04d}", failed_at=T0 + i).to_json() + "\n" for i in range(1500))
    )

    done = _sh(
        redis_server.url,
        f"storefront-jobs dlq import {file} --format json && storefront-jobs dlq stats --format json",
        dlq__max_entries="1000",
    )

    assert done.returncode == 0, done.stderr
    stats = json.loads(done.stdout[done.stdout.index("}\n{") + 2 :])
    assert stats["total"] == 1000
    assert stats["counters"]["removed:trim"] == 500
    assert stats["oldestFailedAt"] == pytest.approx(T0 + 500)


def test_jsonl_export_of_100k_entries_stays_under_150_mb(
    redis_client: redis.Redis, redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    bulk_load(redis_client, 100_000)
    out = tmp_path / "export.jsonl"
    # A fresh wrapper process whose only child is the export: its children's peak RSS is the export's.
    measure = (
        "import resource, subprocess, sys; "
        "rc = subprocess.call(sys.argv[1:]); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(rc)"
    )
    cmd = f"{sys.executable} -c '{measure}' storefront-jobs dlq export --format jsonl -o {out}"

    done = _sh(redis_server.url, cmd)

    assert done.returncode == 0, done.stderr
    peak_mb = int(done.stdout.split()[-1]) / 1024
    assert sum(1 for _ in out.open()) == 100_000
    assert peak_mb < 150, f"peak RSS {peak_mb:.0f} MB"


def test_every_dlq_command_says_which_broker_it_reads(
    filled: DeadLetterStore, redis_server: EmbeddedRedis
) -> None:
    listed = dlq("list", "--limit", "2")
    assert f"storefront-jobs: broker {redis_server.url}" in listed.stderr
    assert f"DLQ on {redis_server.url}" in listed.stdout
    stats = dlq("stats")
    assert f"DLQ on {redis_server.url}" in stats.stdout
    # JSON stays JSON: the broker line goes to stderr only
    assert json.loads(dlq("stats", "--format", "json").stdout)["total"] == 12


def test_the_fallback_broker_is_named_as_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    from storefront_jobs import create_app, load_settings
    from storefront_jobs.cli.broker import broker_label

    monkeypatch.delenv("STOREFRONT_JOBS_BROKER_URL", raising=False)
    label = broker_label(create_app(load_settings()))
    assert label == "redis://127.0.0.1:6379/0 (STOREFRONT_JOBS_BROKER_URL not set: the default)"
    masked = broker_label(create_app(load_settings(broker_url="redis://:hunter22@10.0.0.5:6380/1")))
    assert "hunter22" not in masked
    assert "10.0.0.5:6380/1" in masked


def test_a_dry_run_shows_what_it_counts_and_where_it_would_send_it(filled: DeadLetterStore) -> None:
    limited = dlq("replay", "--queue", "all", "--limit", "3", "--dry-run", "--to-priority", "high")
    assert "3 entries would be replayed to p1.high" in limited.stderr
    rows = [line for line in limited.stdout.splitlines() if line.startswith("│ e-")]
    assert len(rows) == 3
    assert all("p1.high" in row for row in rows)
    one = dlq("replay", "e-03", "--dry-run")
    assert "1 entry would be replayed" in one.stderr
    as_json = json.loads(
        dlq("replay", "e-03", "--dry-run", "--to-priority", "LOW", "--format", "json").stdout
    )
    assert (as_json["count"], as_json["toPriority"], as_json["sample"]) == (1, "LOW", ["e-03"])


def test_tables_on_a_pipe_keep_every_value_whole_and_stats_print_times(store: DeadLetterStore) -> None:
    long_id = "7f9c2a4e-3b1d-4c8e-9a6f-2d5e8b1c0a93-retry-of-an-order-webhook"
    store.add(make_record(long_id, failed_at=T0, task="storefront.payments.webhooks.confirm_payment_intent"))
    listed = dlq("list")  # CliRunner's stdout is no terminal, as a pipe is not
    [row] = [line for line in listed.stdout.splitlines() if long_id in line]
    assert "storefront.payments.webhooks.confirm_payment_intent" in row
    stats = dlq("stats").stdout
    assert "2027-01-15 08:00:00 UTC" in stats
    assert str(T0) not in stats


def test_an_execution_id_never_wraps_in_a_terminal_table() -> None:
    from rich.console import Console

    from storefront_jobs.cli.dlq_output import records_table

    records = [make_record(f"{i:08d}-3b1d-4c8e-9a6f-2d5e8b1c0a93", failed_at=T0 + i) for i in range(3)]
    console = Console(width=200, record=True, force_terminal=True)
    console.print(records_table(records))
    text = console.export_text()
    for r in records:
        assert r.execution_id in text
