"""Sensors: notice new files in the watched folder, and refresh the days a loaded file touched."""

import json
import time

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from analytics_pipeline.ingestion import files
from analytics_pipeline.jobs import daily_refresh_job, ingest_upload_job
from analytics_pipeline.partitions import daily, upload_files
from analytics_pipeline.resources import UploadFolders

# A file must look the same on two ticks in a row (or be older than this) before it is read: a copy in progress
# changes size or mtime between ticks.
SETTLE_SECONDS = 10
MAX_RUNS_PER_TICK = 25


@dg.sensor(
    job=ingest_upload_job,
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Watches the uploads folder. Each new, settled file becomes a partition of raw_uploads (key: sanitised "
        "name + content hash) and one run of ingest_upload_job. Files still being written wait for the next tick; "
        "a file whose exact bytes were already loaded under the same name is skipped."
    ),
)
def upload_sensor(context: dg.SensorEvaluationContext, folders: UploadFolders) -> dg.SensorResult:
    # The cursor holds only files still sitting in the folder, so a tick costs what is new, not what was ever seen.
    previous: dict[str, list] = json.loads(context.cursor or "{}")
    observed: dict[str, list] = {}
    requests: list[dg.RunRequest] = []
    waiting = already_loaded = 0
    folder = folders.uploads_path
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if not files.is_candidate(path):
            continue
        stat = path.stat()
        signature = [stat.st_size, stat.st_mtime_ns]
        seen = previous.get(path.name)
        settled = (seen is not None and seen[:2] == signature) or time.time() - stat.st_mtime > SETTLE_SECONDS
        if not settled or len(requests) >= MAX_RUNS_PER_TICK:
            observed[path.name] = signature
            waiting += 1
            continue
        key = seen[2] if seen and seen[:2] == signature and len(seen) > 2 else files.describe(path).key
        observed[path.name] = [*signature, key]
        if context.instance.has_dynamic_partition(upload_files.name, key):
            already_loaded += 1
            continue
        requests.append(dg.RunRequest(run_key=key, partition_key=key, tags={"upload/file_name": path.name}))

    if not requests:
        return dg.SensorResult(
            skip_reason=f"no new settled files in {folder} ({waiting} still settling, {already_loaded} already known)",
            cursor=json.dumps(observed),
        )
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[upload_files.build_add_request([r.partition_key for r in requests])],
        cursor=json.dumps(observed),
    )


@dg.sensor(
    job=daily_refresh_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "After transactions load, refreshes exactly the days they touched: one run of daily_refresh_job over the "
        "day range (first_day..last_day from the load's metadata), then forecasts and insights downstream."
    ),
)
def touched_days_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    after = int(context.cursor) if context.cursor else None
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("transactions"), after_storage_id=after), limit=500, ascending=True
    ).records
    if not records:
        return dg.SensorResult(skip_reason="no new transactions loaded since the last refresh", cursor=context.cursor)
    cursor = str(max(record.storage_id for record in records))
    touched = [days for days in (_days(record.asset_materialization.metadata) for record in records) if days]
    # Days outside the partitions (before the start date, or today, which is not complete yet) are not refreshed.
    if not touched:
        return dg.SensorResult(skip_reason="the new loads hold no valid transactions", cursor=cursor)
    start = max(min(first for first, _ in touched), daily.get_first_partition_key())
    end = min(max(last for _, last in touched), daily.get_last_partition_key())
    if start > end:
        return dg.SensorResult(skip_reason=f"the loads touched no day from {start} to {end}", cursor=cursor)
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=f"refresh-{cursor}",
                tags={ASSET_PARTITION_RANGE_START_TAG: start, ASSET_PARTITION_RANGE_END_TAG: end},
            )
        ],
        cursor=cursor,
    )


def _days(metadata) -> tuple[str, str] | None:
    first, last = metadata.get("first_day"), metadata.get("last_day")
    if first is None or last is None or not first.value:
        return None
    return first.value, last.value
