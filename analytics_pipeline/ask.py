"""Asking the findings a question: the op of ask_findings_job, which `analytics ask` runs too.

Why a job: a question typed at the command line and one launched from the UI take the same path (the resources and
OpenAI settings of definitions.py), and both leave their answer on findings_index as an observation, listed on the
asset's page with the question, the findings returned and the answer.
"""

from contextlib import nullcontext
from dataclasses import dataclass

import dagster as dg
import openai as openai_sdk
import sqlalchemy as sa
from dagster_openai import OpenAIResource
from pydantic import Field

from analytics_pipeline import redaction
from analytics_pipeline.analysis import answer, embedding, narrative
from analytics_pipeline.analysis.question import dates_asked, segments_named
from analytics_pipeline.resources import Warehouse
from analytics_pipeline.warehouse import findings as store
from analytics_pipeline.warehouse import markdown, series
from analytics_pipeline.warehouse.db import fetch_frame

FINDINGS_ASSET = dg.AssetKey("findings_index")
MAX_SHOWN_CHARS = 1000  # of a finding's text in the UI; the table holds all of it

# The daily figures of the days the findings are about (and of any exact day asked), overall and for their regions.
_DAILY = """
SELECT day, CAST(:total AS text) AS segment, revenue::float8 AS revenue, orders,
       round(avg_order_value, 2)::float8 AS avg_order_value
FROM analytics.daily_metrics WHERE day = ANY(:days)
UNION ALL
SELECT day, region, revenue::float8, orders, round(avg_order_value, 2)::float8
FROM analytics.daily_region_metrics WHERE day = ANY(:days) AND region = ANY(:regions)
ORDER BY day, segment
"""


class AskConfig(dg.Config):
    question: str = Field(description="A question in plain words, e.g. 'why did revenue drop in March?'.")
    limit: int = Field(default=5, description="How many findings to return, most relevant first.")
    model: str = Field(default=narrative.CHAT_MODEL, description="Chat model that writes the answer (with a key).")
    timeout_seconds: float = Field(default=60.0, description="Per request to the OpenAI API.")


@dataclass(frozen=True)
class Answer:
    question: str
    dates_asked: list[str]  # as the question names them ("March (any year)")
    segments_asked: list[str]  # the segments (regions) it names
    searched_with: str  # the embedding model the question was compared with, and why that one
    findings: list[dict]  # kind, day, segment, metric, text, numbers, similarity, on_dates_asked; best first
    answer: str | None  # GPT's, only when every number in it was traced to the findings or the daily tables
    note: str  # who wrote the answer, or why there is none
    ungrounded: list[str]  # the numbers that kept GPT's answer from being shown

    def as_text(self) -> str:
        """For the terminal."""
        lines = [f"Question: {self.question}", *self._context(), ""]
        for rank, finding in enumerate(self.findings, 1):
            lines += [f"{rank}. {_heading(finding)}", *(f"   {line}" for line in finding["text"].splitlines()),
                      f"   numbers: {_numbers(finding)}", ""]
        if not self.findings:
            lines += ["No findings yet: materialise findings_index (every daily refresh does).", ""]
        lines += [f"Answer: {self.answer}" if self.answer else "No written answer.", f"({self.note})"]
        return "\n".join(lines)

    def as_markdown(self) -> str:
        """For the UI: every piece of file text (regions, products, reasons, GPT's words) escaped."""
        parts = [f"**Question:** {markdown.escape(self.question, limit=500)}", *self._context()]
        parts.append(f"**Answer:** {markdown.escape_text(self.answer)}" if self.answer else "**No written answer.**")
        parts.append(f"_{markdown.escape(self.note, limit=500)}_")
        for rank, finding in enumerate(self.findings, 1):
            text = markdown.escape(finding["text"], limit=MAX_SHOWN_CHARS)
            parts.append(f"{rank}. **{markdown.escape(_heading(finding), limit=300)}**  \n   {text}  \n   "
                         f"{markdown.escape(_numbers(finding), limit=MAX_SHOWN_CHARS)}")
        return "\n\n".join(parts)

    def _context(self) -> list[str]:
        """What ranked the findings, in the order it counts."""
        dates, segments = ", ".join(self.dates_asked), ", ".join(self.segments_asked)
        return [
            f"Dates asked about: {dates}; their findings come first" if dates else "Dates asked about: none",
            f"Segments asked about: {segments}; their findings come next" if segments
            else "Segments asked about: none; overall findings come next",
            f"Searched with: {self.searched_with}",
        ]


def _heading(finding: dict) -> str:
    asked = ", on a date asked" if finding["on_dates_asked"] else ""
    return (f"{finding['day']} {finding['kind']}: {finding['segment']}, {finding['metric']} "
            f"(similarity {finding['similarity']:.2f}{asked})")


