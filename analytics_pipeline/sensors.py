"""Sensors: notice new files in the watched folder, and refresh the days a loaded file touched."""

import json
import os
import time
from pathlib import Path

import dagster as dg
import sqlalchemy as sa
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from analytics_pipeline.ingestion import files
from analytics_pipeline.jobs import daily_refresh_job, ingest_upload_job
from analytics_pipeline.partitions import months_for, upload_files
from analytics_pipeline.resources import UploadFolders, Warehouse

# A file must look the same on two ticks in a row (or be older than this) before it is read: a copy in progress
# changes size or mtime between ticks.
SETTLE_SECONDS = 10
# Assets that write analytics.transactions; each reports the first and last day its load touched.
LOADING_ASSETS = ("transactions", "database_transactions", "api_transactions")
MAX_RUNS_PER_TICK = int(os.environ.get("ANALYTICS_MAX_RUNS_PER_TICK", "25"))

_KNOWN_CONTENT = """
SELECT content_hash, file_key FROM analytics.ingested_files WHERE content_hash = ANY(:hashes)
"""


@dg.sensor(
    job=ingest_upload_job,
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Watches the uploads folder. Each new, settled file becomes a partition of raw_uploads (key: sanitised "
        "name + content hash) and one run of ingest_upload_job, at most ANALYTICS_MAX_RUNS_PER_TICK (25) per tick. "
        "Files still being written wait for a quiet tick. Bytes that were already loaded, under any name, are not "
        "loaded again: the copy is moved to the archive next to the original."
    ),
)
def upload_sensor(
    context: dg.SensorEvaluationContext, folders: UploadFolders, warehouse: Warehouse
) -> dg.SensorResult:
    # The cursor holds only files still sitting in the folder, so a tick costs what is new, not what was ever seen.
    previous: dict[str, list] = json.loads(context.cursor or "{}")
    observed: dict[str, list] = {}
    settled: list[tuple[Path, str, str]] = []  # path, partition key, content hash
    waiting = 0
    folder = folders.uploads_path
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if not files.is_candidate(path):
            continue
        stat = path.stat()
        signature = [stat.st_size, stat.st_mtime_ns]
        seen = previous.get(path.name)
        unchanged = seen is not None and seen[:2] == signature
        if not (unchanged or time.time() - stat.st_mtime > SETTLE_SECONDS):
            observed[path.name] = signature
            waiting += 1
            continue
        if unchanged and len(seen) == 4:
            key, digest = seen[2], seen[3]
        else:
            upload = files.describe(path)
            key, digest = upload.key, upload.content_hash
        observed[path.name] = [*signature, key, digest]
        settled.append((path, key, digest))

    loaded = _loaded_content(warehouse, [digest for _, _, digest in settled])
    requests: list[dg.RunRequest] = []
    requested: set[str] = set()
    duplicates = in_flight = 0
    for path, key, digest in settled:
        original = loaded.get(digest)
        if original or digest in requested:
            if original:  # the same bytes were loaded before: keep the copy beside the original, load nothing
                files.move_into(folders.archive_path, original, path)
                observed.pop(path.name, None)
                context.log.info(f"{path.name}: same content as {original}, already loaded; archived")
            duplicates += 1
        elif context.instance.has_dynamic_partition(upload_files.name, key):
            in_flight += 1  # requested on an earlier tick; its run has not moved it yet
        elif len(requests) < MAX_RUNS_PER_TICK:
            requests.append(dg.RunRequest(run_key=key, partition_key=key, tags={"upload/file_name": path.name}))
            requested.add(digest)
        else:
            waiting += 1

    if not requests:
        return dg.SensorResult(
            skip_reason=(
                f"no new files to load in {folder}: {waiting} waiting (still being written, or over the per-tick "
                f"limit), {in_flight} already requested, {duplicates} duplicates of loaded files"
            ),
            cursor=json.dumps(observed),
        )
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[upload_files.build_add_request([r.partition_key for r in requests])],
        cursor=json.dumps(observed),
    )


def _loaded_content(warehouse: Warehouse, hashes: list[str]) -> dict[str, str]:
    """content hash -> the partition key that loaded those bytes, for the hashes given."""
    if not hashes:
        return {}
    with warehouse.transaction() as conn:
        rows = conn.execute(sa.text(_KNOWN_CONTENT), {"hashes": hashes}).all()
    return {digest: key for digest, key in rows}


@dg.sensor(
    job=daily_refresh_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "After transactions load (from a file, the database source or the API source), refreshes the months they "
        "touched: one run of daily_refresh_job over the month partitions holding first_day..last_day of the loads' "
        "metadata, then forecasts, anomalies, insights and charts downstream."
    ),
)
def touched_days_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    after = int(context.cursor) if context.cursor else None
    records = [
        record
        for asset in LOADING_ASSETS
        for record in context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), after_storage_id=after), limit=500, ascending=True
        ).records
    ]
    if not records:
        return dg.SensorResult(skip_reason="no new transactions loaded since the last refresh", cursor=context.cursor)
    cursor = str(max(record.storage_id for record in records))
    touched = [days for days in (_days(record.asset_materialization.metadata) for record in records) if days]
    if not touched:
        return dg.SensorResult(skip_reason="the new loads hold no valid transactions", cursor=cursor)
    first, last = min(first for first, _ in touched), max(last for _, last in touched)
    # Days outside the monthly partitions (future months, or before ANALYTICS_START_DATE) are clipped; the loads'
    # days_within_analysed_months check already reports them.
    months = months_for(first, last)
    if months is None:
        return dg.SensorResult(
            skip_reason=f"the loads touched only {first}..{last}, outside the analysed months", cursor=cursor
        )
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=f"refresh-{cursor}",
                tags={ASSET_PARTITION_RANGE_START_TAG: months[0], ASSET_PARTITION_RANGE_END_TAG: months[1]},
            )
        ],
        cursor=cursor,
    )


def _days(metadata) -> tuple[str, str] | None:
    first, last = metadata.get("first_day"), metadata.get("last_day")
    if first is None or last is None or not first.value:
        return None
    return first.value, last.value
