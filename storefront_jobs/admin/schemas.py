"""Request bodies of the admin API."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, model_validator
from pydantic.alias_generators import to_camel

ExecutionId = Annotated[str, Field(min_length=1, max_length=200)]
FilterValue = Annotated[str, Field(min_length=1, max_length=200)]

#: Entries one request may replay or list; more takes several requests (replay is idempotent per entry).
MAX_PER_REQUEST = 10_000


class _Body(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class FilterQuery(_Body):
    """Filter fields as query parameters (other parameters of the endpoint pass through)."""

    queue: FilterValue | None = None
    priority: FilterValue | None = None
    task: FilterValue | None = None
    tenant: FilterValue | None = None
    error: FilterValue | None = None
    reason: FilterValue | None = None
    since: FilterValue | None = None
    until: FilterValue | None = None


#: The query parameter names of a filter, as clients write them.
FILTER_PARAMETERS = frozenset(field.alias or name for name, field in FilterQuery.model_fields.items())


class FilterBody(FilterQuery):
    """Filter fields in a JSON body, where an unknown field is a mistake worth reporting."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class ReplayBody(_Body):
    """What to replay: one entry (an exported record works as is), several ids, or a filter.

    Unknown fields are ignored, so the runbook's ``-d @job_payload.json`` with
    an exported record ({executionId, priority, payload, ...}) replays that
    record. ``toPriority`` sends the jobs to another lane.
    """

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    execution_id: ExecutionId | None = None
    execution_ids: Annotated[list[ExecutionId], Field(min_length=1, max_length=MAX_PER_REQUEST)] | None = None
    filter: FilterBody | None = None
    limit: Annotated[StrictInt, Field(ge=1, le=MAX_PER_REQUEST)] | None = None
    to_priority: FilterValue | None = None
    #: JSON true or false only: "yes", "1" or 1 are refused, not guessed at.
    dry_run: StrictBool = False

    @model_validator(mode="after")
    def _one_selector(self) -> ReplayBody:
        given = [
            name for name in ("execution_id", "execution_ids", "filter") if getattr(self, name) is not None
        ]
        if len(given) != 1:
            raise ValueError("give exactly one of executionId, executionIds or filter")
        return self

    def ids(self) -> tuple[str, ...]:
        if self.execution_id is not None:
            return (self.execution_id,)
        return tuple(self.execution_ids or ())
