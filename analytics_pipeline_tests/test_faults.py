"""Real faults under `analytics dev`: a run worker killed with SIGKILL in the middle of a load.

Nothing is stubbed: the file is loaded by the sensor's run in its own process, the test kills that process, and the
daemon's run monitoring (MonitoredRunLauncher's health check) must fail the run, free its pool slots and let run
retries load the file - exactly once - with no one touching anything.
"""

import os
import re
import signal
import subprocess
import sys
import time

from analytics_pipeline import paths
from analytics_pipeline_tests.stack import Stack, dev_stack, user_environment, wait_for

ROWS = 1_000_000  # a load of tens of seconds on this machine: long enough to be killed in the middle
KILL_AFTER_SECONDS = 3  # into the staging of the file
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}

RUN_EVENTS = """
query($id: ID!) {
  runOrError(runId: $id) {
    ... on Run { status eventConnection(afterCursor: null) { events { __typename ... on MessageEvent { message } } } }
  }
}
"""


def _ingest_runs(stack: Stack) -> list[dict]:
    return sorted((r for r in stack.runs() if r["jobName"] == "ingest_upload_job"), key=lambda r: r["creationTime"])


def _worker_pid(stack: Stack, run_id: str) -> int | None:
    """The run worker's pid, once it has started a step (so the kill lands inside the load, not in its start-up)."""
    events = stack.graphql(RUN_EVENTS, {"id": run_id})["runOrError"]["eventConnection"]["events"]
    messages = [event.get("message") or "" for event in events]
    if not any(m.startswith("Started execution of step") for m in messages):
        return None
    for message in messages:
        found = re.search(r"Started process for run \(pid: (\d+)\)", message)
        if found:
            return int(found.group(1))
    return None


def test_a_killed_run_worker_is_failed_its_slots_freed_and_the_file_loaded_once(data_dir):
    data = data_dir / "faults"
    generated = data_dir / "fault_input" / "orders_big.csv"
    generated.parent.mkdir(parents=True)
    subprocess.run(
        [sys.executable, str(paths.PROJECT_ROOT / "benchmarks" / "generate_transactions.py"), "--shape", "retail",
         "--rows", str(ROWS), "--out", str(generated)],
        check=True, capture_output=True,
    )
    with user_environment(data) as env, dev_stack(data, env) as stack:
        os.replace(generated, data / "uploads" / generated.name)  # appears whole, settled at once (old mtime)

        [first] = wait_for(lambda: [r for r in _ingest_runs(stack) if r["status"] == "STARTED"], 180,
                           "the ingest run to start", interval=1)
        pid = wait_for(lambda: _worker_pid(stack, first["runId"]), 120, "the run worker's first step", interval=0.5)
        time.sleep(KILL_AFTER_SECONDS)
        os.kill(pid, signal.SIGKILL)

        # Run monitoring notices within its poll interval (15 s) and fails the run; run retries start it again.
        failed = wait_for(lambda: _status(stack, first["runId"]) == "FAILURE", 120, "the killed run to be failed")
        assert failed
        retry = wait_for(
            lambda: [r for r in _ingest_runs(stack) if r["runId"] != first["runId"] and r["status"] in TERMINAL],
            600, "the retry run to finish",
        )
        assert [r["status"] for r in retry] == ["SUCCESS"], retry
        tags = {t["key"]: t["value"] for t in retry[0]["tags"]}
        assert tags.get("dagster/parent_run_id") == first["runId"]

        # The file loaded exactly once, every good row of it, and nothing holds a pool slot any more.
        [(status, loaded, files)] = stack.rows(
            "SELECT min(status), sum(rows_loaded), count(*) FROM analytics.ingested_files"
        )
        assert (status, files) == ("loaded", 1)
        assert stack.scalar("SELECT count(*) FROM analytics.transactions") == loaded == ROWS
        wait_for(lambda: stack.scalar("SELECT count(*) FROM concurrency_slots WHERE run_id IS NOT NULL") == 0, 60,
                 "the pool slots to be free")
        assert not list((data / "uploads").iterdir())


def _status(stack: Stack, run_id: str) -> str:
    return stack.graphql(RUN_EVENTS, {"id": run_id})["runOrError"]["status"]
