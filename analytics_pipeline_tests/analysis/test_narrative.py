"""Narratives: bounded facts, offline text always grounded, invented numbers caught."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from analytics_pipeline.analysis.anomalies import detect_anomalies
from analytics_pipeline.analysis.completeness import PartialDay
from analytics_pipeline.analysis.forecast import forecast_series
from analytics_pipeline.analysis.narrative import (
    NO_HISTORY_NARRATIVE,
    build_facts,
    build_messages,
    mark_ungrounded,
    money_text,
    offline_narrative,
    ungrounded_numbers,
)

WEEKLY = np.array([0.8, 0.9, 1.0, 1.05, 1.2, 1.4, 0.7])


def dataset(days: int, seed: int = 0, n_products: int = 8, n_regions: int = 4) -> tuple:
    """daily, by_region, by_product, forecast, anomalies - shaped like the assets' inputs."""
    rng = np.random.default_rng(seed)
    day = pd.date_range("2024-01-01", periods=days, freq="D")
    revenue = 10_000 * WEEKLY[day.day_of_week] * np.exp(rng.normal(0, 0.08, days))
    revenue[(day.month == 12) & (day.day == 25)] = 0.0
    orders = np.round(revenue / 50)
    daily = pd.DataFrame({"day": day, "revenue": revenue, "orders": orders, "units": orders * 2,
                          "customers": np.round(orders * 0.9),
                          "avg_order_value": np.where(orders > 0, revenue / np.maximum(orders, 1), 0)})
    regions = [f"Region {i}" for i in range(n_regions)]
    products = [f"Product {i:03d}" for i in range(n_products)]
    parts = []
    for dim, names in (("region", regions), ("product", products)):
        share = rng.dirichlet(np.ones(len(names)) * 5, size=days)
        parts.append(pd.DataFrame({"day": np.repeat(day, len(names)), dim: names * days,
                                   "revenue": (share * revenue[:, None]).ravel()}))
    forecast = forecast_series(daily, horizon=30).frame
    anomalies = detect_anomalies(daily)
    return daily, parts[0], parts[1], forecast, anomalies


@pytest.fixture(scope="module")
def year() -> tuple:
    return dataset(365, seed=3)


@pytest.fixture(scope="module")
def facts(year: tuple) -> dict:
    return build_facts(*year)


@pytest.mark.parametrize("days,seed", [(1, 0), (3, 1), (10, 2), (45, 3), (200, 4), (730, 5)])
def test_offline_narrative_is_always_grounded(days: int, seed: int) -> None:
    facts = build_facts(*dataset(days, seed))
    text = offline_narrative(facts)
    assert ungrounded_numbers(text, facts) == []
    assert text.startswith("What changed:") and "What to do:" in text
    revenue = facts["windows"]["last_7_days"]["revenue"]["current"]
    assert money_text(revenue) in text  # it does state numbers, not just prose


def test_offline_narrative_on_empty_inputs() -> None:
    empty = pd.DataFrame(columns=["day", "revenue", "orders"])
    facts = build_facts(empty, empty, empty, pd.DataFrame(), pd.DataFrame())
    assert facts["latest_day"] is None and facts["anomalies"] == [] and facts["forecast"] is None
    text = offline_narrative(facts)
    assert text and ungrounded_numbers(text, facts) == []


def test_window_totals_and_rounding(year: tuple, facts: dict) -> None:
    daily = year[0]
    last7, prev7 = daily.tail(7), daily.iloc[-14:-7]
    week = facts["windows"]["last_7_days"]
    assert facts["latest_day"] == daily["day"].max().strftime("%Y-%m-%d")
    assert week["days"] == 7 and week["start"] == last7["day"].min().strftime("%Y-%m-%d")
    assert week["revenue"]["current"] == round(last7["revenue"].sum(), 2)
    assert week["revenue"]["previous"] == round(prev7["revenue"].sum(), 2)
    expected_pct = (last7["revenue"].sum() / prev7["revenue"].sum() - 1) * 100
    assert week["revenue"]["change_pct"] == pytest.approx(round(expected_pct, 1), abs=0.051)
    assert week["orders"]["current"] == int(last7["orders"].sum())
    aov = last7["revenue"].sum() / last7["orders"].sum()
    assert week["avg_order_value"]["current"] == round(aov, 2)
    assert facts["windows"]["last_28_days"]["days"] == 28


