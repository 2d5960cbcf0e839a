"""The partial last day: each rule on a small hand-made history of closing times, with exact results."""

from __future__ import annotations

import datetime

import numpy as np
import pandas as pd

from analytics_pipeline.analysis.completeness import (
    FALLBACK_DAYS,
    MIN_GAP_SECONDS,
    PartialDay,
    complete_days,
    partial_last_day,
)

FRIDAY = pd.Timestamp("2026-11-20")  # the last day of every history below


def at(clock: str) -> float:
    """Seconds after midnight of 'HH:MM'."""
    hours, minutes = clock.split(":")
    return int(hours) * 3600 + int(minutes) * 60.0


def history(last: str | None, days: int = 57, friday: str = "17:30", other: str = "18:00") -> pd.DataFrame:
    """`days` days ending on FRIDAY: Fridays last trade at `friday`, other days at `other`, the last day at `last`
    (None: no transaction at all)."""
    day = pd.date_range(end=FRIDAY, periods=days, freq="D")
    last_at = np.where(day.day_of_week == 4, at(friday), at(other))
    last_at[-1] = np.nan if last is None else at(last)
    return pd.DataFrame({"day": day, "last_at": last_at})


def test_a_friday_that_stops_at_midday_is_partial() -> None:
    seen = history("12:04").sample(frac=1, random_state=0)  # row order does not matter
    assert partial_last_day(seen) == PartialDay(
        day=FRIDAY,
        last_at=at("12:04"),
        usual_last_at=at("17:30"),
        reason="2026-11-20 is incomplete: its last transaction is at 12:04, a Friday usually ends around 17:30",
    )


def test_a_day_ending_twenty_minutes_early_is_complete() -> None:
    # Earlier than every previous Friday, but well inside the gap an ordinary quiet evening has.
    assert at("17:30") - at("17:10") < MIN_GAP_SECONDS
    assert partial_last_day(history("17:10")) is None


def test_a_day_no_earlier_than_a_previous_short_friday_is_complete() -> None:
    assert partial_last_day(history("13:00")) is not None
    seen = history("13:00")
    seen.loc[seen["day"] == FRIDAY - pd.Timedelta(weeks=3), "last_at"] = at("12:30")  # a half day three weeks ago
    assert partial_last_day(seen) is None


def test_only_the_last_eight_weeks_of_the_weekday_count() -> None:
    seen = history("12:04", days=71)
    seen.loc[seen["day"] == FRIDAY - pd.Timedelta(weeks=9), "last_at"] = at("11:00")  # too old to say what is usual
    assert partial_last_day(seen).usual_last_at == at("17:30")
    seen.loc[seen["day"] == FRIDAY - pd.Timedelta(weeks=8), "last_at"] = at("11:00")  # the eighth Friday back counts
    assert partial_last_day(seen) is None


def test_today_is_partial_however_late_it_ends() -> None:
    partial = partial_last_day(history("17:45"), today=datetime.date(2026, 11, 20))
    assert partial == PartialDay(
        day=FRIDAY,
        last_at=at("17:45"),
        usual_last_at=at("17:30"),
        reason="2026-11-20 is not over yet (today is 2026-11-20): its last transaction so far is at 17:45",
    )
    assert partial_last_day(history("17:45"), today=datetime.date(2026, 11, 21)) is None  # yesterday: complete


def test_a_day_without_transactions_is_not_partial() -> None:
    # A closure or an outage, not half a day: even when it is today.
    assert partial_last_day(history(None)) is None
    assert partial_last_day(history(None), today=datetime.date(2026, 11, 20)) is None
    assert partial_last_day(pd.DataFrame({"day": pd.to_datetime([]), "last_at": []})) is None


def test_closed_days_in_the_history_are_not_reference_days() -> None:
    seen = history("12:04")
    seen.loc[seen["day"].dt.day_of_week == 4, "last_at"] = np.nan  # every earlier Friday closed ...
    seen.loc[seen["day"] == FRIDAY, "last_at"] = at("12:04")
    partial = partial_last_day(seen)  # ... so the other trading days of the last four weeks are the reference
    assert partial.usual_last_at == at("18:00")
    assert partial.reason == (
        "2026-11-20 is incomplete: its last transaction is at 12:04, a trading day usually ends around 18:00"
    )


def test_fewer_than_three_previous_same_weekdays_fall_back_to_the_last_four_weeks() -> None:
    seen = history("12:04", days=15, other="19:00")  # two earlier Fridays only
    partial = partial_last_day(seen)
    # The median of the previous 14 days: 12 days at 19:00 and 2 Fridays at 17:30.
    assert partial == PartialDay(
        day=FRIDAY,
        last_at=at("12:04"),
        usual_last_at=at("19:00"),
        reason="2026-11-20 is incomplete: its last transaction is at 12:04, a trading day usually ends around 19:00",
    )

def test_the_fallback_reaches_back_four_weeks_only() -> None:
    seen = history("12:04", days=FALLBACK_DAYS + 2).iloc[[0, -4, -3, -2, -1]]  # 29, 3, 2 and 1 days before
    seen = seen.assign(last_at=[at("11:00"), at("19:00"), at("19:00"), at("19:00"), at("12:04")])
    assert partial_last_day(seen).usual_last_at == at("19:00")  # the early close 29 days back is not a reference


def test_too_short_a_history_judges_nothing_but_today() -> None:
    seen = history("12:04", days=3)  # two earlier days: neither rule of thumb has enough to go on
    assert partial_last_day(seen) is None
    assert partial_last_day(seen, today=datetime.date(2026, 11, 20)).usual_last_at == at("18:00")
    assert np.isnan(partial_last_day(history("12:04", days=1), today=datetime.date(2026, 11, 20)).usual_last_at)


def test_complete_days_drops_only_the_partial_day() -> None:
    daily = pd.DataFrame({"day": pd.date_range(end=FRIDAY, periods=3, freq="D"), "revenue": [1.0, 2.0, 0.5]})
    partial = partial_last_day(history("12:04"))
    assert complete_days(daily, partial)["revenue"].tolist() == [1.0, 2.0]
    assert complete_days(daily, None) is daily
    as_dates = daily.assign(day=daily["day"].dt.date)  # frames read from SQL may hold dates
    assert complete_days(as_dates, partial)["revenue"].tolist() == [1.0, 2.0]
