"""The demo workload of ``storefront-jobs dev``: a steady mix of the example jobs, some of them failing.

Three parts, so that what to send is testable without a broker:

* :func:`workload` (pure): given a random generator, yields the job to send
  next, with its arguments, tenant and any fault to inject;
* :class:`DemoSender`: enqueues one request and counts it (``sent``, or
  ``refused`` when its lane is full);
* :class:`WorkloadRunner`: a thread that sends at a fixed rate until stopped.

Failure model: a share ``failure_rate`` of the jobs fail at least once.

* **transient** (most of them): the first 1 or 2 attempts raise
  ``TransientError`` (:mod:`.support`). CRITICAL to LOW jobs retry on their
  schedule and succeed (2 failures fit every retrying priority's budget);
  BULK jobs never retry, so theirs go to the dead-letter queue with reason
  ``no_retry``, and succeed when replayed.
* **bad input** (``bad_input_share`` of the failures): an argument the job
  rejects, so it fails at once with ``PermanentFailure`` and goes to the
  dead-letter queue with reason ``non_retryable``; replaying it fails again
  until the data is fixed, as the runbook says of data errors.
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import redis

from storefront_jobs.errors import QueueOverflowError
from storefront_jobs.examples import progress
from storefront_jobs.examples.support import FLAKY_HEADER
from storefront_jobs.jobs.task import PriorityTask
from storefront_jobs.jobs.tenancy import tenant

#: Most first attempts a transient fault fails; below every retrying priority's max_retries (3).
MAX_FLAKY_ATTEMPTS = 2
TENANTS = ("t-101", "t-202", "t-303")


class Fault(enum.Enum):
    NONE = "none"
    TRANSIENT = "transient"
    BAD_INPUT = "bad_input"


@dataclasses.dataclass(frozen=True)
class JobType:
    """One example job in the mix: how often it is sent and how to make its arguments."""

    name: str  #: key of storefront_jobs.examples.JOBS
    weight: float
    make_kwargs: Callable[[random.Random, int], dict[str, Any]]
    #: Arguments that replace good ones to make the job reject its input.
    bad_input: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class JobRequest:
    """One job to send: which, with what, for which tenant, and the fault it carries."""

    job: str
    kwargs: Mapping[str, Any]
    tenant_id: str
    fault: Fault = Fault.NONE
    flaky_attempts: int = 0

    @property
    def headers(self) -> dict[str, Any]:
        return {FLAKY_HEADER: self.flaky_attempts} if self.flaky_attempts else {}


def _day(rng: random.Random) -> str:
    return f"2025-01-{rng.randint(1, 31):02d}"


#: The mix: CRITICAL and HIGH dominate, as in a shop; BULK is a trickle of slow batches.
MIX: tuple[JobType, ...] = (
    JobType(
        "process_payment_webhook",
        18,
        lambda rng, n: {
            "event_id": f"evt_{n:06d}",
            "provider": rng.choice(("stripe", "paypal", "adyen")),
            "order_id": f"o-{n}",
            "amount_cents": rng.randint(500, 50_000),
        },
        {"amount_cents": -100},
    ),
    JobType(
        "confirm_order",
        12,
        lambda rng, n: {"order_id": f"o-{n}", "customer_email": f"c{n}@example.com", "total_cents": n * 7},
        {"customer_email": "not-an-address"},
    ),
    JobType(
        "send_notification",
        15,
        lambda rng, n: {
            "user_id": f"u-{rng.randint(1, 500)}",
            "channel": rng.choice(("email", "sms", "push")),
            "template": rng.choice(("order_shipped", "order_confirmed", "back_in_stock")),
        },
        {"channel": "carrier_pigeon"},
    ),
    JobType(
        "update_inventory",
        12,
        lambda rng, n: {
            "sku": f"SKU-{rng.randint(1, 300):04d}",
            "delta": rng.choice((-2, -1, 5, 20)),
            "warehouse": "eu-1",
        },
        {"delta": 0},
    ),
    JobType(
        "generate_report",
        8,
        lambda rng, n: {
            "report_name": "sales_by_period",
            "fmt": rng.choice(("csv", "json")),
            "params": {"start": "2025-01-01", "end": "2025-01-31"},
            "requested_by": "admin@villagecompute.com",
        },
        {"fmt": "xlsx"},
    ),
    JobType(
        "process_email",
        10,
        lambda rng, n: {
            "message_id": f"<m{n}@mail.example.com>",
            "mailbox": "support",
            "size_kb": rng.randint(2, 400),
        },
        {"size_kb": 0},
    ),
    JobType(
        "aggregate_analytics",
        8,
        lambda rng, n: {"metric": rng.choice(("orders", "revenue", "sessions")), "day": _day(rng)},
        {"day": "yesterday"},
    ),
    JobType(
        "warm_cache",
        7,
        lambda rng, n: {"page": rng.choice(("/", "/catalog", "/sale")), "n_keys": rng.randint(10, 200)},
        {"n_keys": -1},
    ),
    JobType(
        "archive_orders",
        5,
        lambda rng, n: {"before": "2024-01-01", "batch_size": rng.choice((500, 1000))},
        {"before": "last year"},
    ),
    JobType(
        "migrate_data",
        5,
        lambda rng, n: {"migration": "0042_split_addresses", "batch": n, "batch_size": 1000},
        {"migration": "split addresses"},
    ),
)


def workload(
    rng: random.Random,
    *,
    failure_rate: float,
    bad_input_share: float = 0.3,
    mix: Sequence[JobType] = MIX,
) -> Iterator[JobRequest]:
    """Requests forever, in the proportions of ``mix``; deterministic for a seeded ``rng``.

    The arguments are checked here, at the call, not at the first ``next()``.
    """
    for name, value in (("failure_rate", failure_rate), ("bad_input_share", bad_input_share)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1, got {value}")
    if not mix or any(job.weight <= 0 for job in mix):
        raise ValueError("the mix needs at least one job type, each with a positive weight")
    return _requests(rng, failure_rate, bad_input_share, tuple(mix))


def _requests(
    rng: random.Random, failure_rate: float, bad_input_share: float, mix: tuple[JobType, ...]
) -> Iterator[JobRequest]:
    weights = [job.weight for job in mix]
    for n in itertools.count(1):
        job = rng.choices(mix, weights)[0]
        kwargs = job.make_kwargs(rng, n)
        tenant_id = rng.choice(TENANTS)
        if rng.random() >= failure_rate:
            yield JobRequest(job.name, kwargs, tenant_id)
        elif rng.random() < bad_input_share:
            yield JobRequest(job.name, {**kwargs, **job.bad_input}, tenant_id, Fault.BAD_INPUT)
        else:
            flaky = rng.randint(1, MAX_FLAKY_ATTEMPTS)
            yield JobRequest(job.name, kwargs, tenant_id, Fault.TRANSIENT, flaky)


class DemoSender:
    """Enqueues requests as a storefront producer would, and counts each one."""

    def __init__(self, jobs: Mapping[str, PriorityTask], client: redis.Redis[bytes]) -> None:
        self._jobs = jobs
        self._client = client

    def send(self, request: JobRequest) -> str | None:
        """Enqueue ``request``; its execution id, or ``None`` when its lane was full."""
        task = self._jobs[request.job]
        try:
            with tenant(request.tenant_id):
                result = task.apply_async(kwargs=dict(request.kwargs), headers=request.headers)
        except QueueOverflowError:
            # Backpressure working as designed: the demo drops the job and shows the refusal.
            progress.record(self._client, request.job, "refused")
            return None
        progress.record(self._client, request.job, "sent")
        return str(result.id)


class WorkloadRunner(threading.Thread):
    """Sends ``requests`` at ``rate_per_s`` until :meth:`stop`; never bursts to catch up."""

    def __init__(
        self, requests: Iterator[JobRequest], send: Callable[[JobRequest], object], rate_per_s: float
    ) -> None:
        if rate_per_s <= 0:
            raise ValueError(f"rate must be positive, got {rate_per_s}")
        # A daemon, so that a send stuck on a hung broker cannot keep the process alive.
        super().__init__(name="storefront-demo-workload", daemon=True)
        self._requests = requests
        self._send = send
        self._interval_s = 1.0 / rate_per_s
        self._stopping = threading.Event()
        self.errors = 0
        self.last_error: str | None = None

    def run(self) -> None:
        next_at = time.monotonic()
        while not self._stopping.is_set():
            try:
                self._send(next(self._requests))
            except Exception as exc:  # a broker hiccup must not end the demo; it is shown
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
            next_at += self._interval_s
            now = time.monotonic()
            if next_at < now - 1.0:
                next_at = now  # fell behind (slow broker): resume the rate, do not burst
            self._stopping.wait(max(0.0, next_at - now))

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stopping.set()
        if self.is_alive():
            self.join(timeout_s)
