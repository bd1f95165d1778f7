"""CRITICAL jobs (started within 1 s, retried 5 times from 0.5 s): money and orders.

The runbook's top lane: a payment provider's webhook, and the order
confirmation a customer waits for. Both are short and retry fast, so a
provider's brief timeout costs the customer about a second, not a lost order.
"""

from __future__ import annotations

from storefront_jobs import Priority, priority_task
from storefront_jobs.examples.support import (
    external_call,
    require,
    require_choice,
    require_email,
    require_int,
    require_text,
)

PROVIDERS = frozenset({"stripe", "paypal", "adyen"})
#: Largest single payment the examples accept, in cents (a sanity bound, not a business rule).
MAX_AMOUNT_CENTS = 10_000_000


@priority_task(Priority.CRITICAL, queue="payments.webhooks")
def process_payment_webhook(event_id: str, provider: str, order_id: str, amount_cents: int) -> str:
    """Apply a provider's "payment captured" event to an order; returns the payment status."""
    require_text(event_id, "event_id")
    require_choice(provider, "provider", PROVIDERS)
    require_text(order_id, "order_id")
    require_int(amount_cents, "amount_cents", 1, MAX_AMOUNT_CENTS)
    external_call(provider, 0.015)
    return "captured"


@priority_task(Priority.CRITICAL, queue="orders.confirmations")
def confirm_order(order_id: str, customer_email: str, total_cents: int) -> str:
    """Mark a paid order confirmed and queue the customer's confirmation; returns the order state."""
    require_text(order_id, "order_id")
    require_email(customer_email, "customer_email")
    require(
        isinstance(total_cents, int) and not isinstance(total_cents, bool) and total_cents >= 0,
        f"total_cents must be a non-negative integer, got {total_cents!r}",
    )
    external_call("orders-db", 0.01)
    return "confirmed"
