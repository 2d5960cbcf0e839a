"""The `analytics` command as a user runs it, for the tests that drive the real CLI.

A test gets a data directory of its own with nothing configured (`user_environment`), runs `analytics demo` or
`analytics db` there (`run_cli`), or starts `analytics dev` - the real webserver, the real daemon, the real Postgres -
on a free port (`dev_stack`). Ctrl-C must stop every process `analytics dev` started, Postgres included, within
STOP_SECONDS; `dev_stack` checks that on the way out and kills whatever is left either way.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager, nullcontext
from pathlib import Path

import psutil
import requests
import sqlalchemy as sa

from analytics_pipeline import urls
from analytics_pipeline.warehouse import server
from analytics_pipeline_tests.conftest import scratch_database

ANALYTICS = str(Path(sys.executable).parent / "analytics")
STOP_SECONDS = 20
# Settings a user might have exported; a "nothing configured" run must see none of them.
_USER_SETTINGS = ("DAGSTER_HOME", "OPENAI_API_KEY", "OPENAI_BASE_URL")


def free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, interval: float = 2.0):
    """Poll ``predicate`` until it returns something truthy (returned); fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@contextmanager
def user_environment(data: Path, **settings: str) -> Iterator[dict]:
    """The environment of a user who configured nothing but ``ANALYTICS_DATA_DIR=data`` (plus ``settings``).

    When the session runs against a configured server (ANALYTICS_DATABASE_URL), the environment names a scratch
    database there, dropped on exit; otherwise `analytics` starts its own embedded Postgres under ``data``.
    """
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("ANALYTICS_") and k not in _USER_SETTINGS
    }
    env["ANALYTICS_DATA_DIR"] = str(data)
    env.update(settings)
    configured = server.configured_url()
    with scratch_database(configured) if configured else nullcontext() as url:
        if url:
            env[server.DATABASE_URL_ENV] = url
        yield env


def run_cli(args: list[str], env: dict, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([ANALYTICS, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)


def stop_embedded(env: dict) -> None:
    """`analytics stop`, for an environment whose embedded Postgres a test started (a no-op on a configured one)."""
    if server.DATABASE_URL_ENV not in env:
        stopped = run_cli(["stop"], env)
        assert "stopped the embedded Postgres" in stopped.stdout, stopped.stdout + stopped.stderr


class Stack:
    """A running `analytics dev`: its webserver's GraphQL API, its data directory and its warehouse."""

    def __init__(self, base_url: str, data: Path, db_url: str, process: subprocess.Popen):
        self.base_url, self.data, self.db_url, self.process = base_url, data, db_url, process
        self.killed = False

    def kill(self) -> None:
        """SIGKILL every process `analytics dev` started (webserver, daemon, code servers, run workers), as a crash
        or an out-of-memory killer would. `dagster dev` starts the webserver and the daemon in sessions of their
        own, so the whole process tree is killed, not a process group. Postgres runs on (the server's own
        processes are not in the tree)."""
        root = psutil.Process(self.process.pid)
        tree = [root, *root.children(recursive=True)]
        for process in tree:
            process.kill()
        _, alive = psutil.wait_procs(tree, timeout=STOP_SECONDS)
        assert not alive, f"still running after SIGKILL: {[p.pid for p in alive]}"
        self.killed = True

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        response = requests.post(f"{self.base_url}/graphql", json={"query": query, "variables": variables or {}})
        response.raise_for_status()
        body = response.json()
        assert "errors" not in body, body["errors"]
        return body["data"]

    def runs(self) -> list[dict]:
        data = self.graphql(
            "{ runsOrError { ... on Runs { results { runId jobName status creationTime startTime endTime "
            "tags { key value } } } } }"
        )
        return data["runsOrError"]["results"]

    def run_errors(self, run_id: str) -> list[str]:
        """The error-level messages of one run, with the error each failure event carries, so that a test which
        finds a run failed can say why (the run's event log is gone once the test's data directory is)."""
        data = self.graphql(
            "query($id: ID!) { runOrError(runId: $id) { ... on Run { eventConnection(afterCursor: null) { events { "
            "__typename ... on MessageEvent { message level } "
            "... on ExecutionStepFailureEvent { error { message } } ... on RunFailureEvent { pipelineFailureError: "
            "error { message } } ... on EngineEvent { engineError: error { message } } } } } } }",
            {"id": run_id},
        )
        errors = []
        for event in data["runOrError"]["eventConnection"]["events"]:
            error = event.get("error") or event.get("pipelineFailureError") or event.get("engineError")
            if event.get("level") == "ERROR" or error:
                cause = f" | {error['message']}" if error else ""
                errors.append(f"{event['__typename']}: {event.get('message')}{cause}")
        return errors

    def rows(self, sql: str, params: dict | None = None) -> list[tuple]:
        engine = sa.create_engine(urls.psycopg2_url(self.db_url))
        try:
            with engine.connect() as conn:
                return [tuple(row) for row in conn.execute(sa.text(sql), params or {})]
        finally:
            engine.dispose()

    def scalar(self, sql: str, params: dict | None = None):
        [(value,)] = self.rows(sql, params)
        return value


def responds(base_url: str) -> bool:
    try:
        return requests.get(f"{base_url}/server_info", timeout=2).status_code == 200
    except requests.RequestException:
        return False


@contextmanager
def dev_stack(data: Path, env: dict) -> Iterator[Stack]:
    """`analytics dev` on a free port in the environment ``env`` (see user_environment), data directory ``data``.

    Yields once the webserver answers; on exit sends Ctrl-C and asserts every process it started is gone in time.
    """
    data.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = (data / "dev.log").open("w")
    process = subprocess.Popen(
        [ANALYTICS, "dev", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: responds(base_url), 180, "the webserver", interval=1)
        db_url = run_cli(["db"], env, timeout=120).stdout.strip()
        stack = Stack(base_url, data, db_url, process)
        yield stack
    finally:
        if "stack" in locals() and stack.killed:
            stop_embedded(env)  # what a user does after a crash, before starting again
        else:
            stop_and_check(process, data)
        log.close()


def stop_and_check(process: subprocess.Popen, data: Path) -> None:
    """Ctrl-C, then every process it started must be gone within the deadline; kill leftovers either way."""
    started = psutil.Process(process.pid).children(recursive=True) if process.poll() is None else []
    postmaster = data / "postgres" / "postmaster.pid"
    if postmaster.exists():
        started.append(psutil.Process(int(postmaster.read_text().split()[0])))
    began = time.monotonic()
    process.send_signal(signal.SIGINT)
    try:
        process.wait(STOP_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
    _, alive = psutil.wait_procs(started, timeout=max(0.1, STOP_SECONDS - (time.monotonic() - began)))
    for leftover in alive:
        leftover.kill()
    assert not alive, f"still running after Ctrl-C: {[p.pid for p in alive]}"
    assert time.monotonic() - began <= STOP_SECONDS + 1
