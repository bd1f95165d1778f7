"""Export and import files: a JSON array (what the runbook's ``jq '.[]'`` reads) or JSON lines.

Both directions stream: export writes the records as the store holds them,
one page at a time, and import reads one record at a time, so memory stays
flat whatever the size of the DLQ or the file. An import file is read twice:
once to validate every record (a malformed file is rejected before anything
is written), once to add them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, Literal

from pydantic import ValidationError

from storefront_jobs.deadletter.errors import MalformedImportError
from storefront_jobs.deadletter.record import DeadLetter

Format = Literal["json", "jsonl"]

_CHUNK = 1 << 20
_WHITESPACE = " \t\r\n"


def encode_records(lines: Iterable[str], fmt: Format) -> Iterator[str]:
    """Stored records (JSON text) as the pieces of a JSON array or of JSON lines."""
    if fmt == "jsonl":
        for line in lines:
            yield line + "\n"
        return
    first = True
    for line in lines:
        yield ("[\n" if first else ",\n") + line
        first = False
    yield "[]\n" if first else "\n]\n"


def write_records(
    lines: Iterable[str], out: IO[str], fmt: Format, progress: Callable[[int], None] | None = None
) -> int:
    """Write stored records as a JSON array or JSON lines; return how many."""
    count = 0

    def counted() -> Iterator[str]:
        nonlocal count
        for line in lines:
            count += 1
            if progress is not None and count % 1000 == 0:
                progress(1000)
            yield line

    for piece in encode_records(counted(), fmt):
        out.write(piece)
    if progress is not None:
        progress(count % 1000)
    return count


def format_for_path(path: Path) -> Format:
    """JSON lines for ``.jsonl``/``.ndjson`` files, a JSON array otherwise."""
    return "jsonl" if path.suffix.lower() in {".jsonl", ".ndjson"} else "json"


class _ArrayReader:
    """Reads the elements of a JSON array from a text stream, a chunk at a time."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._decoder = json.JSONDecoder()
        self._buf = ""
        self._pos = 0
        self._eof = False

    def _more(self) -> bool:
        chunk = "" if self._eof else self._stream.read(_CHUNK)
        self._eof = not chunk
        self._buf, self._pos = self._buf[self._pos :] + chunk, 0
        return bool(chunk)

    def _peek(self) -> str:
        """The next non-blank character ('' at the end of the stream)."""
        while True:
            while self._pos < len(self._buf) and self._buf[self._pos] in _WHITESPACE:
                self._pos += 1
            if self._pos < len(self._buf) or not self._more():
                return self._buf[self._pos : self._pos + 1]

    def _value(self, index: int) -> Any:
        while True:
            try:
                value, self._pos = self._decoder.raw_decode(self._buf, self._pos)
                return value
            except json.JSONDecodeError as exc:
                if not self._more():
                    raise MalformedImportError(f"element {index}: invalid JSON: {exc.msg}") from None

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        if self._peek() != "[":
            raise MalformedImportError("not a JSON array")
        self._pos += 1
        if self._peek() == "]":
            return
        index = 0
        while True:
            index += 1
            yield f"element {index}", self._value(index)
            sep = self._peek()
            if sep == "]":
                return
            if sep != ",":
                raise MalformedImportError(f"element {index}: expected ',' or ']' after it")
            self._pos += 1
            self._peek()


def _iter_lines(stream: IO[str]) -> Iterator[tuple[str, Any]]:
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            yield f"line {number}", json.loads(line)
        except json.JSONDecodeError as exc:
            raise MalformedImportError(f"line {number}: invalid JSON: {exc.msg}") from None


def iter_file(path: Path) -> Iterator[tuple[str, Any]]:
    """(position, parsed JSON) of every record of a JSON-array or JSON-lines file."""
    try:
        with path.open(encoding="utf-8") as stream:
            head = stream.read(4096).lstrip()
            stream.seek(0)
            if head.startswith("["):
                yield from _ArrayReader(stream)
            else:
                yield from _iter_lines(stream)
    except UnicodeDecodeError as exc:
        raise MalformedImportError(f"{path}: not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise MalformedImportError(f"{path}: {exc.strerror or exc}") from None


def iter_records(path: Path) -> Iterator[DeadLetter]:
    """Every record of an export file, validated; the first bad one raises MalformedImportError."""
    for where, value in iter_file(path):
        if not isinstance(value, dict):
            raise MalformedImportError(f"{where}: expected a DLQ record (a JSON object)")
        try:
            yield DeadLetter.model_validate(value)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "record"
            raise MalformedImportError(f"{where}: {field}: {first['msg']}") from None


def validate_file(path: Path) -> int:
    """Number of records in an export file; raises MalformedImportError on the first bad one."""
    return sum(1 for _ in iter_records(path))
