"""revenue_forecast: the next 30 days of revenue, overall and per region, with an honest backtest."""

from datetime import UTC, datetime

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from analytics_pipeline.analysis import calendar
from analytics_pipeline.analysis.forecast import (
    BACKTEST_ORIGINS,
    HORIZON_DAYS,
    INTERVAL,
    MIN_FORECAST_DAYS,
    MIN_MODEL_DAYS,
    Forecast,
    forecast_series,
)
from analytics_pipeline.analysis.history import STATUS_KEY, status
from analytics_pipeline.resources import Warehouse
from analytics_pipeline.warehouse import markdown, series
from analytics_pipeline.warehouse.contract import table_metadata

_INSERT_FORECAST = """
INSERT INTO analytics.revenue_forecast (segment, day, predicted, lower_bound, upper_bound, method, generated_at)
VALUES (:segment, :day, :predicted, :lower, :upper, :method, :generated_at)
"""

_INSERT_BACKTEST = """
INSERT INTO analytics.forecast_backtest
    (segment, method, mae, mape, smape, mase, coverage, baseline_mae, n_origins, n_points, note, generated_at)
VALUES (:segment, :method, :mae, :mape, :smape, :mase, :coverage, :baseline_mae, :n_origins, :n_points, :note,
        :generated_at)
"""


@dg.asset(
    deps=["daily_metrics", "daily_region_metrics"],
    group_name="forecasting",
    kinds={"postgres", "scikitlearn"},
    owners=["team:analytics"],
    pool="warehouse",
    metadata={**table_metadata("revenue_forecast"), "horizon_days": HORIZON_DAYS, "interval": INTERVAL},
    description=(
        f"Daily revenue for the next {HORIZON_DAYS} days, overall (segment 'total') and per region, with an "
        f"{INTERVAL:.0%} prediction interval, from a scikit-learn model refit on every run. Backtest figures "
        f"(rolling origin over the last {BACKTEST_ORIGINS} weeks, also in `analytics.forecast_backtest`): MAE is "
        "the mean absolute error in currency; sMAPE the symmetric mean absolute percentage error; MASE the model's "
        "MAE divided by a weekly seasonal-naive forecast's MAE (below 1 means the model beats 'same weekday last "
        "week'); coverage the share of actual days inside the interval. History shorter than "
        f"{MIN_MODEL_DAYS} days, flat, mostly zero or negative falls back to the seasonal-naive baseline; under "
        f"{MIN_FORECAST_DAYS} days nothing is forecast and the table is left empty. Either way `{STATUS_KEY}` says "
        "'not enough data' and why."
    ),
)
def revenue_forecast(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    with warehouse.transaction() as conn:
        total = series.total_series(conn)
        regions = series.region_series(conn)
    segments = {series.TOTAL: total}
    segments |= {name: frame.drop(columns="segment") for name, frame in regions.groupby("segment")}
    # Closed days (calendar.py) are forecast 0: the total's calendar uses the dominant country's holidays, a
    # region's those of the country it names, if any.
    calendars = {series.TOTAL: calendar.for_history(total, regions, HORIZON_DAYS)} if len(total) else {}
    calendars |= {
        name: calendar.for_history(history, horizon_days=HORIZON_DAYS, country=calendar.country_code(name))
        for name, history in segments.items() if name != series.TOTAL and len(history)
    }
    forecasts = {
        name: forecast_series(history, "revenue", HORIZON_DAYS, INTERVAL, calendars.get(name)) for name, history in segments.items()
    }

    generated_at = datetime.now(UTC)
    # Replace everything, so a shorter history never leaves an earlier forecast behind; no rows, no backtest.
    forecast_rows = [row for name, f in forecasts.items() for row in _forecast_rows(name, f, generated_at)]
    backtest_rows = [_backtest_row(name, f, generated_at) for name, f in forecasts.items() if len(f.frame)]
    with warehouse.transaction() as conn:
        conn.execute(sa.text("DELETE FROM analytics.revenue_forecast"))
        conn.execute(sa.text("DELETE FROM analytics.forecast_backtest"))
        if forecast_rows:
            conn.execute(sa.text(_INSERT_FORECAST), forecast_rows)
            conn.execute(sa.text(_INSERT_BACKTEST), backtest_rows)

    overall = forecasts[series.TOTAL]
    backtest = overall.backtest
    context.log.info(f"forecast method {overall.method}; {overall.note}")
    return dg.MaterializeResult(
        metadata={
            STATUS_KEY: status(overall.note),
            "dagster/row_count": len(forecast_rows),
            "method": overall.method,
            "note": overall.note or "",
            "trading_calendar": calendars[series.TOTAL].describe() if calendars else "no history",
            "segments": len(forecasts),
            "history_days": len(total),
            "next_30_days_revenue": round(float(overall.frame["predicted"].sum()), 2),
            "backtest_mae": _rounded(backtest.mae if backtest else None),
            "backtest_smape_pct": _rounded(backtest.smape if backtest else None),
            "backtest_mase": _rounded(backtest.mase if backtest else None),
            "backtest_coverage": _rounded(backtest.coverage if backtest else None),
            "backtest_by_segment": dg.MetadataValue.md(_backtest_table(forecasts)),
            "forecast_preview": dg.MetadataValue.md(markdown.table(overall.frame.head(10).round({"predicted": 2, "lower": 2, "upper": 2}))),
        }
    )


def _forecast_rows(segment: str, result: Forecast, generated_at: datetime) -> list[dict]:
    frame = result.frame
    return [
        {
            "segment": segment,
            "day": row.day.date(),
            "predicted": round(float(row.predicted), 2),
            "lower": round(float(row.lower), 2),
            "upper": round(float(row.upper), 2),
            "method": result.method,
            "generated_at": generated_at,
        }
        for row in frame.itertuples()
    ]


def _backtest_row(segment: str, result: Forecast, generated_at: datetime) -> dict:
    backtest = result.backtest
    fields = ("mae", "mape", "smape", "mase", "coverage", "baseline_mae", "n_origins", "n_points")
    values = {name: getattr(backtest, name) if backtest else None for name in fields}
    return {"segment": segment, "method": result.method, "note": result.note, "generated_at": generated_at, **values}


def _backtest_table(forecasts: dict[str, Forecast]) -> str:
    rows = [
        {
            "segment": name,
            "method": f.method,
            "MAE": _rounded(f.backtest.mae) if f.backtest else None,
            "sMAPE %": _rounded(f.backtest.smape) if f.backtest else None,
            "MASE": _rounded(f.backtest.mase) if f.backtest else None,
            "coverage": _rounded(f.backtest.coverage) if f.backtest else None,
        }
        for name, f in forecasts.items()
    ]
    return markdown.table(pd.DataFrame(rows))  # segment names are regions, from the files


def _rounded(value: float | None) -> float | None:
    return None if value is None or pd.isna(value) else round(float(value), 3)
