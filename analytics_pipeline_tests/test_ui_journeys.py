"""The four user journeys of the UI, end to end: `analytics dev` (webserver, daemon, Postgres) and a real browser.

One stack serves the whole module. Files are dropped into its watched folder once (the `dropped` fixture); then
1. the files are loaded by the sensor's runs, bad rows and the bad file say why, and the touched days are refreshed;
2. a run launched from the asset graph in Chromium (one partition chosen in the dialog) succeeds;
3. the lineage read through GraphQL has every edge of the pipeline, and the asset graph renders;
4. a backfill of the daily metrics over a range of months, launched from the partition dialog, runs as one run.
Nothing is configured: the monthly partitions start in 1900, as a user who has set nothing sees them.
Screenshots land in test-artifacts/ui/; with UPDATE_SCREENSHOTS=1 the README ones are copied to docs/screenshots/.
"""

import base64
import csv
import importlib.util
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from playwright.sync_api import Browser, Page, expect

from analytics_pipeline import paths, urls
from analytics_pipeline.ingestion.files import describe
from analytics_pipeline_tests import browser as ui
from analytics_pipeline_tests.lineage import DAILY, EDGES, GROUPS, PARTITIONED
from analytics_pipeline_tests.stack import Stack, dev_stack, user_environment, wait_for

SENSOR_INTERVAL = 15  # upload_sensor's minimum_interval_seconds
# Two sensor intervals (a fresh file is seen on one tick and requested on the next, once it has not changed), plus
# what the daemon needs to evaluate the tick and create the run on a busy two-core machine.
RUN_WITHIN_SECONDS = 2 * SENSOR_INTERVAL + 10
RUN_TIMEOUT = 300

# Data dated relative to today, so the partitions, the "last 90 days" of the partition dialog and the chart's
# forecast line up whenever the test runs.
TODAY = datetime.now(UTC).date()
GOOD = {"name": "shop_orders.csv", "shape": "retail", "rows": 4000,
        "start": TODAY - timedelta(days=200), "end": TODAY - timedelta(days=2)}
SOME_BAD = {"name": "billing_export.csv", "shape": "billing", "rows": 1500,
            "start": TODAY - timedelta(days=60), "end": TODAY - timedelta(days=2)}
NO_COLUMNS = "inventory_snapshot.csv"
# (data line index, column, broken value) -> the reason the loader must give; file line = index + 2 (header).
BROKEN = {
    (10, "timestamp", "not a date"): "unparseable timestamp 'not a date'",
    (200, "cost", "abc"): "non-numeric amount 'abc'",
    (400, "token_count", "n/a"): "non-numeric quantity 'n/a'",
    (600, "timestamp", ""): "missing timestamp",
}


# ---------------------------------------------------------------------------------------------------------- stack


@pytest.fixture(scope="module")
def stack(data_dir) -> Iterator[Stack]:
    """`analytics dev` on a free port with its own data directory (and database) and nothing configured; every
    process it started is checked gone afterwards, whatever the tests did."""
    data = data_dir / "ui_stack"
    with user_environment(data) as env, dev_stack(data, env) as stack:
        wait_for(lambda: _code_loaded(stack), 180, "the code location", interval=1)
        yield stack


def _code_loaded(stack: Stack) -> bool:
    try:
        return len(stack.graphql("{ assetNodes { id } }")["assetNodes"]) > 0
    except (AssertionError, OSError):
        return False


@pytest.fixture(scope="module")
def browser(stack) -> Iterator[Browser]:
    with ui.chromium() as chromium:
        yield chromium


@pytest.fixture
def page(browser: Browser, stack: Stack, request) -> Iterator[Page]:
    page = ui.new_page(browser, stack.base_url)
    failed_before = request.session.testsfailed
    try:
        yield page
    finally:
        try:
            if request.session.testsfailed > failed_before:  # keep what the browser showed when the test failed
                name = "failed-" + ui.safe_name(request.node.name)
                ui.screenshot(page, name)
                (ui.ARTIFACTS / f"{name}.html").write_text(page.content())
        finally:
            page.context.close()


# ----------------------------------------------------------------------------------------------------- queries

