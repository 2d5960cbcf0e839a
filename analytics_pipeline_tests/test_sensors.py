"""The upload sensor and the touched-days sensor, evaluated against a real instance."""

import os
import time
from datetime import date

import dagster as dg
import sqlalchemy as sa

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
    """What the daemon does with a tick: add the partitions, then create the runs (queued, not started here)."""
    from analytics_pipeline.definitions import defs

    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    job = defs.resolve_job_def("ingest_upload_job")
    for request in result.run_requests or []:
        partition = {"dagster/partition": request.partition_key} if request.partition_key else {}
        instance.create_run_for_job(job, tags={**request.tags, **partition})


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
    assert request.partition_key_range == dg.PartitionKeyRange("2026-01", "2026-11")

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


def test_new_files_share_runs_up_to_the_limits(instance, folders, engine, monkeypatch):
    from analytics_pipeline import sensors

    monkeypatch.setattr(sensors, "FILES_PER_RUN", 10)
    monkeypatch.setattr(sensors, "MAX_RUNS_PER_TICK", 2)
    for index in range(28):
        path = folders.uploads_path / f"orders_{index:03d}.csv"
        path.write_text(f"order_id,timestamp,price,quantity\n{index},2026-01-01T10:00:00Z,2.5,1\n")
        _age(path, SETTLE_SECONDS + 5)
    first = _tick(instance, folders)
    assert [r.tags["upload/files"] for r in first.run_requests] == ["10", "10"]
    _apply(instance, first)
    # Each run covers a range of file partitions that holds exactly its ten files, in the order they were added.
    order = instance.get_dynamic_partitions("upload_files")
    for run, names in zip(first.run_requests, (range(0, 10), range(10, 20)), strict=True):
        start, end = (order.index(key) for key in run.partition_key_range)
        expected = [files.describe(folders.uploads_path / f"orders_{i:03d}.csv").key for i in names]
        assert order[start:end + 1] == expected
    second = _tick(instance, folders, first.cursor)
    assert [r.tags["upload/files"] for r in second.run_requests] == ["8"]  # the rest; the first 20 are in flight
    _apply(instance, second)
    assert not _tick(instance, folders, second.cursor).run_requests


def test_a_request_whose_run_was_never_created_is_made_again(instance, folders, engine):
    """The daemon stopped between adding the partitions and creating the run: the next tick asks again."""
    path = folders.uploads_path / "orders.csv"
    path.write_text("order_id,timestamp,price,quantity\n1,2026-01-01T10:00:00Z,2.5,1\n")
    _age(path, SETTLE_SECONDS + 5)
    first = _tick(instance, folders)
    for request in first.dynamic_partitions_requests:  # partitions added, no run created
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    [again] = _tick(instance, folders, first.cursor).run_requests
    assert again.partition_key == first.run_requests[0].partition_key and again.run_key != first.run_requests[0].run_key


def test_loads_from_the_other_sources_refresh_their_days_too(instance):
    for asset, first, last in (
        ("database_transactions", "2026-03-02", "2026-03-09"), ("api_transactions", "2026-02-20", "2026-03-01")
    ):
        instance.report_runless_asset_event(
            dg.AssetMaterialization(asset_key=asset, metadata={"first_day": first, "last_day": last})
        )
    [request] = touched_days_sensor(dg.build_sensor_context(instance=instance)).run_requests
    assert tuple(request.partition_key_range) == ("2026-02", "2026-03")


def test_loads_of_any_year_are_refreshed_and_future_days_are_clipped(instance):
    """History from 1998 needs no setting; days after the current month have no partition yet."""
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key="transactions", metadata={"first_day": "1998-01-05", "last_day": "2999-01-01"}
        )
    )
    [request] = touched_days_sensor(dg.build_sensor_context(instance=instance)).run_requests
    this_month = date.today().strftime("%Y-%m")
    assert tuple(request.partition_key_range) == ("1998-01", this_month)


