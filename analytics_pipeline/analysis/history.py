"""How an analysis says its history is too short or too empty: one metadata key and one wording for all of them.

Each analysis keeps its own threshold next to the logic that needs it (a forecast, a weekday baseline, a
week-on-week comparison) and builds its reason here, so the four assets read alike in the UI.
"""

from __future__ import annotations

import pandas as pd

STATUS_KEY = "status"  # the metadata entry of every analytics asset
READY = "ok"
NOT_ENOUGH_DATA = "not enough data"
NO_HISTORY = "no history yet"


def status(reason: str | None) -> str:
    """READY without a reason, else 'not enough data: <reason>'."""
    return f"{NOT_ENOUGH_DATA}: {reason}" if reason else READY


def days_of_history(days: int) -> str:
    return f"{days} day{'' if days == 1 else 's'} of history"


def too_short(days: int, needed: int, use: str) -> str | None:
    """Why `days` days are too few for `use` (e.g. 'the forecast'), or None when they are enough."""
    if days == 0:
        return NO_HISTORY
    if days < needed:
        return f"{days_of_history(days)}; {use} needs at least {needed}"
    return None


def shortage(daily: pd.DataFrame, needed: int, use: str) -> str | None:
    """Why the daily totals (`day`, `revenue`) cannot support `use`: too few days, or no day with sales."""
    days = int(daily["day"].nunique())
    short = too_short(days, needed, use)
    if short is None and not (daily["revenue"] > 0).any():
        return f"no positive revenue in {days_of_history(days)}"
    return short