RUNS = """
{ runsOrError { ... on Runs { results { runId jobName status creationTime tags { key value } } } } }
"""

RUN = """
query($id: ID!) {
  runOrError(runId: $id) {
    ... on Run {
      runId status jobName creationTime
      tags { key value }
      assetSelection { path }
      stepStats { stepKey status }
      assetMaterializations { assetKey { path } partition }
    }
  }
}
"""

BACKFILL = """
query($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    ... on PartitionBackfill {
      id status partitionNames assetSelection { path } runs { runId status tags { key value } }
    }
  }
}
"""

SENSOR_TICKS = """
{ repositoriesOrError { ... on RepositoryConnection { nodes {
    sensors { name sensorState { ticks(limit: 1) { timestamp status } } }
} } } }
"""

CHECK_EXECUTIONS = """
query($asset: AssetKeyInput!, $check: String!) {
  assetCheckExecutions(assetKey: $asset, checkName: $check, limit: 20) {
    runId status evaluation { success severity description }
  }
}
"""

LINEAGE = "{ assetNodes { assetKey { path } groupName description isPartitioned dependencyKeys { path } } }"

TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}


def _runs(stack: Stack) -> list[dict]:
    runs = stack.graphql(RUNS)["runsOrError"]["results"]
    for run in runs:
        run["tags"] = {t["key"]: t["value"] for t in run["tags"]}
    return runs


def _run(stack: Stack, run_id: str) -> dict:
    run = stack.graphql(RUN, {"id": run_id})["runOrError"]
    run["tags"] = {t["key"]: t["value"] for t in run["tags"]}
    return run


def _wait_for_run(stack: Stack, run_id: str) -> dict:
    return wait_for(lambda: (r := _run(stack, run_id))["status"] in TERMINAL and r, RUN_TIMEOUT, f"run {run_id}")


def _rows(stack: Stack, sql: str, **params) -> list[tuple]:
    engine = sa.create_engine(urls.psycopg2_url(stack.db_url))
    try:
        with engine.begin() as conn:
            result = conn.execute(sa.text(sql), params)
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        engine.dispose()


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


# -------------------------------------------------------------------------------------------------- the drop


