"""metric_anomalies: days whose revenue, orders or order value break from their weekday pattern."""

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from analytics_pipeline.analysis import calendar, completeness
from analytics_pipeline.analysis.anomalies import (
    LEVEL_DAYS,
    MIN_SCORED_DAYS,
    OUTAGE_DAYS,
    REL_FLOOR,
    SPREAD_DAYS,
    THRESHOLD,
    WINDOW_WEEKS,
    detect_anomalies,
)
from analytics_pipeline.analysis.history import STATUS_KEY, shortage, status
from analytics_pipeline.assets.metadata import table_metadata
from analytics_pipeline.resources import Warehouse
from analytics_pipeline.warehouse import markdown, series

METRICS = ("revenue", "orders", "avg_order_value")
# A region that sells nothing on more than this share of days has no weekday pattern to break: every sale would be
# a "spike" against a median of zero. Such regions are listed in the metadata instead of flooding the table.
MAX_ZERO_SHARE = 0.2

_ROW = ["day", "metric", "segment", "actual", "expected", "score", "direction", "reason"]
_NONE = pd.DataFrame(columns=_ROW)  # what is found when nothing can be scored
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
        "'total') and per region. Each day's expected value is the recent level (median of the last "
        f"{LEVEL_DAYS} trading days, weekday effect taken out) times the weekday's usual deviation (median over "
        f"{WINDOW_WEEKS} weeks), on a log scale (retail noise is multiplicative); the score divides the day's "
        f"deviation by the detector's own recent error (1.4826 x median |actual - expected| over the last "
        f"{SPREAD_DAYS} trading days, each expected from earlier days only; at least {REL_FLOOR:.0%}); "
        f"|score| >= {THRESHOLD:g} is flagged as a spike or a drop, with the expected value, the actual value and a "
        "one-line reason. A day the trading calendar says is closed (a weekday it never trades, a public holiday it "
        "closed on before, a date it closes every year; learnt from the revenue) is not an anomaly, trading on one "
        f"is; a negative revenue day always is; {OUTAGE_DAYS} or more trading days in a row with nothing sold are one "
        "outage or data gap, reported once. A partial last day (an export taken at midday) is not scored. Regions "
        "with no "
        f"sales on more than {MAX_ZERO_SHARE:.0%} of days have no weekday pattern to break and are not scored "
        f"(listed in metadata). Under {MIN_SCORED_DAYS} days of history, or with no positive revenue, nothing is "
        f"scored, the table is left empty and `{STATUS_KEY}` says 'not enough data' and why."
    ),
)
def metric_anomalies(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    with warehouse.transaction() as conn:
        partial = completeness.partial_last_day(series.last_seen(conn), today=series.today(conn))
        total = completeness.complete_days(series.total_series(conn), partial)
        regions = completeness.complete_days(series.region_series(conn), partial)
    reason = shortage(total, MIN_SCORED_DAYS, "anomaly scoring")
    zero_share = (regions["revenue"] == 0).groupby(regions["segment"]).mean()
    sparse = sorted(zero_share[zero_share > MAX_ZERO_SHARE].index)
    # The total's calendar uses the dominant country's holidays; each region learns its own (and the holidays of
    # the country it names, if any) inside detect_anomalies.
    trading = calendar.for_history(total, regions) if len(total) else None
    scored = [] if reason else [
        (total.assign(segment=series.TOTAL), trading), (regions[~regions["segment"].isin(sparse)], None)
    ]
    found = pd.concat(
        [detect_anomalies(frame, METRICS, calendar=known) for frame, known in scored] or [_NONE], ignore_index=True
    )
    rows = [{**row, "day": row["day"].date()} for row in found[_ROW].to_dict("records")]
    with warehouse.transaction() as conn:
        conn.execute(sa.text("DELETE FROM analytics.metric_anomalies"))
        if rows:
            conn.execute(sa.text(_INSERT), rows)

    recent = found.sort_values("day", ascending=False).head(10)
    return dg.MaterializeResult(
        metadata={
            STATUS_KEY: status(reason),
            "dagster/row_count": len(rows),
            "overall_anomalies": int((found["segment"] == series.TOTAL).sum()),
            "regions_too_sparse_to_score": ", ".join(sparse) or "none",
            "trading_calendar": trading.describe() if trading else "no history",
            "partial_last_day": f"not scored: {partial.reason}" if partial else "none",
            "latest": dg.MetadataValue.md(
                markdown.table(recent[["day", "segment", "metric", "direction", "reason"]]) if rows else "none"
            ),
        }
    )
