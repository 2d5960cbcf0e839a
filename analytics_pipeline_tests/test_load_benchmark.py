"""The load benchmark at a small size: one run of benchmarks/load_benchmark.py (2,000 lines) must print its table with
every method in it, dlt's merge included with each of its loader file formats, and the targets' verdicts under it. The
figures themselves are benchmark results, not asserted here.

dlt runs from its own venv, which the benchmark installs from the package registry on first use (see its
docstring); the test is skipped only when that registry cannot be reached.
"""

import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest

from analytics_pipeline_tests.conftest import benchmark_module

ROWS = 2_000

bench = benchmark_module("load_benchmark")


def registry_reachable(folder) -> bool:
    """Whether pip can fetch dlt's pinned release at all (an install failing for another reason is a failure)."""
    fetched = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir", "--dest", str(folder),
         f"dlt=={bench.DLT_VERSION}"],
        capture_output=True, timeout=300,
    )
    return fetched.returncode == 0


@pytest.fixture(scope="module")
def dlt_python(tmp_path_factory):
    try:
        return bench.ensure_dlt_venv(bench.default_dlt_venv())
    except bench.DltInstallError:
        if not registry_reachable(tmp_path_factory.mktemp("pip-probe")):
            pytest.skip("the package registry cannot be reached, so dlt's venv cannot be installed")
        raise


