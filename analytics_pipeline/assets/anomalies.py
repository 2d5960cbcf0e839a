"""metric_anomalies: days whose revenue, orders or order value break from their weekday pattern."""

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from analytics_pipeline.analysis.anomalies import detect_anomalies
from analytics_pipeline.resources import Warehouse
from analytics_pipeline.warehouse import series
from analytics_pipeline.warehouse.contract import table_metadata

METRICS = ("revenue", "orders", "avg_order_value")
# A region that sells nothing on more than this share of days has no weekday pattern to break: every sale would be
# a "spike" against a median of zero. Such regions are listed in the metadata instead of flooding the table.
MAX_ZERO_SHARE = 0.2

_INSERT = """
INSERT INTO analytics.metric_anomalies (day, metric, segment, actual, expected, score, direction, reason)
VALUES (:day, :metric, :segment, :actual, :expected, :score, :direction, :reason)
"""


@dg.asset(
    deps=["daily_metrics", "daily_region_metrics"],
    group_name="forecasting",
    kinds={"postgres", "pandas"},
    owners=["team:analytics"],
    pool="warehouse",
    metadata=table_metadata("metric_anomalies"),
    description=(
        "Days whose revenue, orders or average order value break from their recent pattern, overall (segment "
        "'total') and per region. Each day is scored against the median of the same weekday over the trailing "
        "8 weeks, on a log scale (retail noise is multiplicative), divided by a robust spread (the weekday's "
        "median absolute deviation, the recent residual spread, or a 5% floor, whichever is largest); |score| >= 4 "
        "is flagged as a spike or a drop, with the expected value, the actual value and a one-line reason. A "
        "closure that recurs on the same date as last year is not an anomaly. Regions with no sales on more than "
        f"{MAX_ZERO_SHARE:.0%} of days have no weekday pattern to break and are not scored (listed in metadata)."
    ),
)
def metric_anomalies(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    with warehouse.transaction() as conn:
        total = series.total_series(conn)
        regions = series.region_series(conn)
    zero_share = (regions["revenue"] == 0).groupby(regions["segment"]).mean()
    sparse = sorted(zero_share[zero_share > MAX_ZERO_SHARE].index)
    found = pd.concat(
        [
            detect_anomalies(total, METRICS).assign(segment=series.TOTAL),
            detect_anomalies(regions[~regions["segment"].isin(sparse)], METRICS),
        ],
        ignore_index=True,
    )
    rows = [
        {**row, "day": row["day"].date()}
        for row in found[["day", "metric", "segment", "actual", "expected", "score", "direction", "reason"]].to_dict(
            "records"
        )
    ]
    with warehouse.transaction() as conn:
        conn.execute(sa.text("DELETE FROM analytics.metric_anomalies"))
        if rows:
            conn.execute(sa.text(_INSERT), rows)

    recent = found.sort_values("day", ascending=False).head(10)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(rows),
            "overall_anomalies": int((found["segment"] == series.TOTAL).sum()),
            "regions_too_sparse_to_score": ", ".join(sparse) or "none",
            "latest": dg.MetadataValue.md(
                recent[["day", "segment", "metric", "direction", "reason"]].to_markdown(index=False) if rows else "none"
            ),
        }
    )
