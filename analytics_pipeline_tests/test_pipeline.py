"""Every asset materialises against Postgres and its table holds what the asset promises.

The three bundled samples are loaded once for this module (the sensor's per-file runs, then one single-run
refresh over their whole span), and each test checks one table against an independent pandas reading.
"""

import os

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from analytics_pipeline.analysis.forecast import HORIZON_DAYS
from analytics_pipeline_tests import expected
from analytics_pipeline_tests.conftest import (
    SAMPLE_FILES,
    drop_samples,
    emptied_warehouse,
    load_uploads,
    materializations,
    refresh_days,
    resources,
)
from analytics_pipeline_tests.stack import run_cli


@pytest.fixture(scope="module")
def loaded(warehouse_url, tmp_path_factory):
    from analytics_pipeline.resources import UploadFolders

    engine = emptied_warehouse(warehouse_url)
    root = tmp_path_factory.mktemp("pipeline")
    folders = UploadFolders(
        uploads=str(root / "uploads"), archive=str(root / "archive"), quarantine=str(root / "quarantine")
    )
    folders.uploads_path.mkdir()
    with dg.DagsterInstance.ephemeral() as instance:
        keys = load_uploads(instance, folders, drop_samples(folders))
        truth = expected.transactions(SAMPLE_FILES)
        start, end = str(truth["day"].min()), str(truth["day"].max())
        result = refresh_days(instance, start, end)
        yield {
            "engine": engine, "keys": keys, "truth": truth, "folders": folders, "result": result, "instance": instance,
        }


def _frame(engine: sa.Engine, sql: str) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql(sa.text(sql), conn)


def test_transactions_match_an_independent_reading(loaded):
    truth = loaded["truth"]
    stored = _frame(
        loaded["engine"], "SELECT count(*) AS n, sum(amount)::float8 AS revenue FROM analytics.transactions"
    )
    assert stored["n"][0] == len(truth)
    assert stored["revenue"][0] == pytest.approx(truth["amount"].sum(), abs=0.01)


def test_files_are_archived_and_registered(loaded):
    folders = loaded["folders"]
    assert list(folders.uploads_path.iterdir()) == []
    archived = sorted(p.name for p in folders.archive_path.rglob("*.csv"))
    assert archived == sorted(p.name for p in SAMPLE_FILES)
    files = _frame(loaded["engine"], "SELECT * FROM analytics.ingested_files ORDER BY file_name")
    assert list(files["status"]) == ["loaded"] * 3
    assert (files["rows_read"] == files["rows_loaded"] + files["rows_rejected"] + files["duplicate_rows"]).all()
    assert files["rows_loaded"].sum() == len(loaded["truth"])


def test_bad_rows_are_rejected_with_reasons(loaded):
    rejected = _frame(loaded["engine"], "SELECT reason, raw_line, line_number FROM analytics.rejected_rows")
    # The sample README documents 31 + 49 + 50 bad rows; each has a line number and a reason a person can read.
    assert len(rejected) == 130
    assert rejected["reason"].str.match(
        r"^(unparseable timestamp|missing timestamp|missing order id|non-numeric|missing quantity|malformed)"
    ).all()
    assert (rejected["line_number"] >= 2).all()


def test_duplicate_lines_count_once(loaded):
    files = _frame(loaded["engine"], "SELECT sum(duplicate_rows) AS d FROM analytics.ingested_files")
    assert files["d"][0] == 46 + 74 + 75


def test_daily_metrics_match_pandas(loaded):
    truth = expected.daily(loaded["truth"]).set_index("day")
    stored = _frame(loaded["engine"], "SELECT * FROM analytics.daily_metrics ORDER BY day").set_index("day")
    # Inside the span every day has a row; quiet days (closures) are zeros, not gaps.
    span = pd.date_range(truth.index.min(), truth.index.max(), freq="D").date
    assert list(stored.index) == list(span)
    joined = stored.join(truth.add_suffix("_expected")).fillna({"revenue_expected": 0, "orders_expected": 0})
    assert (joined["revenue"].astype(float) - joined["revenue_expected"]).abs().max() < 0.011
    assert (joined["orders"] == joined["orders_expected"]).all()