@pytest.fixture(scope="module")
def report(dlt_python, tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("load_benchmark") / "results.md"
    bench.main(["--rows", str(ROWS), "--out", str(out), "--dlt-venv", str(dlt_python.parent.parent)])
    return out.read_text()


def table(report: str) -> dict[str, list[str]]:
    """Method -> its cells (seconds, rows/s, vs bare COPY, peak RSS)."""
    rows = {}
    for line in report.splitlines():
        if line.startswith(f"| {ROWS:,} |"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            rows[cells[1]] = cells[2:]
    return rows


def test_the_table_has_every_method_measured(report) -> None:
    rows = table(report)
    methods = list(rows)
    assert methods[0].startswith("bare COPY") and methods[1].startswith("project")
    assert any(method.startswith("floor:") for method in methods)
    assert any(method.startswith("pandas") for method in methods)
    dlt = {loader: [m for m in methods if m.startswith(f"dlt merge, Arrow batches, loader {loader} ")]
           for loader in bench.DLT_FORMATS}
    assert all(len(found) == 1 for found in dlt.values()), dlt
    for (method,) in dlt.values():  # each format ran here, in its own process: seconds, rates and its peak RSS
        seconds, rate, vs_copy, rss = rows[method]
        assert float(seconds) > 0 and int(rate.replace(",", "")) > 0 and float(vs_copy) > 0, rows[method]
        assert rss.endswith(" MiB") and int(rss.split()[0].replace(",", "")) > 0, rows[method]
    fastest = [method for method in methods if method.endswith("the fastest dlt, used for the target")]
    assert len(fastest) == 1
    assert float(rows[fastest[0]][0]) == min(float(rows[m][0]) for (m,) in dlt.values())


def test_the_targets_name_every_comparison(report) -> None:
    targets = report.split("## Targets")[1].split("## Machine")[0]
    assert "project / bare COPY = " in targets and f"(target >= {bench.COPY_TARGET})" in targets
    assert "project / dlt merge = " in targets and "dlt's fastest loader format here: " in targets
    assert f"(target >= {bench.DLT_TARGET:.0f}x)" in targets
    assert f"(target >= {bench.PROJECT_TARGET:.0f}x)" in targets and "project peak RSS" in targets
    assert "DIFFERS" not in targets  # the project loaded rows - bad - duplicates (dlt's count is checked by the run)
    assert f"dlt / pyarrow / ADBC Postgres driver / psycopg2, in dlt's own venv: {bench.DLT_VERSION} /" in report


def test_dlt_lives_in_its_own_venv(dlt_python) -> None:
    assert not dlt_python.resolve().is_relative_to(Path(sys.prefix).resolve())
    found = subprocess.run([sys.executable, "-c", "import dlt"], capture_output=True)
    assert found.returncode != 0, "dlt must not be installed in the project's venv"


# ------------------------------------------------------- the size policy and the report, on hand-made numbers


def fake_bench(runs: dict[str, list[tuple[int, float]]], all_up_to: int = 1_000_000, timeout: float = 300.0):
    args = Namespace(dlt_formats=list(bench.DLT_FORMATS), dlt_all_formats_up_to=all_up_to, dlt_timeout=timeout)
    measured = {fmt: [bench.Measurement(rows, bench.dlt_method(fmt), seconds) for rows, seconds in sizes]
                for fmt, sizes in runs.items()}
    return Namespace(args=args, dlt_runs=measured)


def test_above_the_limit_only_the_fastest_format_at_the_largest_size_where_all_ran() -> None:
    runs = {"insert_values": [(1_000, 1.0), (1_000_000, 50.0)], "csv": [(1_000, 0.5), (1_000_000, 30.0)],
            "parquet": [(1_000, 0.4), (1_000_000, 35.0)]}
    assert bench.dlt_formats_to_run(fake_bench(runs), 1_000_000) == list(bench.DLT_FORMATS)
    assert bench.dlt_formats_to_run(fake_bench(runs), 5_000_000) == ["csv"]  # parquet was faster only at 1k
    assert bench.dlt_formats_to_run(fake_bench({}), 5_000_000) == list(bench.DLT_FORMATS)  # nothing ran before


def size_result(dlt: list, project_seconds: float = 10.0):
    """1M rows: bare COPY 2 s, the project ``project_seconds``, the given dlt runs."""
    m, rows = bench.Measurement, 1_000_000
    steps = [m(rows, "  raw_uploads step (stage)", 3.0, is_step=True),
             m(rows, "  transactions step (promote)", 6.0, is_step=True)]
    floors = [m(rows, "floor: no index", 2.0), m(rows, "floor: indexes", 8.0)]
    return bench.SizeResult(
        rows, rows, rows, m(rows, "bare COPY (server-side file)", 2.0, 100 << 20),
        m(rows, "project", project_seconds, 500 << 20), steps, floors, dlt, bench.fastest(dlt),
        m(rows, "pandas read_csv + to_sql", 100.0, 900 << 20),
    )


def test_estimated_and_stopped_dlt_runs_are_reported_as_such() -> None:
    m, rows = bench.Measurement, 1_000_000
    estimated = m(rows, bench.dlt_method("insert_values"), 500.0, estimated_from=100_000)
    stopped = m(rows, bench.dlt_method("csv"), 300.0, timed_out=True)
    ran = m(rows, bench.dlt_method("parquet"), 45.0, 400 << 20)
    result = size_result([estimated, stopped, ran])
    assert result.dlt_best is ran  # a real run wins over faster-looking estimates or limits
    lines = "\n".join(bench.table_rows(result))
    assert "not run (estimated from 100k: 500 s) | ~2,000 | ~0.00 |" in lines
    assert "> 300 (stopped) | < 3,333 |" in lines
    assert "loader parquet (ADBC bulk ingest): the fastest dlt, used for the target | 45.0 | 22,222 |" in lines
    assert bench.dlt_target_line(result) == (
        "- 1M rows: project / dlt merge = 4.5x (dlt's fastest loader format here: parquet) (target >= 4x): met")

    only_stopped = size_result([stopped], project_seconds=100.0)
    assert bench.dlt_target_line(only_stopped).endswith("(target >= 4x): unknown (raise --dlt-timeout)")
    assert "> 3.0x faster than dlt merge" in bench.dlt_target_line(only_stopped)
    only_estimated = size_result([estimated], project_seconds=100.0)
    assert bench.dlt_target_line(only_estimated) == (
        "- 1M rows: project / dlt merge = 5.0x (dlt's fastest loader format here: insert_values, estimated from "
        "100k) (target >= 4x): met")


def test_dlt_gets_a_url_with_a_host() -> None:
    import sqlalchemy as sa

    socket = sa.engine.make_url(bench.dlt_url("postgresql+psycopg2://postgres:@/analytics?host=/tmp/data/postgres"))
    assert (socket.drivername, socket.host, socket.database) == ("postgresql", "localhost", "analytics")
    assert socket.query == {"host": "/tmp/data/postgres"}  # libpq's choice over the URL's host: the socket
    tcp = "postgresql+psycopg2://me:secret@db.internal:5433/warehouse"
    assert bench.dlt_url(tcp) == "postgresql://me:secret@db.internal:5433/warehouse"
