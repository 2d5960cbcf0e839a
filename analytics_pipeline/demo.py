"""`analytics demo`: the whole pipeline once, in-process, on the same Dagster instance the UI reads.

It does what the sensors and the daemon would do over a few minutes - register each upload as a partition, load
it, pull the database and API sources, refresh the days loaded, recompute the analytics - but synchronously, so a
first-time user sees every table filled, every asset materialised and every run in the UI's history after one
command. An unconfigured source materialises as "not configured" with nothing pulled, so the daily metrics never
wait on an upstream that was never run.
"""

import shutil

import dagster as dg
import sqlalchemy as sa

from analytics_pipeline import paths, urls
from analytics_pipeline.analysis.forecast import HORIZON_DAYS
from analytics_pipeline.checks import ANALYSED_CHECK
from analytics_pipeline.definitions import defs
from analytics_pipeline.ingestion import files
from analytics_pipeline.partitions import months_for, range_tags, upload_files
from analytics_pipeline.warehouse import db, findings, server
from analytics_pipeline.warehouse.contract import table_names

# The source pulls, as their hourly schedules run them; each says what it pulled, or that it is not configured.
SOURCE_JOBS = {"database_transactions": "database_pull_job", "api_transactions": "api_pull_job"}

# The unpartitioned assets downstream of the daily tables.
ANALYTICS = [
    dg.AssetKey(name)
    for name in ("revenue_forecast", "metric_anomalies", "insights", "revenue_chart", "findings_index")
]

# Runs keep their full logs in the instance (the UI shows them); the terminal only gets warnings and the summary.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def seed_uploads() -> list[str]:
    """Copy the bundled samples into an empty watched folder; returns the names copied."""
    uploads = paths.uploads_dir()
    if any(files.is_candidate(p) for p in uploads.iterdir()):
        return []
    copied = []
    for sample in sorted(paths.sample_dir().glob("*.csv")):
        shutil.copy2(sample, uploads / sample.name)
        copied.append(sample.name)
    return copied


def run_demo() -> int:
    url = server.database_url()
    instance = dg.DagsterInstance.get()
    copied = seed_uploads()
    if copied:
        print(f"copied {len(copied)} sample files into {paths.uploads_dir()}")

    uploads = [files.describe(p) for p in sorted(paths.uploads_dir().iterdir()) if files.is_candidate(p)]
    keys = [u.key for u in uploads]
    new_keys = [k for k in keys if not instance.has_dynamic_partition(upload_files.name, k)]
    instance.add_dynamic_partitions(upload_files.name, new_keys)

    ok = True
    not_analysed: list[str] = []
    ingest = defs.resolve_job_def("ingest_upload_job")
    for upload in uploads:
        result = ingest.execute_in_process(
            run_config=QUIET, instance=instance, partition_key=upload.key, raise_on_error=False
        )
        ok &= result.success
        not_analysed += _outside_analysed_months(result, upload.name)
        print(f"{_load_outcome(result)}: {upload.name} (partition {upload.key})")

    pulled = {}
    for asset, job in SOURCE_JOBS.items():
        result = defs.resolve_job_def(job).execute_in_process(run_config=QUIET, instance=instance, raise_on_error=False)
        ok &= result.success
        pulled[asset] = _pull_outcome(result, asset)
        not_analysed += _outside_analysed_months(result, asset)
        print(f"{asset}: {pulled[asset]}")

    engine = db.engine_for(url)
    with engine.connect() as conn:
        span = conn.execute(sa.text("SELECT min(day)::text, max(day)::text FROM analytics.transactions")).one()
    months = months_for(*span) if span[0] else None
    refresh = defs.resolve_job_def("daily_refresh_job")
    if months:
        result = refresh.execute_in_process(
            run_config=QUIET,
            instance=instance,
            tags=range_tags(*months),
            raise_on_error=False,
        )
        outcome = f"daily metrics for the months {months[0]}..{months[1]} and downstream"
    else:  # nothing to aggregate; the analytics still run and say "not enough data" in the UI
        result = refresh.execute_in_process(
            run_config=QUIET, instance=instance, asset_selection=ANALYTICS, raise_on_error=False
        )
        outcome = "the analytics with no daily metrics (" + (
            f"the transactions, {span[0]}..{span[1]}, fall outside the analysed months)" if span[0]
            else "no transactions loaded)"
        )
    ok &= result.success
    print(f"{'refreshed' if result.success else 'FAILED to refresh'} {outcome}")
    _print_summary(engine, url, pulled, not_analysed)
    return 0 if ok and months else 1


