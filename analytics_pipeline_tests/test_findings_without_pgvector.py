"""findings_index where pgvector cannot be created: it fails saying what to run, and the rest of a run still works.

A real database on the session's server, owned by a user who is not a superuser: pgvector is installed there but
that user may not create it, which is how a managed or shared PostgreSQL often looks.
"""

import uuid

import dagster as dg
import pytest
import sqlalchemy as sa

from analytics_pipeline import urls
from analytics_pipeline.assets.findings import findings_index
from analytics_pipeline.assets.insights import insights
from analytics_pipeline.resources import OptionalOpenAIResource, Warehouse
from analytics_pipeline.warehouse import db, findings, server


@pytest.fixture
def database_of_an_ordinary_user(warehouse_url):
    if server.configured_url():
        pytest.skip("needs a server where the test may create a login without a password: the embedded one")
    name = f"findings_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(urls.psycopg2_url(warehouse_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE ROLE {name} LOGIN"))
        conn.execute(sa.text(f'CREATE DATABASE "{name}" OWNER {name}'))
    url = sa.engine.make_url(warehouse_url).set(database=name, username=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        db.engine_for(url).dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(sa.text(f"DROP ROLE IF EXISTS {name}"))
        admin.dispose()


def test_without_pgvector_the_index_fails_with_the_fix_and_the_insights_still_materialise(
    database_of_an_ordinary_user,
):
    resources = {"warehouse": Warehouse(database_url=database_of_an_ordinary_user), "openai": OptionalOpenAIResource()}
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [insights, findings_index], instance=instance, resources=resources, raise_on_error=False
        )
    assert not result.success
    assert len(result.asset_materializations_for_node("insights")) == 1
    [failure] = result.get_step_failure_events()
    assert failure.step_key == "findings_index"
    message = failure.step_failure_data.user_failure_data.description
    assert "pgvector 0." in message and "may not create the extension" in message
    assert "CREATE EXTENSION vector;" in message and "materialise findings_index again" in message
    with db.engine_for(database_of_an_ordinary_user).connect() as conn:
        assert not findings.exists(conn)
