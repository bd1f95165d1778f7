"""The services of ``storefront-jobs dev`` beside the pools: beat, the admin API and Flower.

Each is the production command run as a child (``storefront-jobs beat``,
``serve``, ``flower``), so what a developer pokes at locally is what a
deployment runs. This module is pure apart from the readiness probes: the
specs, the local credentials and the lines that tell the developer where
everything is are tested without starting anything.

Credentials: the admin API and Flower refuse to run open, and a developer
should not have to configure either to try the platform. When
``ADMIN_TOKENS`` or ``FLOWER_BASIC_AUTH`` is unset, :func:`dev_credentials`
makes a random one for this run; it goes into the environment of the one
child that needs it (never on a command line that ``ps`` shows) and is
printed, since it is useless unless the developer can read it. Configured
credentials are used as they are and never printed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import secrets
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import redis

from storefront_jobs.broker import keys
from storefront_jobs.devserver.children import choose_port
from storefront_jobs.devserver.supervisor import ChildSpec
from storefront_jobs.settings import ENV_PREFIX, Settings

#: Flower's user when dev makes the credentials.
DEV_FLOWER_USER = "admin"
#: Services are stopped before the pools (layer 1), which stop before Redis (layer 0): beat must
#: not send into a platform that is shutting down, and nothing here holds jobs.
SERVICE_LAYER = 2
_PROBE_TIMEOUT_S = 2.0


@dataclasses.dataclass(frozen=True)
class Credentials:
    """What the admin API and Flower accept in this run, and what of it to print."""

    #: Extra environment of the admin child (empty when ADMIN_TOKENS is configured).
    admin_env: Mapping[str, str]
    #: The generated admin token, None when the configured ones apply.
    admin_token: str | None
    flower_user: str
    #: Extra environment of the Flower child (empty when FLOWER_BASIC_AUTH is configured).
    flower_env: Mapping[str, str]
    #: The generated Flower password, None when the configured one applies.
    flower_password: str | None


def dev_credentials(settings: Settings, token: Callable[[], str] | None = None) -> Credentials:
    """Configured credentials, or fresh random ones for what is not configured."""
    make = token or (lambda: secrets.token_urlsafe(24))
    scopes = _admin_scopes()
    admin_env: dict[str, str] = {}
    admin_token = None
    if not settings.admin_tokens:
        admin_token = make()
        admin_env[ENV_PREFIX + "ADMIN_TOKENS"] = json.dumps({admin_token: list(scopes)})
    flower_env: dict[str, str] = {}
    if settings.flower_basic_auth is not None:
        flower_user = settings.flower_basic_auth.get_secret_value().split(":", 1)[0]
        flower_password = None
    else:
        flower_user, flower_password = DEV_FLOWER_USER, make()
        flower_env[ENV_PREFIX + "FLOWER_BASIC_AUTH"] = f"{flower_user}:{flower_password}"
    return Credentials(admin_env, admin_token, flower_user, flower_env, flower_password)


def _admin_scopes() -> tuple[str, ...]:
    # Imported here: the admin API pulls in FastAPI, which every other command would pay for at start-up.
    from storefront_jobs.admin.auth import SCOPES  # noqa: PLC0415

    return SCOPES


def _storefront_jobs(*args: str) -> list[str]:
    return [sys.executable, "-m", "storefront_jobs", *args]


def http_probe(url: str, ready_statuses: tuple[int, ...] = (200,)) -> Callable[[], bool]:
    """Ready once ``url`` answers with one of ``ready_statuses`` (the probe sends no credentials)."""

    def answers() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=_PROBE_TIMEOUT_S) as response:
                return response.status in ready_statuses
        except urllib.error.HTTPError as exc:
            return exc.code in ready_statuses
        except (OSError, urllib.error.URLError):
            return False

    return answers


def beat_probe(client: redis.Redis[bytes], started_s: float) -> Callable[[], bool]:
    """Ready once beat has recorded a tick (enabled or not) since it was started."""

    def recorded() -> bool:
        try:
            tick = client.hget(keys.SCHEDULER, "tick")
        except redis.RedisError:
            return False
        return tick is not None and float(tick) >= started_s

    return recorded


def admin_spec(env: Mapping[str, str], credentials: Credentials, port: int) -> ChildSpec:
    return ChildSpec(
        "admin",
        _storefront_jobs("serve", "--host", "127.0.0.1", "--port", str(port)),
        env={**env, **credentials.admin_env},
        layer=SERVICE_LAYER,
        ready=http_probe(f"http://127.0.0.1:{port}/q/health"),
        stop_timeout_s=5.0,
    )


def flower_spec(env: Mapping[str, str], credentials: Credentials, port: int) -> ChildSpec:
    # dev puts /metrics and /healthcheck behind Flower's login unless told otherwise, so the
    # probe takes a 401 as "Flower answers": the login itself is Flower's, tested there.
    protect = env.get(ENV_PREFIX + "FLOWER_PROTECT_MONITORING", "true")
    return ChildSpec(
        "flower",
        _storefront_jobs("flower", "--port", str(port), "--address", "127.0.0.1"),
        env={**env, **credentials.flower_env, ENV_PREFIX + "FLOWER_PROTECT_MONITORING": protect},
        layer=SERVICE_LAYER,
        ready=http_probe(f"http://127.0.0.1:{port}/healthcheck", ready_statuses=(200, 401)),
        stop_timeout_s=5.0,
    )


def beat_spec(env: Mapping[str, str], log_dir: Path, client: redis.Redis[bytes]) -> ChildSpec:
    # The schedule state lives with this run's logs: a later run starts its own schedule.
    return ChildSpec(
        "beat",
        _storefront_jobs("beat", "--schedule-file", str(log_dir / "beat-schedule")),
        env=env,
        layer=SERVICE_LAYER,
        ready=beat_probe(client, time.time() - 1.0),
        stop_timeout_s=5.0,
    )


def describe_schedule(beat_schedule: Mapping[str, Mapping[str, Any]]) -> str:
    """``"examples.warm_cache.home every 60 s, ..."`` from an app's ``beat_schedule``."""
    parts = []
    for name, entry in beat_schedule.items():
        every = entry.get("schedule")
        # Plain seconds, a timedelta, or a celery schedule (whose .seconds is its whole interval)
        seconds = (
            every.total_seconds() if isinstance(every, dt.timedelta) else getattr(every, "seconds", every)
        )
        parts.append(f"{name} every {seconds:g} s" if isinstance(seconds, int | float) else f"{name} {every}")
    return ", ".join(parts) or "no periodic jobs"


