"""The canonical transaction, in SQL: stage a source's rows as text, then type them into `transactions`.

Every source - an uploaded file, a database table, a REST API - goes through the same two steps, so a value means
the same thing and is rejected for the same reason wherever it came from. A source's rows are identified by its
key (a file partition key, or a pull's batch key): promoting a key replaces exactly that key's rows.
"""

import hashlib
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from analytics_pipeline.ingestion.columns import CANONICAL_FIELDS, MAX_ABS_VALUE, MAX_TEXT_CHARS
from analytics_pipeline.ingestion.fast_typing import TYPED_COLUMNS, FastTyping, Split
from analytics_pipeline.ingestion.reader import RAW_COLUMNS, to_csv_bytes
from analytics_pipeline.ingestion.settings import FileSettings
from analytics_pipeline.warehouse import db

LOADS_SCHEMA = "analytics_loads"
# Files from this size on are typed on the way in and land as a partition of their own; smaller ones are staged as
# text and typed in SQL (every line kept in raw_uploads). The variable exists so tests can send any file either way.
BULK_BYTES_ENV = "ANALYTICS_BULK_LOAD_BYTES"
DEFAULT_BULK_BYTES = 16 << 20


def is_big(size_bytes: int) -> bool:
    return size_bytes >= int(os.environ.get(BULK_BYTES_ENV, DEFAULT_BULK_BYTES))

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

# A date written with dots (02.03.2026) is day-first wherever it is written (Germany, Switzerland, Poland, Russia,
# Scandinavia, ...): it is read as such whatever the file's day_first, which decides only slashed dates (02/03/2026).
# Month-first with dots is not a convention anywhere, and reading 02.03.2026 as 3 February would be silent.
_DOTTED_AS_ISO = r"""CASE WHEN (substr(r.occurred_at, 2, 1) = '.' OR substr(r.occurred_at, 3, 1) = '.')
                    AND r.occurred_at ~ '^\s*[0-9]{1,2}\.[0-9]{1,2}\.[0-9]{4}'
               THEN regexp_replace(r.occurred_at, '^\s*([0-9]{1,2})\.([0-9]{1,2})\.([0-9]{4})', '\3-\2-\1')
               ELSE r.occurred_at END"""

_PARSE = f"""
CREATE TEMP TABLE parsed ON COMMIT DROP AS
WITH typed AS MATERIALIZED (  -- typed once: inlined, each cast would run once per reference
    SELECT r.*,
           analytics.try_timestamptz({_DOTTED_AS_ISO}) AS ts,
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
           WHEN ts IS NULL THEN format('unparseable timestamp %L', occurred_at) || CASE
               WHEN NOT :day_first AND occurred_at ~ '^ *(1[3-9]|2[0-9]|3[01])/(0?[1-9]|1[0-2])/'
                   THEN ' (the day comes first? set day_first = true for this file in the mapping file)'
               ELSE '' END
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
# A typed row as transactions holds it, the same whichever way it lands.
_TRANSACTION_ROW = """
       txn_id AS transaction_id,
       coalesce(nullif(btrim(order_id), ''), txn_id) AS order_id,
       ts AS occurred_at,
       CAST(ts AS date) AS day,  -- the business date: in the file's time zone (the session's, set from its settings)
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
WHERE reason IS NULL"""

_LATEST = f"""
CREATE TEMP TABLE latest ON COMMIT DROP AS
SELECT DISTINCT ON (txn_id) {_TRANSACTION_ROW}
ORDER BY txn_id, line_number DESC
"""

_SUPERSEDE = """
DELETE FROM analytics.transactions AS t USING {table} AS new WHERE t.transaction_id = new.transaction_id
"""

# Loads take this lock from the moment they remove the ids they bring from other sources until they commit, so two
# loads of the same transaction_id cannot both land (nothing else keeps an id unique across partitions).
_LAND_LOCK = "SELECT pg_advisory_xact_lock(hashtext('analytics.transactions'))"

# The rows of a big file that Postgres typed (the rest were typed on the way in): all of them, duplicates too; the
# duplicates go in one pass over the file's whole table.
_TYPED_HERE = "INSERT INTO {table} SELECT" + _TRANSACTION_ROW

# Within a file the last copy of a transaction_id wins. Staging dropped the earlier copies among the rows it typed;
# what is left to look at are the ids of the rows Postgres typed (a few), through the file table's id index.
_DROP_DUPLICATES = """
DELETE FROM {table} AS t
USING (SELECT transaction_id, max(source_line) AS kept FROM {table}
       WHERE transaction_id IN (SELECT txn_id FROM parsed WHERE reason IS NULL)
       GROUP BY transaction_id HAVING count(*) > 1) AS d
WHERE t.transaction_id = d.transaction_id AND t.source_line < d.kept
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
       CAST(min(ts) FILTER (WHERE reason IS NULL) AS date) AS first_day,  -- in the file's time zone, as `day`
       CAST(max(ts) FILTER (WHERE reason IS NULL) AS date) AS last_day
