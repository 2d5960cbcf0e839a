#!/usr/bin/env python3
"""Kill trials: a real load's run worker killed with SIGKILL at a random point, retried, and its books checked.

Each trial drops a generated retail file (``--rows`` lines, 0.5% broken and 0.5% exact duplicate lines, from
benchmarks/generate_transactions.py) into the watched folder as a new ``upload_files`` partition and loads it the
way the sensor's run does - ``dg.materialize([raw_uploads, transactions])`` on a persistent Dagster instance whose
storage is the warehouse Postgres - but in a worker process of its own, which it kills with SIGKILL after a seeded
random delay between 0.5 s and the measured duration of an uncut load (or, for a share of the trials, a moment after
the registry says ``staged``: inside the transactions step). Then the partition is materialised again in-process, as
run retries do, and the books must balance:

* ``ingested_files`` has one row for the key: ``loaded``, rows_read = the file's lines, rows_loaded = the good ones,
  rows_rejected = the broken ones, duplicate_rows = the repeated ones, and rows_read = loaded + rejected + duplicate;
* ``transactions`` holds exactly the good rows under the key, ``rejected_rows`` exactly the broken ones, and
  ``raw_uploads`` the file's lines once (what a loaded file keeps: its staged text rows, not a killed run's too);
* the file is in the archive (``archive/<key>/<name>``), not in the watched folder, and not quarantined.

The expected counts come from the generator's Summary, not from the loader. Every trial's file has its own invoice
numbers (shifted by trial), so no two trials share a transaction id and none replaces another's rows.

The server is the project's: with ANALYTICS_DATABASE_URL set, a scratch database on that server (dropped at the
end); unset, the embedded PostgreSQL in a temp data directory (stopped at the end). Exits 1 when any trial's books do
not balance. ``analytics_pipeline_tests/test_kill_trials.py`` runs the same trials (``prepare``, ``run_trial``).

Run (from the project root)::

    .venv/bin/python benchmarks/kill_trials.py --trials 100 --rows 150000 --seed 1
"""

import argparse
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

# benchmarks/ is on sys.path when this file runs as a script (test_kill_trials puts it there too)
from load_benchmark import benchmark_server, load_generator

from analytics_pipeline import paths
from analytics_pipeline.warehouse import canonical, db, server

BAD_SHARE = DUP_SHARE = 0.005
MIN_KILL_SECONDS = 0.5
INVOICE_SHIFT = 10**6  # per trial: more invoices than any trial's file holds
READY = "materializing"  # the worker's one stdout line, printed right before the load starts
WORKER_START_TIMEOUT = 180
POLL_SECONDS = 0.02
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
# Storage only: the warehouse Postgres, as in dagster.yaml. No pools and no run monitoring: the trials are about the
# warehouse's books, not about freeing a dead run's slot (test_faults.py covers that under `analytics dev`).
DAGSTER_YAML = """\
storage:
  custom:
    module: analytics_pipeline.warehouse.dagster_storage
    class: WarehouseDagsterStorage
    config: {}
telemetry:
  enabled: false
"""
PHASES = ("staging", "promote", "after the commit", "finished first")


@dataclass(frozen=True)
class SourceFile:
    """The generated file every trial copies, and what the generator says is in it."""

    path: Path
    rows: int
    bad: int
    duplicates: int

    @property
    def good(self) -> int:
        return self.rows - self.bad - self.duplicates


@dataclass
class Bench:
    source: SourceFile
    folders: object  # UploadFolders
    dagster_home: Path
    database_url: str
    logs: Path
    load_seconds: float = 0.0  # an uncut load: the worker's READY line to its exit
    staged_after: float = 0.0  # when the registry said "staged" in that load


@dataclass
class TrialResult:
    trial: int
    key: str
    killed_during: str  # one of PHASES
    kill_after: float | None  # seconds after READY; None when the worker finished first
    problems: list[str] = field(default_factory=list)

    @property
    def balanced(self) -> bool:
        return not self.problems


# ----------------------------------------------------------------------------------------------------- setup


