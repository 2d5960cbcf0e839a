"""An S3-compatible bucket as the watched location (ANALYTICS_UPLOADS_URL=s3://...): the folder's journeys, against a
real S3 server on 127.0.0.1 (moto's standalone server, see s3_server.py) and the real embedded Postgres.

Each test has a bucket of its own; the sensor is ticked as the daemon would, and the runs it asks for are executed
in process, as in test_sensors.py.
"""

import hashlib
import json
import time
import uuid

import dagster as dg
import pytest
import sqlalchemy as sa

from analytics_pipeline.ingestion import bucket as bucket_module
from analytics_pipeline.ingestion import files
from analytics_pipeline.resources import UploadFolders, Warehouse
from analytics_pipeline.sensors import AFTER_KEY, upload_sensor
from analytics_pipeline_tests.s3_server import CREDENTIALS, client, s3_server

GOOD = (
    "InvoiceNo,InvoiceDate,UnitPrice,Quantity,Country\n"
    "A1,2026-03-02 10:00:00,2.50,4,United Kingdom\n"
    "A2,2026-03-02 11:30:00,10.00,1,France\n"
    "A3,2026-03-03 09:15:00,1.25,8,United Kingdom\n"
)
BAD_ROWS = GOOD + "A4,2026-03-03 12:00:00,not a price,2,Germany\nA5,yesterday,3.00,1,Spain\n"
UNUSABLE = "colour,shape\nred,square\nblue,circle\n"


@pytest.fixture(scope="module")
def endpoint():
    with s3_server() as url:
        yield url


@pytest.fixture
def s3(endpoint):
    name = f"uploads-{uuid.uuid4().hex[:12]}"
    s3 = client(endpoint)
    s3.create_bucket(Bucket=name)
    s3.bucket = name
    return s3


@pytest.fixture
def folders(s3, endpoint) -> UploadFolders:
    return UploadFolders(uploads_url=f"s3://{s3.bucket}/incoming/", s3_endpoint_url=endpoint, **CREDENTIALS)


def _sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _tick(instance, folders, cursor=None) -> dg.SensorResult:
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"folders": folders, "warehouse": Warehouse()}
    )
    return upload_sensor(context)


def _settled(instance, folders, cursor=None) -> dg.SensorResult:
    """Two ticks: an object is read once its ETag and size held for two ticks in a row."""
    first = _tick(instance, folders, cursor)
    assert not first.run_requests, "a just-written object waits for a second look"
    return _tick(instance, folders, first.cursor)


def _ingest_assets() -> list:
    from analytics_pipeline.assets.transactions import transactions
    from analytics_pipeline.assets.uploads import raw_uploads

    return [raw_uploads, transactions]


def _resources(folders) -> dict:
    from analytics_pipeline_tests.conftest import resources

    return resources(folders)


def _run(instance, folders, result: dg.SensorResult) -> list[str]:
    """What the daemon does with a tick, with each requested file loaded in process; returns the keys loaded."""
    keys = [key for request in result.dynamic_partitions_requests or [] for key in request.partition_keys]
    instance.add_dynamic_partitions("upload_files", keys)
    for key in keys:
        outcome = dg.materialize(_ingest_assets(), instance=instance, partition_key=key, resources=_resources(folders))
        assert outcome.success
    return keys


def _objects(s3, prefix: str = "") -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=s3.bucket, Prefix=prefix)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def _registry(engine, key: str) -> dict:
    with engine.connect() as conn:
        return dict(conn.execute(sa.text("SELECT * FROM analytics.ingested_files WHERE file_key = :k"), {"k": key})
                    .mappings().one())


def _loaded_rows(engine, key: str) -> int:
    with engine.connect() as conn:
        count = sa.text("SELECT count(*) FROM analytics.transactions WHERE source = :k")
        return conn.execute(count, {"k": key}).scalar()


