"""Type the plain rows of a big file in DuckDB, vectorised, and leave every other row to the SQL typing in Postgres.

Why: typing a million lines with Postgres's regular expressions and casts costs seconds per million, several times a
bare COPY. Most lines of a real export are plain - an ISO or M/D/YYYY timestamp, decimal numbers, short text - and
for those DuckDB computes exactly what warehouse/canonical.py's SQL would (the same md5 content id, the same trims,
the UTC day), in C++ over whole Arrow batches. A row qualifies only when its every value is of a shape whose meaning
is beyond doubt; anything else (a formatted amount, a date Postgres might read differently, a value to reject, an
amount to derive by division) goes to Postgres, which decides it as it always has. So the rows and the reasons
are the SQL typing's by construction; the fast path only takes the rows where nothing needs deciding.
"""

import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, time, timedelta

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from analytics_pipeline.ingestion.columns import CANONICAL_FIELDS, MAX_ABS_VALUE, MAX_TEXT_CHARS
from analytics_pipeline.ingestion.settings import FileSettings

# Transactions' columns, in the order the typed batches carry them (COPY into a table shaped like transactions).
# `source` is not among them: it is the file's key on every row, the column default of the file's table.
TYPED_COLUMNS = [
    "transaction_id", "order_id", "occurred_at", "day", "customer_id", "company", "region", "product", "quantity",
    "unit_price", "amount", "currency", "is_cancellation", "source_line",
]
# The zones whose local time is UTC: the only ones typed here.
UTC_ZONES = ("UTC", "Etc/UTC")
# A plain decimal: at most 12 integer digits (below canonical.MAX_ABS_VALUE, so never out of range) and 6 decimals
# (so a product of two fits DECIMAL(38, 12) exactly). Spaces around it, as Postgres's cast allows.
_NUMBER = r" *[-+]?[0-9]{1,12}(\.[0-9]{1,6})? *"
# Timestamps whose reading does not depend on anything but the file's day order: ISO dates with an optional time
# and a trailing Z, and D/M/YYYY or M/D/YYYY with a time. Offsets, month names and two-digit years go to Postgres.
_ISO = r"[0-9]{4}-[0-9]{2}-[0-9]{2}([ T][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?)?Z?"
_SLASHED = r"[0-9]{1,2}/[0-9]{1,2}/[0-9]{4}( [0-9]{1,2}:[0-9]{2}(:[0-9]{2})?)?"
_CONTENT_FIELDS = [name for name in CANONICAL_FIELDS if name != "transaction_id"]


@dataclass(frozen=True)
class Split:
    typed: pa.Table  # TYPED_COLUMNS, ready for COPY into a table shaped like transactions
    rest: pa.Table  # the batch's other rows, untouched, for the SQL typing


def _query(settings: FileSettings) -> str:
    """The typing query of a file in UTC (files in other zones are typed by Postgres)."""
    day_month = "%d/%m/%Y" if settings.day_first else "%m/%d/%Y"
    # One format per value, chosen by its colons: trying several in turn costs DuckDB 8x more than one.
    formats = {1: f"{day_month} %H:%M", 2: f"{day_month} %H:%M:%S", 0: day_month}
    slashed = "\n".join(
        f"WHEN slashed AND colons = {colons} THEN try_strptime(occurred_at, '{fmt}')" for colons, fmt in formats.items()
    )
    # Bytes are never fewer than characters: a value within the limit in bytes is within it in characters.
    text_ok = " AND ".join(f"coalesce(strlen({name}), 0) <= {MAX_TEXT_CHARS}" for name in CANONICAL_FIELDS)
    content = ", ".join(_CONTENT_FIELDS)
    return f"""
    WITH shape AS (
        SELECT *,
               regexp_full_match(occurred_at, '{_SLASHED}') AS slashed,
               length(occurred_at) - length(replace(occurred_at, ':', '')) AS colons
        FROM batch
    ),
    shaped AS (
        SELECT *,
               CASE WHEN substr(occurred_at, 5, 1) = '-' AND regexp_full_match(occurred_at, '{_ISO}')
                        THEN try_cast(rtrim(occurred_at, 'Z') AS TIMESTAMP)
                    {slashed}
               END AS ts,
               quantity IS NULL OR regexp_full_match(quantity, '{_NUMBER}') AS qty_ok,
               regexp_full_match(unit_price, '{_NUMBER}') AS price_ok,
               amount IS NULL OR btrim(amount, ' ') = '' OR regexp_full_match(amount, '{_NUMBER}') AS amount_ok
        FROM shape
    ),
    checked AS (
        SELECT *,
               CASE WHEN qty_ok AND price_ok AND (amount IS NULL OR btrim(amount, ' ') = '')
                    THEN CAST(coalesce(btrim(quantity, ' '), '1') AS DECIMAL(38, 6))
                         * CAST(btrim(unit_price, ' ') AS DECIMAL(38, 6)) END AS derived_amount
        FROM shaped
    ),
    flagged AS (
        SELECT *,
               coalesce(parse_error IS NULL AND ts >= $earliest AND ts < $after_latest
                        AND qty_ok AND price_ok AND amount_ok
                        AND (derived_amount IS NULL OR abs(derived_amount) <= $max_value)
                        AND (order_id IS NULL OR btrim(order_id, ' ') <> '')
                        AND {text_ok}, false) AS plain,
               coalesce(nullif(btrim(transaction_id, ' '), ''), md5(concat_ws('|', {content}))) AS txn_id
        FROM checked
    )
    SELECT plain,
           txn_id AS transaction_id,
           coalesce(nullif(btrim(order_id, ' '), ''), txn_id) AS order_id,
           CAST(ts AS VARCHAR) AS occurred_at,  -- UTC; no fraction written when there is none
           CAST(CAST(ts AS DATE) AS VARCHAR) AS day,
           nullif(btrim(customer_id, ' '), '') AS customer_id,
           nullif(btrim(company, ' '), '') AS company,
           nullif(btrim(region, ' '), '') AS region,
           nullif(btrim(product, ' '), '') AS product,
           coalesce(btrim(quantity, ' '), '1') AS quantity,
           btrim(unit_price, ' ') AS unit_price,
           -- the product at the scale of its factors' decimals, as Postgres writes quantity * unit_price
           coalesce(CAST(CAST(derived_amount AS DECIMAL(38, {_SCALE})) AS VARCHAR), btrim(amount, ' ')) AS amount,
           nullif(btrim(currency, ' '), '') AS currency,
           coalesce(regexp_matches(btrim(order_id, ' '), $cancellation), false) AS is_cancellation,
           line_number AS source_line
    FROM flagged
    """


