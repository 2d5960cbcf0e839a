"""The analytics on too little history: every step succeeds, says why the data is not enough, and leaves its table
consistent (no rows from an earlier, longer history)."""

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from analytics_pipeline import paths
from analytics_pipeline.analysis.anomalies import MIN_SCORED_DAYS
from analytics_pipeline.analysis.backtest import MIN_ORIGIN
from analytics_pipeline.analysis.forecast import (
    HORIZON_DAYS,
    METHODS,
    MIN_FORECAST_DAYS,
    MIN_MODEL_DAYS,
    MODEL_METHOD,
    NAIVE_METHOD,
)
from analytics_pipeline.analysis.history import NO_HISTORY, NOT_ENOUGH_DATA, READY, STATUS_KEY
from analytics_pipeline.analysis.narrative import MIN_COMPARISON_DAYS, NO_HISTORY_NARRATIVE
from analytics_pipeline.assets.anomalies import metric_anomalies
from analytics_pipeline.assets.charts import revenue_chart
from analytics_pipeline.assets.forecasting import revenue_forecast
from analytics_pipeline.assets.insights import GROUNDED_CHECK, insights
from analytics_pipeline_tests.conftest import resources

ASSETS = [revenue_forecast, metric_anomalies, insights, revenue_chart]
NAMES = [a.key.to_user_string() for a in ASSETS]
REGIONS = ("North", "South")
WEEKLY = np.array([0.8, 0.9, 1.0, 1.05, 1.2, 1.4, 0.7])  # Monday..Sunday

_DAILY = """
INSERT INTO analytics.daily_metrics (day, revenue, orders, units, customers, avg_order_value)
VALUES (:day, :revenue, :orders, :orders, :orders, :aov)
"""
_REGION = """
INSERT INTO analytics.daily_region_metrics (day, region, revenue, orders, units, customers, avg_order_value)
VALUES (:day, :region, :revenue, :orders, :orders, :orders, :aov)
"""


def load_history(engine: sa.Engine, revenue: np.ndarray, start: str = "2024-03-04") -> None:
    """Replace both daily tables with `revenue` per day (60/40 between two regions), 50 per order."""
    days = pd.date_range(start, periods=len(revenue), freq="D").date

    def rows(share: float, **extra) -> list[dict]:
        out = []
        for day, value in zip(days, revenue * share, strict=True):
            orders = int(round(value / 50)) if value > 0 else 0
            out.append({"day": day, "revenue": round(float(value), 2), "orders": orders,
                        "aov": round(float(value) / orders, 2) if orders else None, **extra})
        return out

    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM analytics.daily_region_metrics"))
        conn.execute(sa.text("DELETE FROM analytics.daily_metrics"))
        if len(revenue):
            conn.execute(sa.text(_DAILY), rows(1.0))
            for region, share in zip(REGIONS, (0.6, 0.4), strict=True):
                conn.execute(sa.text(_REGION), rows(share, region=region))


def weekly_revenue(days: int, seed: int = 3) -> np.ndarray:
    """Positive revenue with a trend, a weekly pattern and 8% noise, starting on a Monday."""
    noise = np.exp(np.random.default_rng(seed).normal(0, 0.08, days))
    return 10_000 * (1 + 0.3 * np.arange(days) / 365) * WEEKLY[np.arange(days) % 7] * noise


def run(instance, folders) -> tuple[dg.ExecuteInProcessResult, dict[str, str]]:
    result = dg.materialize(ASSETS, instance=instance, resources=resources(folders))
    assert result.success
    statuses = {
        name: result.asset_materializations_for_node(name)[0].metadata[STATUS_KEY].value for name in NAMES
    }
    return result, statuses


def table(engine: sa.Engine, sql: str) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql(sa.text(sql), conn)


# name: (revenue per day, reason expected per asset: forecast, anomalies, insights, chart; None means "ok")
SHORT = {
    "empty": (np.zeros(0), [NO_HISTORY] * 4),
    "one day": (
        weekly_revenue(1),
        [f"1 day of history; the forecast needs at least {MIN_FORECAST_DAYS}",
         f"1 day of history; anomaly scoring needs at least {MIN_SCORED_DAYS}",
         f"1 day of history; a week-on-week comparison needs at least {MIN_COMPARISON_DAYS}",
         f"1 day of history; the forecast band needs at least {MIN_FORECAST_DAYS}"],
    ),
    "three days": (
        weekly_revenue(3),
        [f"3 days of history; the forecast needs at least {MIN_FORECAST_DAYS}",
         f"3 days of history; anomaly scoring needs at least {MIN_SCORED_DAYS}",
         f"3 days of history; a week-on-week comparison needs at least {MIN_COMPARISON_DAYS}",
         f"3 days of history; the forecast band needs at least {MIN_FORECAST_DAYS}"],
    ),
    "twenty days": (
        weekly_revenue(20),
        [f"20 days of history; a backtest over {HORIZON_DAYS} days needs at least {MIN_ORIGIN + HORIZON_DAYS}",
         f"20 days of history; anomaly scoring needs at least {MIN_SCORED_DAYS}", None, None],
    ),
    "all zero": (np.zeros(90), ["all values are zero"] + ["no positive revenue in 90 days of history"] * 3),
    "all negative": (
        -weekly_revenue(90) / 10,
        ["no day with positive values (all zero or negative)"] + ["no positive revenue in 90 days of history"] * 3,
    ),
}


