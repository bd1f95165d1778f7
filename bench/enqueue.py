"""Phase 1: enqueue rate of storefront ``delay`` against bare ``apply_async``, and its cost split."""

from __future__ import annotations

from bench.harness import Run, reset_broker, round_order

#: label -> (producer, command). The first two are the comparison; the rest split storefront's cost.
ENQUEUE_OPS: dict[str, tuple[str, str]] = {
    "bare": ("bare", "enqueue"),
    "storefront": ("storefront", "enqueue"),
    "storefront_ungated": ("storefront", "enqueue_ungated"),
    "capacity_check": ("storefront", "admit"),
    "redis_ping": ("storefront", "ping"),
}


def bench_enqueue(run: Run) -> dict[str, list[float]]:
    """Calls per second of each ENQUEUE_OPS entry, one sample per round."""
    n = run.args.enqueue_jobs
    labels = list(ENQUEUE_OPS)
    for label in labels:  # warm-up: connections, queue declarations, the Lua script's SHA
        kind, op = ENQUEUE_OPS[label]
        run.producers[kind].call(op, n=200)
    rates: dict[str, list[float]] = {label: [] for label in labels}
    for r in range(run.args.enqueue_rounds):
        for label in round_order(labels, r):
            # Empty lanes every sample: the check's LLENs and the pushes then see the same state.
            reset_broker(run.client)
            kind, op = ENQUEUE_OPS[label]
            rates[label].append(n / run.producers[kind].call(op, n=n))
        bare, ours = rates["bare"][-1], rates["storefront"][-1]
        print(
            f"  enqueue round {r + 1}: bare {bare:.0f}/s, ours {ours:.0f}/s ({ours / bare:.2f})", flush=True
        )
    reset_broker(run.client)
    return rates
