"""The trading calendar learnt from revenue, and how the anomaly detector uses it, on small hand-made series."""

from __future__ import annotations

from datetime import date

import holidays
import numpy as np
import pandas as pd
import pytest

from analytics_pipeline.analysis.anomalies import detect_anomalies
from analytics_pipeline.analysis.calendar import HOLIDAY_COUNTRY_ENV, country_code, holiday_country, learn

START, DAYS = "2024-01-01", 730  # Monday 2024-01-01 .. Tuesday 2025-12-30
WEEKLY = np.array([0.9, 1.0, 1.0, 1.1, 1.3, 0.0, 0.6])  # a wholesaler: shut on Saturdays


def _wholesaler(seed: int = 0) -> pd.Series:
    """Revenue closed on Saturdays, on England's bank holidays and from Christmas Eve to 3 January."""
    rng = np.random.default_rng(seed)
    days = pd.date_range(START, periods=DAYS, freq="D")
    revenue = pd.Series(10_000 * WEEKLY[days.day_of_week] * np.exp(rng.normal(0, 0.08, DAYS)), index=days)
    for day in holidays.country_holidays("GB", subdiv="ENG", years=[2024, 2025]):
        revenue[pd.Timestamp(day)] = 0.0
    for year in (2023, 2024, 2025):
        revenue[(revenue.index >= f"{year}-12-24") & (revenue.index <= f"{year + 1}-01-03")] = 0.0
    return revenue


def _frame(revenue: pd.Series) -> pd.DataFrame:
    orders = np.round(revenue / 50)
    aov = np.where(orders > 0, revenue / np.maximum(orders, 1), np.nan)
    return pd.DataFrame({"day": revenue.index, "revenue": revenue.to_numpy(), "orders": orders.to_numpy(),
                         "avg_order_value": aov})


def test_a_weekday_without_trading_is_closed_and_a_quiet_one_is_not():
    revenue = _wholesaler()
    sundays = revenue.index.day_of_week == 6
    revenue[sundays & (np.arange(DAYS) % 3 == 0)] = 0.0  # a third of Sundays quiet: still a trading day
    calendar = learn(revenue)
    assert calendar.closed_weekdays == {5}
    assert calendar.reason(date(2026, 1, 10)) == "closed (Saturday)"
    assert calendar.reason(date(2026, 1, 11)) is None


def test_holidays_the_business_closed_on_are_closed_in_the_future_too():
    calendar = learn(_wholesaler(), "GB", horizon_days=120)
    assert calendar.reason(date(2026, 4, 6)) == "closed (holiday: Easter Monday)"
    assert calendar.reason(date(2026, 5, 4)) == "closed (holiday: May Day)"
    assert calendar.reason(date(2026, 4, 7)) is None
    # A business that traded on every holiday is open on them.
    open_shop = learn(pd.Series(1_000.0, index=pd.date_range(START, periods=DAYS, freq="D")), "GB")
    assert open_shop.reason(date(2025, 8, 25)) is None and not open_shop.holidays_closed_by_default


def test_a_christmas_closure_is_learnt_as_dates_and_a_long_outage_is_not():
    revenue = _wholesaler()
    revenue["2024-06-03":"2024-07-05"] = 0.0  # a 33-day data gap
    calendar = learn(revenue, "GB")
    assert {"12-24", "12-27", "12-30", "12-31", "01-02", "01-03"} <= calendar.closed_dates
    assert calendar.reason(date(2026, 12, 29)) == "closed (12-29, every year)"
    assert not any(key.startswith(("06-", "07-")) for key in calendar.closed_dates)


def test_an_intermittent_series_learns_no_dates_or_holidays():
    rng = np.random.default_rng(3)
    days = pd.date_range(START, periods=DAYS, freq="D")
    revenue = pd.Series(rng.poisson(1.5, DAYS) * 40.0, index=days)  # about a fifth of days without a sale
    calendar = learn(revenue, "GB")
    assert calendar.closed_dates == frozenset() and calendar.closed_holidays == frozenset()
    assert calendar.closed_weekdays == frozenset()


def test_countries_as_exports_name_them(monkeypatch):
    assert [country_code(n) for n in ("United Kingdom", "EIRE", "Germany", "DE", "Atlantis")] == [
        "GB", "IE", "DE", "DE", None]
    by_region = pd.Series([10.0, 500.0, 20.0], index=["France", "United Kingdom", "EIRE"])
    assert holiday_country(by_region) == "GB"
    monkeypatch.setenv(HOLIDAY_COUNTRY_ENV, "us-ca")
    assert holiday_country(by_region) == "US-CA"
    monkeypatch.setenv(HOLIDAY_COUNTRY_ENV, "none")
    assert holiday_country(by_region) is None


