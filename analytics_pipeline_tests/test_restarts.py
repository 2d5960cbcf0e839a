"""A bad day under `analytics dev` (the real daemon, run queue, sensors and run monitoring): many files at once, the
whole stack killed mid-load and started again, Postgres restarted under a running load. Afterwards, with no manual
step, every file is loaded exactly once and the books balance.

The files come from benchmarks/many_files.py (which times the same drop at 1,000 files): retail exports with a bad
line in every tenth, an unusable inventory export in every hundredth, and byte-for-byte copies under other names.
"""

import pytest

from analytics_pipeline.warehouse import server
from analytics_pipeline_tests.conftest import benchmark_module
from analytics_pipeline_tests.stack import dev_stack, run_cli, stop_embedded, user_environment, wait_for

FILES = 300
TIMEOUT = 600


many_files = benchmark_module("many_files")


def _ingest_runs(stack) -> list[dict]:
    return [r for r in stack.runs() if r["jobName"] == "ingest_upload_job"]


def test_many_files_dropped_at_once_load_exactly_once_in_shared_runs(tmp_path):
    data = tmp_path / "data"
    drop = many_files.write_files(tmp_path / "staging", FILES, rows=20)
    with user_environment(data) as env, dev_stack(data, env) as stack:
        wait_for(lambda: (data / "uploads").is_dir(), 120, "the watched folder")
        many_files.drop(tmp_path / "staging", data / "uploads")
        wait_for(lambda: many_files.settled(stack, drop), TIMEOUT, f"{FILES} files loaded", interval=2)
        assert many_files.books(stack, drop) == []
        runs = _ingest_runs(stack)
        # Files share runs (up to ANALYTICS_FILES_PER_RUN each); only files whose bytes equal a file still being
        # loaded wait for a later run of their own.
        assert len(runs) <= FILES // 100 + 3, [r["tags"] for r in runs]
        wait_for(lambda: many_files.refreshed(stack), TIMEOUT, "the refresh of the touched days")


def test_a_stack_killed_mid_load_and_started_again_loses_nothing(tmp_path):
    """SIGKILL of webserver, daemon and run workers while files load; the user starts `analytics dev` again."""
    data = tmp_path / "data"
    drop = many_files.write_files(tmp_path / "staging", FILES, rows=200)
    with user_environment(data) as env:
        with dev_stack(data, env) as stack:
            wait_for(lambda: (data / "uploads").is_dir(), 120, "the watched folder")
            many_files.drop(tmp_path / "staging", data / "uploads")
            # Killed once some files are loaded and others are not: a run is in the middle of its batch.
            wait_for(lambda: _partly_loaded(stack), TIMEOUT, "the first files loaded", interval=0.5)
            stack.kill()
        with dev_stack(data, env) as stack:
            wait_for(lambda: many_files.settled(stack, drop), TIMEOUT, f"{FILES} files loaded after the restart")
            assert many_files.books(stack, drop, allow_failed_runs=True) == []
            killed = [r for r in _ingest_runs(stack) if r["status"] == "FAILURE"]
            assert killed, "the killed run is failed by run monitoring and retried"


def test_postgres_restarted_under_a_running_load_loses_nothing(tmp_path):
    """The embedded Postgres stopped (fast shutdown: every connection cut) while files load, then started again,
    as `analytics stop` and `analytics db` do; the pipeline carries on by itself."""
    data = tmp_path / "data"
    drop = many_files.write_files(tmp_path / "staging", FILES, rows=200)
    with user_environment(data) as env:
        if server.DATABASE_URL_ENV in env:
            pytest.skip("a configured Postgres server is not the test's to restart; the embedded one is")
        with dev_stack(data, env) as stack:
            wait_for(lambda: (data / "uploads").is_dir(), 120, "the watched folder")
            many_files.drop(tmp_path / "staging", data / "uploads")
            wait_for(lambda: _partly_loaded(stack), TIMEOUT, "the first files loaded", interval=0.5)
            stop_embedded(env)
            assert run_cli(["db"], env, timeout=120).returncode == 0  # started again
            wait_for(lambda: many_files.settled(stack, drop), TIMEOUT, f"{FILES} files loaded after the restart")
            assert many_files.books(stack, drop, allow_failed_runs=True) == []


def _partly_loaded(stack) -> bool:
    try:
        loaded = stack.scalar("SELECT count(*) FROM analytics.ingested_files WHERE status = 'loaded'")
    except Exception:  # noqa: BLE001 - the tables appear with the first run
        return False
    return 0 < loaded < FILES // 2
