"""revenue_forecast: the next 30 days of revenue, overall and per region, from the method that wins an honest
backtest."""

from datetime import UTC, datetime

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from analytics_pipeline.analysis import calendar, completeness
from analytics_pipeline.analysis.backtest import SCORED_ORIGINS
from analytics_pipeline.analysis.forecast import (
    HORIZON_DAYS,
    INTERVAL,
    METHODS,
    MIN_FORECAST_DAYS,
    MIN_MODEL_DAYS,
    SELECTION_MARGIN,
    Forecast,
    forecast_series,
)
from analytics_pipeline.analysis.history import STATUS_KEY, status
from analytics_pipeline.assets.metadata import table_metadata
from analytics_pipeline.resources import Warehouse
from analytics_pipeline.warehouse import markdown, series

_INSERT_FORECAST = """
INSERT INTO analytics.revenue_forecast (segment, day, predicted, lower_bound, upper_bound, method, generated_at)
VALUES (:segment, :day, :predicted, :lower, :upper, :method, :generated_at)
"""

_INSERT_BACKTEST = """
INSERT INTO analytics.forecast_backtest
    (segment, method, horizon_week, published, mae, smape, mase, coverage, n_origins, n_points, reason, generated_at)
VALUES (:segment, :method, :horizon_week, :published, :mae, :smape, :mase, :coverage, :n_origins, :n_points, :reason,
        :generated_at)
"""

