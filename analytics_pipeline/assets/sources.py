"""database_transactions and api_transactions: incremental pulls from an operational database and a REST API.

Both land in `analytics.transactions` through the typing every uploaded file goes through (warehouse.canonical).
A pull stages its rows, promotes them and moves the source's watermark in ONE transaction: a killed run leaves
nothing half written, and a retry starts from the same watermark under the same batch key and gives the same rows.
A pull with more bad rows than a file may have (max_rejected_share) is refused like such a file: nothing loaded, its
rejections recorded, and the watermark left where it was, so the next pull reads the same rows again once the
source is fixed instead of skipping past them for good.
"""

import hashlib
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager

import dagster as dg
import sqlalchemy as sa

from analytics_pipeline.assets.metadata import load_metadata, table_metadata
from analytics_pipeline.checks import analysed_check, analysed_check_spec, nothing_loaded
from analytics_pipeline.ingestion import files
from analytics_pipeline.ingestion.records import Pull
from analytics_pipeline.ingestion.settings import FileSettings
from analytics_pipeline.resources import (
    API_SOURCE_URL_ENV,
    DATABASE_SOURCE_URL_ENV,
    DatabaseSource,
    RestApiSource,
    Warehouse,
)
from analytics_pipeline.warehouse import canonical

_REGISTER_SOURCE = """
INSERT INTO analytics.source_watermarks (source, rows_pulled, updated_at) VALUES (:source, 0, now())
ON CONFLICT (source) DO NOTHING
"""

# The source's row stays locked for the whole pull: a second run of the same source waits, then starts where this
# one ended instead of pulling the same rows again.
_LOCK_WATERMARK = "SELECT watermark FROM analytics.source_watermarks WHERE source = :source FOR UPDATE"

_ADVANCE_WATERMARK = """
UPDATE analytics.source_watermarks SET watermark = :watermark, rows_pulled = :rows_pulled, updated_at = now()
WHERE source = :source
"""

ReadPages = Callable[[str | None], AbstractContextManager]  # watermark -> pages of rows after it

PULL_ACCEPTED_CHECK = "pull_accepted"
# A pull is typed and refused by the rules of a file that the mapping file does not mention.
PULL_SETTINGS = FileSettings()


def batch_key(source_id: str, since: str | None) -> str:
    """The key of a pull's rows (the transactions' `source`, rejected_rows' file_key): named by where the pull
    starts, which a retry shares, plus a hash so that watermarks differing only in punctuation stay apart."""
    start = since or ""
    return files.partition_key(f"{source_id}_{start or 'start'}", hashlib.sha256(start.encode()).hexdigest())


def _pull(
    context: dg.AssetExecutionContext, warehouse: Warehouse, source_id: str, read: ReadPages, overrides: Mapping
) -> dg.MaterializeResult:
    with warehouse.transaction() as conn:
        conn.execute(sa.text(_REGISTER_SOURCE), {"source": source_id})
        since = conn.execute(sa.text(_LOCK_WATERMARK), {"source": source_id}).scalar_one()
        key = batch_key(source_id, since)
        pull = Pull(since=since, overrides=overrides)
        with read(since) as pages:
            canonical.stage(conn, key, pull.batches(pages, key))
        summary = canonical.promote(conn, key, PULL_SETTINGS)
        coverage, coverage_check = analysed_check(conn, key)
        refusal = summary.refusal(PULL_SETTINGS)
        watermark = since if refusal else pull.watermark
        if not refusal:
            advanced = {"source": source_id, "watermark": watermark, "rows_pulled": pull.rows_read}
            conn.execute(sa.text(_ADVANCE_WATERMARK), advanced)
    status = "refused" if refusal else "loaded" if pull.rows_read else "no new rows"
    (context.log.warning if refusal else context.log.info)(
        f"{source_id}: {pull.rows_read} rows after watermark {since!r} in {pull.pages} pages; {status}: "
        f"{summary.rows_loaded} loaded, {summary.rows_rejected} rejected; watermark now {watermark!r}",
    )
    accepted = dg.AssetCheckResult(
        check_name=PULL_ACCEPTED_CHECK,
        passed=not refusal,
        severity=dg.AssetCheckSeverity.WARN,
        description=refusal,
        metadata={
            "rejected_share": round(summary.rejected_share, 4),
            "allowed_share": PULL_SETTINGS.max_rejected_share,
        },
    )
    return dg.MaterializeResult(
        check_results=[accepted, coverage_check],
        metadata=load_metadata(summary)
        | coverage
        | {
            "status": status,
            "source": source_id,
            "batch_key": key,
            "watermark_before": since or "",
            "watermark_after": watermark or "",
            "pages": pull.pages,
            "column_mapping": dg.MetadataValue.json(pull.mapping.source_columns if pull.mapping else {}),
        }
        | ({"reason": refusal} if refusal else {}),
    )


