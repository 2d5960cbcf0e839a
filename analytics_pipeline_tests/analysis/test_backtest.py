"""The rolling-origin machinery on hand-made numbers: where origins are, how paths are scored, how errors become
intervals (exact values)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analytics_pipeline.analysis import backtest
from analytics_pipeline.analysis.backtest import Errors, errors, evaluate, interval, score, total_intervals
from analytics_pipeline.analysis.baselines import last_week, mean_of_4_weeks


def test_origins_are_weekly_and_leave_the_whole_horizon():
    assert backtest.weekly_origins(200, 30, 3) == [156, 163, 170]
    assert backtest.weekly_origins(100, 30, 8) == [56, 63, 70]  # none before 8 weeks of history
    assert backtest.weekly_origins(80, 30, 8) == []


def test_baseline_rules():
    values = np.arange(1.0, 29.0)  # four weeks: 1..28
    assert list(last_week(values, 10)) == [22, 23, 24, 25, 26, 27, 28, 22, 23, 24]
    # Each weekday's mean over four weeks: day 1 of the cycle is mean(1, 8, 15, 22) = 11.5.
    assert list(mean_of_4_weeks(values, 8)) == [11.5, 12.5, 13.5, 14.5, 15.5, 16.5, 17.5, 11.5]


def test_scores_are_exact():
    actual = np.array([[10.0, 0.0, 20.0]])
    pred = np.array([[12.0, 0.0, 10.0]])
    reference = np.array([[10.0, 5.0, 30.0]])
    inside = np.array([[1.0, 1.0, 0.0]])
    found = score(actual, pred, reference, inside)
    assert found.mae == pytest.approx(4.0)  # (2 + 0 + 10) / 3
    assert found.mase == pytest.approx(4.0 / 5.0)  # reference MAE (0 + 5 + 10) / 3 = 5
    assert found.smape == pytest.approx((2 * 2 / 22 + 0 + 2 * 10 / 30) / 3 * 100)
    assert found.coverage == pytest.approx(2 / 3)
    assert (found.n_origins, found.n_points) == (1, 3)
    assert score(actual, pred, reference, np.full((1, 3), np.nan)).coverage is None


def test_errors_are_relative_to_the_forecast_and_skip_closed_days():
    actual = np.array([[110.0, 0.0, 45.0, 60.0]])
    pred = np.array([[100.0, 0.0, 50.0, 2.0]])
    found = errors(actual, pred, np.array([[0, 1, 2, 3]]), floors=np.array([10.0]))
    # 60 against a forecast of 2 is relative to the floor (10), not to 2: +5.8, not +29.
    np.testing.assert_allclose(found.relative, [[0.1, np.nan, -0.1, 5.8]])
    # The horizon's sum (4 days): 215 against 152; the first week is the whole 4-day horizon here.
    np.testing.assert_allclose(found.total, [[(215 - 152) / 152]])


def test_interval_from_errors_per_week_of_the_horizon():
    # Ten origins whose errors were -10% .. +10% in week 1 and -20% .. +20% in week 2, every weekday alike.
    week1 = np.repeat(np.linspace(-0.1, 0.1, 10)[:, None], 7, axis=1)
    relative = np.hstack([week1, 2 * week1])
    weekday = np.tile(np.arange(14) % 7, (10, 1))
    found = Errors(relative, weekday, np.zeros((10, 1)))
    point = np.full(14, 100.0)
    lower, upper = interval(point, np.arange(14) % 7, found, 0.8, scale_floor=1.0)
    q = np.quantile(np.linspace(-0.1, 0.1, 10), [0.1, 0.9])
    np.testing.assert_allclose(lower, np.r_[np.full(7, 100 * (1 + q[0])), np.full(7, 100 * (1 + 2 * q[0]))])
    np.testing.assert_allclose(upper, np.r_[np.full(7, 100 * (1 + q[1])), np.full(7, 100 * (1 + 2 * q[1]))])


def test_a_weekday_with_larger_errors_gets_a_wider_band():
    rng = np.random.default_rng(0)
    weekday = np.tile(np.arange(7), (40, 1))
    relative = rng.normal(0, 0.1, (40, 7)) * np.where(weekday == 4, 3.0, 1.0)  # Fridays three times as uncertain
    lower, upper = interval(np.full(7, 100.0), np.arange(7), Errors(relative, weekday, np.zeros((40, 1))), 0.8, 1.0)
    width = upper - lower
    assert width[4] > 2 * np.median(width)


def test_the_interval_of_a_sum_comes_from_errors_of_sums():
    found = Errors(np.zeros((5, 7)), np.zeros((5, 7), dtype=int),
                   total=np.array([[-0.2], [-0.1], [0.0], [0.1], [0.2]]))
    sums = total_intervals(np.full(7, 10.0), found, 0.8)
    lo, hi = np.quantile([-0.2, -0.1, 0.0, 0.1, 0.2], [0.1, 0.9])
    assert sums == {7: (70.0, pytest.approx(70 * (1 + lo)), pytest.approx(70 * (1 + hi)))}
    assert total_intervals(np.full(7, 10.0), Errors(np.zeros((1, 7)), np.zeros((1, 7), dtype=int),
                                                     np.zeros((1, 1))), 0.8) == {}


def test_evaluate_scores_a_perfect_rule_perfectly():
    days = pd.Timestamp("2024-01-01")
    values = np.tile([10.0, 20, 30, 40, 50, 60, 70], 30)  # the same week, 30 times
    found = evaluate(last_week, values, days, horizon=14, level=0.8)
    assert found.overall.mae == 0 and found.overall.n_origins == 8 and found.overall.coverage == 1.0
    assert [week.n_points for week in found.by_week] == [56, 56]
    np.testing.assert_allclose(found.point, values[:14])
    assert found.totals == {7: (280.0, 280.0, 280.0), 14: (560.0, 560.0, 560.0)}
