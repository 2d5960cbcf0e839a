"""Daily metrics, overall and per region, product and company, aggregated inside Postgres.

Each asset is partitioned by month (see partitions.py for why not by day) with a single-run backfill policy: whatever
months a run covers - the current one from the schedule, the months a load touched, or twenty years from a backfill -
are deleted and re-inserted day by day by one SQL statement in one transaction.
"""

from datetime import date, timedelta
from decimal import Decimal

import dagster as dg
import sqlalchemy as sa

from analytics_pipeline.partitions import analysed_days, month_key, monthly
from analytics_pipeline.resources import Warehouse
from analytics_pipeline.warehouse import db
from analytics_pipeline.warehouse.contract import table_metadata

# Orders are distinct order ids that are not cancellations; cancellations and returns still reduce revenue and
# units because their amounts and quantities are negative.
_MEASURES = """
    round(sum(amount), 2) AS revenue,
    count(DISTINCT order_id) FILTER (WHERE NOT is_cancellation) AS orders,
    sum(quantity) AS units,
    count(DISTINCT customer_id) AS customers
"""

# Overall: every day inside the data's span gets a row, zeros included, so forecasts and anomaly windows see quiet
# days; days outside the span are not invented.
_OVERALL = f"""
INSERT INTO analytics.daily_metrics (day, revenue, orders, units, customers, avg_order_value)
WITH span AS (
    SELECT greatest(min(day), CAST(:start AS date)) AS lo, least(max(day), CAST(:end AS date)) AS hi
    FROM analytics.transactions
),
days AS (
    SELECT CAST(d AS date) AS day FROM span, generate_series(span.lo, span.hi, interval '1 day') AS d
),
totals AS (
    SELECT day, {_MEASURES}
    FROM analytics.transactions
    WHERE day BETWEEN :start AND :end
    GROUP BY day
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
SELECT day, dimension, revenue, orders, units, customers, round(revenue / nullif(orders, 0), 2)
FROM (
    SELECT day, coalesce({dimension}, 'unknown') AS dimension, {measures}
    FROM analytics.transactions
    WHERE day BETWEEN :start AND :end
    GROUP BY 1, 2
) AS grouped
"""


# The nightly refresh (01:15 UTC) must have run by 03:00 UTC, or the UI shows the daily tables as stale.
NIGHTLY_FRESHNESS = dg.FreshnessPolicy.cron(deadline_cron="0 3 * * *", lower_bound_delta=timedelta(hours=3))

UNIQUE_CHECK = "one_row_per_key"
RECONCILED_CHECK = "revenue_matches_transactions"

_TRANSACTION_REVENUE = "SELECT coalesce(sum(amount), 0) FROM analytics.transactions WHERE day BETWEEN :start AND :end"


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


def _daily_metrics_asset(table: str, dimension: str | None) -> dg.AssetsDefinition:
    per = f"per {dimension} " if dimension else ""
    keyed = f" and {dimension}" if dimension else ""
    key_columns = f"day, {dimension}" if dimension else "day"
    insert = (
        _BY_DIMENSION.format(table=table, dimension=dimension, measures=_MEASURES) if dimension else _OVERALL
    )

    @dg.asset(
        name=table,
        partitions_def=monthly,
        backfill_policy=dg.BackfillPolicy.single_run(),
        freshness_policy=NIGHTLY_FRESHNESS,
        deps=[
            dg.AssetDep("transactions", partition_mapping=dg.AllPartitionMapping()),
            "database_transactions",
            "api_transactions",
        ],
        group_name="metrics",
        kinds={"postgres", "sql"},
        owners=["team:analytics"],
        pool="warehouse",
        metadata=table_metadata(table),
        check_specs=[
            dg.AssetCheckSpec(UNIQUE_CHECK, asset=table, description=f"No two rows share a day{keyed}."),
            dg.AssetCheckSpec(
                RECONCILED_CHECK,
                asset=table,
                description="Revenue over the refreshed days equals the sum of transaction amounts on those days.",
            ),
        ],
        description=(
            f"Daily revenue, orders (distinct non-cancelled order ids), units, distinct customers and average "
            f"order value {per}from `analytics.transactions`, one row per day{' and ' + dimension if dimension else ''}"
            f". Refunds and cancellations reduce revenue. Partitioned by month: re-running a month or a range of "
            f"months replaces exactly those days."
        ),
    )
    def _asset(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
        window = context.partition_time_window
        params = {"start": window.start.date(), "end": (window.end - timedelta(days=1)).date()}
        with warehouse.transaction() as conn:
            conn.execute(sa.text(f"DELETE FROM analytics.{table} WHERE day BETWEEN :start AND :end"), params)
            rows = conn.execute(sa.text(insert), params).rowcount
            filled = {}
            if not dimension:
                first, last = analysed_days()
                count = conn.execute(sa.text(_QUIET_DAYS_IN_SPAN), {"first": first, "last": last}).rowcount
                filled = {"quiet_days_filled_outside_range": count}
            revenue, duplicates = conn.execute(
                sa.text(
                    f"SELECT coalesce(sum(revenue), 0), count(*) - count(DISTINCT ({key_columns})) "
                    f"FROM analytics.{table} WHERE day BETWEEN :start AND :end"
                ),
                params,
            ).one()
            expected = conn.execute(sa.text(_TRANSACTION_REVENUE), params).scalar_one()
            sample = db.preview(
                conn,
                f"SELECT * FROM analytics.{table} WHERE day BETWEEN :start AND :end "
                f"ORDER BY day DESC{', revenue DESC' if dimension else ''} LIMIT 5",
                params,
            )
        context.log.info(f"{table}: {rows} rows for {params['start']}..{params['end']}")
        # Each row's revenue is rounded to cents, so the sum may drift by half a cent per row, no more.
        tolerance = Decimal("0.005") * max(rows, 1)
        return dg.MaterializeResult(
            metadata=_range_metadata(params["start"], params["end"], rows, revenue) | filled | {"preview": sample},
            check_results=[
                dg.AssetCheckResult(check_name=UNIQUE_CHECK, passed=duplicates == 0, metadata={"duplicates": duplicates}),
                dg.AssetCheckResult(
                    check_name=RECONCILED_CHECK,
                    passed=abs(revenue - expected) <= tolerance,
                    metadata={"revenue": float(revenue), "transactions": float(expected), "tolerance": float(tolerance)},
                ),
            ],
        )

    return _asset


daily_metrics = _daily_metrics_asset("daily_metrics", None)
daily_region_metrics = _daily_metrics_asset("daily_region_metrics", "region")
daily_product_metrics = _daily_metrics_asset("daily_product_metrics", "product")
daily_company_metrics = _daily_metrics_asset("daily_company_metrics", "company")
