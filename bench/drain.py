"""Phase 2: how fast a pool processes no-op jobs, storefront against bare Celery.

Jobs are pre-loaded, then moved aside (RENAME to ``bench:staged:<queue>``) while
the pool starts; once it answers a ping, one RENAME puts them back, which wakes
the pool's BRPOP at once. The clock runs from that RENAME to "list empty and
nothing unacknowledged": worker-ready to all done, start-up left out.

Two ways, because the machines are shared and noisy:

* **one after the other** (the goal's measure): each pool alone drains ``--jobs``.
* **side by side** (a cross-check): a bare pool and a storefront pool, both ready,
  get their jobs in one MULTI and drain at the same time, so any noise hits both
  alike; each one's rate is counted until the first runs dry. They share the
  CPUs, so the ratio is one of cost per job, not of speed alone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bench.harness import (
    POLL_S,
    QUIET_POLL_S,
    UNACKED,
    Run,
    command_costs,
    reset_broker,
    round_order,
    wait_for,
)
from bench.procs import Worker, processed_count, start_worker, wait_ready


@dataclass(frozen=True)
class DrainCase:
    kind: str  # producer and worker kind
    lanes: str  # storefront --priorities, or bare -Q ('' = Celery's default queue)
    queue: str  # the Redis list the no-op jobs wait in
    settings: tuple[tuple[str, str], ...] = ()
    pool: str = "prefork"
    #: The producer command that pre-loads the jobs, and how many no-op calls one message carries.
    preload: str = "enqueue"
    items_per_message: int = 1

    def messages(self, n: int) -> int:
        return -(-n // self.items_per_message)


DRAIN_CASES: dict[str, DrainCase] = {
    "bare": DrainCase("bare", "", "celery"),
    "storefront": DrainCase("storefront", "DEFAULT", "p2.default"),
    # For information: the same pool without the two INFO lines Celery logs per job.
    "storefront_log_warning": DrainCase("storefront", "DEFAULT", "p2.default", (("log_level", "WARNING"),)),
    # For information: a pool on every lane gets the strict settings (prefetch disabled).
    "storefront_all_lanes": DrainCase("storefront", "all", "p2.default"),
}


STAGED = "bench:staged:"


def _preload(run: Run, case: DrainCase, n: int) -> None:
    """Publish ``n`` no-op jobs and move them out of the pool's sight."""
    run.producers[case.kind].call(case.preload, n=n)
    if (depth := run.client.llen(case.queue)) != case.messages(n):
        raise RuntimeError(f"pre-load left {depth} messages in {case.queue}, expected {case.messages(n)}")
    run.client.rename(case.queue, STAGED + case.queue)  # type: ignore[no-untyped-call]  # redis stubs


def _release(run: Run, cases: list[DrainCase]) -> float:
    """Give every pool its jobs in one transaction; the perf_counter time it happened."""
    pipe = run.client.pipeline(transaction=True)
    for case in cases:
        pipe.rename(STAGED + case.queue, case.queue)
    pipe.execute()
    return time.perf_counter()


def _start(run: Run, case: DrainCase) -> Worker:
    return start_worker(
        run.children, run.url, case.kind, case.lanes, settings=dict(case.settings), pool=case.pool
    )


def _check_alive(worker: Worker) -> None:
    if worker.proc.poll() is not None:
        raise RuntimeError(f"worker exited with {worker.proc.returncode}:\n{worker.log_tail()}")


@dataclass(frozen=True)
class DrainSample:
    rate: float  # jobs per second, wall clock
    worker_cpu_us: float  # CPU microseconds per job: pool main process + pool processes
    redis_cpu_us: float  # CPU microseconds per job of the (private) redis-server
    #: With ``count_commands``: Redis's calls and microseconds per command, from release to drained.
    commands: dict[str, tuple[int, float]] | None = None


