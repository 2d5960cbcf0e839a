"""raw_uploads: each file dropped in the watched folder, staged as text rows in Postgres and archived."""

import json

import dagster as dg
import sqlalchemy as sa

from analytics_pipeline.ingestion import files
from analytics_pipeline.ingestion.columns import UnmappableColumns
from analytics_pipeline.ingestion.reader import UNREADABLE, UnsupportedFile, stream_raw_batches
from analytics_pipeline.ingestion.settings import settings_for
from analytics_pipeline.partitions import upload_files
from analytics_pipeline.resources import UploadFolders, Warehouse
from analytics_pipeline.warehouse import canonical, db
from analytics_pipeline.warehouse.contract import table_metadata

ACCEPTED_CHECK = "file_accepted"

_PREVIEW = """
SELECT line_number, order_id, occurred_at, customer_id, region, product, quantity, unit_price, amount
FROM analytics.raw_uploads WHERE file_key = :key ORDER BY line_number LIMIT 5
"""

_REGISTER_FILE = """
INSERT INTO analytics.ingested_files
    (file_key, file_name, content_hash, size_bytes, path, status, columns_seen, column_mapping, rows_read,
     reason, run_id, received_at)
VALUES (:file_key, :file_name, :content_hash, :size_bytes, :path, :status, :columns_seen,
        CAST(:column_mapping AS jsonb), :rows_read, :reason, :run_id, now())
ON CONFLICT (file_key) DO UPDATE SET
    path = EXCLUDED.path, status = EXCLUDED.status, columns_seen = EXCLUDED.columns_seen,
    column_mapping = EXCLUDED.column_mapping, rows_read = EXCLUDED.rows_read, reason = EXCLUDED.reason,
    run_id = EXCLUDED.run_id, rows_loaded = NULL, rows_rejected = NULL, duplicate_rows = NULL,
    first_day = NULL, last_day = NULL, loaded_at = NULL
"""


@dg.asset(
    partitions_def=upload_files,
    group_name="ingestion",
    kinds={"postgres", "pyarrow", "csv"},
    owners=["team:data-engineering"],
    pool="warehouse",
    check_specs=[
        dg.AssetCheckSpec(
            ACCEPTED_CHECK,
            asset="raw_uploads",
            description="The file could be read and mapped to the canonical transaction; warns when quarantined.",
        )
    ],
    metadata=table_metadata("raw_uploads"),
    description=(
        "One partition per file dropped in the watched folder (key: sanitised file name + content hash). "
        "Streams the file in bounded memory, maps its header onto the canonical transaction and COPYs every line "
        "as text into `analytics.raw_uploads`, then moves the file to the archive. A file whose columns cannot "
        "be mapped is moved to the quarantine folder with a `.reason.txt`; the `file_accepted` check shows why."
    ),
)
def raw_uploads(context: dg.AssetExecutionContext, warehouse: Warehouse, folders: UploadFolders):
    key = context.partition_key
    upload = files.locate(key, folders.uploads_path, folders.archive_path, folders.quarantine_path)
    facts = {
        "file_key": key,
        "file_name": upload.path.name,
        "content_hash": upload.content_hash,
        "size_bytes": upload.size_bytes,
        "run_id": context.run.run_id,
    }
    settings = settings_for(upload.path.name)
    try:
        parsed, batches = stream_raw_batches(upload.path, key, settings.columns)
        with warehouse.transaction() as conn:
            canonical.stage(conn, key, batches)
            archived = files.move_into(folders.archive_path, key, upload.path)
            conn.execute(
                sa.text(_REGISTER_FILE),
                {
                    **facts,
                    "path": str(archived),
                    "status": "staged",
                    "columns_seen": parsed.columns_seen,
                    "column_mapping": json.dumps(parsed.mapping.source_columns),
                    "rows_read": parsed.rows_read,
                    "reason": None,
                },
            )
            sample = db.preview(conn, _PREVIEW, {"key": key})
    except UNREADABLE as error:  # the staging transaction rolled back: nothing of this file is half-loaded
        reason = str(error) if isinstance(error, UnsupportedFile | UnmappableColumns) else f"cannot read: {error}"
        return _quarantine(context, warehouse, folders, upload, facts, reason)
    context.log.info(f"staged {parsed.rows_read} rows of {upload.path.name}; archived at {archived}")
    return dg.MaterializeResult(
        metadata={
            "status": "staged",
            "file_name": upload.path.name,
            "archived_at": dg.MetadataValue.path(str(archived)),
            "content_hash": upload.content_hash,
            "size_bytes": upload.size_bytes,
            "dagster/row_count": parsed.rows_read,
            "malformed_lines": len(parsed.malformed),
            "column_mapping": dg.MetadataValue.json(parsed.mapping.source_columns),
            "mapping_file_entry": settings.pattern or "none (defaults)",
            "preview": sample,
            **parsed.describe(),
        },
        check_results=[dg.AssetCheckResult(check_name=ACCEPTED_CHECK, passed=True)],
    )


def _quarantine(context, warehouse: Warehouse, folders: UploadFolders, upload: files.UploadedFile, facts, reason):
    """Keep the file and say why: moved aside with a reason file, registered in Postgres, a failed check in the UI."""
    target = files.quarantine(folders.quarantine_path, upload.key, upload.path, reason)
    with warehouse.transaction() as conn:
        conn.execute(sa.text("DELETE FROM analytics.raw_uploads WHERE file_key = :key"), {"key": upload.key})
        conn.execute(
            sa.text(_REGISTER_FILE),
            {
                **facts,
                "path": str(target),
                "status": "quarantined",
                "columns_seen": None,
                "column_mapping": None,
                "rows_read": 0,
                "reason": reason,
            },
        )
    context.log.warning(f"quarantined {upload.path.name}: {reason}")
    return dg.MaterializeResult(
        metadata={
            "status": "quarantined",
            "reason": reason,
            "file_name": upload.path.name,
            "quarantined_at": dg.MetadataValue.path(str(target)),
            "dagster/row_count": 0,
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=ACCEPTED_CHECK,
                passed=False,
                severity=dg.AssetCheckSeverity.WARN,
                description=reason,
                metadata={"reason": reason, "quarantined_at": str(target)},
            )
        ],
    )
