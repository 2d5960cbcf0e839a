"""Is the latest day of the data complete? A day that stops at midday is not a bad day, it is half a day.

An export taken at lunchtime, or a load that runs while the shop still trades, ends the history in a day that holds
only its morning. Read as a whole day it looks like a collapse: revenue and orders down, average order value moved,
an anomaly on the last day, and a forecast trained to expect it again. So the latest day is called *partial*, and the
analytics leave it out, when

* it is today (or later) in the data's own day boundary: the day is not over, whatever it holds so far; or
* its last transaction is well before that weekday's usual last transaction: earlier than every one of the same
  weekdays of the previous REFERENCE_WEEKS weeks (a day that ends a little early is an ordinary quiet evening) and
  at least MIN_GAP_SECONDS before their median (a tight closing time does not make ten minutes early "partial").

Weekdays are compared with themselves because a shop's hours differ by weekday (a Saturday that ends at 13:00 is
normal, a Friday that does is not). With fewer than MIN_REFERENCE_DAYS same weekdays to compare with (a young history,
or a weekday that has just started trading), every trading day of the previous FALLBACK_DAYS days is the reference
instead; with fewer than that too, nothing is judged.

A day with no transactions at all is never partial: it is a closure or an outage, which the trading calendar and the
anomaly detector explain. The rule leans towards "partial": a complete day wrongly left out only delays it in the
insight until the next day arrives, while a partial day wrongly kept turns into false drops everywhere.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import pandas as pd

from analytics_pipeline.analysis.calendar import WEEKDAYS

REFERENCE_WEEKS = 8  # two months of a weekday: enough to see its usual close, recent enough to follow new hours
MIN_REFERENCE_DAYS = 3  # the earliest of fewer last times says little about what is usual
FALLBACK_DAYS = 28  # four weeks of any trading day when the weekday itself has too few
MIN_GAP_SECONDS = 2 * 3600  # "well before" means at least two hours before the usual last transaction


@dataclass(frozen=True)
class PartialDay:
    day: pd.Timestamp  # normalised, like the `day` column of the daily frames
    last_at: float  # seconds after midnight of the day's last transaction
    usual_last_at: float  # median last transaction of the reference days; NaN when there were none
    reason: str  # one sentence for the UI and the insight


def _clock(seconds: float) -> str:
    """'17:30' for 63,000 seconds after midnight: the time a clock shows, minutes truncated."""
    minutes = int(seconds // 60)
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _reference(history: pd.DataFrame, day: pd.Timestamp) -> tuple[pd.Series, str]:
    """Last times of the days `day` is compared with, and how the reason names them ('a Friday')."""
    same = history[(history["day"] >= day - pd.Timedelta(weeks=REFERENCE_WEEKS))
                   & (history["day"].dt.day_of_week == day.day_of_week)]
    if len(same) >= MIN_REFERENCE_DAYS:
        return same["last_at"], f"a {WEEKDAYS[day.day_of_week]}"
    return history.loc[history["day"] >= day - pd.Timedelta(days=FALLBACK_DAYS), "last_at"], "a trading day"


def partial_last_day(last_seen: pd.DataFrame, today: datetime.date | None = None) -> PartialDay | None:
    """The latest day of `last_seen` (columns `day`, `last_at`) when it is incomplete, else None.

    `today` is the current date in the data's day boundary; without it only the last-transaction rule applies.
    """
    seen = last_seen.assign(day=pd.to_datetime(last_seen["day"]).dt.normalize()).sort_values("day")
    if seen.empty or pd.isna(seen["last_at"].iloc[-1]):
        return None  # no history, or a latest day without any transaction: a closure, not half a day
    day, last_at = seen["day"].iloc[-1], float(seen["last_at"].iloc[-1])
    history = seen[(seen["day"] < day) & seen["last_at"].notna()]
    usual, peers = _reference(history, day)
    median = float(usual.median()) if len(usual) else float("nan")
    if today is not None and day.date() >= today:
        reason = (f"{day:%Y-%m-%d} is not over yet (today is {today:%Y-%m-%d}): its last transaction so far "
                  f"is at {_clock(last_at)}")
        return PartialDay(day, last_at, median, reason)
    if len(usual) >= MIN_REFERENCE_DAYS and last_at < usual.min() and last_at <= median - MIN_GAP_SECONDS:
        reason = (f"{day:%Y-%m-%d} is incomplete: its last transaction is at {_clock(last_at)}, "
                  f"{peers} usually ends around {_clock(median)}")
        return PartialDay(day, last_at, median, reason)
    return None


def complete_days(daily: pd.DataFrame, partial: PartialDay | None) -> pd.DataFrame:
    """`daily` (any frame with a `day` column) without the partial day's rows; unchanged when there is none."""
    if partial is None or daily.empty:
        return daily
    return daily[pd.to_datetime(daily["day"]) != partial.day]
