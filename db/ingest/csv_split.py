"""A PSI CSV split into the lines the database can validate itself and the rest.

Nearly every line of the PSI CSVs is 31 plain fields: no quotes, no stray carriage return,
no NUL. Such a line means the same to PostgreSQL's COPY (and to a split on commas) as to
Python's csv module, so it is passed on as text, untouched by per-field Python work, and
the database converts and validates it (db/ingest/stage_sql.py). Every other line (quoted
fields, a wrong field count, a record spanning lines) goes through the csv module exactly as
`read_csv_sales` reads it, with the same line numbers, so rejects come out as before.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from db.ingest.readers import (
    CSV_COLUMNS,
    Progress,
    SourceError,
    SourceRow,
    _CountingBinary,
    _locality_needles,
    _matching_lines,
    csv_item,
)
from db.ingest.records import RowError

PLAIN_COMMAS = len(CSV_COLUMNS) - 1
_BLOCK = 1 << 22


@dataclass(slots=True)
class CsvChunk:
    """Consecutive records of one file: `plain` lines (line number, text without its line
    end) for the database to validate, and the records the csv module read (`parsed`)."""

    plain: list[tuple[int, str]] = field(default_factory=list)
    parsed: list[SourceRow | SourceError] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.plain) + len(self.parsed)


def _all_lines(path: Path, progress: Progress | None) -> Iterator[tuple[int, str]]:
    """(number, text with its line end) of every line: decompressed and decoded in 4 MiB
    blocks (a block ends at a newline, so no UTF-8 sequence is cut; 'replace' gives what
    decoding line by line gives)."""
    with path.open("rb") as handle:
        counted = io.BufferedReader(_CountingBinary(handle, progress), buffer_size=1 << 20)
        stream: io.BufferedIOBase = (
            gzip.GzipFile(fileobj=counted) if path.suffix == ".gz" else counted
        )
        number, carry = 0, b""
        while True:
            data = stream.read(_BLOCK)
            block = carry + data
            if not block:
                return
            cut = block.rfind(b"\n") + 1 if data else len(block)
            if cut == 0:
                carry = block
                continue
            block, carry = block[:cut], block[cut:]
            lines = block.decode("utf-8", errors="replace").split("\n")
            last = lines.pop()  # "" after the final newline, or an unterminated last line
            first = number + 1
            for offset, text in enumerate(lines):
                yield first + offset, text + "\n"
            number += len(lines)
            if last:
                number += 1
                yield number, last


def _numbered_lines(
    path: Path, localities: frozenset[str] | None, progress: Progress | None
) -> Iterator[tuple[int, str]]:
    needles = _locality_needles(localities)
    if needles is None:
        return _all_lines(path, progress)
    return (
        (n, line.decode("utf-8", errors="replace"))
        for n, line in _matching_lines(path, needles, progress)
    )


def _plain(text: str) -> str | None:
    """`text` without its line end if it is 31 plain fields, else None."""
    if text.endswith("\n"):
        text = text[:-2] if text.endswith("\r\n") else text[:-1]
    if text.count(",") != PLAIN_COMMAS or '"' in text or "\r" in text or "\x00" in text:
        return None
    return text


def read_csv_chunks(
    path: Path,
    *,
    localities: frozenset[str] | None = None,
    progress: Progress | None = None,
    chunk_rows: int = 200_000,
) -> Iterator[CsvChunk]:
    source = path.name
    lines = _numbered_lines(path, localities, progress)
    line_no = 0

    def pull(first: tuple[int, str] | None = None) -> Iterator[str]:
        """Lines for the csv module, from `lines` (which it shares with the plain path),
        keeping `line_no` at the last line it consumed, as `read_csv_sales` reports it."""
        nonlocal line_no
        for line_no, text in itertools.chain([first] if first else [], lines):  # noqa: B007
            yield text

    header = next(csv.reader(pull()), None)
    if header != CSV_COLUMNS:
        yield CsvChunk(
            parsed=[SourceError(source, 1, RowError("header", "not the PSI sales CSV header"))]
        )
        return
    chunk = CsvChunk()
    for number, text in lines:
        plain = _plain(text)
        if plain is not None:
            if not localities or plain.split(",", 10)[9].strip().upper() in localities:
                chunk.plain.append((number, plain))
        else:
            # A record the csv module reads from here, pulling the lines it spans (a quoted
            # field may hold line ends) from the same stream.
            row = next(csv.reader(pull((number, text))), None)
            if row is not None:
                item = csv_item(source, line_no, row, localities)
                if item is not None:
                    chunk.parsed.append(item)
        if len(chunk) >= chunk_rows:
            yield chunk
            chunk = CsvChunk()
    if len(chunk):
        yield chunk
