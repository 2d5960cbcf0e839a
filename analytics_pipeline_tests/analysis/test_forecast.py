"""Forecasts: honest backtest beats the weekly naive, sane frames, safe fallbacks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analytics_pipeline.analysis.forecast import MIN_FORECAST_DAYS, NO_FORECAST, Backtest, Forecast, forecast_series

WEEKLY = np.array([0.8, 0.9, 1.0, 1.05, 1.2, 1.4, 0.7])  # Monday..Sunday


def daily_series(days: int = 730, seed: int = 7, noise: float = 0.08, closures: bool = False,
                 start: str = "2024-01-01") -> pd.DataFrame:
    """Trend (+30%/year) x weekly seasonality x lognormal noise, like the caller's frame."""
    rng = np.random.default_rng(seed)
    day = pd.date_range(start, periods=days, freq="D")
    revenue = 10_000 * (1 + 0.3 * np.arange(days) / 365) * WEEKLY[day.day_of_week]
    revenue *= np.exp(rng.normal(0, noise, days))
    if closures:
        revenue[((day.month == 12) & (day.day == 25)) | ((day.month == 1) & (day.day == 1))] = 0
    orders = np.round(revenue / 50)
    aov = np.where(orders > 0, revenue / np.maximum(orders, 1), np.nan)
    return pd.DataFrame({"day": day, "revenue": revenue, "orders": orders, "avg_order_value": aov})


def assert_valid_frame(result: Forecast, history: pd.DataFrame, horizon: int) -> None:
    frame = result.frame
    assert list(frame.columns) == ["day", "predicted", "lower", "upper"]
    assert len(frame) == horizon
    expected_days = pd.date_range(history["day"].max() + pd.Timedelta(days=1), periods=horizon)
    assert (pd.DatetimeIndex(frame["day"]) == expected_days).all()
    values = frame[["predicted", "lower", "upper"]]
    assert values.notna().all().all()
    assert (frame["lower"] <= frame["predicted"] + 1e-9).all()
    assert (frame["predicted"] <= frame["upper"] + 1e-9).all()
    assert (frame["lower"] >= 0).all()


@pytest.mark.parametrize("seed", [7, 8, 9])
def test_model_beats_weekly_naive_with_honest_coverage(seed: int) -> None:
    history = daily_series(seed=seed)
    result = forecast_series(history, "revenue", horizon=30, interval=0.8)
    bt = result.backtest
    assert isinstance(bt, Backtest)
    assert result.method.startswith("ridge regression")
    assert result.note == ""
    assert (bt.n_origins, bt.n_points) == (8, 56)
    assert bt.mase < 1.0, bt  # better than "same weekday last week"
    assert bt.mase == pytest.approx(bt.mae / bt.baseline_mae)
    assert 0.6 <= bt.coverage <= 1.0, bt
    assert 0 < bt.smape < 20 and bt.mape is not None and 0 < bt.mape < 20
    assert_valid_frame(result, history, 30)


def test_frame_follows_trend_and_weekday_shape() -> None:
    history = daily_series(seed=11)
    frame = forecast_series(history, horizon=28).frame.set_index("day")
    by_weekday = frame["predicted"].groupby(frame.index.day_of_week).mean()
    assert by_weekday.idxmax() == 5 and by_weekday.idxmin() == 6  # Saturday high, Sunday low
    last_level = history["revenue"].tail(28).mean()
    assert 0.9 * last_level < frame["predicted"].mean() < 1.2 * last_level


@pytest.mark.parametrize("horizon", [1, 7, 10, 30, 45])
def test_horizon_rows_dates_and_ordering(horizon: int) -> None:
    history = daily_series(days=400, seed=3)
    assert_valid_frame(forecast_series(history, horizon=horizon), history, horizon)


def test_wider_interval_for_higher_coverage() -> None:
    history = daily_series(seed=5)
    narrow = forecast_series(history, interval=0.5).frame
    wide = forecast_series(history, interval=0.95).frame
    assert ((wide["upper"] - wide["lower"]) > (narrow["upper"] - narrow["lower"])).all()
    assert np.allclose(wide["predicted"], narrow["predicted"])


