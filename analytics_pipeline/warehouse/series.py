"""Daily series as the analytics read them: one row per day inside the data's span, quiet days as zeros."""

import datetime

import pandas as pd
import sqlalchemy as sa

from analytics_pipeline.warehouse.db import fetch_frame

TOTAL = "total"
# The zone whose midnight ends a day: `analytics.transactions.day` is the UTC date of `occurred_at` (canonical.py), so
# every day of the daily tables, and "today" for them, is a UTC day.
DAY_TIMEZONE = "UTC"

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

_FORECAST_TOTALS = """
SELECT segment, days, first_day, predicted::float8 AS predicted, lower_bound::float8 AS lower,
       upper_bound::float8 AS upper
FROM analytics.forecast_totals ORDER BY segment, days
"""

_RECENT_BY = """
SELECT day, {dimension}, revenue::float8 AS revenue
FROM analytics.daily_{dimension}_metrics
WHERE day > (SELECT max(day) FROM analytics.daily_metrics) - :days
ORDER BY day
"""

# The time of each recent day's last transaction, in seconds after that day's midnight, for every day of the daily
# metrics' last `days` days (NULL for a day without transactions). Bounded on `transactions.day` (indexed), so it
# reads only those days' rows however long the history is.
_LAST_SEEN = """
WITH recent AS (
    SELECT day FROM analytics.daily_metrics
    WHERE day > (SELECT max(day) FROM analytics.daily_metrics) - CAST(:days AS integer)
),
last AS (
    SELECT day, max(occurred_at) AS last_at
    FROM analytics.transactions
    WHERE day >= (SELECT min(day) FROM recent)
    GROUP BY day
)
SELECT recent.day,
       extract(epoch FROM last.last_at - (CAST(recent.day AS timestamp) AT TIME ZONE :timezone))::float8 AS last_at
FROM recent LEFT JOIN last USING (day)
ORDER BY recent.day
"""

_TODAY = "SELECT CAST(now() AT TIME ZONE :timezone AS date)"


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


def forecast_totals(conn: sa.Connection) -> pd.DataFrame:
    """Forecast sums over the first week and the horizon with their own intervals: segment, days, first_day,
    predicted, lower, upper."""
    frame = fetch_frame(conn, _FORECAST_TOTALS)
    frame["first_day"] = pd.to_datetime(frame["first_day"])
    return frame


def recent_by(conn: sa.Connection, dimension: str, days: int = 56) -> pd.DataFrame:
    """The last ``days`` days per region/product/company in long form (bounded, for the insight facts)."""
    if dimension not in ("region", "product", "company"):
        raise ValueError(f"unknown dimension {dimension!r}")
    return _with_datetime_day(fetch_frame(conn, _RECENT_BY.format(dimension=dimension), {"days": days}))


def last_seen(conn: sa.Connection, days: int = 63) -> pd.DataFrame:
    """`day` and `last_at` (seconds after midnight of the day's last transaction, NaN without one) over the last
    ``days`` days of the daily metrics: what `completeness.partial_last_day` needs to tell a half day from a whole."""
    frame = fetch_frame(conn, _LAST_SEEN, {"days": days, "timezone": DAY_TIMEZONE})
    return _with_datetime_day(frame.astype({"last_at": "float64"}))


def today(conn: sa.Connection) -> datetime.date:
    """The current date in the day boundary of the daily tables, by the database's clock."""
    return conn.execute(sa.text(_TODAY), {"timezone": DAY_TIMEZONE}).scalar_one()
