"""The run launcher of `analytics dev` and single-machine deployments: Dagster's default one, plus a health check.

Dagster's DefaultRunLauncher cannot tell run monitoring whether a run's worker process is still alive, so a run
whose worker was killed (SIGKILL, out of memory, a reboot) stayed STARTED until max_runtime_seconds - two hours -
holding its `warehouse` pool slot, and every later run queued behind it. The worker announces its pid in the run's
event log ("Started process for run (pid: N)"); this launcher reports the run FAILED once that process is gone,
run monitoring then fails the run, frees its slots and lets run retries start it again.

It only works where the daemon and the run workers share one machine, which is what the default launcher does
anyway; Docker and Kubernetes deployments use their own launchers, which have health checks of their own.
"""

import psutil
from dagster import DagsterEventType, DagsterRun, DefaultRunLauncher

# No public API exposes the health-check result types; they are what run monitoring expects from a launcher.
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus


class MonitoredRunLauncher(DefaultRunLauncher):
    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        started = [
            record
            for record in self._instance.all_logs(run.run_id, of_type=DagsterEventType.ENGINE_EVENT)
            if record.dagster_event and "pid" in (record.dagster_event.engine_event_data.metadata or {})
        ]
        if not started:  # the worker has not said who it is yet; start_timeout_seconds covers a worker that never does
            return CheckRunHealthResult(WorkerStatus.UNKNOWN, "the run worker has not reported its pid yet")
        record = started[-1]
        pid = int(record.dagster_event.engine_event_data.metadata["pid"].value)
        try:
            process = psutil.Process(pid)
            # A pid is reused after its process ends: the live process must be older than the event it sent.
            alive = process.is_running() and process.create_time() <= record.timestamp + 1
        except psutil.NoSuchProcess:
            alive = False
        if alive:
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"run worker pid {pid} is alive", run_worker_id=str(pid))
        return CheckRunHealthResult(WorkerStatus.FAILED, f"run worker pid {pid} is gone (killed or crashed)")
