"""``storefront-jobs flower`` end to end: auth at the door, lanes and jobs in a real headless Chromium.

Flower runs as ``python -m storefront_jobs flower`` against the suite's
private Redis, with basic auth from ``STOREFRONT_JOBS_FLOWER_BASIC_AUTH``.
The browser test needs Debian's ``chromium`` and the ``playwright`` package
(the test extra); without them it skips locally and fails in CI.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from storefront_jobs.embedded import EmbeddedRedis, free_port
from tests.integration import jobs
from tests.support.workers import REPO_ROOT, WorkerFactory, wait_until, worker_env

pytestmark = pytest.mark.e2e

USER, PASSWORD = "admin", "s3cret-pass"
#: How long the browser may take to show what the API already has (Playwright's default is 5 s).
BROWSER_WAIT_MS = 60_000
LANES = ["p0.critical", "p1.high", "p2.default", "p3.low", "p4.bulk"]
#: As the machine notes prescribe: no GPU, no background calls to Google's hosts (refused here).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class FlowerProcess:
    """One ``storefront-jobs flower`` subprocess and a tiny HTTP client for it."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
        self.proc = proc
        self.port = port
        self.log_path = log_path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get(self, path: str, *, auth: tuple[str, str] | None = (USER, PASSWORD)) -> tuple[int, bytes]:
        request = urllib.request.Request(self.url + path)
        if auth is not None:
            token = base64.b64encode(":".join(auth).encode()).decode()
            request.add_header("Authorization", "Basic " + token)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def json(self, path: str) -> Any:
        status, body = self.get(path)
        assert status == 200, (path, status, body)
        return json.loads(body)


def _flower_env(broker_url: str, **settings: str) -> dict[str, str]:
    env = worker_env(broker_url, **settings)
    for name in [n for n in env if n.startswith("FLOWER_")]:
        del env[name]  # Flower's own variables would add auth sources the test did not choose
    return env


def _run_flower(args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "storefront_jobs", "flower", *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=REPO_ROOT,
            start_new_session=True,
        )


def _stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode


def _wait_serving(flower: FlowerProcess) -> None:
    def healthy() -> bool:
        if flower.proc.poll() is not None:
            raise AssertionError(f"flower exited with {flower.proc.returncode}:\n{flower.log_text()}")
        try:
            return flower.get("/healthcheck", auth=None)[0] == 200
        except OSError:
            return False

    wait_until(healthy, interval_s=0.1)


@pytest.fixture
def flower(
    redis_client: redis.Redis[bytes], redis_server: EmbeddedRedis, tmp_path: Path
) -> Iterator[FlowerProcess]:
    """Flower with basic auth, on a free port, after the broker database was emptied."""
    port = free_port()
    log_path = tmp_path / "flower.log"
    env = _flower_env(redis_server.url, flower_basic_auth=f"{USER}:{PASSWORD}")
    running = FlowerProcess(_run_flower(["--port", str(port)], env, log_path), port, log_path)
    try:
        _wait_serving(running)
        yield running
    finally:
        _stop(running.proc)


def test_without_any_auth_it_refuses_to_start(redis_server: EmbeddedRedis, tmp_path: Path) -> None:
    proc = _run_flower(["--port", str(free_port())], _flower_env(redis_server.url), tmp_path / "flower.log")
    code = proc.wait(30)

    output = (tmp_path / "flower.log").read_text()
    assert code == 2, output
    assert "Flower would run without authentication" in output
    assert "STOREFRONT_JOBS_FLOWER_BASIC_AUTH=user:password" in output
    assert "--no-auth" in output


