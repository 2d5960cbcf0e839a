"""Grounded insight narratives: a bounded fact sheet, a prompt, and a number checker.

Why: a language model asked to "explain the numbers" will happily invent some, so it only
gets rounded facts and every number in its reply is traced back to them. The facts end at the last
complete day: a partial latest day (analysis.completeness) would read as a collapse, so it is left out
and named, with why, instead. Prose states money as a person writes it (1.37M, 48.2k, 912.40); the
checker accepts such a number when it is the correct rounding of a fact."""

from __future__ import annotations

import json
import re
from decimal import ROUND_HALF_UP, Decimal

import pandas as pd

from analytics_pipeline.analysis.completeness import PartialDay, complete_days
from analytics_pipeline.analysis.forecast import HORIZON_DAYS

MAX_NAME, MAX_REASON, MAX_FACTS_BYTES = 40, 160, 4000
WINDOWS, MOVER_DAYS, TOP_MOVERS, MAX_ANOMALIES = (7, 28), 28, 3, 5
MIN_COMPARISON_DAYS = 2 * WINDOWS[0]  # the shortest window and the one before it
MOVER_HISTORY_DAYS = 2 * MOVER_DAYS  # the movers' current and previous periods
NO_HISTORY_NARRATIVE = "Not enough data yet: there is no sales history to report on."
# Money in prose: (smallest amount, unit, suffix, decimals), largest first. An amount takes the first scale it
# reaches *once rounded*, so 999,996 reads 1.00M, not 1,000.0k; below 10,000 it keeps its cents (9,123.40).
# Millions and billions keep two decimals and thousands one: at least three significant figures, as a person quotes
# a total, so a rounded amount is never more than 0.5% off. Halves round up, as a person rounds (48,250 is 48.3k).
# Counts (orders) stay whole numbers in full.
MONEY_SCALES = ((10**9, 10**9, "bn", 2), (10**6, 10**6, "M", 2), (10**4, 10**3, "k", 1))
_iso = "{:%Y-%m-%d}".format  # Timestamp -> 'YYYY-MM-DD', the only date form the checker knows


def money_text(value: float) -> str:
    """An amount as a person writes it: '-1.37M', '48.2k', '9,123.40' (MONEY_SCALES). Rounded in
    decimal, from the shortest form of the float, so 48250.0 is a true half and rounds up."""
    size = abs(Decimal(repr(float(value))))
    sign = "-" if value < 0 else ""
    for smallest, unit, suffix, decimals in MONEY_SCALES:
        scaled = (size / unit).quantize(Decimal(1).scaleb(-decimals), ROUND_HALF_UP)
        if scaled * unit >= smallest:
            return f"{sign}{scaled:,}{suffix}"
    return f"{sign}{size.quantize(Decimal('0.01'), ROUND_HALF_UP):,}"


CHAT_MODEL = "gpt-4o-mini"  # what writes grounded text (narratives, answers) unless a run's config names another
# The rule every prompt for grounded text states, in the form ungrounded_numbers checks.
NUMBER_RULES = (
    "Use only numbers that appear in the facts JSON, copied exactly or rounded as a person writes them: money of "
    f"a million or more in millions with two decimals ({money_text(1_366_168.66)}), of ten thousand or more in "
    f"thousands with one decimal ({money_text(48_213.5)}), smaller amounts with two decimals "
    f"({money_text(912.4)}); counts as whole numbers; percentages with one decimal; dates as YYYY-MM-DD. Never "
    "compute new numbers (no new sums, differences, ratios or percentages).")
SYSTEM_PROMPT = (
    f"You write short narratives for a daily sales dashboard. {NUMBER_RULES} "
    "latest_day is the last complete day and every figure ends there; when partial_day is set, say "
    "that day is incomplete and why (its reason) and that it is left out. Write three short "
    "sections: 'What changed', 'Why it may have changed' (movers, zero days and anomalies are "
    "hypotheses, not proof) and 'What to do'. Stay under 150 words. If the facts are thin, say so.")


def _money(x: float) -> float:
    return round(float(x), 2)


def _pct(current: float, previous: float) -> float | None:
    return None if previous == 0 else round((current - previous) / abs(previous) * 100, 1)


def _sums(daily: pd.DataFrame, start, end, full: bool) -> dict | None:
    """Window totals; None without rows or, if `full`, when a day of the window is missing."""
    rows = daily[(daily["day"] >= start) & (daily["day"] <= end)]
    if rows.empty or (full and rows["day"].nunique() < (end - start).days + 1):
        return None
    revenue = float(rows["revenue"].sum())
    orders = float(rows["orders"].sum()) if "orders" in rows else 0.0
    return {"revenue": _money(revenue), "orders": round(orders), "avg_order_value":
            _money(revenue / orders) if orders else None, "zero": int((rows["revenue"] == 0).sum())}


