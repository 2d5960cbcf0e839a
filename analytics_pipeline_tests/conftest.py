"""Fixtures: a real Postgres for the whole session, clean tables per test, and the sample files.

By default the session starts its own embedded PostgreSQL in a temp data directory and stops it at the end. With
ANALYTICS_DATABASE_URL set, the tests create a scratch database on that server (and drop it afterwards), so they
never touch the tables of the database the URL names.
"""

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from analytics_pipeline import paths, urls
from analytics_pipeline.warehouse import db, findings, server
from analytics_pipeline.warehouse.contract import table_names

SAMPLE_FILES = sorted(paths.sample_dir().glob("*.csv"))
ANALYTICS_TABLES = table_names()


@contextmanager
def scratch_database(base_url: str) -> Iterator[str]:
    """A new, empty database on the server ``base_url`` names; dropped on exit."""
    name = f"analytics_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(urls.psycopg2_url(base_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.engine.make_url(base_url).set(database=name).render_as_string(hide_password=False)
    finally:
        db.engine_for.cache_clear()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session", autouse=True)
def data_dir() -> Iterator[Path]:
    """Point every path of the project at a temp directory for the session.

    Not under pytest's tmp_path: pytest keeps its root 0700, and the embedded server runs as another user when the
    tests run as root, so it needs a directory it can reach.
    """
    path = Path(tempfile.mkdtemp(prefix="analytics-test-"))
    previous = os.environ.get(paths.DATA_DIR_ENV)
    os.environ[paths.DATA_DIR_ENV] = str(path)
    yield path
    if previous is None:
        os.environ.pop(paths.DATA_DIR_ENV, None)
    else:
        os.environ[paths.DATA_DIR_ENV] = previous
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def warehouse_url(data_dir: Path) -> Iterator[str]:
    configured = server.configured_url()
    if configured:
        with scratch_database(configured) as url:
            os.environ[server.DATABASE_URL_ENV] = url
            yield url
        os.environ[server.DATABASE_URL_ENV] = configured
    else:
        yield server.database_url()
        server.stop_embedded()


def emptied_warehouse(url: str) -> sa.Engine:
    engine = db.engine_for(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"TRUNCATE {', '.join('analytics.' + t for t in ANALYTICS_TABLES)}"))
        if findings.exists(conn):  # not in schema.sql: findings_index creates it where pgvector is
            conn.execute(sa.text("TRUNCATE analytics.findings"))
    return engine


@pytest.fixture
def engine(warehouse_url: str) -> sa.Engine:
    """The warehouse with every analytics table emptied, so each test sees only what it loads."""
    return emptied_warehouse(warehouse_url)


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.ephemeral() as instance:
        yield instance


@pytest.fixture
def folders(tmp_path: Path):
    from analytics_pipeline.resources import UploadFolders

    folders = UploadFolders(
        uploads=str(tmp_path / "uploads"), archive=str(tmp_path / "archive"), quarantine=str(tmp_path / "quarantine")
    )
    for path in (folders.uploads_path, folders.archive_path, folders.quarantine_path):
        path.mkdir(parents=True)
    return folders


def drop_samples(folders, names: list[str] | None = None) -> list[Path]:
    """Copy bundled samples into the uploads folder of a test."""
    copied = []
    for sample in SAMPLE_FILES:
        if names is None or sample.name in names:
            copied.append(Path(shutil.copy2(sample, folders.uploads_path / sample.name)))
    return copied


def resources(folders) -> dict:
    from analytics_pipeline.definitions import defs

    return {**defs.resources, "folders": folders}


def load_uploads(instance: dg.DagsterInstance, folders, uploads: list[Path]) -> list[str]:
    """Register each file as a partition and run raw_uploads + transactions for it, as the sensor's runs do."""
    from analytics_pipeline.assets.transactions import transactions
    from analytics_pipeline.assets.uploads import raw_uploads
    from analytics_pipeline.ingestion import files

    keys = [files.describe(path).key for path in uploads]
    instance.add_dynamic_partitions("upload_files", keys)
    for key in keys:
        result = dg.materialize(
            [raw_uploads, transactions], instance=instance, partition_key=key, resources=resources(folders)
        )
        assert result.success
    return keys


def refresh_days(instance: dg.DagsterInstance, start: str, end: str, selection: list[str] | None = None):
    """Run the daily refresh job in one run over the month partitions holding the days start..end, as a single-run
    backfill does."""
    from analytics_pipeline.definitions import defs
    from analytics_pipeline.partitions import months_for, range_tags

    start, end = months_for(start, end)
    job = defs.resolve_job_def("daily_refresh_job")
    result = job.execute_in_process(
        instance=instance,
        tags=range_tags(start, end),
        asset_selection=[dg.AssetKey(name) for name in selection] if selection else None,
    )
    assert result.success
    return result


def materializations(result: dg.ExecuteInProcessResult, asset: str) -> list[dg.AssetMaterialization]:
    """One asset's materialisations in a run, by asset key: the four daily tables are one multi-asset step
    (daily_tables), so asset_materializations_for_node, which takes a step's node name, does not find them."""
    return [
        event.materialization
        for event in result.get_asset_materialization_events()
        if event.materialization.asset_key == dg.AssetKey(asset)
    ]


def benchmark_module(name: str):
    """A script of benchmarks/ imported as a module, as when it runs as a script (benchmarks/ on sys.path, for the
    scripts it imports beside it), for the tests that run a smaller version of what it measures."""
    import importlib.util
    import sys

    path = paths.PROJECT_ROOT / "benchmarks" / f"{name}.py"
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module
