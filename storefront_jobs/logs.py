"""Log lines as JSON, each carrying the job it is about.

Every record logged while a job runs gets ``executionId``, ``task``,
``queue`` (the job queue), ``priority``, ``attempt`` and ``tenantId`` from a
context variable that the worker sets around the job, so the runbook's
``grep "Job moved to DLQ" | jq -r '.lastError'`` works on any line, including
the task's own. Failures add ``lastError`` and ``stackTrace``.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import sys
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

#: Fields of the job being run; empty outside a job.
_NO_JOB: Mapping[str, Any] = MappingProxyType({})
_job_context: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "storefront_jobs_log_context", default=_NO_JOB
)

#: Record attributes that logging itself sets; anything else passed in ``extra`` is a field.
_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def set_job_context(fields: Mapping[str, Any]) -> contextvars.Token[Mapping[str, Any]]:
    return _job_context.set(dict(fields))


def reset_job_context(token: contextvars.Token[Mapping[str, Any]]) -> None:
    _job_context.reset(token)


def job_context() -> Mapping[str, Any]:
    return _job_context.get()


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, job fields, extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_job_context.get())
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["stackTrace"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["stackTrace"] = record.exc_text
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Human-readable lines for a terminal, with the job fields appended."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = dict(_job_context.get())
        fields.update({k: v for k, v in vars(record).items() if k not in _RESERVED and not k.startswith("_")})
        if fields:
            line += " " + " ".join(f"{k}={v}" for k, v in fields.items())
        return line


def configure_logging(level: str | int = "INFO", fmt: str = "json", stream: Any = None) -> None:
    """Send every log record of this process to one stream handler in ``fmt``."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else level.upper())