def _compare(daily: pd.DataFrame, latest: pd.Timestamp, days: int) -> dict:
    """Last `days` days vs the `days` before; AOV is window revenue / window orders."""
    start, prev_start = (latest - pd.Timedelta(days=d) for d in (days - 1, 2 * days - 1))
    cur = _sums(daily, start, latest, full=False)
    prev = _sums(daily, prev_start, start - pd.Timedelta(days=1), full=True)
    shown = max(start, daily["day"].min())  # a short history covers fewer days than asked
    out: dict = {"days": (latest - shown).days + 1, "start": _iso(shown), "end": _iso(latest),
                 "previous_start": _iso(prev_start), "zero_revenue_days": cur and cur["zero"],
                 "previous_zero_revenue_days": prev and prev["zero"]}
    for name in ("revenue", "orders", "avg_order_value"):
        c, p = (None if w is None else w[name] for w in (cur, prev))
        both = c is not None and p is not None
        out[name] = {"current": c, "previous": p, "change": _money(c - p) if both else None,
                     "change_pct": _pct(c, p) if both else None}
    return out


def _movers(frame: pd.DataFrame, latest: pd.Timestamp | None) -> dict:
    """Top risers and fallers by revenue, last 28 days vs the 28 before."""
    dims = [c for c in frame.columns if c not in ("day", "revenue")]
    age = (latest - pd.to_datetime(frame["day"])).dt.days if latest is not None else None
    # Only with the whole previous period in the data: a half-covered one makes every name a "riser" of 1000%.
    if age is None or not dims or "revenue" not in frame or not (age >= 2 * MOVER_DAYS - 1).any():
        return {"up": [], "down": []}
    name = frame[dims[0]].astype(str).str.slice(0, MAX_NAME)
    sums = {k: frame["revenue"].where((age >= lo) & (age < lo + MOVER_DAYS), 0).groupby(name).sum()
            for k, lo in (("current", 0), ("previous", MOVER_DAYS))}
    table = pd.DataFrame(sums).map(_money).rename_axis("name").reset_index()
    table["change"] = (table["current"] - table["previous"]).map(_money)
    up = table[table["change"] > 0].sort_values(["change", "name"], ascending=[False, True])
    down = table[table["change"] < 0].sort_values(["change", "name"])
    return {k: [r | {"change_pct": _pct(r["current"], r["previous"])} for r in
                t.head(TOP_MOVERS).to_dict("records")] for k, t in (("up", up), ("down", down))}


def _forecast_facts(forecast: pd.DataFrame, totals: pd.DataFrame | None, latest: pd.Timestamp | None) -> dict | None:
    """Forecast-horizon and first-week sums. Their ranges are the forecast's own intervals of those sums (a sum of
    daily bounds would be far wider than 80%); None where the forecast has none (too short a history)."""
    if forecast is None or "day" not in forecast:
        return None
    rows = forecast.assign(day=pd.to_datetime(forecast["day"])).sort_values("day")
    rows = (rows[rows["day"] > latest] if latest is not None else rows).head(HORIZON_DAYS)

    def block(part: pd.DataFrame) -> dict:
        start = part["day"].min()
        known = totals[(totals["days"] == len(part)) & (totals["first_day"] == start)] if totals is not None else []
        bounds = {k: _money(known[k].iloc[0]) if len(known) else None for k in ("lower", "upper")}
        return {"days": len(part), "start": _iso(start), "end": _iso(part["day"].max()),
                "total": _money(part["predicted"].sum()), **bounds}

    return None if rows.empty else {"metric": "revenue", **block(rows), "first_week": block(rows.head(7))}


def _anomaly_facts(anomalies: pd.DataFrame) -> list[dict]:
    """The most recent anomalies (largest |score| first within a day)."""
    if anomalies is None or "score" not in anomalies:
        return []
    rows = anomalies.assign(_abs=anomalies["score"].abs(), day=pd.to_datetime(anomalies["day"]))
    rows = rows.sort_values(["day", "_abs"], ascending=False).head(MAX_ANOMALIES)
    keep = [c for c in ("segment", "metric", "direction") if c in rows]
    return [{"day": _iso(r["day"]), **{c: str(r[c])[:MAX_NAME] for c in keep},
             "reason": str(r["reason"])[:MAX_REASON]} for r in rows.to_dict("records")]