# ----------------------------------------------------------------------------------- the file's life (issue 10)


def _load(instance, folders, key: str) -> dg.ExecuteInProcessResult:
    from analytics_pipeline.assets.transactions import transactions
    from analytics_pipeline.assets.uploads import raw_uploads
    from analytics_pipeline_tests.conftest import resources

    return dg.materialize([raw_uploads, transactions], instance=instance, partition_key=key,
                          resources=resources(folders))


def _drop_and_load(instance, folders, text: str) -> str:
    """orders.csv with ``text``, registered and loaded as the sensor's run would; returns its partition key."""
    path = folders.uploads_path / "orders.csv"
    path.write_text(text)
    key = files.describe(path).key
    instance.add_dynamic_partitions("upload_files", [key])
    _load(instance, folders, key)
    return key


def _file(engine, key: str) -> dict:
    with engine.connect() as conn:
        return dict(conn.execute(sa.text("SELECT * FROM analytics.ingested_files WHERE file_key = :k"), {"k": key})
                    .mappings().one())


def test_the_file_moves_only_after_its_rows_are_committed(instance, folders, engine):
    from analytics_pipeline.assets.uploads import raw_uploads
    from analytics_pipeline_tests.conftest import resources

    path = folders.uploads_path / "orders.csv"
    path.write_text("order_id,timestamp,price,quantity\n1,2026-01-01T10:00:00Z,2.5,1\n")
    key = files.describe(path).key
    instance.add_dynamic_partitions("upload_files", [key])
    dg.materialize([raw_uploads], instance=instance, partition_key=key, resources=resources(folders))
    # Staged, not yet loaded: the file has not moved, and the registry says where it is.
    assert path.exists() and _file(engine, key)["status"] == "staged" and _file(engine, key)["path"] == str(path)
    _load(instance, folders, key)
    archived = folders.archive_path / key / "orders.csv"
    assert not path.exists() and archived.exists()
    assert (_file(engine, key)["status"], _file(engine, key)["path"]) == ("loaded", str(archived))


def test_a_file_left_in_the_folder_after_its_commit_is_archived_by_the_sensor(instance, folders, engine):
    """A kill between the commit and the move leaves the registry ahead of the disk; the next tick catches up."""
    key = _drop_and_load(instance, folders, "order_id,timestamp,price,quantity\n1,2026-01-01T10:00:00Z,2.5,1\n")
    path = folders.uploads_path / "orders.csv"
    archived = folders.archive_path / key / "orders.csv"
    archived.rename(path)  # as if the process died after the commit, before the move
    _age(path, SETTLE_SECONDS + 5)
    result = _tick(instance, folders)
    assert not result.run_requests and archived.exists() and not path.exists()


def test_a_quarantined_file_dropped_again_after_the_mapping_is_fixed_loads(instance, folders, engine, tmp_path,
                                                                              monkeypatch):
    from analytics_pipeline.ingestion.settings import MAPPINGS_ENV

    mappings = tmp_path / "column_mappings.toml"
    mappings.write_text('[defaults]\ncancellation_pattern = "^C[0-9"\n')  # an invalid regular expression
    monkeypatch.setenv(MAPPINGS_ENV, str(mappings))
    path = folders.uploads_path / "orders.csv"
    content = "order_id,timestamp,price,quantity\n1,2026-01-01T10:00:00Z,2.5,1\n2,2026-01-02T10:00:00Z,4,2\n"
    path.write_text(content)
    _age(path, SETTLE_SECONDS + 5)
    [request] = _tick(instance, folders).run_requests
    instance.add_dynamic_partitions("upload_files", [request.partition_key])
    assert _load(instance, folders, request.partition_key).success  # the file's fault never fails the run
    row = _file(engine, request.partition_key)
    assert row["status"] == "quarantined" and "cancellation_pattern" in row["reason"], row["reason"]
    quarantined = folders.quarantine_path / request.partition_key / "orders.csv"
    assert quarantined.exists() and not path.exists()

    mappings.write_text('[defaults]\ncancellation_pattern = "^C[0-9]"\n')  # fixed
    path.write_text(content)  # the same bytes, dropped again
    _age(path, SETTLE_SECONDS + 5)
    [again] = _tick(instance, folders).run_requests  # not "already loaded": it never was
    assert again.partition_key == request.partition_key and again.run_key != request.run_key
    _load(instance, folders, again.partition_key)
    assert _file(engine, again.partition_key)["status"] == "loaded"
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM analytics.transactions")).scalar_one() == 2


