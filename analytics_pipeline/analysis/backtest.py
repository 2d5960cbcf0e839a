"""Rolling-origin evaluation shared by every forecaster: where the origins are, how a path is scored, and how
out-of-sample errors become prediction intervals.

Why one module: the model and the baselines must be scored on exactly the same points, and an interval is only
honest when it is built from errors the method made on days it had not seen. A forecast made at origin `o` uses
`values[:o]` and covers `values[o:o + horizon]`; its interval comes from the errors of earlier origins whose whole
horizon ended by `o`.

Errors are relative to the forecast (error / max(forecast, floor)), so a weekday that sells twice as much gets an
interval twice as wide, and they are pooled per week of the horizon (a forecast four weeks out is less sure than
one for tomorrow) after dividing out each weekday's typical error size (weekday calibration).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

Rule = Callable[[np.ndarray, int], np.ndarray]  # history values (complete daily series) -> `horizon` point forecasts

MIN_ORIGIN = 56  # an origin needs 8 weeks behind it: 4 weeks of same-weekday lags plus 4 weeks of training rows
SCORED_ORIGINS = 8  # weekly origins scored in the backtest
CALIBRATION_ORIGINS = 20  # earlier origins whose errors give an origin's interval (12 left coverage 0.65-0.91)
FLOOR_SHARE = 0.05  # errors are relative to the forecast, but never to less than 5% of the recent mean day
MIN_POOL = 14  # errors needed to read an interval off one week of the horizon; fewer: pool every week
WEEKDAY_SHRINK = 20  # errors a weekday needs before its own error size counts as much as the pooled one
INTERVAL_UNAVAILABLE = "history too short for a rolling-origin interval"


@dataclass(frozen=True)
class Scores:
    mae: float
    smape: float  # percent
    mase: float  # MAE / MAE of the reference (last week repeated) on the same points
    coverage: float | None  # share of actual days inside the interval; None where no interval could be calibrated
    n_origins: int
    n_points: int


def weekly_origins(n: int, horizon: int, count: int, min_origin: int = MIN_ORIGIN) -> list[int]:
    """The latest `count` origins, 7 days apart, whose whole horizon lies inside `n` days; earliest first."""
    last = n - horizon
    return [o for o in range(last - 7 * (count - 1), last + 1, 7) if o >= min_origin]


def paths(rule: Rule, values: np.ndarray, origins: list[int], horizon: int) -> np.ndarray:
    """One forecast path per origin, shape (origins, horizon)."""
    return np.array([rule(values[:o], horizon) for o in origins], dtype=float).reshape(len(origins), horizon)


def actuals(values: np.ndarray, origins: list[int], horizon: int) -> np.ndarray:
    return np.array([values[o : o + horizon] for o in origins], dtype=float).reshape(len(origins), horizon)


def floor(values: np.ndarray) -> float:
    """The smallest error scale: FLOOR_SHARE of the mean trading day of the last 8 weeks (1.0 without one)."""
    recent = values[-MIN_ORIGIN:]
    positive = recent[recent > 0]
    return max(FLOOR_SHARE * float(positive.mean()), 1e-9) if len(positive) else 1.0


def smape(actual: np.ndarray, pred: np.ndarray) -> float:
    """Symmetric MAPE in percent: 2|e| / (|y| + |yhat|), 0 where both are 0."""
    denom = np.abs(actual) + np.abs(pred)
    return float(np.where(denom > 0, 2 * np.abs(actual - pred) / np.where(denom > 0, denom, 1), 0.0).mean() * 100)


def score(actual: np.ndarray, pred: np.ndarray, reference: np.ndarray, inside: np.ndarray | None = None) -> Scores:
    """Scores over every point of the given paths; `inside` marks points within their interval (NaN: no interval)."""
    mae = float(np.abs(actual - pred).mean())
    base = float(np.abs(actual - reference).mean())
    mase = mae / base if base > 0 else (0.0 if mae == 0 else float("inf"))
    known = inside[~np.isnan(inside)] if inside is not None else np.zeros(0)
    coverage = float(known.mean()) if len(known) else None
    return Scores(mae, smape(actual, pred), mase, coverage, actual.shape[0], actual.size)


@dataclass(frozen=True)
class Errors:
    """Relative out-of-sample errors of one method: rows are origins, columns steps of the horizon."""

    relative: np.ndarray  # NaN where the day is closed (forecast exactly 0) or not scored
    weekday: np.ndarray  # weekday (0 = Monday) of each point
    total: np.ndarray  # per origin and window (_windows): (actual sum - forecast sum) / forecast sum

    def of(self, rows: list[int]) -> Errors:
        return Errors(self.relative[rows], self.weekday[rows], self.total[rows])


def errors(actual: np.ndarray, pred: np.ndarray, weekday: np.ndarray, floors: np.ndarray) -> Errors:
    scale = np.maximum(pred, floors[:, None])
    relative = np.where(pred > 0, (actual - pred) / scale, np.nan)
    windows = _windows(pred.shape[1])
    totals = np.column_stack([pred[:, :days].sum(axis=1) for days in windows])
    sums = np.column_stack([actual[:, :days].sum(axis=1) for days in windows])
    total = (sums - totals) / np.maximum(totals, floors[:, None] * np.array(windows))
    return Errors(relative, weekday, total)


def _windows(horizon: int) -> list[int]:
    """The sums an interval is given for: the first week and the whole horizon."""
    return sorted({min(7, horizon), horizon})


def _weekday_factors(found: Errors) -> np.ndarray:
    """Each weekday's typical |error| over all weekdays', shrunk towards 1 when it has few errors."""
    size = np.abs(found.relative)
    overall = np.nanmedian(size) if np.any(~np.isnan(size)) else np.nan
    factors = np.ones(7)
    if not overall or np.isnan(overall):
        return factors
    for day in range(7):
        mine = size[(found.weekday == day) & ~np.isnan(size)]
        if len(mine):
            weight = len(mine) / (len(mine) + WEEKDAY_SHRINK)
            factors[day] = 1 + weight * (np.median(mine) / overall - 1)
    return factors.clip(0.25, 4.0)


def interval(point: np.ndarray, weekday: np.ndarray, found: Errors, level: float, scale_floor: float):
    """Lower and upper bounds for a forecast path from a method's earlier errors (None without any)."""
    factors = _weekday_factors(found)
    normalised = found.relative / factors[found.weekday]
    every = normalised[~np.isnan(normalised)]
    if len(every) == 0:
        return None
    quantiles = ((1 - level) / 2, (1 + level) / 2)
    lower, upper = np.empty(len(point)), np.empty(len(point))
    scale = np.maximum(point, scale_floor) * factors[weekday]
    for week in range(0, len(point), 7):
        pool = normalised[:, week : week + 7]
        pool = pool[~np.isnan(pool)]
        lo, hi = np.quantile(pool if len(pool) >= MIN_POOL else every, quantiles)
        lower[week : week + 7] = point[week : week + 7] + min(lo, 0.0) * scale[week : week + 7]
        upper[week : week + 7] = point[week : week + 7] + max(hi, 0.0) * scale[week : week + 7]
    return np.clip(lower, 0, None), np.clip(upper, 0, None)


