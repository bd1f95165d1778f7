"""``storefront-jobs flower`` end to end: auth at the door, lanes and jobs in a real headless Chromium.

Flower runs as ``python -m storefront_jobs flower`` against the suite's
private Redis, with basic auth from ``STOREFRONT_JOBS_FLOWER_BASIC_AUTH``.
The browser test needs Debian's ``chromium`` and the ``playwright`` package
(the test extra); without them it skips locally and fails in CI.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from storefront_jobs.embedded import EmbeddedRedis, free_port
from tests.integration import jobs
from tests.support.flower import (
    BROWSER_WAIT_MS,
    CHROMIUM_ARGS,
    PASSWORD,
    USER,
    FlowerProcess,
    chromium,
    flower_env,
    run_flower,
    running_flower,
    stop,
    wait_serving,
)
from tests.support.workers import WorkerFactory, wait_until

pytestmark = pytest.mark.e2e

LANES = ["p0.critical", "p1.high", "p2.default", "p3.low", "p4.bulk"]


@pytest.fixture
def flower(
    redis_client: redis.Redis[bytes], redis_server: EmbeddedRedis, tmp_path: Path
) -> Iterator[FlowerProcess]:
    """Flower with basic auth, on a free port, after the broker database was emptied."""
    log_path = tmp_path / "flower.log"
    with running_flower(redis_server.url, log_path, flower_basic_auth=f"{USER}:{PASSWORD}") as running:
        yield running


def test_without_any_auth_it_refuses_to_start(redis_server: EmbeddedRedis, tmp_path: Path) -> None:
    proc = run_flower(["--port", str(free_port())], flower_env(redis_server.url), tmp_path / "flower.log")
    code = proc.wait(30)

    output = (tmp_path / "flower.log").read_text()
    assert code == 2, output
    assert "Flower would run without authentication" in output
    assert "STOREFRONT_JOBS_FLOWER_BASIC_AUTH=user:password" in output
    assert "--no-auth" in output


def test_a_malformed_user_list_is_refused_without_echoing_it(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    env = flower_env(redis_server.url, flower_basic_auth="admin:s3cret-pass,operator")
    proc = run_flower([], env, tmp_path / "flower.log")
    code = proc.wait(30)

    output = (tmp_path / "flower.log").read_text()
    assert code == 2, output
    assert "STOREFRONT_JOBS_FLOWER_BASIC_AUTH: entry 2 of 2 is not user:password" in output
    assert "s3cret" not in output


def test_no_auth_runs_open_after_a_warning(redis_server: EmbeddedRedis, tmp_path: Path) -> None:
    port = free_port()
    proc = run_flower(["--port", str(port), "--no-auth"], flower_env(redis_server.url), tmp_path / "f.log")
    running = FlowerProcess(proc, port, tmp_path / "f.log")
    try:
        wait_serving(running)
        assert running.get("/", auth=None)[0] == 200
    finally:
        assert stop(proc) == 0
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


def test_a_browser_sees_the_lanes_and_a_finished_job(
    flower: FlowerProcess, workers: WorkerFactory, tmp_path: Path
) -> None:
    browser_path = chromium()
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
            executable_path=browser_path,
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


def test_flower_says_its_monitoring_paths_are_open_and_a_setting_closes_them(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    # Given the default: open, and said so at start-up
    with running_flower(
        redis_server.url, tmp_path / "a.log", flower_basic_auth=f"{USER}:{PASSWORD}"
    ) as default:
        assert default.get("/metrics", auth=None)[0] == 200
    assert "/metrics and /healthcheck without credentials" in default.log_text()
    assert "STOREFRONT_JOBS_FLOWER_PROTECT_MONITORING=true" in default.log_text()

    # When the setting is on, both want Flower's login
    port = free_port()
    env = flower_env(
        redis_server.url, flower_basic_auth=f"{USER}:{PASSWORD}", flower_protect_monitoring="true"
    )
    guarded = FlowerProcess(
        run_flower(["--port", str(port)], env, tmp_path / "b.log"), port, tmp_path / "b.log"
    )
    try:

        def answers() -> bool:
            try:
                return guarded.get("/healthcheck")[0] == 200
            except OSError:
                return False

        wait_until(answers, interval_s=0.1)
        for path in ("/metrics", "/healthcheck"):
            assert guarded.get(path, auth=None)[0] == 401, path
            assert guarded.get(path)[0] == 200, path
    finally:
        stop(guarded.proc)
    assert "without credentials" not in guarded.log_text()
