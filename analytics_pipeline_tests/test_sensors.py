"""The upload sensor and the touched-days sensor, evaluated against a real instance."""

import os
import time
from datetime import date

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from analytics_pipeline.ingestion import files
from analytics_pipeline.resources import Warehouse
from analytics_pipeline.sensors import SETTLE_SECONDS, touched_days_sensor, upload_sensor
from analytics_pipeline_tests.conftest import drop_samples, load_uploads


def _tick(instance, folders, cursor=None) -> dg.SensorResult:
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"folders": folders, "warehouse": Warehouse()}
    )
    return upload_sensor(context)


def _age(path, seconds: float) -> None:
    past = time.time() - seconds
    os.utime(path, (past, past))


def _apply(instance, result: dg.SensorResult) -> None:
    """What the daemon does with a tick's dynamic partition requests."""
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))


def test_new_file_gives_one_partition_and_one_run_then_nothing(instance, folders, engine):
    [path] = drop_samples(folders, ["api_billing.csv"])
    _age(path, SETTLE_SECONDS + 5)
    first = _tick(instance, folders)
    key = files.describe(path).key
    assert [r.partition_key for r in first.run_requests] == [key]
    assert [list(r.partition_keys) for r in first.dynamic_partitions_requests] == [[key]]
    _apply(instance, first)

    second = _tick(instance, folders, first.cursor)
    assert second.run_requests == [] or second.run_requests is None
    assert second.dynamic_partitions_requests in (None, [])


def test_a_file_still_being_written_waits_for_a_quiet_tick(instance, folders, engine):
    path = folders.uploads_path / "growing.csv"
    path.write_text("order_id,timestamp,price,quantity\n1,2026-01-01T10:00:00Z,2.5,1\n")
    first = _tick(instance, folders)
    assert not first.run_requests  # just written: not settled yet
    with path.open("a") as handle:
        handle.write("2,2026-01-01T11:00:00Z,3.5,2\n")
    second = _tick(instance, folders, first.cursor)
    assert not second.run_requests  # it changed since the last tick
    third = _tick(instance, folders, second.cursor)
    assert [r.partition_key for r in third.run_requests] == [files.describe(path).key]


def test_a_changed_file_with_the_same_name_is_a_new_partition(instance, folders, engine):
    path = folders.uploads_path / "orders.csv"
    path.write_text("order_id,timestamp,price,quantity\n1,2026-01-01T10:00:00Z,2.5,1\n")
    _age(path, SETTLE_SECONDS + 5)
    first = _tick(instance, folders)
    _apply(instance, first)
    path.write_text("order_id,timestamp,price,quantity\n1,2026-01-01T10:00:00Z,2.5,1\n2,2026-01-02T10:00:00Z,1,1\n")
    _age(path, SETTLE_SECONDS + 5)
    second = _tick(instance, folders, first.cursor)
    assert len(second.run_requests) == 1
    assert second.run_requests[0].partition_key != first.run_requests[0].partition_key


def test_loaded_days_are_refreshed_as_one_range_run(instance, folders, engine):
    load_uploads(instance, folders, drop_samples(folders, ["online_retail_2026.csv"]))
    context = dg.build_sensor_context(instance=instance)
    result = touched_days_sensor(context)
    [request] = result.run_requests
    # The file holds 2026-01-02..2026-11-20: the months holding those days.
    assert request.tags[ASSET_PARTITION_RANGE_START_TAG] == "2026-01"
    assert request.tags[ASSET_PARTITION_RANGE_END_TAG] == "2026-11"

    again = touched_days_sensor(dg.build_sensor_context(instance=instance, cursor=result.cursor))
    assert not again.run_requests


def test_the_same_bytes_under_another_name_are_not_loaded_twice(instance, folders, engine):
    [original] = drop_samples(folders, ["online_retail_2025.csv"])
    [key] = load_uploads(instance, folders, [original])
    copy = folders.uploads_path / "retail_export_copy.csv"
    copy.write_bytes((folders.archive_path / key / original.name).read_bytes())
    _age(copy, SETTLE_SECONDS + 5)
    result = _tick(instance, folders)
    assert not result.run_requests
    assert "1 duplicates of loaded files" in result.skip_reason.skip_message
    assert not copy.exists() and (folders.archive_path / key / copy.name).exists()  # moved, never deleted


def test_a_tick_requests_at_most_the_batch_limit(instance, folders, engine):
    from analytics_pipeline.sensors import MAX_RUNS_PER_TICK

    for index in range(MAX_RUNS_PER_TICK + 3):
        path = folders.uploads_path / f"orders_{index:03d}.csv"
        path.write_text(f"order_id,timestamp,price,quantity\n{index},2026-01-01T10:00:00Z,2.5,1\n")
        _age(path, SETTLE_SECONDS + 5)
    first = _tick(instance, folders)
    assert len(first.run_requests) == MAX_RUNS_PER_TICK
    _apply(instance, first)
    second = _tick(instance, folders, first.cursor)
    assert len(second.run_requests) == 3


def test_loads_from_the_other_sources_refresh_their_days_too(instance):
    for asset, first, last in (("database_transactions", "2026-03-02", "2026-03-09"), ("api_transactions", "2026-02-20", "2026-03-01")):
        instance.report_runless_asset_event(
            dg.AssetMaterialization(asset_key=asset, metadata={"first_day": first, "last_day": last})
        )
    [request] = touched_days_sensor(dg.build_sensor_context(instance=instance)).run_requests
    assert (request.tags[ASSET_PARTITION_RANGE_START_TAG], request.tags[ASSET_PARTITION_RANGE_END_TAG]) == (
        "2026-02",
        "2026-03",
    )


def test_loads_of_any_year_are_refreshed_and_future_days_are_clipped(instance):
    """History from 1998 needs no setting; days after the current month have no partition yet."""
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key="transactions", metadata={"first_day": "1998-01-05", "last_day": "2999-01-01"})
    )
    [request] = touched_days_sensor(dg.build_sensor_context(instance=instance)).run_requests
    this_month = date.today().strftime("%Y-%m")
    assert (request.tags[ASSET_PARTITION_RANGE_START_TAG], request.tags[ASSET_PARTITION_RANGE_END_TAG]) == (
        "1998-01",
        this_month,
    )
