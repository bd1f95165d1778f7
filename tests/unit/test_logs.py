from __future__ import annotations

import io
import json
import logging

from storefront_jobs.logs import JsonFormatter, configure_logging, reset_job_context, set_job_context


def _emit(logger: logging.Logger, stream: io.StringIO, *args: object, **kwargs: object) -> dict[str, object]:
    stream.truncate(0)
    stream.seek(0)
    logger.log(*args, **kwargs)  # type: ignore[arg-type]
    line: dict[str, object] = json.loads(stream.getvalue().strip().splitlines()[-1])
    return line


def test_lines_carry_the_job_context_and_extras() -> None:
    stream = io.StringIO()
    configure_logging("DEBUG", "json", stream)
    logger = logging.getLogger("t.logs")
    token = set_job_context({"executionId": "e-1", "task": "t", "tenantId": "t-42", "priority": "HIGH"})
    try:
        line = _emit(logger, stream, logging.INFO, "Job failed", extra={"lastError": "ValueError: x"})
    finally:
        reset_job_context(token)
    assert line["message"] == "Job failed"
    assert line["level"] == "INFO"
    assert line["executionId"] == "e-1"
    assert line["tenantId"] == "t-42"
    assert line["lastError"] == "ValueError: x"


def test_failures_carry_the_stack_trace() -> None:
    stream = io.StringIO()
    configure_logging("INFO", "json", stream)
    logger = logging.getLogger("t.logs")
    try:
        raise ValueError("no such order")
    except ValueError:
        line = _emit(logger, stream, logging.ERROR, "Job failed", exc_info=True)
    assert "ValueError: no such order" in str(line["stackTrace"])
    assert "executionId" not in line


def test_values_that_are_not_json_are_rendered_as_text() -> None:
    record = logging.makeLogRecord({"msg": "x", "levelname": "INFO", "args": None, "when": object()})
    assert json.loads(JsonFormatter().format(record))["when"].startswith("<object")
