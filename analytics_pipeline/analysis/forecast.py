"""Daily forecasts with an honest backtest, as pure functions over pandas.

The model is deliberately small (ridge regression on log1p) so it refits in well under
a second on every materialisation, is deterministic and is explainable on a dashboard.
Short, flat, all-zero or intermittent histories fall back to a weekly seasonal naive
forecast, and a history too short even for that yields no rows, instead of raising:
an asset that fails on a quiet store is worse than one that says "not enough data yet".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge

from analytics_pipeline.analysis.calendar import TradingCalendar
from analytics_pipeline.analysis.history import too_short

HORIZON_DAYS = 30  # days forecast after the last day of history
INTERVAL = 0.8  # nominal coverage of the prediction interval
# Two weeks: every weekday seen twice, so the seasonal-naive rule's own errors can size its interval.
MIN_FORECAST_DAYS = 14
MIN_MODEL_DAYS = 70  # ~10 weeks: below this the regression has too little to learn from
MIN_ORIGIN = 56  # a backtest origin needs 8 weeks behind it (4 weeks of lags + 4 of rows)
BACKTEST_ORIGINS = 8  # weekly origins reported in the backtest
CALIBRATION_ORIGINS = 8  # extra earlier origins whose residuals calibrate backtest intervals
HALF_LIFE_DAYS = 120.0  # recency weighting of training rows
RIDGE_ALPHA = 1.0
MODEL_METHOD = "ridge regression on log1p (trend, weekday, closures, same-weekday lags)"
NAIVE_METHOD = "seasonal naive (weekly: mean of the last 4 same weekdays)"
NO_FORECAST = "none"


@dataclass(frozen=True)
class Backtest:
    """Rolling-origin accuracy (definitions in `forecast_series`); percents are 0-100."""

    mae: float
    smape: float
    mape: float | None
    mase: float
    coverage: float
    baseline_mae: float
    n_origins: int
    n_points: int


@dataclass(frozen=True)
class Forecast:
    """Forecast rows (day, predicted, lower, upper) plus how they were produced."""

    frame: pd.DataFrame
    method: str
    backtest: Backtest | None
    note: str  # why the regression model was not used (no rows, or the fallback); empty for the model


def _frame(last_day: pd.Timestamp, point, lower, upper) -> pd.DataFrame:
    days = pd.date_range(last_day + pd.Timedelta(days=1), periods=len(point), freq="D")
    return pd.DataFrame({"day": days, "predicted": point, "lower": lower, "upper": upper})


def _daily_values(history: pd.DataFrame, value: str) -> pd.Series:
    """Return a float series on a complete daily index (gaps and NaN become 0)."""
    for col in ("day", value):
        if col not in history.columns:
            raise ValueError(f"history has no column {col!r}")
    frame = history[["day", value]].copy()
    frame["day"] = pd.to_datetime(frame["day"]).dt.normalize()
    values = pd.to_numeric(frame[value], errors="coerce").fillna(0.0).astype(float)
    series = values.groupby(frame["day"].to_numpy()).sum().sort_index()
    return series if series.empty else series.asfreq("D", fill_value=0.0)


def _closure_mask(days: pd.DatetimeIndex, train: pd.Series) -> np.ndarray:
    """Flag calendar days (month/day) that were zero at every occurrence in `train`.

    Learnt only when zeros are rare (<= 10% of days) and from zero runs of <= 3 days:
    Dec 25 / Jan 1 is a closure, a two-week data outage is not. One zero occurrence
    suffices, so closures are known from the second year onwards.
    """
    zero = (train == 0).to_numpy()
    if train.empty or zero.mean() > 0.10:
        return np.zeros(len(days), dtype=bool)
    run_id = np.cumsum(np.r_[True, zero[1:] != zero[:-1]])
    run_len = np.bincount(run_id)[run_id]
    short_zero = pd.Series(zero & (run_len <= 3), index=train.index)
    keys = train.index.strftime("%m-%d")
    closed_all = short_zero.groupby(keys).all()
    return np.asarray(days.strftime("%m-%d").isin(set(closed_all[closed_all].index)))


def _same_weekday_lags(level: np.ndarray, origin: int, targets: np.ndarray) -> np.ndarray:
    """Per target: mean of the 4 latest same weekdays before origin, mean of the last
    28 days. Both are known at the origin for any step, so valid for a 30-day horizon;
    closure/outage days are NaN in `level` and skipped."""
    first = (targets - origin) // 7 + 1  # weeks back to the latest same weekday < origin
    idx = targets[:, None] - 7 * (first[:, None] + np.arange(4))
    lags = np.where(idx >= 0, level[np.clip(idx, 0, None)], np.nan)
    window = level[max(0, origin - 28) : origin]
    recent = float(np.nanmean(window)) if np.any(~np.isnan(window)) else np.nan
    counts = (~np.isnan(lags)).sum(axis=1)
    same = np.where(counts > 0, np.nansum(lags, axis=1) / np.maximum(counts, 1), recent)
    return np.column_stack([same, np.full(len(targets), recent)])


def _fit_predict(y: pd.Series, origin: int, steps: int, horizon: int) -> tuple[np.ndarray, ...]:
    """Fit a direct multi-step model on y[:origin]; predict `steps` days from origin.

    Rows are (weekly origin o, target o+k<o+horizon) pairs using only data before o,
    weighted by recency so the trend follows recent growth. Returns log predictions,
    in-sample week-1 log residuals and a per-step multiplier (in-sample error growth
    from week 1 to later weeks) that widens intervals further out.
    """
    days = pd.date_range(y.index[0], periods=origin + steps, freq="D")
    closed = _closure_mask(days, y.iloc[:origin])
    history = y.to_numpy()[:origin]
    logy = np.log1p(np.maximum(history, 0))
    # With rare zeros, a non-closure zero is an outage: skip it as lag input and target.
    outage = (history == 0) & ~closed[:origin] & bool((history == 0).mean() <= 0.10)
    level = np.where(closed[:origin] | outage, np.nan, logy)
    trend = (days - days[0]).days.to_numpy() / 365.25
    base = np.column_stack([trend, np.eye(7)[days.day_of_week.to_numpy()], closed])

    def design(o: int, targets: np.ndarray) -> np.ndarray:
        return np.column_stack([base[targets], _same_weekday_lags(level, o, targets)])

    span = max(horizon, 7)  # at least a week so every weekday is a training target
    rows = [(o, np.arange(o, min(o + span, origin))) for o in range(origin - 7, 27, -7)]
    X = np.vstack([design(o, t) for o, t in rows])
    target_days = np.concatenate([t for _, t in rows])
    step = np.concatenate([t - o for o, t in rows])
    ok = ~np.isnan(X).any(axis=1) & ~outage[target_days]
    weight = 0.5 ** ((origin - 1 - target_days[ok]) / HALF_LIFE_DAYS)
    model = Ridge(alpha=RIDGE_ALPHA).fit(X[ok], logy[target_days[ok]], sample_weight=weight)
    resid = logy[target_days[ok]] - model.predict(X[ok])
    week = step[ok] // 7
    spread = pd.Series(np.abs(resid)).groupby(week).mean().reindex(range(week.max() + 1))
    growth = np.nan_to_num((spread / max(spread.iloc[0], 1e-12)).to_numpy(), nan=1.0).clip(1.0)
    future = design(origin, np.arange(origin, origin + steps))
    future = np.where(np.isnan(future), np.nanmean(logy), future)
    per_step = growth[np.minimum(np.arange(steps) // 7, len(growth) - 1)]
    return model.predict(future), resid[week == 0], per_step


def _bounds(pred_log: np.ndarray, resid: np.ndarray, interval: float, growth: np.ndarray):
    """Point, lower, upper in original units; log-scale residuals make the band
    multiplicative (a Saturday twice a Monday gets a band twice as wide)."""
    lo_q, hi_q = np.quantile(resid, [(1 - interval) / 2, (1 + interval) / 2])
    point = np.clip(np.expm1(pred_log), 0, None)
    lower = np.clip(np.expm1(pred_log + min(lo_q, 0.0) * growth), 0, None)
    upper = np.clip(np.expm1(pred_log + max(hi_q, 0.0) * growth), 0, None)
    return point, lower, upper


def _metrics(actual: np.ndarray, pred: np.ndarray, naive: np.ndarray) -> tuple[float, ...]:
    """MAE, sMAPE %, MAPE % (nan if any actual is 0), baseline MAE."""
    err = np.abs(actual - pred)
    denom = np.abs(actual) + np.abs(pred)
    smape = np.where(denom > 0, 2 * err / np.where(denom > 0, denom, 1), 0.0).mean() * 100
    mape = float("nan") if np.any(actual == 0) else float(np.mean(err / np.abs(actual)) * 100)
    return float(err.mean()), float(smape), mape, float(np.mean(np.abs(actual - naive)))


def _model_forecast(y: pd.Series, horizon: int, interval: float) -> tuple[pd.DataFrame, Backtest]:
    """Regression forecast plus rolling-origin backtest over weekly origins.

    Each scored origin's interval comes from out-of-sample residuals of the origins
    before it (honest coverage); the final interval uses the scored origins' residuals.
    """
    n, values = len(y), y.to_numpy()
    origins = [n - 7 * j for j in range(BACKTEST_ORIGINS + CALIBRATION_ORIGINS, 0, -1)]
    runs = []  # (origin, log prediction, out-of-sample log residuals, in-sample residuals)
    for origin in (o for o in origins if o >= MIN_ORIGIN):
        pred_log, fit_resid, _ = _fit_predict(y, origin, 7, horizon)
        oos = np.log1p(np.maximum(values[origin : origin + 7], 0)) - pred_log
        runs.append((origin, pred_log, oos, fit_resid))
    scored = runs[-BACKTEST_ORIGINS:]
    actual, pred, inside = [], [], []
    for i, (origin, pred_log, _, fit_resid) in enumerate(runs):
        earlier = [r[2] for r in runs[max(0, i - CALIBRATION_ORIGINS) : i]]
        pool = np.concatenate(earlier) if earlier else fit_resid
        point, lower, upper = _bounds(pred_log, pool, interval, np.ones(7))
        truth = values[origin : origin + 7]
        actual, pred = actual + [truth], pred + [point]
        inside.append((truth >= lower - 1e-9) & (truth <= upper + 1e-9))
    k = len(scored)
    a, p = np.concatenate(actual[-k:]), np.concatenate(pred[-k:])
    naive = np.concatenate([values[o - 7 : o] for o, *_ in scored])
    mae, smape, mape, base = _metrics(a, p, naive)
    mase = mae / base if base > 0 else (0.0 if mae == 0 else float("inf"))
    coverage = float(np.concatenate(inside[-k:]).mean())
    mape_or_none = None if np.isnan(mape) else mape
    backtest = Backtest(mae, smape, mape_or_none, mase, coverage, base, k, len(a))
    pred_log, _, growth = _fit_predict(y, n, horizon, horizon)
    pool = np.concatenate([r[2] for r in scored])
    point, lower, upper = _bounds(pred_log, pool, interval, growth)
    return _frame(y.index[-1], point, lower, upper), backtest


def _naive_forecast(y: pd.Series, horizon: int, interval: float, clip: bool) -> pd.DataFrame:
    """Mean of the last 4 same weekdays; interval from the in-history residuals of that
    rule (at least MIN_FORECAST_DAYS - 7 of them)."""
    values, n = y.to_numpy(), len(y)
    by_dow = y.iloc[-28:].groupby(y.index[-28:].day_of_week).mean()
    days = pd.date_range(y.index[-1] + pd.Timedelta(days=1), periods=horizon, freq="D")
    point = np.array([by_dow[d] for d in days.day_of_week], dtype=float)
    resid = [values[t] - values[max(t % 7, t - 28) : t : 7].mean() for t in range(7, n)]
    lo_q, hi_q = np.quantile(resid, [(1 - interval) / 2, (1 + interval) / 2])
    lower, upper = point + min(lo_q, 0.0), point + max(hi_q, 0.0)
    if clip:
        point, lower, upper = (np.clip(a, 0, None) for a in (point, lower, upper))
    return _frame(y.index[-1], point, lower, upper)


def forecast_series(
    history: pd.DataFrame, value: str = "revenue", horizon: int = HORIZON_DAYS, interval: float = INTERVAL,
    calendar: TradingCalendar | None = None,
) -> Forecast:
    """See `_forecast`; then every day the trading calendar says is closed is forecast 0 with an interval of
    [0, 0], and nothing is forecast below 0 (revenue, units and orders are not negative on a future day)."""
    result = _forecast(history, value, horizon, interval)
    frame = result.frame.copy()
    closed = calendar.closed(pd.DatetimeIndex(frame["day"])) if calendar is not None else np.zeros(len(frame), bool)
    for column in ("predicted", "lower", "upper"):
        frame[column] = np.where(closed, 0.0, np.maximum(frame[column].to_numpy(dtype=float), 0.0))
    return Forecast(frame, result.method, result.backtest, result.note)


def _forecast(history: pd.DataFrame, value: str, horizon: int, interval: float) -> Forecast:
    """Forecast `value` for `horizon` days after the last day in `history`.

    Backtest definitions (regression path only; None for the fallback):
    MAE and sMAPE (2|e|/(|y|+|yhat|), %) over 8 weekly origins x 7 days; MAPE is None
    if any actual is 0; MASE = model MAE / MAE of the weekly seasonal naive forecast
    y[t-7] on the *same* backtest points (not the usual in-sample scaling), so < 1 means
    better than "same day last week"; coverage = share of actuals within the interval.

    Never raises for short, flat, all-zero or empty data: under MIN_FORECAST_DAYS days
    (empty included) the frame is empty, from there to MIN_MODEL_DAYS, or for data the
    model cannot use, it is the seasonal naive forecast; either way `note` says why.
    Raises ValueError for a missing `day`/`value` column, horizon < 1 or interval
    outside (0, 1).
    """
    if horizon < 1 or not 0 < interval < 1:
        raise ValueError("horizon must be >= 1 and interval in (0, 1)")
    y = _daily_values(history, value)
    if short := too_short(len(y), MIN_FORECAST_DAYS, "the forecast"):
        empty = _frame(y.index[-1] if len(y) else pd.Timestamp(0), *([np.zeros(0)] * 3))
        return Forecast(empty, NO_FORECAST, None, short)
    clip, note = bool((y >= 0).all()), ""
    if (y == 0).all():
        note = "all values are zero"
    elif float(y.std()) <= 1e-9 * max(1.0, abs(float(y.mean()))):
        note = "series is flat (no variation to model)"
    elif not clip:
        note = "series has negative values; the log-scale model needs non-negative data"
    elif (y == 0).mean() > 0.5:
        note = "intermittent series (most days are zero); log-scale regression would be biased"
    elif len(y) < MIN_MODEL_DAYS:
        note = too_short(len(y), MIN_MODEL_DAYS, "the regression model")
    if note:
        return Forecast(_naive_forecast(y, horizon, interval, clip), NAIVE_METHOD, None, note)
    frame, backtest = _model_forecast(y, horizon, interval)
    return Forecast(frame, MODEL_METHOD, backtest, "")