def total_intervals(point: np.ndarray, found: Errors, level: float) -> dict[int, tuple[float, float, float]]:
    """Sum, lower and upper bound over the first `days` of the forecast (a week, the horizon), from the errors of
    earlier origins' sums: summing daily bounds would be far too wide, as good and bad days partly cancel."""
    if len(found.total) < 2:
        return {}
    out = {}
    for column, days in enumerate(_windows(len(point))):
        total = float(point[:days].sum())
        lo, hi = np.quantile(found.total[:, column], ((1 - level) / 2, (1 + level) / 2))
        out[days] = (total, max(total * (1 + min(float(lo), 0.0)), 0.0), total * (1 + max(float(hi), 0.0)))
    return out


def calibration_for(origins: list[int], at: int, horizon: int) -> list[int]:
    """Indices of the latest CALIBRATION_ORIGINS origins whose horizon ended by `at`."""
    done = [i for i, o in enumerate(origins) if o + horizon <= at]
    return done[-CALIBRATION_ORIGINS:]


def weekdays_of(first_day: pd.Timestamp, origins: list[int], horizon: int) -> np.ndarray:
    start = first_day.day_of_week
    return (start + np.array(origins)[:, None] + np.arange(horizon)[None, :]) % 7


def last_week(values: np.ndarray, horizon: int) -> np.ndarray:
    """The reference every method is scaled by (MASE): the last 7 days repeated over the horizon."""
    return np.resize(values[-7:], horizon).astype(float)