def test_a_malformed_user_list_is_refused_without_echoing_it(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    env = _flower_env(redis_server.url, flower_basic_auth="admin:s3cret-pass,operator")
    proc = _run_flower([], env, tmp_path / "flower.log")
    code = proc.wait(30)

    output = (tmp_path / "flower.log").read_text()
    assert code == 2, output
    assert "STOREFRONT_JOBS_FLOWER_BASIC_AUTH: entry 2 of 2 is not user:password" in output
    assert "s3cret" not in output


def test_no_auth_runs_open_after_a_warning(redis_server: EmbeddedRedis, tmp_path: Path) -> None:
    port = free_port()
    proc = _run_flower(["--port", str(port), "--no-auth"], _flower_env(redis_server.url), tmp_path / "f.log")
    running = FlowerProcess(proc, port, tmp_path / "f.log")
    try:
        _wait_serving(running)
        assert running.get("/", auth=None)[0] == 200
    finally:
        assert _stop(proc) == 0
    assert "warning: --no-auth: Flower runs without authentication" in running.log_text()


def test_basic_auth_guards_the_ui_and_api_and_lanes_show_without_workers(flower: FlowerProcess) -> None:
    # Given two CRITICAL jobs waiting and no worker online
    jobs.urgent.delay(1)
    jobs.urgent.delay(2)

    # Then the UI and the API want credentials...
    for path in ("/", "/broker", "/api/queues/length"):
        assert flower.get(path, auth=None)[0] == 401, path
        assert flower.get(path, auth=(USER, "wrong-password"))[0] == 401, path
        assert flower.get(path)[0] == 200, path
    # ...but /metrics and /healthcheck stay open, as docs/flower.md warns
    assert flower.get("/metrics", auth=None)[0] == 200
    assert flower.get("/healthcheck", auth=None)[0] == 200
    # And with no worker online Flower lists the app's five lanes, counted in Redis
    lengths = flower.json("/api/queues/length")["active_queues"]
    assert [(q["name"], q["messages"]) for q in lengths] == [
        ("p0.critical", 2),
        ("p1.high", 0),
        ("p2.default", 0),
        ("p3.low", 0),
        ("p4.bulk", 0),
    ]
    # And the password never reached a command line that ps shows
    assert PASSWORD not in Path(f"/proc/{flower.proc.pid}/cmdline").read_text()


def _chromium() -> str:
    """Debian's Chromium, if it and Playwright are here; otherwise skip, or fail in CI."""
    path = shutil.which("chromium") or "/usr/bin/chromium"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing = "the playwright package (pip install -e '.[test]')"
    else:
        missing = "" if Path(path).exists() else "Debian's chromium (apt-get install chromium)"
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the browser test must run in CI, but {missing} is missing")
        pytest.skip(f"{missing} is not installed")
    return path


def test_a_browser_sees_the_lanes_and_a_finished_job(
    flower: FlowerProcess, workers: WorkerFactory, tmp_path: Path
) -> None:
    chromium = _chromium()
    from playwright.sync_api import expect, sync_playwright

    # Given a worker on every lane, whose events Flower has turned on
    worker = workers.start("all", concurrency=1)

    # Worker events (online, heartbeats) always flow, but a job's own events
    # only once Flower's enable_events broadcast (every 5 s) reached the
    # worker; a job run before that never shows in Flower, so send it after.
    wait_until(lambda: "Events of group {task} enabled by remote" in worker.log_text())

    # When a job runs
    jobs.noop.delay(1)
    task_name = jobs.noop.name

    def finished() -> bool:
        return any(
            t["name"] == task_name and t["state"] == "SUCCESS" for t in flower.json("/api/tasks").values()
        )

    wait_until(finished, interval_s=0.2)

    # Then a real browser, logged in with basic auth, shows the five lanes and the finished job
    with sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),  # a fresh profile for every run
            executable_path=chromium,
            headless=True,
            args=CHROMIUM_ARGS,
            http_credentials={"username": USER, "password": PASSWORD},
        )
        try:
            page = browser.new_page()
            page.goto(flower.url + "/broker")
            rows = page.locator("#queue-table tbody tr")
            expect(rows).to_have_count(len(LANES), timeout=BROWSER_WAIT_MS)
            assert [rows.nth(i).locator("td").first.inner_text() for i in range(len(LANES))] == LANES
            page.screenshot(path=str(tmp_path / "broker.png"), full_page=True)

            page.goto(flower.url + "/tasks")
            row = page.locator("#tasks-table tbody tr", has_text=task_name)
            expect(row).to_have_count(1, timeout=BROWSER_WAIT_MS)
            expect(row).to_contain_text("SUCCESS", timeout=BROWSER_WAIT_MS)
            page.screenshot(path=str(tmp_path / "tasks.png"), full_page=True)
        finally:
            browser.close()