FROM parsed
"""

_PREVIEW = """
SELECT transaction_id, order_id, occurred_at, region, product, quantity, unit_price, amount, is_cancellation
FROM analytics.transactions WHERE source = :file_key ORDER BY day, occurred_at LIMIT 5
"""  # day first: the day index then finds the first rows of a big file without sorting all of them

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
    rows_typed_on_the_way: int = 0  # a big file's plain rows, typed before Postgres (never in raw_uploads)
    preview: str = db.NO_ROWS  # a few loaded rows as a Markdown table

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


@dataclass(frozen=True)
class Staged:
    """What staging a big file typed on the way in: rows, and the earlier copies of repeated ids it dropped."""

    typed: int = 0
    duplicates: int = 0


def file_table(key: str, staging: bool = False) -> str:
    """The table of a big file's rows: ``staging`` while it is being loaded, then its partition of transactions."""
    digest = hashlib.md5(key.encode()).hexdigest()[:24]
    return f"{LOADS_SCHEMA}.{'staged' if staging else 'file'}_{digest}"


def stage(
    conn: sa.Connection, key: str, batches: Iterable[pa.Table], settings: FileSettings | None = None
) -> Staged:
    """Stage the rows of ``key`` (canonical text columns, see reader.RAW_COLUMNS), replacing any staged before.

    With ``settings`` (a big file) the plain rows are typed on the way in (ingestion/fast_typing.py) into the file's
    own table, and only the others are kept as text in raw_uploads; without, every row is kept as text.
    """
    discard(conn, key)
    staged = file_table(key, staging=True)
    if settings is None:
        for batch in batches:
            db.copy_csv(conn, "raw_uploads", RAW_COLUMNS, to_csv_bytes(batch))
        return Staged()
    # Created in the transaction that fills it: with wal_level=minimal the COPY then writes no WAL.
    conn.exec_driver_sql(f"CREATE TABLE {staged} (LIKE analytics.transactions INCLUDING DEFAULTS)")
    conn.exec_driver_sql(f"ALTER TABLE {staged} ALTER COLUMN source SET DEFAULT '{_quoted(key)}'")
    conn.exec_driver_sql("SET LOCAL TimeZone = 'UTC'")  # the typed timestamps are UTC
    typing = FastTyping(settings)
    typed = 0
    try:
        for split in _pipelined(typing, batches):
            if split.typed.num_rows:
                typed += db.copy_csv(conn, staged, TYPED_COLUMNS, to_csv_bytes(split.typed))
            if split.rest.num_rows:
                db.copy_csv(conn, "raw_uploads", RAW_COLUMNS, to_csv_bytes(split.rest))
        # Within a file the last copy of a transaction_id wins; the few earlier copies go in one pass.
        earlier = typing.duplicate_lines()
    finally:
        typing.close()
    if earlier:
        conn.execute(  # a join: a list of literals inline would be compared with each row in turn
            sa.text(f"DELETE FROM {staged} AS t USING unnest(CAST(:lines AS bigint[])) AS d (line) "
                    "WHERE t.source_line = d.line"),
            {"lines": earlier},
        )
    return Staged(typed=typed, duplicates=len(earlier))


def _pipelined(typing: FastTyping, batches: Iterable[pa.Table]) -> Iterator[Split]:
    """Read batch n+2 and type batch n+1 on two threads while Postgres copies batch n: pyarrow, DuckDB and the COPY
    each let go of the GIL, so both cores work."""
    batches = iter(batches)
    with ThreadPoolExecutor(max_workers=1) as reading, ThreadPoolExecutor(max_workers=1) as splitting:
        read = reading.submit(next, batches, None)
        pending = None
        while True:
            batch = read.result()
            if batch is not None:
                read = reading.submit(next, batches, None)
            following = splitting.submit(typing.split, batch) if batch is not None else None
            if pending is not None:
                yield pending.result()
            if following is None:
                return
            pending = following


def discard(conn: sa.Connection, key: str) -> None:
    """Forget what was staged for ``key`` (its text rows and a big file's table); what it loaded stays."""
    conn.execute(sa.text("DELETE FROM analytics.raw_uploads WHERE file_key = :key"), {"key": key})
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {file_table(key, staging=True)}")


def remove(conn: sa.Connection, key: str) -> None:
    """Remove every transaction of ``key``: its partition if it has one, its rows in the shared one."""
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {file_table(key)}")
    conn.execute(sa.text("DELETE FROM analytics.transactions WHERE source = :key"), {"key": key})


