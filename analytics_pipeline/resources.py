"""Resources: the warehouse connection, the watched folder and the pulled sources, configured from the environment."""

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dagster as dg
import sqlalchemy as sa
from dagster_openai import OpenAIResource
from pydantic import Field

from analytics_pipeline import paths
from analytics_pipeline.ingestion import database, files, rest_api
from analytics_pipeline.ingestion.bucket import Bucket
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


Location = files.Folder | Bucket  # the watched location: the same contract over a folder or a bucket
UPLOADS_URL_ENV = "ANALYTICS_UPLOADS_URL"
# UploadFolders' bucket fields. Unset, boto3's own lookup applies (AWS_* variables, ~/.aws, an instance role); the
# project's own names keep an empty AWS_* variable, as docker-compose passes unset ones, from reaching boto3.
_S3_ENV = {"s3_endpoint_url": "ANALYTICS_S3_ENDPOINT_URL", "s3_region": "ANALYTICS_S3_REGION",
           "s3_access_key_id": "ANALYTICS_S3_ACCESS_KEY_ID", "s3_secret_access_key": "ANALYTICS_S3_SECRET_ACCESS_KEY"}
_S3_SECRETS = ("s3_access_key_id", "s3_secret_access_key")
S3_VARIABLES = tuple(_S3_ENV.values())


class UploadFolders(dg.ConfigurableResource):
    """The watched location and where files go after it: folders (the default) or an S3-compatible bucket. Files
    are moved, never deleted.

    Empty fields fall back to folders under the data directory (``ANALYTICS_DATA_DIR``, default ``data/``). With
    ``uploads_url`` (``ANALYTICS_UPLOADS_URL``) set to ``s3://bucket/prefix/``, the bucket is watched instead and
    the archive and quarantine are the prefixes ``archive/`` and ``quarantine/`` beside the uploads prefix.
    """

    uploads_url: str | None = Field(
        default=None, description="s3://bucket/prefix/ to watch a bucket instead of a folder (ANALYTICS_UPLOADS_URL)."
    )
    s3_endpoint_url: str | None = Field(
        default=None,
        description="S3 API endpoint for MinIO, Ceph, R2 or GCS (ANALYTICS_S3_ENDPOINT_URL); empty for AWS.",
    )
    s3_region: str | None = Field(default=None, description="The bucket's region (ANALYTICS_S3_REGION).")
    s3_access_key_id: str | None = Field(default=None, description="ANALYTICS_S3_ACCESS_KEY_ID; from the environment.")
    s3_secret_access_key: str | None = Field(
        default=None, description="ANALYTICS_S3_SECRET_ACCESS_KEY; a secret, from the environment."
    )
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

    def location(self) -> Location:
        if self.uploads_url and self.uploads_url.startswith("s3://"):
            return Bucket(
                self.uploads_url,
                endpoint_url=self.s3_endpoint_url,
                region=self.s3_region,
                access_key_id=self.s3_access_key_id,
                secret_access_key=self.s3_secret_access_key,
            )
        return files.Folder(self.uploads_path, self.archive_path, self.quarantine_path)


def uploads_from_environment(secret: Callable[[str], Any] = dg.EnvVar) -> "UploadFolders":
    """The watched location from ANALYTICS_UPLOADS_URL (a folder, or s3://bucket/prefix/) and ANALYTICS_S3_*.
    Secrets go through ``secret``: dg.EnvVar for Dagster, which reads them at run time and never shows them in the
    UI or the run config; os.environ.get for the command line."""
    url = os.environ.get(UPLOADS_URL_ENV)
    if not url:
        return UploadFolders()
    if not url.startswith("s3://"):
        return UploadFolders(uploads=url)
    config = {
        field: secret(variable) if field in _S3_SECRETS else os.environ[variable]
        for field, variable in _S3_ENV.items()
        if os.environ.get(variable)
    }
    return UploadFolders(uploads_url=url, **config)


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


# Each source is configured by ANALYTICS_SOURCE_<DATABASE|API>_<FIELD> variables (see definitions._source); a source
# whose URL variable is unset is "not configured": its asset loads nothing and its schedule starts stopped.
DATABASE_SOURCE_PREFIX = "ANALYTICS_SOURCE_DATABASE_"
API_SOURCE_PREFIX = "ANALYTICS_SOURCE_API_"
DATABASE_SOURCE_URL_ENV = DATABASE_SOURCE_PREFIX + "URL"
API_SOURCE_URL_ENV = API_SOURCE_PREFIX + "BASE_URL"


