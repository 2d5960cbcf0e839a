#!/usr/bin/env python3
"""Many files at once: ``--files`` small exports copied into the watched folder together, under `analytics dev` (the
real webserver, daemon, sensors and run queue, its own embedded Postgres, nothing configured), timed until every file
is loaded or quarantined and the daily tables are refreshed.

The files are as messy as a shop's exports: ``--rows`` retail lines each over 2025, every tenth file with one line
whose date cannot be read, every hundredth with no usable columns at all (quarantined), every fiftieth a byte-for-byte
copy of its neighbour under another name (loaded once, the copy archived beside it). Each is written elsewhere and
renamed into the folder, all within a second, as a sync tool would.

Reported: seconds from the copy to the last file's outcome in the registry (``loaded``), and to the refresh of the
days they touched (``refreshed``: the daily tables' revenue equals the transactions' again); ingest runs and files
per run; and the books (every file accounted, rows per file, nothing left in the folder), which must balance.

Run (from the project root)::

    .venv/bin/python benchmarks/many_files.py --files 1000 --rows 20

Target (issue 10): 1,000 small files dropped at once are all loaded exactly once in under 5 minutes on this machine.
"""

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analytics_pipeline_tests.stack import Stack, dev_stack, user_environment, wait_for  # noqa: E402

HEADER = "InvoiceNo,InvoiceDate,UnitPrice,Quantity,CustomerID,Country,Description\n"
UNUSABLE = "warehouse,shelf,sku_count\nA,3,{index}\nB,4,7\n"  # an inventory export dropped by mistake
COUNTRIES = ("United Kingdom", "France", "Germany", "Netherlands", "Spain")


@dataclass(frozen=True)
class Drop:
    """What the dropped files must come to: file name -> loaded rows (None: quarantined), and the copies."""

    loaded: dict[str, int | None]
    copies: dict[str, str]  # copy's name -> the original's name
    revenue: float


def write_files(folder: Path, count: int, rows: int) -> Drop:
    folder.mkdir(parents=True, exist_ok=True)
    loaded: dict[str, int | None] = {}
    copies: dict[str, str] = {}
    revenue = 0.0
    previous = None
    for index in range(count):
        name = f"store_{index:04d}_orders.csv"
        if index % 50 == 11 and previous is not None:
            (folder / name).write_bytes((folder / previous).read_bytes())
            copies[name] = previous
            continue
        if index % 100 == 7:
            (folder / name).write_text(UNUSABLE.format(index=index))
            loaded[name] = None
            previous = name
            continue
        lines, good = [HEADER], 0
        for line in range(rows):
            day = date(2025, 1, 1) + timedelta(days=(index * 7 + line) % 365)
            price, quantity = 1 + (index + line) % 17 * 0.75, 1 + line % 4
            stamp = "31/02/2025 10:00" if index % 10 == 3 and line == 5 else f"{day.isoformat()} {8 + line % 10}:15"
            lines.append(f"S{index:04d}-{line},{stamp},{price:.2f},{quantity},C{line % 37},"
                         f"{COUNTRIES[(index + line) % len(COUNTRIES)]},item {line % 9}\n")
            if not stamp.startswith("31/02"):
                good += 1
                revenue += round(price * quantity, 2)
        (folder / name).write_text("".join(lines))
        loaded[name] = good
        previous = name
    return Drop(loaded, copies, revenue)


def drop(staging: Path, uploads: Path) -> float:
    """Rename every file into the watched folder (one file system: each appears whole); returns the clock start."""
    started = time.monotonic()
    for path in sorted(staging.iterdir()):
        os.replace(path, uploads / path.name)
    return started


TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}


def settled(stack: Stack, drop_: Drop) -> bool:
    """Every file has its outcome, the folder is empty (copies moved beside their originals) and every ingest run has
    ended. A run commits each file's outcome before it writes that file's materialisation, so the registry can be
    complete while the last run is still recording its events."""
    try:
        done = stack.scalar("SELECT count(*) FROM analytics.ingested_files WHERE status IN ('loaded', 'quarantined')")
    except sa.exc.ProgrammingError:  # the first tick has not created the tables yet
        return False
    if done != len(drop_.loaded) or any((stack.data / "uploads").iterdir()):
        return False
    return all(r["status"] in TERMINAL for r in stack.runs() if r["jobName"] == "ingest_upload_job")


def refreshed(stack: Stack) -> bool:
    metrics = stack.scalar("SELECT coalesce(sum(revenue), 0) FROM analytics.daily_metrics")
    loaded = stack.scalar("SELECT coalesce(sum(amount), 0) FROM analytics.transactions")
    return loaded > 0 and abs(float(metrics) - float(loaded)) < 0.01


