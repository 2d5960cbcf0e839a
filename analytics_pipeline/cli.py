"""The `analytics` command: run the demo, start the UI, reach the database.

Every sub-command first points Dagster at the project's instance (DAGSTER_HOME under the data directory, storage
in the warehouse Postgres), so runs started here, from the UI or by the daemon all land in the same place.
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from analytics_pipeline import paths, urls
from analytics_pipeline.warehouse import server

STOP_DEADLINE_SECONDS = 15


def prepare_instance() -> Path:
    """Create DAGSTER_HOME with the project's dagster.yaml and the data folders; return DAGSTER_HOME."""
    home = Path(os.environ.get("DAGSTER_HOME") or paths.dagster_home())
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(paths.PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    for folder in (paths.uploads_dir(), paths.archive_dir(), paths.quarantine_dir(), paths.reports_dir()):
        folder.mkdir(parents=True, exist_ok=True)
    return home


def cmd_db(_: argparse.Namespace) -> int:
    print(urls.libpq_url(server.database_url()))
    return 0


def cmd_stop(_: argparse.Namespace) -> int:
    if server.configured_url():
        print("ANALYTICS_DATABASE_URL is set: that server is not ours to stop.")
        return 0
    print("stopped the embedded Postgres" if server.stop_embedded() else "the embedded Postgres was not running")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """List files the registry and the watched location disagree about; with --repair, move each where it
    belongs."""
    prepare_instance()
    from analytics_pipeline import reconcile  # imported here, like the demo's modules, to keep `db` fast
    from analytics_pipeline.resources import uploads_from_environment
    from analytics_pipeline.warehouse import db

    location = uploads_from_environment(os.environ.get).location()
    with db.engine_for(server.database_url()).connect() as conn:
        found = reconcile.at(conn, location)
    if not found:
        print("every registered file is where the registry says, and no file is unaccounted for")
        return 0
    for item in found:
        print(f"{item.why}: {item.path} (belongs at {item.target})")
    if not args.repair:
        print(f"{len(found)} stranded file(s); `analytics doctor --repair` moves them (nothing is deleted)")
        return 1
    for line in reconcile.repair(found, location):
        print(line)
    return 0


def cmd_demo(_: argparse.Namespace) -> int:
    prepare_instance()
    from analytics_pipeline.demo import run_demo  # imports Dagster and the definitions: keep `db` fast

    return run_demo()


def cmd_ask(args: argparse.Namespace) -> int:
    """The findings most relevant to a question, and a grounded answer with OPENAI_API_KEY set. It runs
    ask_findings_job on the project's instance, so the question and its answer are on findings_index in the UI too."""
    prepare_instance()
    import dagster as dg

    from analytics_pipeline.definitions import defs

    # The run's full log is in the UI; the terminal gets the answer, or the failure's message, from here.
    silent = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
    config = {"question": args.question, "limit": args.limit}
    result = defs.resolve_job_def("ask_findings_job").execute_in_process(
        run_config={**silent, "ops": {"ask_findings": {"config": config}}},
        instance=dg.DagsterInstance.get(),
        raise_on_error=False,
    )
    if not result.success:
        for event in result.get_step_failure_events():
            failure = event.step_failure_data
            print(failure.user_failure_data.description if failure.user_failure_data else failure.error.message)
        return 1
    print(result.output_for_node("ask_findings").as_text())
    return 0


def cmd_dev(args: argparse.Namespace) -> int:
    """Webserver and daemon in their own process groups, so Ctrl-C can stop every process they started."""
    prepare_instance()
    server.database_url()  # start the embedded server before the webserver and the daemon race to
    workspace = str(paths.PROJECT_ROOT / "workspace.yaml")
    bin_dir = Path(sys.executable).parent
    commands = [
        [str(bin_dir / "dagster-webserver"), "-w", workspace, "-h", args.host, "-p", str(args.port)],
        [str(bin_dir / "dagster-daemon"), "run", "-w", workspace],
    ]
    processes = [subprocess.Popen(cmd, cwd=paths.PROJECT_ROOT, start_new_session=True) for cmd in commands]
    print(f"Dagster UI: http://{args.host}:{args.port}  (Ctrl-C stops the UI, the daemon and Postgres)", flush=True)
    stopping = False

    def request_stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    while not stopping and all(p.poll() is None for p in processes):
        time.sleep(0.5)
    _stop_groups(processes)
    if not server.configured_url():
        server.stop_embedded()
    print("stopped", flush=True)
    return 0


def _stop_groups(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        _signal_group(process, signal.SIGTERM)
    deadline = time.monotonic() + STOP_DEADLINE_SECONDS
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for process in processes:
        _signal_group(process, signal.SIGKILL)  # also reaps children left in the group
        process.wait()


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="analytics", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="load the sample files and materialise every asset").set_defaults(run=cmd_demo)
    dev = commands.add_parser("dev", help="start the Dagster UI and daemon (Ctrl-C stops all)")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=3000)
    dev.set_defaults(run=cmd_dev)
    commands.add_parser("db", help="print a connection URL for psql or any SQL client").set_defaults(run=cmd_db)
    commands.add_parser("stop", help="stop the embedded Postgres").set_defaults(run=cmd_stop)
    doctor = commands.add_parser("doctor", help="find (and with --repair, move) files the registry disagrees about")
    doctor.add_argument("--repair", action="store_true", help="move each stranded file where it belongs")
    doctor.set_defaults(run=cmd_doctor)
    ask = commands.add_parser("ask", help="the past findings most relevant to a question, and an answer with a key")
    ask.add_argument("question", help='e.g. "why did revenue drop in March?"')
    ask.add_argument("--limit", type=int, default=5, help="how many findings to show (default 5)")
    ask.set_defaults(run=cmd_ask)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