def test_a_header_only_version_does_not_wipe_the_loaded_one(instance, folders, engine):
    orders = "order_id,timestamp,price,quantity\n1,2026-01-01T10:00:00Z,2.5,1\n2,2026-01-02T10:00:00Z,4,2\n"
    first = _drop_and_load(instance, folders, orders)
    _drop_and_load(instance, folders, "order_id,timestamp,price,quantity\n")  # an export that came out empty
    assert _file(engine, first)["status"] == "loaded"
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM analytics.transactions")).scalar_one() == 2


def test_a_symbolic_link_is_refused_by_name_and_never_read(instance, folders, engine, tmp_path):
    secret = tmp_path / "credentials.txt"
    secret.write_text("OPENAI_API_KEY=sk-this-must-never-be-shown\n")
    link = folders.uploads_path / "orders.csv"
    link.symlink_to(secret)
    result = _tick(instance, folders)
    assert not result.run_requests and "1 refused" in result.skip_reason.skip_message
    with engine.connect() as conn:
        [(status, reason)] = conn.execute(sa.text("SELECT status, reason FROM analytics.ingested_files")).all()
    assert status == "quarantined" and "orders.csv is a symbolic link" in reason
    assert "sk-this" not in reason and "credentials" not in reason
    [moved] = [p for p in folders.quarantine_path.rglob("orders.csv")]
    assert moved.is_symlink() and "sk-this" not in (moved.parent / "orders.csv.reason.txt").read_text()
    assert secret.read_text().startswith("OPENAI_API_KEY")  # the target is untouched


def test_a_backlog_of_one_loading_asset_does_not_hide_another_assets_loads(instance):
    from analytics_pipeline.sensors import RECORDS_PER_TICK

    for day in range(RECORDS_PER_TICK + 1):  # more loads of files than a tick reads
        first = f"2025-{1 + day // 28:02d}-{1 + day % 28:02d}" if day < 12 * 28 else "2025-12-28"
        instance.report_runless_asset_event(
            dg.AssetMaterialization(asset_key="transactions", metadata={"first_day": first, "last_day": first})
        )
    instance.report_runless_asset_event(  # stored after all of them
        dg.AssetMaterialization(asset_key="api_transactions", metadata={"first_day": "2026-06-01",
                                                                         "last_day": "2026-06-02"})
    )
    first_tick = touched_days_sensor(dg.build_sensor_context(instance=instance))
    second_tick = touched_days_sensor(dg.build_sensor_context(instance=instance, cursor=first_tick.cursor))
    # The load the first tick could not read is refreshed by the second; nothing is skipped.
    [request] = second_tick.run_requests
    assert request.partition_key_range.start == "2025-12"
    third = touched_days_sensor(dg.build_sensor_context(instance=instance, cursor=second_tick.cursor))
    assert not third.run_requests


