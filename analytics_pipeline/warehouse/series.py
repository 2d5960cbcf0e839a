"""Daily series as the analytics read them: one row per day inside the data's span, quiet days as zeros."""

import pandas as pd
import sqlalchemy as sa

from analytics_pipeline.warehouse.db import fetch_frame

TOTAL = "total"

_TOTAL = """
SELECT day, revenue::float8 AS revenue, orders::float8 AS orders, units::float8 AS units,
       customers::float8 AS customers, avg_order_value::float8 AS avg_order_value
FROM analytics.daily_metrics
ORDER BY day
"""

# Every region on every day of the overall span, so a region's quiet day is a zero, not a gap.
_BY_REGION = """
SELECT d.day, r.region AS segment, coalesce(m.revenue, 0)::float8 AS revenue,
       coalesce(m.orders, 0)::float8 AS orders, m.avg_order_value::float8 AS avg_order_value
FROM analytics.daily_metrics AS d
CROSS JOIN (SELECT DISTINCT region FROM analytics.daily_region_metrics) AS r
LEFT JOIN analytics.daily_region_metrics AS m ON m.day = d.day AND m.region = r.region
ORDER BY r.region, d.day
"""

_FORECASTS = """
SELECT segment, day, predicted::float8 AS predicted, lower_bound::float8 AS lower, upper_bound::float8 AS upper
FROM analytics.revenue_forecast ORDER BY segment, day
"""

_RECENT_BY = """
SELECT day, {dimension}, revenue::float8 AS revenue
FROM analytics.daily_{dimension}_metrics
WHERE day > (SELECT max(day) FROM analytics.daily_metrics) - :days
ORDER BY day
"""


def _with_datetime_day(frame: pd.DataFrame) -> pd.DataFrame:
    frame["day"] = pd.to_datetime(frame["day"])
    return frame


def total_series(conn: sa.Connection) -> pd.DataFrame:
    return _with_datetime_day(fetch_frame(conn, _TOTAL))


def region_series(conn: sa.Connection) -> pd.DataFrame:
    return _with_datetime_day(fetch_frame(conn, _BY_REGION))


def forecasts(conn: sa.Connection) -> pd.DataFrame:
    """Every segment's revenue forecast: segment ('total' or a region), day, predicted, lower, upper."""
    return _with_datetime_day(fetch_frame(conn, _FORECASTS))


def recent_by(conn: sa.Connection, dimension: str, days: int = 56) -> pd.DataFrame:
    """The last ``days`` days per region/product/company in long form (bounded, for the insight facts)."""
    if dimension not in ("region", "product", "company"):
        raise ValueError(f"unknown dimension {dimension!r}")
    return _with_datetime_day(fetch_frame(conn, _RECENT_BY.format(dimension=dimension), {"days": days}))
