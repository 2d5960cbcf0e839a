"""Stream an uploaded file into canonical text batches with bounded memory, whatever its format.

pyarrow parses CSV and Parquet in C++ blocks (a 5M-row CSV in about a second here), so reading never limits a
load. Every value stays text so that typing and rejection happen in one place, in SQL (warehouse/canonical.py),
with the reason recorded per row. Formats: CSV (delimiter and encoding detected), gzip CSV, Parquet, JSON lines.

Whatever a file holds, reading it stays bounded: gzip input is inflated under a size and a ratio limit, the header
line and the column count have limits, a JSON line past the block size is rejected alone, and malformed lines are
handed on with each batch instead of being collected for the whole file.
"""

import codecs
import csv
import gzip
import io
import json
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from analytics_pipeline.ingestion.columns import CANONICAL_FIELDS, ColumnMapping, UnmappableColumns, map_columns
from analytics_pipeline.ingestion.settings import MappingFileError

BLOCK_SIZE = 8 << 20  # bytes per parsed CSV block: bounds memory whatever the file size; no CSV record is longer
MAX_LINE_BYTES = BLOCK_SIZE  # a longer JSON line is rejected on its own, like a record no CSV block can hold
MAX_HEADER_BYTES = 1 << 20  # no export's header line is longer; reading further would hold a runaway line in memory
MAX_COLUMNS = 10_000  # past this a "header" is data; also bounds the per-column work of every batch
# A gzip upload is inflated only so far: past either limit it is refused as a likely compression bomb. Deflate
# cannot exceed about 1,032x, and real exports compress 5-50x, so the ratio only ever stops a crafted file.
MAX_DECOMPRESSED_ENV = "ANALYTICS_MAX_DECOMPRESSED_BYTES"
MAX_RATIO_ENV = "ANALYTICS_MAX_COMPRESSION_RATIO"
DEFAULT_MAX_DECOMPRESSED = 20 << 30
DEFAULT_MAX_RATIO = 1000
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
# Postgres text cannot hold a NUL byte, and COPY would refuse the whole file for one: the row is rejected instead,
# its raw text kept with U+FFFD in place of each NUL.
NUL, REPLACEMENT = "\x00", "\ufffd"
_SNIFF_BYTES = 64 << 10


class UnsupportedFile(ValueError):
    """The file's type is not one the loader reads."""


class UnreadableFile(ValueError):
    """The file breaks a limit that keeps reading bounded (inflated size, header length, column count) or has a
    NUL byte in a column name, which Postgres text cannot store."""


# Errors that mean "this file cannot be read as it is" (quarantine it), as opposed to a fault of the platform. A
# broken mapping file is the uploader's to fix, so it quarantines the file too (with the mapping file's error).
UNREADABLE = (
    UnsupportedFile,
    UnmappableColumns,
    UnreadableFile,
    MappingFileError,
    pa.ArrowException,
    csv.Error,
    UnicodeError,
    OSError,
    EOFError,
    zlib.error,
)


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
    malformed: list[MalformedLine] = field(default_factory=list)  # not yet handed on: emptied with each batch
    malformed_lines: int = 0  # every malformed line of the file, once it has been read
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
        header = _checked(pq.ParquetFile(path).schema_arrow.names)
        parsed = ParsedUpload(kind, header, map_columns(header, overrides))
        return parsed, _parquet_batches(path, file_key, parsed)
    if kind == "jsonl":
        header = _checked(_json_header(path))
        parsed = ParsedUpload(kind, header, map_columns(header, overrides))
        return parsed, _json_batches(path, file_key, parsed)
    encoding, delimiter = sniff(path)
    header = _checked(_csv_header(path, encoding, delimiter))
    parsed = ParsedUpload(kind, header, map_columns(header, overrides), encoding, delimiter)
    return parsed, _csv_batches(path, file_key, parsed)


def _checked(header: list[str]) -> list[str]:
    """The header, unless it is too wide to be one or names a column Postgres could not store."""
    if len(header) > MAX_COLUMNS:
        raise UnreadableFile(f"the header has {len(header):,} columns, more than the {MAX_COLUMNS:,} the loader reads")
    if any(NUL in name for name in header):
        raise UnreadableFile("a column name contains a NUL byte")
    return header


def _open_binary(path: Path):
    if not path.name.lower().endswith(".gz"):
        return path.open("rb")
    return io.BufferedReader(_BoundedInflate(path), buffer_size=1 << 20)