def test_movers_find_the_planted_riser_and_faller(year: tuple) -> None:
    daily, region, product, forecast, anomalies = year
    product = product.copy()
    recent = product["day"] > daily["day"].max() - pd.Timedelta(days=28)
    product.loc[recent & (product["product"] == "Product 005"), "revenue"] *= 3
    product.loc[recent & (product["product"] == "Product 002"), "revenue"] *= 0.2
    movers = build_facts(daily, region, product, forecast, anomalies)["movers"]["product"]
    assert movers["up"][0]["name"] == "Product 005" and movers["up"][0]["change"] > 0
    assert movers["down"][0]["name"] == "Product 002" and movers["down"][0]["change_pct"] < -50
    assert len(movers["up"]) <= 3 and len(movers["down"]) <= 3


def test_no_movers_without_the_whole_previous_period(year: tuple) -> None:
    """Data starting 40 days before the last day covers only 12 of the previous 28: every name would "rise"."""
    daily, region, product, forecast, anomalies = year
    start = daily["day"].max() - pd.Timedelta(days=39)
    kept = [frame[frame["day"] >= start] for frame in (daily, region, product)]
    movers = build_facts(*kept, forecast, anomalies)["movers"]
    assert (movers["region"], movers["product"]) == ({"up": [], "down": []}, {"up": [], "down": []})
    # With exactly the two periods (56 days) they are there.
    start = daily["day"].max() - pd.Timedelta(days=55)
    kept = [frame[frame["day"] >= start] for frame in (daily, region, product)]
    assert build_facts(*kept, forecast, anomalies)["movers"]["product"]["up"]


def test_forecast_facts_are_totals_of_the_frame_with_the_intervals_of_the_sums(year: tuple, facts: dict) -> None:
    frame = year[3]
    fc = facts["forecast"]
    assert fc["days"] == 30 and fc["first_week"]["days"] == 7
    assert fc["total"] == round(frame["predicted"].sum(), 2)
    assert fc["lower"] is None and fc["first_week"]["upper"] is None  # no interval of the sums was given

    daily, region, product, _, anomalies = year
    result = forecast_series(daily, horizon=30)
    first_day = result.frame["day"].iloc[0]
    totals = pd.DataFrame([{"days": days, "first_day": first_day, "predicted": p, "lower": lo, "upper": hi}
                           for days, (p, lo, hi) in result.totals.items()])
    fc = build_facts(daily, region, product, result.frame, anomalies, forecast_totals=totals)["forecast"]
    assert (fc["lower"], fc["upper"]) == (round(result.totals[30][1], 2), round(result.totals[30][2], 2))
    assert fc["first_week"]["upper"] == round(result.totals[7][2], 2)
    assert fc["lower"] <= fc["total"] <= fc["upper"]
    assert fc["upper"] - fc["lower"] < frame["upper"].sum() - frame["lower"].sum()


def test_facts_stay_small_for_large_inputs() -> None:
    daily, region, product, forecast, _ = dataset(400, seed=9, n_products=300, n_regions=60)
    product["product"] = product["product"] + " - an unusually long catalogue name, 500 ml x 12"
    many = pd.DataFrame({"day": daily["day"].tail(50).repeat(3), "metric": "revenue",
                         "actual": 1.0, "expected": 2.0, "score": -5.0, "direction": "drop",
                         "reason": "revenue 50% below the usual Monday (expected 2.00, got 1.00)"})
    facts = build_facts(daily, region, product, forecast, many)
    assert len(json.dumps(facts)) < 4096
    assert len(facts["anomalies"]) == 5
    assert facts["anomalies"][0]["day"] == daily["day"].max().strftime("%Y-%m-%d")
    names = [m["name"] for side in ("up", "down") for m in facts["movers"]["product"][side]]
    assert names and all(len(n) <= 40 for n in names)
    assert ungrounded_numbers(offline_narrative(facts), facts) == []


