"""What a question names besides its words: dates ("in March", "on 12 March 2025", "March 17", "2026-03-17", "in
2025") and segments ("in eu-west").

Why: a similarity search alone does not know that "why did revenue drop in March?" rules out a drop in June, or
that a question naming no region is about the business as a whole; the findings on a date the question names are
ranked first, then those of the segments it names (the total when it names none). A date without a year matches
that date in every year (the data may hold several Marches). Relative dates ("last week") are not read: relative
to today or to the data's last day is a guess.
"""

from __future__ import annotations

import re
from datetime import date
from typing import NamedTuple

MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
               "November", "December")
_MONTHS = {name.lower(): number for number, name in enumerate(MONTH_NAMES, 1)}
_MONTHS |= {name[:3].lower(): number for name, number in _MONTHS.items()} | {"sept": 9}
_MONTH = r"(?P<month>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_DAY = r"(?P<day>\d{1,2})(?:st|nd|rd|th)?"
_YEAR = r"(?P<year>(?:19|20)\d{2})"
# Most specific first; each match is blanked out so "17 March 2026" is not also "March" and "2026".
_FORMS = [re.compile(form, re.I) for form in (
    r"\b(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})\b",
    rf"\b{_DAY}\s+(?:of\s+)?{_MONTH}(?:,?\s+{_YEAR})?\b",
    rf"\b{_MONTH}\s+{_DAY}(?!\d)(?:,?\s+{_YEAR})?\b",
    rf"\b{_MONTH}\s+{_YEAR}\b",
    rf"\b{_MONTH}\b",
    rf"\b{_YEAR}\b",
)]


class DateAsked(NamedTuple):
    """A date or a span as a question names it; None is "any" (any year, the whole month, the whole year)."""

    year: int | None
    month: int | None
    day: int | None

    def exact(self) -> date | None:
        """The one day asked, when the question names day, month and year."""
        return date(self.year, self.month, self.day) if self.year and self.month and self.day else None

    def describe(self) -> str:
        parts = [str(self.day) if self.day else "", MONTH_NAMES[self.month - 1] if self.month else "",
                 str(self.year) if self.year else "(any year)"]
        return " ".join(part for part in parts if part)


def dates_asked(question: str) -> list[DateAsked]:
    """Every date the question names, in the order it names them; impossible dates (31 February) are skipped."""
    found: list[tuple[int, DateAsked]] = []
    text = question
    for form in _FORMS:
        for match in form.finditer(text):
            named = match.groupdict()
            month, day, year = named.get("month"), named.get("day"), named.get("year")
            if month == "may" and not (day or year):
                continue  # "why may revenue have dropped": the verb; the month is written "May"
            asked = DateAsked(
                year=int(year) if year else None,
                month=(int(month) if month.isdigit() else _MONTHS[month.lower()]) if month else None,
                day=int(day) if day else None,
            )
            if _possible(asked):
                found.append((match.start(), asked))
            text = text[: match.start()] + " " * (match.end() - match.start()) + text[match.end() :]
    return [asked for _, asked in sorted(found, key=lambda pair: pair[0])]


def _possible(asked: DateAsked) -> bool:
    if asked.month is not None and not 1 <= asked.month <= 12:
        return False
    try:
        date(asked.year or 2000, asked.month or 1, asked.day or 1)  # 2000 is a leap year: 29 February is possible
    except ValueError:
        return False
    return True


def segments_named(question: str, segments: list[str]) -> list[str]:
    """The segments (regions, or the total's own name) the question names, as whole words in any case."""
    return [
        segment for segment in segments
        if re.search(rf"(?<![\w-]){re.escape(segment)}(?![\w-])", question, re.I)
    ]
