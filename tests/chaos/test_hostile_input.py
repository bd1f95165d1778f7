"""Hostile input: arguments that cannot be sent, messages that are not jobs, malformed DLQ imports and
replay requests. Each is refused clearly or kept, and changes nothing else."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner
from fastapi.testclient import TestClient

from storefront_jobs import (
    FailureReason,
    PayloadError,
    Priority,
    create_app,
    load_settings,
    priority_task,
)
from storefront_jobs.admin.app import create_admin_app
from storefront_jobs.admin.limits import MAX_BODY_BYTES
from storefront_jobs.broker import keys
from storefront_jobs.cli import main
from storefront_jobs.cli.dlq import EXIT_ERROR, EXIT_MALFORMED
from storefront_jobs.deadletter import Filter, ReplayRequest, replayer_for, store_for
from storefront_jobs.deadletter.store import iter_json
from tests.integration import jobs
from tests.support.dlq import make_record
from tests.support.workers import WorkerFactory, wait_until

pytestmark = pytest.mark.chaos

LANE = "p2.default"


def lane_state(client: redis.Redis) -> tuple[int, int, dict[bytes, bytes]]:
    return int(client.llen(LANE)), int(client.hlen("unacked")), client.hgetall(keys.ENQUEUED_COUNTS)


# --- arguments that cannot be sent ----------------------------------------------------------------


@pytest.mark.parametrize("argument", [object(), {1, 2}, lambda: None], ids=["object", "set", "function"])
def test_unserializable_arguments_fail_at_enqueue_and_send_nothing(
    app: Any, redis_client: redis.Redis, argument: Any
) -> None:
    with pytest.raises(PayloadError, match="not JSON-serializable"):
        jobs.noop.delay(argument)
    assert lane_state(redis_client) == (0, 0, {})


def test_an_oversized_payload_is_refused_with_a_clear_error(app: Any, redis_client: redis.Redis) -> None:
    limit = app.storefront_settings.max_payload_bytes
    with pytest.raises(PayloadError, match=r"over the limit of 1048576 .*MAX_PAYLOAD_BYTES") as refused:
        jobs.noop.delay("x" * limit)
    assert "pass a reference" in str(refused.value)
    assert lane_state(redis_client) == (0, 0, {})
    # Just under the limit (the arguments' JSON is `[["x..."], {}]`) is accepted
    jobs.noop.delay("x" * (limit - 20))
    assert redis_client.llen(LANE) == 1


def test_the_payload_limit_is_a_setting(redis_client: redis.Redis) -> None:
    small = create_app(load_settings(max_payload_bytes=100), main="small-payloads")

    @priority_task(Priority.DEFAULT, queue="hostile.small", app=small, name="tests.hostile.small")
    def small_job(text: str) -> None:
        return None

    small_job.delay("x" * 50)
    with pytest.raises(PayloadError, match="over the limit of 100 "):
        small_job.delay("x" * 100)
    assert redis_client.llen(LANE) == 1


# --- messages that are not jobs -------------------------------------------------------------------


def envelope(body: bytes, content_type: str, headers: dict[str, Any]) -> bytes:
    """A kombu message for the DEFAULT lane, as kombu's Redis transport stores it."""
    return json.dumps(
        {
            "body": base64.b64encode(body).decode(),
            "content-encoding": "utf-8",
            "content-type": content_type,
            "headers": headers,
            "properties": {
                "body_encoding": "base64",
                "delivery_tag": str(uuid.uuid4()),
                "delivery_info": {"exchange": LANE, "routing_key": LANE},
                "priority": 0,
            },
        }
    ).encode()


GARBAGE = b"\xff\xfe\x00 not a message at all"
HOSTILE = {
    "binary garbage": (GARBAGE, "list-item", "NotAKombuMessage"),
    "JSON, not a kombu message": (b'{"hello": "world"}', "list-item", "NotAKombuMessage"),
    "pickle (never accepted)": (
        envelope(b"\x80\x04cos\nsystem\n.", "application/x-python-serialize", {"task": jobs.noop.name}),
        "body",
        "ContentDisallowed",
    ),
    "a body that is not JSON": (
        envelope(b"{not json", "application/json", {"task": jobs.noop.name, "id": "j"}),
        "body",
        "DecodeError",
    ),
    "no task name": (envelope(b"[[], {}, {}]", "application/json", {"id": "n"}), "body", "NotATaskMessage"),
}  # fmt: skip


