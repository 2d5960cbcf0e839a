"""The canonical transaction, in SQL: stage a source's rows as text, then type them into `transactions`.

Every source - an uploaded file, a database table, a REST API - goes through the same two steps, so a value means
the same thing and is rejected for the same reason wherever it came from. A source's rows are identified by its
key (a file partition key, or a pull's batch key): promoting a key replaces exactly that key's rows.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import dagster as dg
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from analytics_pipeline.ingestion.columns import CANONICAL_FIELDS
from analytics_pipeline.ingestion.reader import RAW_COLUMNS, to_csv_bytes
from analytics_pipeline.ingestion.settings import FileSettings
from analytics_pipeline.warehouse import db

# Bounds on what a row may hold, so that no accepted value can break a table downstream. The daily tables keep
# revenue as numeric(18, 2), below 10^16: at 10^12 a line, a day needs 10,000 lines at the limit to reach it. A
# longer value than 500 characters is no id, name or number (a 10 MB "product" broke daily_product_metrics: a
# btree entry holds at most 2,704 bytes, and 500 characters are at most 2,000). Rejected, never truncated: a cut
# value would merge distinct products or ids without anyone knowing.
MAX_ABS_VALUE = 10**12
MAX_TEXT_CHARS = 500
_LIMITS = {
    "max_value": MAX_ABS_VALUE,
    "value_range": f"|x| <= {MAX_ABS_VALUE:,}",
    "max_chars": MAX_TEXT_CHARS,
}

# The reason naming a row's first field longer than the limit. Bytes are never fewer than characters, so the cheap
# byte lengths spare almost every row the character count. Built from the field names, never from data.
_TOO_LONG = f"""CASE WHEN greatest({", ".join(f"octet_length(r.{name})" for name in CANONICAL_FIELDS)}) > :max_chars
           THEN (SELECT format('%s has %s characters, more than the %s allowed', name, length(value), :max_chars)
                 FROM (VALUES {", ".join(f"({n}, '{name}', r.{name})" for n, name in enumerate(CANONICAL_FIELDS))})
                     AS field (n, name, value)
                 WHERE length(value) > :max_chars ORDER BY n LIMIT 1) END"""

# Typing happens once, here, in SQL next to the data. The file's settings pin how zone-less timestamps and
# day/month order are read, per transaction, so the server's own defaults cannot change what a file means.
# The two sorts of a load (de-duplication, time order) get memory enough to stay off disk for a few million rows.
_SESSION = """
SELECT set_config('TimeZone', :timezone, true),
       set_config('DateStyle', CASE WHEN :day_first THEN 'ISO, DMY' ELSE 'ISO, MDY' END, true),
       set_config('work_mem', '256MB', true)
"""

_PARSE = f"""
CREATE TEMP TABLE parsed ON COMMIT DROP AS
WITH typed AS MATERIALIZED (  -- typed once: inlined, each cast would run once per reference
    SELECT r.*,
           analytics.try_timestamptz(r.occurred_at) AS ts,
           CASE WHEN r.quantity IS NULL THEN 1 ELSE analytics.try_numeric(r.quantity) END AS qty,
           analytics.try_numeric(r.unit_price) AS price,
           analytics.try_numeric(r.amount) AS total,
           {_TOO_LONG} AS too_long
    FROM analytics.raw_uploads AS r
    WHERE r.file_key = :file_key
)
SELECT typed.*,
       CASE
           WHEN parse_error IS NOT NULL THEN 'malformed line: ' || parse_error
           WHEN too_long IS NOT NULL THEN too_long
           WHEN coalesce(btrim(occurred_at), '') = '' THEN 'missing timestamp'
           WHEN ts IS NULL THEN format('unparseable timestamp %L', occurred_at)
           WHEN ts < :earliest OR ts >= :after_latest  -- instants: cheaper than each row's UTC day
               THEN format('timestamp %L outside the accepted dates %s..%s', occurred_at, :min_date, :max_date)
           WHEN order_id IS NOT NULL AND btrim(order_id) = '' THEN 'missing order id'
           WHEN btrim(quantity) = '' THEN 'missing quantity'
           WHEN qty IS NULL THEN format('non-numeric quantity %L', quantity)
           WHEN abs(qty) > :max_value THEN format('quantity %L out of range (%s)', quantity, :value_range)
           WHEN coalesce(btrim(unit_price), '') <> '' AND price IS NULL
               THEN format('non-numeric unit price %L', unit_price)
           WHEN abs(price) > :max_value THEN format('unit price %L out of range (%s)', unit_price, :value_range)
           WHEN coalesce(btrim(amount), '') <> '' AND total IS NULL THEN format('non-numeric amount %L', amount)
           WHEN abs(total) > :max_value THEN format('amount %L out of range (%s)', amount, :value_range)
           WHEN total IS NULL AND price IS NULL THEN 'missing amount: neither an amount nor a unit price'
           WHEN total IS NULL AND abs(qty * price) > :max_value
               THEN format('amount %s (quantity x unit price) out of range (%s)', qty * price, :value_range)
           WHEN price IS NULL AND qty <> 0 AND abs(total) > :max_value * abs(qty)
               THEN format('unit price %s (amount / quantity) out of range (%s)', total / qty, :value_range)
       END AS reason,
       coalesce(
           nullif(btrim(transaction_id), ''),
           md5(concat_ws('|', order_id, occurred_at, customer_id, company, region, product, quantity, unit_price,
                         amount, currency))
       ) COLLATE "C" AS txn_id  -- de-duplication sorts by it: byte order is all it needs, and twice as fast