class _BoundedInflate(io.RawIOBase):
    """A gzip file inflated under the decompression limits, checked on every chunk: a bomb is refused after at most
    the limit has streamed through, and is never held in memory."""

    def __init__(self, path: Path):
        most = int(os.environ.get(MAX_DECOMPRESSED_ENV) or DEFAULT_MAX_DECOMPRESSED)
        ratio = int(os.environ.get(MAX_RATIO_ENV) or DEFAULT_MAX_RATIO)
        compressed = path.stat().st_size
        self._limit = min(most, ratio * compressed)
        self._refusal = (
            f"the gzip inflates to more than {most:,} bytes (the limit {MAX_DECOMPRESSED_ENV})"
            if most <= ratio * compressed
            else f"the gzip inflates to more than {ratio:,} times its {compressed:,} bytes (the limit "
            f"{MAX_RATIO_ENV}): a compression bomb"
        )
        self._inflated = 0
        self._gzip = gzip.open(path, "rb")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        count = self._gzip.readinto(buffer)
        self._inflated += count
        if self._inflated > self._limit:
            raise UnreadableFile(self._refusal)
        return count

    def close(self) -> None:
        self._gzip.close()
        super().close()


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
    """The first record only; letting pyarrow infer it would type-check a whole block, bad rows included. Read from
    a bounded head: a file whose first line runs past MAX_HEADER_BYTES (2 GiB with no newline) is refused."""
    with _open_binary(path) as raw:
        head = raw.read(MAX_HEADER_BYTES + 1)
    text = io.StringIO(head.decode(encoding, errors="replace"), newline="")
    header = next(csv.reader(text, delimiter=delimiter), [])
    if len(head) > MAX_HEADER_BYTES and not text.read(1):  # the first record took the whole head
        raise UnreadableFile(f"the header line is longer than {MAX_HEADER_BYTES:,} bytes")
    return [name.lstrip("\ufeff").strip() for name in header]


