"""The runbook's DLQ curl lines, run in bash against ``storefront-jobs serve`` (only the host changed)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from storefront_jobs.deadletter import Filter, store_for
from storefront_jobs.embedded import EmbeddedRedis, free_port
from tests.support.dlq import make_record
from tests.support.workers import REPO_ROOT, worker_env

pytestmark = pytest.mark.e2e

ADMIN_TOKEN = "runbook-admin-token"
T0 = 1_800_000_000.0


@pytest.fixture
def server(app: Any, redis_server: EmbeddedRedis, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = worker_env(
        redis_server.url, admin_tokens=json.dumps({ADMIN_TOKEN: ["dlq:read", "dlq:replay", "dlq:delete"]})
    )
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "storefront_jobs", "serve", "--port", str(port)],
        env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/q/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, (tmp_path / "serve.log").read_text()
        assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
        time.sleep(0.1)
    yield base
    proc.terminate()
    proc.wait(30)


def bash(script: str, cwd: Path, base: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", script.replace("https://api.villagecompute.com", base)],
        env={"ADMIN_TOKEN": ADMIN_TOKEN, "PATH": "/usr/bin:/bin"},
        cwd=cwd, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_the_runbooks_dlq_procedures(app: Any, server: str, tmp_path: Path) -> None:
    store = store_for(app)
    for i, queue in enumerate(["reporting.refresh", "reporting.export", "reporting.export", "billing"]):
        store.add(make_record(f"e-{i}", failed_at=T0 + i, queue=queue))

    # Step 2: inspect the DLQ of one job queue
    inspect = bash(
        'curl -sf -H "Authorization: Bearer $ADMIN_TOKEN" \\\n'
        "     https://api.villagecompute.com/admin/jobs/dlq?queue=reporting.refresh",
        tmp_path, server,
    )  # fmt: skip
    assert [r["executionId"] for r in json.loads(inspect.stdout)] == ["e-0"]

    # Replaying, step 1: export. As printed, bash reads the unquoted `&` as "run in the background",
    # so curl fetches `?queue=reporting.export` (JSON is the default format) to stdout, and the file
    # stays empty; quoting the URL gives the intended file. Both are what the API should answer.
    verbatim = bash(
        'curl -sf -H "Authorization: Bearer $ADMIN_TOKEN" \\\n'
        "     https://api.villagecompute.com/admin/jobs/dlq?queue=reporting.export&format=json \\\n"
        "     > dlq_export.json",
        tmp_path, server,
    )  # fmt: skip
    assert [r["executionId"] for r in json.loads(verbatim.stdout)] == ["e-2", "e-1"]
    quoted = bash(
        'curl -sf -H "Authorization: Bearer $ADMIN_TOKEN" \\\n'
        '     "https://api.villagecompute.com/admin/jobs/dlq?queue=reporting.export&format=json" \\\n'
        "     > dlq_export.json",
        tmp_path, server,
    )  # fmt: skip
    assert quoted.returncode == 0, quoted.stderr

    # Step 2: inspect the payloads with the runbook's jq line (python's json where jq is missing)
    exported = json.loads((tmp_path / "dlq_export.json").read_text())
    view = [
        {k: r[k] for k in ("executionId", "priority", "attemptNumber", "lastError", "payload")}
        for r in exported
    ]
    (tmp_path / "job_payload.json").write_text(json.dumps(view[0]))

    # Step 3: re-enqueue one job from its payload
    replay = bash(
        'curl -sf -X POST -H "Authorization: Bearer $ADMIN_TOKEN" \\\n'
        '     -H "Content-Type: application/json" \\\n'
        "     -d @job_payload.json \\\n"
        "     https://api.villagecompute.com/admin/jobs/replay",
        tmp_path, server,
    )  # fmt: skip
    assert replay.returncode == 0, replay.stderr
    assert json.loads(replay.stdout)["replayed"][0]["executionId"] == "e-2"

    # Clearing, step 1: back up everything (URL quoted, as above), then step 2: clear one job queue
    backup = bash(
        'curl -sf -H "Authorization: Bearer $ADMIN_TOKEN" \\\n'
        '     "https://api.villagecompute.com/admin/jobs/dlq?queue=all&format=json" \\\n'
        "     > dlq_backup_$(date +%Y%m%d_%H%M%S).json",
        tmp_path, server,
    )  # fmt: skip
    assert backup.returncode == 0
    [backup_file] = tmp_path.glob("dlq_backup_*.json")
    assert len(json.loads(backup_file.read_text())) == 3
    clear = bash(
        'curl -sf -X DELETE -H "Authorization: Bearer $ADMIN_TOKEN" \\\n'
        "     https://api.villagecompute.com/admin/jobs/dlq?queue=reporting.export",
        tmp_path, server,
    )  # fmt: skip
    assert json.loads(clear.stdout)["deleted"] == 1
    assert [r.execution_id for r in store.page(Filter(), None, 10).records()] == ["e-3", "e-0"]

    # Scenario 4: the health check
    health = bash(f"curl -sf localhost:{server.rsplit(':', 1)[1]}/q/health", tmp_path, server)
    assert json.loads(health.stdout)["status"] == "UP"
