"""Daily forecasts chosen by an honest backtest, as pure functions over pandas.

Four methods compete for every series (the ridge model below and the three baselines of baselines.py); each is
backtested at 8 weekly origins over the full horizon it would publish, as it would be published (closed days of the
trading calendar 0, nothing below 0), and the one with the lowest error is published, with the reason. Intervals
come from each method's own out-of-sample errors (backtest.py).

The model is deliberately small (ridge regression, refit in well under a second, deterministic, explainable on a
dashboard): weekday, the mean of the last 4 same weekdays, the last 4 weeks' level and its change over the 4 weeks
before, and, from YEARLY_DAYS of history on, the same weeks last year. What real series hold does not switch it off:
closed days, negative days (write-offs) and zero days on which the business normally trades (outages) are left out
of its input and targets, and so are days more than OUTLIER_RATIO times off their weekday's usual level (a Black
Friday teaches nothing about next Tuesday).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, partial

import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge
from threadpoolctl import threadpool_limits

from analytics_pipeline.analysis import backtest, baselines
from analytics_pipeline.analysis.calendar import MAX_RANDOM_ZERO_SHARE, TradingCalendar, learn
from analytics_pipeline.analysis.history import too_short

HORIZON_DAYS = 30  # days forecast after the last day of history
INTERVAL = 0.8  # nominal coverage of the prediction interval
# Two weeks: every weekday seen twice, so the seasonal-naive rule's own errors can size its interval.
MIN_FORECAST_DAYS = 14
# The ridge needs 11 weeks before an origin (8 for its momentum input, then MIN_TRAINING_ROWS targets); it competes
# only when every scored origin has them, so a model that was never really backtested is never published.
MIN_MODEL_ORIGIN = 77
MIN_MODEL_DAYS = MIN_MODEL_ORIGIN + 7 * (backtest.SCORED_ORIGINS - 1) + HORIZON_DAYS  # at the default horizon
HALF_LIFE_DAYS = 120.0  # recency weighting of training rows
RIDGE_ALPHA = 1.0
OUTLIER_RATIO = 2.0  # a day at more than twice or under half its weekday's usual level is not a training target
YEARLY_DAYS = 364 + 28 + 182  # "the same weeks last year" as an input once half a year of training rows have it
MIN_TRAINING_ROWS = 28
SELECTION_MARGIN = 0.10  # a baseline is published over the model only when its backtest MAE is this much lower
MODEL = "ridge model"
MODEL_METHOD = "ridge regression (weekday, same-weekday lags, recent level and momentum, same weeks last year)"
NAIVE_METHOD = "seasonal naive (weekly: mean of the last 4 same weekdays)"
NO_FORECAST = "none"
METHODS = {MODEL: MODEL_METHOD, baselines.LAG_7: "last week repeated (lag 7)",
           baselines.MEAN_4_WEEKS: "mean of the last 4 same weekdays",
           baselines.ETS: "exponential smoothing, damped trend and weekly season (statsmodels ETS)"}
ClosedFor = Callable[[int], np.ndarray]  # days of history -> closed mask over them and the horizon after
SCORE_COLUMNS = ["method", "horizon_week", "mae", "smape", "mase", "coverage", "n_origins", "n_points", "published"]


@dataclass(frozen=True)
class Forecast:
    """Forecast rows (day, predicted, lower, upper) plus how they were produced."""

    frame: pd.DataFrame
    method: str  # the published method's description
    backtest: backtest.Scores | None  # the published method over the whole horizon
    note: str  # why no method could be backtested (no rows, or the fallback); empty otherwise
    reason: str = ""  # why the published method was chosen
    scores: pd.DataFrame | None = None  # SCORE_COLUMNS: every method, the whole horizon (week 0) and each week
    totals: dict[int, tuple[float, float, float]] | None = None  # days -> sum, lower, upper (a week, the horizon)


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


def _level(values: np.ndarray, closed: np.ndarray, weekday: np.ndarray) -> tuple[np.ndarray, bool]:
    """The model's view of the history: log1p revenue on trading days, NaN where the day teaches nothing (closed,
    negative, an outage's zero, an outlier). Where zeros are common on trading days (a sparse series) they are real
    and the scale stays linear. Returns the level and whether it is logarithmic."""
    trading = ~closed
    zero_share = float((values[trading] == 0).mean()) if trading.any() else 1.0
    log = zero_share <= MAX_RANDOM_ZERO_SHARE
    if not log:
        return np.where(closed | (values < 0), np.nan, values), False
    level = np.where(closed | (values <= 0), np.nan, np.log1p(np.maximum(values, 0)))
    usual = np.full(len(level), np.nan)
    for day in range(7):  # the weekday's median over the 9 surrounding weeks
        mine = weekday == day
        usual[mine] = pd.Series(level[mine]).rolling(9, center=True, min_periods=3).median().to_numpy()
    return np.where(np.abs(level - usual) > np.log(OUTLIER_RATIO), np.nan, level), True


def _window_mean(level: np.ndarray, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """nanmean of level[start:stop] per row; NaN where the window starts before the data or holds no value."""
    known = ~np.isnan(level)
    sums = np.r_[0.0, np.cumsum(np.where(known, level, 0.0))]
    counts = np.r_[0, np.cumsum(known)]
    a, b = np.clip(start, 0, len(level)), np.clip(stop, 0, len(level))
    n = counts[b] - counts[a]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((start >= 0) & (n > 0), (sums[b] - sums[a]) / n, np.nan)


def _ridge(values: np.ndarray, horizon: int, closed_for: ClosedFor, first_weekday: int) -> np.ndarray:
    """Direct multi-step ridge regression fit on `values` (a series' first len(values) days), forecasting `horizon`
    days. Rows are (weekly origin o, target o + k) pairs whose inputs are known at o, weighted by recency."""
    origin = len(values)
    weekday = (first_weekday + np.arange(origin + horizon)) % 7
    level, log = _level(values, closed_for(origin)[:origin], weekday[:origin])
    yearly = origin >= YEARLY_DAYS

    def design(o: int, targets: np.ndarray) -> np.ndarray:
        back = (targets - o) // 7 + 1  # weeks back to the latest same weekday before o
        lags = targets[:, None] - 7 * (back[:, None] + np.arange(4))
        same = np.where(lags >= 0, level[np.clip(lags, 0, None)], np.nan)
        counts = (~np.isnan(same)).sum(axis=1)
        recent = _window_mean(level, np.array([o - 28]), np.array([o]))[0]
        same = np.where(counts > 0, np.nansum(same, axis=1) / np.maximum(counts, 1), recent)
        # Momentum: the change of the last 4 weeks over the 4 before, carried forward by how far ahead the target
        # is (a local trend; a global time trend would extrapolate a level shift for ever).
        before = _window_mean(level, np.array([o - 56]), np.array([o - 28]))[0]
        momentum = (recent - before) * ((targets - o) / 28 + 1.5)
        columns = [np.eye(7)[weekday[targets]], same, np.full(len(targets), recent), momentum]
        if yearly:  # how the target's week last year compared with the 4 weeks before the origin last year
            last_year = _window_mean(level, targets - 367, targets - 360)
            base = _window_mean(level, np.array([o - 392]), np.array([o - 364]))[0]
            columns.append(last_year - base)
        return np.column_stack(columns)

    first = 392 if yearly else 28
    rows = [(o, np.arange(o, min(o + max(horizon, 7), origin))) for o in range(origin - 7, first - 1, -7)]
    if not rows:
        return baselines.mean_of_4_weeks(values, horizon)
    X = np.vstack([design(o, t) for o, t in rows])
    target = np.concatenate([t for _, t in rows])
    ok = ~np.isnan(X).any(axis=1) & ~np.isnan(level[target])
    if ok.sum() < MIN_TRAINING_ROWS:
        return baselines.mean_of_4_weeks(values, horizon)
    weight = 0.5 ** ((origin - 1 - target[ok]) / HALF_LIFE_DAYS)
    model = Ridge(alpha=RIDGE_ALPHA).fit(X[ok], level[target[ok]], sample_weight=weight)
    future = design(origin, np.arange(origin, origin + horizon))
    future = np.where(np.isnan(future), X[ok].mean(axis=0), future)
    predicted = model.predict(future)
    return np.clip(np.expm1(predicted) if log else predicted, 0, None)


def _as_published(rule, closed_for: ClosedFor):
    """A method as it is published: 0 on the calendar's closed days, never below 0."""
    def published(values: np.ndarray, horizon: int) -> np.ndarray:
        point = np.maximum(np.asarray(rule(values, horizon), dtype=float), 0.0)
        return np.where(closed_for(len(values))[len(values) : len(values) + horizon], 0.0, point)
    return published


def _closed_for(y: pd.Series, calendar: TradingCalendar | None, horizon: int) -> ClosedFor:
    """Closed days as known at an origin: for the whole history the given calendar; for a backtest origin o, the
    calendar learnt from y[:o] alone (with the same country's holidays), so no origin knows of a closure that only
    later data revealed. Cached per origin: every method is scored at the same origins."""
    days = pd.date_range(y.index[0], periods=len(y) + horizon, freq="D")

    @cache
    def closed_for(n: int) -> np.ndarray:
        if calendar is None:
            return np.zeros(n + horizon, dtype=bool)
        known = calendar if n >= len(y) else learn(y.iloc[:n], calendar.country, horizon)
        return known.closed(days[: n + horizon])
    return closed_for


def _naive_forecast(y: pd.Series, horizon: int, interval: float) -> pd.DataFrame:
    """Mean of the last 4 same weekdays; interval from the in-history residuals of that rule (a history too short
    for a rolling-origin backtest has nothing better)."""
    values, n = y.to_numpy(), len(y)
    point = baselines.mean_of_4_weeks(values, horizon)
    resid = [values[t] - values[max(t % 7, t - 28) : t : 7].mean() for t in range(7, n)]
    lo_q, hi_q = np.quantile(resid, [(1 - interval) / 2, (1 + interval) / 2])
    lower, upper = point + min(lo_q, 0.0), point + max(hi_q, 0.0)
    return _frame(y.index[-1], *(np.clip(a, 0, None) for a in (point, lower, upper)))


def _choose(maes: dict[str, float]) -> tuple[str, str]:
    """The method to publish and why, from each method's backtest MAE. The model keeps the lead unless a baseline
    beats it by SELECTION_MARGIN: eight origins are a small sample, and switching methods on noise costs more than
    it saves. Ties go by the order of METHODS."""
    handicap = {name: 1.0 if name == MODEL else 1 - SELECTION_MARGIN for name in maes}
    order = list(METHODS)
    winner = min(maes, key=lambda name: (maes[name] / handicap[name], order.index(name)))
    if maes[winner] <= min(maes.values()):
        return winner, "lowest backtest MAE"
    return winner, f"kept, as no baseline's backtest MAE was {SELECTION_MARGIN:.0%} lower"


def _score_rows(name: str, found: backtest.Evaluation, published: bool) -> list[dict]:
    weeks = [(0, found.overall), *enumerate(found.by_week, start=1)]
    return [{"method": name, "horizon_week": week, **{k: getattr(s, k) for k in SCORE_COLUMNS[2:-1]},
             "published": published} for week, s in weeks]


def forecast_series(
    history: pd.DataFrame, value: str = "revenue", horizon: int = HORIZON_DAYS, interval: float = INTERVAL,
    calendar: TradingCalendar | None = None,
) -> Forecast:
    """Forecast `value` for `horizon` days after the last day in `history` with the method that wins the backtest.

    Backtest (per method, as published): origins every 7 days, the latest leaving exactly `horizon` days after it;
    MAE; sMAPE = mean 2|e| / (|y| + |yhat|) in %; MASE = MAE / MAE of last week repeated (lag 7) on the same points;
    coverage (published method only) = share of actual days inside an interval built only from errors of earlier
    origins. The method with the lowest MAE over the whole horizon is published (a baseline only when it beats the
    model by SELECTION_MARGIN; ties: the order of METHODS).

    Never raises for short, flat, all-zero or empty data: under MIN_FORECAST_DAYS days (empty included) the frame is
    empty; a history with no positive day, or too short for one backtest origin, gets the mean of the last 4 same
    weekdays with `note` saying why. Raises ValueError for a missing `day`/`value` column, horizon < 1 or interval
    outside (0, 1).
    """
    if horizon < 1 or not 0 < interval < 1:
        raise ValueError("horizon must be >= 1 and interval in (0, 1)")
    y = _daily_values(history, value)
    if short := too_short(len(y), MIN_FORECAST_DAYS, "the forecast"):
        empty = _frame(y.index[-1] if len(y) else pd.Timestamp(0), *([np.zeros(0)] * 3))
        return Forecast(empty, NO_FORECAST, None, short)
    closed_for = _closed_for(y, calendar, horizon)
    closed = closed_for(len(y))
    values, first = y.to_numpy(dtype=float), pd.Timestamp(y.index[0])

    note = ""
    if (y == 0).all():
        note = "all values are zero"
    elif not (y > 0).any():
        note = "no day with positive values (all zero or negative)"
    elif len(y) < backtest.MIN_ORIGIN + horizon:
        note = too_short(len(y), backtest.MIN_ORIGIN + horizon, f"a backtest over {horizon} days")
    if note:
        frame = _naive_forecast(y, horizon, interval)
        frame.loc[closed[len(y):], ["predicted", "lower", "upper"]] = 0.0
        return Forecast(frame, NAIVE_METHOD, None, note)

    rules = dict(baselines.RULES)
    if backtest.weekly_origins(len(y), horizon, backtest.SCORED_ORIGINS)[0] >= MIN_MODEL_ORIGIN:
        rules = {MODEL: partial(_ridge, closed_for=closed_for, first_weekday=first.day_of_week)} | rules
    published = {name: _as_published(rule, closed_for) for name, rule in rules.items()}
    with threadpool_limits(1):  # small fits: a second BLAS thread made ETS 4x slower on 2 cores, never faster
        found = {name: backtest.evaluate(rule, values, first, horizon, interval, forecast=False)
                 for name, rule in published.items()}
        winner, why = _choose({name: f.overall.mae for name, f in found.items()})
        found[winner] = best = backtest.evaluate(published[winner], values, first, horizon, interval)
    others = ", ".join(f"{name} {found[name].overall.mae:,.2f}" for name in found if name != winner)
    reason = (f"{winner}: {why} over {best.overall.n_origins} weekly origins x {horizon} days "
              f"({best.overall.mae:,.2f}; {others})")
    lower = best.lower if best.lower is not None else best.point
    upper = best.upper if best.upper is not None else best.point
    future_closed = closed[len(y):]
    frame = _frame(y.index[-1], *(np.where(future_closed, 0.0, a) for a in (best.point, lower, upper)))
    scores = pd.DataFrame([row for name, f in found.items() for row in _score_rows(name, f, name == winner)],
                          columns=SCORE_COLUMNS)
    return Forecast(frame, METHODS[winner], best.overall, "", reason, scores, best.totals)
