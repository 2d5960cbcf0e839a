"""A property of the loader, tested on generated dirty CSV files: the books balance and the loaded rows are exactly
what an independent parse of the file says should load.

Files follow the canonical schema (order_id, timestamp, price, quantity, customer_id, country, plus columns the loader
ignores) with valid values, empty ones, garbage, extreme numbers, dates outside 1900..2100, quoted fields holding
commas, quotes and newlines, broken lines, exact duplicate lines, a BOM and CRLF line ends. The oracle reads them with
Python's csv module and types them with its own rules, written from README "What files load" for the plain ISO
timestamps and plain numbers generated here - never with the loader's code.
"""

import csv
import io
import itertools
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation

import sqlalchemy as sa
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from analytics_pipeline_tests.conftest import load_uploads

COLUMNS = ["order_id", "timestamp", "price", "quantity", "customer_id", "country"]
EXTRAS = ["note", "channel", "batch"]  # no alias of any canonical field: read, never loaded
MAX_VALUE = Decimal(10) ** 12  # README: |amount|, |unit price|, |quantity| <= 1,000,000,000,000
FIRST_INSTANT = datetime(1900, 1, 1, tzinfo=UTC)  # README: UTC days 1900-01-01..2100-12-31
AFTER_LAST_INSTANT = datetime(2101, 1, 1, tzinfo=UTC)
MAX_REJECTED_SHARE = 0.5
CENT = Decimal("0.01")
_names = itertools.count()

# ---------------------------------------------------------------------------------------------- the files

OFFSETS = ["", "Z", "+00:00", "+05:30", "-08:00", "+14:00", "-12:00"]
EDGES = [datetime(1900, 1, 1), datetime(1899, 12, 31, 23, 59, 59), datetime(2100, 12, 31, 23, 59, 59),
         datetime(2101, 1, 1), datetime(1900, 1, 1, 3, 0), datetime(2100, 12, 31, 20, 0)]
BAD_TIMESTAMPS = ["not a date", "31/31/2025 9:58", "2024-02-30 10:00:00", "2023-13-01T00:00:00Z", "yesterday",
                  "2024-01-01T25:00:00", "", " "]
BAD_NUMBERS = ["", " ", "abc", "n/a", "12abc", "--5", "1.2.3", "NaN", "Infinity", "-", "1e", "."]
EXTREME_NUMBERS = ["1e20", "-1e20", "1E5", "2.5e3", "1000000000000", "1000000000001", "-1000000000000",
                   "999999999999.99", "1e12", "0", "0.00", "00012", "1e-3"]
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")) | st.sampled_from(',"\n;|'),
               max_size=12)


def _iso(moment: datetime, separator: str, offset: str) -> str:
    return moment.strftime(f"%Y-%m-%d{separator}%H:%M:%S") + offset


timestamps = st.one_of(
    st.builds(_iso, st.datetimes(datetime(1890, 1, 1), datetime(2110, 12, 31)), st.sampled_from("T "),
              st.sampled_from(OFFSETS)),
    st.builds(_iso, st.datetimes(datetime(2020, 1, 1), datetime(2026, 12, 31)), st.sampled_from("T "),
              st.sampled_from(OFFSETS)),
    st.builds(_iso, st.sampled_from(EDGES), st.just("T"), st.sampled_from(OFFSETS)),
    st.sampled_from(BAD_TIMESTAMPS),
    st.text(st.sampled_from("abcxyzTZ -:/"), max_size=10),
)


def _cents(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


numbers = st.one_of(
    st.integers(-50, 10_000).map(str),
    st.integers(-10**7, 10**7).map(_cents),
    st.sampled_from(EXTREME_NUMBERS),
    st.sampled_from(BAD_NUMBERS),
    st.text(st.sampled_from("abcdefXYZ $"), min_size=1, max_size=6),
)
ids = st.one_of(st.integers(1, 40).map(lambda n: f"A{n}"), st.sampled_from(["", " ", "C536379", "x,y"]), TEXT)
texts = st.one_of(st.sampled_from(["United Kingdom", "Korea, Republic of", "", 'say "hi"', "line\nbreak"]), TEXT)


clean_timestamps = st.builds(_iso, st.datetimes(datetime(2020, 1, 1), datetime(2026, 12, 31)),
                             st.sampled_from("T "), st.sampled_from(OFFSETS))
clean_numbers = st.one_of(st.integers(-5, 500).map(str), st.integers(-10**5, 10**6).map(_cents))
clean_ids = st.integers(1, 60).map(lambda n: f"A{n}")


@st.composite
def records(draw, width: int) -> list[str]:
    if draw(st.integers(0, 9)) < 7:  # most lines of a real export are fine: files that load, not only refusals
        values = [draw(clean_ids), draw(clean_timestamps), draw(clean_numbers), draw(clean_numbers),
                  draw(texts), draw(texts)]
    else:
        values = [draw(ids), draw(timestamps), draw(numbers), draw(numbers), draw(texts), draw(texts)]
    values += [draw(texts) for _ in range(width - len(COLUMNS))]
    shape = draw(st.sampled_from(["whole"] * 18 + ["short", "long"]))
    if shape == "short":  # a broken line: at least two fields, so it is never a blank line
        values = values[: draw(st.integers(2, width - 1))]
    elif shape == "long":
        values.append(draw(texts))
    return values


def _field(value: str, force_quotes: bool) -> str:
    if force_quotes or any(ch in value for ch in ',"\n\r') or value != value.strip(" "):
        return '"' + value.replace('"', '""') + '"'
    return value


@dataclass(frozen=True)
class DirtyFile:
    data: bytes
    description: str


@st.composite
def dirty_files(draw) -> DirtyFile:
    header = COLUMNS + draw(st.lists(st.sampled_from(EXTRAS), unique=True, max_size=2))
    rows = draw(st.lists(records(len(header)), max_size=30))
    for index in sorted(draw(st.lists(st.integers(0, max(len(rows) - 1, 0)), max_size=4)), reverse=True):
        if rows:
            rows.insert(index, list(rows[index]))  # an exact duplicate line, right after its original
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    quote_all = draw(st.booleans())
    lines = [",".join(header)] + [",".join(_field(v, quote_all and draw(st.booleans())) for v in row) for row in rows]
    text = newline.join(lines) + (newline if draw(st.booleans()) else "")
    bom = draw(st.booleans())
    data = ("\ufeff" if bom else "").encode() + text.encode("utf-8")
    return DirtyFile(data, f"{len(rows)} rows, {'BOM, ' if bom else ''}{newline!r}, columns {header}")


# ---------------------------------------------------------------------------------------------- the oracle

_ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(Z|[+-]\d{2}:\d{2})?$")
_PLAIN_NUMBER = re.compile(r"^ *[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d{1,3})? *$")


def instant(text: str) -> datetime | None:
    """An ISO-8601 timestamp as generated here; zone-less means the file's zone, UTC by default."""
    found = _ISO.match(text)
    if not found:
        return None
    year, month, day, hour, minute, second, zone = found.groups()
    try:
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second))
    except ValueError:
        return None
    if zone in (None, "Z"):
        return moment.replace(tzinfo=UTC)
    sign = 1 if zone[0] == "+" else -1
    return moment.replace(tzinfo=timezone(sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))))


