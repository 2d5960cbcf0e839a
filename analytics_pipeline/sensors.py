"""Sensors: notice new files in the watched folder, and refresh the days a loaded file touched."""

import hashlib
import json
import os
import time

import dagster as dg

from analytics_pipeline.ingestion import files
from analytics_pipeline.jobs import daily_refresh_job, ingest_upload_job
from analytics_pipeline.partitions import months_for, range_tags, upload_files
from analytics_pipeline.resources import Location, UploadFolders, Warehouse
from analytics_pipeline.warehouse import registry
from analytics_pipeline.warehouse.registry import FileStatus

# A file must look the same on two ticks in a row (or be older than this) before it is read: a copy in progress
# changes size or mtime between ticks.
SETTLE_SECONDS = 10
# Assets that write analytics.transactions; each reports the first and last day its load touched.
LOADING_ASSETS = ("transactions", "database_transactions", "api_transactions")
MAX_RUNS_PER_TICK = int(os.environ.get("ANALYTICS_MAX_RUNS_PER_TICK", "25"))
# New files share runs: Dagster's overhead is seconds a run, the load of a small file milliseconds. A run's files are
# loaded one after another, each in its own transaction; a big file gets a run of its own.
FILES_PER_RUN = int(os.environ.get("ANALYTICS_FILES_PER_RUN", "100"))
BYTES_PER_RUN = 256 << 20
BATCH_TAG = "upload/batch"  # on every ingest run the sensor requests; analytics.upload_requests maps files to it
RECORDS_PER_TICK = 500  # loads read per asset and tick; a backlog is read over the next ticks
AFTER_KEY = "/after"  # in the upload sensor's cursor; "/" is in no file's or top-level object's name

# The runs of one file; Dagster's run retries (dagster.yaml) re-run a failed or killed load before the sensor
# gives up on the file.
_UNFINISHED = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
               dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
WILL_RETRY_TAG = "dagster/will_retry"  # set by Dagster on a failed run that run retries will start again
RETRY_GRACE_SECONDS = 120  # how long after a failure the sensor waits for run retries before giving up on a file


