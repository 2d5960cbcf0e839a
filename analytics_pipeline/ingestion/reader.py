"""Stream an uploaded file into canonical text batches with bounded memory, whatever its format.

pyarrow parses CSV and Parquet in C++ blocks (a 5M-row CSV in about a second here), so reading never limits a
load. Every value stays text so that typing and rejection happen in one place, in SQL (warehouse/canonical.py),
with the reason recorded per row. Formats: CSV (delimiter and encoding detected), gzip CSV, Parquet, JSON lines.
"""

import codecs
import csv
import gzip
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from analytics_pipeline.ingestion.columns import CANONICAL_FIELDS, ColumnMapping, UnmappableColumns, map_columns

BLOCK_SIZE = 8 << 20  # bytes per parsed CSV block: bounds memory whatever the file size
ROWS_PER_BATCH = 100_000  # Parquet and JSON-lines rows per batch
RAW_COLUMNS = ["file_key", "line_number", *CANONICAL_FIELDS, "raw_line", "parse_error"]
FORMATS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".csv.gz": "csv",
    ".tsv.gz": "csv",
    ".parquet": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".jsonl.gz": "jsonl",
    ".ndjson.gz": "jsonl",
}
DELIMITERS = (",", ";", "\t", "|")
_SNIFF_BYTES = 64 << 10


class UnsupportedFile(ValueError):
    """The file's type is not one the loader reads."""


# Errors that mean "this file cannot be read as it is" (quarantine it), as opposed to a fault of the platform.
UNREADABLE = (UnsupportedFile, UnmappableColumns, pa.ArrowException, csv.Error, UnicodeError, OSError, EOFError)


@dataclass
class MalformedLine:
    line_number: int
    text: str
    reason: str


@dataclass
class ParsedUpload:
    """What the reader learnt about a file while streaming it."""

    file_format: str
    columns_seen: list[str]
    mapping: ColumnMapping
    encoding: str | None = None
    delimiter: str | None = None
    malformed: list[MalformedLine] = field(default_factory=list)
    rows_read: int = 0

    def describe(self) -> dict:
        facts = {"format": self.file_format}
        if self.encoding:
            facts |= {"encoding": self.encoding, "delimiter": {"\t": "tab"}.get(self.delimiter, self.delimiter)}
        return facts


def file_format(file_name: str) -> str:
    name = file_name.lower()
    for suffix in sorted(FORMATS, key=len, reverse=True):
        if name.endswith(suffix):
            return FORMATS[suffix]
    suffix = Path(name).suffix or "(none)"
    raise UnsupportedFile(
        f"unsupported file type {suffix!r}: the watched folder reads {', '.join(sorted(FORMATS))}"
    )


def stream_raw_batches(
    path: Path, file_key: str, overrides: dict[str, str] | None = None
) -> tuple[ParsedUpload, Iterator[pa.Table]]:
    """Read the header now (so an unusable file fails before anything is written) and stream rows lazily."""
    kind = file_format(path.name)
    if kind == "parquet":
        header = pq.ParquetFile(path).schema_arrow.names
        parsed = ParsedUpload(kind, header, map_columns(header, overrides))
        return parsed, _parquet_batches(path, file_key, parsed)
    if kind == "jsonl":
        header = _json_header(path)
        parsed = ParsedUpload(kind, header, map_columns(header, overrides))
        return parsed, _json_batches(path, file_key, parsed)
    encoding, delimiter = sniff(path)
    header = _csv_header(path, encoding, delimiter)
    parsed = ParsedUpload(kind, header, map_columns(header, overrides), encoding, delimiter)
    return parsed, _csv_batches(path, file_key, parsed)


def _open_binary(path: Path):
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else path.open("rb")


def sniff(path: Path) -> tuple[str, str]:
    """(encoding, delimiter). UTF-8 when every byte decodes as UTF-8 (a BOM is allowed), else Windows-1252 (which
    covers Latin-1 text as exported by Excel); the delimiter that splits the first lines most consistently."""
    encoding = "utf-8"
    decoder = codecs.getincrementaldecoder("utf-8")()
    with _open_binary(path) as handle:
        head = handle.read(_SNIFF_BYTES)
        try:
            decoder.decode(head)
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            encoding = "cp1252" if _decodes(head, "cp1252") else "latin-1"
    text = head.decode(encoding, errors="replace").lstrip("\ufeff")
    lines = [line for line in text.splitlines()[:50] if line.strip()]
    if len(lines) > 1 and len(head) == _SNIFF_BYTES:
        lines = lines[:-1]  # the last line of a cut sample may be partial
    return encoding, _best_delimiter(lines)


def _decodes(data: bytes, encoding: str) -> bool:
    try:
        data.decode(encoding)
        return True
    except UnicodeDecodeError:
        return False


def _best_delimiter(lines: list[str]) -> str:
    def score(delimiter: str) -> tuple[float, int]:
        counts = [len(row) for row in csv.reader(lines, delimiter=delimiter)]
        if not counts or counts[0] < 2:
            return (0.0, 0)
        return (sum(c == counts[0] for c in counts) / len(counts), counts[0])

    return max(DELIMITERS, key=score)


def _csv_header(path: Path, encoding: str, delimiter: str) -> list[str]:
    """The first record only; letting pyarrow infer it would type-check a whole block, bad rows included."""
    with _open_binary(path) as raw, io.TextIOWrapper(raw, encoding=encoding, newline="") as text:
        header = next(csv.reader(text, delimiter=delimiter), [])
    return [name.lstrip("\ufeff").strip() for name in header]


