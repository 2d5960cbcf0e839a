"""Stream a delimited file into canonical text batches with bounded memory.

pyarrow parses CSV in C++ blocks (a 5M-row file in about a second here), so reading never limits a load; every
value stays text so that typing and rejection happen in one place, in SQL, with the reason recorded per row.
"""

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from analytics_pipeline.ingestion.columns import CANONICAL_FIELDS, ColumnMapping, map_columns

BLOCK_SIZE = 8 << 20  # bytes per parsed block: bounds memory whatever the file size
RAW_COLUMNS = ["file_key", "line_number", *CANONICAL_FIELDS, "raw_line", "parse_error"]


@dataclass
class MalformedLine:
    line_number: int
    text: str
    reason: str


@dataclass
class ParsedUpload:
    """What the reader learnt about a file while streaming it."""

    columns_seen: list[str]
    mapping: ColumnMapping
    malformed: list[MalformedLine] = field(default_factory=list)
    rows_read: int = 0


def _open_stream(path: Path) -> pa.NativeFile:
    compression = "gzip" if path.name.lower().endswith(".gz") else None
    return pa.input_stream(str(path), compression=compression)


def read_header(path: Path) -> list[str]:
    """The first record only; letting pyarrow infer it would type-check a whole block, bad rows included."""
    with _open_stream(path) as stream, io.TextIOWrapper(stream, encoding="utf-8-sig", newline="") as text:
        return next(csv.reader(text), [])


def stream_raw_batches(path: Path, file_key: str) -> tuple[ParsedUpload, Iterator[pa.Table]]:
    """Parse the header now (so unmappable files fail before anything is written) and stream rows lazily."""
    header = read_header(path)
    parsed = ParsedUpload(columns_seen=header, mapping=map_columns(header))
    return parsed, _batches(path, file_key, parsed)


def _batches(path: Path, file_key: str, parsed: ParsedUpload) -> Iterator[pa.Table]:
    skipped: list[int] = []

    def on_invalid(row) -> str:
        skipped.append(row.number)
        parsed.malformed.append(
            MalformedLine(row.number, row.text, f"expected {row.expected_columns} fields, found {row.actual_columns}")
        )
        return "skip"

    options = pacsv.ConvertOptions(column_types={name: pa.string() for name in parsed.columns_seen})
    next_line = 2  # line 1 is the header
    with _open_stream(path) as stream:
        reader = pacsv.open_csv(
            stream,
            read_options=pacsv.ReadOptions(block_size=BLOCK_SIZE, use_threads=False),
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid),
            convert_options=options,
        )
        for batch in reader:
            line_numbers, next_line = _line_numbers(next_line, batch.num_rows, skipped)
            parsed.rows_read += batch.num_rows
            yield canonical_batch(batch, file_key, line_numbers, parsed.mapping)
    if parsed.malformed:
        parsed.rows_read += len(parsed.malformed)
        yield _malformed(file_key, parsed.malformed)


def _line_numbers(first: int, count: int, skipped: list[int]) -> tuple[np.ndarray, int]:
    """Line numbers of a batch's rows, stepping over lines the parser rejected (assumes one line per record)."""
    candidates = np.arange(first, first + count + len(skipped), dtype=np.int64)
    numbers = candidates[~np.isin(candidates, skipped)][:count]
    return numbers, int(numbers[-1]) + 1 if count else first


def canonical_batch(
    batch: pa.RecordBatch | pa.Table, file_key: str, line_numbers: np.ndarray, mapping: ColumnMapping
) -> pa.Table:
    """A source's columns renamed to the canonical fields (as text), ready for warehouse.canonical.stage."""
    rows = batch.num_rows
    columns = {
        "file_key": pa.array([file_key] * rows, pa.string()),
        "line_number": pa.array(line_numbers, pa.int64()),
    }
    for name in CANONICAL_FIELDS:
        source = mapping.source_columns.get(name)
        columns[name] = batch.column(source) if source else pa.nulls(rows, pa.string())
    columns["raw_line"] = columns["parse_error"] = pa.nulls(rows, pa.string())
    return pa.table(columns)


def _malformed(file_key: str, lines: list[MalformedLine]) -> pa.Table:
    columns = {name: pa.nulls(len(lines), pa.string()) for name in RAW_COLUMNS}
    columns["file_key"] = pa.array([file_key] * len(lines), pa.string())
    columns["line_number"] = pa.array([line.line_number for line in lines], pa.int64())
    columns["raw_line"] = pa.array([line.text for line in lines], pa.string())
    columns["parse_error"] = pa.array([line.reason for line in lines], pa.string())
    return pa.table(columns)


def to_csv_bytes(table: pa.Table) -> io.BytesIO:
    """CSV for COPY: pyarrow writes nulls as empty fields and empty strings as "", which COPY keeps apart."""
    buffer = io.BytesIO()
    pacsv.write_csv(table, buffer)
    buffer.seek(0)
    return buffer