FROM typed
"""

_REJECT = """
INSERT INTO analytics.rejected_rows (file_key, line_number, raw_line, reason)
SELECT file_key, line_number,
       coalesce(raw_line, json_strip_nulls(json_build_object(
           'order_id', order_id, 'occurred_at', occurred_at, 'customer_id', customer_id, 'company', company,
           'region', region, 'product', product, 'quantity', quantity, 'unit_price', unit_price, 'amount', amount,
           'currency', currency))::text),
       reason
FROM parsed
WHERE reason IS NOT NULL
"""

# Within a file the last copy of a line wins; across files the latest load of a transaction_id wins: the rows it
# supersedes are deleted first and the new ones inserted plainly, which costs a third less than an upsert
# (ON CONFLICT checks each row speculatively). Rows are written in time order: de-duplicating sorts them by id (a
# hash), and a table laid out by hash makes every day-range aggregation read pages at random (3.5x slower on a
# two-year backfill).
_LATEST = """
CREATE TEMP TABLE latest ON COMMIT DROP AS
SELECT DISTINCT ON (txn_id)
       txn_id COLLATE "default" AS transaction_id,
       coalesce(nullif(btrim(order_id), ''), txn_id) AS order_id,
       ts AS occurred_at,
       (ts AT TIME ZONE 'UTC')::date AS day,
       nullif(btrim(customer_id), '') AS customer_id,
       nullif(btrim(company), '') AS company,
       nullif(btrim(region), '') AS region,
       nullif(btrim(product), '') AS product,
       qty AS quantity,
       coalesce(price, total / nullif(qty, 0)) AS unit_price,  -- unrounded: per-token prices are fractions of a cent
       coalesce(total, qty * price) AS amount,
       nullif(btrim(currency), '') AS currency,
       coalesce(btrim(order_id) ~ :cancellation_pattern, false) AS is_cancellation,
       file_key AS source,
       line_number AS source_line
FROM parsed
WHERE reason IS NULL
ORDER BY txn_id, line_number DESC
"""

_SUPERSEDE = """
DELETE FROM analytics.transactions AS t USING latest WHERE t.transaction_id = latest.transaction_id
"""

_LOAD = """
INSERT INTO analytics.transactions
    (transaction_id, order_id, occurred_at, day, customer_id, company, region, product, quantity, unit_price,
     amount, currency, is_cancellation, source, source_line)
SELECT * FROM latest ORDER BY occurred_at
"""

_SUMMARY = """
SELECT count(*) AS rows_read,
       count(*) FILTER (WHERE reason IS NOT NULL) AS rows_rejected,
       count(*) FILTER (WHERE reason IS NULL) AS rows_valid,
       CAST(min(ts AT TIME ZONE 'UTC') FILTER (WHERE reason IS NULL) AS date) AS first_day,
       CAST(max(ts AT TIME ZONE 'UTC') FILTER (WHERE reason IS NULL) AS date) AS last_day