@pytest.mark.parametrize(("table", "dimension", "column"), [("daily_region_metrics", "region", "region")])
def test_dimension_metrics_match_pandas(loaded, table, dimension, column):
    truth = expected.daily(loaded["truth"], by=dimension)
    stored = _frame(loaded["engine"], f"SELECT day, {column}, revenue::float8, orders FROM analytics.{table}")
    merged = stored.merge(truth, left_on=["day", column], right_on=["day", dimension], suffixes=("", "_expected"))
    assert len(merged) == len(truth) == len(stored)
    assert (merged["revenue"] - merged["revenue_expected"]).abs().max() < 0.011
    assert (merged["orders"] == merged["orders_expected"]).all()


def test_product_and_company_metrics_add_up_to_the_total(loaded):
    totals = _frame(
        loaded["engine"],
        """
        SELECT (SELECT sum(revenue) FROM analytics.daily_metrics)::float8 AS overall,
               (SELECT sum(revenue) FROM analytics.daily_product_metrics)::float8 AS by_product,
               (SELECT sum(revenue) FROM analytics.daily_company_metrics)::float8 AS by_company,
               (SELECT count(DISTINCT company) FROM analytics.daily_company_metrics) AS companies
        """,
    )
    assert totals["by_product"][0] == pytest.approx(totals["overall"][0], abs=1.0)
    assert totals["by_company"][0] == pytest.approx(totals["overall"][0], abs=1.0)
    assert totals["companies"][0] == 41  # 40 billing companies + 'unknown' for retail lines


def test_forecast_covers_the_next_30_days_per_segment(loaded):
    forecast = _frame(loaded["engine"], "SELECT * FROM analytics.revenue_forecast")
    last_day = loaded["truth"]["day"].max()
    segments = forecast.groupby("segment")
    assert set(forecast["segment"]) >= {"total", "United Kingdom", "us-east"}
    assert (segments.size() == HORIZON_DAYS).all()
    total = forecast[forecast["segment"] == "total"].sort_values("day")
    assert total["day"].iloc[0] == last_day + pd.Timedelta(days=1)
    assert (total["lower_bound"] <= total["predicted"]).all() and (total["predicted"] <= total["upper_bound"]).all()
    backtest = _frame(loaded["engine"], "SELECT * FROM analytics.forecast_backtest WHERE segment = 'total'")
    assert backtest["mase"][0] < 1, "the model should beat the weekly seasonal-naive baseline on the sample"


def test_planted_anomalies_are_found(loaded):
    anomalies = _frame(
        loaded["engine"],
        "SELECT day, direction FROM analytics.metric_anomalies WHERE segment = 'total' AND metric = 'revenue'",
    )
    found = {(str(row.day), row.direction) for row in anomalies.itertuples()}
    assert ("2025-11-28", "spike") in found  # Black Friday in the retail sample


def test_insights_are_written_offline_and_grounded(loaded):
    insights = _frame(loaded["engine"], "SELECT writer, narrative, ungrounded FROM analytics.insights")
    assert len(insights) == 1
    assert insights["writer"][0] == "offline"
    assert len(insights["narrative"][0]) > 100
    assert list(insights["ungrounded"][0]) == []


def test_charts_are_pngs_in_postgres_and_on_disk_overall_and_per_region(loaded):
    charts = _frame(loaded["engine"], "SELECT chart, path, png FROM analytics.charts ORDER BY chart")
    regions = loaded["truth"]["region"].nunique()
    assert len(charts) == 1 + regions
    assert {"revenue_overview", "revenue_united_kingdom", "revenue_us_east"} <= set(charts["chart"])
    for row in charts.itertuples():
        png = bytes(row.png)
        assert png.startswith(b"\x89PNG")
        with open(row.path, "rb") as handle:
            assert handle.read() == png
    metadata = loaded["result"].asset_materializations_for_node("revenue_chart")[0].metadata
    assert metadata["chart"].value.startswith("![daily revenue with forecast](data:image/png;base64,")
    assert metadata["biggest_regions"].value.count("data:image/png;base64,") == 3