def prepare(work: Path, rows: int, database_url: str, seed: int = 7) -> Bench:
    """Generate the file, make the folders and the Dagster home, and time one uncut load (its books checked too)."""
    from analytics_pipeline.resources import UploadFolders

    work.mkdir(parents=True, exist_ok=True)
    path = work / "source" / "retail.csv"
    summary = load_generator().generate("retail", rows, path, seed=seed, bad_share=BAD_SHARE, dup_share=DUP_SHARE)
    source = SourceFile(path, summary.rows, sum(summary.bad_rows.values()), summary.duplicate_rows)
    folders = UploadFolders(
        uploads=str(work / "uploads"), archive=str(work / "archive"), quarantine=str(work / "quarantine")
    )
    for folder in (folders.uploads_path, folders.archive_path, folders.quarantine_path, work / "logs"):
        folder.mkdir(parents=True, exist_ok=True)
    home = work / "dagster_home"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    bench = Bench(source, folders, home, database_url, work / "logs")
    calibration = run_trial(bench, trial=0, seed=seed, kill=False)
    if not calibration.balanced:
        raise RuntimeError(f"an uncut load does not balance: {calibration.problems}")
    return bench


@contextmanager
def instance_of(bench: Bench):
    """The persistent instance the workers use (DAGSTER_HOME is the public way to name one)."""
    import dagster as dg

    previous = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(bench.dagster_home)
    try:
        with dg.DagsterInstance.get() as instance:
            yield instance
    finally:
        if previous is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = previous


def drop_variant(bench: Bench, trial: int) -> Path:
    """The source file with every invoice number shifted by the trial, dropped under a name of its own: a new
    partition key, and transaction ids no other trial has. Broken lines stay broken (an empty invoice stays empty),
    duplicates stay duplicates, so the generator's counts still hold."""
    shift = trial * INVOICE_SHIFT
    target = bench.folders.uploads_path / f"kill_trial_{trial:04d}.csv"
    with bench.source.path.open(newline="") as src, target.open("w", newline="") as out:
        out.write(src.readline())
        for line in src:
            invoice, comma, rest = line.partition(",")
            if invoice:
                prefix = "C" if invoice.startswith("C") else ""
                invoice = f"{prefix}{int(invoice.lstrip('C')) + shift}"
            out.write(invoice + comma + rest)
    return target


# ----------------------------------------------------------------------------------------------------- a trial


def worker_env(bench: Bench) -> dict[str, str]:
    return {
        **os.environ,
        server.DATABASE_URL_ENV: bench.database_url,
        paths.DATA_DIR_ENV: str(paths.data_dir()),
        "DAGSTER_HOME": str(bench.dagster_home),
    }


def resources(bench_folders, database_url: str) -> dict:
    from analytics_pipeline.definitions import defs
    from analytics_pipeline.resources import Warehouse

    return {**defs.resources, "folders": bench_folders, "warehouse": Warehouse(database_url=database_url)}


def status_of(engine: sa.Engine, key: str) -> str | None:
    with engine.connect() as conn:
        return conn.execute(
            sa.text("SELECT status FROM analytics.ingested_files WHERE file_key = :key"), {"key": key}
        ).scalar()