def _outside_analysed_months(result: dg.ExecuteInProcessResult, name: str) -> list[str]:
    """The load's failed days_within_analysed_months check, as a line for the summary."""
    return [
        f"{name}: {evaluation.description}"
        for evaluation in result.get_asset_check_evaluations()
        if evaluation.check_name == ANALYSED_CHECK and not evaluation.passed
    ]


def _load_outcome(result: dg.ExecuteInProcessResult) -> str:
    """loaded, quarantined (with the reason) or replaced, as the file's transactions materialisation says."""
    if not result.success:
        return "FAILED (see the run in the UI)"
    metadata = result.asset_materializations_for_node("transactions")[0].metadata
    reason = metadata.get("reason")
    return metadata["status"].value + (f" ({reason.value})" if reason else "")


def _pull_outcome(result: dg.ExecuteInProcessResult, asset: str) -> str:
    """The pull's status and row count, as its materialisation records them."""
    if not result.success:
        return "FAILED (see the run in the UI)"
    metadata = result.asset_materializations_for_node(asset)[0].metadata
    return f"{metadata['status'].value} ({metadata['dagster/row_count'].value:,} rows)"


def _print_summary(engine: sa.Engine, url: str, pulled: dict[str, str], not_analysed: list[str]) -> None:
    with engine.connect() as conn:
        loaded = conn.execute(
            sa.text(
                "SELECT count(*) FILTER (WHERE status = 'loaded'), count(*) FILTER (WHERE status = 'quarantined'), "
                "coalesce(sum(rows_loaded), 0), coalesce(sum(rows_rejected), 0), coalesce(sum(duplicate_rows), 0) "
                "FROM analytics.ingested_files"
            )
        ).one()
        span = conn.execute(sa.text("SELECT min(day), max(day) FROM analytics.transactions")).one()
        counts = {table: db.row_count(conn, table) for table in table_names()}
        if conn.execute(sa.text("SELECT to_regclass(:name)"), {"name": f"analytics.{findings.TABLE}"}).scalar():
            counts[findings.TABLE] = db.row_count(conn, findings.TABLE)  # made by findings_index (pgvector)
        chart = conn.execute(sa.text("SELECT path FROM analytics.charts WHERE chart = 'revenue_overview'")).scalar()
    print()
    print("Summary")
    print(f"  files loaded: {loaded[0]}, quarantined: {loaded[1]}")
    print(f"  rows loaded from files: {loaded[2]:,}, rejected: {loaded[3]:,}, duplicates dropped: {loaded[4]:,}")
    for asset, outcome in pulled.items():
        print(f"  {asset}: {outcome}")
    print(f"  transactions from {span[0]} to {span[1]}" if span[0] else "  no transactions")
    for line in not_analysed:  # loaded but outside the daily tables' months: said loudly, with the fix
        print(f"  NOT ANALYSED: {line}")
    print("  tables (schema analytics):")
    for table, count in counts.items():
        print(f"    {table:<24} {count:>10,} rows")
    print(f"  forecast horizon: {HORIZON_DAYS} days")
    print('  ask what was found: analytics ask "why did revenue drop in March?"')
    print(f"  chart: {chart} (all regions; {counts['charts'] - 1} per-region charts next to it)")
    # The password never reaches the terminal (or a CI log); `analytics db` prints the full URL for your own shell.
    print(f"  database: {urls.masked_url(urls.libpq_url(url))}   (psql \"$(analytics db)\" connects)")
    print("  UI: run `analytics dev` and open http://127.0.0.1:3000 - these runs are in its Runs tab")
