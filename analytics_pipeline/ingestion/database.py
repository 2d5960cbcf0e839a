"""Read a table or a query of an operational database incrementally, by an updated-at or id watermark.

Each pull reads the rows whose watermark is above the stored one, in watermark order, through a server-side cursor
(``yield_per``), so memory stays bounded however many rows changed. Identifiers are quoted by the source's own
dialect and the watermark is a bound parameter: configuration can name any table or column, but never splice SQL.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa

from analytics_pipeline.ingestion.reader import as_text
from analytics_pipeline.ingestion.records import Page
from analytics_pipeline.urls import psycopg2_url


@dataclass(frozen=True)
class IncrementalQuery:
    """A table (``schema.table`` or ``table``) or a SELECT, read in ``watermark_column`` order.

    ``tiebreak`` (the source's id column, when it has one) orders rows that share a watermark, so a retried pull
    numbers its rows the same way. Rows whose watermark is NULL are never pulled: nothing says when they changed.
    """

    url: str
    table: str | None
    query: str | None
    watermark_column: str
    tiebreak: str | None
    batch_size: int

    def __post_init__(self) -> None:
        if bool(self.table) == bool(self.query):
            raise ValueError("a database source needs exactly one of a table name or a query")

    def statement(self, dialect: sa.Dialect, since: str | None) -> sa.TextClause:
        quote = dialect.identifier_preparer.quote
        if self.query:
            source = f"({self.query.strip().rstrip(';')}) AS source"
        else:
            source = ".".join(quote(part) for part in self.table.split("."))
        watermark = quote(self.watermark_column)
        condition = f"{watermark} IS NOT NULL" if since is None else f"{watermark} > :since"
        order = ", ".join(quote(c) for c in (self.watermark_column, self.tiebreak) if c)
        return sa.text(f"SELECT * FROM {source} WHERE {condition} ORDER BY {order}")

    @contextmanager
    def pages(self, since: str | None) -> Iterator[Iterator[Page]]:
        """Open the source and yield its new rows page by page; the connection closes when the pull ends."""
        url = sa.engine.make_url(self.url)
        # Postgres sources use the driver the project installs (see urls.psycopg2_url); others keep theirs.
        engine = sa.create_engine(psycopg2_url(self.url) if url.get_backend_name() == "postgresql" else url)
        try:
            with engine.connect() as conn:
                yield self._pages(conn, since)
        finally:
            engine.dispose()

    def _pages(self, conn: sa.Connection, since: str | None) -> Iterator[Page]:
        params = {} if since is None else {"since": since}
        result = conn.execution_options(yield_per=self.batch_size).execute(self.statement(conn.dialect, since), params)
        for rows in result.mappings().partitions(self.batch_size):
            # Rows come in watermark order, so the last row of a page holds the highest watermark so far.
            yield Page(rows, as_text(rows[-1][self.watermark_column]))