class DatabaseSource(dg.ConfigurableResource):
    """An operational database read incrementally into the transactions: a table or a query, by a watermark column.

    ``url`` carries the password, so definitions pass it as ``dg.EnvVar``: read at run time, never shown in the UI.
    """

    url: str | None = Field(default=None, description="SQLAlchemy URL of the source database; empty: not configured.")
    name: str = Field(default="", description="Names the source in batch keys and watermarks; default: the table.")
    table: str | None = Field(default=None, description="Table to read, optionally schema-qualified (schema.table).")
    query: str | None = Field(default=None, description="A SELECT to read instead of a table.")
    watermark_column: str = Field(
        default="updated_at", description="An increasing column (updated-at or id); each pull reads rows above it."
    )
    columns: dict[str, str] = Field(
        default_factory=dict,
        description='Canonical field -> source column, e.g. {"transaction_id": "id"}; others are matched by name.',
    )
    batch_size: int = Field(default=10_000, description="Rows per fetch from the server-side cursor.")

    @property
    def source_id(self) -> str:
        return f"db_{files.sanitised_name(self.name or self.table or 'query')}"

    def incremental_query(self) -> database.IncrementalQuery:
        return database.IncrementalQuery(
            url=self.url,
            table=self.table,
            query=self.query,
            watermark_column=self.watermark_column,
            tiebreak=self.columns.get("transaction_id"),
            batch_size=self.batch_size,
        )


class RestApiSource(dg.ConfigurableResource):
    """A paginated JSON API read incrementally into the transactions (see ingestion.rest_api for the protocol).

    ``token`` is a secret: definitions pass it as ``dg.EnvVar``; it is sent as a Bearer header and never logged.
    """

    base_url: str | None = Field(default=None, description="e.g. https://shop.example.com/api; empty: not configured.")
    path: str = Field(default="", description="Path of the records endpoint under base_url, e.g. /orders.")
    name: str = Field(default="", description="Names the source in batch keys and watermarks; default: the path.")
    pagination: rest_api.Pagination = Field(default="next_link", description="next_link or page_number.")
    records_field: str = Field(default="data", description='Field holding the records; "" if the body is the list.')
    next_field: str = Field(default="next", description="next_link: the field holding the next page's URL.")
    page_param: str = Field(default="page", description="page_number: the query parameter of the page number.")
    last_page_field: str = Field(
        default="", description="page_number: field holding the last page's number (e.g. total_pages), if any."
    )
    params: dict[str, str] = Field(default_factory=dict, description="Extra query parameters, e.g. per_page.")
    watermark_param: str = Field(default="updated_since", description="Query parameter carrying the watermark.")
    watermark_field: str = Field(default="updated_at", description="Record field whose highest value is the watermark.")
    timeout_seconds: float = Field(default=30.0, description="Connect and read timeout per request.")
    max_retries: int = Field(default=4, description="Retries per request on 429, 5xx, timeouts, lost connections.")
    backoff_seconds: float = Field(default=1.0, description="First retry delay, doubled each time; Retry-After wins.")
    token: str | None = Field(default=None, description="Bearer token; set through ANALYTICS_SOURCE_API_TOKEN.")
    columns: dict[str, str] = Field(
        default_factory=dict,
        description='Canonical field -> record field, e.g. {"transaction_id": "id"}; others are matched by name.',
    )

    @property
    def source_id(self) -> str:
        return f"api_{files.sanitised_name(self.name or self.path or urlsplit(self.base_url or '').netloc)}"

    def endpoint(self) -> rest_api.Endpoint:
        return rest_api.Endpoint(
            url=f"{self.base_url.rstrip('/')}/{self.path.lstrip('/')}" if self.path else self.base_url,
            pagination=self.pagination,
            records_field=self.records_field,
            next_field=self.next_field,
            page_param=self.page_param,
            last_page_field=self.last_page_field,
            params=self.params,
            watermark_param=self.watermark_param,
            watermark_field=self.watermark_field,
            timeout_seconds=self.timeout_seconds,
            max_retries=self.max_retries,
            backoff_seconds=self.backoff_seconds,
            token=self.token,
        )
