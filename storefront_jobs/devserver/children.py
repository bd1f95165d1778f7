"""What ``storefront-jobs dev`` runs: the command, environment and readiness probe of each child.

Pure where it can be (specs, environments, ports), so the commands are
tested without starting anything; :mod:`.platform` starts them in order.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable, Mapping, Sequence

from storefront_jobs.application import StorefrontCelery
from storefront_jobs.broker.clients import probe
from storefront_jobs.devserver.supervisor import ChildSpec
from storefront_jobs.embedded import EmbeddedRedis, free_port
from storefront_jobs.jobs.priorities import Priority
from storefront_jobs.settings import ENV_PREFIX

#: Port of the embedded Redis when it is free: stable across runs, so a
#: second terminal can reach it, and not 6379, where a real Redis may live.
DEFAULT_REDIS_PORT = 6390
EXAMPLES_MODULE = "storefront_jobs.examples"


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        # As redis-server binds: connections of an earlier run in TIME_WAIT do not make the port busy.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def choose_port(preferred: int) -> int:
    """``preferred`` when free, else any free port; 0 (off) stays 0.

    Another program may take the port between this check and the child's
    bind; the child then fails to start and says so, which is rare enough.
    """
    if not preferred:
        return 0
    return preferred if port_is_free(preferred) else free_port()


def choose_redis_port(preferred: int = DEFAULT_REDIS_PORT) -> int:
    return choose_port(preferred)


def redis_answers(url: str) -> bool:
    return probe(url, timeout_s=1.0)


def redis_spec(server: EmbeddedRedis) -> ChildSpec:
    """The embedded broker: layer 0, so it stops last, after everything that needs it."""
    return ChildSpec(
        "redis", server.command(), layer=0, ready=lambda: redis_answers(server.url), stop_timeout_s=5.0
    )


def child_env(base: Mapping[str, str], broker_url: str, imports: Sequence[str]) -> dict[str, str]:
    """The environment of a pool: ours, with the broker and the task modules set."""
    env = dict(base)
    env[ENV_PREFIX + "BROKER_URL"] = broker_url
    env[ENV_PREFIX + "IMPORTS"] = ",".join(dict.fromkeys(imports))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def pool_name(priority: Priority) -> str:
    return f"{priority.label}-dev"


def pool_metrics_port(base_port: int, priority: Priority) -> int:
    """Each pool's own metrics port (``METRICS_PORT`` + priority order): five pools share one host.

    0 stays 0 (endpoint off).
    """
    return base_port + priority.value if base_port else 0


def pool_spec(
    priority: Priority,
    *,
    concurrency: int,
    env: Mapping[str, str],
    metrics_port: int,
    ready: Callable[[], bool],
) -> ChildSpec:
    argv = [
        sys.executable, "-m", "storefront_jobs", "worker",
        "--priorities", priority.name, "-c", str(concurrency), "-n", f"{pool_name(priority)}@%h",
    ]  # fmt: skip
    pool_env = {**env, ENV_PREFIX + "METRICS_PORT": str(metrics_port)}
    return ChildSpec(pool_name(priority), argv, env=pool_env, layer=1, ready=ready, stop_timeout_s=20.0)


def ping_probe(app: StorefrontCelery, nodename: str) -> Callable[[], bool]:
    def answers() -> bool:
        return bool(app.control.ping(destination=[nodename], timeout=0.5))

    return answers
