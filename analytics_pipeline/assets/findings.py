"""findings_index: every insight, anomaly and forecast summary kept, and searchable by meaning (pgvector)."""

from dataclasses import asdict

import dagster as dg
import openai as openai_sdk
from dagster_openai import OpenAIResource

from analytics_pipeline import redaction
from analytics_pipeline.analysis import embedding, findings
from analytics_pipeline.analysis.history import STATUS_KEY, status
from analytics_pipeline.assets.metadata import table_metadata
from analytics_pipeline.resources import Warehouse
from analytics_pipeline.warehouse import findings as store
from analytics_pipeline.warehouse import markdown, series
from analytics_pipeline.warehouse.db import fetch_frame

NEWEST_SHOWN = 10  # findings listed in the metadata
EMBEDDINGS_TIMEOUT_SECONDS = 120.0  # per request of up to embedding.OPENAI_BATCH texts
# The latest insight of each last complete day: a day's insight is rewritten by every run until the next day loads.
_INSIGHTS = """
SELECT DISTINCT ON (facts->>'latest_day') narrative, facts
FROM analytics.insights ORDER BY facts->>'latest_day', insight_id DESC
"""
_ANOMALIES = "SELECT day, metric, segment, actual, expected, score, direction, reason FROM analytics.metric_anomalies"
_FORECASTS = """
SELECT segment, days, first_day, last_day, predicted::float8 AS predicted, lower_bound::float8 AS lower,
       upper_bound::float8 AS upper, method
FROM analytics.forecast_totals
"""


@dg.asset(
    deps=["insights", "metric_anomalies", "revenue_forecast"],
    group_name="insights",
    kinds={"postgres", "scikitlearn", "openai"},
    owners=["team:analytics"],
    pool="warehouse",
    metadata=table_metadata(store.TABLE, store.DDL_FILE),
    description=(
        "The memory of what the pipeline found: every insight, every anomaly (with its reason) and each forecast's "
        "summary, kept after their own tables move on to the next run's results, each with its date, segment, "
        "metric and numbers, and an embedding in a pgvector column for a search by meaning. Ask it with "
        "`analytics ask \"why did revenue drop in March?\"` or by launching `ask_findings_job` with a question: "
        "the answer is recorded on this asset (an observation). Every finding gets a deterministic offline "
        f"embedding (`{embedding.OFFLINE_MODEL}`: hashed word and character n-grams, no fitted state); with "
        f"OPENAI_API_KEY set, also one from the OpenAI embeddings API (`{embedding.EMBEDDING_MODEL_ENV}`, default "
        f"`{embedding.DEFAULT_OPENAI_MODEL}`). Each row records its model and a search compares one model's vectors. "
        "A finding is keyed by kind, day, segment and metric: finding it again replaces its row, so a run over the "
        "same data changes nothing, and only new or changed findings are embedded. Needs the pgvector extension: "
        "the embedded PostgreSQL ships it; on a server without it this asset fails saying how to install it, and "
        "nothing else of the pipeline is affected."
    ),
)
def findings_index(
    context: dg.AssetExecutionContext, warehouse: Warehouse, openai: OpenAIResource
) -> dg.MaterializeResult:
    with warehouse.transaction() as conn:
        try:
            store.ensure_table(conn)
        except store.PgvectorUnavailable as unavailable:
            raise dg.Failure(description=str(unavailable), allow_retries=False) from unavailable
        current = [
            *findings.from_insights(fetch_frame(conn, _INSIGHTS), series.TOTAL),
            *findings.from_anomalies(fetch_frame(conn, _ANOMALIES), series.TOTAL),
            *findings.from_forecasts(fetch_frame(conn, _FORECASTS), series.TOTAL),
        ]
        # Kept findings are embedded again when a model lacks them (a key set after months without one).
        wanted = {(row["kind"], row["day"], row["segment"], row["metric"]): row for row in store.kept(conn)}
        wanted |= {finding.key: asdict(finding) for finding in current}
        embedded = store.documents(conn)

    def missing(model: str) -> list[dict]:
        """Findings the model has no vector of, or one of an older text; in key order, the order rows are locked in,
        so two runs writing at once wait for each other instead of deadlocking."""
        have = embedded.get(model, {})
        return [row for key, row in sorted(wanted.items()) if have.get(key) != row["document"]]

    offline = missing(embedding.OFFLINE_MODEL)
    todo = {embedding.OFFLINE_MODEL: offline}
    vectors = {embedding.OFFLINE_MODEL: embedding.offline([row["document"] for row in offline])}
    openai_model = embedding.openai_model()
    if not openai.api_key:
        openai_outcome = f"no OPENAI_API_KEY: {embedding.OFFLINE_MODEL} only"
    else:
        todo[openai_model] = missing(openai_model)
        try:
            with openai.get_client(context) as client:  # token usage lands in this asset's metadata
                vectors[openai_model] = embedding.through_openai(
                    client, openai_model, [row["document"] for row in todo[openai_model]], EMBEDDINGS_TIMEOUT_SECONDS
                )
            openai_outcome = f"{openai_model}: {len(todo[openai_model])} embedded"
        except openai_sdk.OpenAIError as error:
            context.log.warning(f"OpenAI embeddings unavailable ({type(error).__name__}); offline vectors only")
            openai_outcome = (
                f"failed after retries ({redaction.error_text(error, [openai.api_key])}): "
                f"{len(todo.pop(openai_model))} findings lack their {openai_model} vectors until a run gets them; "
                f"questions are searched with {embedding.OFFLINE_MODEL} meanwhile"
            )

    with warehouse.transaction() as conn:
        written = {model: store.store(conn, model, todo[model], vectors[model]) for model in todo}
        total, by_model = store.counts(conn)
        newest = store.newest(conn, embedding.OFFLINE_MODEL, NEWEST_SHOWN)
    kinds = {kind: sum(f.kind == kind for f in current) for kind in findings.KINDS}
    return dg.MaterializeResult(
        metadata={
            STATUS_KEY: status(None if total else "no findings yet: no insight, anomaly or forecast to keep"),
            "dagster/row_count": sum(by_model.values()),
            "findings": total,
            "found_by_this_run": ", ".join(f"{count} {kind}" for kind, count in kinds.items()),
            "embedded_by_this_run": ", ".join(f"{model}: {count}" for model, count in written.items()),
            "findings_per_model": ", ".join(f"{model}: {n} of {total}" for model, n in sorted(by_model.items())),
            "openai_embeddings": openai_outcome,
            # Reasons name regions and products from files: shown as text.
            "newest": dg.MetadataValue.md(markdown.table(newest) if len(newest) else "(no findings yet)"),
        }
    )
