"""transactions: typed, validated, de-duplicated canonical rows, one upload's worth per partition."""

import dagster as dg
import sqlalchemy as sa

from analytics_pipeline.assets.metadata import load_metadata, table_metadata
from analytics_pipeline.checks import analysed_check, analysed_check_spec, combined, nothing_loaded
from analytics_pipeline.ingestion import files
from analytics_pipeline.ingestion.settings import settings_for
from analytics_pipeline.partitions import FILES_IN_ONE_RUN, upload_files
from analytics_pipeline.resources import Location, UploadFolders, Warehouse
from analytics_pipeline.warehouse import canonical, db, registry
from analytics_pipeline.warehouse.registry import FileStatus

ACCEPTED_ROWS_CHECK = "rows_accepted"
BOOKS_CHECK = "books_balance"

# Each count taken afresh from the table that holds the rows, against what the load reported: the file's lines
# read by the parser (registry) against the lines staged and the lines typed, the rejections reported against those
# stored, the rows the insert reported against those now in transactions (the duplicates are the typed lines that
# were neither, so loaded + rejected + duplicates = read follows).
_BOOKS = """
SELECT (SELECT count(*) FROM analytics.raw_uploads WHERE file_key = :key) AS staged,
       (SELECT count(*) FROM analytics.rejected_rows WHERE file_key = :key) AS rejected,
       (SELECT count(*) FROM analytics.transactions WHERE source = :key) AS loaded
"""


@dg.asset(
    partitions_def=upload_files,
    deps=["raw_uploads"],
    group_name="ingestion",
    kinds={"postgres", "sql"},
    owners=["team:data-engineering"],
    pool="warehouse",
    backfill_policy=FILES_IN_ONE_RUN,
    check_specs=[
        dg.AssetCheckSpec(
            ACCEPTED_ROWS_CHECK,
            asset="transactions",
            description="Rejected rows stay under the file's allowed share; warns when the whole file is quarantined.",
        ),
        analysed_check_spec("transactions"),
        dg.AssetCheckSpec(
            BOOKS_CHECK,
            asset="transactions",
            description=(
                "The file's books balance: the lines the parser read were all staged and typed, and the loaded and "
                "rejected rows the load reported are the rows now in their tables, counted again."
            ),
        ),
    ],
    metadata=table_metadata("transactions"),
    description=(
        "Canonical transactions (one row per line: ids, UTC timestamp and day, customer, company, region, product, "
        "quantity, unit price, amount, cancellation flag) typed in SQL from an upload's staged rows; a big file's "
        "rows land as a partition of their own (`analytics_loads.file_*`), indexed after the load. Rows that cannot "
        "be typed go to `analytics.rejected_rows` with their line and reason; exact duplicate lines count once; "
        "a transaction_id seen in an earlier file is updated (last version wins). A file whose rejected share "
        "exceeds `max_rejected_share` (default 50%) is quarantined as a whole. A changed file with the same name "
        "replaces the older version's rows. Re-running a partition replaces exactly that file's rows, in one "
        "transaction."
    ),
)
def transactions(context: dg.AssetExecutionContext, warehouse: Warehouse, folders: UploadFolders):
    results: dict[str, list[tuple[str, dg.AssetCheckResult]]] = {}
    location = folders.location()
    for key in context.partition_keys:
        metadata, checks = _load(context, warehouse, location, key)
        context.add_asset_metadata(metadata, partition_key=key)
        for check in checks:
            results.setdefault(check.check_name, []).append((metadata.get("file_name") or key, check))
    return dg.MaterializeResult(
        metadata={"files_in_run": len(context.partition_keys)},
        check_results=[combined(name, found) for name, found in results.items()],
    )


