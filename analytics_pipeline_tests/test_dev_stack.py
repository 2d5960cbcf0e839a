"""`analytics dev` as a user runs it: the real webserver, the real daemon, the real Postgres.

A file dropped into the watched folder is loaded by the sensor's run and its days refreshed by the daemon with no
one clicking anything; a backfill launched through the webserver's GraphQL API runs as a single run; Ctrl-C stops
every process the command started, Postgres included, within 20 seconds.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pandas as pd
import psutil
import pytest
import requests
import sqlalchemy as sa

from analytics_pipeline.warehouse import server
from analytics_pipeline_tests.conftest import SAMPLE_FILES, scratch_database

ANALYTICS = str(Path(sys.executable).parent / "analytics")
STOP_SECONDS = 20


def _free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(predicate, timeout: float, what: str, interval: float = 2.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Stack:
    def __init__(self, base_url: str, data: Path, db_url: str):
        self.base_url, self.data, self.db_url = base_url, data, db_url

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        response = requests.post(f"{self.base_url}/graphql", json={"query": query, "variables": variables or {}})
        response.raise_for_status()
        body = response.json()
        assert "errors" not in body, body["errors"]
        return body["data"]

    def runs(self) -> list[dict]:
        data = self.graphql("{ runsOrError { ... on Runs { results { runId jobName status tags { key value } } } } }")
        return data["runsOrError"]["results"]

    def scalar(self, sql: str):
        engine = sa.create_engine(server.psycopg2_url(self.db_url))
        try:
            with engine.connect() as conn:
                return conn.execute(sa.text(sql)).scalar_one()
        finally:
            engine.dispose()


@pytest.fixture(scope="module")
def stack(data_dir):
    data = data_dir / "stack"
    data.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", server.DATABASE_URL_ENV)}
    env["ANALYTICS_DATA_DIR"] = str(data)
    configured = server.configured_url()
    with scratch_database(configured) if configured else _no_database() as url:
        if url:
            env[server.DATABASE_URL_ENV] = url
        port = _free_port()
        log = (data / "dev.log").open("w")
        process = subprocess.Popen(
            [ANALYTICS, "dev", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        base_url = f"http://127.0.0.1:{port}"
        try:
            _wait_for(lambda: _responds(base_url), 180, "the webserver", interval=1)
            db_url = subprocess.run([ANALYTICS, "db"], env=env, capture_output=True, text=True).stdout.strip()
            yield Stack(base_url, data, db_url)
        finally:
            _stop_and_check(process, data)
            log.close()


class _no_database:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _responds(base_url: str) -> bool:
    try:
        return requests.get(f"{base_url}/server_info", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _stop_and_check(process: subprocess.Popen, data: Path) -> None:
    """Ctrl-C, then every process it started must be gone within the deadline; kill leftovers either way."""
    started = psutil.Process(process.pid).children(recursive=True) if process.poll() is None else []
    postmaster = data / "postgres" / "postmaster.pid"
    if postmaster.exists():
        started.append(psutil.Process(int(postmaster.read_text().split()[0])))
    began = time.monotonic()
    process.send_signal(signal.SIGINT)
    try:
        process.wait(STOP_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
    gone, alive = psutil.wait_procs(started, timeout=max(0.1, STOP_SECONDS - (time.monotonic() - began)))
    for leftover in alive:
        leftover.kill()
    assert not alive, f"still running after Ctrl-C: {[p.pid for p in alive]}"
    assert time.monotonic() - began <= STOP_SECONDS + 1


def test_a_dropped_file_is_loaded_and_its_days_refreshed_without_a_human(stack):
    sample = next(p for p in SAMPLE_FILES if p.name == "api_billing.csv")
    shutil.copy2(sample, stack.data / "uploads" / sample.name)  # keeps the old mtime: settled at once

    def finished():
        runs = stack.runs()
        done = {(r["jobName"], r["status"]) for r in runs}
        failed = [r for r in runs if r["status"] == "FAILURE"]
        assert not failed, failed
        return ("ingest_upload_job", "SUCCESS") in done and ("daily_refresh_job", "SUCCESS") in done

    _wait_for(finished, 300, "the ingest run and the refresh run")
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
SAMPLED_DAYS = ("2025-09-16", "2026-02-11", "2026-11-20")  # an anomaly, an outage, the last day


def _backfill(stack: Stack, days: list[str]) -> str:
    """Launch a backfill of the daily assets from the webserver, as the UI's partition dialog does; wait for it."""
    launched = stack.graphql(
        LAUNCH_BACKFILL,
        {"params": {"partitionNames": days, "assetSelection": [{"path": [t]} for t in DAILY], "fromFailure": False}},
    )["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill_id = launched["backfillId"]

    def finished():
        data = stack.graphql(
            "query($id: String!) { partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status } } }",
            {"id": backfill_id},
        )
        status = data["partitionBackfillOrError"]["status"]
        return status if status in ("COMPLETED", "COMPLETED_SUCCESS", "FAILED", "CANCELED") else None

    assert _wait_for(finished, 300, f"backfill {backfill_id}") in ("COMPLETED", "COMPLETED_SUCCESS")
    return backfill_id


def _daily_tables(stack: Stack) -> dict[str, list]:
    tables = {}
    for table in DAILY:
        engine = sa.create_engine(server.psycopg2_url(stack.db_url))
        with engine.connect() as conn:
            tables[table] = [tuple(row) for row in conn.execute(sa.text(f"SELECT * FROM analytics.{table} ORDER BY 1, 2"))]
        engine.dispose()
    return tables


def test_a_backfill_of_the_whole_range_is_one_run_and_matches_per_day_runs(stack):
    _wait_for(lambda: stack.scalar("SELECT count(*) FROM analytics.daily_metrics") > 0, 300, "daily metrics")
    days = [str(day.date()) for day in pd.date_range("2025-05-01", "2026-11-20", freq="D")]
    backfill_id = _backfill(stack, days)
    runs = [r for r in stack.runs() if {"key": "dagster/backfill", "value": backfill_id} in r["tags"]]
    assert len(runs) == 1 and runs[0]["status"] == "SUCCESS"
    tags = {t["key"]: t["value"] for t in runs[0]["tags"]}
    assert (tags["dagster/asset_partition_range_start"], tags["dagster/asset_partition_range_end"]) == (days[0], days[-1])
    assert stack.scalar("SELECT count(*) FROM analytics.daily_metrics") == len(days)
    after_backfill = _daily_tables(stack)

    for day in SAMPLED_DAYS:  # the same days recomputed one run per day, as the schedule does
        single_id = _backfill(stack, [day])
        [single] = [r for r in stack.runs() if {"key": "dagster/backfill", "value": single_id} in r["tags"]]
        tags = {t["key"]: t["value"] for t in single["tags"]}
        assert (tags["dagster/asset_partition_range_start"], tags["dagster/asset_partition_range_end"]) == (day, day)
    assert _daily_tables(stack) == after_backfill