def test_a_good_object_loads_once_and_moves_to_the_archive_prefix(instance, folders, s3, engine):
    s3.put_object(Bucket=s3.bucket, Key="incoming/orders.csv", Body=GOOD.encode())
    [key] = _run(instance, folders, result := _settled(instance, folders))
    assert key == files.partition_key("orders.csv", _sha256(GOOD.encode()))
    assert _objects(s3) == [f"archive/{key}/orders.csv"]  # copied, then the original deleted
    row = _registry(engine, key)
    assert (row["status"], row["rows_loaded"]) == ("loaded", 3)
    assert row["path"] == f"s3://{s3.bucket}/archive/{key}/orders.csv"
    assert _loaded_rows(engine, key) == 3
    again = _tick(instance, folders, result.cursor)
    assert not again.run_requests and not _tick(instance, folders, again.cursor).run_requests


def test_bad_rows_are_rejected_and_their_good_neighbours_load(instance, folders, s3, engine):
    s3.put_object(Bucket=s3.bucket, Key="incoming/orders_bad_rows.csv", Body=BAD_ROWS.encode())
    [key] = _run(instance, folders, _settled(instance, folders))
    row = _registry(engine, key)
    assert (row["status"], row["rows_loaded"], row["rows_rejected"]) == ("loaded", 3, 2)
    with engine.connect() as conn:
        reasons = conn.execute(sa.text(
            "SELECT reason FROM analytics.rejected_rows WHERE file_key = :k ORDER BY line_number"), {"k": key}
        ).scalars().all()
    assert len(reasons) == 2 and all(reasons)


def test_an_unusable_object_is_quarantined_with_a_reason_object(instance, folders, s3, engine):
    s3.put_object(Bucket=s3.bucket, Key="incoming/inventory.csv", Body=UNUSABLE.encode())
    [key] = _run(instance, folders, _settled(instance, folders))
    row = _registry(engine, key)
    assert row["status"] == "quarantined" and row["path"] == f"s3://{s3.bucket}/quarantine/{key}/inventory.csv"
    assert _objects(s3) == [f"quarantine/{key}/inventory.csv", f"quarantine/{key}/inventory.csv.reason.txt"]
    said = s3.get_object(Bucket=s3.bucket, Key=f"quarantine/{key}/inventory.csv.reason.txt")["Body"].read().decode()
    assert said.strip() == row["reason"] and "colour" in said
    assert s3.get_object(Bucket=s3.bucket, Key=f"quarantine/{key}/inventory.csv")["Body"].read() == UNUSABLE.encode()


def test_the_same_bytes_under_another_name_are_archived_not_loaded(instance, folders, s3, engine):
    s3.put_object(Bucket=s3.bucket, Key="incoming/orders.csv", Body=GOOD.encode())
    [key] = _run(instance, folders, result := _settled(instance, folders))
    s3.put_object(Bucket=s3.bucket, Key="incoming/orders_copy.csv", Body=GOOD.encode())
    second = _settled(instance, folders, result.cursor)
    assert not second.run_requests
    assert "1 duplicates of loaded files" in second.skip_reason.skip_message
    assert _objects(s3) == [f"archive/{key}/orders.csv", f"archive/{key}/orders_copy.csv"]
    assert _loaded_rows(engine, key) == 3


def test_a_changed_object_replaces_the_rows_of_its_older_version(instance, folders, s3, engine):
    s3.put_object(Bucket=s3.bucket, Key="incoming/orders.csv", Body=GOOD.encode())
    [first] = _run(instance, folders, result := _settled(instance, folders))
    changed = GOOD + "A9,2026-03-04 08:00:00,4.00,2,Ireland\n"
    s3.put_object(Bucket=s3.bucket, Key="incoming/orders.csv", Body=changed.encode())
    [second] = _run(instance, folders, _settled(instance, folders, result.cursor))
    assert second != first
    assert _registry(engine, first)["status"] == "replaced" and _loaded_rows(engine, first) == 0
    assert _registry(engine, second)["status"] == "loaded" and _loaded_rows(engine, second) == 4
    assert _objects(s3) == [f"archive/{first}/orders.csv", f"archive/{second}/orders.csv"]


