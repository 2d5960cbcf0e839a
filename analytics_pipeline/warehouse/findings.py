"""analytics.findings: findings with their embeddings in a pgvector column, searched by cosine distance.

Why apart from schema.sql: pgvector is an extension the server must offer. The embedded PostgreSQL ships it; a
configured server may not, and then only this table is missing, with a message saying how to install it, while the
rest of the warehouse is applied as always. Vectors travel as text literals ('[0.1,0.2]'::vector), so no Python
package for pgvector is needed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import resources

import numpy as np
import sqlalchemy as sa

from analytics_pipeline.warehouse.db import fetch_frame

TABLE = "findings"
DDL_FILE = "findings.sql"
EXTENSION = "vector"
_LOCK_ID = 7_340_002  # the advisory lock of creating the table; apply_schema's is 7_340_001


class PgvectorUnavailable(RuntimeError):
    """The server cannot hold the findings table; the message says what to install or run, and where."""


def exists(conn: sa.Connection) -> bool:
    return conn.execute(sa.text("SELECT to_regclass('analytics.findings')")).scalar() is not None


def ensure_table(conn: sa.Connection) -> None:
    """Create the extension and the table unless they exist; PgvectorUnavailable with the fix when they cannot be."""
    if exists(conn):
        return
    major, user, database = conn.execute(
        sa.text("SELECT current_setting('server_version_num')::int / 10000, current_user, current_database()")
    ).one()
    offered = conn.execute(
        sa.text("SELECT default_version FROM pg_available_extensions WHERE name = :name"), {"name": EXTENSION}
    ).scalar()
    if offered is None:
        raise PgvectorUnavailable(
            f"pgvector is not installed on this PostgreSQL {major} server, and findings_index keeps its embeddings "
            f"in a pgvector column. Install it on the server: Debian/Ubuntu `apt-get install "
            f"postgresql-{major}-pgvector`; Docker the image `pgvector/pgvector:pg{major}` instead of "
            f"`postgres:{major}`; Homebrew `brew install pgvector`; a managed PostgreSQL (RDS, Cloud SQL, Azure, "
            "Supabase, Neon) offers it already. Then materialise findings_index again: it runs `CREATE EXTENSION "
            "vector` itself when its user is a superuser; otherwise a superuser runs it once. The embedded "
            "PostgreSQL ships pgvector. The rest of the pipeline does not need it and keeps running."
        )
    ddl = resources.files("analytics_pipeline.warehouse").joinpath(DDL_FILE).read_text()
    try:
        with conn.begin_nested():
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
            conn.exec_driver_sql(ddl)
    except sa.exc.ProgrammingError as error:
        if getattr(error.orig, "pgcode", None) != "42501":  # insufficient_privilege
            raise
        raise PgvectorUnavailable(
            f"pgvector {offered} is installed on this PostgreSQL {major} server, but user {user} may not create the "
            f"extension in database {database}. Run `CREATE EXTENSION vector;` there once as a superuser (or ask "
            "the server's administrator to), then materialise findings_index again. The rest of the pipeline does "
            "not need it and keeps running."
        ) from error


def kept(conn: sa.Connection) -> list[dict]:
    """Every finding stored (the fields of analysis.findings.Finding), in its latest version whatever model embedded
    it."""
    frame = fetch_frame(conn, """
        SELECT DISTINCT ON (kind, day, segment, metric)
               kind, day, segment, metric, period_start, period_end, text, numbers, document
        FROM analytics.findings ORDER BY kind, day, segment, metric, indexed_at DESC
    """)
    return frame.to_dict("records")


def documents(conn: sa.Connection) -> dict[str, dict[tuple, str]]:
    """model -> finding key -> the document its vector was made from: what need not be embedded again."""
    stored: dict[str, dict[tuple, str]] = {}
    for kind, day, segment, metric, model, document in conn.execute(
        sa.text("SELECT kind, day, segment, metric, model, document FROM analytics.findings")
    ):
        stored.setdefault(model, {})[(kind, day, segment, metric)] = document
    return stored


_UPSERT = """
INSERT INTO analytics.findings
    (kind, day, segment, metric, model, period_start, period_end, text, numbers, document, embedding, indexed_at)
