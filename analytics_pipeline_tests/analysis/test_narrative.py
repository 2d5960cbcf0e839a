"""Narratives: bounded facts, offline text always grounded, invented numbers caught."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from analytics_pipeline.analysis.anomalies import detect_anomalies
from analytics_pipeline.analysis.forecast import forecast_series
from analytics_pipeline.analysis.narrative import (
    build_facts,
    build_messages,
    mark_ungrounded,
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
    assert f"{revenue:,.2f}" in text  # it does state numbers, not just prose


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


def test_forecast_facts_are_totals_of_the_frame(year: tuple, facts: dict) -> None:
    frame = year[3]
    fc = facts["forecast"]
    assert fc["days"] == 30 and fc["first_week"]["days"] == 7
    assert fc["total"] == round(frame["predicted"].sum(), 2)
    assert fc["first_week"]["upper"] == round(frame["upper"].head(7).sum(), 2)
    assert fc["lower"] <= fc["total"] <= fc["upper"]


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
    payload = messages[1]["content"].split("\n", 1)[1]
    assert json.loads(payload) == facts
