"""The demo workload's pure parts: what it sends, how often it fails, and how it is paced."""

from __future__ import annotations

import collections
import itertools
import random
import threading
import time
from typing import Any

import pytest

from storefront_jobs import PermanentFailure, Priority, QueueOverflowError
from storefront_jobs.examples import JOBS
from storefront_jobs.examples.demo import (
    MAX_FLAKY_ATTEMPTS,
    MIX,
    DemoSender,
    Fault,
    JobRequest,
    WorkloadRunner,
    workload,
)
from storefront_jobs.examples.support import FLAKY_HEADER


def _take(n: int, **kwargs: Any) -> list[JobRequest]:
    return list(itertools.islice(workload(random.Random(42), **kwargs), n))


def test_the_same_seed_gives_the_same_workload() -> None:
    assert _take(200, failure_rate=0.2) == _take(200, failure_rate=0.2)


def test_every_job_of_the_mix_exists_and_every_lane_gets_work() -> None:
    assert {job.name for job in MIX} == set(JOBS)
    assert {JOBS[job.name].lane_priority for job in MIX} == set(Priority)


def test_jobs_are_sent_in_the_proportions_of_the_mix() -> None:
    counts = collections.Counter(request.job for request in _take(20_000, failure_rate=0.0))
    total_weight = sum(job.weight for job in MIX)
    for job in MIX:
        assert counts[job.name] / 20_000 == pytest.approx(job.weight / total_weight, abs=0.015)


def test_without_a_failure_rate_nothing_fails() -> None:
    requests = _take(2_000, failure_rate=0.0)
    assert {r.fault for r in requests} == {Fault.NONE}
    assert all(r.headers == {} for r in requests)


def test_the_failure_rate_splits_into_transient_and_bad_input() -> None:
    # Given a 20 % failure rate of which 30 % is bad input, when 20 000 jobs are drawn:
    faults = collections.Counter(r.fault for r in _take(20_000, failure_rate=0.2, bad_input_share=0.3))
    # Then about 6 % carry bad input and 14 % a transient fault.
    assert faults[Fault.BAD_INPUT] / 20_000 == pytest.approx(0.06, abs=0.01)
    assert faults[Fault.TRANSIENT] / 20_000 == pytest.approx(0.14, abs=0.01)


def test_transient_faults_fit_the_retry_budget_so_retrying_jobs_succeed() -> None:
    transient = [r for r in _take(5_000, failure_rate=1.0, bad_input_share=0.0)]
    assert {r.fault for r in transient} == {Fault.TRANSIENT}
    assert {r.flaky_attempts for r in transient} == set(range(1, MAX_FLAKY_ATTEMPTS + 1))
    for request in transient:
        assert request.headers == {FLAKY_HEADER: request.flaky_attempts}
        policy = JOBS[request.job].retry_policy
        # A retrying job outlasts its outage; BULK never retries, so its transient failure is final.
        assert policy.max_retries == 0 or request.flaky_attempts <= policy.max_retries


def test_each_job_accepts_the_good_arguments_and_rejects_the_bad_ones() -> None:
    rng = random.Random(1)
    for job in MIX:
        good = job.make_kwargs(rng, 7)
        JOBS[job.name](**good)  # runs the body in-process; raises if the demo's good input were bad
        with pytest.raises(PermanentFailure):
            JOBS[job.name](**{**good, **job.bad_input})


@pytest.mark.parametrize(
    "kwargs",
    [{"failure_rate": -0.1}, {"failure_rate": 1.5}, {"failure_rate": 0.1, "bad_input_share": 2}],
)
def test_bad_rates_are_refused_at_the_call(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be between 0 and 1"):
        workload(random.Random(), **kwargs)


def test_an_empty_mix_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one job type"):
        workload(random.Random(), failure_rate=0.1, mix=())


class _FakeRedis:
    def __init__(self) -> None:
        self.hashes: dict[str, dict[str, int]] = collections.defaultdict(dict)

    def hincrby(self, key: str, field: str, n: int) -> None:
        self.hashes[key][field] = self.hashes[key].get(field, 0) + n


class _FakeTask:
    def __init__(self, overflow: bool = False) -> None:
        self.overflow = overflow
        self.calls: list[dict[str, Any]] = []

    def apply_async(self, **options: Any) -> Any:
        if self.overflow:
            raise QueueOverflowError("p2.default", 100, 100)
        self.calls.append(options)
        return type("Result", (), {"id": "exec-1"})()


def test_the_sender_counts_sent_and_refused_jobs() -> None:
    client = _FakeRedis()
    ok, full = _FakeTask(), _FakeTask(overflow=True)
    sender = DemoSender({"ok": ok, "full": full}, client)  # type: ignore[dict-item, arg-type]

    assert sender.send(JobRequest("ok", {"a": 1}, "t-1", Fault.TRANSIENT, 2)) == "exec-1"
    assert sender.send(JobRequest("full", {}, "t-1")) is None

    assert ok.calls == [{"kwargs": {"a": 1}, "headers": {FLAKY_HEADER: 2}}]
    assert client.hashes["storefront:demo:progress"] == {"ok:sent": 1, "full:refused": 1}


def test_the_runner_keeps_its_rate_and_survives_send_errors() -> None:
    # Given a runner at 50 jobs/s whose first send fails
    rate_per_s, wanted = 50, 20
    sent: list[float] = []
    failed_once, enough = threading.Event(), threading.Event()

    def send(request: JobRequest) -> None:
        if not failed_once.is_set():
            failed_once.set()
            raise ConnectionError("broker hiccup")
        sent.append(time.monotonic())
        if len(sent) >= wanted:
            enough.set()

    runner = WorkloadRunner(iter(lambda: JobRequest("x", {}, "t"), None), send, rate_per_s=rate_per_s)

    # When it has sent 20 more (however long a loaded machine takes)
    before = time.monotonic()
    runner.start()
    assert enough.wait(60), f"only {len(sent)} sends in 60 s"
    runner.stop()

    # Then it stopped, counted the failure and went on sending
    assert not runner.is_alive()
    assert runner.errors == 1
    assert runner.last_error == "ConnectionError: broker hiccup"
    # And never faster than its rate: the k-th send after the failed one (the 0th) comes no earlier
    # than k intervals after the start. A lower bound only, since a busy machine may make any send
    # late; 1 ms allows for the rounding of clock readings.
    early = [
        (k, round(at - before, 4))
        for k, at in enumerate(sent, start=1)
        if at - before < k / rate_per_s - 0.001
    ]
    assert not early, f"sends ahead of the {rate_per_s}/s schedule (k, seconds after start): {early}"


def test_the_runner_refuses_a_rate_of_zero() -> None:
    with pytest.raises(ValueError, match="rate must be positive"):
        WorkloadRunner(iter(()), print, rate_per_s=0)
