"""Findings: what the pipeline concluded, one sentence or narrative each, kept for the search by meaning.

Why a finding is more than its sentence: an insight, an anomaly or a forecast is dated, and is about a segment and
a metric; that is its identity (re-finding the same thing replaces it, never duplicates it) and what lets a question
about "March" find it. Its numbers are kept next to the words, so an answer can quote them and be checked. The text
that is embedded (`document`) also spells the dates out in words and names a direction and a metric the ways a
person asks about them ("drop", "fell", "sales"), which the offline embedding cannot know are related.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import pandas as pd

from analytics_pipeline.analysis.calendar import WEEKDAYS
from analytics_pipeline.analysis.forecast import INTERVAL
from analytics_pipeline.analysis.narrative import WINDOWS, money_text
from analytics_pipeline.analysis.question import MONTH_NAMES

INSIGHT, ANOMALY, FORECAST = "insight", "anomaly", "forecast"
KINDS = (INSIGHT, ANOMALY, FORECAST)
NARRATIVE = "narrative"  # the metric of an insight, which speaks of several
METRIC_LABELS = {"revenue": "revenue", "orders": "orders", "avg_order_value": "average order value"}
# What a person may call the same thing; only for the offline embedding's benefit.
ALSO_CALLED = {
    "drop": "drop dropped fell fall decline decreased down lower dip",
    "spike": "spike jumped rose rise increased up higher surge peak",
    "revenue": "revenue sales turnover takings",
    "orders": "orders order count number of orders",
    "avg_order_value": "average order value aov basket size",
    "overall": "overall total all regions",
    ANOMALY: "anomaly unusual unexpected outlier",
    FORECAST: "forecast expected expect prediction predicted outlook next",
    INSIGHT: "insight summary narrative week what changed",
}


@dataclass(frozen=True)
class Finding:
    kind: str  # INSIGHT, ANOMALY or FORECAST
    day: date  # the anomaly's day, the insight's last complete day, the forecast's first day
    segment: str  # the total's name (warehouse.series.TOTAL) or a region
    metric: str  # a daily metric, or NARRATIVE
    period_start: date  # the days it speaks about: a question naming one of them ranks it first
    period_end: date
    text: str  # as shown
    numbers: dict[str, float | None]
    document: str  # as embedded: the text, its dates in words and what it is also called

    @property
    def key(self) -> tuple[str, date, str, str]:
        return self.kind, self.day, self.segment, self.metric


def spelled(day: date) -> str:
    """'Tuesday 17 March 2026', whatever the machine's locale."""
    return f"{WEEKDAYS[day.weekday()]} {day.day} {MONTH_NAMES[day.month - 1]} {day.year}"


def _months(start: date, end: date) -> str:
    """'March 2026', or 'November 2026 December 2026' for a period across months."""
    months = pd.period_range(start, end, freq="M")
    return " ".join(f"{MONTH_NAMES[m.month - 1]} {m.year}" for m in months)


def _document(kind: str, text: str, start: date, end: date, *called: str) -> str:
    days = spelled(start) if start == end else f"{spelled(start)} to {spelled(end)}"
    words = " ".join(ALSO_CALLED.get(name, name) for name in (kind, *called))
    return f"{text}\n{days}; {_months(start, end)}; {start.isoformat()}; {words}"


def _where(segment: str, total: str) -> str:
    """How a segment is named in a sentence, and the word the document gives it."""
    return "overall" if segment == total else f"in {segment}"


def from_anomalies(anomalies: pd.DataFrame, total: str) -> list[Finding]:
    """One finding per row of metric_anomalies (day, metric, segment, actual, expected, score, direction, reason);
    `total` names the segment of all regions together."""
    found = []
    for row in anomalies.to_dict("records"):
        day, where = pd.Timestamp(row["day"]).date(), _where(row["segment"], total)
        reason = str(row["reason"]).removeprefix(f"{row['segment']}: ")
        label = METRIC_LABELS.get(row["metric"], row["metric"])
        text = f"{label.capitalize()} {row['direction']} on {spelled(day)}, {where}: {reason}; score {row['score']:.1f}"
        numbers = {name: round(float(row[name]), 2) for name in ("actual", "expected", "score")}
        found.append(Finding(ANOMALY, day, row["segment"], row["metric"], day, day, text, numbers,
                             _document(ANOMALY, text, day, day, row["direction"], row["metric"], where)))
    return found


def from_insights(insights: pd.DataFrame, total: str) -> list[Finding]:
    """One finding per insight (narrative, facts): dated by its last complete day, about the window it leads with.
    An insight written before there was any history says nothing to find and is left out."""
    found = []
    for row in insights.to_dict("records"):
        facts = row["facts"]
        if not facts.get("latest_day"):
            continue
        day = date.fromisoformat(facts["latest_day"])
        lead = facts["windows"].get(f"last_{WINDOWS[0]}_days") or {}
        start = date.fromisoformat(lead["start"]) if lead else day - timedelta(days=WINDOWS[0] - 1)
        numbers = {}
        for days in WINDOWS:
            window = facts["windows"].get(f"last_{days}_days") or {}
            revenue = window.get("revenue") or {}
            numbers |= {f"revenue_last_{days}_days": revenue.get("current"),
                        f"revenue_previous_{days}_days": revenue.get("previous"),
                        f"revenue_change_pct_{days}_days": revenue.get("change_pct")}
        text = str(row["narrative"])
        found.append(Finding(INSIGHT, day, total, NARRATIVE, start, day, text, numbers,
                             _document(INSIGHT, f"Insight for the days up to {spelled(day)}. {text}", start, day)))
    return found


def from_forecasts(totals: pd.DataFrame, total: str) -> list[Finding]:
    """One finding per segment of forecast_totals (segment, days, first_day, last_day, predicted, lower, upper,
    method): its sums over the horizon and the first week, with the intervals of those sums."""
    found = []
    for segment, sums in totals.sort_values("days", ascending=False).groupby("segment", sort=True):
        longest = sums.iloc[0]
        start, end = pd.Timestamp(longest["first_day"]).date(), pd.Timestamp(longest["last_day"]).date()
        parts, numbers = [], {}
        for row in sums.to_dict("records"):
            days = int(row["days"])
            parts.append(f"{money_text(row['predicted'])} over the {'first ' if parts else ''}{days} days "
                         f"({INTERVAL:.0%} range {money_text(row['lower'])} to {money_text(row['upper'])})")
            numbers |= {f"revenue_next_{days}_days": round(float(row["predicted"]), 2),
                        f"lower_next_{days}_days": round(float(row["lower"]), 2),
                        f"upper_next_{days}_days": round(float(row["upper"]), 2)}
        where = _where(segment, total)
        text = (f"Revenue forecast {where} from {spelled(start)} to {spelled(end)}: "
                f"{'; '.join(parts)}. Method: {longest['method']}.")
        found.append(Finding(FORECAST, start, segment, "revenue", start, end, text, numbers,
                             _document(FORECAST, text, start, end, "revenue", where)))
    return found