def _generator():
    """benchmarks/generate_transactions.py, the project's generator of realistic transaction files."""
    path = paths.PROJECT_ROOT / "benchmarks" / "generate_transactions.py"
    spec = importlib.util.spec_from_file_location("generate_transactions", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _write_files(folder: Path) -> dict[str, Path]:
    generate = _generator().generate
    good = folder / GOOD["name"]
    generate(GOOD["shape"], GOOD["rows"], good, GOOD["start"], GOOD["end"], seed=11)
    some_bad = folder / SOME_BAD["name"]
    generate(SOME_BAD["shape"], SOME_BAD["rows"], some_bad, SOME_BAD["start"], SOME_BAD["end"], seed=11)
    with some_bad.open(newline="") as handle:
        header, *lines = list(csv.reader(handle))
    for (index, column, value) in BROKEN:
        lines[index][header.index(column)] = value
    with some_bad.open("w", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows([header, *lines])
    no_columns = folder / NO_COLUMNS
    no_columns.write_text("warehouse,shelf,sku_count\nA,1,10\nB,2,12\n")
    return {"good": good, "some_bad": some_bad, "no_columns": no_columns}


@dataclass
class Drop:
    dropped_at: float
    files: dict[str, Path]  # role -> the file's copy kept outside the watched folder
    runs: dict[str, dict] = field(default_factory=dict)  # role -> its ingest run


@pytest.fixture(scope="module")
def dropped(stack: Stack, data_dir: Path) -> Drop:
    """Drop three files into the watched folder at once, as a user would; wait for their runs and the refresh."""
    staging = data_dir / "ui_files"
    staging.mkdir()
    files = _write_files(staging)
    # The daemon must be ticking before the clock starts.
    wait_for(lambda: _sensor_ticked(stack, "upload_sensor"), 120, "the first upload_sensor tick", interval=1)
    uploads = stack.data / "uploads"
    dropped_at = time.time()
    for path in files.values():  # copied (a fresh mtime: the sensor waits for it to settle), appearing whole
        shutil.copyfile(path, staging / f".{path.name}.tmp")
        os.replace(staging / f".{path.name}.tmp", uploads / path.name)
    drop = Drop(dropped_at, files)

    keys = {role: describe(path).key for role, path in files.items()}

    def ingested():
        # Files dropped together may share a run: the sensor records each file's batch, the batch tags its run.
        batches = dict(_rows(stack, "SELECT file_key, batch FROM analytics.upload_requests"))
        runs = {r["tags"].get("upload/batch"): r for r in _runs(stack) if r["jobName"] == "ingest_upload_job"}
        drop.runs = {role: runs[batches[key]] for role, key in keys.items() if batches.get(key) in runs}
        return len(drop.runs) == len(files) and all(r["status"] in TERMINAL for r in drop.runs.values())

    wait_for(ingested, RUN_TIMEOUT, "an ingest run per dropped file")
    if all(r["status"] == "SUCCESS" for r in drop.runs.values()):  # else journey 1 reports the failed run
        wait_for(lambda: _refreshed(stack), RUN_TIMEOUT, "the refresh of the touched days")
    return drop


def _sensor_ticked(stack: Stack, name: str) -> bool:
    for repository in stack.graphql(SENSOR_TICKS)["repositoriesOrError"]["nodes"]:
        for sensor in repository["sensors"]:
            if sensor["name"] == name:
                return bool(sensor["sensorState"]["ticks"])
    return False


def _loaded_span(stack: Stack) -> tuple[date, date] | None:
    [(first, last)] = _rows(
        stack, "SELECT min(first_day), max(last_day) FROM analytics.ingested_files WHERE status = 'loaded'"
    )
    return (first, last) if first else None


def _refresh_runs(stack: Stack) -> list[dict]:
    return [
        r for r in _runs(stack)
        if r["jobName"] == "daily_refresh_job" and r["tags"].get("dagster/sensor_name") == "touched_days_sensor"
    ]


def _refreshed(stack: Stack) -> bool:
    """True once finished refresh runs cover every loaded day and none is pending; stops at a failed one."""
    span = _loaded_span(stack)
    runs = _refresh_runs(stack)
    if span is None or not runs or any(r["status"] not in TERMINAL for r in runs):
        return False
    if any(r["status"] != "SUCCESS" for r in runs):
        return True  # the test reports it
    covered = {day for r in runs for day in _days(*_run_range(r))}
    return set(_days(*span)) <= covered


def _run_range(run: dict) -> tuple[date, date]:
    """The days of the months a refresh run covered."""
    first, last = (_month(run["tags"][f"dagster/asset_partition_range_{end}"]) for end in ("start", "end"))
    return first[0], last[-1]


def _month(key: str) -> list[date]:
    """The days of the month partition `key` (YYYY-MM)."""
    first = date.fromisoformat(f"{key}-01")
    return _days(first, (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1))


def _revenue(path: Path) -> Decimal:
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if "cost" in rows[0]:
        return sum((Decimal(r["cost"]) for r in rows), Decimal(0))
    return sum((Decimal(r["Quantity"]) * Decimal(r["UnitPrice"]) for r in rows), Decimal(0))


# ------------------------------------------------------------------------------------------------ journey 1


def test_dropped_files_are_loaded_rejected_and_refreshed_without_a_click(stack: Stack, dropped: Drop):
    # Each file has its run within two sensor intervals, and each run succeeded (a quarantined file is an outcome,
    # not a crash).
    for role, run in dropped.runs.items():
        waited = run["creationTime"] - dropped.dropped_at
        print(f"{role}: its run was created {waited:.1f}s after the drop")
        assert waited <= RUN_WITHIN_SECONDS, f"{role}: run created {waited:.1f}s after the drop"
        assert run["status"] == "SUCCESS", (role, run)
    # Dropped together, they share runs: each file is in exactly one of them.
    runs = {r["runId"]: r for r in dropped.runs.values()}
    assert sum(int(r["tags"]["upload/files"]) for r in runs.values()) == 3
    assert not list((stack.data / "uploads").iterdir())  # nothing left behind in the watched folder

    files = {
        name: dict(zip(("key", "status", "rows_read", "rows_loaded", "rows_rejected", "first_day", "last_day",
                        "reason"), rest, strict=True))
        for name, *rest in _rows(
            stack,
            "SELECT file_name, file_key, status, rows_read, rows_loaded, rows_rejected, first_day, last_day, reason "
            "FROM analytics.ingested_files",
        )
    }
    assert set(files) == {p.name for p in dropped.files.values()}

    # The good file: every row reaches transactions, with the file's revenue to the cent.
    good = files[GOOD["name"]]
    assert (good["status"], good["rows_read"], good["rows_loaded"], good["rows_rejected"]) == (
        "loaded", GOOD["rows"], GOOD["rows"], 0)
    [(count, revenue, first, last)] = _rows(
        stack, "SELECT count(*), sum(amount), min(day), max(day) FROM analytics.transactions WHERE source = :key",
        key=good["key"])
    assert count == GOOD["rows"] and revenue == _revenue(dropped.files["good"])
    assert (first, last) == (good["first_day"], good["last_day"])
    assert GOOD["start"] <= first and last <= GOOD["end"]

    # The file with bad rows: the rest loads; each bad line is in rejected_rows with its line number and reason.
    some_bad = files[SOME_BAD["name"]]
    assert (some_bad["status"], some_bad["rows_loaded"], some_bad["rows_rejected"]) == (
        "loaded", SOME_BAD["rows"] - len(BROKEN), len(BROKEN))
    rejected = _rows(stack, "SELECT line_number, reason FROM analytics.rejected_rows WHERE file_key = :key "
                            "ORDER BY line_number", key=some_bad["key"])
    assert rejected == [(index + 2, reason) for (index, _, _), reason in sorted(BROKEN.items())]
    assert _rows(stack, "SELECT count(*) FROM analytics.transactions WHERE source = :key", key=some_bad["key"]) == [
        (SOME_BAD["rows"] - len(BROKEN),)]

    # The file with no usable columns: quarantined with a reason that names what it has and what it lacks; the
    # same reason is the failed `file_accepted` check of its run, readable through GraphQL.
    bad_file = files[NO_COLUMNS]
    assert bad_file["status"] == "quarantined" and bad_file["rows_loaded"] is None
    reason = bad_file["reason"]
    assert "cannot find required column" in reason and all(c in reason for c in ("warehouse", "shelf", "sku_count"))
    quarantined = stack.data / "quarantine" / bad_file["key"]
    assert (quarantined / NO_COLUMNS).read_bytes() == dropped.files["no_columns"].read_bytes()
    assert reason in (quarantined / f"{NO_COLUMNS}.reason.txt").read_text()
    executions = stack.graphql(CHECK_EXECUTIONS, {"asset": {"path": ["raw_uploads"]}, "check": "file_accepted"})
    by_run = {e["runId"]: e for e in executions["assetCheckExecutions"]}
    failed = by_run[dropped.runs["no_columns"]["runId"]]
    assert failed["status"] == "FAILED" and failed["evaluation"]["success"] is False
    # A run of one file says the reason as it is; a batch names the file before its reason.
    description = failed["evaluation"]["description"]
    one_of_several = rf"1 of [23] files: {re.escape(NO_COLUMNS)}: {re.escape(reason)}"
    assert description == reason or re.fullmatch(one_of_several, description)
    for role in ("good", "some_bad"):
        if dropped.runs[role]["runId"] != dropped.runs["no_columns"]["runId"]:
            assert by_run[dropped.runs[role]["runId"]]["status"] == "SUCCEEDED"

    # The touched days were refreshed by the daemon: refresh runs over the months holding the loaded span succeeded
    # and together cover it; the daily metrics hold every day of the span and reconcile with the transactions.
    span = (min(good["first_day"], some_bad["first_day"]), max(good["last_day"], some_bad["last_day"]))
    months = (_month(f"{span[0]:%Y-%m}")[0], _month(f"{span[1]:%Y-%m}")[-1])
    refreshes = _refresh_runs(stack)
    assert refreshes and all(r["status"] == "SUCCESS" for r in refreshes), refreshes
    for run in refreshes:
        first, last = _run_range(run)
        assert months[0] <= first <= last <= months[1], (run["tags"], span)
    [(days, metric_revenue, first, last)] = _rows(
        stack, "SELECT count(*), sum(revenue), min(day), max(day) FROM analytics.daily_metrics")
    assert (days, first, last) == (len(_days(*span)), *span)
    [(transaction_revenue,)] = _rows(stack, "SELECT sum(amount) FROM analytics.transactions")
    assert abs(metric_revenue - transaction_revenue) <= Decimal("0.005") * days
    for table in DAILY[1:]:
        assert _rows(stack, f"SELECT min(day), max(day) FROM analytics.{table}") == [span]


# ------------------------------------------------------------------------------------------------ the browser


def _tree_item(page: Page, name: str):
    """An asset in the asset graph's left-hand tree (a group may have the same name as an asset)."""
    return (
        page.get_by_role("button")
        .filter(has=page.get_by_title(name, exact=True))
        .filter(has_not=page.get_by_role("img", name="asset_group"))
    )


def _open_group(page: Page, group: str) -> None:
    row = page.get_by_role("button").filter(has=page.get_by_title(group, exact=True)).filter(
        has=page.get_by_role("img", name="asset_group"))
    row.locator("xpath=ancestor::div[3]").get_by_role("img", name="arrow_drop_down").click()


def _select_assets(page: Page, assets: dict[str, str]) -> None:
    """Select assets (name -> group) in the asset graph: click the first, Cmd/Meta-click the others."""
    page.goto("/asset-groups")
    for group in dict.fromkeys(assets.values()):
        _open_group(page, group)
    for i, name in enumerate(assets):
        _tree_item(page, name).click(modifiers=["Meta"] if i else None)
    page.get_by_role("button", name=f"Materialize selected ({len(assets)})").wait_for()


def _open_partition_dialog(page: Page, count: int):
    """Materialize the selection; the partition dialog opens (after confirming, if the UI asks)."""
    page.get_by_role("button", name=f"Materialize selected ({count})").click()
    launch = page.get_by_role("dialog").filter(has_text=f"Launch runs to materialize {count} assets")
    confirm = page.get_by_role("dialog").filter(has_text="Are you sure?")
    launch.or_(confirm).first.wait_for()
    if confirm.is_visible():  # the database and API sources are not configured here, so never materialised
        confirm.get_by_role("button", name="Confirm").click()
    launch.wait_for()
    return launch


def _choose_partitions(dialog, selection: str, expected: int) -> None:
    box = dialog.get_by_placeholder(re.compile(r"partitions|^ex: ", re.I))  # "ex: 1900-01, 1900-02, [1900-03...]"
    box.fill(selection)
    box.page.keyboard.press("Enter")  # the input keeps focus; its placeholder changes with the selection
    dialog.get_by_text(re.compile(rf"^{expected} partitions?$")).wait_for()


def _toast_link(page: Page, prefix: str) -> str:
    link = page.locator(f"a[href^='{prefix}']").filter(has_text="View").first
    link.wait_for()
    return link.get_attribute("href")


# ------------------------------------------------------------------------------------------------ journey 2

STEPS = {"daily_metrics": "daily_tables"}  # the four daily tables are one step; every other asset is a step of its own
RUN_ASSETS = {  # asset -> its group in the graph's tree
    "daily_metrics": "metrics",
    "metric_anomalies": "forecasting",
    "revenue_forecast": "forecasting",
    "insights": "insights",
    "revenue_chart": "reporting",
}


def test_a_run_launched_from_the_asset_graph_succeeds(stack: Stack, dropped: Drop, page: Page):
    day = SOME_BAD["end"]
    month = f"{day:%Y-%m}"
    _rows(stack, "DELETE FROM analytics.daily_metrics WHERE day = :day", day=day)  # the run must write it again

    _select_assets(page, RUN_ASSETS)
    dialog = _open_partition_dialog(page, len(RUN_ASSETS))
    _choose_partitions(dialog, month, 1)
    dialog.get_by_role("button", name="Launch 1 run").click()
    run_id = _toast_link(page, "/runs/").removeprefix("/runs/")

    run = _wait_for_run(stack, run_id)
    assert run["status"] == "SUCCESS", run
    assert run["tags"]["dagster/partition"] == month and run["tags"]["dagster/from_ui"] == "true"
    assert {k["path"][0] for k in run["assetSelection"]} == set(RUN_ASSETS)
    step_keys = {STEPS.get(name, name) for name in RUN_ASSETS}
    assert {s["stepKey"]: s["status"] for s in run["stepStats"] if s["stepKey"] in step_keys} == {
        step: "SUCCESS" for step in step_keys}
    materialized = {(m["assetKey"]["path"][0], m["partition"]) for m in run["assetMaterializations"]}
    assert materialized == {("daily_metrics", month)} | {(n, None) for n in list(RUN_ASSETS)[1:]}
    [(revenue,)] = _rows(stack, "SELECT revenue FROM analytics.daily_metrics WHERE day = :day", day=day)
    [(expected,)] = _rows(stack, "SELECT round(sum(amount), 2) FROM analytics.transactions WHERE day = :day", day=day)
    assert revenue == expected

    # The run page as the user sees it once the run is over.
    page.goto(f"/runs/{run_id}")
    page.get_by_text("Success", exact=True).first.wait_for()
    steps = sum(s["status"] == "SUCCESS" for s in run["stepStats"])
    page.get_by_text(f"Succeeded ({steps})", exact=True).wait_for()  # the step list has read the run's events
    page.get_by_text("RUN_SUCCESS", exact=True).first.wait_for()  # and the log shows them
    ui.screenshot(page, "run", readme=True)

    # The chart this run drew, rendered inline from the asset's metadata: the very PNG stored in Postgres.
    page.goto("/assets/revenue_chart")
    row = page.get_by_role("row").filter(has=page.get_by_text("chart", exact=True))
    row.get_by_text("[Show Markdown]").click()
    image = page.get_by_role("dialog").locator("img[src^='data:image/png;base64,']")
    image.wait_for()
    page.wait_for_function("img => img.complete && img.naturalWidth > 600", arg=image.element_handle())
    shown = base64.b64decode(image.get_attribute("src").split(",", 1)[1])
    [(stored,)] = _rows(stack, "SELECT png FROM analytics.charts WHERE chart = 'revenue_overview'")
    assert shown == bytes(stored)
    ui.screenshot(page, "revenue-chart", readme=True)


# ------------------------------------------------------------------------------------------------ journey 3

def test_the_lineage_has_every_edge_and_the_asset_graph_shows_it(stack: Stack, dropped: Drop, page: Page):
    nodes = {n["assetKey"]["path"][0]: n for n in stack.graphql(LINEAGE)["assetNodes"]}
    edges = {(dep["path"][0], name) for name, node in nodes.items() for dep in node["dependencyKeys"]}
    assert edges == EDGES
    assert set(nodes) == {name for edge in EDGES for name in edge}
    assert all(node["description"] for node in nodes.values())  # every asset explains itself in the UI
    assert {name for name, node in nodes.items() if node["isPartitioned"]} == PARTITIONED
    assert {name: node["groupName"] for name, node in nodes.items()} == {
        name: group for group, names in GROUPS.items() for name in names
    }
    # The chain from a dropped file to the chart is unbroken.
    reachable, frontier = set(), {"raw_uploads"}
    while frontier:
        reachable |= frontier
        frontier = {down for up, down in EDGES if up in frontier} - reachable
    assert {"daily_company_metrics", "insights", "revenue_chart"} <= reachable

    # The global asset graph, every group expanded, top to bottom (the layout that fits one screen).
    page.goto("/asset-groups")
    search = page.locator(".CodeMirror").first
    search.wait_for()
    below = search.bounding_box()
    page.mouse.click(below["x"] + 10, below["y"] + below["height"] + 40, button="right")  # the graph's background
    page.get_by_role("menuitem", name="Change graph to vertical orientation").click()
    page.mouse.click(below["x"] + 10, below["y"] + below["height"] + 40, button="right")
    page.get_by_role("menuitem", name="Expand all groups").click()
    with page.expect_response(lambda r: "AssetGraphLiveQuery" in (r.request.post_data or "")):
        page.reload()  # fits the whole graph into the view; then the assets' live state arrives
    graph = page.locator("foreignObject")
    for name in ("raw_uploads", "transactions", "daily_metrics", "revenue_forecast", "metric_anomalies", "insights",
                 "revenue_chart"):
        graph.filter(has=page.get_by_text(name, exact=True)).first.wait_for()
    # Drawn as materialised (green) once the live state is in.
    graph.filter(has=page.get_by_text("revenue_chart", exact=True)).locator("[style*='background-green']").wait_for()
    ui.screenshot(page, "asset-graph", readme=True)


# ------------------------------------------------------------------------------------------------ journey 4

# The month of the billing file's last day and the one before it.
BACKFILL_MONTHS = (f"{SOME_BAD['end'].replace(day=1) - timedelta(days=1):%Y-%m}", f"{SOME_BAD['end']:%Y-%m}")


def test_a_backfill_from_the_partition_dialog_is_one_run_over_the_range(stack: Stack, dropped: Drop, page: Page):
    in_months = _month(BACKFILL_MONTHS[0]) + _month(BACKFILL_MONTHS[1])
    first, last = in_months[0], in_months[-1]
    days = [d for d in in_months if d <= SOME_BAD["end"]]  # the data ends there: no row is invented after it
    for table in DAILY:  # emptied, so what the tables hold afterwards is what the backfill wrote
        _rows(stack, f"DELETE FROM analytics.{table} WHERE day BETWEEN :first AND :last", first=first, last=last)

    _select_assets(page, {name: "metrics" for name in DAILY})
    dialog = _open_partition_dialog(page, len(DAILY))
    _choose_partitions(dialog, f"[{BACKFILL_MONTHS[0]}...{BACKFILL_MONTHS[1]}]", len(BACKFILL_MONTHS))
    dialog.get_by_role("button", name="Launch backfill").click()
    backfill_id = _toast_link(page, "/runs/b/").removeprefix("/runs/b/")

    def finished():
        backfill = stack.graphql(BACKFILL, {"id": backfill_id})["partitionBackfillOrError"]
        return backfill["status"] in ("COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED") \
            and backfill

    backfill = wait_for(finished, RUN_TIMEOUT, f"backfill {backfill_id}")
    assert backfill["status"] in ("COMPLETED", "COMPLETED_SUCCESS"), backfill
    assert sorted(backfill["partitionNames"]) == list(BACKFILL_MONTHS)
    assert {k["path"][0] for k in backfill["assetSelection"]} == set(DAILY)
    [run] = backfill["runs"]  # single-run backfill policy: the whole range in one run
    tags = {t["key"]: t["value"] for t in run["tags"]}
    assert run["status"] == "SUCCESS"
    assert (tags["dagster/asset_partition_range_start"], tags["dagster/asset_partition_range_end"]) == BACKFILL_MONTHS
    assert [r for r in _runs(stack) if r["tags"].get("dagster/backfill") == backfill_id][0]["runId"] == run["runId"]

    per_day = dict(_rows(stack, "SELECT day, round(sum(amount), 2) FROM analytics.transactions "
                                "WHERE day BETWEEN :first AND :last GROUP BY day", first=first, last=last))
    assert dict(_rows(stack, "SELECT day, revenue FROM analytics.daily_metrics WHERE day BETWEEN :first AND :last",
                      first=first, last=last)) == {d: per_day.get(d, Decimal("0.00")) for d in days}
    for table in DAILY[1:]:
        held = _rows(stack, f"SELECT DISTINCT day FROM analytics.{table} WHERE day BETWEEN :first AND :last "
                            "ORDER BY day", first=first, last=last)
        assert [d for (d,) in held] == [d for d in days if d in per_day]

    page.goto(f"/runs/b/{backfill_id}")
    page.get_by_text("Succeeded", exact=True).first.wait_for()
    expect(page.get_by_text("100% completed", exact=True)).to_have_count(len(DAILY), timeout=ui.TIMEOUT_MS)
    ui.screenshot(page, "backfill", readme=True, clip={"x": 0, "y": 0, "width": ui.VIEWPORT["width"], "height": 520})
