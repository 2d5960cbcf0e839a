"""transactions: typed, validated, de-duplicated canonical rows, one upload's worth per partition."""

import dagster as dg
import sqlalchemy as sa

from analytics_pipeline.partitions import upload_files
from analytics_pipeline.resources import Warehouse
from analytics_pipeline.warehouse import canonical
from analytics_pipeline.warehouse.contract import table_metadata

_RECORD = """
UPDATE analytics.ingested_files
SET status = 'loaded', rows_loaded = :rows_loaded, rows_rejected = :rows_rejected,
    duplicate_rows = :duplicate_rows, first_day = :first_day, last_day = :last_day, loaded_at = now()
WHERE file_key = :file_key AND status <> 'quarantined'
"""


@dg.asset(
    partitions_def=upload_files,
    deps=["raw_uploads"],
    group_name="ingestion",
    kinds={"postgres", "sql"},
    owners=["team:data-engineering"],
    pool="warehouse",
    metadata=table_metadata("transactions"),
    description=(
        "Canonical transactions (one row per line: ids, UTC timestamp and day, customer, company, region, product, "
        "quantity, unit price, amount) typed in SQL from an upload's raw rows. Rows that cannot be typed go to "
        "`analytics.rejected_rows` with their line and reason; exact duplicate lines count once. Re-running a "
        "partition replaces exactly that file's rows, in one transaction."
    ),
)
def transactions(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    key = context.partition_key
    with warehouse.transaction() as conn:
        summary = canonical.promote(conn, key)
        conn.execute(
            sa.text(_RECORD),
            {
                "file_key": key,
                "rows_loaded": summary.rows_loaded,
                "rows_rejected": summary.rows_rejected,
                "duplicate_rows": summary.duplicate_rows,
                "first_day": summary.first_day,
                "last_day": summary.last_day,
            },
        )
    context.log.info(f"{key}: {summary.rows_loaded} loaded, {summary.rows_rejected} rejected")
    return dg.MaterializeResult(metadata=summary.metadata())
