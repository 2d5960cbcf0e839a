"""Dagster's run, event and schedule storage, kept in the warehouse Postgres.

dagster.yaml names this class instead of a ``postgres_url`` so that the one rule for finding the database -
``ANALYTICS_DATABASE_URL``, else the embedded server - also holds for Dagster itself, in every process (webserver,
daemon, run workers, and any ``dagster`` command run from the project root), with nothing else to export.
"""

from dagster._serdes import ConfigurableClassData
from dagster_postgres import DagsterPostgresStorage

from analytics_pipeline.warehouse import server


class WarehouseDagsterStorage(DagsterPostgresStorage):
    @classmethod
    def config_type(cls) -> dict:
        return {}

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value) -> "WarehouseDagsterStorage":
        return cls(postgres_url=server.psycopg2_url(server.database_url()), inst_data=inst_data)
