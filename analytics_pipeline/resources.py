"""Resources: the warehouse connection and the watched folder, configured from the environment."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import sqlalchemy as sa
from dagster_openai import OpenAIResource
from pydantic import Field

from analytics_pipeline import paths
from analytics_pipeline.warehouse import db, server


class Warehouse(dg.ConfigurableResource):
    """The analytics Postgres. Leave ``database_url`` empty to use ``ANALYTICS_DATABASE_URL`` or, when that is unset,
    the embedded server the project starts itself."""

    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL of the warehouse; empty means ANALYTICS_DATABASE_URL or embedded."
    )

    def engine(self) -> sa.Engine:
        return db.engine_for(self.database_url or server.database_url())

    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        with db.transaction(self.engine()) as conn:
            yield conn


class UploadFolders(dg.ConfigurableResource):
    """The watched folder and where files go after it. Files are moved, never deleted.

    Empty fields fall back to folders under the data directory (``ANALYTICS_DATA_DIR``, default ``data/``).
    """

    uploads: str | None = Field(default=None, description="Watched folder; default data/uploads.")
    archive: str | None = Field(default=None, description="Where loaded files move; default data/archive.")
    quarantine: str | None = Field(default=None, description="Where rejected files move; default data/quarantine.")

    @property
    def uploads_path(self) -> Path:
        return Path(self.uploads) if self.uploads else paths.uploads_dir()

    @property
    def archive_path(self) -> Path:
        return Path(self.archive) if self.archive else paths.archive_dir()

    @property
    def quarantine_path(self) -> Path:
        return Path(self.quarantine) if self.quarantine else paths.quarantine_dir()


class OptionalOpenAIResource(OpenAIResource):
    """dagster-openai's resource, allowed to have no key: the insights asset then uses its offline writer.

    The OpenAI client refuses to be built without a key, so the client is only set up when one is configured.
    """

    api_key: str = Field(default="", description="OpenAI API key; empty means write insights offline.")

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        if self.api_key:
            super().setup_for_execution(context)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self.api_key:
            super().teardown_after_execution(context)
