"""The chaos tests' ledger: what was enqueued, what ran, what died, and the sum that must add up.

Every chaos job carries a unique id (also its Celery task id, so a DLQ entry's
``executionId`` is the job id) and reports to a *ledger* in Redis: the
session's server, never the broker under test, so a broker restart cannot
erase the evidence. Layout, under ``chaos:<run>:``::

    starts      hash   job id -> runs begun (a killed run counts here only)
    runs        hash   job id -> runs completed; more than 1 is a duplicate
    done_at     hash   job id -> time of its first completion
    last_start  hash   job id -> time its latest run began
    current     hash   pid -> job id that process is running now
    ran_by      hash   job id -> pid of the process that began its latest run
    concurrent  hash   job id -> runs begun while another live process ran the same id
    redelivered hash   job id -> runs of a message kombu restored (``delivery_info["redelivered"]``)

At the end of a scenario :func:`account` compares the producers' view
(acknowledged enqueues, refused enqueues) with the ledger and the DLQ:

    enqueued == completed + dead-lettered (not completed)      lost == 0

Duplicates (extra completions) are allowed, since delivery is at least once,
but always counted and reported, with the counts written to a JSON file
(``CHAOS_RESULTS_FILE``, for docs/reliability.md) and into the assertion
message.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import redis

from storefront_jobs.deadletter import Filter
from storefront_jobs.deadletter.store import DeadLetterStore
from tests.support.broker import broker_idle

#: Where the chaos jobs write; the tests set it to the session server.
LEDGER_URL_VAR = "CHAOS_LEDGER_URL"
#: When set, every scenario merges its counts into this JSON file.
RESULTS_FILE_VAR = "CHAOS_RESULTS_FILE"


def ledger_key(run: str, name: str) -> str:
    return f"chaos:{run}:{name}"


# --- job side: called by the chaos jobs in tests/integration/jobs.py ------------------------------


@functools.cache
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)


def _ledger_client() -> redis.Redis:
    return _client(os.environ.get(LEDGER_URL_VAR) or os.environ["STOREFRONT_JOBS_BROKER_URL"])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def job_started(run: str, job_id: str, *, redelivered: bool = False) -> None:
    """A run of ``job_id`` begins in this process; flags it if another live process runs it too."""
    pid = os.getpid()
    pipe = _ledger_client().pipeline(transaction=True)
    pipe.hincrby(ledger_key(run, "starts"), job_id, 1)
    if redelivered:
        pipe.hincrby(ledger_key(run, "redelivered"), job_id, 1)
    pipe.hset(ledger_key(run, "last_start"), job_id, repr(time.time()))
    pipe.hset(ledger_key(run, "current"), str(pid), job_id)
    pipe.hset(ledger_key(run, "ran_by"), job_id, str(pid))
    pipe.hgetall(ledger_key(run, "current"))
    current: dict[bytes, bytes] = pipe.execute()[-1]
    # A killed process leaves its entry behind; only a live one running the same id is concurrent.
    others = [int(p) for p, j in current.items() if j.decode() == job_id and int(p) != pid]
    if any(_alive(p) for p in others):
        _ledger_client().hincrby(ledger_key(run, "concurrent"), job_id, 1)


def wait_for_gate(gate: str, timeout_s: float = 120.0) -> None:
    """Hold the job until the test opens ``gate`` (sets the key on the ledger's server).

    A job that holds its process until told, rather than for a fixed time, keeps a worker in the
    state a test wants to act on (all processes busy, messages held) for as long as the test needs
    to see it. The cap only ends a job whose test failed before opening the gate.
    """
    client = _ledger_client()
    deadline = time.monotonic() + timeout_s
    while not client.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.01)


def job_finished(run: str, job_id: str) -> None:
    pipe = _ledger_client().pipeline(transaction=True)
    pipe.hincrby(ledger_key(run, "runs"), job_id, 1)
    pipe.hsetnx(ledger_key(run, "done_at"), job_id, repr(time.time()))
    pipe.hdel(ledger_key(run, "current"), str(os.getpid()))
    pipe.execute()


# --- test side ------------------------------------------------------------------------------------


def _ints(raw: Mapping[bytes, bytes]) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in raw.items()}


def _floats(raw: Mapping[bytes, bytes]) -> dict[str, float]:
    return {k.decode(): float(v) for k, v in raw.items()}


class Ledger:
    """The test's view of one run's ledger."""

    def __init__(self, client: redis.Redis, run: str) -> None:
        self.client = client
        self.run = run

    def key(self, name: str) -> str:
        return ledger_key(self.run, name)

    def runs(self) -> dict[str, int]:
        return _ints(self.client.hgetall(self.key("runs")))

    def starts(self) -> dict[str, int]:
        return _ints(self.client.hgetall(self.key("starts")))

    def ran_by(self) -> dict[str, int]:
        """Job id -> pid of the process that began its latest run."""
        return _ints(self.client.hgetall(self.key("ran_by")))

    def concurrent(self) -> dict[str, int]:
        return _ints(self.client.hgetall(self.key("concurrent")))

    def redelivered(self) -> dict[str, int]:
        return _ints(self.client.hgetall(self.key("redelivered")))

    def done_at(self) -> dict[str, float]:
        return _floats(self.client.hgetall(self.key("done_at")))

    def last_start(self) -> dict[str, float]:
        return _floats(self.client.hgetall(self.key("last_start")))

    def completed_count(self) -> int:
        return int(self.client.hlen(self.key("runs")))

    def running(self) -> set[str]:
        """Job ids that a process has begun and not finished (killed runs included)."""
        return {j.decode() for j in self.client.hvals(self.key("current"))}

    def live_running(self) -> set[str]:
        """Job ids that a live process is running now."""
        current = self.client.hgetall(self.key("current"))
        return {j.decode() for p, j in current.items() if _alive(int(p))}


def dlq_reasons(store: DeadLetterStore) -> dict[str, str]:
    """Every DLQ entry: execution id -> reason."""
    found: dict[str, str] = {}
    cursor: str | None = None
    while True:
        page = store.page(Filter(), cursor, 1_000)
        found.update({r.execution_id: r.reason.value for r in page.records()})
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


def accounted(ledger: Ledger, store: DeadLetterStore, ids: Iterable[str]) -> bool:
    """Every id has completed or is in the DLQ."""
    done = set(ledger.runs())
    pending = [i for i in ids if i not in done]
    if not pending:
        return True
    dead = set(dlq_reasons(store))
    return all(i in dead for i in pending)


def settle(
    ledger: Ledger,
    store: DeadLetterStore,
    broker: redis.Redis,
    ids: Iterable[str],
    timeout_s: float,
    quiet_s: float = 10.0,
) -> None:
    """Wait until every job is accounted for, or until nothing more can run; then :func:`account` judges.

    Nothing more can run once no lane holds a message, no worker holds one
    (``unacked``: running, fetched ahead, or counting down to a retry) and no
    process is inside a job (a job that outlived its visibility timeout can run
    on after an earlier run acknowledged its message). That state must last
    ``quiet_s`` before jobs still missing are judged lost: a message handed from
    one place to the other may briefly be in neither, and on a busy machine
    "briefly" can be long. Only a failing scenario waits it out.
    """
    ids = list(ids)
    deadline = time.monotonic() + timeout_s
    quiet_since: float | None = None
    while True:
        idle = broker_idle(broker) and not ledger.live_running()
        if idle and accounted(ledger, store, ids):
            return
        now = time.monotonic()
        quiet_since = (quiet_since or now) if idle else None
        if quiet_since is not None and now - quiet_since >= quiet_s:
            return  # some jobs will never run: the accounting reports them as lost
        if now > deadline:
            done = set(ledger.runs())
            pending = [i for i in ids if i not in done]
            raise AssertionError(
                f"not settled in {timeout_s} s: {len(pending)} jobs neither completed nor dead-lettered "
                f"(e.g. {pending[:5]}); unacked: {broker.hlen('unacked')} {held_messages(broker, ledger)}, "
                f"running: {sorted(ledger.live_running())[:5]}"
            )
        time.sleep(0.2)


def held_messages(broker: redis.Redis, ledger: Ledger, limit: int = 5) -> list[dict[str, Any]]:
    """What a stuck run's held messages are, for its failure message: each one's job, attempt and
    age next to that job's starts and completed runs in the ledger."""
    now_s = time.time()
    starts, runs = ledger.starts(), ledger.runs()
    held = []
    for tag, raw in list(broker.hgetall("unacked").items())[:limit]:
        payload = json.loads(raw)[0]
        headers = payload.get("headers") or {}
        job_id = str(headers.get("id"))
        fetched_s = broker.zscore("unacked_index", tag)
        held.append(
            {
                "id": job_id,
                "retries": headers.get("retries"),
                "eta": headers.get("eta"),
                "redelivered": (payload.get("properties") or {}).get("delivery_info", {}).get("redelivered"),
                "heldForS": None if fetched_s is None else round(now_s - fetched_s, 1),
                "starts": starts.get(job_id, 0),
                "runs": runs.get(job_id, 0),
            }
        )
    return held


@dataclasses.dataclass
class Outcome:
    """The counts of one scenario; ``lost`` must be 0."""

    scenario: str
    enqueued: int
    refused: int
    completed: int
    in_dlq: int
    duplicates: int
    duplicated_jobs: int
    lost: int
    completed_then_dead: int
    refused_but_ran: int
    unexpected: int
    concurrent_runs: int
    redelivered_runs: int
    seconds: float
    dlq_reasons: dict[str, int]
    refused_errors: dict[str, int]
    extra: dict[str, Any]
    lost_ids: list[str]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def summary(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


def account(
    scenario: str,
    *,
    ledger: Ledger,
    store: DeadLetterStore,
    enqueued: Iterable[str],
    refused: Mapping[str, str] | None = None,
    started_s: float,
    extra: Mapping[str, Any] | None = None,
) -> Outcome:
    """Compare what producers were told with what ran and what died.

    ``enqueued``: ids whose enqueue returned normally (acknowledged);
    ``refused``: id -> error type of enqueues that raised.
    """
    acked = set(enqueued)
    refused = dict(refused or {})
    runs = ledger.runs()
    reasons = dlq_reasons(store)
    done = set(runs) & acked
    dead = set(reasons) & acked
    lost = sorted(acked - done - dead)
    reason_counts: dict[str, int] = {}
    for job_id in dead - done:
        reason_counts[reasons[job_id]] = reason_counts.get(reasons[job_id], 0) + 1
    error_counts: dict[str, int] = {}
    for error in refused.values():
        error_counts[error] = error_counts.get(error, 0) + 1
    known = acked | set(refused)
    return Outcome(
        scenario=scenario,
        enqueued=len(acked),
        refused=len(refused),
        completed=len(done),
        in_dlq=len(dead - done),
        duplicates=sum(n - 1 for j, n in runs.items() if n > 1 and j in acked),
        duplicated_jobs=sum(1 for j, n in runs.items() if n > 1 and j in acked),
        lost=len(lost),
        completed_then_dead=len(done & dead),
        refused_but_ran=len((set(runs) | set(reasons)) & set(refused)),
        unexpected=len(set(runs) - known),
        concurrent_runs=sum(ledger.concurrent().values()),
        redelivered_runs=sum(ledger.redelivered().values()),
        seconds=round(time.monotonic() - started_s, 1),
        dlq_reasons=reason_counts,
        refused_errors=error_counts,
        extra=dict(extra or {}),
        lost_ids=lost[:20],
    )


def publish(outcome: Outcome, tmp_path: Path) -> None:
    """Write a scenario's counts: see :func:`write_result`."""
    write_result(outcome.scenario, outcome.to_dict(), tmp_path)


def write_result(name: str, result: dict[str, Any], tmp_path: Path) -> None:
    """Write counts to the test's tmp dir, print them, and merge them into ``CHAOS_RESULTS_FILE``."""
    text = json.dumps(result, sort_keys=True)
    (tmp_path / "chaos-result.json").write_text(text + "\n")
    print(f"chaos result: {name}: {text}")  # shown with -s, and in the report of a failing test
    target = os.environ.get(RESULTS_FILE_VAR)
    if not target:
        return
    path = Path(target)
    results = json.loads(path.read_text()) if path.is_file() and path.stat().st_size else {}
    results[name] = result
    path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")


def assert_nothing_lost(outcome: Outcome) -> None:
    """The acceptance check of every scenario."""
    message = f"jobs lost or unaccounted for: {outcome.summary()}"
    assert outcome.lost == 0, message
    assert outcome.enqueued == outcome.completed + outcome.in_dlq, message
    assert outcome.unexpected == 0, message