def promote(
    conn: sa.Connection, key: str, settings: FileSettings = FileSettings(), staged_duplicates: int | None = None
) -> LoadSummary:
    """Type the staged rows of ``key`` into transactions and rejected_rows, replacing what ``key`` loaded before.

    When more than ``settings.max_rejected_share`` of the rows are bad, only the rejections are written.
    ``staged_duplicates``: the earlier copies of repeated ids that staging a big file dropped from the file's table.
    """
    params = {"file_key": key}
    staged = file_table(key, staging=True)
    big = conn.execute(sa.text("SELECT to_regclass(:t) IS NOT NULL"), {"t": staged}).scalar_one()
    conn.execute(sa.text(_SESSION), {"timezone": settings.timezone, "day_first": settings.day_first})
    conn.execute(sa.text("DELETE FROM analytics.rejected_rows WHERE file_key = :file_key"), params)
    bounds = {
        "min_date": settings.min_date,
        "max_date": settings.max_date,
        "earliest": datetime.combine(settings.min_date, time(), UTC),
        "after_latest": datetime.combine(settings.max_date + timedelta(days=1), time(), UTC),
    }
    conn.execute(sa.text(_PARSE), params | _LIMITS | bounds | {"day_first": settings.day_first})
    conn.execute(sa.text(_REJECT))
    summary = dict(conn.execute(sa.text(_SUMMARY)).mappings().one())
    if big:  # the rows typed on the way in count as read and valid
        kept, first, last = conn.execute(sa.text(f"SELECT count(*), min(day), max(day) FROM {staged}")).one()
        typed_on_the_way = kept + (staged_duplicates or 0)
        summary["rows_read"] += typed_on_the_way
        summary["rows_valid"] += typed_on_the_way
        days = [d for d in (summary["first_day"], summary["last_day"], first, last) if d]
        summary["first_day"], summary["last_day"] = (min(days), max(days)) if days else (None, None)
    reasons = db.fetch_frame(conn, _TOP_REASONS)
    valid = summary.pop("rows_valid")
    # Decided before anything reaches transactions: superseding would already have removed other sources' rows.
    refused = summary["rows_read"] > 0 and summary["rows_rejected"] / summary["rows_read"] > settings.max_rejected_share
    loaded = 0
    cancellation = {"cancellation_pattern": settings.cancellation_pattern}
    if refused:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {staged}")
    elif big:
        conn.execute(sa.text(_TYPED_HERE.format(table=staged)), cancellation)
        # Built once, sorted in memory, before anything asks for it: de-duplicating and superseding both use it.
        conn.exec_driver_sql("SET LOCAL maintenance_work_mem = '512MB'")
        conn.exec_driver_sql(f"CREATE INDEX ON {staged} (transaction_id)")
        conn.exec_driver_sql("SET LOCAL default_statistics_target = 10")  # enough to plan two joins; 10x quicker
        conn.exec_driver_sql(f"ANALYZE {staged}")
        duplicates = conn.execute(sa.text(_DROP_DUPLICATES.format(table=staged))).rowcount
        loaded = valid - (staged_duplicates or 0) - duplicates
        _land(conn, key, staged)
    else:
        # One row per distinct transaction_id is written, so the statement's row count is the loaded count and
        # the valid rows beyond it are duplicates: no second pass over the ids to count them.
        conn.execute(sa.text(_LATEST), cancellation)
        conn.exec_driver_sql("ANALYZE latest")  # the planner's choice between index probes and a hash join
        conn.exec_driver_sql(_LAND_LOCK)
        remove(conn, key)
        conn.execute(sa.text(_SUPERSEDE.format(table="latest")))
        loaded = conn.execute(sa.text(_LOAD)).rowcount
        conn.exec_driver_sql("DROP TABLE latest")
    if refused:
        remove(conn, key)
    conn.exec_driver_sql("DROP TABLE parsed")
    sample = db.preview(conn, _PREVIEW, params) if loaded else db.NO_ROWS
    if refused:  # the days of rows that were not loaded are nobody's to refresh
        summary |= {"first_day": None, "last_day": None}
    return LoadSummary(
        preview=sample,
        **summary,
        rows_loaded=loaded,
        rows_typed_on_the_way=typed_on_the_way if big else 0,
        duplicate_rows=valid - loaded if not refused else 0,
        reasons=reasons,
        over_rejected_share=refused,
    )


def _land(conn: sa.Connection, key: str, staged: str) -> None:
    """Index the file's table, take its ids from every other source, and attach it as the file's partition."""
    conn.exec_driver_sql(f"CREATE INDEX ON {staged} (day)")
    conn.exec_driver_sql(_LAND_LOCK)
    remove(conn, key)
    conn.execute(sa.text(_SUPERSEDE.format(table=staged)))
    partition = file_table(key)
    conn.exec_driver_sql(f"ALTER TABLE {staged} RENAME TO {partition.split('.')[1]}")
    conn.execute(
        sa.text(f"ALTER TABLE analytics.transactions ATTACH PARTITION {partition} FOR VALUES IN ('{_quoted(key)}')")
    )


def _quoted(key: str) -> str:
    """A file key as a SQL literal's body (DDL takes no parameters); keys are sanitised names, but quotes double."""
    return key.replace("'", "''")
