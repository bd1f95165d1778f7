"""A replicated Redis behind Sentinel on loopback: one primary, replicas, three Sentinel nodes.

Every process is a ``redis-server`` the test starts (``--replicaof`` for a
replica, ``--sentinel`` for a node), so a test can kill the primary and watch
Sentinel promote a replica. Nodes judge a primary down after
:data:`DOWN_AFTER_MS` without an answer, so a failover takes a few seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from storefront_jobs.embedded import EmbeddedRedis
from tests.support.delayed_link import DelayedLink

MASTER_NAME = "storefront"
#: ``sentinel``: the session's broker is a :class:`SentinelBroker` (tests/conftest.py).
BROKER_KIND_VAR = "STOREFRONT_TEST_BROKER"
#: How long the nodes wait for a silent primary before they call it down.
DOWN_AFTER_MS = 1000


class ReplicaRedis(EmbeddedRedis):
    """A redis-server that replicates ``primary_port`` from the start."""

    def __init__(self, primary_port: int, data_dir: Path, *, extra: tuple[str, ...] = ()) -> None:
        super().__init__(data_dir=data_dir)
        self.primary_port = primary_port
        self.extra = extra

    def command(self) -> list[str]:
        return [*super().command(), "--replicaof", "127.0.0.1", str(self.primary_port), *self.extra]


class PrimaryRedis(EmbeddedRedis):
    """The group's first primary, with extra server options (``--min-replicas-to-write``...)."""

    def __init__(self, data_dir: Path, *, extra: tuple[str, ...] = ()) -> None:
        super().__init__(data_dir=data_dir)
        self.extra = extra

    def command(self) -> list[str]:
        return [*super().command(), *self.extra]


class SentinelNode(EmbeddedRedis):
    """One Sentinel node watching the group's primary (its configuration file is its own to rewrite)."""

    def __init__(self, primary_port: int, data_dir: Path) -> None:
        super().__init__(data_dir=data_dir)
        self.config = data_dir / "sentinel.conf"
        self.config.write_text(
            "\n".join(
                [
                    f"port {self.port}",
                    "bind 127.0.0.1",
                    f"dir {data_dir}",
                    f"sentinel monitor {MASTER_NAME} 127.0.0.1 {primary_port} 2",
                    f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}",
                    f"sentinel failover-timeout {MASTER_NAME} 10000",
                    f"sentinel parallel-syncs {MASTER_NAME} 2",
                    "",
                ]
            )
        )

    def command(self) -> list[str]:
        return [self.executable, str(self.config), "--sentinel", "--loglevel", "warning"]