def admin_lines(url: str, pid: int, credentials: Credentials, settings: Settings) -> list[str]:
    lines = [
        f"  admin   {url} (pid {pid})",
        f"            OpenAPI docs {url}/docs",
        f"            health       {url}/q/health",
        f"            metrics      {url}/q/metrics",
    ]
    if credentials.admin_token is not None:
        scopes = ", ".join(_admin_scopes())
        lines.append(f"            token        {credentials.admin_token} ({scopes}; generated for this run)")
    else:
        lines.append(f"            tokens       from {ENV_PREFIX}ADMIN_TOKENS ({len(settings.admin_tokens)})")
    if settings.metrics_token is not None:
        lines.append(f"            metrics need Authorization: Bearer <{ENV_PREFIX}METRICS_TOKEN>")
    return lines


def flower_line(url: str, pid: int, credentials: Credentials) -> str:
    if credentials.flower_password is not None:
        login = f"user {credentials.flower_user} password {credentials.flower_password} (generated)"
    else:
        login = f"user {credentials.flower_user} (password from {ENV_PREFIX}FLOWER_BASIC_AUTH)"
    return f"  flower  {url}/ (pid {pid}) {login}"


def beat_line(pid: int, enabled: bool, schedule: str) -> str:
    if not enabled:
        return f"  beat    pid {pid}: scheduler disabled ({ENV_PREFIX}SCHEDULER_ENABLED=false), sends nothing"
    return f"  beat    pid {pid}: {schedule}"


def runbook_line(admin_url: str, credentials: Credentials, log_dir: Path) -> str:
    """The variables docs/runbook.md's commands read, set for this platform, ready to paste."""
    token = credentials.admin_token
    if token is None:
        token = "'<one of your ADMIN_TOKENS>'"  # quoted: pasted unquoted, < would be a redirection
    return (
        f"  runbook export STOREFRONT_ADMIN_URL={admin_url} ADMIN_TOKEN={token} STOREFRONT_DEV_LOGS={log_dir}"
    )


def broker_export_line(broker_url: str) -> str:
    """What a second terminal needs so that ``storefront-jobs queues``/``dlq`` see this platform."""
    return (
        f"  cli     export {ENV_PREFIX}BROKER_URL={broker_url}  (then storefront-jobs queues, dlq list, ...)"
    )


@dataclasses.dataclass(frozen=True)
class DevServices:
    """Which services a dev run starts, on which ports, with which credentials."""

    settings: Settings
    credentials: Credentials
    beat: bool
    #: Port of the admin API, 0 when it is not started.
    admin_port: int
    #: Port of Flower, 0 when it is not started.
    flower_port: int

    @classmethod
    def plan(cls, settings: Settings, *, beat: bool, admin: bool, flower: bool) -> DevServices:
        """Each service on its configured port, or on a free one when that is taken."""
        return cls(
            settings,
            dev_credentials(settings),
            beat,
            choose_port(settings.admin_port) if admin else 0,
            choose_port(settings.flower_port) if flower else 0,
        )

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def flower_url(self) -> str:
        return f"http://127.0.0.1:{self.flower_port}"

    def specs(self, env: Mapping[str, str], log_dir: Path, client: redis.Redis[bytes]) -> list[ChildSpec]:
        specs = []
        if self.beat:
            specs.append(beat_spec(env, log_dir, client))
        if self.admin_port:
            specs.append(admin_spec(env, self.credentials, self.admin_port))
        if self.flower_port:
            specs.append(flower_spec(env, self.credentials, self.flower_port))
        return specs

    def lines(
        self,
        pids: Mapping[str, int],
        beat_schedule: Mapping[str, Mapping[str, Any]],
        log_dir: Path,
        broker_url: str,
    ) -> list[str]:
        """Where each started service is, and how to log in; ``pids`` by child name."""
        lines = [broker_export_line(broker_url)]
        if "beat" in pids:
            schedule = describe_schedule(beat_schedule)
            if self.settings.imports:
                # Beat imports these too, but this process does not: their entries are not listed.
                schedule += f", and the entries of {', '.join(self.settings.imports)}"
            lines.append(beat_line(pids["beat"], self.settings.scheduler_enabled, schedule))
        if "admin" in pids:
            lines += admin_lines(self.admin_url, pids["admin"], self.credentials, self.settings)
        if "flower" in pids:
            lines.append(flower_line(self.flower_url, pids["flower"], self.credentials))
        if "admin" in pids:
            lines.append(runbook_line(self.admin_url, self.credentials, log_dir))
        return lines
