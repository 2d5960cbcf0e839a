"""The business's trading calendar, learnt from its own daily revenue: which days it is closed, and why.

Three kinds of closed day, each learnt from the history, never assumed:

* a weekday with no trading on most of its occurrences over the last year (a wholesaler shut on Saturdays),
  counting only the weeks the business traded in at all: a week without a sale is a gap in the data (or an
  outage), and says nothing about which weekdays are closed;
* a public holiday (the `holidays` library, for ANALYTICS_HOLIDAY_COUNTRY or the country most of the revenue comes
  from) on which the business did not trade the previous times; a holiday not yet seen is closed when most of the
  holidays seen so far were;
* a calendar date (month-day) with no trading in every past year that had it, inside a closure of at most
  MAX_CLOSURE_DAYS days (the shutdown between Christmas and New Year); seen in one year only, the closure must hold a
  public holiday. Longer runs of zeros, and a one-off gap of ordinary days, are outages or data gaps, not closures.

Dates are learnt only where zero days are rare on the days the business trades (at most MAX_RANDOM_ZERO_SHARE):
in an intermittent series a zero on Christmas Day says nothing. The forecast predicts 0 for a closed day, and the
anomaly detector does not raise one; trading on a normally closed day is itself worth a flag.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import date

import holidays as public_holidays
import numpy as np
import pandas as pd

HOLIDAY_COUNTRY_ENV = "ANALYTICS_HOLIDAY_COUNTRY"  # "GB", "GB-SCT", "US-CA", ... or "none"
CLOSED_WEEKDAY_SHARE = 0.8  # a weekday with no trading on this share of its last year's trading weeks is closed
RECENT_DAYS = 364
MIN_WEEKDAY_OCCURRENCES = 4
MAX_CLOSURE_DAYS = 21
MIN_SHUTDOWN_DAYS = 3  # ordinary trading days a zero run needs before the closed weekdays inside it count as dates
MAX_RANDOM_ZERO_SHARE = 0.1
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
# Where a country's holidays differ by region, the region most businesses of that country are in.
DEFAULT_SUBDIVISION = {"GB": "ENG"}
# Country names as exports write them that are not the library's own names.
COUNTRY_ALIASES = {"uk": "GB", "great_britain": "GB", "england": "GB", "eire": "IE", "usa": "US",
                   "united_states_of_america": "US", "holland": "NL", "czech_republic": "CZ", "rsa": "ZA"}


@dataclass(frozen=True)
class TradingCalendar:
    closed_weekdays: frozenset[int] = frozenset()
    holiday_names: dict[date, str] = field(default_factory=dict)  # public holidays over history and horizon
    open_holidays: frozenset[str] = frozenset()  # holiday names the business traded on
    closed_holidays: frozenset[str] = frozenset()  # holiday names it did not
    holidays_closed_by_default: bool = False  # for a holiday name not seen yet
    closed_dates: frozenset[str] = frozenset()  # "MM-DD" closed every year
    country: str | None = None

    def reason(self, day: date | pd.Timestamp) -> str | None:
        """Why the business is closed on this day ("closed (Saturday)", "closed (holiday: Easter Monday)",
        "closed (12-25, every year)"), or None on a trading day."""
        day = pd.Timestamp(day).date()
        if day.weekday() in self.closed_weekdays:
            return f"closed ({WEEKDAYS[day.weekday()]})"
        name = self.holiday_names.get(day)
        shut_by_default = self.holidays_closed_by_default and name not in self.open_holidays
        if name and (name in self.closed_holidays or shut_by_default):
            return f"closed (holiday: {name})"
        if f"{day:%m-%d}" in self.closed_dates:
            return f"closed ({day:%m-%d}, every year)"
        return None

    def closed(self, days: pd.DatetimeIndex) -> np.ndarray:
        return np.array([self.reason(day) is not None for day in days], dtype=bool)

    def describe(self) -> str:
        weekdays = ", ".join(WEEKDAYS[d] + "s" for d in sorted(self.closed_weekdays))
        parts = [f"closed on {weekdays}"] if self.closed_weekdays else []
        if self.country:
            shut = "closed" if self.holidays_closed_by_default else "open"
            parts.append(f"public holidays of {self.country} ({shut} on most"
                         + (f"; closed on {len(self.closed_holidays)} named" if self.closed_holidays else "") + ")")
        if self.closed_dates:
            parts.append(f"closed every year on {', '.join(sorted(self.closed_dates))}")
        return "; ".join(parts) or "trades every day"


def holiday_country(region_revenue: pd.Series | None = None) -> str | None:
    """ANALYTICS_HOLIDAY_COUNTRY when set ("none" turns holidays off), else the country named by the region that
    holds most of the revenue, when the library knows it by that name or code."""
    configured = os.environ.get(HOLIDAY_COUNTRY_ENV, "").strip()
    if configured:
        return None if configured.lower() == "none" else configured.upper()
    if region_revenue is None or region_revenue.empty:
        return None
    return country_code(str(region_revenue.groupby(level=0).sum().idxmax()))


def country_code(name: str) -> str | None:
    """An ISO code for a country as exports name it ("United Kingdom", "EIRE", "DE"), or None."""
    key = "_".join(name.strip().lower().replace("&", "and").split())
    if key in COUNTRY_ALIASES:
        return COUNTRY_ALIASES[key]
    known = {module: entry[1] for module, entry in public_holidays.registry.COUNTRIES.items()}
    if key in known:
        return known[key]
    codes = set(known.values())
    return name.strip().upper() if name.strip().upper() in codes else None


def _holidays(country: str | None, years: range) -> dict[date, str]:
    if not country:
        return {}
    code, _, subdivision = country.partition("-")
    try:
        found = public_holidays.country_holidays(code, subdiv=subdivision or DEFAULT_SUBDIVISION.get(code),
                                                 years=list(years))
    except NotImplementedError:  # not a country the library knows
        return {}
    return {day: name for day, name in found.items()}


def learn(revenue: pd.Series, country: str | None = None, horizon_days: int = 0) -> TradingCalendar:
    """The calendar of a daily revenue series (complete daily index; quiet days are 0), with holidays named over
    the history and ``horizon_days`` after it."""
    if revenue.empty:
        return TradingCalendar(country=country)
    days = pd.DatetimeIndex(revenue.index)
    zero = (revenue.fillna(0).to_numpy() == 0)
    recent = slice(max(0, len(days) - RECENT_DAYS), len(days))
    recent_days = days[recent]
    # The weeks (Monday to Sunday) with at least one sale: only those show which weekdays the business trades on.
    week = recent_days - pd.to_timedelta(recent_days.day_of_week, unit="D")
    traded_week = pd.Series(~zero[recent]).groupby(week.to_numpy()).transform("any").to_numpy()
    closed_weekdays = set()
    for weekday in range(7):
        mine = (recent_days.day_of_week == weekday) & traded_week
        if mine.sum() >= MIN_WEEKDAY_OCCURRENCES and zero[recent][mine].mean() >= CLOSED_WEEKDAY_SHARE:
            closed_weekdays.add(weekday)
    last = days[-1] + pd.Timedelta(days=horizon_days)
    names = _holidays(country, range(days[0].year, last.year + 1))
    trading = ~np.isin(days.day_of_week, list(closed_weekdays))
    is_holiday = np.array([day.date() in names for day in days], dtype=bool)
    ordinary = trading & ~is_holiday
    if not ordinary.any() or zero[ordinary].mean() > MAX_RANDOM_ZERO_SHARE:  # intermittent: zeros say nothing
        return TradingCalendar(frozenset(closed_weekdays), names, country=country)

    seen: dict[str, list[bool]] = {}
    for day, was_zero in zip(days[trading & is_holiday], zero[trading & is_holiday], strict=True):
        seen.setdefault(names[day.date()], []).append(bool(was_zero))
    closed_names = {name for name, zeros in seen.items() if np.mean(zeros) >= 0.5}
    open_names = set(seen) - closed_names
    occurrences = [z for zeros in seen.values() for z in zeros]
    by_default = bool(occurrences) and float(np.mean(occurrences)) >= 0.5

    # A date is closed when it was inside a short zero run every year it occurred; seen once, the run must span
    # several days and hold a public holiday (the shutdown around Christmas): a one-off gap of a few ordinary days
    # is an outage until it recurs. A closed weekday or a holiday inside
    # a shutdown of several ordinary days counts as a sighting of its date too: the 28th of December that fell on a
    # Saturday last year was still part of the Christmas closure, and is closed when it falls on a Sunday.
    run = np.cumsum(np.r_[True, zero[1:] != zero[:-1]])
    run_length = np.bincount(run)[run]
    ordinary_zeros = np.bincount(run, weights=(zero & ordinary).astype(float))[run]
    shutdown = zero & (ordinary_zeros >= MIN_SHUTDOWN_DAYS) & (run_length <= MAX_CLOSURE_DAYS)
    holiday_run = np.bincount(run, weights=(zero & is_holiday).astype(float))[run] > 0
    dates = pd.DataFrame({"closed": zero & (run_length <= MAX_CLOSURE_DAYS), "run": np.where(zero, run_length, 0),
                          "holiday": zero & holiday_run}, index=days)[ordinary | shutdown]
    by_date = dates.groupby(dates.index.strftime("%m-%d")).agg(closed=("closed", "all"), seen=("closed", "size"),
                                                               shortest=("run", "min"), holiday=("holiday", "all"))
    once = (by_date["shortest"] >= 3) & by_date["holiday"]
    learnt = by_date[by_date["closed"] & ((by_date["seen"] >= 2) | once)]
    closed_dates = set(learnt.index) - {"02-29"}
    return TradingCalendar(
        frozenset(closed_weekdays), names, frozenset(open_names), frozenset(closed_names), by_default,
        frozenset(closed_dates), country,
    )


def for_history(total: pd.DataFrame, regions: pd.DataFrame | None = None, horizon_days: int = 0,
                country: str | None = None) -> TradingCalendar:
    """The calendar of a daily series (`day`, `revenue`), with the holidays of `country`, else of
    ANALYTICS_HOLIDAY_COUNTRY or of the region (`segment`, `revenue`) holding most of the revenue."""
    revenue = total.set_index(pd.to_datetime(total["day"]))["revenue"].astype(float).sort_index()
    by_region = regions.groupby("segment")["revenue"].sum() if regions is not None and len(regions) else None
    return learn(revenue.asfreq("D", fill_value=0.0), country or holiday_country(by_region), horizon_days)
