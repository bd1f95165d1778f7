"""``storefront-jobs flower`` in a subprocess, a small client for it, and Debian's Chromium for browsers."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from storefront_jobs.embedded import free_port
from tests.support.workers import REPO_ROOT, wait_until, worker_env

USER, PASSWORD = "admin", "s3cret-pass"
#: How long the browser may take to show what the API already has (Playwright's default is 5 s).
BROWSER_WAIT_MS = 60_000
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


def flower_env(broker_url: str, **settings: str) -> dict[str, str]:
    env = worker_env(broker_url, **settings)
    for name in [n for n in env if n.startswith("FLOWER_")]:
        del env[name]  # Flower's own variables would add auth sources the test did not choose
    return env


def run_flower(args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
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


def stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode


def wait_serving(flower: FlowerProcess) -> None:
    def healthy() -> bool:
        if flower.proc.poll() is not None:
            raise AssertionError(f"flower exited with {flower.proc.returncode}:\n{flower.log_text()}")
        try:
            return flower.get("/healthcheck", auth=None)[0] == 200
        except OSError:
            return False

    wait_until(healthy, interval_s=0.1)


@contextlib.contextmanager
def running_flower(broker_url: str, log_path: Path, **settings: str) -> Iterator[FlowerProcess]:
    """``storefront-jobs flower`` with these settings on a free port, serving; stopped on exit."""
    port = free_port()
    proc = run_flower(["--port", str(port)], flower_env(broker_url, **settings), log_path)
    running = FlowerProcess(proc, port, log_path)
    try:
        wait_serving(running)
        yield running
    finally:
        stop(running.proc)


def chromium() -> str:
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