def test_planted_wrong_number_is_caught_and_marked(facts: dict) -> None:
    text = offline_narrative(facts) + " Revenue changed by 99.9% compared to last year."
    bad = ungrounded_numbers(text, facts)
    assert bad == ["99.9%"]
    marked = mark_ungrounded(text, bad)
    assert marked.endswith("Revenue changed by 99.9% [unverified] compared to last year.")
    assert marked.count("[unverified]") == 1


FACTS = {
    "latest_day": "2026-11-19",
    "windows": {"last_7_days": {"days": 7, "start": "2026-11-13",
                                "revenue": {"current": 12345.67, "change": -2345.1,
                                            "change_pct": -4.5}}},
    "movers": {"product": {"up": [{"name": "Widget 3000", "change_pct": 12.0}], "down": []}},
    "forecast": {"days": 30, "total": 1234567.0},
    "anomalies": [{"day": "2026-11-18", "reason": "orders 3.1x the usual Friday"}],
}


@pytest.mark.parametrize("text", [
    "Revenue was $12,345.67.", "Revenue was 12345.67 EUR.", "Revenue was about 12,346.",
    "Revenue was €12.3k.", "Revenue fell by -2,345.10 (down 4.5%).", "Revenue moved −4.5 %.",
    "About 1.2 million over the next 30 days.", "Data up to 2026-11-19 (last 7 days).",
    "Widget 3000 grew 12%.", "Orders were 3.1x the usual Friday on 2026-11-18.",
    "In 2026 the top 1 riser was Widget 3000.",
])
def test_numbers_with_other_formatting_are_grounded(text: str) -> None:
    assert ungrounded_numbers(text, FACTS) == []


@pytest.mark.parametrize("text,bad", [
    ("Revenue was 12,345.76.", ["12,345.76"]),
    ("Revenue was 12,400.", ["12,400"]),
    ("Sales rose 4.7% across 11 stores.", ["4.7%", "11"]),
    ("The spike on 2026-11-20 repeats on 2026-11-20.", ["2026-11-20"]),
    ("Expect 2.5 million next month.", ["2.5 million"]),
    ("Revenue was $-12,345.67 or 99.9%.", ["99.9%"]),
])
def test_untraceable_numbers_and_dates_are_flagged(text: str, bad: list[str]) -> None:
    assert ungrounded_numbers(text, FACTS) == bad


def test_mark_ungrounded_only_marks_whole_tokens() -> None:
    text = "Up 99.9% here, 199.9% there and 99.9% again."
    assert mark_ungrounded(text, ["99.9%"]) == (
        "Up 99.9% [unverified] here, 199.9% there and 99.9% [unverified] again.")
    assert mark_ungrounded(text, []) == text


def test_build_messages_carries_the_facts_and_the_rule(facts: dict) -> None:
    messages = build_messages(facts)
    assert [m["role"] for m in messages] == ["system", "user"]
    assert "only numbers" in messages[0]["content"]
    assert all(example in messages[0]["content"] for example in ("(1.37M)", "(48.2k)", "(912.40)", "partial_day"))
    payload = messages[1]["content"].split("\n", 1)[1]
    assert json.loads(payload) == facts


@pytest.mark.parametrize("value,text", [
    (1_366_168.66, "1.37M"), (-1_366_168.66, "-1.37M"), (48_213.5, "48.2k"), (48_250.0, "48.3k"),
    (10_000.0, "10.0k"), (9_999.94, "10.0k"), (9_123.4, "9,123.40"), (912.4, "912.40"), (0.0, "0.00"),
    (999_960.0, "1.00M"), (999_940.0, "1.00M"), (994_940.0, "994.9k"), (1_500_000_000.0, "1.50bn"),
    (1_234_567_890_123.45, "1,234.57bn"),
])
def test_money_is_written_as_a_person_writes_it(value: float, text: str) -> None:
    assert money_text(value) == text


