from __future__ import annotations

from types import SimpleNamespace

from storefront_jobs.jobs import envelope


def test_the_first_publish_stamps_time_tenant_priority_and_attempt() -> None:
    headers: dict[str, object] = {"retries": 0}
    envelope.stamp(headers, lane="p0.critical", now_s=100.0, tenant_id="t-42")
    assert headers == {
        "retries": 0,
        "enqueuedAt": 100.0,
        "tenantId": "t-42",
        "priority": "CRITICAL",
        "attempt": 1,
    }


def test_a_retry_keeps_the_enqueue_time_and_tenant_but_counts_the_attempt() -> None:
    headers: dict[str, object] = {"retries": 2, "enqueuedAt": 100.0, "tenantId": "t-42"}
    envelope.stamp(headers, lane="p1.high", now_s=250.0, tenant_id="t-other")
    assert headers["enqueuedAt"] == 100.0
    assert headers["tenantId"] == "t-42"
    assert headers["attempt"] == 3


def test_a_foreign_queue_gets_no_priority_header() -> None:
    headers: dict[str, object] = {}
    envelope.stamp(headers, lane="celery", now_s=1.0, tenant_id=None)
    assert "priority" not in headers
    assert "tenantId" not in headers


def test_headers_are_read_from_either_place_celery_puts_them() -> None:
    in_headers = SimpleNamespace(headers={"tenantId": "t-1"}, tenantId=None)
    as_attribute = SimpleNamespace(headers=None, tenantId="t-2")
    assert envelope.read(in_headers, "tenantId") == "t-1"
    assert envelope.read(as_attribute, "tenantId") == "t-2"
    assert envelope.read(SimpleNamespace(), "tenantId", "none") == "none"
    assert envelope.all_headers(as_attribute) == {"tenantId": "t-2"}
