"""The Lua scripts' loader, and the shared pieces of the capacity rule, on a real Redis."""

from __future__ import annotations

import glob
import tomllib
from pathlib import Path

import pytest
import redis

from storefront_jobs.broker import keys, scripts
from storefront_jobs.broker.admission import CapacityGate
from storefront_jobs.errors import QueueOverflowError
from storefront_jobs.jobs.priorities import Priority
from storefront_jobs.settings import load_settings

FOLDER = Path(scripts.__file__).parent
LUA_FILES = sorted(path.relative_to(FOLDER).as_posix() for path in FOLDER.rglob("*.lua"))
PIECES = [name for name in LUA_FILES if "lib/" in name]
LOADED = {value.name: value for value in vars(scripts).values() if isinstance(value, scripts.Script)}


def test_every_script_of_the_folder_is_loaded_and_every_piece_is_included_somewhere() -> None:
    assert sorted(f"{name}.lua" for name in LOADED) == [name for name in LUA_FILES if name not in PIECES]
    unused = [piece for piece in PIECES if not any(f"-- include: {piece}" in s.text for s in LOADED.values())]
    assert not unused


def test_every_script_opens_with_its_keys_argv_and_reply() -> None:
    for name in LOADED:
        head = (FOLDER / f"{name}.lua").read_text().split("\n-- include:")[0]
        assert all(f"\n-- {part}" in head for part in ("KEYS:", "ARGV:", "Returns")), name


def test_a_wheel_ships_every_lua_file() -> None:
    pyproject = tomllib.loads((FOLDER.parents[2] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["storefront_jobs"]
    # setuptools expands package-data patterns as glob does, recursively, from the package.
    package = FOLDER.parents[1]
    shipped = {name for p in patterns for name in glob.glob(p, root_dir=package, recursive=True)}
    assert {f"broker/scripts/{name}" for name in LUA_FILES} <= shipped


def test_includes_come_first_each_once_and_a_cycle_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    files = {
        "main.lua": "-- include: lib/b.lua\n-- include: lib/a.lua\nreturn b() + a()",
        "lib/a.lua": "local function a() return 1 end",
        "lib/b.lua": "-- include: lib/a.lua\nlocal function b() return a() end",
        "loop.lua": "-- include: lib/loop.lua",
        "lib/loop.lua": "-- include: loop.lua",
    }
    monkeypatch.setattr(scripts, "_read", files.__getitem__)
    assert scripts.compose("main.lua").split("\n") == [
        "local function a() return 1 end",
        "-- include: lib/a.lua",
        "local function b() return a() end",
        "-- include: lib/b.lua",
        "-- include: lib/a.lua",
        "return b() + a()",
    ]
    with pytest.raises(ValueError, match=r"cycle: loop.lua -> lib/loop.lua -> loop.lua"):
        scripts.compose("loop.lua")


def test_a_script_redis_forgot_is_sent_again_with_its_text(redis_client: redis.Redis) -> None:
    # Given a Redis that restarted (its script cache is empty)
    redis_client.rpush("p2.default", "a", "b")
    redis_client.script_flush()
    # When the script is called, then it runs, and Redis knows it again for the next EVALSHA
    assert scripts.DEPTH(redis_client, keys.lane_lists("p2.default")) == 2
    assert redis_client.script_exists(scripts.DEPTH.sha) == [True]


def test_in_a_pipeline_a_script_is_queued_with_its_text(redis_client: redis.Redis) -> None:
    redis_client.script_flush()
    pipe = redis_client.pipeline(transaction=True)
    scripts.RING(pipe, [keys.doorbell("p2.default")], [keys.DOORBELL_LAST_INDEX])
    scripts.RING(pipe, [keys.doorbell("p2.default")], [keys.DOORBELL_LAST_INDEX])
    pipe.execute()
    assert redis_client.lrange(keys.doorbell("p2.default"), 0, -1) == [b"1", b"1"]


def test_a_raw_command_names_the_script_by_sha_while_redis_has_it() -> None:
    assert scripts.FETCH.command(["k"], [1]) == ["EVALSHA", scripts.FETCH.sha, 1, "k", 1]
    assert scripts.FETCH.command(["k"], [1], cached=False) == ["EVAL", scripts.FETCH.text, 1, "k", 1]


def test_a_doorbell_keeps_only_its_newest_tokens(redis_client: redis.Redis) -> None:
    bell = keys.doorbell("p2.default")
    for _ in range(3):
        scripts.RING(redis_client, [bell], [1])
    assert redis_client.llen(bell) == 2


@pytest.fixture
def gate(redis_client: redis.Redis) -> CapacityGate:
    return CapacityGate(redis_client, load_settings(queue_capacity={"default": 3}))


def test_the_gate_counts_every_sub_list_and_refuses_a_full_lane_counting_the_refusal(
    gate: CapacityGate, redis_client: redis.Redis
) -> None:
    # Given a lane with one plain and one prioritised message
    redis_client.lpush("p2.default", "plain")
    redis_client.lpush(f"p2.default{keys.KOMBU_SEP}6", "prioritised")
    assert gate.depth(Priority.DEFAULT) == 2
    assert gate.room(Priority.DEFAULT) == 1
    # When one job is admitted, it is counted; the lane is now full for the next
    assert gate.admit(Priority.DEFAULT, job_queue="reports", task="t") == 2
    redis_client.lpush("p2.default", "admitted")
    with pytest.raises(QueueOverflowError):
        gate.admit(Priority.DEFAULT)
    with pytest.raises(QueueOverflowError):
        gate.room(Priority.DEFAULT)
    assert gate.overflow_counts()[Priority.DEFAULT] == 2
    assert list(redis_client.hgetall(keys.ENQUEUED_COUNTS).values()) == [b"1"]
