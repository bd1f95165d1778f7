"""The job of the wire contract test, declared outside the test module: pytest's collection reads a test
module's attributes, and reading one of a declared task would build the default app."""

from __future__ import annotations

from storefront_jobs import Priority, priority_task


@priority_task(Priority.HIGH, queue="wire.contract", name="tests.wire.send_receipt")
def send_receipt(order_id: str, *, copies: int = 1) -> None:
    """A job with positional and keyword arguments."""