def _csv_batches(path: Path, file_key: str, parsed: ParsedUpload) -> Iterator[pa.Table]:
    skipped: list[int] = []

    def on_invalid(row) -> str:
        skipped.append(row.number)  # keeps the line numbers of later rows true
        if row.text.strip():  # a blank line is no record, not a malformed one
            parsed.rows_read += 1
            parsed.malformed.append(
                MalformedLine(
                    row.number, row.text, f"expected {row.expected_columns} fields, found {row.actual_columns}"
                )
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
            yield from _malformed(file_key, parsed)
    yield from _malformed(file_key, parsed)


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
    """Line numbers of a batch's rows, stepping over lines the parser rejected (assumes one line per record).
    Rejected lines before the batch's last are forgotten, so a file of bad lines costs no memory per line."""
    candidates = np.arange(first, first + count + len(skipped), dtype=np.int64)
    numbers = candidates[~np.isin(candidates, skipped)][:count]
    following = int(numbers[-1]) + 1 if count else first
    skipped[:] = [number for number in skipped if number >= following]
    return numbers, following


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
    """Keys in first-seen order over the first lines (at most a block of them); objects in JSON-lines exports
    rarely all carry every key."""
    keys: dict[str, None] = {}
    sampled = 0
    with _open_binary(path) as handle:
        for _, (line, whole) in zip(range(sample_lines), _lines(handle), strict=False):
            sampled += len(line)
            if sampled > BLOCK_SIZE or len(keys) > MAX_COLUMNS:
                break
            try:
                record = json.loads(line) if whole else None
            except (ValueError, RecursionError):
                continue
            if isinstance(record, dict):
                keys.update(dict.fromkeys(record))
    return list(keys)


def _lines(handle) -> Iterator[tuple[bytes, bool]]:
    """Each line and whether it is whole: a line longer than MAX_LINE_BYTES comes cut at the limit (whole=False),
    and the rest of it is skipped a chunk at a time, never held."""
    while line := handle.readline(MAX_LINE_BYTES + 1):
        rest = line
        while not rest.endswith(b"\n") and (rest := handle.readline(1 << 20)):
            pass
        yield line[:MAX_LINE_BYTES], len(line) <= MAX_LINE_BYTES


def _json_batches(path: Path, file_key: str, parsed: ParsedUpload) -> Iterator[pa.Table]:
    names = parsed.columns_seen
    rows: list[list[str | None]] = []
    numbers: list[int] = []
    pending = 0  # bytes read since the last batch: a batch is ROWS_PER_BATCH lines or a block, whichever comes first
    with _open_binary(path) as handle:
        for number, (line, whole) in enumerate(_lines(handle), start=1):
            if not line.strip():
                continue
            parsed.rows_read += 1
            pending += len(line)
            try:
                if not whole:
                    raise ValueError(f"line longer than {MAX_LINE_BYTES:,} bytes")
                rows.append(_json_row(line, names))
                numbers.append(number)
            except RecursionError:
                parsed.malformed.append(MalformedLine(number, _line_text(line), "invalid JSON: nested too deeply"))
            except ValueError as error:
                parsed.malformed.append(MalformedLine(number, _line_text(line), f"invalid JSON: {error}"))
            if len(rows) + len(parsed.malformed) >= ROWS_PER_BATCH or pending >= BLOCK_SIZE:
                yield from _json_tables(rows, numbers, names, file_key, parsed)
                rows, numbers, pending = [], [], 0
    yield from _json_tables(rows, numbers, names, file_key, parsed)


def _json_row(line: bytes, names: list[str]) -> list[str | None]:
    record = json.loads(line)
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    return [as_text(record.get(name)) for name in names]


def _line_text(line: bytes) -> str:
    return line.decode("utf-8", errors="replace").rstrip("\r\n")


def as_text(value) -> str | None:
    """A JSON or database value as the text the SQL typing reads: strings as they are, objects as JSON."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value) if isinstance(value, dict | list) else str(value)


def _json_tables(rows, numbers, names, file_key: str, parsed: ParsedUpload) -> Iterator[pa.Table]:
    if rows:
        columns = zip(names, zip(*rows, strict=True), strict=True)
        table = pa.table({name: pa.array(values, pa.string()) for name, values in columns})
        yield canonical_batch(table, file_key, np.array(numbers, dtype=np.int64), parsed.mapping)
    yield from _malformed(file_key, parsed)


def canonical_batch(
    batch: pa.RecordBatch | pa.Table, file_key: str, line_numbers: np.ndarray, mapping: ColumnMapping
) -> pa.Table:
    """A source's columns renamed to the canonical fields (as text), ready for warehouse.canonical.stage."""
    rows = batch.num_rows
    columns = {
        "file_key": pa.array([file_key] * rows, pa.string()),
        "line_number": pa.array(line_numbers, pa.int64()),
    }
    columns["raw_line"] = pa.nulls(rows, pa.string())
    columns["parse_error"] = pa.nulls(rows, pa.string())
    for name in reversed(CANONICAL_FIELDS):  # a row with several is blamed on its first field
        source = mapping.source_columns.get(name)
        if not source:
            columns[name] = pa.nulls(rows, pa.string())
            continue
        values = batch.column(source)
        if name == "quantity":
            # Only a source without a quantity column means one of each; a row whose quantity is null (Parquet,
            # JSON, a database) is missing it, as an empty CSV field is, and is rejected the same way.
            values = pc.fill_null(values, "")
        has_nul = pc.fill_null(pc.match_substring(values, NUL), False)
        if pc.any(has_nul).as_py():
            values = pc.replace_substring(values, NUL, REPLACEMENT)
            columns["parse_error"] = pc.if_else(has_nul, f"NUL byte in {name}", columns["parse_error"])
        columns[name] = values
    return pa.table({name: columns[name] for name in RAW_COLUMNS})


def _malformed(file_key: str, parsed: ParsedUpload) -> Iterator[pa.Table]:
    """The malformed lines read so far, as rows with only raw_line and parse_error; handed on with every batch so
    that a file of bad lines never piles up in memory."""
    lines = parsed.malformed
    if not lines:
        return
    columns = {name: pa.nulls(len(lines), pa.string()) for name in RAW_COLUMNS}
    columns["file_key"] = pa.array([file_key] * len(lines), pa.string())
    columns["line_number"] = pa.array([line.line_number for line in lines], pa.int64())
    columns["raw_line"] = pa.array([line.text.replace(NUL, REPLACEMENT) for line in lines], pa.string())
    columns["parse_error"] = pa.array([line.reason for line in lines], pa.string())
    parsed.malformed_lines += len(lines)
    lines.clear()
    yield pa.table(columns)


def to_csv_bytes(table: pa.Table) -> io.BytesIO:
    """CSV for COPY: pyarrow writes nulls as empty fields and empty strings as "", which COPY keeps apart."""
    buffer = io.BytesIO()
    pacsv.write_csv(table, buffer)
    buffer.seek(0)
    return buffer
