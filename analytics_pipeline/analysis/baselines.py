"""The forecasts a person would make without a model; the published forecast is chosen against them.

* last week repeated (lag 7): the reference MASE divides by;
* the mean of the last 4 same weekdays: steadier than one week, blind to trend;
* exponential smoothing with a damped trend and weekly seasonality (statsmodels' ETS), the standard automatic
  method a forecaster would reach for.

They see the values only, never the trading calendar: they are what the project must beat, not what it publishes
(a baseline that wins the backtest is published through the calendar like the model, see forecast.py).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd
from statsmodels.tools.sm_exceptions import ConvergenceWarning
from statsmodels.tsa.exponential_smoothing.ets import ETSModel

from analytics_pipeline.analysis.backtest import INTERVAL_UNAVAILABLE, evaluate, last_week

ETS_DAYS = 364  # ETS learns from the last year: older data mostly slows the fit (0.25 s for two years, 0.1 s for one)
LAG_7, MEAN_4_WEEKS, ETS = "lag 7", "mean of 4 weeks", "ETS (weekly)"


def mean_of_4_weeks(values: np.ndarray, horizon: int) -> np.ndarray:
    """Each weekday's mean over the last 4 weeks (fewer when the history is shorter)."""
    weeks = min(4, len(values) // 7)
    recent = values[len(values) - 7 * weeks :].reshape(weeks, 7).mean(axis=0)
    return np.resize(recent, horizon).astype(float)


def ets(values: np.ndarray, horizon: int) -> np.ndarray:
    """Additive ETS (damped trend, weekly season); the 4-week mean where the fit fails or has too little data."""
    recent = values[-ETS_DAYS:].astype(float)
    if len(recent) < 4 * 7:
        return mean_of_4_weeks(values, horizon)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            fitted = ETSModel(recent, error="add", trend="add", damped_trend=True, seasonal="add",
                              seasonal_periods=7).fit(disp=False)
        point = np.asarray(fitted.forecast(horizon), dtype=float)
    except (ValueError, np.linalg.LinAlgError):
        return mean_of_4_weeks(values, horizon)
    return point if np.isfinite(point).all() else mean_of_4_weeks(values, horizon)


RULES: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {LAG_7: last_week, MEAN_4_WEEKS: mean_of_4_weeks, ETS: ets}


def _with_interval(rule):
    def forecast(y: pd.Series, horizon: int, interval: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        found = evaluate(rule, y.to_numpy(dtype=float), pd.Timestamp(y.index[0]), horizon, interval)
        if found.lower is None:
            raise ValueError(INTERVAL_UNAVAILABLE)
        return found.point, found.lower, found.upper
    return forecast


# For benchmarks: name -> (daily series, horizon, interval) -> point, lower, upper, the interval from the rule's own
# out-of-sample errors exactly as for the published forecast.
BASELINES = {name: _with_interval(rule) for name, rule in RULES.items()}