def build_facts(daily: pd.DataFrame, by_region: pd.DataFrame, by_product: pd.DataFrame,
                forecast: pd.DataFrame, anomalies: pd.DataFrame,
                partial: PartialDay | None = None, forecast_totals: pd.DataFrame | None = None) -> dict:
    """Fact sheet rounded as stated (money 2 dp, percents 1 dp, orders int), < 4,000 bytes.
    The `partial` day's rows are left out of every frame but the forecast, and named with its
    reason; windows then end at the latest remaining day of `daily`, the last complete one. A
    previous window not fully covered by data is None, as is a % change from 0. The forecast is
    taken to be revenue; `forecast_totals` (days, first_day, lower, upper) gives the ranges of its sums."""
    daily, by_region, by_product, anomalies = (
        complete_days(f, partial) for f in (daily, by_region, by_product, anomalies))
    daily = daily.assign(day=pd.to_datetime(daily["day"])) if len(daily) else daily
    ends = [pd.to_datetime(f["day"]).max() for f in (daily, by_region, by_product) if len(f)]
    latest = (daily["day"].max() if len(daily) else max(ends)) if ends else None
    facts: dict = {"latest_day": None if latest is None else _iso(latest),
                   "partial_day": partial and {"day": _iso(partial.day), "reason": partial.reason},
                   "history_days": int(daily["day"].nunique()) if len(daily) else 0,
                   "windows": {f"last_{n}_days": len(daily) and _compare(daily, latest, n) or None
                               for n in WINDOWS}}
    facts["movers"] = {"basis": f"revenue, last {MOVER_DAYS} days vs previous {MOVER_DAYS}",
                       "region": _movers(by_region, latest), "product": _movers(by_product, latest)}
    facts["forecast"] = _forecast_facts(forecast, forecast_totals, latest)
    facts["anomalies"] = _anomaly_facts(anomalies)
    while len(json.dumps(facts)) > MAX_FACTS_BYTES and facts["anomalies"]:
        facts["anomalies"].pop()  # safety net; realistic inputs stay well below
    return facts


def build_messages(facts: dict) -> list[dict]:
    """Chat-completions messages (system + user) asking for a grounded narrative."""
    user = "Facts (JSON):\n" + json.dumps(facts, ensure_ascii=False)
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def _change(d: dict, count: bool = False) -> str:
    """'48.2k, up 4.5% vs 46.1k' from the stored values only; counts in full ('1,234')."""
    fmt, pct = ("{:,}".format if count else money_text), d["change_pct"]
    if d["current"] is None:
        return "no data"
    if pct is None:
        return f"{fmt(d['current'])} (no comparable previous period)"
    move = "unchanged" if pct == 0 else f"{'up' if pct > 0 else 'down'} {abs(pct):.1f}%"
    return f"{fmt(d['current'])}, {move} vs {fmt(d['previous'])}"


def offline_narrative(facts: dict) -> str:
    """Deterministic three-part narrative stating only numbers present in `facts`."""
    partial = facts.get("partial_day") and f"{facts['partial_day']['reason']}; it is left out."
    if facts.get("latest_day") is None:
        return " ".join(filter(None, [NO_HISTORY_NARRATIVE, partial]))
    windows = list({w["start"]: w for w in facts["windows"].values() if w}.values())  # dedupe
    complete = f", the last complete day. {partial}" if partial else "."
    changed, why, todo = [f"Data up to {facts['latest_day']}{complete}"], [], []
    for w in windows:
        changed.append(f"Last {w['days']} days ({w['start']} to {w['end']}): revenue "
                       f"{_change(w['revenue'])}; orders {_change(w['orders'], count=True)}; "
                       f"average order value {_change(w['avg_order_value'])}.")
        zero, before = w["zero_revenue_days"], w["previous_zero_revenue_days"]
        if zero and zero != before:
            versus = "" if before is None else f" against {before or 'none'} before"
            why.append(f"The last {w['days']} days include {zero} zero-revenue day(s) "
                       f"(closures or outages){versus}.")
    for dim, side in (("region", "up"), ("region", "down"), ("product", "up"), ("product", "down")):
        for m in facts["movers"][dim][side][:1]:
            word, sign = ("increase", "+") if side == "up" else ("decrease", "-")
            pct = "" if m["change_pct"] is None else f", {sign}{abs(m['change_pct']):.1f}%"
            why.append(f"{dim.capitalize()} with the biggest {word}: {m['name']} "
                       f"({sign}{money_text(abs(m['change']))}{pct}).")
    since = min(w["start"] for w in windows)
    recent = [a for a in facts["anomalies"] if a["day"] >= since]  # older ones explain nothing
    why += [f"Anomaly on {a['day']}: {a['reason']}." for a in recent[:3]]
    if falling := facts["movers"]["product"]["down"]:
        todo.append(f"Review stock, price and promotion of {falling[0]['name']}.")
    if recent:
        todo.append(f"Check {recent[0]['day']} for outages, data issues or one-off events.")
    if f := facts.get("forecast"):
        w = f["first_week"]
        span = lambda block: (f" (range {money_text(block['lower'])} to {money_text(block['upper'])})"  # noqa: E731
                              if block["lower"] is not None else "")
        todo.append(f"Plan for revenue of about {money_text(f['total'])} over the next {f['days']} days{span(f)}; "
                    f"the first {w['days']} days should bring {money_text(w['total'])}{span(w)}.")
    return "\n\n".join([
        "What changed: " + " ".join(changed),
        "Why it may have changed: " + (" ".join(why) or "no clear driver in the data."),
        "What to do: " + (" ".join(todo) or "keep monitoring; too little data for advice."),
    ])