def _numbers(finding: dict) -> str:
    return ", ".join(f"{name} {value:,}" for name, value in sorted(finding["numbers"].items()) if value is not None)


@dg.op(
    description=(
        "Answer a question from the findings of findings_index: the most relevant past insights, anomalies and "
        "forecasts, with their dates and numbers (those on a date the question names first), and with "
        "OPENAI_API_KEY set a short GPT answer grounded in them and the daily tables, shown only when every number "
        "in it is traced there. The result is recorded on findings_index as an observation."
    ),
)
def ask_findings(
    context: dg.OpExecutionContext, config: AskConfig, warehouse: Warehouse, openai: OpenAIResource
) -> Answer:
    asked = dates_asked(config.question)
    with warehouse.transaction() as conn:
        if not store.exists(conn):
            raise dg.Failure(description="No findings yet: analytics.findings does not exist. Materialise "
                             "findings_index (every daily refresh does) and ask again.", allow_retries=False)
        total, by_model = store.counts(conn)
        named = segments_named(config.question, store.segments(conn))
    with openai.get_client(context) if openai.api_key else nullcontext() as client:
        model, vector, searched_with = _question_vector(client, config, total, by_model, openai.api_key)
        with warehouse.transaction() as conn:
            ranked_first = named or [series.TOTAL]  # a question naming no region is about the whole business
            found = store.search(conn, model, vector, asked, ranked_first, config.limit).to_dict("records")
            facts = answer.build_facts(config.question, found, _daily(conn, found, asked))
        text, note, ungrounded = _write(context, client, config, facts, openai.api_key)
    result = Answer(
        config.question, [d.describe() for d in asked], named, searched_with, found, text, note, ungrounded
    )
    top = found[0] if found else None
    context.log_event(dg.AssetObservation(asset_key=FINDINGS_ASSET, metadata={
        "question": config.question,
        "top_finding": f"{top['day']} {top['kind']} {top['segment']} {top['metric']}" if top else "none",
        "answer": dg.MetadataValue.md(result.as_markdown()),
        "searched_with": searched_with,
        "ungrounded_numbers": ", ".join(ungrounded) or "none",
    }))
    return result


def _question_vector(client, config: AskConfig, total: int, by_model: dict[str, int], api_key: str):
    """(model, vector, why): the OpenAI model's vector when it has embedded every finding, else the offline one,
    which every finding always has."""
    wanted = embedding.openai_model()
    embedded = by_model.get(wanted, 0)
    if client is None:
        why = "no OPENAI_API_KEY"
    elif embedded < total:
        why = f"{wanted} has embedded {embedded} of {total} findings; findings_index's next run adds the rest"
    else:
        try:
            vectors = embedding.through_openai(client, wanted, [config.question], config.timeout_seconds)
            return wanted, vectors[0], wanted
        except openai_sdk.OpenAIError as error:
            why = f"{wanted} unavailable: {redaction.error_text(error, [api_key])}"
    return embedding.OFFLINE_MODEL, embedding.offline([config.question])[0], f"{embedding.OFFLINE_MODEL} ({why})"


def _daily(conn: sa.Connection, found: list[dict], asked) -> list[dict]:
    days = {finding["day"] for finding in found} | {d.exact() for d in asked if d.exact()}
    regions = sorted({finding["segment"] for finding in found} - {series.TOTAL})
    rows = fetch_frame(conn, _DAILY, {"total": series.TOTAL, "days": sorted(days), "regions": regions})
    return rows.to_dict("records")


def _write(context, client, config: AskConfig, facts: dict, api_key: str) -> tuple[str | None, str, list[str]]:
    """(answer or None, note, ungrounded numbers): GPT's answer, kept only when every number in it is grounded."""
    if client is None:
        return None, "no OPENAI_API_KEY: the findings only", []
    if not facts["findings"]:
        return None, "no findings to answer from", []
    try:
        response = client.chat.completions.create(
            model=config.model, messages=answer.build_messages(facts), timeout=config.timeout_seconds
        )
    except openai_sdk.OpenAIError as error:
        context.log.warning(f"LLM unavailable ({type(error).__name__}); the findings only")
        return None, f"no answer: {redaction.error_text(error, [api_key])}", []
    text = (response.choices[0].message.content or "").strip()
    if not text:
        return None, "no answer: the model returned an empty completion", []
    ungrounded = narrative.ungrounded_numbers(text, facts)
    if ungrounded:
        return None, (f"{response.model or config.model}'s answer is not shown: it quoted numbers that are not in "
                      f"these findings or the daily tables ({', '.join(ungrounded)})"), ungrounded
    model = response.model or config.model
    return text, f"written by {model} from these findings and the daily tables; every number in it traced there", []