def test_a_file_whose_loads_keep_failing_is_quarantined_with_the_failure(instance, folders, engine, monkeypatch):
    """Failed runs (here: a database that cannot be reached) with no retry left: the sensor gives up on the file."""
    from analytics_pipeline import sensors
    from analytics_pipeline.definitions import defs

    path = folders.uploads_path / "orders.csv"
    path.write_text("order_id,timestamp,price,quantity\n1,2026-01-01T10:00:00Z,2.5,1\n")
    _age(path, SETTLE_SECONDS + 5)
    first = _tick(instance, folders)
    [request] = first.run_requests
    instance.add_dynamic_partitions("upload_files", [request.partition_key])
    unreachable = Warehouse(database_url="postgresql://nobody@127.0.0.1:1/none")
    failed = defs.resolve_job_def("ingest_upload_job").execute_in_process(  # the requested run, as the daemon runs it
        instance=instance, partition_key=request.partition_key, tags=request.tags, raise_on_error=False,
        resources={"warehouse": unreachable, "folders": folders},
    )
    assert not failed.success and path.exists()  # an outage fails the run; the file waits in the folder

    assert not _tick(instance, folders).run_requests and path.exists()  # run retries may still take it: wait
    monkeypatch.setattr(sensors, "RETRY_GRACE_SECONDS", 0)  # past the grace period
    result = _tick(instance, folders)
    assert not result.run_requests
    row = _file(engine, request.partition_key)
    assert row["status"] == "quarantined" and row["reason"].startswith("loading failed 1 time(s); last run ")
    assert failed.run_id in row["reason"]
    assert (folders.quarantine_path / request.partition_key / "orders.csv").exists() and not path.exists()


def test_rows_appended_while_the_file_is_staged_are_not_lost(instance, folders, engine):
    """Defect 6: an export still being written when its load begins. The append lands while the COPY of the file's
    rows is in progress (watched in pg_stat_progress_copy), so the re-hash after staging sees other bytes: nothing is
    staged, the file stays in the folder, and its settled version - every row, the appended ones too - loads next."""
    import threading

    path = folders.uploads_path / "orders.csv"
    lines = [f"{i},2026-01-{1 + i % 28:02d}T10:00:00Z,2.5,1\n" for i in range(300_000)]
    path.write_text("order_id,timestamp,price,quantity\n" + "".join(lines))
    key = files.describe(path).key
    instance.add_dynamic_partitions("upload_files", [key])
    appended = threading.Event()

    def append_during_copy():
        deadline = time.monotonic() + 120
        with engine.connect() as conn:
            while time.monotonic() < deadline:
                if conn.execute(sa.text("SELECT count(*) FROM pg_stat_progress_copy WHERE relid = "
                                        "'analytics.raw_uploads'::regclass AND tuples_processed > 0")).scalar_one():
                    with path.open("a") as handle:
                        handle.write("".join(f"{i},2026-02-01T10:00:00Z,4,1\n" for i in range(300_000, 301_000)))
                    appended.set()
                    return
                conn.rollback()
                time.sleep(0.005)

    writer = threading.Thread(target=append_during_copy)
    writer.start()
    result = _load(instance, folders, key)
    writer.join()
    assert appended.is_set() and result.success
    [staged] = [m for m in result.get_asset_materialization_events() if m.asset_key == dg.AssetKey("raw_uploads")]
    assert staged.materialization.metadata["status"].value == "changed while loading"
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM analytics.raw_uploads")).scalar_one() == 0
        assert conn.execute(sa.text("SELECT count(*) FROM analytics.ingested_files")).scalar_one() == 0
    assert path.exists()  # still in the folder, never half-loaded

    _age(path, SETTLE_SECONDS + 5)
    [request] = _tick(instance, folders).run_requests  # the settled version: a new partition
    assert request.partition_key != key
    instance.add_dynamic_partitions("upload_files", [request.partition_key])
    assert _load(instance, folders, request.partition_key).success
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM analytics.transactions")).scalar_one() == 301_000


def test_a_file_moved_away_while_the_folder_is_read_is_not_refused(instance, folders, engine):
    """A run archives a file between the sensor's listing and its look at the entry: the entry is gone, not a
    special file. (Seen under load: a loaded file was also registered as 'not a regular file'.)"""
    gone = folders.uploads_path / "store_0221_orders.csv"
    assert files.refusal(gone) is None
    fifo = folders.uploads_path / "orders_pipe.csv"
    os.mkfifo(fifo)
    assert "is not a regular file" in files.refusal(fifo)