_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
_NUM = re.compile(r"(?:(?<![\w.])[-+\u2212](?=[$\u20ac\u00a3]?\d))?[$\u20ac\u00a3]?"
                  r"(?<![\w.])(?P<int>\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?P<dec>\.\d+)?"
                  r"(?P<suf>\s?(?:%|percent\b|[kKM]\b|bn\b|thousand\b|million\b|billion\b))?")
_SCALE = {"k": 1e3, "thousand": 1e3, "m": 1e6, "million": 1e6, "bn": 1e9, "billion": 1e9}


def _tokens(text: str) -> list[tuple]:
    """(start, end, token, payload) in text order; payload is the ISO string for dates,
    else (value, decimals stated, multiplier such as 1e6 for 'million')."""
    found, masked = [], list(text)
    for m in _DATE.finditer(text):
        found.append((m.start(), m.end(), m.group(), m.group()))
        masked[m.start() : m.end()] = " " * (m.end() - m.start())
    for m in _NUM.finditer("".join(masked)):
        dec, suffix = m.group("dec") or "", (m.group("suf") or "").strip().lower()
        value = float(m.group("int").replace(",", "") + dec)
        payload = (value, max(len(dec) - 1, 0), _SCALE.get(suffix, 1.0))
        found.append((m.start(), m.end(), m.group(), payload))
    return sorted(found)


def _allowed(node, numbers: set[float], dates: set[str]) -> None:
    """Collect fact values, numbers inside fact strings, list lengths, dates and years."""
    if isinstance(node, list):
        numbers.add(float(len(node)))
    if isinstance(node, int | float) and not isinstance(node, bool):
        numbers.add(abs(float(node)))
    for *_, payload in _tokens(node) if isinstance(node, str) else ():
        if isinstance(payload, str):  # a date; its year alone ("in 2025") is fine too
            dates.add(payload)
        numbers.add(float(payload[:4]) if isinstance(payload, str) else payload[0] * payload[2])
    for sub in node.values() if isinstance(node, dict) else node if isinstance(node, list) else ():
        _allowed(sub, numbers, dates)


def ungrounded_numbers(text: str, facts: dict) -> list[str]:
    """Numbers and dates in `text` that cannot be traced to `facts` (unique, in order).

    Grounded = some fact value equals it after rounding to the precision the text states
    ("12,346", "$12,345.67", "12.3k" all match 12345.67; "1.37M" matches 1366168.66 and
    "1.2 million" 1234567.0, while "1.38M" matches neither: the rounding must be right);
    signs are ignored ("down 4.5%" matches -4.5). Also allowed: numbers inside fact strings
    (names, anomaly reasons), list lengths (3 movers), years of fact dates; 7, 28 and 30
    pass because the facts carry them as `days`, but small integers are NOT blanket-allowed.
    YYYY-MM-DD dates must be fact dates; prose dates ("Dec 25") are checked as plain numbers.
    Values are matched, not meanings: a real number cited for the wrong metric passes.
    """
    numbers, dates = set[float](), set[str]()
    _allowed(facts, numbers, dates)
    bad: list[str] = []
    for _, _, token, payload in _tokens(text):
        if isinstance(payload, str):
            ok = payload in dates
        else:
            value, decimals, mult = payload
            ok = any(abs(n / mult - value) <= 0.5 * 10**-decimals + 1e-9 for n in numbers)
        if not ok and token not in bad:
            bad.append(token)
    return bad


def mark_ungrounded(text: str, numbers: list[str]) -> str:
    """Append ' [unverified]' after every occurrence of the listed tokens."""
    flagged, out, pos = set(numbers), [], 0
    for _, end, token, _ in _tokens(text):
        if token in flagged:
            out += [text[pos:end], " [unverified]"]
            pos = end
    return "".join(out) + text[pos:]
