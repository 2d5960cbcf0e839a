"""Daily metrics, overall and per region, product and company, aggregated inside Postgres in one pass.

The four daily tables are one multi-asset, ``daily_tables``: whatever months a run covers - the current one from the
schedule, the months a load touched, or twenty years from a backfill - one statement reads the transactions of those
days once and groups them every way the selected tables need into a temp table; each table then has the days
deleted and re-inserted from that result, all in one transaction. Each table is still an asset of its own (same
keys, partitions, checks and metadata as when each had its own statement), and a run may select any of them: the
statement then computes only what those need.
"""

from datetime import date, timedelta
from decimal import Decimal

import dagster as dg
import sqlalchemy as sa

from analytics_pipeline.assets.metadata import table_metadata
from analytics_pipeline.partitions import analysed_days, month_key, monthly
from analytics_pipeline.resources import Warehouse
from analytics_pipeline.warehouse import db

# Each daily table and what it is keyed by besides the day (None: one row per day).
DAILY_TABLES: dict[str, str | None] = {
    "daily_metrics": None,
    "daily_region_metrics": "region",
    "daily_product_metrics": "product",
    "daily_company_metrics": "company",
}

# The transactions of the range, as every grouping reads them. Texts are compared in byte order (COLLATE "C"): the
# groups and distinct counts are the same as under the database's collation (a deterministic collation calls two
# texts equal only when their bytes are), and sorting them is about twice as fast as through the locale.
# Cancellations keep their customer, amount and quantity but have no order to count.
_LINES = """
    SELECT day, coalesce(region, 'unknown') COLLATE "C" AS region, coalesce(product, 'unknown') COLLATE "C" AS product,
           coalesce(company, 'unknown') COLLATE "C" AS company, customer_id COLLATE "C" AS customer_id,
           CASE WHEN NOT is_cancellation THEN order_id END COLLATE "C" AS order_id, amount, quantity
    FROM analytics.transactions
    WHERE day BETWEEN :start AND :end
"""

# Revenue is the rounded sum of amounts, so returns (negative quantities) and cancellations reduce it; orders are
# distinct non-cancelled order ids; customers distinct customer ids.
# Per product, straight from the lines: an order has a line per product, so there is nothing to fold first.
_PRODUCT_BRANCH = """
SELECT 'product' AS dimension, day, product AS value, round(sum(amount), 2) AS revenue,
       count(DISTINCT order_id) AS orders, sum(quantity) AS units, count(DISTINCT customer_id) AS customers
FROM lines
GROUP BY day, product
"""

# Overall, per region and per company, from the lines folded to one row per (day, order, customer, region, company)
# first: a third of the rows for the distinct counts to sort (retail orders have 3-4 lines), with the same counts and
# sums (sums of sums are exact in numeric, and every distinct order and customer of a group is still there). The
# fold groups by the order right after the day: lines arrive in time order, so within a day they are mostly in order
# already and that sort is cheap (10 s of CPU against 14 s with the region first, on 5M retail lines).
_ORDER_GRAIN_BRANCH = """
SELECT {dimension} AS dimension, day, {value} AS value, round(sum(amount), 2) AS revenue,
       count(DISTINCT order_id) AS orders, sum(quantity) AS units, count(DISTINCT customer_id) AS customers
FROM (
    SELECT day, region, company, customer_id, order_id, sum(amount) AS amount, sum(quantity) AS quantity
    FROM lines
    GROUP BY day, order_id, customer_id, region, company
) AS order_lines
GROUP BY GROUPING SETS ({sets})
"""

# One statement, so one snapshot: the branches run side by side where Postgres has parallel workers (a Parallel
# Append under CREATE TABLE AS, which may use them where INSERT may not). daily_groups holds (dimension, day, value,
# revenue, orders, units, customers), dimension 'total' for the overall table; it is dropped at commit.
_GROUPED = """
CREATE TEMP TABLE daily_groups ON COMMIT DROP AS
WITH lines AS NOT MATERIALIZED ({lines})
{branches}
"""

# Overall: every day inside the data's span gets a row, zeros included, so forecasts and anomaly windows see quiet
# days; days outside the span are not invented.
_OVERALL = """
INSERT INTO analytics.daily_metrics (day, revenue, orders, units, customers, avg_order_value)
WITH span AS (
    SELECT greatest(min(day), CAST(:start AS date)) AS lo, least(max(day), CAST(:end AS date)) AS hi
    FROM analytics.transactions
),
days AS (
    SELECT CAST(d AS date) AS day FROM span, generate_series(span.lo, span.hi, interval '1 day') AS d
),
totals AS (
    SELECT day, revenue, orders, units, customers FROM daily_groups WHERE dimension = 'total'
)
SELECT days.day, coalesce(revenue, 0), coalesce(orders, 0), coalesce(units, 0), coalesce(customers, 0),
       round(revenue / nullif(orders, 0), 2)
FROM days LEFT JOIN totals USING (day)
"""