def diagnosis(stack: Stack) -> str:
    """Where things stand when the files did not settle in time."""
    statuses = stack.rows("SELECT status, count(*) FROM analytics.ingested_files GROUP BY status")
    left = sorted(p.name for p in (stack.data / "uploads").iterdir())
    runs: dict[str, int] = {}
    for run in stack.runs():
        runs[f"{run['jobName']} {run['status']}"] = runs.get(f"{run['jobName']} {run['status']}", 0) + 1
    return f"registry: {statuses}; left in the folder ({len(left)}): {left[:10]}; runs: {runs}"


def books(stack: Stack, drop_: Drop, allow_failed_runs: bool = False) -> list[str]:
    """What does not balance; empty when every file and row is accounted for. Failed ingest runs count as a problem
    unless the caller killed them (``allow_failed_runs``: their retries must still have loaded every file)."""
    problems = []
    registry = {name: (status, loaded) for name, status, loaded in stack.rows(
        "SELECT file_name, status, rows_loaded FROM analytics.ingested_files")}
    for name, rows in drop_.loaded.items():
        expected = ("quarantined", None) if rows is None else ("loaded", rows)
        if registry.get(name) != expected:
            problems.append(f"{name}: {registry.get(name)} in the registry, expected {expected}")
    for copy in drop_.copies:
        if copy in registry:
            problems.append(f"{copy}: a copy of {drop_.copies[copy]} was registered as a file of its own")
    per_source = dict(stack.rows(
        "SELECT f.file_name, count(t.*) FROM analytics.ingested_files f "
        "LEFT JOIN analytics.transactions t ON t.source = f.file_key GROUP BY f.file_name"))
    for name, rows in drop_.loaded.items():
        if per_source.get(name, 0) != (rows or 0):
            problems.append(f"{name}: {per_source.get(name)} transactions, expected {rows or 0}")
    archived = sorted(p.name for p in (stack.data / "archive").rglob("*.csv"))
    expected_archive = sorted([n for n, r in drop_.loaded.items() if r is not None] + list(drop_.copies))
    if archived != expected_archive:
        problems.append(f"archive holds {len(archived)} files, expected {len(expected_archive)}")
    total = float(stack.scalar("SELECT coalesce(sum(amount), 0) FROM analytics.transactions"))
    if abs(total - drop_.revenue) > 0.005:
        problems.append(f"revenue {total:.2f} loaded, {drop_.revenue:.2f} in the files")
    failed = [r["runId"] for r in stack.runs() if r["jobName"] == "ingest_upload_job" and r["status"] != "SUCCESS"]
    if failed and not allow_failed_runs:
        problems.append(f"ingest runs not successful: {failed[:5]}; first errors: {stack.run_errors(failed[0])[:5]}")
    return problems


def measure(files: int, rows: int, work: Path, timeout: float) -> dict:
    data = work / "data"
    drop_ = write_files(work / "staging", files, rows)
    with user_environment(data) as env, dev_stack(data, env) as stack:
        wait_for(lambda: (data / "uploads").is_dir(), 120, "the watched folder")
        started = drop(work / "staging", data / "uploads")
        started_at = time.time() - (time.monotonic() - started)
        try:
            wait_for(lambda: settled(stack, drop_), timeout, f"{files} files loaded", interval=1)
        except AssertionError:
            print(diagnosis(stack))
            raise
        loaded = time.monotonic() - started
        wait_for(lambda: refreshed(stack), timeout, "the refresh of the touched days", interval=1)
        refreshed_after = time.monotonic() - started
        ingest = [r for r in stack.runs() if r["jobName"] == "ingest_upload_job"]
        for run in sorted(ingest, key=lambda r: r["startTime"] or 0):
            tags = {t["key"]: t["value"] for t in run["tags"]}
            print(f"run {run['runId'][:8]}: {tags.get('upload/files')} files ({tags.get('upload/file_name')}),"
                  f" created {run['creationTime'] - started_at:.1f}"
                  f" started {(run['startTime'] or 0) - started_at:.1f} ended {(run['endTime'] or 0) - started_at:.1f}")
        return {
            "files": files,
            "rows_per_file": rows,
            "loaded_seconds": round(loaded, 1),
            "refreshed_seconds": round(refreshed_after, 1),
            "ingest_runs": len(ingest),
            "problems": books(stack, drop_),
        }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="many_files_") as work:
        result = measure(args.files, args.rows, Path(work), args.timeout)
    print("| files | rows each | all loaded | daily tables refreshed | ingest runs | books |")
    print("|---:|---:|---:|---:|---:|---|")
    print(f"| {result['files']:,} | {result['rows_per_file']} | {result['loaded_seconds']} s | "
          f"{result['refreshed_seconds']} s | {result['ingest_runs']} | "
          f"{'balanced' if not result['problems'] else '; '.join(result['problems'][:5])} |")
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