def run_trial(bench: Bench, trial: int, seed: int, kill: bool = True, during_promote: bool = False) -> TrialResult:
    """One trial: load in a worker, kill it (unless ``kill`` is False), retry in-process, check the books."""
    from analytics_pipeline.ingestion import files

    rng = random.Random(f"{seed}-{trial}")
    engine = db.engine_for(bench.database_url)
    path = drop_variant(bench, trial)
    key = files.describe(path).key
    with instance_of(bench) as instance:
        instance.add_dynamic_partitions("upload_files", [key])
    log = (bench.logs / f"{key}.log").open("w")
    worker = subprocess.Popen(
        [sys.executable, __file__, "--worker", key, "--uploads", str(bench.folders.uploads_path),
         "--archive", str(bench.folders.archive_path), "--quarantine", str(bench.folders.quarantine_path)],
        stdout=subprocess.PIPE, stderr=log, text=True, env=worker_env(bench), cwd=paths.PROJECT_ROOT,
    )
    try:
        started = _await_ready(worker)
        kill_after = None
        if not kill:
            staged_after = None
            while worker.poll() is None:  # time the load and when it reached "staged", for the killing trials
                if staged_after is None and status_of(engine, key) == "staged":
                    staged_after = time.monotonic() - started
                time.sleep(POLL_SECONDS)
            bench.load_seconds = time.monotonic() - started
            bench.staged_after = staged_after or bench.load_seconds / 2
        elif during_promote:
            while worker.poll() is None and status_of(engine, key) is None:
                time.sleep(POLL_SECONDS)
            # Into the transactions step: within the first half of what promoting took in the uncut load.
            kill_after = _kill_at(worker, rng.uniform(0, (bench.load_seconds - bench.staged_after) / 2), started)
        else:
            delay = rng.uniform(MIN_KILL_SECONDS, max(bench.load_seconds, MIN_KILL_SECONDS))
            kill_after = _kill_at(worker, delay - (time.monotonic() - started), started)
    finally:
        if worker.poll() is None:
            worker.kill()
        worker.wait()
        worker.stdout.close()
        log.close()
    status = status_of(engine, key)
    if kill_after is None:
        phase = "finished first"
    else:
        phase = {None: "staging", "staged": "promote"}.get(status, "after the commit")
    problems = [] if worker.returncode in (0, -signal.SIGKILL) else [f"the worker exited with {worker.returncode}"]
    problems += retry(bench, key)
    problems += books(engine, bench, key, path.name)
    return TrialResult(trial, key, phase, kill_after, problems)


def _await_ready(worker: subprocess.Popen) -> float:
    ready, _, _ = select.select([worker.stdout], [], [], WORKER_START_TIMEOUT)
    line = worker.stdout.readline() if ready else ""
    if line.strip() != READY:
        raise RuntimeError(f"the worker did not start its load (said {line!r}, exit code {worker.poll()})")
    return time.monotonic()


def _kill_at(worker: subprocess.Popen, delay: float, started: float) -> float | None:
    """SIGKILL the worker after ``delay`` more seconds: when, counted from its READY line; None when it had
    finished by then."""
    try:
        worker.wait(timeout=max(delay, 0))
        return None
    except subprocess.TimeoutExpired:
        os.kill(worker.pid, signal.SIGKILL)
        killed_at = time.monotonic() - started
        worker.wait()
        return killed_at


def retry(bench: Bench, key: str) -> list[str]:
    """What run retries do: the same partition materialised again, here in-process on the same instance."""
    import dagster as dg

    from analytics_pipeline.assets.transactions import transactions
    from analytics_pipeline.assets.uploads import raw_uploads

    with instance_of(bench) as instance:
        result = dg.materialize(
            [raw_uploads, transactions], instance=instance, partition_key=key, run_config=QUIET,
            resources=resources(bench.folders, bench.database_url), raise_on_error=False,
        )
    return [] if result.success else [f"the retry run {result.run_id} failed"]


def books(engine: sa.Engine, bench: Bench, key: str, name: str) -> list[str]:
    """What does not balance for ``key`` after its retry (nothing, when all is well)."""
    source = bench.source
    with engine.connect() as conn:
        registered = conn.execute(
            sa.text("SELECT status, rows_read, rows_loaded, rows_rejected, duplicate_rows "
                    "FROM analytics.ingested_files WHERE file_key = :key"),
            {"key": key},
        ).mappings().all()
        counts = {
            table: conn.execute(sa.text(f"SELECT count(*) FROM analytics.{table} WHERE {column} = :key"),
                                {"key": key}).scalar()
            for table, column in (("transactions", "source"), ("rejected_rows", "file_key"),
                                  ("raw_uploads", "file_key"))
        }
    if len(registered) != 1:
        return [f"ingested_files has {len(registered)} rows for {key}"]
    row = dict(registered[0])
    expected = {"status": "loaded", "rows_read": source.rows, "rows_loaded": source.good,
                "rows_rejected": source.bad, "duplicate_rows": source.duplicates}
    problems = [f"ingested_files.{k} is {row[k]!r}, expected {v!r}" for k, v in expected.items() if row[k] != v]
    if row["status"] == "loaded" and row["rows_read"] != row["rows_loaded"] + row["rows_rejected"] + row[
            "duplicate_rows"]:
        problems.append(f"rows_read {row['rows_read']} != loaded + rejected + duplicate ({row})")
    # A big file keeps as text only the lines Postgres had to decide; of the generator's lines, those are the bad ones.
    staged = source.bad if canonical.is_big(source.path.stat().st_size) else source.rows
    for table, want in (("transactions", source.good), ("rejected_rows", source.bad), ("raw_uploads", staged)):
        if counts[table] != want:
            problems.append(f"{table} holds {counts[table]} rows of the key, expected {want}")
    folders = bench.folders
    if not (folders.archive_path / key / name).is_file():
        problems.append(f"{name} is not in the archive at {key}/{name}")
    if (folders.uploads_path / name).exists():
        problems.append(f"{name} is still in the watched folder")
    if (folders.quarantine_path / key).exists():
        problems.append(f"{name} has a quarantine folder")
    return problems