def test_an_object_still_being_uploaded_in_parts_waits_until_it_is_complete(instance, folders, s3, engine):
    body = GOOD.encode() + b"".join(
        f"B{i},2026-03-05 10:{i % 60:02d}:00,1.00,1,United Kingdom\n".encode() for i in range(400_000)
    )
    part_size = 5 << 20  # S3's smallest part but the last
    upload = s3.create_multipart_upload(Bucket=s3.bucket, Key="incoming/big_orders.csv")
    parts = []
    for number, start in enumerate(range(0, len(body), part_size), start=1):
        if number == 2:  # the upload is in progress: the sensor must see nothing yet
            waiting = _settled(instance, folders)
            assert not waiting.run_requests and _objects(s3, "incoming/") == []
        etag = s3.upload_part(Bucket=s3.bucket, Key="incoming/big_orders.csv", PartNumber=number,
                              UploadId=upload["UploadId"], Body=body[start:start + part_size])["ETag"]
        parts.append({"PartNumber": number, "ETag": etag})
    s3.complete_multipart_upload(Bucket=s3.bucket, Key="incoming/big_orders.csv", UploadId=upload["UploadId"],
                                 MultipartUpload={"Parts": parts})
    [key] = _run(instance, folders, _settled(instance, folders, waiting.cursor))
    assert len(parts) >= 2
    assert key == files.partition_key("big_orders.csv", _sha256(body))
    assert _registry(engine, key)["rows_loaded"] == 400_003


def test_an_object_replaced_after_the_tick_is_not_loaded_under_the_old_key(instance, folders, s3, engine):
    s3.put_object(Bucket=s3.bucket, Key="incoming/orders.csv", Body=GOOD.encode())
    result = _settled(instance, folders)
    s3.put_object(Bucket=s3.bucket, Key="incoming/orders.csv", Body=BAD_ROWS.encode())
    [key] = _run(instance, folders, result)
    assert _registry_rows(engine, key) == 0  # its bytes are gone: nothing staged under the old key
    [new_key] = _run(instance, folders, _settled(instance, folders, result.cursor))
    assert new_key != key and _registry(engine, new_key)["rows_loaded"] == 3


def test_an_unusable_object_dropped_again_unchanged_is_tried_again_each_time(instance, folders, s3, engine):
    """After the mapping file is fixed, the user uploads the same bytes again: the same ETag, a new upload time."""
    s3.put_object(Bucket=s3.bucket, Key="incoming/inventory.csv", Body=UNUSABLE.encode())
    [key] = _run(instance, folders, result := _settled(instance, folders))
    cursor, run_keys = result.cursor, []
    for _ in range(2):
        time.sleep(1.1)  # S3's upload times have a resolution of a second
        s3.put_object(Bucket=s3.bucket, Key="incoming/inventory.csv", Body=UNUSABLE.encode())
        again = _settled(instance, folders, cursor)
        [request] = again.run_requests
        assert request.partition_key == key
        run_keys.append(request.run_key)
        dg.materialize(_ingest_assets(), instance=instance, partition_key=key, resources=_resources(folders))
        assert _registry(engine, key)["status"] == "quarantined"
        assert _objects(s3, "incoming/") == []
        cursor = again.cursor
    assert len(set(run_keys)) == 2  # Dagster runs each request: a repeated run key would be skipped


def _registry_rows(engine, key: str) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM analytics.ingested_files WHERE file_key = :k"),
                            {"k": key}).scalar()


def test_a_tick_lists_a_window_of_keys_and_every_object_is_found_within_a_sweep(
    instance, folders, s3, engine, monkeypatch
):
    monkeypatch.setattr(bucket_module, "LIST_KEYS_PER_TICK", 3)
    names = [f"orders_{i:02d}.csv" for i in range(8)]
    for index, name in enumerate(names):
        s3.put_object(Bucket=s3.bucket, Key=f"incoming/{name}",
                      Body=GOOD.replace("A1,", f"Z{index},").encode())
    cursor, requested, windows = None, set(), []
    for _ in range(8):
        result = _tick(instance, folders, cursor)
        cursor = result.cursor
        keys = [key for request in result.dynamic_partitions_requests or [] for key in request.partition_keys]
        instance.add_dynamic_partitions("upload_files", keys)
        requested.update(keys)
        windows.append(json.loads(cursor).get(AFTER_KEY))
        assert len(keys) <= 3  # a tick reads at most its window
    assert requested == {files.partition_key(n, _sha256(GOOD.replace("A1,", f"Z{i},").encode()))
                         for i, n in enumerate(names)}
    assert "orders_02.csv" in windows and None in windows  # it stopped mid-way, and wrapped around