def number(text: str) -> Decimal | None:
    if not _PLAIN_NUMBER.match(text):
        return None
    try:
        return Decimal(text.strip(" "))
    except InvalidOperation:
        return None


def amount_of(row: list[str]) -> Decimal | None:
    """The row's amount (quantity x unit price), or None when README says the row is rejected."""
    order_id, stamp, price_text, quantity_text = row[:4]
    moment = instant(stamp)
    if moment is None or not FIRST_INSTANT <= moment < AFTER_LAST_INSTANT:
        return None
    if not order_id.strip(" "):
        return None  # missing order id
    quantity, price = number(quantity_text), number(price_text)
    if quantity is None or price is None or abs(quantity) > MAX_VALUE or abs(price) > MAX_VALUE:
        return None
    amount = quantity * price
    return amount if abs(amount) <= MAX_VALUE else None


@dataclass(frozen=True)
class Expected:
    rows_read: int
    rows_rejected: int
    duplicate_rows: int
    rows_loaded: int
    revenue: Decimal

    @property
    def quarantined(self) -> bool:
        return self.rows_read > 0 and self.rows_rejected / self.rows_read > MAX_REJECTED_SHARE


def expected(data: bytes) -> Expected:
    reader = csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""))
    width = len(next(reader))
    read = rejected = 0
    loaded: dict[tuple[str, ...], Decimal] = {}
    for record in reader:
        if not record or (len(record) == width and not any(record)):
            continue  # a blank line, or a line of empty fields: no record
        read += 1
        amount = amount_of(record) if len(record) == width else None  # a line with the wrong field count is broken
        if amount is None:
            rejected += 1
        else:
            loaded[tuple(record[: len(COLUMNS)])] = amount  # lines equal in every loaded field count once
    valid = read - rejected
    return Expected(read, rejected, valid - len(loaded), len(loaded), sum(loaded.values(), Decimal(0)))


# ---------------------------------------------------------------------------------------------- the property


@settings(max_examples=40, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(dirty=dirty_files())
def test_dirty_csv_books_balance_and_match_an_independent_parse(instance, folders, engine, dirty):
    path = folders.uploads_path / f"dirty_{next(_names):04d}.csv"
    path.write_bytes(dirty.data)
    [key] = load_uploads(instance, folders, [path])
    want = expected(dirty.data)
    with engine.connect() as conn:
        row = conn.execute(
            sa.text("SELECT status, reason, rows_read, rows_loaded, rows_rejected, duplicate_rows "
                    "FROM analytics.ingested_files WHERE file_key = :key"), {"key": key}
        ).mappings().one()
        count, revenue = conn.execute(
            sa.text("SELECT count(*), coalesce(sum(amount), 0) FROM analytics.transactions WHERE source = :key"),
            {"key": key},
        ).one()
    got = dict(row)
    event(f"{got['status']}, {'no' if not want.rows_loaded else 'some'} rows loaded, "
          f"{'no' if not want.duplicate_rows else 'some'} duplicates")  # shown by --hypothesis-show-statistics
    assert got["rows_read"] == want.rows_read, (dirty.description, got, want)
    if want.quarantined:
        assert (got["status"], count) == ("quarantined", 0), (dirty.description, got, want)
        assert got["reason"], got
        assert (folders.quarantine_path / key / path.name).is_file()
        return
    assert got["status"] == "loaded", (dirty.description, got, want)
    assert got["rows_read"] == got["rows_loaded"] + got["rows_rejected"] + got["duplicate_rows"], got
    assert (got["rows_loaded"], got["rows_rejected"], got["duplicate_rows"]) == (
        want.rows_loaded, want.rows_rejected, want.duplicate_rows), (dirty.description, got, want)
    assert count == want.rows_loaded, (dirty.description, count, want)
    assert Decimal(revenue).quantize(CENT) == want.revenue.quantize(CENT), (dirty.description, revenue, want)
    assert (folders.archive_path / key / path.name).is_file() and not path.exists()