def _check_specs(asset: str) -> list[dg.AssetCheckSpec]:
    accepted = dg.AssetCheckSpec(
        PULL_ACCEPTED_CHECK,
        asset=asset,
        description=(
            "Rejected rows stay under the allowed share (max_rejected_share, "
            f"{PULL_SETTINGS.max_rejected_share:.0%}); warns when a pull is refused: nothing loaded, watermark kept."
        ),
    )
    return [accepted, analysed_check_spec(asset)]


def _not_configured(variable: str) -> dg.MaterializeResult:
    """An unconfigured source is a normal state (most deployments use one source or none), not a failure."""
    status = f"not configured (set {variable}): nothing pulled"
    return dg.MaterializeResult(
        metadata={"status": status, "dagster/row_count": 0},
        check_results=[
            dg.AssetCheckResult(check_name=PULL_ACCEPTED_CHECK, passed=True, description=status),
            nothing_loaded(status),
        ],
    )


_COMMON = dict(
    group_name="ingestion",
    owners=["team:data-engineering"],
    pool="warehouse",
    metadata=table_metadata("transactions"),
)


@dg.asset(
    kinds={"postgres", "sqlalchemy"},
    check_specs=_check_specs("database_transactions"),
    description=(
        "New and changed rows of an operational database's table or query (ANALYTICS_SOURCE_DATABASE_*), read above "
        "the stored updated-at or id watermark through a server-side cursor, typed like uploaded files into "
        "`analytics.transactions` (bad rows to `analytics.rejected_rows`). A changed row replaces its old version; "
        "the rows and the new watermark (`analytics.source_watermarks`) commit together."
    ),
    **_COMMON,
)
def database_transactions(
    context: dg.AssetExecutionContext, warehouse: Warehouse, database_source: DatabaseSource
) -> dg.MaterializeResult:
    if not database_source.url:
        return _not_configured(DATABASE_SOURCE_URL_ENV)
    query = database_source.incremental_query()
    return _pull(context, warehouse, database_source.source_id, query.pages, database_source.columns)


@dg.asset(
    kinds={"postgres", "api"},
    check_specs=_check_specs("api_transactions"),
    description=(
        "New and changed records of a paginated JSON API (ANALYTICS_SOURCE_API_*; next-link or page-number "
        "pagination), requested with the stored watermark and retried with backoff on 429/5xx, typed like uploaded "
        "files into `analytics.transactions` (bad records to `analytics.rejected_rows`). Every page of a pull and "
        "the new watermark (`analytics.source_watermarks`) commit together, or nothing does."
    ),
    **_COMMON,
)
def api_transactions(
    context: dg.AssetExecutionContext, warehouse: Warehouse, api_source: RestApiSource
) -> dg.MaterializeResult:
    if not api_source.base_url:
        return _not_configured(API_SOURCE_URL_ENV)
    return _pull(context, warehouse, api_source.source_id, api_source.endpoint().pages, api_source.columns)

