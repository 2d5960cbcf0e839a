"""Database URLs in the forms each client needs, and the one form that may be shown.

On the ground floor: the warehouse, the database source and the CLI all turn URLs into these forms, and none of them
should need another layer to do it.
"""

import re

import sqlalchemy as sa

PASSWORD_MASK = "***"
# password=... as a URL parameter or a libpq keyword (SQLAlchemy hides only the user:password@ part).
_PASSWORD_PARAMETER = re.compile(r"(?P<keep>(?:^|[?&\s])password=)(?:'[^']*'|[^&\s]*)", re.I)


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