def test_undecodable_messages_land_in_the_dlq_and_the_worker_keeps_working(
    app: Any, workers: WorkerFactory, redis_client: redis.Redis
) -> None:
    # Given a worker on the DEFAULT lane
    worker = workers.start("DEFAULT", concurrency=1)
    store = store_for(app)

    # When things that are not jobs are pushed into its lane, then a real job
    for item, _source, _error in HOSTILE.values():
        redis_client.lpush(LANE, item)
    after = jobs.dlq_records_run.delay(1)

    # Then each is a DLQ entry (reason undecodable) holding the raw message, the worker is alive and
    # runs the real job, and nothing is left in the lane or held
    wait_until(lambda: redis_client.llen("test:runs") == 1)
    wait_until(lambda: store.count(Filter(reason=FailureReason.UNDECODABLE)) == len(HOSTILE))
    assert worker.proc.poll() is None
    assert json.loads(redis_client.lindex("test:runs", 0))["id"] == after.id
    wait_until(lambda: lane_state(redis_client)[:2] == (0, 0))
    records = store.page(Filter(reason=FailureReason.UNDECODABLE), None, 100).records()
    found = {(r.raw_message.source, r.last_error.type) for r in records if r.raw_message is not None}
    assert found == {(source, error) for _item, source, error in HOSTILE.values()}
    garbage = next(r for r in records if r.last_error.type == "NotAKombuMessage" and r.raw_message
                   and r.raw_message.body_encoding == "base64")  # fmt: skip
    assert garbage.raw_message is not None
    assert base64.b64decode(garbage.raw_message.body) == GARBAGE
    assert (garbage.priority.name, garbage.queue, garbage.worker) == ("DEFAULT", LANE, worker.nodename)
    pickled = next(r for r in records if r.last_error.type == "ContentDisallowed")
    assert pickled.task == jobs.noop.name
    assert pickled.raw_message is not None
    assert pickled.raw_message.content_type == "application/x-python-serialize"
    assert "Undecodable message moved to DLQ" in worker.log_text()

    # And replay refuses them clearly, sends nothing and keeps them
    ids = [r.execution_id for r in records]
    undecodable = Filter(reason=FailureReason.UNDECODABLE)
    with replayer_for(app) as replayer:
        report = replayer.replay(ReplayRequest(execution_ids=tuple(ids)), actor="test", source="test")
        by_filter = replayer.replay(ReplayRequest(filter=undecodable), actor="test", source="test")
    assert (report.replayed_count, by_filter.replayed_count) == (0, 0)
    assert set(report.not_replayable) == set(ids) == set(by_filter.not_replayable)
    assert "raw message" in next(iter(report.not_replayable.values()))
    cli = CliRunner().invoke(main, ["dlq", "replay", ids[0], "--yes"], catch_exceptions=False)
    assert cli.exit_code == EXIT_ERROR
    assert f"not replayable: {ids[0]}" in cli.stderr
    with TestClient(create_admin_app(admin_app(app)), raise_server_exceptions=False) as client:
        refused = client.post("/admin/jobs/replay", json={"executionId": ids[0]}, headers=ADMIN_HEADERS)
    assert refused.status_code == 422, refused.text
    assert "undecodable" in refused.json()["detail"]
    assert store.count(Filter(reason=FailureReason.UNDECODABLE)) == len(HOSTILE)
    assert redis_client.llen(LANE) == 0


def test_a_job_no_worker_knows_is_kept_as_a_replayable_dead_letter(
    app: Any, workers: WorkerFactory, redis_client: redis.Redis
) -> None:
    # Given a worker on the DEFAULT lane, and a producer that names a task the worker has no code for
    # (the producer was deployed first)
    worker = workers.start("DEFAULT", concurrency=1)
    store = store_for(app)
    sent = app.send_task("shop.not_deployed_yet", ("order-7",), {"amount": 12}, queue=LANE)

    # When the worker receives it, then it is in the DLQ (not dropped, as Celery alone would), with
    # its arguments, and the worker carries on
    wait_until(lambda: store.get(sent.id) is not None)
    record = store.get(sent.id)
    assert record is not None
    assert (record.reason.value, record.last_error.type, record.task) == (
        "rejected", "NotRegistered", "shop.not_deployed_yet"
    )  # fmt: skip
    assert (record.payload.args, record.payload.kwargs) == (["order-7"], {"amount": 12})
    wait_until(lambda: lane_state(redis_client)[:2] == (0, 0))
    jobs.dlq_records_run.delay(2)
    wait_until(lambda: redis_client.llen("test:runs") == 1)
    assert worker.proc.poll() is None

    # And it can be replayed once the code is out (here: to a lane no worker consumes, to look at it)
    with replayer_for(app) as replayer:
        report = replayer.replay(
            ReplayRequest(execution_ids=(sent.id,), priority=Priority.LOW), actor="test", source="test"
        )
    assert report.replayed_count == 1
    replayed = json.loads(redis_client.lindex("p3.low", 0))
    assert replayed["headers"]["task"] == "shop.not_deployed_yet"