@pytest.mark.parametrize("case", list(SHORT))
def test_too_little_history_succeeds_and_says_why(case, engine, instance, folders):
    revenue, reasons = SHORT[case]
    load_history(engine, revenue)
    result, statuses = run(instance, folders)

    for name, reason in zip(NAMES, reasons, strict=True):
        if reason is None:
            assert statuses[name] == READY, name
        else:
            assert statuses[name].startswith(f"{NOT_ENOUGH_DATA}: "), name
            assert reason in statuses[name], name

    forecast = table(engine, "SELECT segment, predicted::float8 AS predicted, method FROM analytics.revenue_forecast")
    if len(revenue) < MIN_FORECAST_DAYS:
        assert forecast.empty
    else:  # the seasonal-naive fallback: a full horizon for the total and each region, never the model
        assert sorted(forecast["segment"].unique()) == ["North", "South", "total"]
        assert (forecast.groupby("segment").size() == HORIZON_DAYS).all()
        assert set(forecast["method"]) == {NAIVE_METHOD}
        # Revenue is never forecast below 0: an all-negative history forecasts 0, as an all-zero one does.
        assert (forecast["predicted"] == 0).all() == (case in ("all zero", "all negative"))

    anomalies = table(engine, "SELECT * FROM analytics.metric_anomalies")
    assert anomalies.empty

    stored = table(engine, "SELECT writer, narrative, ungrounded FROM analytics.insights")
    assert len(stored) == 1 and list(stored["ungrounded"][0]) == []
    if case == "empty":
        assert stored["narrative"][0] == NO_HISTORY_NARRATIVE and "not enough data yet" in NO_HISTORY_NARRATIVE.lower()
        assert stored["writer"][0] == "offline"
    [check] = result.get_asset_check_evaluations()
    assert check.check_name == GROUNDED_CHECK and check.passed

    charts = table(engine, "SELECT chart, length(png) AS size FROM analytics.charts ORDER BY chart")
    expected = ["revenue_overview"] if case == "empty" else ["revenue_north", "revenue_overview", "revenue_south"]
    assert list(charts["chart"]) == expected
    assert (charts["size"] > 1000).all()


def test_enough_history_forecasts_with_the_model_and_a_shorter_one_leaves_nothing_stale(engine, instance, folders):
    days = MIN_MODEL_DAYS + 8 * 7
    load_history(engine, weekly_revenue(days))
    _, statuses = run(instance, folders)
    assert statuses == dict.fromkeys(NAMES, READY)
    forecast = table(engine, "SELECT segment, method FROM analytics.revenue_forecast")
    assert len(forecast) == 3 * HORIZON_DAYS and set(forecast["method"]) == {MODEL_METHOD}
    backtest = table(engine, "SELECT segment, method, published, mae, mase, reason FROM analytics.forecast_backtest "
                             "WHERE horizon_week = 0 ORDER BY segment, method")
    assert list(backtest["segment"].unique()) == ["North", "South", "total"]
    assert (backtest.groupby("segment")["method"].apply(set) == set(METHODS.values())).all()
    published = backtest[backtest["published"]]
    assert list(published["segment"]) == ["North", "South", "total"] and published["mase"].notna().all()
    # The model is published either with the lowest MAE or within the 10% a baseline must beat it by, and the
    # reason says which.
    lowest = backtest.groupby("segment")["mae"].min()
    for row in published.itertuples():
        why = "lowest backtest MAE" if row.mae <= lowest[row.segment] else "kept, as no baseline's backtest MAE"
        assert row.reason.startswith(f"ridge model: {why}"), row.reason
    totals = table(engine, "SELECT segment, days FROM analytics.forecast_totals ORDER BY segment, days")
    assert list(totals.itertuples(index=False, name=None)) == [(s, d) for s in ("North", "South", "total")
                                                                for d in (7, HORIZON_DAYS)]

    # A planted spike on the last day is found, so the next run has anomaly rows to replace.
    spiked = weekly_revenue(days)
    spiked[-1] *= 4
    load_history(engine, spiked)
    run(instance, folders)
    assert not table(engine, "SELECT * FROM analytics.metric_anomalies").empty

    load_history(engine, np.zeros(0))
    _, statuses = run(instance, folders)
    assert all(status.startswith(NOT_ENOUGH_DATA) for status in statuses.values())
    for name in ("revenue_forecast", "forecast_backtest", "forecast_totals", "metric_anomalies"):
        assert table(engine, f"SELECT * FROM analytics.{name}").empty, name
    assert list(table(engine, "SELECT chart FROM analytics.charts")["chart"]) == ["revenue_overview"]
    assert sorted(p.name for p in paths.reports_dir().glob("*.png")) == ["revenue_overview.png"]