# ----------------------------------------------------------------------------------------------------- the worker


def worker_main(args: argparse.Namespace) -> int:
    """The run worker a trial kills: one materialisation of the partition on the persistent instance."""
    warnings.simplefilter("ignore")  # Dagster's beta/supersession notices are not results
    import dagster as dg

    from analytics_pipeline.assets.transactions import transactions
    from analytics_pipeline.assets.uploads import raw_uploads
    from analytics_pipeline.resources import UploadFolders

    url = server.database_url()
    db.engine_for(url)  # connected, schema checked: the clock starts at the load
    folders = UploadFolders(uploads=args.uploads, archive=args.archive, quarantine=args.quarantine)
    with dg.DagsterInstance.get() as instance:
        print(READY, flush=True)
        result = dg.materialize(
            [raw_uploads, transactions], instance=instance, partition_key=args.worker, run_config=QUIET,
            resources=resources(folders, url), raise_on_error=False,
        )
    return 0 if result.success else 1


# ----------------------------------------------------------------------------------------------------- the script


def report(results: list[TrialResult], bench: Bench, seconds: float) -> str:
    phases = Counter(r.killed_during for r in results)
    header = ["trials", *(f"killed during {p}" if p in PHASES[:2] else p for p in PHASES), "all balanced",
              "rows per file", "uncut load (s)", "wall (s)"]
    values = [len(results), *(phases[p] for p in PHASES), "yes" if all(r.balanced for r in results) else "no",
              f"{bench.source.rows:,}", f"{bench.load_seconds:.1f}", f"{seconds:.0f}"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
             "| " + " | ".join(str(v) for v in values) + " |"]
    for result in results:
        if not result.balanced:
            lines.append(f"trial {result.trial} ({result.key}, killed during {result.killed_during}): "
                         + "; ".join(result.problems))
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--rows", type=int, default=150_000, help="data lines per file")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--promote-share", type=float, default=0.2,
                        help="share of trials killed just after the registry says staged (in the transactions step)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: run one load as a killable worker
    for name in ("--uploads", "--archive", "--quarantine"):
        parser.add_argument(name, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker_main(args)
    warnings.simplefilter("ignore")
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="kill-trials-"))
    work.chmod(0o755)  # the embedded server runs as its own OS user and keeps its data under this directory
    results: list[TrialResult] = []
    try:
        with benchmark_server(work / "data") as warehouse:
            url = warehouse.url
            bench = prepare(work / "trials", args.rows, url, seed=args.seed)
            promote_rng = random.Random(args.seed)
            for trial in range(1, args.trials + 1):
                during_promote = promote_rng.random() < args.promote_share
                result = run_trial(bench, trial, args.seed, during_promote=during_promote)
                results.append(result)
                when = ("not killed, it finished first" if result.kill_after is None
                        else f"killed during {result.killed_during} ({result.kill_after:.2f} s)")
                print(f"trial {trial}: {when}, "
                      f"{'balanced' if result.balanced else 'NOT BALANCED: ' + '; '.join(result.problems)}",
                      file=sys.stderr, flush=True)
            db.engine_for(url).dispose()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(report(results, bench, time.perf_counter() - started))
    return 0 if results and all(r.balanced for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