_INSERT_TOTAL = """
INSERT INTO analytics.forecast_totals
    (segment, days, first_day, last_day, predicted, lower_bound, upper_bound, method, generated_at)
VALUES (:segment, :days, :first_day, :last_day, :predicted, :lower, :upper, :method, :generated_at)
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
        f"{INTERVAL:.0%} prediction interval. Four methods compete per segment: a scikit-learn ridge model refit on "
        "every run, last week repeated (lag 7), the mean of the last 4 same weekdays and exponential smoothing "
        f"(statsmodels ETS). Each is backtested at {SCORED_ORIGINS} weekly origins over the full {HORIZON_DAYS}-day "
        "horizon, as it would be published; the lowest MAE wins (a baseline must beat the model by "
        f"{SELECTION_MARGIN:.0%}) and the reason is recorded. All scores, per method and per week of the horizon, "
        "are in `analytics.forecast_backtest`: MAE in currency; sMAPE in %; MASE = MAE / MAE of lag 7 (below 1 beats "
        "'last week repeated'); coverage (of the published method) = share of actual days inside an interval built "
        "only from earlier origins' errors. Sums over the first week and the horizon, with an interval of the sum, "
        "are in `analytics.forecast_totals`. A day the trading calendar says is closed is forecast 0 with [0, 0]; "
        "nothing is forecast below 0; a partial last day (an export taken at midday) is left out of the history. "
        "History shorter than a backtest needs gets the mean of the last 4 same weekdays (the model needs "
        f"{MIN_MODEL_DAYS} days); under {MIN_FORECAST_DAYS} days nothing is forecast. Either way `{STATUS_KEY}` says "
        "'not enough data' and why."
    ),
)
def revenue_forecast(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    with warehouse.transaction() as conn:
        partial = completeness.partial_last_day(series.last_seen(conn), today=series.today(conn))
        total = completeness.complete_days(series.total_series(conn), partial)
        regions = completeness.complete_days(series.region_series(conn), partial)
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
        name: forecast_series(history, "revenue", HORIZON_DAYS, INTERVAL, calendars.get(name))
        for name, history in segments.items()
    }

    generated_at = datetime.now(UTC)
    # Replace everything, so a shorter history never leaves an earlier forecast behind; no rows, no backtest.
    rows = {"forecast": [], "backtest": [], "totals": []}
    for name, result in forecasts.items():
        for key, found in zip(rows, _rows(name, result, generated_at), strict=True):
            rows[key] += found
    with warehouse.transaction() as conn:
        for table in ("revenue_forecast", "forecast_backtest", "forecast_totals"):
            conn.execute(sa.text(f"DELETE FROM analytics.{table}"))  # noqa: S608 - fixed table names
        for sql, key in ((_INSERT_FORECAST, "forecast"), (_INSERT_BACKTEST, "backtest"), (_INSERT_TOTAL, "totals")):
            if rows[key]:
                conn.execute(sa.text(sql), rows[key])

    overall = forecasts[series.TOTAL]
    backtest = overall.backtest
    horizon_total = (overall.totals or {}).get(HORIZON_DAYS)
    context.log.info(f"forecast method {overall.method}; {overall.reason or overall.note}")
    return dg.MaterializeResult(
        metadata={
            STATUS_KEY: status(overall.note),
            "dagster/row_count": len(rows["forecast"]),
            "method": overall.method,
            "why_this_method": overall.reason or overall.note or "",
            "note": overall.note or "",
            "partial_last_day": partial.reason if partial else "none",
            "trading_calendar": calendars[series.TOTAL].describe() if calendars else "no history",
            "segments": len(forecasts),
            "history_days": len(total),
            f"next_{HORIZON_DAYS}_days_revenue": round(float(overall.frame["predicted"].sum()), 2),
            f"next_{HORIZON_DAYS}_days_range": (f"{horizon_total[1]:,.2f} to {horizon_total[2]:,.2f}"
                                                if horizon_total else "none"),
            "backtest_mae": _rounded(backtest.mae if backtest else None),
            "backtest_smape_pct": _rounded(backtest.smape if backtest else None),
            "backtest_mase": _rounded(backtest.mase if backtest else None),
            "backtest_coverage": _rounded(backtest.coverage if backtest else None),
            "backtest_total_by_method": dg.MetadataValue.md(_methods_table(overall)),
            "backtest_by_segment": dg.MetadataValue.md(_segments_table(forecasts)),
            "forecast_preview": dg.MetadataValue.md(
                markdown.table(overall.frame.head(10).round({"predicted": 2, "lower": 2, "upper": 2}))
            ),
        }
    )


def _rows(segment: str, result: Forecast, generated_at: datetime) -> tuple[list[dict], list[dict], list[dict]]:
    """The forecast, backtest and totals rows of one segment."""
    frame, common = result.frame, {"segment": segment, "generated_at": generated_at}
    forecast = [
        {**common, "day": row.day.date(), "predicted": round(float(row.predicted), 2),
         "lower": round(float(row.lower), 2), "upper": round(float(row.upper), 2), "method": result.method}
        for row in frame.itertuples()
    ]
    scores = result.scores if result.scores is not None else pd.DataFrame()
    scores = scores.astype(object).where(scores.notna(), None)  # no coverage is NULL, not NaN
    backtest = [
        {**common, **row, "method": METHODS[row["method"]], "reason": result.reason if row["published"] else None}
        for row in scores.to_dict("records")
    ]
    totals = [
        {**common, "days": days, "first_day": frame["day"].iloc[0].date(),
         "last_day": frame["day"].iloc[days - 1].date(), "predicted": round(point, 2), "lower": round(lower, 2),
         "upper": round(upper, 2), "method": result.method}
        for days, (point, lower, upper) in (result.totals or {}).items()
    ]
    return forecast, backtest, totals


def _methods_table(result: Forecast) -> str:
    """The total's methods side by side over the whole horizon, the published one first."""
    if result.scores is None:
        return "no backtest: " + (result.note or "")
    whole = result.scores[result.scores["horizon_week"] == 0].sort_values("published", ascending=False)
    shown = whole[["method", "published", "mae", "smape", "mase", "coverage"]].rename(
        columns={"mae": "MAE", "smape": "sMAPE %", "mase": "MASE vs lag 7"})
    return markdown.table(shown.round(3))


def _segments_table(forecasts: dict[str, Forecast]) -> str:
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
