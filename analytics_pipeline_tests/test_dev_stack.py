"""`analytics dev` as a user runs it: the real webserver, the real daemon, the real Postgres.

A file dropped into the watched folder is loaded by the sensor's run and its months refreshed by the daemon with no
one clicking anything; a backfill of every month of the data launched through the webserver's GraphQL API runs as a
single run, and per-month runs leave the same tables; Ctrl-C stops every process the command started, Postgres
included, within 20 seconds (checked by the shared stack module on the way out).
"""

import shutil

import pandas as pd
import pytest

from analytics_pipeline_tests.conftest import SAMPLE_FILES
from analytics_pipeline_tests.stack import Stack, dev_stack, user_environment, wait_for


@pytest.fixture(scope="module")
def stack(data_dir):
    data = data_dir / "stack"
    with user_environment(data) as env, dev_stack(data, env) as running:
        yield running


def test_a_dropped_file_is_loaded_and_its_days_refreshed_without_a_human(stack):
    sample = next(p for p in SAMPLE_FILES if p.name == "api_billing.csv")
    shutil.copy2(sample, stack.data / "uploads" / sample.name)  # keeps the old mtime: settled at once

    def finished():
        runs = stack.runs()
        done = {(r["jobName"], r["status"]) for r in runs}
        failed = [r for r in runs if r["status"] == "FAILURE"]
        assert not failed, failed
        return ("ingest_upload_job", "SUCCESS") in done and ("daily_refresh_job", "SUCCESS") in done

    wait_for(finished, 300, "the ingest run and the refresh run")
    assert stack.scalar("SELECT count(*) FROM analytics.transactions") == 24875
    assert stack.scalar("SELECT count(*) FROM analytics.daily_metrics") == 569  # 2025-05-01..2026-11-20
    assert stack.scalar("SELECT count(*) FROM analytics.insights") == 1
    assert (stack.data / "archive").is_dir() and not list((stack.data / "uploads").iterdir())


LAUNCH_BACKFILL = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
  }
}
"""


DAILY = ("daily_metrics", "daily_region_metrics", "daily_product_metrics", "daily_company_metrics")
FIRST_DAY, LAST_DAY = "2025-05-01", "2026-11-20"  # the billing sample's span
SAMPLED_MONTHS = ("2025-09", "2026-02", "2026-11")  # an anomaly, an outage, the last (partial) month


def _launch_backfill(stack: Stack, months: list[str]) -> str:
    """Launch a backfill of the daily assets from the webserver, as the UI's partition dialog does."""
    launched = stack.graphql(
        LAUNCH_BACKFILL,
        {"params": {"partitionNames": months, "assetSelection": [{"path": [t]} for t in DAILY], "fromFailure": False}},
    )["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    return launched["backfillId"]


def _wait_for_backfill(stack: Stack, backfill_id: str) -> str:
    def finished():
        data = stack.graphql(
            "query($id: String!) { partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status } } }",
            {"id": backfill_id},
        )
        status = data["partitionBackfillOrError"]["status"]
        return status if status in ("COMPLETED", "COMPLETED_SUCCESS", "FAILED", "CANCELED") else None

    assert wait_for(finished, 300, f"backfill {backfill_id}") in ("COMPLETED", "COMPLETED_SUCCESS")
    return backfill_id


def _backfill_run(stack: Stack, backfill_id: str) -> dict[str, str]:
    """The one run of a backfill (it must have succeeded), as its tags."""
    [run] = [r for r in stack.runs() if {"key": "dagster/backfill", "value": backfill_id} in r["tags"]]
    assert run["status"] == "SUCCESS", run
    return {t["key"]: t["value"] for t in run["tags"]}


def _daily_tables(stack: Stack) -> dict[str, list]:
    return {table: stack.rows(f"SELECT * FROM analytics.{table} ORDER BY 1, 2") for table in DAILY}


def test_a_backfill_of_every_month_is_one_run_and_matches_per_month_runs(stack):
    wait_for(lambda: stack.scalar("SELECT count(*) FROM analytics.daily_metrics") > 0, 300, "daily metrics")
    months = [period.strftime("%Y-%m") for period in pd.period_range(FIRST_DAY, LAST_DAY, freq="M")]
    assert (months[0], months[-1], len(months)) == ("2025-05", "2026-11", 19)
    tags = _backfill_run(stack, _wait_for_backfill(stack, _launch_backfill(stack, months)))
    assert (tags["dagster/asset_partition_range_start"], tags["dagster/asset_partition_range_end"]) == (
        months[0],
        months[-1],
    )
    days = len(pd.date_range(FIRST_DAY, LAST_DAY, freq="D"))
    assert stack.scalar("SELECT count(*) FROM analytics.daily_metrics") == days
    assert stack.rows("SELECT min(day)::text, max(day)::text FROM analytics.daily_metrics") == [(FIRST_DAY, LAST_DAY)]
    after_backfill = _daily_tables(stack)

    # The same months recomputed one run per month, as the nightly schedule does (launched together: the months
    # are disjoint, and the daemon then starts their runs in one pass).
    launched = {month: _launch_backfill(stack, [month]) for month in SAMPLED_MONTHS}
    for month, backfill_id in launched.items():
        tags = _backfill_run(stack, _wait_for_backfill(stack, backfill_id))
        assert (tags["dagster/asset_partition_range_start"], tags["dagster/asset_partition_range_end"]) == (
            month,
            month,
        )
    assert _daily_tables(stack) == after_backfill
