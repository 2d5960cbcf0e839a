"""Rows outside the daily tables' months are loaded, but never silently: the load says so and fails a check."""

import dagster as dg
import sqlalchemy as sa

from analytics_pipeline import urls
from analytics_pipeline.assets.transactions import transactions
from analytics_pipeline.assets.uploads import raw_uploads
from analytics_pipeline.checks import ANALYSED_CHECK
from analytics_pipeline.ingestion import files
from analytics_pipeline.partitions import analysed_days
from analytics_pipeline_tests.conftest import resources
from analytics_pipeline_tests.stack import run_cli, stop_embedded, user_environment

ROWS = [
    ("A-1", "1998-03-02T10:00:00Z", "12.50", "2"),  # old history: inside the default months (from 1900)
    ("A-2", "2011-07-15T09:30:00Z", "3.00", "1"),
    ("A-3", "2099-01-02T10:00:00Z", "1.00", "1"),  # a mistyped year: after the current month
]


def _write(path, rows) -> None:
    path.write_text("order_id,timestamp,price,quantity\n" + "".join(",".join(row) + "\n" for row in rows))


def test_a_future_dated_row_is_counted_and_fails_the_check_with_the_fix(instance, folders, engine):
    path = folders.uploads_path / "orders.csv"
    _write(path, ROWS)
    key = files.describe(path).key
    instance.add_dynamic_partitions("upload_files", [key])
    result = dg.materialize([raw_uploads, transactions], instance=instance, partition_key=key,
                            resources=resources(folders))
    assert result.success
    [materialization] = result.asset_materializations_for_node("transactions")
    assert materialization.metadata["rows_outside_analysed_months"].value == 1
    assert materialization.metadata["dagster/row_count"].value == 3  # loaded all the same: nothing is lost
    [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == ANALYSED_CHECK]
    assert not check.passed
    last = analysed_days()[1]
    assert f"1 row dated after {last} (latest 2099-01-02)" in check.description
    assert "check the file's dates and time zone" in check.description


def test_rows_inside_the_months_pass_the_check(instance, folders, engine):
    path = folders.uploads_path / "old_orders.csv"
    _write(path, ROWS[:2])
    key = files.describe(path).key
    instance.add_dynamic_partitions("upload_files", [key])
    result = dg.materialize([raw_uploads, transactions], instance=instance, partition_key=key,
                            resources=resources(folders))
    [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == ANALYSED_CHECK]
    assert check.passed
    assert result.asset_materializations_for_node("transactions")[0].metadata["rows_outside_analysed_months"].value == 0


def test_the_demo_reports_history_before_a_configured_start_and_analyses_the_rest(data_dir):
    """With ANALYTICS_START_DATE set later than the data, the demo succeeds, aggregates the months it covers, and
    prints the rows it did not analyse with the setting that would include them."""
    data = data_dir / "late_start"
    (data / "uploads").mkdir(parents=True)
    _write(data / "uploads" / "orders.csv", ROWS[:2])
    with user_environment(data, ANALYTICS_START_DATE="2000-01") as env:
        try:
            demo = run_cli(["demo"], env)
            assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
            assert (
                "NOT ANALYSED: orders.csv: 1 row before 2000-01-01 (earliest 1998-03-02): set "
                "ANALYTICS_START_DATE=1998-03-01 or earlier" in demo.stdout
            )
            assert "refreshed daily metrics for the months 2000-01.." in demo.stdout
            engine = sa.create_engine(urls.psycopg2_url(run_cli(["db"], env).stdout.strip()))
            with engine.connect() as conn:
                totals = sa.text("SELECT min(day), sum(revenue) FROM analytics.daily_metrics")
                first, revenue = conn.execute(totals).one()
            engine.dispose()
            # From the first analysed day (zeros until the 2011 sale); the 1998 sale is loaded but not aggregated.
            assert str(first) == "2000-01-01" and float(revenue) == 3.00
        finally:
            stop_embedded(env)