# The span grows when a load adds days after (or before) it; a refresh covers only the months that load touched, so
# the quiet days between the old span's edge and those months (a closed weekend at the end of the old last month)
# would have no row. Every refresh of the overall table therefore also writes the zero rows of quiet days anywhere in
# the span that lack one; days with transactions are left to their own month's refresh.
_QUIET_DAYS_IN_SPAN = """
INSERT INTO analytics.daily_metrics (day, revenue, orders, units, customers, avg_order_value)
SELECT CAST(d AS date), 0, 0, 0, 0, NULL
FROM (
    SELECT greatest(min(day), CAST(:first AS date)) AS lo, least(max(day), CAST(:last AS date)) AS hi
    FROM analytics.transactions
) AS span, generate_series(span.lo, span.hi, interval '1 day') AS d
WHERE NOT EXISTS (SELECT 1 FROM analytics.daily_metrics AS m WHERE m.day = CAST(d AS date))
  AND NOT EXISTS (SELECT 1 FROM analytics.transactions AS t WHERE t.day = CAST(d AS date))
"""

_BY_DIMENSION = """
INSERT INTO analytics.{table} (day, {dimension}, revenue, orders, units, customers, avg_order_value)
SELECT day, value, revenue, orders, units, customers, round(revenue / nullif(orders, 0), 2)
FROM daily_groups WHERE dimension = :dimension
"""


# The nightly refresh (01:15 UTC) must have run by 03:00 UTC, or the UI shows the daily tables as stale.
NIGHTLY_FRESHNESS = dg.FreshnessPolicy.cron(deadline_cron="0 3 * * *", lower_bound_delta=timedelta(hours=3))

UNIQUE_CHECK = "one_row_per_key"
RECONCILED_CHECK = "revenue_matches_transactions"

_TRANSACTION_REVENUE = "SELECT coalesce(sum(amount), 0) FROM analytics.transactions WHERE day BETWEEN :start AND :end"


def grouping_statement(dimensions: list[str | None]) -> str:
    """The one pass over the range's transactions that the tables keyed by ``dimensions`` need, into the temp table
    ``daily_groups``, built from the constant branches above: no value from data goes into the text."""
    branches = [_PRODUCT_BRANCH] if "product" in dimensions else []
    named = [dimension for dimension in ("region", "company") if dimension in dimensions]
    sets = (["(day)"] if None in dimensions else []) + [f"(day, {dimension})" for dimension in named]
    if sets:  # GROUPING(x) = 0 on the rows of a set grouped by x; the value is that set's dimension, if it has one
        cases = "".join(f"WHEN GROUPING({name}) = 0 THEN '{name}' " for name in named)
        branches.append(_ORDER_GRAIN_BRANCH.format(
            dimension=f"CASE {cases}ELSE 'total' END" if named else "'total'",
            value=f"coalesce({', '.join(named)})" if named else 'CAST(NULL AS text) COLLATE "C"',
            sets=", ".join(sets),
        ))
    return _GROUPED.format(lines=_LINES, branches="UNION ALL".join(branches))


def _range_metadata(start: date, end: date, rows: int, revenue: Decimal) -> dict:
    """What a run wrote, said as what it is. Dagster copies a run's metadata onto every partition the run covers, so
    a count over a range must not pose as each month's `dagster/row_count`: a range run reports its totals under
    `*_in_range` names next to the range, and only a one-month run also gives the month's row count."""
    metadata = {
        "first_day": str(start),
        "last_day": str(end),
        "days_in_range": (end - start).days + 1,
        "rows_in_range": rows,
        "revenue_in_range": float(revenue),
    }
    if month_key(start) == month_key(end):
        metadata["dagster/row_count"] = rows
    return metadata


def _spec(table: str, dimension: str | None) -> dg.AssetSpec:
    per = f"per {dimension} " if dimension else ""
    return dg.AssetSpec(
        table,
        deps=[
            dg.AssetDep("transactions", partition_mapping=dg.AllPartitionMapping()),
            "database_transactions",
            "api_transactions",
        ],
        group_name="metrics",
        kinds={"postgres", "sql"},
        owners=["team:analytics"],
        freshness_policy=NIGHTLY_FRESHNESS,
        metadata=table_metadata(table),
        description=(
            f"Daily revenue, orders (distinct non-cancelled order ids), units, distinct customers and average "
            f"order value {per}from `analytics.transactions`, one row per day{' and ' + dimension if dimension else ''}"
            f". Refunds and cancellations reduce revenue. Partitioned by month: re-running a month or a range of "
            f"months replaces exactly those days."
        ),
    )


