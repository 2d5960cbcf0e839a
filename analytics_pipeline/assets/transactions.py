"""transactions: typed, validated, de-duplicated canonical rows, one upload's worth per partition."""

from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from analytics_pipeline.checks import analysed_check, analysed_check_spec, nothing_loaded
from analytics_pipeline.ingestion import files
from analytics_pipeline.ingestion.settings import settings_for
from analytics_pipeline.partitions import upload_files
from analytics_pipeline.resources import UploadFolders, Warehouse
from analytics_pipeline.warehouse import canonical
from analytics_pipeline.warehouse.contract import table_metadata

ACCEPTED_ROWS_CHECK = "rows_accepted"

_FILE = "SELECT file_name, path, status, received_at FROM analytics.ingested_files WHERE file_key = :file_key"

# Versions of the same file name: a newer one replaces an older one's rows, whatever order runs happen in.
_OTHER_VERSIONS = """
SELECT file_key, received_at > :received_at AS newer, first_day, last_day
FROM analytics.ingested_files
WHERE file_name = :file_name AND file_key <> :file_key AND status IN ('staged', 'loaded')
"""

_RECORD = """
UPDATE analytics.ingested_files
SET status = :status, reason = :reason, path = :path, rows_loaded = :rows_loaded, rows_rejected = :rows_rejected,
    duplicate_rows = :duplicate_rows, first_day = :first_day, last_day = :last_day, loaded_at = now()
WHERE file_key = :file_key
"""

_REPLACED = """
UPDATE analytics.ingested_files SET status = 'replaced', reason = :reason WHERE file_key = :file_key
"""


@dg.asset(
    partitions_def=upload_files,
    deps=["raw_uploads"],
    group_name="ingestion",
    kinds={"postgres", "sql"},
    owners=["team:data-engineering"],
    pool="warehouse",
    check_specs=[
        dg.AssetCheckSpec(
            ACCEPTED_ROWS_CHECK,
            asset="transactions",
            description="Rejected rows stay under the file's allowed share; warns when the whole file is quarantined.",
        ),
        analysed_check_spec("transactions"),
    ],
    metadata=table_metadata("transactions"),
    description=(
        "Canonical transactions (one row per line: ids, UTC timestamp and day, customer, company, region, product, "
        "quantity, unit price, amount, cancellation flag) typed in SQL from an upload's raw rows. Rows that cannot "
        "be typed go to `analytics.rejected_rows` with their line and reason; exact duplicate lines count once; "
        "a transaction_id seen in an earlier file is updated (last version wins). A file whose rejected share "
        "exceeds `max_rejected_share` (default 50%) is quarantined as a whole. A changed file with the same name "
        "replaces the older version's rows. Re-running a partition replaces exactly that file's rows, in one "
        "transaction."
    ),
)
def transactions(context: dg.AssetExecutionContext, warehouse: Warehouse, folders: UploadFolders):
    key = context.partition_key
    with warehouse.transaction() as conn:
        upload = conn.execute(sa.text(_FILE), {"file_key": key}).mappings().one()
        if upload["status"] == "quarantined":
            return _skipped("quarantined", "the file was quarantined when it was read")
        versions = conn.execute(
            sa.text(_OTHER_VERSIONS), {"file_key": key, **upload}
        ).mappings().all()
        newer = [v["file_key"] for v in versions if v["newer"]]
        if newer:
            reason = f"replaced by a newer version of {upload['file_name']} ({newer[0]})"
            conn.execute(sa.text("DELETE FROM analytics.transactions WHERE source = :key"), {"key": key})
            conn.execute(sa.text(_REPLACED), {"file_key": key, "reason": reason})
            return _skipped("replaced", reason)

        settings = settings_for(upload["file_name"])
        summary = canonical.promote(conn, key, settings)
        share = summary.rejected_share
        status, reason, path = "loaded", None, upload["path"]
        if summary.over_rejected_share:
            reason = (
                f"{summary.rows_rejected} of {summary.rows_read} rows ({share:.0%}) could not be loaded, more than "
                f"the allowed {settings.max_rejected_share:.0%}; most common: {summary.reasons['reason'].iloc[0]}"
            )
            status = "quarantined"
            path = str(files.quarantine(folders.quarantine_path, key, Path(upload["path"]), reason))
        # Only a version that loaded replaces older ones: a quarantined file must not wipe the last good version.
        older_versions = [v for v in versions if not v["newer"]] if status == "loaded" else []
        for older in (v["file_key"] for v in older_versions):
            conn.execute(sa.text("DELETE FROM analytics.transactions WHERE source = :key"), {"key": older})
            conn.execute(
                sa.text(_REPLACED), {"file_key": older, "reason": f"replaced by a newer version ({key})"}
            )
        loaded = summary.rows_loaded if status == "loaded" else 0
        conn.execute(
            sa.text(_RECORD),
            {
                "file_key": key,
                "status": status,
                "reason": reason,
                "path": path,
                "rows_loaded": loaded,
                "rows_rejected": summary.rows_rejected,
                "duplicate_rows": summary.duplicate_rows,
                "first_day": summary.first_day if loaded else None,
                "last_day": summary.last_day if loaded else None,
            },
        )
        coverage, coverage_check = analysed_check(conn, key)
    context.log.info(f"{key}: {status}, {loaded} loaded, {summary.rows_rejected} rejected")
    # Days to refresh: this version's, and those of any older version whose rows it just replaced.
    days = [d for v in older_versions for d in (v["first_day"], v["last_day"]) if d]
    days += [summary.first_day, summary.last_day] if loaded and summary.first_day else []
    metadata = summary.metadata() | coverage | {
        "status": status,
        "dagster/row_count": loaded,
        "first_day": str(min(days)) if days else "",
        "last_day": str(max(days)) if days else "",
    }
    return dg.MaterializeResult(
        metadata=metadata | ({"reason": reason} if reason else {}),
        check_results=[
            dg.AssetCheckResult(
                check_name=ACCEPTED_ROWS_CHECK,
                passed=status == "loaded",
                severity=dg.AssetCheckSeverity.WARN,
                description=reason,
                metadata={"rejected_share": round(share, 4), "allowed_share": settings.max_rejected_share},
            ),
            coverage_check,
        ],
    )


def _skipped(status: str, reason: str) -> dg.MaterializeResult:
    return dg.MaterializeResult(
        metadata={"status": status, "reason": reason, "dagster/row_count": 0, "first_day": "", "last_day": ""},
        check_results=[
            dg.AssetCheckResult(
                check_name=ACCEPTED_ROWS_CHECK, passed=True, description=f"nothing to load: {reason}"
            ),
            nothing_loaded(reason),
        ],
    )