def test_grounding_accepts_the_right_rounding_only() -> None:
    facts = {"revenue": 1_366_168.66, "orders": 48_250.0}
    assert ungrounded_numbers("Revenue 1.37M from 48.3k orders (48.2k rounded down).", facts) == []
    assert ungrounded_numbers("Revenue 1.38M, or 1.36M, or 1.4M.", facts) == ["1.38M", "1.36M"]
    assert ungrounded_numbers("Revenue 48.4k.", facts) == ["48.4k"]


def test_every_amount_written_is_grounded_in_its_value() -> None:
    amounts = np.round(np.random.default_rng(7).lognormal(8, 4, 2000), 2)
    amounts = np.concatenate([amounts, -amounts[:100], [9_999.95, 99_999.95, 999_995.0, 999_994.99]])
    bad = [(a, money_text(a)) for a in amounts if ungrounded_numbers(money_text(a), {"x": float(a)})]
    assert bad == []


def partial_week() -> tuple[pd.DataFrame, PartialDay]:
    """14 whole days of 1,000.00 and 10 orders, then a 15th (a Friday) that stops at midday with 200.00 and 2."""
    day = pd.date_range(end="2026-11-20", periods=15, freq="D")
    revenue = np.r_[np.full(14, 1_000.0), 200.0]
    orders = np.r_[np.full(14, 10.0), 2.0]
    daily = pd.DataFrame({"day": day, "revenue": revenue, "orders": orders})
    reason = "2026-11-20 is incomplete: its last transaction is at 12:04, a Friday usually ends around 17:30"
    return daily, PartialDay(day[-1], 43_440.0, 63_000.0, reason)


def test_the_insight_on_a_partial_last_day_reports_the_complete_days_only() -> None:
    daily, partial = partial_week()
    product = daily.assign(product="Widget")[["day", "product", "revenue"]]
    anomalies = pd.DataFrame({"day": daily["day"].iloc[[-1]], "metric": "revenue", "score": -6.0,
                              "direction": "drop", "reason": "revenue 80% below the usual Friday"})
    facts = build_facts(daily, product.rename(columns={"product": "region"}), product, pd.DataFrame(),
                        anomalies, partial=partial)
    assert facts["latest_day"] == "2026-11-19" and facts["history_days"] == 14
    assert facts["partial_day"] == {"day": "2026-11-20", "reason": partial.reason}
    week = facts["windows"]["last_7_days"]
    assert (week["start"], week["end"], week["previous_start"]) == ("2026-11-13", "2026-11-19", "2026-11-06")
    assert week["revenue"] == {"current": 7_000.0, "previous": 7_000.0, "change": 0.0, "change_pct": 0.0}
    assert week["orders"] == {"current": 70, "previous": 70, "change": 0.0, "change_pct": 0.0}
    assert week["avg_order_value"]["current"] == 100.0
    assert facts["anomalies"] == []  # the partial day's "drop" is the artefact left out

    text = offline_narrative(facts)
    assert text.startswith(
        "What changed: Data up to 2026-11-19, the last complete day. 2026-11-20 is incomplete: its last "
        "transaction is at 12:04, a Friday usually ends around 17:30; it is left out. Last 7 days (2026-11-13 to "
        "2026-11-19): revenue 7,000.00, unchanged vs 7,000.00; orders 70, unchanged vs 70;")
    assert "200" not in text and ungrounded_numbers(text, facts) == []
    assert build_facts(daily, product, product, pd.DataFrame(), anomalies)["latest_day"] == "2026-11-20"


def test_a_history_of_only_a_partial_day_says_so() -> None:
    daily, partial = partial_week()
    facts = build_facts(daily.tail(1), daily.head(0), daily.head(0), pd.DataFrame(), pd.DataFrame(), partial)
    assert facts["latest_day"] is None
    assert offline_narrative(facts) == f"{NO_HISTORY_NARRATIVE} {partial.reason}; it is left out."