def test_daily_checks_ran_and_passed(loaded):
    from analytics_pipeline.assets.metrics import RECONCILED_CHECK, UNIQUE_CHECK

    evaluations = [
        e for e in loaded["result"].get_asset_check_evaluations() if e.check_name in (UNIQUE_CHECK, RECONCILED_CHECK)
    ]
    assert {(e.asset_key.path[0], e.check_name) for e in evaluations} == {
        (table, check)
        for table in ("daily_metrics", "daily_region_metrics", "daily_product_metrics", "daily_company_metrics")
        for check in (UNIQUE_CHECK, RECONCILED_CHECK)
    }
    assert all(e.passed for e in evaluations)
    totals = [e for e in evaluations if e.asset_key.path[0] == "daily_metrics" and e.check_name == RECONCILED_CHECK][0]
    assert totals.metadata["transactions"].value == pytest.approx(loaded["truth"]["amount"].sum(), abs=0.01)


def test_a_run_of_daily_checks_alone_checks_the_tables_as_they_are(loaded):
    """The four tables are one subsettable step: a run that selects only a table's check (the UI's "Execute" on a
    check, a run without partitions) checks the rows already there, writes nothing and reports no materialisation."""
    from analytics_pipeline.assets.metrics import RECONCILED_CHECK, daily_tables
    from analytics_pipeline.definitions import defs

    check = dg.AssetCheckKey(dg.AssetKey("daily_product_metrics"), RECONCILED_CHECK)
    job = dg.define_asset_job("product_revenue_check", selection=dg.AssetSelection.checks(check))
    checks_only = dg.Definitions(assets=[daily_tables], jobs=[job], resources=defs.resources)
    held = sa.text("SELECT count(*), sum(revenue) FROM analytics.daily_product_metrics")
    with loaded["engine"].connect() as conn:
        before = conn.execute(held).one()
    result = checks_only.resolve_job_def("product_revenue_check").execute_in_process(instance=loaded["instance"])
    [evaluation] = result.get_asset_check_evaluations()
    assert (evaluation.asset_key, evaluation.check_name, evaluation.passed) == (check.asset_key, check.name, True)
    assert evaluation.metadata["transactions"].value == pytest.approx(loaded["truth"]["amount"].sum(), abs=0.01)
    assert result.get_asset_materialization_events() == []
    with loaded["engine"].connect() as conn:
        assert conn.execute(held).one() == before


def test_daily_row_counts_are_per_month_only_when_a_run_covers_one_month(loaded):
    """A range run's totals are copied onto every partition it covers: they are named as the range's, not a month's."""
    truth, engine = loaded["truth"], loaded["engine"]
    start, end = truth["day"].min(), truth["day"].max()
    first = start.replace(day=1)  # the range is whole months: from the first day of the first one
    last = (pd.Timestamp(end) + pd.offsets.MonthEnd(0)).date()  # to the last day of the last one
    with engine.connect() as conn:
        held = conn.execute(sa.text("SELECT count(*) FROM analytics.daily_region_metrics")).scalar_one()
        revenue = float(conn.execute(sa.text("SELECT sum(revenue) FROM analytics.daily_region_metrics")).scalar_one())
    ranged = materializations(loaded["result"], "daily_region_metrics")
    months = pd.period_range(start, end, freq="M").strftime("%Y-%m").tolist()
    assert sorted(m.partition for m in ranged) == months  # one materialisation per month, all the same metadata
    for materialization in ranged:
        metadata = {k: v.value for k, v in materialization.metadata.items()}
        assert "dagster/row_count" not in metadata
        assert (metadata["first_day"], metadata["last_day"]) == (str(first), str(last))
        assert (metadata["days_in_range"], metadata["rows_in_range"]) == ((last - first).days + 1, held)
        assert metadata["revenue_in_range"] == pytest.approx(revenue, abs=0.01)

    day = str(end)
    with engine.connect() as conn:
        in_month = conn.execute(
            sa.text("SELECT count(*) FROM analytics.daily_region_metrics WHERE date_trunc('month', day) = :first"),
            {"first": end.replace(day=1)},
        ).scalar_one()
    single = refresh_days(loaded["instance"], day, day, selection=["daily_region_metrics"])
    # The schedule's run names one partition, not a range: the same month, the same rows.
    from analytics_pipeline.definitions import defs

    scheduled = defs.resolve_job_def("daily_refresh_job").execute_in_process(
        instance=loaded["instance"], partition_key=months[-1], asset_selection=[dg.AssetKey("daily_region_metrics")]
    )
    for run in (single, scheduled):
        [materialization] = materializations(run, "daily_region_metrics")
        assert materialization.partition == months[-1]
        assert materialization.metadata["first_day"].value == str(end.replace(day=1))
        assert materialization.metadata["dagster/row_count"].value == materialization.metadata["rows_in_range"].value
        assert materialization.metadata["dagster/row_count"].value == in_month > 0


