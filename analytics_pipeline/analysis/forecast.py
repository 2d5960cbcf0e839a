"""Daily forecasts with an honest backtest, as pure functions over pandas.

The model is deliberately small (ridge regression on log1p levels) so it refits in
milliseconds on every materialisation, is deterministic, and can be explained in one
sentence on a dashboard. Short, flat or all-zero histories fall back to a weekly
seasonal naive forecast instead of raising, because an asset that fails on a quiet
store is worse than one that says "not enough data yet".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge

MIN_MODEL_DAYS = 70  # ~10 weeks: below this the regression has too little to learn from
BACKTEST_ORIGINS = 8  # weekly origins reported in the backtest
CALIBRATION_ORIGINS = 8  # extra earlier origins whose residuals calibrate backtest intervals
HALF_LIFE_DAYS = 180.0
RIDGE_ALPHA = 1.0
MODEL_METHOD = "ridge regression on log1p (trend, weekday, closures, same-weekday lags)"
NAIVE_METHOD = "seasonal naive (weekly: mean of the last 4 same weekdays)"


@dataclass(frozen=True)
class Backtest:
    """Rolling-origin accuracy of the model as configured for the requested horizon."""

    mae: float
    smape: float  # percent
    mape: float | None  # percent; None when any actual in the backtest is zero
    mase: float  # model MAE / MAE of y[t-7] on the same points (inf if that is 0)
    coverage: float  # share of actuals inside the interval
    baseline_mae: float  # MAE of the weekly seasonal naive y[t-7] on the same points
    n_origins: int
    n_points: int


@dataclass(frozen=True)
class Forecast:
    """Forecast rows (day, predicted, lower, upper) plus how they were produced."""

    frame: pd.DataFrame
    method: str
    backtest: Backtest | None
    note: str  # why the fallback was used; empty for the regression model


def _daily_values(history: pd.DataFrame, value: str) -> pd.Series:
    """Return a float series on a complete daily index (gaps and NaN become 0)."""
    for col in ("day", value):
        if col not in history.columns:
            raise ValueError(f"history has no column {col!r}")
    frame = history[["day", value]].copy()
    frame["day"] = pd.to_datetime(frame["day"]).dt.normalize()
    values = pd.to_numeric(frame[value], errors="coerce").fillna(0.0).astype(float)
    series = values.groupby(frame["day"].to_numpy()).sum().sort_index()
    if series.empty:
        return series
    full = pd.date_range(series.index.min(), series.index.max(), freq="D")
    return series.reindex(full, fill_value=0.0)


def _closure_mask(days: pd.DatetimeIndex, train: pd.Series) -> np.ndarray:
    """Flag calendar days (month/day) that were zero at every occurrence in `train`.

    Only learnt when zeros are rare (<10% of days): then a zero on the same date each
    year is a closure (Dec 25, Jan 1), not noise. A date seen once and zero counts.
    """
    if train.empty or (train == 0).mean() > 0.10:
        return np.zeros(len(days), dtype=bool)
    keys = train.index.strftime("%m-%d")
    zero_all = (train == 0).groupby(keys).all()
    closed = set(zero_all[zero_all].index)
    return np.asarray(days.strftime("%m-%d").isin(closed))


def _design(days: pd.DatetimeIndex, y: np.ndarray, closed: np.ndarray, lag: int) -> np.ndarray:
    """Features for every day in `days`; y covers a prefix (later days are unknown).

    The same-weekday lag uses days t-lag, t-lag-7, t-lag-14, t-lag-21 with
    lag = 7 * ceil(horizon / 7), so every forecast day only sees data before the origin
    and training rows see exactly the same kind of information (no leakage).
    """
    n_all = len(days)
    level = np.full(n_all, np.nan)
    level[: len(y)] = np.where(closed[: len(y)], np.nan, np.log1p(np.maximum(y, 0)))
    lags = np.full((n_all, 4), np.nan)
    for k in range(4):
        shift = lag + 7 * k
        lags[shift:, k] = level[: n_all - shift] if shift < n_all else []
    counts = (~np.isnan(lags)).sum(axis=1)
    lag_mean = np.where(counts > 0, np.nansum(lags, axis=1) / np.maximum(counts, 1), np.nan)
    trend = (days - days[0]).days.to_numpy() / 365.25
    dow = np.eye(7)[days.dayofweek.to_numpy()]
    return np.column_stack([trend, dow, closed.astype(float), lag_mean])


def _fit_predict(y: pd.Series, origin: int, steps: int, lag: int) -> tuple[np.ndarray, np.ndarray]:
    """Fit on y[:origin] and return (log predictions for the next steps, train residuals)."""
    train = y.iloc[:origin]
    days = pd.date_range(y.index[0], periods=origin + steps, freq="D")
    closed = _closure_mask(days, train)
    X = _design(days, train.to_numpy(), closed, lag)
    target = np.log1p(np.maximum(train.to_numpy(), 0))
    ok = ~np.isnan(X[:origin, -1])
    age = (origin - 1 - np.arange(origin))[ok]
    weight = 0.5 ** (age / HALF_LIFE_DAYS) if HALF_LIFE_DAYS else None
    model = Ridge(alpha=RIDGE_ALPHA).fit(X[:origin][ok], target[ok], sample_weight=weight)
    future = X[origin:]
    future[:, -1] = np.where(np.isnan(future[:, -1]), np.nanmean(target), future[:, -1])
    return model.predict(future), target[ok] - model.predict(X[:origin][ok])


def _bounds(pred_log: np.ndarray, resid: np.ndarray, interval: float) -> tuple[np.ndarray, ...]:
    """Point and interval in original units from log predictions and log residuals."""
    lo_q, hi_q = np.quantile(resid, [(1 - interval) / 2, (1 + interval) / 2])
    point = np.expm1(pred_log)
    lower = np.expm1(pred_log + min(lo_q, 0.0))
    upper = np.expm1(pred_log + max(hi_q, 0.0))
    return tuple(np.clip(a, 0, None) for a in (point, lower, upper))


def _metrics(actual: np.ndarray, pred: np.ndarray, naive: np.ndarray) -> tuple[float, ...]:
    """MAE, sMAPE %, MAPE % (nan if any actual is 0), baseline MAE."""
    err = np.abs(actual - pred)
    denom = np.abs(actual) + np.abs(pred)
    smape = np.where(denom > 0, 2 * err / np.where(denom > 0, denom, 1), 0.0).mean() * 100
    mape = float("nan") if np.any(actual == 0) else float(np.mean(err / np.abs(actual)) * 100)
    return float(err.mean()), float(smape), mape, float(np.mean(np.abs(actual - naive)))


def _model_forecast(y: pd.Series, horizon: int, interval: float) -> tuple[pd.DataFrame, Backtest]:
    """Regression forecast plus rolling-origin backtest.

    Origins are weekly: the last BACKTEST_ORIGINS are scored (7 days each, trained only
    on data before the origin). The interval for a scored origin comes from the
    out-of-sample residuals of the origins before it, so coverage is honest; the
    final forecast's interval uses the residuals of the scored origins themselves.
    """
    n, lag = len(y), 7 * math.ceil(horizon / 7)
    values = y.to_numpy()
    runs = []  # (origin, log prediction, log residuals out of sample, train residuals)
    for j in range(BACKTEST_ORIGINS + CALIBRATION_ORIGINS, 0, -1):
        origin = n - 7 * j
        if origin < lag + 28:
            continue
        pred_log, train_resid = _fit_predict(y, origin, 7, lag)
        oos = np.log1p(np.maximum(values[origin : origin + 7], 0)) - pred_log
        runs.append((origin, pred_log, oos, train_resid))
    scored = runs[-BACKTEST_ORIGINS:]
    actual, pred, naive, inside = [], [], [], []
    for origin, pred_log, _, train_resid in scored:
        earlier = [r[2] for r in runs if r[0] + 7 <= origin][-CALIBRATION_ORIGINS:]
        pool = np.concatenate(earlier) if sum(map(len, earlier)) >= 7 else train_resid
        point, lower, upper = _bounds(pred_log, pool, interval)
        truth = values[origin : origin + 7]
        actual.append(truth)
        pred.append(point)
        naive.append(values[origin - 7 : origin])
        inside.append((truth >= lower - 1e-9) & (truth <= upper + 1e-9))
    a, p, b = (np.concatenate(x) for x in (actual, pred, naive))
    mae, smape, mape, base = _metrics(a, p, b)
    mase = mae / base if base > 0 else (0.0 if mae == 0 else float("inf"))
    backtest = Backtest(
        mae=mae, smape=smape, mape=None if math.isnan(mape) else mape, mase=float(mase),
        coverage=float(np.concatenate(inside).mean()), baseline_mae=base,
        n_origins=len(scored), n_points=len(a),
    )
    pred_log, train_resid = _fit_predict(y, n, horizon, lag)
    pool = np.concatenate([r[2] for r in scored])
    point, lower, upper = _bounds(pred_log, pool if len(pool) >= 7 else train_resid, interval)
    return _frame(y.index[-1], point, lower, upper), backtest


def _frame(last_day: pd.Timestamp, point, lower, upper) -> pd.DataFrame:
    days = pd.date_range(last_day + pd.Timedelta(days=1), periods=len(point), freq="D")
    return pd.DataFrame({"day": days, "predicted": point, "lower": lower, "upper": upper})


def _naive_forecast(y: pd.Series, horizon: int, interval: float, clip: bool) -> pd.DataFrame:
    """Mean of the last 4 same weekdays; interval from in-history residuals of that rule.

    With fewer than 7 residuals (under ~2 weeks of history) the interval is a rough
    +/- one standard deviation of the history (or 50% of the level for a single day).
    """
    values, n = y.to_numpy(), len(y)
    recent = y.iloc[-28:]
    by_dow = recent.groupby(recent.index.dayofweek).mean()
    days = pd.date_range(y.index[-1] + pd.Timedelta(days=1), periods=horizon, freq="D")
    point = np.array([by_dow.get(d, values.mean()) for d in days.dayofweek], dtype=float)
    resid = [values[t] - values[max(t % 7, t - 28) : t : 7].mean() for t in range(7, n)]
    if len(resid) >= 7:
        lo_q, hi_q = np.quantile(resid, [(1 - interval) / 2, (1 + interval) / 2])
        lower, upper = point + min(lo_q, 0.0), point + max(hi_q, 0.0)
    else:
        half = values.std() if n >= 2 and values.std() > 0 else 0.5 * abs(values.mean())
        lower, upper = point - half, point + half
    if clip:
        point, lower, upper = (np.clip(a, 0, None) for a in (point, lower, upper))
    return pd.DataFrame({"day": days, "predicted": point, "lower": lower, "upper": upper})


def forecast_series(
    history: pd.DataFrame, value: str = "revenue", horizon: int = 30, interval: float = 0.8
) -> Forecast:
    """Forecast `value` for `horizon` days after the last day in `history`.

    Backtest definitions (regression path only; None for the fallback):
    MAE and sMAPE (2|e|/(|y|+|yhat|), %) over 8 weekly origins x 7 days; MAPE is None
    if any actual is 0; MASE = model MAE / MAE of the weekly seasonal naive forecast
    y[t-7] on the *same* backtest points (not the usual in-sample scaling), so < 1 means
    better than "same day last week"; coverage = share of actuals within the interval.

    Never raises for short, flat, all-zero or empty data (the fallback carries a
    `note`; an empty history yields an empty frame). Raises ValueError for a missing
    `day`/`value` column, horizon < 1 or interval outside (0, 1).
    """
    if horizon < 1 or not 0 < interval < 1:
        raise ValueError("horizon must be >= 1 and interval in (0, 1)")
    y = _daily_values(history, value)
    clip = bool((y >= 0).all())
    empty = pd.DataFrame({c: pd.Series(dtype=float) for c in ("predicted", "lower", "upper")})
    if y.empty:
        empty.insert(0, "day", pd.Series(dtype="datetime64[ns]"))
        return Forecast(empty, NAIVE_METHOD, None, "no history: nothing to forecast")
    lag = 7 * math.ceil(horizon / 7)
    note = ""
    if (y == 0).all():
        note = "all values are zero"
    elif float(y.std()) <= 1e-9 * max(1.0, abs(float(y.mean()))):
        note = "series is flat (no variation to model)"
    elif not clip:
        note = "series has negative values; the log-scale model needs non-negative data"
    elif len(y) < max(MIN_MODEL_DAYS, lag + 35):
        note = f"only {len(y)} days of history; the regression needs {max(MIN_MODEL_DAYS, lag + 35)}"
    if note:
        return Forecast(_naive_forecast(y, horizon, interval, clip), NAIVE_METHOD, None, note)
    frame, backtest = _model_forecast(y, horizon, interval)
    return Forecast(frame, MODEL_METHOD, backtest, "")