def test_closed_days_are_not_anomalies_and_trading_on_one_is():
    revenue = _wholesaler()
    saturday = pd.Timestamp("2025-06-14")
    revenue[saturday] = 2_500.0
    found = detect_anomalies(_frame(revenue), calendar=learn(revenue, "GB"))
    closed = revenue.index[(revenue == 0).to_numpy()]
    assert not set(found["day"]) & set(closed)  # no Saturday, bank holiday or Christmas day flagged
    [row] = found[found["day"] == saturday].to_dict("records")
    assert row["metric"] == "revenue" and row["direction"] == "spike" and row["expected"] == 0.0
    assert row["reason"] == "revenue on a day that is normally closed (Saturday) (got 2,500.00)"
    assert len(found) <= 2 * DAYS / 100  # at most 1 false alarm per 100 days per metric besides the planted one


def test_every_negative_revenue_day_is_flagged_with_its_own_reason():
    revenue = _wholesaler()
    negative = {pd.Timestamp("2024-10-09"): -40.0, pd.Timestamp("2025-03-05"): -12_000.0,
                pd.Timestamp("2025-09-10"): -800.0}
    for day, value in negative.items():
        revenue[day] = value
    found = detect_anomalies(_frame(revenue), metrics=["revenue"], calendar=learn(revenue, "GB"))
    rows = found.set_index("day")
    for day, value in negative.items():
        assert rows.loc[day, "actual"] == value and rows.loc[day, "direction"] == "drop"
        assert rows.loc[day, "reason"].startswith("revenue negative: refunds or write-offs above sales")


def test_one_negative_day_does_not_change_the_scale_of_the_others():
    revenue = _wholesaler()
    spike = pd.Timestamp("2025-05-14")
    revenue[spike] *= 2.5
    calendar = learn(revenue, "GB")
    before = detect_anomalies(_frame(revenue), metrics=["revenue"], calendar=calendar).set_index("day")
    revenue[pd.Timestamp("2024-09-11")] = -300.0  # far from the spike: outside its baseline window
    after = detect_anomalies(_frame(revenue), metrics=["revenue"], calendar=calendar).set_index("day")
    assert after.loc[spike, "score"] == pytest.approx(before.loc[spike, "score"])
    assert after.loc[spike, "expected"] == pytest.approx(before.loc[spike, "expected"])


def test_closed_days_are_forecast_zero_and_nothing_below_zero():
    from analytics_pipeline.analysis.forecast import forecast_series

    revenue = _wholesaler()[: "2025-12-20"]  # the forecast runs into the Christmas closure and New Year
    calendar = learn(revenue, "GB", horizon_days=30)
    result = forecast_series(_frame(revenue), "revenue", 30, 0.8, calendar)
    frame = result.frame.set_index("day")
    closed = [day for day in frame.index if calendar.reason(day)]
    assert pd.Timestamp("2025-12-27") in closed and pd.Timestamp("2026-01-01") in closed
    assert (frame.loc[closed, ["predicted", "lower", "upper"]] == 0).all().all()
    assert (frame[["predicted", "lower", "upper"]] >= 0).all().all()
    open_days = frame.drop(index=closed)
    assert (open_days["predicted"] > 0).all()


def test_a_shutdown_date_seen_only_on_a_closed_weekday_is_learnt():
    """History from 2024-03-01: the one Christmas seen had 28 December on a Saturday, already closed; it was part of
    the shutdown all the same, so on a Sunday (2025-12-28) it is closed, and so is its Saturday neighbour's date."""
    revenue = _wholesaler().loc["2024-03-01":"2025-11-30"]
    calendar = learn(revenue, "GB", horizon_days=40)
    assert date(2024, 12, 28).weekday() == 5
    assert calendar.reason(date(2025, 12, 28)) == "closed (12-28, every year)"
    assert calendar.reason(date(2025, 12, 29)) == "closed (12-29, every year)"
    # An ordinary Saturday stays a weekday closure, not a date: 2025-06-07 is a Saturday, 2026-06-07 a Sunday.
    assert calendar.reason(date(2026, 6, 7)) is None


def test_a_one_off_gap_of_ordinary_days_is_not_learnt_as_a_yearly_closure():
    revenue = _wholesaler().loc["2024-03-01":"2025-03-01"].copy()
    revenue.loc["2024-06-10":"2024-06-13"] = 0.0  # Monday to Thursday: an outage, no holiday near
    calendar = learn(revenue, "GB", horizon_days=120)
    assert calendar.reason(date(2025, 6, 11)) is None
    assert calendar.reason(date(2024, 12, 30)) == "closed (12-30, every year)"  # the Christmas shutdown still is


def test_weeks_without_any_sale_say_nothing_about_the_weekdays():
    """A history with a long gap (two exports of different years, a missing month): the weekdays the business
    trades on in the weeks it traded stay open, however many empty weeks the last year holds."""
    revenue = _wholesaler()
    revenue[(revenue.index >= "2025-01-06") & (revenue.index <= "2025-11-02")] = 0.0  # 43 weeks of nothing
    calendar = learn(revenue)
    assert calendar.closed_weekdays == frozenset({5})  # Saturdays, closed in every week it traded
    # Without the gap weeks the rule is the same: every weekday but Saturday has a sale in all 8 traded weeks.
    gap_free = learn(revenue[revenue.index >= "2025-11-03"])
    assert gap_free.closed_weekdays == frozenset({5})