@dg.sensor(
    job=ingest_upload_job,
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Watches the uploads folder, or the bucket of ANALYTICS_UPLOADS_URL. Each new, settled file becomes a "
        "partition of raw_uploads (key: sanitised name + content hash); the new files of a tick are loaded in "
        f"batches of up to {FILES_PER_RUN} files (ANALYTICS_FILES_PER_RUN) per run, each file in its own "
        f"transaction, at most ANALYTICS_MAX_RUNS_PER_TICK ({MAX_RUNS_PER_TICK}) runs per tick. Files still being "
        "written wait for a quiet tick. Bytes that were already loaded, under any name, are not loaded again: the "
        "copy is moved to the archive next to the original. A quarantined or replaced file dropped again is loaded "
        "again; a file whose loads keep failing (after run retries) is quarantined with the failure as its reason; "
        "symbolic links and other non-regular entries are quarantined unread."
    ),
)
def upload_sensor(
    context: dg.SensorEvaluationContext, folders: UploadFolders, warehouse: Warehouse
) -> dg.SensorResult:
    # The cursor holds only files still sitting in the watched location, so a tick costs what is new, not what was
    # ever seen; AFTER_KEY is where a bucket's listing stopped (a listing is a window of names there).
    previous: dict[str, list] = json.loads(context.cursor or "{}")
    location = folders.location()
    listing = location.listing(previous.pop(AFTER_KEY, None))
    observed: dict[str, list] = {name: seen for name, seen in previous.items() if not listing.covers(name)}
    settled: list[tuple[files.Entry, str, str]] = []  # entry, partition key, content hash
    waiting = refused = 0
    for entry, reason in listing.refused:
        _refuse(context, warehouse, location, entry, reason)
        refused += 1
    for entry in listing.entries:
        signature = [entry.size, entry.version]
        seen = previous.get(entry.name)
        unchanged = seen is not None and seen[:2] == signature
        if not (unchanged or time.time() - entry.modified > SETTLE_SECONDS):
            observed[entry.name] = signature
            waiting += 1
            continue
        if unchanged and len(seen) == 4:
            key, digest = seen[2], seen[3]
        else:
            try:
                digest = location.content_hash(entry)
            except FileNotFoundError:  # moved to the archive by a run, or replaced, since the listing
                continue
            key = files.partition_key(entry.name, digest)
        observed[entry.name] = [*signature, key, digest]
        settled.append((entry, key, digest))
    if listing.after is not None:
        observed[AFTER_KEY] = listing.after

    keys = [key for _, key, _ in settled]
    with warehouse.transaction() as conn:
        loaded = registry.loaded_content(conn, [digest for _, _, digest in settled])
        known = registry.statuses(conn, keys)
        requested_in = registry.batches(conn, keys)
    new: list[files.Entry] = []
    again: list[tuple[files.Entry, str]] = []  # a file with a partition that must be loaded again: entry, run key
    requested: set[str] = set()
    runs_of_batch: dict[str, list] = {}
    duplicates = in_flight = 0
    for entry, key, digest in settled:
        original = loaded.get(digest)
        if original or digest in requested:
            if original:  # the same bytes were loaded before: keep the copy beside the original, load nothing
                location.archive(original, entry.where)
                observed.pop(entry.name, None)
                context.log.info(f"{files.display_name(entry.name)}: same content as {original}, already loaded; "
                                 "archived")
            duplicates += 1
            continue
        requested.add(digest)
        if not context.instance.has_dynamic_partition(upload_files.name, key):
            new.append(entry)
            continue
        if known.get(key, {}).get("status") in (FileStatus.QUARANTINED, FileStatus.REPLACED):
            # Dropped again (after the mapping file was fixed, say), or left behind by a kill between the commit
            # and the move: load it again. Its mtime makes the run key new.
            again.append((entry, f"{key}@{entry.version}"))
            continue
        runs = _runs(context.instance, key, requested_in.get(key), runs_of_batch)
        if not runs:  # requested, but the run was never created (the daemon stopped in between): ask again
            again.append((entry, f"{key}@requested-again-{int(time.time())}"))
            continue
        failure = _given_up(context.instance, runs)
        if failure is None:
            in_flight += 1  # its run is queued, running, or about to be retried
            continue
        _quarantine_failed(warehouse, location, entry, key, digest, failure)
        observed.pop(entry.name, None)
        context.log.warning(f"{files.display_name(entry.name)}: quarantined, {failure}")

    batches = [[entry] for entry, _ in again] + _batches(new)
    waiting += sum(len(batch) for batch in batches[MAX_RUNS_PER_TICK:])
    batches = batches[:MAX_RUNS_PER_TICK]
    run_keys = [run_key for _, run_key in again] + [None] * (len(batches) - len(again))
    requests, new_keys, requested_batches = [], [], {}
    for batch, run_key in zip(batches, run_keys, strict=True):
        batch_keys = [observed[entry.name][2] for entry in batch]
        request = _run_request(batch, batch_keys, run_key)
        requests.append(request)
        requested_batches.update(dict.fromkeys(batch_keys, request.tags[BATCH_TAG]))
        new_keys += batch_keys if run_key is None else []
    if not requests:
        return dg.SensorResult(
            skip_reason=(
                f"no new files to load in {location}: {waiting} waiting (still being written, or over the per-tick "
                f"limit), {in_flight} already requested, {duplicates} duplicates of loaded files, {refused} refused"
            ),
            cursor=json.dumps(observed),
        )
    # Recorded before Dagster sees the requests: a file's batch is how later ticks find its runs.
    with warehouse.transaction() as conn:
        registry.requested(conn, requested_batches)
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[upload_files.build_add_request(new_keys)] if new_keys else [],
        cursor=json.dumps(observed),
    )


def _batches(entries: list[files.Entry]) -> list[list[files.Entry]]:
    """New files in runs of at most FILES_PER_RUN files and BYTES_PER_RUN bytes (a bigger file runs alone)."""
    batches: list[list[files.Entry]] = []
    size = 0
    for entry in entries:
        if not batches or len(batches[-1]) >= FILES_PER_RUN or size + entry.size > BYTES_PER_RUN:
            batches.append([])
            size = 0
        batches[-1].append(entry)
        size += entry.size
    return batches


def _run_request(batch: list[files.Entry], keys: list[str], run_key: str | None) -> dg.RunRequest:
    """One file: a run of its partition. Several new files: a run over the range of their partitions, which the
    tick adds in this order, so the range holds exactly them."""
    names = [files.display_name(entry.name) for entry in batch]
    batch_id = run_key or "files-" + hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16]
    tags = {
        BATCH_TAG: batch_id,
        "upload/file_name": names[0] if len(names) == 1 else f"{names[0]} and {len(names) - 1} more",
        "upload/files": str(len(names)),
    }
    if len(keys) == 1:
        return dg.RunRequest(run_key=batch_id, partition_key=keys[0], tags=tags)
    return dg.RunRequest(run_key=batch_id, tags=tags | range_tags(keys[0], keys[-1]))