def _load(context, warehouse: Warehouse, location: Location, key: str) -> tuple[dict, list[dg.AssetCheckResult]]:
    """Load one staged file in its own transaction: its outcome never depends on the other files of the run.
    Returns the partition's metadata and the file's check results."""
    with warehouse.transaction() as conn:
        upload = registry.file_row(conn, key)
    if upload is None:
        return _skipped("not staged", "the file changed while it was read; its settled version loads on its own")
    if upload["status"] == FileStatus.QUARANTINED:
        return _skipped("quarantined", "the file was quarantined when it was read")
    if upload["status"] == FileStatus.REPLACED:
        return _skipped("replaced", "a newer version of the file replaced it")
    staged_at = upload["path"]
    try:
        with warehouse.transaction() as conn:
            versions = registry.other_versions(conn, key, upload["file_name"], upload["received_at"])
            newer = [v["file_key"] for v in versions if v["newer"]]
            if newer:
                reason = f"replaced by a newer version of {upload['file_name']} ({newer[0]})"
                registry.replaced(conn, key, reason)
            else:
                settings = settings_for(upload["file_name"])
                summary = canonical.promote(conn, key, settings, upload["duplicate_rows"])
                outcome = _outcome(conn, key, upload, versions, summary, settings, location)
                coverage, coverage_check = analysed_check(conn, key)
                books = _books(conn, key, upload, summary, outcome[2])
    except Exception as error:  # noqa: BLE001 - every failure that is the file's fault quarantines the file
        if db.is_outage(error):
            raise  # the database, not the file: fail the run, a retry loads the file
        return _quarantined_on_error(context, warehouse, location, key, upload, error)
    # The file moves only now that the database has committed where it belongs; a kill in between leaves it in the
    # watched folder, and the sensor, seeing the registry, moves it there.
    if newer:
        location.archive(key, staged_at)
        return _skipped("replaced", reason)
    status, reason, loaded, older_versions = outcome
    if status == FileStatus.QUARANTINED:
        location.quarantine(key, staged_at, reason)
    else:
        location.archive(key, staged_at)
    context.log.info(f"{key}: {status}, {loaded} loaded, {summary.rows_rejected} rejected")
    # Days to refresh: this version's, and those of any older version whose rows it just replaced.
    days = [d for v in older_versions for d in (v["first_day"], v["last_day"]) if d]
    days += [summary.first_day, summary.last_day] if loaded and summary.first_day else []
    share = summary.rejected_share
    metadata = load_metadata(summary) | coverage | {
        "status": str(status),
        "dagster/row_count": loaded,
        "first_day": str(min(days)) if days else "",
        "last_day": str(max(days)) if days else "",
    }
    return (
        metadata | {"file_name": upload["file_name"]} | ({"reason": reason} if reason else {}),
        [
            dg.AssetCheckResult(
                check_name=ACCEPTED_ROWS_CHECK,
                passed=status == FileStatus.LOADED,
                severity=dg.AssetCheckSeverity.WARN,
                description=reason,
                metadata={"rejected_share": round(share, 4), "allowed_share": settings.max_rejected_share},
            ),
            coverage_check,
            books,
        ],
    )


def _books(conn, key: str, upload: dict, summary, loaded: int) -> dg.AssetCheckResult:
    counted = conn.execute(sa.text(_BOOKS), {"key": key}).mappings().one()
    # A big file's plain rows were typed on the way in, the others staged as text.
    staged = upload["rows_read"] - summary.rows_typed_on_the_way
    expected = {"staged": staged, "rejected": summary.rows_rejected, "loaded": loaded}
    wrong = {name: (counted[name], want) for name, want in expected.items() if counted[name] != want}
    if summary.rows_read != upload["rows_read"]:  # the lines typed in SQL against the lines the parser read
        wrong["typed"] = (summary.rows_read, upload["rows_read"])
    balanced = not wrong
    return dg.AssetCheckResult(
        check_name=BOOKS_CHECK,
        passed=balanced,
        description=None if balanced else "; ".join(
            f"{n}: {c} in the table, {w} reported" for n, (c, w) in wrong.items()
        ),
        metadata={
            **{f"{name}_rows": int(counted[name]) for name in expected}, "duplicate_rows": summary.duplicate_rows
        },
    )


def _outcome(conn, key: str, upload: dict, versions: list[dict], summary, settings, location: Location):
    """Record what the typed rows came to: loaded (replacing older versions of the name) or quarantined."""
    status, reason = FileStatus.LOADED, summary.refusal(settings)
    target = location.destination("quarantine" if reason else "archive", key, upload["path"])
    if reason:
        status = FileStatus.QUARANTINED
    loaded = summary.rows_loaded if status == FileStatus.LOADED else 0
    # Only a version that loaded rows replaces older ones: a quarantined or header-only file must not wipe the last
    # good version.
    older_versions = [v for v in versions if not v["newer"]] if loaded else []
    for older in (v["file_key"] for v in older_versions):
        registry.replaced(conn, older, f"replaced by a newer version ({key})")
    registry.promoted(
        conn, key, status, target, reason,
        rows_loaded=loaded,
        rows_rejected=summary.rows_rejected,
        duplicate_rows=summary.duplicate_rows,
        first_day=summary.first_day if loaded else None,
        last_day=summary.last_day if loaded else None,
    )
    return status, reason, loaded, older_versions


def _quarantined_on_error(context, warehouse: Warehouse, location: Location, key, upload, error):
    reason = f"cannot load ({type(error).__name__}): {files.excerpt(str(error))}"
    target = location.destination("quarantine", key, upload["path"])
    with warehouse.transaction() as conn:  # the failed transaction rolled back: nothing of the file is loaded
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {canonical.file_table(key, staging=True)}")  # a big file's
        registry.promoted(conn, key, FileStatus.QUARANTINED, target, reason, rows_loaded=0, rows_rejected=None,
                          duplicate_rows=None, first_day=None, last_day=None)
    location.quarantine(key, upload["path"], reason)
    context.log.warning(f"quarantined {upload['file_name']}: {reason}")
    return _skipped("quarantined", reason, passed=False)


def _skipped(status: str, reason: str, passed: bool = True) -> tuple[dict, list[dg.AssetCheckResult]]:
    return (
        {"status": status, "reason": reason, "dagster/row_count": 0, "first_day": "", "last_day": ""},
        [
            dg.AssetCheckResult(
                check_name=ACCEPTED_ROWS_CHECK,
                passed=passed,
                severity=dg.AssetCheckSeverity.WARN,
                description=reason if not passed else f"nothing to load: {reason}",
            ),
            nothing_loaded(reason),
            dg.AssetCheckResult(check_name=BOOKS_CHECK, passed=True, description=f"nothing loaded: {reason}"),
        ],
    )