# --- malformed DLQ imports and replay requests ----------------------------------------------------

ADMIN_TOKEN = "hostile-admin-token"
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def admin_app(app: Any) -> Any:
    return create_app(
        load_settings(broker_url=app.conf.broker_url, admin_tokens={ADMIN_TOKEN: ["dlq:read", "dlq:replay"]}),
        main="hostile-admin",
    )


def snapshot(client: redis.Redis, store: Any) -> tuple[Any, ...]:
    """Everything a DLQ operation could change: entries, stats, audit log, lanes, enqueue counters."""
    return (
        list(iter_json(store, Filter())),
        client.hgetall(keys.DLQ_STATS),
        client.zrange(keys.DLQ_AUDIT, 0, -1),
        [client.llen(lane) for lane in keys.LANES.values()],
        client.hgetall(keys.ENQUEUED_COUNTS),
    )


@pytest.fixture
def filled_store(app: Any, redis_client: redis.Redis) -> Any:
    store = store_for(app)
    for i in range(5):
        store.add(make_record(f"e-{i}", failed_at=1_800_000_000.0 + i))
    return store


def test_a_malformed_import_changes_nothing(
    filled_store: Any, redis_client: redis.Redis, tmp_path: Path
) -> None:
    good = make_record("new-1").to_json()
    files = {
        "not JSON at all": "this is not json\n",
        "a JSON object, not records": '{"executionId": "x"}',
        "one good line, then a bad one": good + "\n" + '{"executionId": "new-2", "task": 3}\n',
        "a truncated array": "[" + good + ", {",
        "a wrong type in a good-looking record": good.replace('"attemptNumber":4', '"attemptNumber":"four"'),
        "binary": "\x00\x01\x02",
    }
    before = snapshot(redis_client, filled_store)
    for name, text in files.items():
        path = tmp_path / f"{len(name)}.jsonl"
        path.write_text(text)
        result = CliRunner().invoke(main, ["dlq", "import", str(path)], catch_exceptions=False)
        assert result.exit_code == EXIT_MALFORMED, (name, result.output, result.stderr)
        assert snapshot(redis_client, filled_store) == before, name


def test_a_malformed_replay_request_changes_nothing(
    app: Any, filled_store: Any, redis_client: redis.Redis
) -> None:
    bodies: list[dict[str, Any]] = [
        {"content": b"{not json", "headers": {"Content-Type": "application/json"}},
        {"json": []},
        {"json": {"executionIds": []}},
        {"json": {"executionIds": "e-1"}},
        {"json": {"executionIds": [1, 2]}},
        {"json": {"executionId": "e-1", "filter": {"queue": "all"}}},
        {"json": {"filter": {"queue": "all", "colour": "red"}}},
        {"json": {"filter": {"since": "yesterday-ish"}}},
        {"json": {"executionId": "e-1", "toPriority": "URGENT"}},
        {"json": {"executionId": "e-1", "limit": -1}},
        {"json": {"executionId": "x" * 201}},
        {"json": {"executionIds": [f"id-{n}" for n in range(10_001)]}},
        {"content": b"x" * (MAX_BODY_BYTES + 1), "headers": {"Content-Type": "application/json"}},
    ]
    before = snapshot(redis_client, filled_store)
    with TestClient(create_admin_app(admin_app(app)), raise_server_exceptions=False) as client:
        for body in bodies:
            headers = {**ADMIN_HEADERS, **body.pop("headers", {})}
            answer = client.post("/admin/jobs/replay", headers=headers, **body)
            assert 400 <= answer.status_code < 500, (body, answer.status_code, answer.text[:300])
            assert answer.headers["content-type"] == "application/problem+json", body
            assert snapshot(redis_client, filled_store) == before, body