FROM parsed
"""

_PREVIEW = """
SELECT transaction_id, order_id, occurred_at, region, product, quantity, unit_price, amount, is_cancellation
FROM analytics.transactions WHERE source = :file_key ORDER BY occurred_at LIMIT 5
"""

_TOP_REASONS = """
SELECT reason, count(*) AS rows FROM parsed WHERE reason IS NOT NULL GROUP BY reason ORDER BY rows DESC, reason LIMIT 10
"""



@dataclass(frozen=True)
class LoadSummary:
    rows_read: int
    rows_rejected: int
    duplicate_rows: int
    rows_loaded: int
    first_day: date | None
    last_day: date | None
    reasons: pd.DataFrame
    over_rejected_share: bool = False  # nothing was loaded: too many rows were bad
    preview: dg.MetadataValue = dg.MetadataValue.md("(no rows)")

    @property
    def rejected_share(self) -> float:
        return self.rows_rejected / self.rows_read if self.rows_read else 0.0

    def refusal(self, settings: FileSettings) -> str | None:
        """Why nothing was loaded (more bad rows than allowed), or None when the rows were loaded."""
        if not self.over_rejected_share:
            return None
        return (
            f"{self.rows_rejected} of {self.rows_read} rows ({self.rejected_share:.0%}) could not be loaded, more "
            f"than the allowed {settings.max_rejected_share:.0%}; most common: {self.reasons['reason'].iloc[0]}"
        )

    def metadata(self) -> dict:
        """What every loading asset reports; the refresh sensor reads first_day/last_day."""
        return {
            "preview": self.preview,
            "dagster/row_count": self.rows_loaded,
            "rows_read": self.rows_read,
            "rows_rejected": self.rows_rejected,
            "duplicate_rows": self.duplicate_rows,
            "first_day": str(self.first_day) if self.first_day else "",
            "last_day": str(self.last_day) if self.last_day else "",
            "rejection_reasons": dg.MetadataValue.md(
                self.reasons.to_markdown(index=False) if len(self.reasons) else "none"
            ),
        }


def stage(conn: sa.Connection, key: str, batches: Iterable[pa.Table]) -> None:
    """Replace the raw rows of ``key`` with ``batches`` (canonical text columns, see reader.RAW_COLUMNS)."""
    conn.execute(sa.text("DELETE FROM analytics.raw_uploads WHERE file_key = :key"), {"key": key})
    for batch in batches:
        db.copy_csv(conn, "raw_uploads", RAW_COLUMNS, to_csv_bytes(batch))


def promote(conn: sa.Connection, key: str, settings: FileSettings = FileSettings()) -> LoadSummary:
    """Type the staged rows of ``key`` into transactions and rejected_rows, replacing what ``key`` loaded before.

    When more than ``settings.max_rejected_share`` of the rows are bad, only the rejections are written.
    """
    params = {"file_key": key}
    conn.execute(sa.text(_SESSION), {"timezone": settings.timezone, "day_first": settings.day_first})
    conn.execute(sa.text("DELETE FROM analytics.transactions WHERE source = :file_key"), params)
    conn.execute(sa.text("DELETE FROM analytics.rejected_rows WHERE file_key = :file_key"), params)
    bounds = {
        "min_date": settings.min_date,
        "max_date": settings.max_date,
        "earliest": datetime.combine(settings.min_date, time(), UTC),
        "after_latest": datetime.combine(settings.max_date + timedelta(days=1), time(), UTC),
    }
    conn.execute(sa.text(_PARSE), params | _LIMITS | bounds)
    conn.execute(sa.text(_REJECT))
    summary = dict(conn.execute(sa.text(_SUMMARY)).mappings().one())
    reasons = db.fetch_frame(conn, _TOP_REASONS)
    valid = summary.pop("rows_valid")
    # Decided before anything reaches transactions: superseding would already have removed other sources' rows.
    refused = summary["rows_read"] > 0 and summary["rows_rejected"] / summary["rows_read"] > settings.max_rejected_share
    loaded = 0
    if not refused:
        # One row per distinct transaction_id is written, so the statement's row count is the loaded count and
        # the valid rows beyond it are duplicates: no second pass over the ids to count them.
        conn.execute(sa.text(_LATEST), {"cancellation_pattern": settings.cancellation_pattern})
        conn.exec_driver_sql("ANALYZE latest")  # the planner's choice between index probes and a hash join
        conn.execute(sa.text(_SUPERSEDE))
        loaded = conn.execute(sa.text(_LOAD)).rowcount
        conn.exec_driver_sql("DROP TABLE latest")
    conn.exec_driver_sql("DROP TABLE parsed")
    sample = db.preview(conn, _PREVIEW, params) if loaded else dg.MetadataValue.md("(no rows)")
    if refused:  # the days of rows that were not loaded are nobody's to refresh
        summary |= {"first_day": None, "last_day": None}
    return LoadSummary(
        preview=sample,
        **summary,
        rows_loaded=loaded,
        duplicate_rows=valid - loaded if not refused else 0,
        reasons=reasons,
        over_rejected_share=refused,
    )
