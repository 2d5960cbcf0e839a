"""A short answer to a question about the business, grounded in the findings a search returned.

Why a fact sheet again: GPT sees only the findings (their text, dates and numbers) and the daily tables' figures of
the days they are about, and its answer is checked with the insights' checker (narrative.ungrounded_numbers)
against exactly that sheet. An answer quoting a number from nowhere is not shown.
"""

from __future__ import annotations

import json

from analytics_pipeline.analysis.narrative import NUMBER_RULES

MAX_WORDS = 120
ANSWER_PROMPT = (
    "You answer a question about a business's sales from the findings its analytics pipeline recorded (insights, "
    "anomalies, forecasts) and the daily figures of the days they are about, all in the facts JSON. "
    f"{NUMBER_RULES} Name the date (YYYY-MM-DD) of each finding you use. A finding is evidence of what happened, "
    "not proof of why: say what the findings show and what they suggest. If they do not answer the question, say "
    f"so in one sentence. At most {MAX_WORDS} words, plain text."
)


def build_facts(question: str, found: list[dict], daily: list[dict]) -> dict:
    """The sheet the answer is written from and checked against: the question (its own numbers may be echoed), the
    findings as the search returned them and the daily rows (day, segment, revenue, orders, avg_order_value).
    Plain JSON (dates as YYYY-MM-DD), so what is checked is exactly what GPT is sent."""
    facts = {
        "question": question,
        "findings": [
            {key: finding[key] for key in ("kind", "day", "segment", "metric", "text", "numbers")} for finding in found
        ],
        "daily": daily,
    }
    return json.loads(json.dumps(facts, default=str))


def build_messages(facts: dict) -> list[dict]:
    """Chat-completions messages (system + user) asking for the grounded answer."""
    user = "Facts (JSON):\n" + json.dumps(facts, ensure_ascii=False)
    return [{"role": "system", "content": ANSWER_PROMPT}, {"role": "user", "content": user}]
