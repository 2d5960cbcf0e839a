"""Kill trials: the run worker of a real load (100,000 retail lines, 0.5% broken, 0.5% duplicated) killed with SIGKILL
at a random point, then the partition retried as run retries would: the books balance every time.

The trial itself lives in benchmarks/kill_trials.py (which runs 100 of them); here it runs against the session's
Postgres, each trial on a fresh partition and an emptied warehouse. See that script for what "balance" checks.
"""

import pytest

from analytics_pipeline.warehouse import canonical
from analytics_pipeline_tests.conftest import benchmark_module

ROWS = 100_000
RANDOM_SEEDS = range(1, 11)  # killed anywhere between 0.5 s and an uncut load's duration
PROMOTE_SEEDS = range(11, 14)  # killed inside the transactions step (the registry says "staged")
PROMOTE_ATTEMPTS = 3
BIG_FILE_SEEDS = range(21, 25)  # the same, loaded as a big file: typed on the way, landed as its own partition


kill_trials = benchmark_module("kill_trials")


@pytest.fixture(scope="module")
def bench(warehouse_url, tmp_path_factory):
    """The generated file, the folders and Dagster home of the trials, and an uncut load's timing."""
    from analytics_pipeline_tests.conftest import emptied_warehouse

    emptied_warehouse(warehouse_url)
    return kill_trials.prepare(tmp_path_factory.mktemp("kill_trials"), ROWS, warehouse_url)


def _explain(result) -> str:
    return f"trial {result.trial} killed during {result.killed_during} at {result.kill_after}: {result.problems}"


@pytest.mark.parametrize("seed", RANDOM_SEEDS)
def test_a_load_killed_at_a_random_point_balances_after_its_retry(bench, engine, seed):
    result = kill_trials.run_trial(bench, trial=seed, seed=seed)
    assert result.balanced, _explain(result)


@pytest.mark.parametrize("seed", PROMOTE_SEEDS)
def test_a_load_killed_while_promoting_balances_after_its_retry(bench, engine, seed):
    # The kill's delay is drawn from the uncut load's timing, and a busy machine can finish the promote first: each
    # attempt must balance, and one of at most PROMOTE_ATTEMPTS must land inside the promote.
    results = []
    for attempt in range(PROMOTE_ATTEMPTS):
        result = kill_trials.run_trial(bench, trial=seed * 10 + attempt, seed=seed * 10 + attempt, during_promote=True)
        assert result.balanced, _explain(result)
        results.append(result)
        if result.killed_during == "promote":
            break
    assert results[-1].killed_during == "promote", [_explain(r) for r in results]


@pytest.mark.parametrize("seed", BIG_FILE_SEEDS)
def test_a_big_file_load_killed_at_a_random_point_balances_after_its_retry(bench, engine, seed, monkeypatch):
    monkeypatch.setenv(canonical.BULK_BYTES_ENV, "0")  # the worker and the retry inherit it
    result = kill_trials.run_trial(bench, trial=seed, seed=seed)
    assert result.balanced, _explain(result)
