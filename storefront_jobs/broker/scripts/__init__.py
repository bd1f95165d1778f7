"""Every Lua script storefront-jobs runs on Redis, and the one way they are loaded and called.

The scripts are the ``.lua`` files of this folder (package data: a wheel ships
them), each opening with its KEYS, ARGV and reply. Pieces that several
scripts share live in ``lib/`` (lane depth, counters, the doorbell, the
capacity rule) and ``dlq/lib/`` (removing and trimming DLQ entries), written
once; a script names each piece it uses with a line ``-- include: <path>``
and :func:`load` puts the pieces in front of it, each once, in the order the
includes are met (a piece's own includes first), so a piece's functions
exist before anything calls them.

A script whose first line is a shebang (``#!lua flags=allow-oom``) keeps it
first, before its pieces: Redis reads a script's flags only there. ``allow-oom``
marks the scripts a full Redis must still run because they free or move memory
rather than add it (a worker's steps on a message it holds, a pool's heartbeat,
the DLQ's delete and trim; docs/reliability.md, "A full Redis"); the admission scripts are refused.

A :class:`Script` is called one way, ``SCRIPT(client, keys, args)``: Redis
names a loaded script by the SHA-1 of its text, so the call is ``EVALSHA``;
a Redis that does not know it (restarted, or ``SCRIPT FLUSH``) answers
NOSCRIPT, and the call is sent again once as ``EVAL`` with the text, which
also loads it for the next ``EVALSHA``. Queued in a pipeline, whose replies
come only with ``execute()`` (too late to send anything again), it is queued
as ``EVAL``. The reliable fetch sends its script itself, without waiting for
the reply, on the worker's poll connection: :meth:`Script.command` builds
that command, and the fetch handles NOSCRIPT where it reads the reply
(:mod:`storefront_jobs.broker.fetch`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Sequence
from importlib import resources
from typing import Any

import redis
from redis.client import Pipeline
from redis.exceptions import NoScriptError

from storefront_jobs.broker.held import HeldConnection

#: A line of a ``.lua`` file naming a shared piece, by its path in this folder.
_INCLUDE = re.compile(r"^-- include: (?P<path>\S+\.lua)[ \t]*$", re.MULTILINE)


@dataclasses.dataclass(frozen=True)
class Script:
    """One script: its name (its path here, without ``.lua``), its whole text, and its SHA-1."""

    name: str
    text: str
    flagged_sha: str = dataclasses.field(init=False)
    #: The text without its shebang, and whether this process sends that one (a Redis before 7).
    plain_text: str = dataclasses.field(init=False)
    plain_sha: str = dataclasses.field(init=False)
    _plain: list[bool] = dataclasses.field(init=False, default_factory=lambda: [False])

    def __post_init__(self) -> None:
        object.__setattr__(self, "flagged_sha", _sha1(self.text))
        shebang, _, body = self.text.partition("\n")
        object.__setattr__(self, "plain_text", body if shebang.startswith("#!") else self.text)
        object.__setattr__(self, "plain_sha", _sha1(self.plain_text))

    @property
    def sha(self) -> str:
        """The SHA-1 of the text this process sends (see :meth:`falls_back`)."""
        return self.plain_sha if self._plain[0] else self.flagged_sha

    @property
    def sent_text(self) -> str:
        return self.plain_text if self._plain[0] else self.text

    def falls_back(self, exc: BaseException) -> bool:
        """Whether ``exc`` is a Redis before 7 refusing the shebang; if so, send the plain text from now on.

        Redis 6 compiles ``#!lua flags=...`` as Lua and fails. Without the
        flags a script runs as it always did on Redis 6, which has no
        ``allow-oom``: there a full Redis refuses a worker's writes as before.
        """
        if self._plain[0] or self.plain_text == self.text or _SHEBANG_REFUSED not in str(exc):
            return False
        self._plain[0] = True
        return True

    def __call__(
        self, client: redis.Redis[Any] | Pipeline[Any], keys: Sequence[Any] = (), args: Sequence[Any] = ()
    ) -> Any:
        """Run the script on ``client`` (see the module docstring); in a pipeline, queue it."""
        commands: Any = client  # types-redis leaves eval and evalsha untyped
        if isinstance(client, Pipeline):
            return commands.eval(self.sent_text, len(keys), *keys, *args)
        try:
            return commands.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            pass
        try:
            return commands.eval(self.sent_text, len(keys), *keys, *args)
        except redis.ResponseError as exc:
            if not self.falls_back(exc):
                raise
        return commands.eval(self.sent_text, len(keys), *keys, *args)

    def packed_head(self, keys: Sequence[Any], args: Sequence[Any], *, total_args: int) -> bytes:
        """The start of an ``EVALSHA`` in Redis's wire protocol, ready for more ARGV (:meth:`call_packed`).

        ``total_args`` is the number of ARGV the whole command will carry.
        """
        head = [b"EVALSHA", self.sha.encode(), str(len(keys)).encode(), *map(_as_bytes, keys)]
        parts = [*head, *map(_as_bytes, args)]
        return b"*%d\r\n" % (len(head) + total_args) + b"".join(resp_bulk(part) for part in parts)

    def call_packed(
        self, held: HeldConnection, packed: bytes, keys: Sequence[Any], args: Sequence[Any]
    ) -> Any:
        """Send a packed ``EVALSHA`` (``packed_head`` + :func:`resp_bulk` of the rest) on a held connection.

        The hot path of an enqueue: redis-py's command packing and pool
        checkout cost more than the rest of a job's message, and only the
        message differs between two jobs of a task. ``keys`` and ``args`` are
        the same call unpacked, sent the ordinary way if Redis does not know
        the script.
        """
        connection = held.get()
        try:
            connection.send_packed_command([packed])
            reply = connection.read_response()
        except NoScriptError:
            return self(held.client, keys, args)
        except redis.ConnectionError:
            # The server closed the connection (a restart): sent again the ordinary way, which
            # reconnects and retries as redis-py does for every command.
            held.drop()
            return self(held.client, keys, args)
        except BaseException:
            # A half-read reply must not reach the next command on this connection.
            held.drop()
            raise
        held.answered()
        return reply

    def command(self, keys: Sequence[Any], args: Sequence[Any], *, cached: bool = True) -> list[Any]:
        """The command that runs the script, to send raw: ``EVALSHA`` while Redis has it, else ``EVAL``."""
        head: list[Any] = ["EVALSHA", self.sha] if cached else ["EVAL", self.sent_text]
        return [*head, len(keys), *keys, *args]


#: What Redis before 7 answers a script that opens with a shebang.
_SHEBANG_REFUSED = "unexpected symbol near '#'"


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode()


def resp_bulk(value: bytes) -> bytes:
    """One argument of a command in Redis's wire protocol (RESP bulk string)."""
    return b"$%d\r\n%s\r\n" % (len(value), value)