def _runs(instance: dg.DagsterInstance, key: str, batch: str | None, cache: dict[str, list]) -> list:
    """The runs that load this file: those of the batch the sensor last requested it in (read once per tick), else
    runs of its partition launched from the UI."""
    if batch is not None:
        if batch not in cache:
            cache[batch] = instance.get_run_records(
                dg.RunsFilter(job_name=ingest_upload_job.name, tags={BATCH_TAG: batch})
            )
        if cache[batch]:
            return cache[batch]
    return instance.get_run_records(dg.RunsFilter(job_name=ingest_upload_job.name, tags={"dagster/partition": key}))


def _given_up(instance: dg.DagsterInstance, records: list) -> str | None:
    """Why the loads of a file will not be tried again - all its runs ended, the last one failed and run retries
    are used up - or None while a run is queued, running or about to be retried."""
    if any(r.dagster_run.status in _UNFINISHED for r in records):
        return None
    last_record = max(records, key=lambda r: r.create_timestamp)
    last = last_record.dagster_run
    if last.status == dg.DagsterRunStatus.SUCCESS or last.tags.get(WILL_RETRY_TAG) == "true":
        return None
    # Run retries decide a moment after the failure is stored; until then the run does not say it will be retried.
    ended = last_record.end_time or last_record.update_timestamp.timestamp()
    if time.time() - ended < RETRY_GRACE_SECONDS:
        return None
    failures = instance.all_logs(
        last.run_id, of_type={dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE}
    )
    said = failures[0].message if failures else "no error recorded"
    attempts = sum(r.dagster_run.status != dg.DagsterRunStatus.SUCCESS for r in records)
    return f"loading failed {attempts} time(s); last run {last.run_id}: {files.excerpt(said)}"


def _quarantine_failed(
    warehouse: Warehouse, location: Location, entry: files.Entry, key: str, digest: str, reason: str
):
    facts = {"file_key": key, "file_name": files.display_name(entry.name), "content_hash": digest,
             "size_bytes": entry.size, "run_id": None}
    with warehouse.transaction() as conn:
        registry.quarantined(conn, facts, location.destination("quarantine", key, entry.where), reason)
    location.quarantine(key, entry.where, reason)


def _refuse(context, warehouse: Warehouse, location: Location, entry: files.Entry, reason: str) -> None:
    """A link or a special file is never read: it is moved aside as it is (a link stays a link) and registered."""
    digest = hashlib.sha256(os.fsencode(entry.name)).hexdigest()  # of the name: the content is never read
    key = files.partition_key(entry.name, digest)
    facts = {"file_key": key, "file_name": files.display_name(entry.name), "content_hash": digest, "size_bytes": 0,
             "run_id": None}
    with warehouse.transaction() as conn:
        registry.quarantined(conn, facts, location.destination("quarantine", key, entry.where), reason)
    location.quarantine(key, entry.where, reason)
    context.log.warning(f"refused {reason}")


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
    # One position per loading asset: each asset's loads are read in storage order from its own position, so a
    # backlog of one never pushes another's loads below the cursor unread.
    positions: dict[str, int] = _positions(context.cursor)
    records = []
    for asset in LOADING_ASSETS:
        found = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), after_storage_id=positions.get(asset)),
            limit=RECORDS_PER_TICK,
            ascending=True,
        ).records
        records += found
        if found:
            positions[asset] = max(record.storage_id for record in found)
    if not records:
        return dg.SensorResult(skip_reason="no new transactions loaded since the last refresh", cursor=context.cursor)
    cursor = json.dumps(positions, sort_keys=True)
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
                run_key=f"refresh-{max(record.storage_id for record in records)}",
                tags=range_tags(*months),
            )
        ],
        cursor=cursor,
    )


def _positions(cursor: str | None) -> dict[str, int]:
    """The cursor as asset -> last storage id read. An older cursor was one storage id for all assets."""
    if not cursor:
        return {}
    value = json.loads(cursor)
    return value if isinstance(value, dict) else dict.fromkeys(LOADING_ASSETS, int(value))


def _days(metadata) -> tuple[str, str] | None:
    first, last = metadata.get("first_day"), metadata.get("last_day")
    if first is None or last is None or not first.value:
        return None
    return first.value, last.value
