"""Errors of the dead-letter queue, a branch of :class:`~storefront_jobs.errors.StorefrontJobsError`.

::

    StorefrontJobsError
    └── DeadLetterError              a DLQ operation could not be done
        ├── DeadLetterNotFound       no entry with that execution id
        ├── InvalidFilterError       a filter or cursor cannot be read
        └── MalformedImportError     an import file is not a DLQ export; nothing was written

A replay stopped by a full lane is not an error: it is reported in the
:class:`~storefront_jobs.deadletter.replay.ReplayReport` (the entries not
replayed stay in the DLQ), and the surfaces turn it into an exit code or a
response field.
"""

from __future__ import annotations

from storefront_jobs.errors import StorefrontJobsError


class DeadLetterError(StorefrontJobsError):
    """A DLQ operation could not be done."""


class DeadLetterNotFound(DeadLetterError):  # noqa: N818 - reads as the condition it reports
    """No DLQ entry has this execution id."""

    def __init__(self, execution_id: str) -> None:
        self.execution_id = execution_id
        super().__init__(f"no DLQ entry with execution id {execution_id!r}")

    def __reduce__(self) -> tuple[type[DeadLetterNotFound], tuple[str]]:
        return (type(self), (self.execution_id,))


class InvalidFilterError(DeadLetterError):
    """A filter value or a pagination cursor cannot be read."""


class MalformedImportError(DeadLetterError):
    """An import file is not a DLQ export; nothing was written."""
