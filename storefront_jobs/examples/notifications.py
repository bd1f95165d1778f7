"""HIGH jobs (started within 5 s, retried 3 times from 1 s): what customers and shop staff see next.

Notifications and inventory updates: not money, but a customer waiting for
a text or a product shown as in stock when it is not are both visible
within seconds.
"""

from __future__ import annotations

from storefront_jobs import Priority, priority_task
from storefront_jobs.examples.support import external_call, require, require_choice, require_int, require_text

CHANNELS = frozenset({"email", "sms", "push"})
TEMPLATES = frozenset({"order_shipped", "order_confirmed", "password_reset", "back_in_stock"})
#: Most units one inventory movement may add or remove.
MAX_DELTA = 100_000


@priority_task(Priority.HIGH, queue="notifications.send")
def send_notification(user_id: str, channel: str, template: str) -> str:
    """Render ``template`` for a user and hand it to the channel's provider; returns the channel."""
    require_text(user_id, "user_id")
    require_choice(channel, "channel", CHANNELS)
    require_choice(template, "template", TEMPLATES)
    external_call(f"{channel}-provider", 0.025)
    return channel


@priority_task(Priority.HIGH, queue="inventory.updates")
def update_inventory(sku: str, delta: int, warehouse: str) -> int:
    """Apply a stock movement of ``delta`` units (negative: sold) to a SKU; returns the delta applied."""
    require_text(sku, "sku")
    require_text(warehouse, "warehouse")
    require_int(delta, "delta", -MAX_DELTA, MAX_DELTA)
    require(delta != 0, "delta must not be 0: an inventory update moves at least one unit")
    external_call("inventory-db", 0.02)
    return delta