def _csv_batches(path: Path, file_key: str, parsed: ParsedUpload) -> Iterator[pa.Table]:
    skipped: list[int] = []

    def on_invalid(row) -> str:
        skipped.append(row.number)  # keeps the line numbers of later rows true
        if row.text.strip():  # a blank line is no record, not a malformed one
            parsed.malformed.append(
                MalformedLine(row.number, row.text, f"expected {row.expected_columns} fields, found {row.actual_columns}")
            )
        return "skip"

    names = parsed.columns_seen
    next_line = 2  # line 1 is the header
    if not _has_body(path):
        return  # a header and nothing else: zero rows (pyarrow cannot skip a header that lacks its newline)
    with _open_binary(path) as stream:
        reader = pacsv.open_csv(
            stream,
            read_options=pacsv.ReadOptions(
                block_size=BLOCK_SIZE, use_threads=False, encoding=parsed.encoding, column_names=names, skip_rows=1
            ),
            parse_options=pacsv.ParseOptions(
                delimiter=parsed.delimiter, invalid_row_handler=on_invalid, ignore_empty_lines=False
            ),
            convert_options=pacsv.ConvertOptions(column_types={name: pa.string() for name in names}),
        )
        for batch in reader:
            line_numbers, next_line = _line_numbers(next_line, batch.num_rows, skipped)
            # Blank lines are read as rows of empty fields (so line numbers stay true) and dropped here.
            filled = _any_value(batch)
            batch, line_numbers = batch.filter(filled), line_numbers[filled.to_numpy(zero_copy_only=False)]
            parsed.rows_read += batch.num_rows
            yield canonical_batch(batch, file_key, line_numbers, parsed.mapping)
    if parsed.malformed:
        parsed.rows_read += len(parsed.malformed)
        yield _malformed(file_key, parsed.malformed)


def _any_value(batch: pa.RecordBatch) -> pa.Array:
    filled = pc.not_equal(pc.utf8_length(batch.column(0)), 0)
    for column in batch.columns[1:]:
        filled = pc.or_(filled, pc.not_equal(pc.utf8_length(column), 0))
    return pc.fill_null(filled, True)


def _has_body(path: Path) -> bool:
    with _open_binary(path) as handle:
        head = handle.read(_SNIFF_BYTES)
    _, newline, rest = head.partition(b"\n")
    return bool(newline) and (bool(rest.strip()) or len(head) == _SNIFF_BYTES)


def _line_numbers(first: int, count: int, skipped: list[int]) -> tuple[np.ndarray, int]:
    """Line numbers of a batch's rows, stepping over lines the parser rejected (assumes one line per record)."""
    candidates = np.arange(first, first + count + len(skipped), dtype=np.int64)
    numbers = candidates[~np.isin(candidates, skipped)][:count]
    return numbers, int(numbers[-1]) + 1 if count else first


def _parquet_batches(path: Path, file_key: str, parsed: ParsedUpload) -> Iterator[pa.Table]:
    """Parquet is typed already; values become text here (timestamps as ISO strings) to share the SQL typing."""
    first = 1
    for batch in pq.ParquetFile(path).iter_batches(batch_size=ROWS_PER_BATCH):
        text = pa.table({name: _as_text(batch.column(name)) for name in batch.schema.names})
        parsed.rows_read += text.num_rows
        yield canonical_batch(text, file_key, np.arange(first, first + text.num_rows), parsed.mapping)
        first += text.num_rows


def _as_text(column: pa.Array) -> pa.Array:
    if pa.types.is_timestamp(column.type) and column.type.tz is None:
        return column.cast(pa.string())  # no zone: the file's configured zone applies in SQL
    if pa.types.is_timestamp(column.type):
        return column.cast(pa.timestamp(column.type.unit, "UTC")).cast(pa.string())
    return column.cast(pa.string())


def _json_header(path: Path, sample_lines: int = 1000) -> list[str]:
    """Keys in first-seen order over the first lines; objects in JSON-lines exports rarely all carry every key."""
    keys: dict[str, None] = {}
    with _open_binary(path) as handle:
        for _, line in zip(range(sample_lines), handle):
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                keys.update(dict.fromkeys(record))
    return list(keys)


def _json_batches(path: Path, file_key: str, parsed: ParsedUpload) -> Iterator[pa.Table]:
    names = parsed.columns_seen
    rows: list[list[str | None]] = []
    numbers: list[int] = []
    with _open_binary(path) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            parsed.rows_read += 1
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError("not a JSON object")
            except ValueError as error:
                text = line.decode("utf-8", errors="replace").rstrip("\r\n")
                parsed.malformed.append(MalformedLine(number, text, f"invalid JSON: {error}"))
                continue
            rows.append([as_text(record.get(name)) for name in names])
            numbers.append(number)
            if len(rows) == ROWS_PER_BATCH:
                yield _json_table(rows, numbers, names, file_key, parsed.mapping)
                rows, numbers = [], []
    if rows:
        yield _json_table(rows, numbers, names, file_key, parsed.mapping)
    if parsed.malformed:
        yield _malformed(file_key, parsed.malformed)


def as_text(value) -> str | None:
    """A JSON or database value as the text the SQL typing reads: strings as they are, objects as JSON."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value) if isinstance(value, dict | list) else str(value)


def _json_table(rows, numbers, names, file_key: str, mapping: ColumnMapping) -> pa.Table:
    columns = list(zip(*rows)) if rows else [[] for _ in names]
    table = pa.table({name: pa.array(values, pa.string()) for name, values in zip(names, columns)})
    return canonical_batch(table, file_key, np.array(numbers, dtype=np.int64), mapping)


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
