"""insights: a short narrative of what changed, grounded in the metrics, written by GPT or offline."""

import json
import time
from datetime import UTC, datetime

import dagster as dg
import openai as openai_sdk
import sqlalchemy as sa
from dagster_openai import OpenAIResource

from analytics_pipeline import redaction
from analytics_pipeline.analysis import completeness, narrative
from analytics_pipeline.analysis.history import STATUS_KEY, shortage, status
from analytics_pipeline.assets.metadata import table_metadata
from analytics_pipeline.resources import Warehouse
from analytics_pipeline.warehouse import markdown, series
from analytics_pipeline.warehouse.db import fetch_frame

GROUNDED_CHECK = "narrative_grounded"
OFFLINE_WRITER = "offline"
# Days of region and product revenue read for the movers: one more than they compare, as the latest day may be
# partial and left out.
RECENT_DAYS = narrative.MOVER_HISTORY_DAYS + 1

_INSERT = """
INSERT INTO analytics.insights (generated_at, writer, narrative, facts, ungrounded)
VALUES (:generated_at, :writer, :narrative, CAST(:facts AS jsonb), :ungrounded)
"""


class InsightsConfig(dg.Config):
    model: str = narrative.CHAT_MODEL
    timeout_seconds: float = 60.0


@dg.asset(
    deps=["daily_metrics", "daily_region_metrics", "daily_product_metrics", "revenue_forecast", "metric_anomalies"],
    group_name="insights",
    kinds={"postgres", "openai"},
    owners=["team:analytics"],
    pool="warehouse",
    check_specs=[
        dg.AssetCheckSpec(
            GROUNDED_CHECK,
            asset="insights",
            description="Every number in the narrative can be traced to the facts it was written from.",
        )
    ],
    metadata=table_metadata("insights"),
    description=(
        "One plain-language narrative per run: what changed, why it may have changed and what to do. It is "
        "written from a bounded set of facts (recent periods, top movers by region and product, the forecast, "
        "recent anomalies), never from raw rows. The facts end at the last complete day: a latest day that is "
        "today, or that stopped well before its weekday's usual last transaction, is left out and named with why "
        "(`partial_day`). With OPENAI_API_KEY set, GPT writes it through dagster-openai (token usage lands in "
        "this metadata); without a key, or when the API keeps failing, a deterministic offline writer does. Money "
        "is written as a person writes it (1.37M, 48.2k, 912.40); numbers that cannot be traced to the facts are "
        f"marked [unverified] and fail the {GROUNDED_CHECK} check. Under {narrative.MIN_COMPARISON_DAYS} complete "
        f"days of history, or with no positive revenue, `{STATUS_KEY}` says 'not enough data' and why; with no "
        "history at all the narrative is one fixed sentence saying so."
    ),
)
def insights(
    context: dg.AssetExecutionContext, config: InsightsConfig, warehouse: Warehouse, openai: OpenAIResource
) -> dg.MaterializeResult:
    with warehouse.transaction() as conn:
        partial = completeness.partial_last_day(series.last_seen(conn), today=series.today(conn))
        total = series.total_series(conn)
        facts = narrative.build_facts(
            total,
            series.recent_by(conn, "region", days=RECENT_DAYS),
            series.recent_by(conn, "product", days=RECENT_DAYS),
            series.forecasts(conn).query("segment == @series.TOTAL").drop(columns="segment"),
            fetch_frame(conn, _ANOMALIES),
            partial=partial,
            forecast_totals=series.forecast_totals(conn).query("segment == @series.TOTAL"),
        )

    complete = completeness.complete_days(total, partial)
    writer, text, llm_metadata = _write(context, config, openai, facts)
    ungrounded = narrative.ungrounded_numbers(text, facts)
    stored = narrative.mark_ungrounded(text, ungrounded) if ungrounded else text
    with warehouse.transaction() as conn:
        conn.execute(
            sa.text(_INSERT),
            {
                "generated_at": datetime.now(UTC),
                "writer": writer,
                "narrative": stored,
                "facts": json.dumps(facts, default=str),
                "ungrounded": ungrounded,
            },
        )
    return dg.MaterializeResult(
        metadata={
            STATUS_KEY: status(shortage(complete, narrative.MIN_COMPARISON_DAYS, "a week-on-week comparison")),
            "partial_day": partial.reason if partial else "none",
            "writer": writer,
            # Region and product names in it come from files, and GPT may echo what they say: shown as text.
            "narrative": dg.MetadataValue.md(markdown.escape_text(stored)),
            "facts": dg.MetadataValue.json(json.loads(json.dumps(facts, default=str))),
            "ungrounded_numbers": ", ".join(ungrounded) or "none",
            **llm_metadata,
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=GROUNDED_CHECK,
                passed=not ungrounded,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"ungrounded": ", ".join(ungrounded) or "none", "writer": writer},
            )
        ],
    )


_ANOMALIES = """
SELECT day, metric, segment, actual, expected, score, direction, reason
FROM analytics.metric_anomalies ORDER BY day DESC LIMIT 20
"""


def _write(context, config: InsightsConfig, openai: OpenAIResource, facts: dict) -> tuple[str, str, dict]:
    """GPT when a key is configured; the offline writer otherwise, or when the API still fails after retries."""
    if facts["latest_day"] is None:  # nothing to ask about: the fixed "not enough data yet" sentence
        return OFFLINE_WRITER, narrative.offline_narrative(facts), {"llm": "no history: offline writer"}
    if not openai.api_key:
        return OFFLINE_WRITER, narrative.offline_narrative(facts), {"llm": "no OPENAI_API_KEY: offline writer"}
    started = time.monotonic()
    try:
        with openai.get_client(context) as client:
            # The client retries timeouts, 429s and 5xx itself, with exponential backoff.
            response = client.chat.completions.create(
                model=config.model, messages=narrative.build_messages(facts), timeout=config.timeout_seconds
            )
        text = (response.choices[0].message.content or "").strip()
        if not text:
            raise ValueError("empty completion")
    except (openai_sdk.OpenAIError, ValueError) as error:
        context.log.warning(f"LLM unavailable ({type(error).__name__}); falling back to the offline writer")
        # Providers echo the key and the Authorization header in their errors (a 401 quotes the key it refused).
        reason = f"fallback after {redaction.error_text(error, [openai.api_key])}"
        return OFFLINE_WRITER, narrative.offline_narrative(facts), {"llm": reason, "llm_model": config.model}
    return (
        f"openai:{response.model or config.model}",
        text,
        {"llm_model": response.model or config.model, "llm_latency_s": round(time.monotonic() - started, 3)},
    )