VALUES (:kind, :day, :segment, :metric, :model, :period_start, :period_end, :text, CAST(:numbers AS jsonb),
        :document, CAST(:embedding AS vector), :indexed_at)
ON CONFLICT (kind, day, segment, metric, model) DO UPDATE SET
    period_start = EXCLUDED.period_start, period_end = EXCLUDED.period_end, text = EXCLUDED.text,
    numbers = EXCLUDED.numbers, document = EXCLUDED.document, embedding = EXCLUDED.embedding,
    indexed_at = EXCLUDED.indexed_at
"""


def vector_literal(vector: Sequence[float]) -> str:
    """pgvector's text form, '[0.1,0.25,...]' (it stores single precision, so 7 significant digits lose nothing)."""
    return "[" + ",".join(format(float(x), ".7g") for x in vector) + "]"


def store(conn: sa.Connection, model: str, found: Sequence[dict], vectors: np.ndarray) -> int:
    """Insert or replace the rows of `model` for these findings (the fields of analysis.findings.Finding), one vector
    each; returns how many."""
    now = datetime.now(UTC)
    rows = [
        {**finding, "numbers": json.dumps(finding["numbers"]), "model": model, "embedding": vector_literal(vector),
         "indexed_at": now}
        for finding, vector in zip(found, vectors, strict=True)
    ]
    if rows:
        conn.execute(sa.text(_UPSERT), rows)
    return len(rows)


def counts(conn: sa.Connection) -> tuple[int, dict[str, int]]:
    """How many findings there are, and how many of them each model has embedded."""
    total = conn.execute(
        sa.text("SELECT count(*) FROM (SELECT DISTINCT kind, day, segment, metric FROM analytics.findings) AS f")
    ).scalar_one()
    by_model = dict(conn.execute(sa.text("SELECT model, count(*) FROM analytics.findings GROUP BY model")).all())
    return total, by_model


def segments(conn: sa.Connection) -> list[str]:
    """Every segment some finding is about."""
    return list(conn.execute(sa.text("SELECT DISTINCT segment FROM analytics.findings ORDER BY 1")).scalars())


def newest(conn: sa.Connection, model: str, limit: int):
    """The latest `limit` findings (day, kind, segment, metric, text) as a frame."""
    return fetch_frame(conn, """
        SELECT day, kind, segment, metric, text FROM analytics.findings WHERE model = :model
        ORDER BY day DESC, kind, segment, metric LIMIT :limit
    """, {"model": model, "limit": limit})


# Findings whose period touches a date the question names come first, then those of the segments it is about, then
# by cosine distance; a date pattern's empty parts match anything (no year: every year).
_SEARCH = """
SELECT kind, day, segment, metric, period_start, period_end, text, numbers,
       1 - (embedding <=> CAST(:vector AS vector)) AS similarity,
       segment = ANY(CAST(:segments AS text[])) AS on_segment_asked,
       EXISTS (
           SELECT FROM generate_series(period_start, period_end, interval '1 day') AS d(day),
                unnest(CAST(:years AS integer[]), CAST(:months AS integer[]), CAST(:days AS integer[]))
                    AS asked(year, month, day)
           WHERE (asked.year IS NULL OR extract(year FROM d.day) = asked.year)
             AND (asked.month IS NULL OR extract(month FROM d.day) = asked.month)
             AND (asked.day IS NULL OR extract(day FROM d.day) = asked.day)
       ) AS on_dates_asked
FROM analytics.findings
WHERE model = :model
ORDER BY on_dates_asked DESC, on_segment_asked DESC, embedding <=> CAST(:vector AS vector), day DESC
LIMIT :limit
"""


def search(
    conn: sa.Connection, model: str, vector: Sequence[float], dates: Sequence[tuple], segments_asked: Sequence[str],
    limit: int,
):
    """The `limit` findings of `model` nearest to `vector` as a frame: those whose period touches one of the `dates`
    asked ((year, month, day), None for any) first, then those of the segments asked."""
    years, months, days = (list(part) for part in zip(*dates, strict=True)) if dates else ([], [], [])
    return fetch_frame(conn, _SEARCH, {
        "vector": vector_literal(vector), "model": model, "limit": limit, "years": years, "months": months,
        "days": days, "segments": list(segments_asked),
    })