def redis_cpu_s(run: Run) -> float:
    info = run.client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def drain_once(
    run: Run, case: DrainCase, n: int | None = None, *, count_commands: bool = False
) -> DrainSample:
    """One pool, alone, draining ``n`` (default ``--jobs``) pre-loaded no-op calls; rates are per call.

    ``count_commands``: reset Redis's command statistics at the release and read
    them once drained, polling slowly so that the poll hardly counts.
    """
    n = run.args.jobs if n is None else n
    assert n is not None
    messages = case.messages(n)
    reset_broker(run.client)
    _preload(run, case, n)
    worker = _start(run, case)
    try:

        def drained() -> bool:
            _check_alive(worker)
            pipe = run.client.pipeline(transaction=False)
            pipe.llen(case.queue)
            pipe.hlen(UNACKED)
            return not any(pipe.execute())

        wait_ready(run.control, worker)
        if count_commands:
            run.client.config_resetstat()
        cpu0, redis0 = worker.cpu_s(), redis_cpu_s(run)
        t0 = _release(run, [case])
        t1 = wait_for(drained, 600, f"{case.queue} to drain", QUIET_POLL_S if count_commands else POLL_S)
        commands = command_costs(run.client) if count_commands else None
        done = processed_count(run.control, worker)
        if done is not None and done < messages:
            # kombu records a message in `unacked` just after BRPOP pops it: for an instant
            # the last one is in neither place. Rare; the clock then stops at the count.
            t1 = wait_for(lambda: (processed_count(run.control, worker) or 0) >= messages, 30, "the last job")
            done = processed_count(run.control, worker)
        cpu1, redis1 = worker.cpu_s(), redis_cpu_s(run)
        if done is not None and done != messages:  # a lost (or doubled) job fails the run
            raise RuntimeError(f"worker reports {done} messages processed, expected {messages}")
    finally:
        worker.stop()
    return DrainSample(n / (t1 - t0), (cpu1 - cpu0) / n * 1e6, (redis1 - redis0) / n * 1e6, commands)


def bench_drain(run: Run) -> dict[str, dict[str, list[float]]]:
    """Per case: jobs/s, worker CPU us/job and Redis CPU us/job, one sample per round."""
    labels = list(DRAIN_CASES)
    out: dict[str, dict[str, list[float]]] = {
        metric: {label: [] for label in labels} for metric in ("rate", "worker_cpu_us", "redis_cpu_us")
    }
    for r in range(run.args.rounds):
        for label in round_order(labels, r):
            sample = drain_once(run, DRAIN_CASES[label])
            for metric, values in out.items():
                values[label].append(getattr(sample, metric))
        shown = ", ".join(
            f"{label} {out['rate'][label][-1]:.0f}/s {out['worker_cpu_us'][label][-1]:.0f} us"
            for label in labels
        )
        print(f"  drain round {r + 1}: {shown}", flush=True)
    return out


def side_by_side_once(run: Run, labels: list[str]) -> dict[str, float]:
    """Jobs per second of each pool while all of them drain at once."""
    n: int = run.args.jobs
    cases = [DRAIN_CASES[label] for label in labels]
    reset_broker(run.client)
    for case in cases:
        _preload(run, case, n)
    workers = [_start(run, case) for case in cases]
    samples: list[tuple[float, list[int]]] = []
    try:
        for worker in workers:
            wait_ready(run.control, worker)
        t0 = _release(run, cases)
        deadline = time.perf_counter() + 600
        while not samples or min(samples[-1][1]) > 0:  # until the first pool runs dry
            for worker in workers:
                _check_alive(worker)
            if time.perf_counter() > deadline:
                raise TimeoutError("side-by-side drain took over 600 s")
            pipe = run.client.pipeline(transaction=False)
            for case in cases:
                pipe.llen(case.queue)
            depths = [int(d) for d in pipe.execute()]
            samples.append((time.perf_counter(), depths))
            time.sleep(POLL_S)
    finally:
        for worker in workers:
            worker.stop()
        reset_broker(run.client)
    t1, left = samples[-1]
    return {label: (n - left[i]) / (t1 - t0) for i, label in enumerate(labels)}


def bench_side_by_side(run: Run) -> dict[str, list[float]]:
    labels = ["bare", "storefront"]
    rates: dict[str, list[float]] = {label: [] for label in labels}
    for r in range(run.args.rounds):
        for label, rate in side_by_side_once(run, round_order(labels, r)).items():
            rates[label].append(rate)
        bare, ours = rates["bare"][-1], rates["storefront"][-1]
        print(f"  side by side round {r + 1}: bare {bare:.0f}/s, ours {ours:.0f}/s ({ours / bare:.2f})")
    return rates