def _read(path: str) -> str:
    return resources.files(__name__).joinpath(path).read_text(encoding="utf-8")


def compose(path: str) -> str:
    """The text of the script at ``path`` with every piece it includes in front of it, each once."""
    parts: list[str] = []
    seen: set[str] = set()

    def visit(current: str, chain: tuple[str, ...]) -> None:
        if current in chain:
            raise ValueError(f"Lua includes form a cycle: {' -> '.join((*chain, current))}")
        if current in seen:
            return
        text = _read(current)
        for match in _INCLUDE.finditer(text):
            visit(match["path"], (*chain, current))
        seen.add(current)
        parts.append(text)

    visit(path, ())
    # A shebang (``#!lua flags=allow-oom``) declares the script's flags to Redis and must open the
    # text, before the pieces put in front of the script.
    script = parts[-1]
    if script.startswith("#!"):
        shebang, _, body = script.partition("\n")
        return "\n".join([shebang, *parts[:-1], body])
    return "\n".join(parts)


def load(name: str) -> Script:
    """The script ``<name>.lua`` of this folder, its includes resolved."""
    return Script(name, compose(f"{name}.lua"))


#: CapacityGate.admit: the capacity check and enqueue count of a publish through plain kombu.
ADMIT = load("admit")
#: The transport's first publish of a job into a lane: check, count and push in one step.
ADMIT_AND_PUSH = load("admit_and_push")
#: enqueue_many's chunk of first publishes into a lane: checked as one, counted and pushed in one step.
ADMIT_AND_PUSH_MANY = load("admit_and_push_many")
#: The transport's push of a message that needs no check (a retry).
PUSH = load("push")
#: A doorbell rung inside kombu's restore transaction.
RING = load("ring")
#: CapacityGate.depth: a lane's waiting messages.
DEPTH = load("depth")
#: CapacityGate.room: the capacity check of a DLQ replay batch.
ROOM = load("room")
#: The reliable fetch, sent raw by the worker's channel.
FETCH = load("fetch")
#: Channel._queue_bind: a lane's binding recorded, on a full Redis too.
BIND = load("bind")
#: QoS.ack: a message's unacknowledged record removed (and a gated fetch woken), on a full Redis too.
ACK = load("ack")
#: QoS.restore_by_tag: a held message pushed back and its record removed in one step, on a full Redis too.
RESTORE = load("restore")
#: A message kombu's own BRPOP took, recorded as unacknowledged on Redis's clock (broker.qos).
RECORD_UNACKED = load("record_unacked")
#: Heartbeat.beat: a pool's beat written, on a full Redis too (the pools draining it stay visible).
HEARTBEAT = load("heartbeat")
#: A fair share per tenant (storefront_jobs.broker.tenants): a tenant's first publish (checked and
#: counted) and retry onto its list in the lane, and the purge of a lane's tenant lists.
TENANT_ADMIT_AND_PUSH = load("tenants/admit_and_push")
TENANT_PUSH = load("tenants/push")
TENANT_PURGE = load("tenants/purge")
#: Aging (storefront_jobs.broker.aging): one waiting job moved one lane up, capacity checked.
AGING_PROMOTE = load("aging/promote")
#: A lease held by one process at a time (storefront_jobs.broker.lease): take or renew, and give up.
LEASE_HOLD = load("lease/hold")
LEASE_RELEASE = load("lease/release")
#: The DLQ store's operations (storefront_jobs.deadletter.store).
DLQ_ADD = load("dlq/add")
DLQ_TRIM = load("dlq/trim")
DLQ_DELETE = load("dlq/delete")
DLQ_MOVE = load("dlq/move")
DLQ_PAGE = load("dlq/page")
