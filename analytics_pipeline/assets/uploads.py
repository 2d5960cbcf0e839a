"""raw_uploads: each file dropped in the watched folder, staged as text rows in Postgres."""

from pathlib import Path

import dagster as dg

from analytics_pipeline import checks, reconcile
from analytics_pipeline.assets.metadata import table_metadata
from analytics_pipeline.ingestion import files
from analytics_pipeline.ingestion.columns import UnmappableColumns
from analytics_pipeline.ingestion.reader import UNREADABLE, UnsupportedFile, stream_raw_batches
from analytics_pipeline.ingestion.settings import settings_for
from analytics_pipeline.partitions import FILES_IN_ONE_RUN, upload_files
from analytics_pipeline.resources import Location, UploadFolders, Warehouse
from analytics_pipeline.warehouse import canonical, db, registry

ACCEPTED_CHECK = "file_accepted"
RECONCILED_CHECK = "files_where_registered"

_PREVIEW = """
SELECT line_number, order_id, occurred_at, customer_id, region, product, quantity, unit_price, amount
FROM analytics.raw_uploads WHERE file_key = :key ORDER BY line_number LIMIT 5
"""

@dg.asset(
    partitions_def=upload_files,
    group_name="ingestion",
    kinds={"postgres", "pyarrow", "csv"},
    owners=["team:data-engineering"],
    pool="warehouse",
    backfill_policy=FILES_IN_ONE_RUN,
    check_specs=[
        dg.AssetCheckSpec(
            ACCEPTED_CHECK,
            asset="raw_uploads",
            description=(
                "The run's files could be read and mapped to the canonical transaction; warns when one was "
                "quarantined and names each such file with its reason."
            ),
        ),
        dg.AssetCheckSpec(
            RECONCILED_CHECK,
            asset="raw_uploads",
            description=(
                "Every registered file is where its status says (archive, quarantine) and no file sits in the "
                "archive or quarantine unregistered; `analytics doctor --repair` moves stranded files home."
            ),
        ),
    ],
    metadata=table_metadata("raw_uploads"),
    description=(
        "One partition per file dropped in the watched folder (key: sanitised file name + content hash). "
        "Streams the file in bounded memory and maps its header onto the canonical transaction. A small file's "
        "lines are COPYed as text into `analytics.raw_uploads`; a big file's "
        f"({canonical.DEFAULT_BULK_BYTES >> 20} MB or more, `{canonical.BULK_BYTES_ENV}`) plain lines are typed "
        "on the way in (DuckDB, vectorised) into a table of the file's own, and only the lines that need Postgres to "
        "decide them go to `raw_uploads`. A file that changed while it was read is not staged (its settled "
        "version loads next). A file that cannot be read or mapped, or fails in any other way that is its own "
        "fault, is moved to the quarantine folder with a `.reason.txt`; the partition's `reason` and the "
        "`file_accepted` check show why. A run takes one file or a batch of waiting files (the sensor batches "
        "them); each file is staged in its own transaction, so one bad file never fails or holds back the others."
    ),
)
def raw_uploads(context: dg.AssetExecutionContext, warehouse: Warehouse, folders: UploadFolders):
    keys = context.partition_keys
    location = folders.location()
    found = location.locate(keys)
    accepted: list[tuple[str, dg.AssetCheckResult]] = []
    for key in keys:
        upload = found.get(key)
        if upload is None:  # removed from the folder after the sensor saw it: nothing to load, nothing to keep
            reason = f"no file for partition {key} in the watched folder, the archive or the quarantine"
            context.add_asset_metadata({"status": "missing", "reason": reason, "dagster/row_count": 0},
                                       partition_key=key)
            continue
        with location.readable(upload) as path:
            metadata = _stage(context, warehouse, location, upload, path)
        context.add_asset_metadata(metadata, partition_key=key)
        reason = metadata.get("reason") if metadata["status"] == "quarantined" else None
        accepted.append((files.display_name(upload.name), dg.AssetCheckResult(
            check_name=ACCEPTED_CHECK,
            passed=reason is None,
            severity=dg.AssetCheckSeverity.WARN,
            description=reason,
            metadata={"quarantined_files": int(reason is not None)},
        )))
    return dg.MaterializeResult(
        metadata={"files_in_run": len(keys)},
        check_results=[
            checks.combined(ACCEPTED_CHECK, accepted),
            _reconciled(warehouse, location),
        ],
    )


