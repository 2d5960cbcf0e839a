"""What a question names: the dates ranked first by the findings search, and the segments ranked next."""

import pytest

from analytics_pipeline.analysis.question import DateAsked, dates_asked, segments_named


@pytest.mark.parametrize(
    ("question", "asked"),
    [
        ("why did revenue drop in March?", [DateAsked(None, 3, None)]),
        ("what happened on 12 March 2025?", [DateAsked(2025, 3, 12)]),
        ("orders on March 17th, 2026", [DateAsked(2026, 3, 17)]),
        ("anything odd on 2026-03-17", [DateAsked(2026, 3, 17)]),
        ("sales in Sept 2025 and in 2026", [DateAsked(2025, 9, None), DateAsked(2026, None, None)]),
        ("why did sales fall in May", [DateAsked(None, 5, None)]),
        ("why may revenue have dropped?", []),  # the verb, not the month
        ("revenue on 31 February", []),  # no such day
        ("why did revenue drop?", []),
    ],
)
def test_dates_a_question_names(question, asked):
    assert dates_asked(question) == asked


def test_a_date_without_a_year_is_described_as_any_year_and_only_a_full_date_is_exact():
    [march, day] = dates_asked("March, or 17 March 2026?")
    assert (march.describe(), march.exact()) == ("March (any year)", None)
    assert (day.describe(), str(day.exact())) == ("17 March 2026", "2026-03-17")


def test_segments_are_named_as_whole_words_in_any_case():
    segments = ["eu-west", "eu-west-2", "United Kingdom", "total"]
    assert segments_named("what happened in EU-WEST and the united kingdom?", segments) == ["eu-west", "United Kingdom"]
    assert segments_named("why did revenue drop in March?", segments) == []
