"""Re-running a file partition or a day gives exactly the same rows; bad files are kept aside, never lost."""

import hashlib

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from analytics_pipeline.assets.transactions import transactions
from analytics_pipeline.assets.uploads import ACCEPTED_CHECK, raw_uploads
from analytics_pipeline_tests.conftest import drop_samples, load_uploads, materializations, refresh_days, resources

DAILY = ["daily_metrics", "daily_region_metrics", "daily_product_metrics", "daily_company_metrics"]


def _fingerprint(engine: sa.Engine, table: str, exclude: tuple[str, ...] = ()) -> tuple[int, str]:
    """Row count and a hash of the table's full ordered contents (load timestamps left out)."""
    with engine.connect() as conn:
        frame = pd.read_sql(sa.text(f"SELECT * FROM analytics.{table}"), conn)
    frame = frame.drop(columns=[c for c in exclude if c in frame.columns])
    frame = frame.sort_values(list(frame.columns)).reset_index(drop=True)
    return len(frame), hashlib.sha256(frame.to_csv(index=False).encode()).hexdigest()


def test_rerunning_a_file_partition_leaves_identical_tables(instance, folders, engine):
    [key] = load_uploads(instance, folders, drop_samples(folders, ["online_retail_2025.csv"]))
    before = {t: _fingerprint(engine, t, ("rejected_at",)) for t in ("transactions", "rejected_rows", "raw_uploads")}
    assert before["transactions"][0] > 15000

    result = dg.materialize(
        [raw_uploads, transactions], instance=instance, partition_key=key, resources=resources(folders)
    )
    assert result.success
    after = {t: _fingerprint(engine, t, ("rejected_at",)) for t in before}
    assert after == before


def test_rerunning_days_leaves_identical_tables(instance, folders, engine):
    load_uploads(instance, folders, drop_samples(folders, ["api_billing.csv"]))
    refresh_days(instance, "2026-01-01", "2026-03-31", selection=DAILY)
    before = {t: _fingerprint(engine, t) for t in DAILY}
    refresh_days(instance, "2026-02-10", "2026-02-12", selection=DAILY)  # a sub-range, as the schedule would
    refresh_days(instance, "2026-01-01", "2026-03-31", selection=DAILY)
    assert {t: _fingerprint(engine, t) for t in DAILY} == before
    assert before["daily_metrics"][0] == 90


def test_quiet_days_inside_the_span_are_zero_rows_and_outside_days_are_not_invented(instance, folders, engine):
    path = folders.uploads_path / "two_days.csv"
    path.write_text(
        "order_id,timestamp,price,quantity,customer,country,product\n"
        "A1,2026-03-02T09:00:00Z,10.00,2,c1,France,p1\n"
        "A1,2026-03-02T09:00:00Z,5.50,1,c1,France,p2\n"
        "A2,2026-03-04T10:00:00Z,7.25,4,c2,Spain,p1\n"
    )
    load_uploads(instance, folders, [path])
    refresh_days(instance, "2026-02-25", "2026-03-10", selection=DAILY)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT day::text, revenue, orders, avg_order_value FROM analytics.daily_metrics ORDER BY day")
        ).all()
    assert [tuple(r) for r in rows] == [
        ("2026-03-02", 25.5, 1, 25.5),
        ("2026-03-03", 0, 0, None),
        ("2026-03-04", 29.0, 1, 29.0),
    ]


def test_a_file_without_usable_columns_is_quarantined_and_its_neighbour_loads(instance, folders, engine):
    bad = folders.uploads_path / "notes.csv"
    bad.write_text("colour,size\nred,L\n")
    good = drop_samples(folders, ["api_billing.csv"])[0]
    from analytics_pipeline.ingestion import files

    keys = [files.describe(bad).key, files.describe(good).key]
    instance.add_dynamic_partitions("upload_files", keys)
    results = [
        dg.materialize([raw_uploads, transactions], instance=instance, partition_key=k, resources=resources(folders))
        for k in keys
    ]
    assert all(r.success for r in results)  # handling a bad file is not a failed run

    [check] = [c for c in results[0].get_asset_check_evaluations() if c.check_name == ACCEPTED_CHECK]
    assert not check.passed
    assert check.severity == dg.AssetCheckSeverity.WARN
    assert "'colour', 'size'" in check.description and "timestamp" in check.description

    quarantined = folders.quarantine_path / keys[0] / "notes.csv"
    assert quarantined.read_text() == "colour,size\nred,L\n"  # kept, byte for byte
    assert "cannot find required column" in (quarantined.parent / "notes.csv.reason.txt").read_text()
    with engine.connect() as conn:
        registry = dict(
            conn.execute(sa.text("SELECT file_name, status FROM analytics.ingested_files")).all()
        )
        loaded = conn.execute(sa.text("SELECT count(*) FROM analytics.transactions")).scalar_one()
    assert registry == {"notes.csv": "quarantined", "api_billing.csv": "loaded"}
    assert loaded == 24875


def test_every_load_and_daily_materialisation_shows_a_preview(instance, folders, engine):
    path = folders.uploads_path / "preview.csv"
    path.write_text("order_id,timestamp,price,quantity,country\nP1,2026-03-02T09:00:00Z,10.00,2,France\n")
    from analytics_pipeline.ingestion import files

    key = files.describe(path).key
    instance.add_dynamic_partitions("upload_files", [key])
    loaded = dg.materialize(
        [raw_uploads, transactions], instance=instance, partition_key=key, resources=resources(folders)
    )
    for node in ("raw_uploads", "transactions"):
        table = loaded.asset_materializations_for_node(node)[0].metadata["preview"].value
        assert "P1" in table and "order_id" in table
    refreshed = refresh_days(instance, "2026-03-02", "2026-03-02", selection=DAILY)
    table = materializations(refreshed, "daily_region_metrics")[0].metadata["preview"].value
    assert "France" in table and "20" in table