def _stage(context, warehouse: Warehouse, location: Location, upload: files.UploadedFile, path: Path):
    """Stage one file, read from ``path``, in its own transaction: its outcome never depends on the other files of
    the run. Returns the partition's metadata."""
    key = upload.key
    facts = {
        "file_key": key,
        "file_name": files.display_name(upload.name),
        "content_hash": upload.content_hash,
        "size_bytes": upload.size_bytes,
        "run_id": context.run.run_id,
    }
    try:
        settings = settings_for(upload.name)
        parsed, batches = stream_raw_batches(path, key, settings.columns)
        with warehouse.transaction() as conn:
            staged = canonical.stage(conn, key, batches, settings if canonical.is_big(upload.size_bytes) else None)
            # A file changed while it was read rolls the transaction back; the settled file is a new partition.
            location.check_unchanged(upload)
            registry.staged(
                conn, facts, upload.where, parsed.columns_seen, parsed.mapping.source_columns, parsed.rows_read,
                staged.duplicates if staged.typed else None,
            )
            sample = db.preview(conn, _PREVIEW, {"key": key})
    except files.ChangedWhileLoading as changed:
        context.log.warning(f"{changed}: nothing staged; the sensor loads the new version once it is settled")
        return {"status": "changed while loading", "reason": str(changed), "dagster/row_count": 0}
    except Exception as error:  # noqa: BLE001 - every failure that is the file's fault quarantines the file
        if db.is_outage(error):
            raise  # the database, not the file: fail the run, a retry loads the file
        return _quarantine(context, warehouse, location, upload, facts, _reason(error))
    context.log.info(f"staged {parsed.rows_read} rows of {facts['file_name']}")
    return {
        "status": "staged",
        "file_name": facts["file_name"],
        "content_hash": upload.content_hash,
        "size_bytes": upload.size_bytes,
        "dagster/row_count": parsed.rows_read,
        "malformed_lines": parsed.malformed_lines,
        "column_mapping": dg.MetadataValue.json(parsed.mapping.source_columns),
        "mapping_file_entry": settings.pattern or "none (defaults)",
        "preview": dg.MetadataValue.md(sample),
        **parsed.describe(),
    }


def _reason(error: Exception) -> str:
    """What the user reads: the loader's own words for the errors it knows; type and a short excerpt otherwise."""
    if isinstance(error, UnsupportedFile | UnmappableColumns):
        return files.excerpt(str(error), limit=1000)
    if isinstance(error, UNREADABLE):
        return f"cannot read: {files.excerpt(str(error))}"
    return f"cannot load ({type(error).__name__}): {files.excerpt(str(error))}"


def _quarantine(context, warehouse: Warehouse, location: Location, upload: files.UploadedFile, facts, reason):
    """Keep the file and say why: registered in Postgres first, then moved aside with a reason file."""
    target = location.destination("quarantine", upload.key, upload.where)
    with warehouse.transaction() as conn:
        registry.quarantined(conn, facts, target, reason)
    location.quarantine(upload.key, upload.where, reason)
    context.log.warning(f"quarantined {facts['file_name']}: {reason}")
    return {
        "status": "quarantined",
        "reason": reason,
        "file_name": facts["file_name"],
        "quarantined_at": dg.MetadataValue.path(target),
        "dagster/row_count": 0,
    }


def _reconciled(warehouse: Warehouse, location: Location) -> dg.AssetCheckResult:
    """Storage and registry agree (reconcile.py). A file another run is moving this very moment can show for a
    tick."""
    with warehouse.transaction() as conn:
        found = reconcile.at(conn, location)
    listed = "; ".join(f"{item.why}: {files.excerpt(str(item.path), 120)}" for item in found[:5])
    return dg.AssetCheckResult(
        check_name=RECONCILED_CHECK,
        passed=not found,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{len(found)} stranded file(s), run `analytics doctor --repair`: {listed}" if found else None,
        metadata={"stranded_files": len(found)},
    )