def _check_specs(table: str, dimension: str | None) -> list[dg.AssetCheckSpec]:
    keyed = f" and {dimension}" if dimension else ""
    return [
        dg.AssetCheckSpec(UNIQUE_CHECK, asset=table, description=f"No two rows share a day{keyed}."),
        dg.AssetCheckSpec(
            RECONCILED_CHECK,
            asset=table,
            description="Revenue over the refreshed days equals the sum of transaction amounts on those days.",
        ),
    ]


def _write_table(conn: sa.Connection, table: str, dimension: str | None, params: dict) -> dict:
    """Replace the range's rows of one table from daily_groups; returns metadata beyond the range's figures."""
    conn.execute(sa.text(f"DELETE FROM analytics.{table} WHERE day BETWEEN :start AND :end"), params)
    if dimension is not None:
        conn.execute(sa.text(_BY_DIMENSION.format(table=table, dimension=dimension)), params | {"dimension": dimension})
        return {}
    conn.execute(sa.text(_OVERALL), params)
    first, last = analysed_days()
    filled = conn.execute(sa.text(_QUIET_DAYS_IN_SPAN), {"first": first, "last": last}).rowcount
    return {"quiet_days_filled_outside_range": filled}


def _figures(conn: sa.Connection, table: str, dimension: str | None, params: dict) -> tuple:
    """Rows, revenue and rows sharing a key over the range of one table, and a preview of its latest rows."""
    key_columns = f"day, {dimension}" if dimension else "day"
    rows, revenue, duplicates = conn.execute(
        sa.text(
            f"SELECT count(*), coalesce(sum(revenue), 0), count(*) - count(DISTINCT ({key_columns})) "
            f"FROM analytics.{table} WHERE day BETWEEN :start AND :end"
        ),
        params,
    ).one()
    sample = db.preview(
        conn,
        f"SELECT * FROM analytics.{table} WHERE day BETWEEN :start AND :end "
        f"ORDER BY day DESC{', revenue DESC' if dimension else ''} LIMIT 5",
        params,
    )
    return rows, revenue, duplicates, sample


@dg.multi_asset(
    name="daily_tables",
    specs=[_spec(table, dimension) for table, dimension in DAILY_TABLES.items()],
    check_specs=[spec for table, dimension in DAILY_TABLES.items() for spec in _check_specs(table, dimension)],
    partitions_def=monthly,
    backfill_policy=dg.BackfillPolicy.single_run(),
    can_subset=True,
    pool="warehouse",
    description="The four daily tables from one pass over the transactions of the months a run covers.",
)
def daily_tables(context: dg.AssetExecutionContext, warehouse: Warehouse):
    """Materialise the selected tables over the run's months. A table whose checks are selected without it is checked
    as it stands, over the run's months or, in a run without partitions (checks only), over every analysed day."""
    selected = {key.to_user_string() for key in context.selected_asset_keys}
    checks = {(key.asset_key.to_user_string(), key.name) for key in context.selected_asset_check_keys}
    written = {table: dimension for table, dimension in DAILY_TABLES.items() if table in selected}
    checked = {table: dimension for table, dimension in DAILY_TABLES.items()
               if table in selected | {checked_table for checked_table, _ in checks}}
    if context.has_partition_key or context.has_partition_key_range:
        window = context.partition_time_window
        params = {"start": window.start.date(), "end": (window.end - timedelta(days=1)).date()}
    else:
        params = dict(zip(("start", "end"), analysed_days(), strict=True))
    filled, figures = {}, {}
    with warehouse.transaction() as conn:
        if written:
            conn.execute(sa.text(grouping_statement(list(written.values()))), params)
        for table, dimension in written.items():
            filled[table] = _write_table(conn, table, dimension, params)
        expected = conn.execute(sa.text(_TRANSACTION_REVENUE), params).scalar_one()
        for table, dimension in checked.items():
            figures[table] = _figures(conn, table, dimension, params)
    for table in checked:
        rows, revenue, duplicates, sample = figures[table]
        # Each row's revenue is rounded to cents, so the sum may drift by half a cent per row, no more.
        tolerance = Decimal("0.005") * max(rows, 1)
        results = [
            dg.AssetCheckResult(
                asset_key=table, check_name=UNIQUE_CHECK, passed=duplicates == 0, metadata={"duplicates": duplicates}
            ),
            dg.AssetCheckResult(
                asset_key=table,
                check_name=RECONCILED_CHECK,
                passed=abs(revenue - expected) <= tolerance,
                metadata={"revenue": float(revenue), "transactions": float(expected), "tolerance": float(tolerance)},
            ),
        ]
        results = [result for result in results if (table, result.check_name) in checks]
        if table not in written:
            yield from results
            continue
        context.log.info(f"{table}: {rows} rows for {params['start']}..{params['end']}")
        metadata = _range_metadata(params["start"], params["end"], rows, revenue) | filled[table]
        metadata["preview"] = dg.MetadataValue.md(sample)
        yield dg.MaterializeResult(asset_key=table, metadata=metadata, check_results=results)