def test_learnt_closures_are_forecast_near_zero() -> None:
    history = daily_series(days=720, seed=2, closures=True)  # ends 2025-12-20
    frame = forecast_series(history, horizon=14).frame.set_index("day")
    closed = pd.to_datetime(["2025-12-25", "2026-01-01"])
    typical = frame["predicted"].median()
    assert (frame.loc[closed, "predicted"] < 0.05 * typical).all()
    assert frame.drop(closed)["predicted"].min() > 0.3 * typical


def test_mape_is_none_when_backtest_has_zero_actuals() -> None:
    history = daily_series(days=730, seed=2, closures=True)  # backtest covers Dec 25
    bt = forecast_series(history).backtest
    assert bt is not None and bt.mape is None and bt.mase < 1.0


def test_fallback_on_short_history() -> None:
    history = daily_series(days=20, seed=1)
    result = forecast_series(history, horizon=30)
    assert "seasonal naive" in result.method
    assert result.note and "20 days" in result.note
    assert result.backtest is None
    assert_valid_frame(result, history, 30)
    # Seasonal naive: the first forecast day repeats the mean of its weekday in history.
    first = result.frame["day"].iloc[0]
    same_weekday = history.loc[history["day"].dt.day_of_week == first.day_of_week, "revenue"]
    assert result.frame["predicted"].iloc[0] == pytest.approx(same_weekday.mean())


def test_fallback_on_flat_series() -> None:
    history = daily_series(days=200).assign(revenue=1234.5)
    result = forecast_series(history, horizon=14)
    assert "seasonal naive" in result.method and "flat" in result.note
    assert_valid_frame(result, history, 14)
    assert np.allclose(result.frame["predicted"], 1234.5)


@pytest.mark.parametrize("days", [1, 3, MIN_FORECAST_DAYS - 1])
def test_tiny_histories_are_not_forecast_and_say_why(days: int) -> None:
    history = daily_series(days=days, start="2024-03-04")
    result = forecast_series(history, horizon=30)
    assert result.frame.empty and list(result.frame.columns) == ["day", "predicted", "lower", "upper"]
    assert result.method == NO_FORECAST and result.backtest is None
    assert result.note.endswith(f"of history; the forecast needs at least {MIN_FORECAST_DAYS}")


def test_two_weeks_are_enough_for_the_seasonal_naive_forecast() -> None:
    history = daily_series(days=MIN_FORECAST_DAYS, start="2024-03-04")
    result = forecast_series(history, horizon=30)
    assert "seasonal naive" in result.method and f"{MIN_FORECAST_DAYS} days" in result.note
    assert_valid_frame(result, history, 30)


def test_all_zero_and_empty_histories() -> None:
    zeros = daily_series(days=100).assign(revenue=0.0)
    result = forecast_series(zeros, horizon=7)
    assert "zero" in result.note and (result.frame["predicted"] == 0).all()
    empty = forecast_series(zeros.iloc[:0], horizon=7)
    assert empty.frame.empty and list(empty.frame.columns) == ["day", "predicted", "lower", "upper"]
    assert empty.note


def test_gaps_and_nan_are_treated_as_zero_days() -> None:
    history = daily_series(days=500, seed=4).drop(index=range(300, 310))
    result = forecast_series(history, "avg_order_value", horizon=7)
    assert result.backtest is not None and result.backtest.mase < 1.0
    assert_valid_frame(result, history, 7)


def test_missing_column_raises() -> None:
    with pytest.raises(ValueError, match="no column"):
        forecast_series(daily_series(days=100), value="profit")
    with pytest.raises(ValueError):
        forecast_series(daily_series(days=100).drop(columns="day"))


def test_deterministic() -> None:
    history = daily_series(seed=21)
    first, second = forecast_series(history), forecast_series(history)
    pd.testing.assert_frame_equal(first.frame, second.frame)
    assert first.backtest == second.backtest and first.method == second.method
