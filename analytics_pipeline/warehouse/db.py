"""Connections, the schema, and the two write patterns every asset uses: COPY in bulk, replace a slice."""

import hashlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from importlib import resources
from typing import IO, Any

import sqlalchemy as sa

from analytics_pipeline.urls import psycopg2_url

SCHEMA = "analytics"
NO_ROWS = "(no rows)"  # what a preview of an empty result says
# Any fixed number works; it only has to be the same in every process that applies the schema.
_SCHEMA_LOCK_ID = 7_340_001


@cache
def engine_for(url: str) -> sa.Engine:
    """One pooled engine per URL and process, with the schema applied once."""
    engine = sa.create_engine(psycopg2_url(url), pool_pre_ping=True)
    apply_schema(engine)
    return engine


# The hash of the schema.sql last applied. Applying it takes table locks (CREATE INDEX IF NOT EXISTS takes a share
# lock even when the index exists, GRANT locks every table), and a run worker applying it while another one COPYs a
# file deadlocked; so a process applies it only when the file differs from what the database already has.
_APPLIED = """
CREATE SCHEMA IF NOT EXISTS analytics;
CREATE TABLE IF NOT EXISTS analytics.schema_applied (sha256 text PRIMARY KEY, applied_at timestamptz NOT NULL);
"""


def apply_schema(engine: sa.Engine) -> None:
    """Create or update the warehouse tables once per version of schema.sql; an advisory lock keeps concurrent
    run workers from racing, and a worker that finds this version applied takes no lock at all."""
    ddl = resources.files("analytics_pipeline.warehouse").joinpath("schema.sql").read_text()
    digest = hashlib.sha256(ddl.encode()).hexdigest()
    if _applied(engine, digest):
        return
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": _SCHEMA_LOCK_ID})
        conn.exec_driver_sql(_APPLIED)
        if conn.execute(sa.text("SELECT 1 FROM analytics.schema_applied WHERE sha256 = :d"), {"d": digest}).first():
            return  # another process applied it while this one waited for the lock
        conn.exec_driver_sql(ddl)
        conn.execute(
            sa.text("INSERT INTO analytics.schema_applied (sha256, applied_at) VALUES (:d, now())"), {"d": digest}
        )


def _applied(engine: sa.Engine, digest: str) -> bool:
    with engine.connect() as conn:
        exists = conn.execute(sa.text("SELECT to_regclass('analytics.schema_applied')")).scalar()
        return bool(exists) and bool(
            conn.execute(sa.text("SELECT 1 FROM analytics.schema_applied WHERE sha256 = :d"), {"d": digest}).first()
        )


@contextmanager
def transaction(engine: sa.Engine) -> Iterator[sa.Connection]:
    """One transaction: everything inside lands together or not at all, which is what makes retries safe."""
    with engine.begin() as conn:
        yield conn


def copy_csv(conn: sa.Connection, table: str, columns: list[str], csv_stream: IO[bytes]) -> int:
    """Bulk-load CSV (with a header line) through COPY, the fastest way into Postgres; returns rows loaded."""
    column_list = ", ".join(columns)
    qualified = table if "." in table else f"{SCHEMA}.{table}"
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.copy_expert(
            f"COPY {qualified} ({column_list}) FROM STDIN WITH (FORMAT csv, HEADER true)", csv_stream
        )
        return cursor.rowcount
    finally:
        cursor.close()


def is_outage(error: BaseException) -> bool:
    """The database went away or refused the connection (restart, network, too many clients): a fault of the
    moment that a retry outlives, never a reason to blame the data being written."""
    if isinstance(error, sa.exc.DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, sa.exc.OperationalError | sa.exc.InterfaceError | sa.exc.DisconnectionError)


def fetch_frame(conn: sa.Connection, sql: str, params: Mapping[str, Any] | None = None):
    """Run a query and return a pandas DataFrame; the one place query results become frames."""
    import pandas as pd

    result = conn.execute(sa.text(sql), dict(params or {}))
    return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


def row_count(conn: sa.Connection, table: str) -> int:
    return conn.execute(sa.text(f"SELECT count(*) FROM {SCHEMA}.{table}")).scalar_one()


def preview(conn: sa.Connection, sql: str, params: Mapping[str, Any] | None = None) -> str:
    """A few rows as a Markdown table, for the 'preview' metadata every materialisation shows in the UI; the rows are
    what files said, so every cell is escaped (warehouse.markdown)."""
    from analytics_pipeline.warehouse import markdown

    frame = fetch_frame(conn, sql, params)
    return markdown.table(frame) if len(frame) else NO_ROWS