_DECIMALS = 6  # of each factor of a derived amount (_NUMBER)
_SCALE = "__product_scale__"  # in the query, replaced by each batch's scale (DuckDB casts take no parameter)
_SCALES = """
SELECT max(length(split_part(btrim(coalesce(quantity, ''), ' '), '.', 2)))
       + max(length(split_part(btrim(unit_price, ' '), '.', 2)))
FROM batch
"""

_EARLIER_COPIES = """
SELECT source_line FROM seen
QUALIFY row_number() OVER (PARTITION BY transaction_id ORDER BY source_line DESC) > 1
"""


class FastTyping:
    """One file's fast path: a DuckDB connection and the file's settings, applied batch after batch."""

    def __init__(self, settings: FileSettings):
        # The ids of a 5M-line file take about 300 MB here; past the limit DuckDB spills to its temp directory.
        self.spill = tempfile.mkdtemp(prefix="analytics-duckdb-")
        self.connection = duckdb.connect(
            config={"threads": 1, "memory_limit": "256MB", "temp_directory": self.spill}
        )
        self.connection.execute("CREATE TABLE seen (transaction_id VARCHAR, source_line BIGINT)")
        # Postgres's btrim: spaces only. DuckDB's trim(x, ' ') costs 2x a test of both ends, and most values
        # have no space to trim.
        self.connection.execute(
            "CREATE MACRO btrim(x, chars) AS "
            "CASE WHEN starts_with(x, ' ') OR ends_with(x, ' ') THEN trim(x, chars) ELSE x END"
        )
        # A file in a zone other than UTC goes to Postgres whole: its zone-less times are placed by Postgres's rules
        # (daylight-saving gaps and overlaps) and every row's day is its date in that zone, which DuckDB would need
        # its time-zone extension to compute. A cancellation pattern RE2 cannot compile (Postgres's regular
        # expressions are richer) sends every row to Postgres too.
        self.enabled = _re2_compatible(settings.cancellation_pattern) and settings.timezone in UTC_ZONES
        self.sql = _query(settings)
        self.params = {
            "earliest": datetime.combine(settings.min_date, time()),
            "after_latest": datetime.combine(settings.max_date + timedelta(days=1), time()),
            "cancellation": settings.cancellation_pattern,
            "max_value": MAX_ABS_VALUE,
        }

    def _sql(self) -> str:
        """The query for the registered batch: a product's scale is the sum of its factors' decimals, the most in the
        batch."""
        [(scale,)] = self.connection.execute(_SCALES).fetchall()
        return self.sql.replace(_SCALE, str(min(scale or 0, 2 * _DECIMALS)))

    def split(self, batch: pa.Table) -> Split:
        if not self.enabled or batch.num_rows == 0:
            return Split(typed=_empty_typed(), rest=batch)
        self.connection.register("batch", batch)
        try:
            result = self.connection.sql(self._sql(), params=self.params).to_arrow_table()
        finally:
            self.connection.unregister("batch")
        plain = result.column("plain")
        typed = result.filter(plain).select(TYPED_COLUMNS)
        self._remember(typed)
        if typed.num_rows == batch.num_rows:
            return Split(typed=typed, rest=batch.slice(0, 0))
        return Split(typed=typed, rest=batch.filter(pc.invert(plain)))

    def _remember(self, typed: pa.Table) -> None:
        """Keep the ids and lines of rows on their way to Postgres, to find the file's duplicates once it is read."""
        self.connection.register("seen_batch", typed.select(["transaction_id", "source_line"]))
        try:
            self.connection.execute("INSERT INTO seen SELECT * FROM seen_batch")
        finally:
            self.connection.unregister("seen_batch")

    def duplicate_lines(self) -> list[int]:
        """Lines remembered whose transaction_id a later remembered line repeats (the last copy wins)."""
        return [line for (line,) in self.connection.execute(_EARLIER_COPIES).fetchall()]

    def close(self) -> None:
        self.connection.close()
        shutil.rmtree(self.spill, ignore_errors=True)


def _re2_compatible(pattern: str) -> bool:
    try:
        duckdb.sql("SELECT regexp_matches('', $p)", params={"p": pattern}).fetchall()
    except duckdb.Error:
        return False
    return True


def _empty_typed() -> pa.Table:
    return pa.table({name: pa.array([], pa.string()) for name in TYPED_COLUMNS})

