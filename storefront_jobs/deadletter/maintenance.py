"""Purge and import: the DLQ operations that delete or restore entries, each audited.

``purge`` with a backup writes (and fsyncs) the backup first, then deletes
exactly the entries in the backup, read back from the file: an entry that
arrives while the purge runs is never deleted without being backed up.
``import`` validates the whole file before it writes anything, then adds the
records by execution id, so importing the same backup twice changes nothing
the second time.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from storefront_jobs.deadletter import transfer
from storefront_jobs.deadletter.query import Filter
from storefront_jobs.deadletter.store import DeadLetterStore, iter_json

_DELETE_BATCH = 1_000
_IMPORT_BATCH = 500

Progress = Callable[[int], None]
T = TypeVar("T")


def _batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


@dataclasses.dataclass(frozen=True)
class PurgeReport:
    operation_id: str
    deleted: int
    backed_up: int | None

    def to_dict(self) -> dict[str, object]:
        return {"operationId": self.operation_id, "deleted": self.deleted, "backedUp": self.backed_up}


@dataclasses.dataclass(frozen=True)
class ImportReport:
    operation_id: str
    added: int
    already_present: int
    expired: int

    def to_dict(self) -> dict[str, object]:
        return {
            "operationId": self.operation_id,
            "added": self.added,
            "alreadyPresent": self.already_present,
            "expired": self.expired,
        }


def write_backup(store: DeadLetterStore, flt: Filter, path: Path, progress: Progress | None = None) -> int:
    """Write the matching entries to ``path`` (format from its suffix) and fsync it."""
    with path.open("w", encoding="utf-8") as out:
        count = transfer.write_records(iter_json(store, flt), out, transfer.format_for_path(path), progress)
        out.flush()
        os.fsync(out.fileno())
    return count


def _delete_listed(store: DeadLetterStore, path: Path, op: str, progress: Progress | None) -> int:
    deleted, batch = 0, []
    for record in transfer.iter_records(path):
        batch.append(record.execution_id)
        if len(batch) >= _DELETE_BATCH:
            n = store.delete(batch, op)
            deleted += n
            if progress is not None:
                progress(len(batch))
            batch = []
    deleted += store.delete(batch, op)
    if progress is not None:
        progress(len(batch))
    return deleted


def _delete_matching(
    store: DeadLetterStore, flt: Filter, op: str, progress: Progress | None, limit: int | None = None
) -> int:
    deleted = 0
    while limit is None or deleted < limit:
        batch = _DELETE_BATCH if limit is None else min(_DELETE_BATCH, limit - deleted)
        ids = store.ids(flt, batch)
        n = store.delete(ids, op)
        deleted += n
        if progress is not None:
            progress(n)
        if not ids or n == 0:
            break
    return deleted


def purge(
    store: DeadLetterStore,
    flt: Filter,
    *,
    actor: str,
    source: str,
    backup: Path | None = None,
    progress: Progress | None = None,
    limit: int | None = None,
) -> PurgeReport:
    """Delete the matching entries, after backing them up to ``backup`` if given.

    ``limit`` caps the deletion at the count an operator confirmed: entries
    that fail while the purge runs are not deleted unseen (no backup then).
    """
    if limit is not None and backup is not None:
        raise ValueError("purge takes a backup or a limit, not both")
    described = flt.describe() | ({"backup": str(backup)} if backup else {})
    described |= {"limit": limit} if limit is not None else {}
    store.trim()  # entries past the retention go as "expire", not as part of this purge
    op = store.audit.begin("purge", actor, source, described)
    status = "failed"
    try:
        if backup is not None:
            backed_up: int | None = write_backup(store, flt, backup)
            deleted = _delete_listed(store, backup, op, progress)
        else:
            backed_up = None
            deleted = _delete_matching(store, flt, op, progress, limit)
        status = "done"
    finally:
        store.audit.finish(op, status)
    return PurgeReport(op, deleted, backed_up)


def delete_entries(
    store: DeadLetterStore, execution_ids: Iterable[str], *, actor: str, source: str
) -> PurgeReport:
    """Delete the entries with these execution ids (an audited purge by id); missing ids are skipped."""
    ids = list(dict.fromkeys(execution_ids))
    op = store.audit.begin("purge", actor, source, {"ids": ids[:20], "idCount": len(ids)})
    status, deleted = "failed", 0
    try:
        for batch in _batched(ids, _DELETE_BATCH):
            deleted += store.delete(batch, op)
        status = "done"
    finally:
        store.audit.finish(op, status)
    return PurgeReport(op, deleted, None)


def import_file(
    store: DeadLetterStore,
    path: Path,
    *,
    actor: str,
    source: str,
    progress: Progress | None = None,
    now: Callable[[], float] = time.time,
) -> ImportReport:
    """Restore a backup or export; MalformedImportError (nothing written) if any record is bad."""
    transfer.validate_file(path)
    op = store.audit.begin("import", actor, source, {"file": str(path)})
    added = present = expired = 0
    status = "failed"
    try:
        cutoff = now() - store.retention_s
        for batch in _batched(transfer.iter_records(path), _IMPORT_BATCH):
            fresh = [record for record in batch if record.failed_at >= cutoff]
            results = store.add_many(fresh, counter="imported")
            expired += len(batch) - len(fresh)
            added += sum(results)
            present += len(results) - sum(results)
            store.audit.add(op, sum(results))
            if progress is not None:
                progress(len(batch))
        status = "done"
    finally:
        store.audit.finish(
            op, status, f"{expired} older than the retention, not imported" if expired else None
        )
    return ImportReport(op, added, present, expired)