@dataclass(frozen=True)
class Evaluation:
    """A method's backtest at SCORED_ORIGINS weekly origins and its forecast from the end of the history."""

    overall: Scores | None  # None when the history is too short for a single origin
    by_week: list[Scores]  # week 1 of the horizon, week 2, ...
    point: np.ndarray | None  # None when only the backtest was asked for
    lower: np.ndarray | None  # None when no earlier error could calibrate an interval
    upper: np.ndarray | None
    totals: dict[int, tuple[float, float, float]]  # days -> sum, lower, upper (first week, whole horizon)


def evaluate(rule: Rule, values: np.ndarray, first_day: pd.Timestamp, horizon: int, level: float,
             forecast: bool = True) -> Evaluation:
    """Backtest `rule` over the full horizon and, with `forecast`, forecast with it; every interval, in the backtest
    and in the forecast, comes from errors of origins whose horizon had ended. Without `forecast` only the scored
    origins are run (no calibration origins, so no coverage and no point): enough to choose a method, at a third of
    the cost, which matters for a method refit at every origin (ETS)."""
    n = len(values)
    extra = CALIBRATION_ORIGINS + -(-horizon // 7) if forecast else 0
    origins = weekly_origins(n, horizon, SCORED_ORIGINS + extra)
    pred, act = paths(rule, values, origins, horizon), actuals(values, origins, horizon)
    weekday = weekdays_of(first_day, origins, horizon)
    floors = np.array([floor(values[:o]) for o in origins])
    found = errors(act, pred, weekday, floors)

    def calibrated(point: np.ndarray, days: np.ndarray, at: int, scale_floor: float):
        chosen = calibration_for(origins, at, horizon)
        if not chosen:
            return None
        return interval(point, days, found.of(chosen), level, scale_floor)

    scored = list(range(max(0, len(origins) - SCORED_ORIGINS), len(origins)))
    inside = np.full((len(scored), horizon), np.nan)
    for row, i in enumerate(scored):
        bounds = calibrated(pred[i], weekday[i], origins[i], floors[i]) if forecast else None
        if bounds is not None:
            inside[row] = (act[i] >= bounds[0] - 1e-9) & (act[i] <= bounds[1] + 1e-9)
    reference = paths(last_week, values, [origins[i] for i in scored], horizon)
    a, p = act[scored], pred[scored]
    overall = score(a, p, reference, inside) if scored else None
    by_week = [score(a[:, w : w + 7], p[:, w : w + 7], reference[:, w : w + 7], inside[:, w : w + 7])
               for w in range(0, horizon, 7)] if scored else []
    if not forecast:
        return Evaluation(overall, by_week, None, None, None, {})

    point = np.asarray(rule(values, horizon), dtype=float)
    days = weekdays_of(first_day, [n], horizon)[0]
    bounds = calibrated(point, days, n, floor(values))
    totals = total_intervals(point, found.of(calibration_for(origins, n, horizon)), level)
    lower, upper = bounds if bounds is not None else (None, None)
    return Evaluation(overall, by_week, point, lower, upper, totals)