class SentinelCluster:
    """The primary, its replicas and three Sentinel nodes, started in that order and stopped together."""

    def __init__(
        self,
        root: Path,
        *,
        replicas: int = 2,
        primary_extra: tuple[str, ...] = (),
        replica_link_delay_s: float = 0.0,
    ) -> None:
        """``replica_link_delay_s``: the replicas reach the first primary through a link that delivers
        every byte that late (:class:`DelayedLink`), as over a slower network than loopback."""

        def folder(name: str) -> Path:
            path = root / name
            path.mkdir(parents=True, exist_ok=True)
            return path

        self.servers: list[EmbeddedRedis] = [PrimaryRedis(folder("redis-0"), extra=primary_extra)]
        primary_port = self.servers[0].port
        self.link = DelayedLink(primary_port, replica_link_delay_s) if replica_link_delay_s else None
        upstream = self.link.port if self.link else primary_port
        self.servers += [ReplicaRedis(upstream, folder(f"redis-{n}")) for n in range(1, replicas + 1)]
        self.nodes = [SentinelNode(primary_port, folder(f"sentinel-{n}")) for n in range(3)]

    @property
    def url(self) -> str:
        """The broker URL of the group: every Sentinel node, database 0."""
        return ";".join(f"sentinel://127.0.0.1:{node.port}/0" for node in self.nodes)

    def settings(self) -> dict[str, str]:
        """The environment a worker or a producer of this group needs, beside the URL."""
        return {"STOREFRONT_JOBS_BROKER_MASTER_NAME": MASTER_NAME}

    def start(self) -> SentinelCluster:
        if self.link is not None:
            self.link.start()
        for server in self.servers:
            server.start()
        for node in self.nodes:
            node.start()
        self.wait_until(self.settled, 30, "the nodes to see the primary, its replicas and each other")
        return self

    def primary_port(self) -> int:
        """The port of the primary the nodes agree on now."""
        _host, port = self.ask_node("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)
        return int(port)

    def primary(self) -> EmbeddedRedis:
        port = self.primary_port()
        return next(server for server in self.servers if server.port == port)

    def client(self, server: EmbeddedRedis) -> redis.Redis:
        return redis.Redis(port=server.port, socket_timeout=5)

    def ask_node(self, *command: Any) -> Any:
        """The answer of the first Sentinel node that answers."""
        for node in self.nodes:
            if node.process is None:
                continue
            try:
                with redis.Redis(port=node.port, socket_timeout=2, decode_responses=True) as client:
                    return client.execute_command(*command)
            except redis.RedisError:
                continue
        raise RuntimeError("no Sentinel node answers")

    def settled(self) -> bool:
        """Every node knows the replicas that are up and the other two nodes."""
        up = sum(1 for server in self.servers if server.process is not None) - 1
        for node in self.nodes:
            with redis.Redis(port=node.port, socket_timeout=2, decode_responses=True) as client:
                replicas = client.execute_command("SENTINEL", "REPLICAS", MASTER_NAME)
                others = client.execute_command("SENTINEL", "SENTINELS", MASTER_NAME)
            healthy = [r for r in replicas if "s_down" not in _fields(r).get("flags", "")]
            if len(healthy) < up or len(others) < len(self.nodes) - 1:
                return False
        return True

    def kill_primary(self) -> int:
        """SIGKILL the primary, as a crashed machine; returns its port."""
        primary = self.primary()
        primary.kill()
        return primary.port

    def wait_for_new_primary(self, old_port: int, timeout_s: float = 60) -> int:
        """Wait until the nodes name another primary, and that one accepts writes; returns its port."""

        def promoted() -> bool:
            port = self.primary_port()
            if port == old_port:
                return False
            with redis.Redis(port=port, socket_timeout=2) as client:
                return str(client.info("replication").get("role")) == "master"

        self.wait_until(promoted, timeout_s, f"a replica promoted in place of :{old_port}")
        return self.primary_port()

    @staticmethod
    def wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if check():
                    return
            except (redis.RedisError, RuntimeError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"waited {timeout_s} s for {what}")
            time.sleep(0.1)

    def close(self) -> None:
        for process in [*self.nodes, *self.servers]:
            process.close()
        if self.link is not None:
            self.link.close()


class SentinelBroker:
    """A :class:`SentinelCluster` in the place of the session's one server (``tests/conftest.py``).

    ``url`` is what apps and workers are given (the Sentinel nodes); ``direct_url`` and ``port`` are the
    primary's, for a test's own client and for what needs one server (a restart is the cluster's).
    """

    def __init__(self, cluster: SentinelCluster) -> None:
        self.cluster = cluster

    @property
    def url(self) -> str:
        return self.cluster.url

    @property
    def port(self) -> int:
        return self.cluster.primary_port()

    @property
    def direct_url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def close(self) -> None:
        self.cluster.close()


def _fields(reply: Any) -> dict[str, str]:
    """A Sentinel reply's flat ``[name, value, name, value...]`` list (or dict) as a dict."""
    if isinstance(reply, dict):
        return {str(k): str(v) for k, v in reply.items()}
    return {str(reply[i]): str(reply[i + 1]) for i in range(0, len(reply), 2)}