FINDINGS = "SELECT * FROM analytics.findings ORDER BY kind, day, segment, metric, model"


def test_findings_keep_every_anomaly_the_insight_and_each_forecast_once(loaded):
    from analytics_pipeline.analysis.embedding import OFFLINE_MODEL
    from analytics_pipeline.assets.findings import findings_index

    engine = loaded["engine"]
    [materialization] = materializations(loaded["result"], "findings_index")  # part of every daily refresh
    found = _frame(engine, FINDINGS)
    assert set(found["model"]) == {OFFLINE_MODEL}  # no key: the offline embedding only
    anomalies = _frame(engine, "SELECT day, segment, metric FROM analytics.metric_anomalies")
    assert sorted(found.query("kind == 'anomaly'")[["day", "segment", "metric"]].itertuples(index=False)) == sorted(
        anomalies.itertuples(index=False))
    assert list(found.query("kind == 'insight'")["day"].astype(str)) == [str(loaded["truth"]["day"].max())]
    forecasts = found.query("kind == 'forecast'")
    assert set(forecasts["segment"]) == set(_frame(engine, "SELECT segment FROM analytics.forecast_totals")["segment"])
    assert materialization.metadata["findings"].value == len(found)

    # Findings are keyed by what they are about: materialising again over the same data changes no row, not even
    # when it was indexed.
    result = dg.materialize([findings_index], instance=loaded["instance"], resources=resources(loaded["folders"]))
    assert result.asset_materializations_for_node("findings_index")[0].metadata["embedded_by_this_run"].value == (
        f"{OFFLINE_MODEL}: 0")
    assert _frame(engine, FINDINGS).equals(found)


def test_a_question_about_a_planted_anomaly_returns_it_first(loaded):
    """`analytics ask`, as a user types it, on this module's warehouse (no key): the retail sample's card-payment
    outage (2026-03-17) comes first."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "DAGSTER_HOME")}
    asked = run_cli(["ask", "why did revenue drop in March?"], env, timeout=300)
    assert asked.returncode == 0, asked.stdout[-3000:] + asked.stderr[-3000:]
    assert "Dates asked about: March (any year); their findings come first" in asked.stdout
    heading, text, *_ = asked.stdout.split("\n1. ", 1)[1].splitlines()
    assert heading.startswith("2026-03-17 anomaly: total, revenue")
    assert text.strip().startswith("Revenue drop on Tuesday 17 March 2026, overall: revenue")
    assert "(no OPENAI_API_KEY: the findings only)" in asked.stdout


def test_a_question_asked_from_the_ui_is_answered_on_findings_index(loaded):
    """ask_findings_job, as launched from the UI with a question in its config: the summer flash sale (2026-06-10)
    comes first, and the answer is an observation of findings_index."""
    from analytics_pipeline.definitions import defs

    question = "When did sales spike in June?"
    result = defs.resolve_job_def("ask_findings_job").execute_in_process(
        instance=loaded["instance"], run_config={"ops": {"ask_findings": {"config": {"question": question}}}}
    )
    answer = result.output_for_node("ask_findings")
    top = answer.findings[0]
    assert (str(top["day"]), top["kind"], top["segment"], top["metric"]) == (
        "2026-06-10", "anomaly", "total", "revenue")
    assert all(finding["on_dates_asked"] for finding in answer.findings)  # June has more than 5 findings
    [observation] = loaded["instance"].fetch_observations(dg.AssetKey("findings_index"), limit=1).records
    metadata = observation.asset_observation.metadata
    assert metadata["question"].value == question
    assert metadata["top_finding"].value == "2026-06-10 anomaly total revenue"
    assert "Revenue spike on Wednesday 10 June 2026, overall" in metadata["answer"].value