def test_analytics_dev_watches_the_bucket_named_in_the_environment(tmp_path, s3, endpoint):
    """The real stack (daemon, sensor, run queue, run workers) configured only by environment variables, the keys
    passed to the runs as EnvVar: good, bad-row and unusable objects end as their files do."""
    from analytics_pipeline_tests.stack import dev_stack, user_environment, wait_for

    settings = {
        "ANALYTICS_UPLOADS_URL": f"s3://{s3.bucket}/incoming/",
        "ANALYTICS_S3_ENDPOINT_URL": endpoint,
        "ANALYTICS_S3_REGION": CREDENTIALS["s3_region"],
        "ANALYTICS_S3_ACCESS_KEY_ID": CREDENTIALS["s3_access_key_id"],
        "ANALYTICS_S3_SECRET_ACCESS_KEY": CREDENTIALS["s3_secret_access_key"],
    }
    drops = {"orders.csv": GOOD, "orders_bad_rows.csv": BAD_ROWS, "inventory.csv": UNUSABLE}
    for name, text in drops.items():
        s3.put_object(Bucket=s3.bucket, Key=f"incoming/{name}", Body=text.encode())
    data = tmp_path / "data"
    with user_environment(data, **settings) as env, dev_stack(data, env) as stack:
        def outcomes():
            try:
                rows = stack.rows("SELECT file_name, status, rows_loaded FROM analytics.ingested_files")
            except sa.exc.ProgrammingError:  # no tick has run yet: the schema is created on the warehouse's first use
                return None
            final = len(rows) == 3 and all(status in ("loaded", "quarantined") for _, status, _ in rows)
            return {name: (status, loaded) for name, status, loaded in rows} if final else None

        found = wait_for(outcomes, 300, "the three objects' outcomes", interval=2)
        assert found == {"orders.csv": ("loaded", 3), "orders_bad_rows.csv": ("loaded", 3),
                         "inventory.csv": ("quarantined", None)}
        keys = dict(stack.rows("SELECT file_name, file_key FROM analytics.ingested_files"))
        filed = sorted([  # each moved after its outcome committed, the reason object written after the move
            f"archive/{keys['orders.csv']}/orders.csv",
            f"archive/{keys['orders_bad_rows.csv']}/orders_bad_rows.csv",
            f"quarantine/{keys['inventory.csv']}/inventory.csv",
            f"quarantine/{keys['inventory.csv']}/inventory.csv.reason.txt",
        ])
        wait_for(lambda: _objects(s3) == filed, 60, "every object filed under its key")
        assert CREDENTIALS["s3_secret_access_key"] not in (data / "dev.log").read_text()


def test_doctor_finds_and_repairs_objects_the_registry_disagrees_with(instance, folders, s3, engine):
    from analytics_pipeline import reconcile

    s3.put_object(Bucket=s3.bucket, Key="incoming/orders.csv", Body=GOOD.encode())
    [key] = _run(instance, folders, _settled(instance, folders))
    location = folders.location()
    with engine.connect() as conn:
        assert reconcile.at(conn, location) == []
    # A kill between the commit and the move leaves a loaded object in the uploads; an older version of the project
    # could leave an object filed under a key nobody registered.
    archived = location.url(f"archive/{key}/orders.csv")
    location.move(archived, location.url("incoming/orders.csv"))
    s3.put_object(Bucket=s3.bucket, Key="archive/lost_csv_0123456789ab/lost.csv", Body=GOOD.encode())
    with engine.connect() as conn:
        found = reconcile.at(conn, location)
    assert [(item.path, item.target) for item in found] == [
        (location.url("incoming/orders.csv"), archived),
        (location.url("archive/lost_csv_0123456789ab/lost.csv"), location.url("incoming/lost.csv")),
    ]
    assert [line.startswith("moved ") for line in reconcile.repair(found, location)] == [True, True]
    assert _objects(s3) == [f"archive/{key}/orders.csv", "incoming/lost.csv"]
    with engine.connect() as conn:
        assert reconcile.at(conn, location) == []
