"""Screenshots of Flower's Dead letters pages for docs/flower.md.

``python scripts/flower_screenshots.py [--out docs/images]``: starts a private
redis-server, fills the DLQ with a few dead letters of several tenants,
runs ``storefront-jobs flower`` with an operator and a read-only user, and
drives Debian's Chromium (Playwright) over the list, one entry, a replay
preview, the audit log and the read-only view, saving one PNG per page.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import redis

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from storefront_jobs.deadletter.store import RedisDeadLetterStore  # noqa: E402
from storefront_jobs.embedded import EmbeddedRedis  # noqa: E402
from tests.support.dlq import make_record  # noqa: E402
from tests.support.flower import CHROMIUM_ARGS, running_flower  # noqa: E402

OPERATOR, VIEWER = ("ops", "ops-password"), ("support", "support-password")
TASKS = [
    ("storefront.payments.confirm_payment", "payments.webhooks", "CRITICAL", "ProviderTimeout"),
    ("storefront.reports.export_orders", "reporting.export", "DEFAULT", "WarehouseRefused"),
    ("storefront.notifications.send_receipt", "notifications", "HIGH", "SMTPRecipientsRefused"),
]


def fill(client: redis.Redis) -> None:
    store = RedisDeadLetterStore(client, max_entries=10_000, retention_s=30 * 86_400)
    now = time.time()
    for i in range(18):
        task, queue, priority, error = TASKS[i % len(TASKS)]
        record = make_record(
            f"5d1c{i:04d}-8a2e-4f3b-9c61-0e7b{i:08d}",
            failed_at=now - 3_600 + i * 120,
            task=task,
            queue=queue,
            priority=priority,
            tenant=f"shop-{(i % 4) + 1:02d}",
            error=error,
            reason="exhausted" if priority != "BULK" else "no_retry",
            args=[f"order-{4100 + i}"],
            kwargs={"currency": "EUR", "amount_cents": 1990 + i},
        )
        store.add(record)


def shoot(url: str, out: Path) -> None:
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - only this step needs a browser

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        try:
            ops = browser.new_context(
                http_credentials={"username": OPERATOR[0], "password": OPERATOR[1]},
                viewport={"width": 1400, "height": 900},
            )
            page = ops.new_page()
            page.goto(url + "/dead-letters")
            page.locator("#dlq-counts summary").click()
            page.screenshot(path=str(out / "flower-dead-letters.png"), full_page=True)
            page.goto(url + "/dead-letters?tenant=shop-02")
            page.locator(".dlq-row a").first.click()
            page.screenshot(path=str(out / "flower-dead-letter.png"), full_page=True)
            page.goto(url + "/dead-letters/replay?queue=reporting.export&to_priority=HIGH&rate=20")
            page.screenshot(path=str(out / "flower-replay-preview.png"), full_page=True)
            page.locator("#confirm").check()
            page.locator("#confirm-action").click()
            page.goto(url + "/dead-letters/audit")
            page.screenshot(path=str(out / "flower-audit.png"), full_page=True)
            viewer = browser.new_context(
                http_credentials={"username": VIEWER[0], "password": VIEWER[1]},
                viewport={"width": 1400, "height": 700},
            )
            read_only = viewer.new_page()
            read_only.goto(url + "/dead-letters")
            read_only.screenshot(path=str(out / "flower-read-only.png"))
        finally:
            browser.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "images")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with EmbeddedRedis() as broker:
        fill(redis.Redis.from_url(broker.url))
        users = f"{OPERATOR[0]}:{OPERATOR[1]},{VIEWER[0]}:{VIEWER[1]}"
        scopes = f'{{"{OPERATOR[0]}": ["dlq:read", "dlq:replay", "dlq:delete"], "{VIEWER[0]}": ["dlq:read"]}}'
        with (
            tempfile.TemporaryDirectory() as logs,
            running_flower(
                broker.url, Path(logs) / "flower.log", flower_basic_auth=users, flower_user_scopes=scopes
            ) as flower,
        ):
            shoot(flower.url, args.out)
    for png in sorted(args.out.glob("flower-*.png")):
        print(png.relative_to(REPO_ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
