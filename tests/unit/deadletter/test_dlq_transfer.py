"""Export files, import validation, purge with backup: against both stores."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from storefront_jobs.deadletter import maintenance, transfer
from storefront_jobs.deadletter.errors import MalformedImportError
from storefront_jobs.deadletter.query import Filter
from storefront_jobs.deadletter.store import DeadLetterStore, iter_json
from tests.support.dlq import make_record

T0 = 1_800_000_000.0


def test_json_export_is_an_array_and_jsonl_is_lines() -> None:
    lines = ['{"a": 1}', '{"a": 2}']
    array, jl, empty = io.StringIO(), io.StringIO(), io.StringIO()

    assert transfer.write_records(lines, array, "json") == 2
    transfer.write_records(lines, jl, "jsonl")
    transfer.write_records([], empty, "json")

    assert json.loads(array.getvalue()) == [{"a": 1}, {"a": 2}]
    assert [json.loads(line) for line in jl.getvalue().splitlines()] == [{"a": 1}, {"a": 2}]
    assert json.loads(empty.getvalue()) == []


def test_a_json_array_is_read_across_chunk_boundaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transfer, "_CHUNK", 7)
    records = [
        make_record(f"e-{i}", failed_at=T0 + i).model_dump(by_alias=True, mode="json") for i in range(5)
    ]
    path = tmp_path / "x.json"
    path.write_text(json.dumps(records, indent=3))

    assert [r.execution_id for r in transfer.iter_records(path)] == [f"e-{i}" for i in range(5)]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('[{"executionId": "x"}]', "element 1"),
        ("[1, 2]", "element 1: expected a DLQ record"),
        ("[", "element 1: invalid JSON"),
        ("{not json}\n", "line 1: invalid JSON"),
        ("VALID\n", "line 1"),
    ],
)
def test_malformed_files_are_rejected(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(MalformedImportError, match=message):
        transfer.validate_file(path)


def test_array_elements_need_commas(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('[{"a": 1} {"b": 2}]')
    with pytest.raises(MalformedImportError, match="element 1: expected ','"):
        list(transfer.iter_file(path))


def test_purge_with_backup_then_import_gives_back_the_same_records(
    store: DeadLetterStore, tmp_path: Path
) -> None:
    for i in range(30):
        store.add(make_record(f"e-{i:02d}", failed_at=T0 + i, queue="a" if i < 20 else "b", tenant="t-1"))
    before = list(iter_json(store, Filter(queue="a")))
    backup = tmp_path / "backup.json"

    purged = maintenance.purge(store, Filter(queue="a"), actor="me", source="cli", backup=backup)

    assert (purged.deleted, purged.backed_up) == (20, 20)
    assert store.count(Filter()) == 10
    imported = maintenance.import_file(store, backup, actor="me", source="cli", now=lambda: T0)
    assert (imported.added, imported.already_present, imported.expired) == (20, 0, 0)
    assert list(iter_json(store, Filter(queue="a"))) == before
    again = maintenance.import_file(store, backup, actor="me", source="cli", now=lambda: T0)
    assert (again.added, again.already_present) == (0, 20)
    assert [e.action for e in store.audit.entries()] == ["import", "import", "purge"]


def test_a_malformed_import_writes_nothing(store: DeadLetterStore, tmp_path: Path) -> None:
    good = make_record("e-1").model_dump(by_alias=True, mode="json")
    path = tmp_path / "mixed.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "executionId": ""}) + "\n")

    with pytest.raises(MalformedImportError, match="line 2: executionId"):
        maintenance.import_file(store, path, actor="me", source="cli")

    assert store.count(Filter()) == 0
    assert store.audit.entries() == []
