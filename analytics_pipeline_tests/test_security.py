"""Security: what a BI login may do in the warehouse, secrets kept out of what is printed, file content escaped in the
UI's Markdown, and the installed dependencies audited for known vulnerabilities. The database checks run against the
real Postgres, the load through the real assets."""

import csv
import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster_postgres import DagsterPostgresStorage
from markdown_it import MarkdownIt

from analytics_pipeline import urls
from analytics_pipeline.redaction import MASK, redact
from analytics_pipeline.warehouse import db, markdown
from analytics_pipeline_tests.conftest import load_uploads

READER_ROLE = "analytics_reader"


# The read-only role -----------------------------------------------------------------------------------------------


@pytest.fixture
def reader(engine, warehouse_url) -> Iterator[sa.Engine]:
    """A BI tool's login in analytics_reader, made as the README says, next to Dagster's own tables."""
    dagster_tables = DagsterPostgresStorage(postgres_url=urls.psycopg2_url(warehouse_url))  # runs, event_logs, ...
    for storage in (dagster_tables.run_storage, dagster_tables.event_log_storage, dagster_tables.schedule_storage):
        storage.dispose()
    db.apply_schema(engine)  # again: applying the schema twice changes nothing
    login = f"bi_{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO analytics.daily_metrics VALUES ('2026-03-02', 20, 1, 2, 1, 20)"))
        conn.exec_driver_sql(f"CREATE ROLE {login} LOGIN PASSWORD 'bi-secret' IN ROLE {READER_ROLE}")
    url = sa.engine.make_url(urls.psycopg2_url(warehouse_url)).set(username=login, password="bi-secret")
    reader = sa.create_engine(url)
    try:
        yield reader
    finally:
        reader.dispose()
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP ROLE {login}")


def _refused(reader: sa.Engine, statement: str) -> str:
    with pytest.raises(sa.exc.ProgrammingError) as refused, reader.begin() as conn:
        conn.exec_driver_sql(statement)
    return str(refused.value.orig)


def test_a_bi_login_reads_the_analytics_tables_and_nothing_else(reader, engine):
    with reader.connect() as conn:
        assert conn.execute(sa.text("SELECT day::text, revenue FROM analytics.daily_metrics")).all() == [
            ("2026-03-02", 20)
        ]
        assert conn.execute(sa.text("SELECT count(*) FROM analytics.transactions")).scalar_one() == 0

    for statement in (
        "INSERT INTO analytics.daily_metrics VALUES ('2026-03-03', 1, 1, 1, 1, 1)",
        "UPDATE analytics.daily_metrics SET revenue = 0",
        "DELETE FROM analytics.daily_metrics",
        "TRUNCATE analytics.transactions",
        "SELECT * FROM public.runs",
        "SELECT * FROM public.event_logs",
    ):
        assert "permission denied" in _refused(reader, statement), statement
    for statement in (
        "CREATE TABLE analytics.mine (x int)", "CREATE TABLE public.mine (x int)", "DROP TABLE analytics.insights"
    ):
        refusal = _refused(reader, statement)
        assert "permission denied" in refusal or "must be owner" in refusal, statement

    # A table the project creates later is readable without another grant (default privileges).
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE analytics.later_table (x int)")
    try:
        with reader.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM analytics.later_table")).scalar_one() == 0
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE analytics.later_table")


def test_the_reader_role_cannot_log_in_itself(engine):
    with engine.connect() as conn:
        role = conn.execute(
            sa.text("SELECT rolcanlogin, rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = :r"),
            {"r": READER_ROLE},
        ).one()
    assert tuple(role) == (False, False, False, False)


# Secrets never printed --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+psycopg2://analytics:s3cr%40t@postgres:5432/analytics", "postgresql+psycopg2://analytics:***@postgres:5432/analytics"),
        ("postgresql://u:pw@h/db?sslmode=require&password=pw", "postgresql://u:***@h/db?password=***&sslmode=require"),
        ("host=h user=u password=pw dbname=d", "host=h user=u password=*** dbname=d"),
        ("host=h password='p w' dbname=d", "host=h password=*** dbname=d"),
        ("postgresql://h:5432/db", "postgresql://h:5432/db"),
    ],
)
def test_masked_url_hides_the_password_and_keeps_the_rest(url, shown):
    assert urls.masked_url(url) == shown


def test_masked_url_of_the_warehouse_can_still_be_read(warehouse_url):
    masked = sa.engine.make_url(urls.masked_url(warehouse_url))
    original = sa.engine.make_url(warehouse_url)
    assert (masked.host, masked.database, masked.username) == (original.host, original.database, original.username)


@pytest.mark.parametrize(
    ("error", "kept"),
    [
        ("Incorrect API key provided: sk-abc***************xyz. You can find your key", "Incorrect API key provided:"),
        ("Request headers: {'Authorization': 'Bearer opaque.token.value', 'User-Agent': 'x'}", "User-Agent"),
        ("authorization: Basic dXNlcjpwYXNzd29yZA==", "authorization:"),
        ("retrying with Bearer 0123abcd", "retrying with Bearer"),
        ("GET /records?api_key=plain-secret&page=2 failed", "page=2 failed"),
        ("token ghp_16C7e42F292c6912E7710c838347Ae178B4a refused", "refused"),
        ("session 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 expired", "expired"),
    ],
)
def test_redact_masks_credentials_and_keeps_the_reason(error, kept):
    redacted = redact(error)
    assert MASK in redacted and kept in redacted
    for secret in ("abc*", "opaque", "dXNlcj", "0123abcd", "plain-secret", "ghp_", "9f86d0"):
        assert secret not in redacted, redacted


def test_redact_masks_a_known_secret_of_any_shape_and_leaves_plain_errors_alone():
    assert redact("refused: hunter2 is wrong", ["hunter2", None, ""]) == f"refused: {MASK} is wrong"
    for plain in ("Connection error.", "Request timed out.", "Error code: 503 - overloaded", "model gpt-4o-mini"):
        assert redact(plain) == plain


# File content in the UI's Markdown ---------------------------------------------------------------------------------

HOSTILE_PRODUCTS = [  # as many as a preview shows
    "<img src=x onerror=alert(1)> <script>alert(1)</script>",
    "[click](javascript:alert(1))",
    "![pixel](https://tracker.example/p.png) **bold** _it_ `code`",
    "a | b\nsecond line",
    "x" * 300,
]


def _render(md: str) -> str:
    """HTML as a CommonMark renderer with GFM tables makes it (the Dagster UI's renderer is react-markdown)."""
    return MarkdownIt("commonmark").enable("table").render(md)


def test_file_content_in_load_previews_renders_as_text(instance, folders, engine):
    path = folders.uploads_path / "hostile.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["order_id", "timestamp", "price", "quantity", "country", "product"])
        for n, product in enumerate(HOSTILE_PRODUCTS):
            writer.writerow([f"H{n}", f"2026-03-02T0{n}:00:00Z", "10.00", "1", "France", product])
    load_uploads(instance, folders, [path])

    for node in ("raw_uploads", "transactions"):
        [event] = instance.fetch_materializations(dg.AssetKey(node), limit=1).records
        preview = event.asset_materialization.metadata["preview"].value
        html = _render(preview)
        assert "<img" not in html and "<a " not in html and "<script" not in html and "<strong>" not in html, html
        assert "&lt;img src=x onerror=alert(1)&gt;" in html and "[click](javascript:alert(1))" in html
        # One table: a header, and one row per previewed line with as many cells as the header.
        assert html.count("<table>") == 1 and html.count("<tr>") == 1 + len(HOSTILE_PRODUCTS), node
        widths = {len(re.findall(r"<t[hd][ >]", row)) for row in html.split("<tr>")[1:]}
        assert len(widths) == 1, widths
        assert "<em>" not in html and "<code>" not in html and "order_id" in html
        assert "a | b second line" in html and "x" * markdown.MAX_CELL_CHARS not in html
    with engine.connect() as conn:  # the warehouse keeps the values as the file said them
        stored = conn.execute(sa.text("SELECT product FROM analytics.transactions ORDER BY occurred_at")).scalars()
        assert list(stored) == HOSTILE_PRODUCTS


def test_escape_bounds_a_cell_and_escape_text_keeps_paragraphs():
    assert markdown.escape("x" * 500) == "x" * (markdown.MAX_CELL_CHARS - 1) + markdown.ELLIPSIS
    assert markdown.escape(None) == "" and markdown.escape(float("nan")) == ""
    narrative = "What changed: [link](https://x) up 5%.\n\nWhy: region <b>North</b> | grew."
    html = _render(markdown.escape_text(narrative))
    assert html.count("<p>") == 2 and "<a " not in html and "<b>" not in html
    assert "[link](https://x)" in html and "&lt;b&gt;North&lt;/b&gt; | grew" in html


# Known vulnerabilities in what is installed ------------------------------------------------------------------------

# Advisories accepted on purpose, each with why: {"PYSEC-... or GHSA-...": "reason"}. Empty: nothing is accepted.
ACCEPTED_ADVISORIES: dict[str, str] = {}
# What pip-audit's stderr says when it cannot reach a vulnerability service at all.
_UNREACHABLE = (
    "ConnectionError", "NameResolutionError", "Max retries exceeded", "Temporary failure in name resolution"
)


def test_installed_dependencies_have_no_known_vulnerabilities(tmp_path):
    """pip-audit over this venv's installed packages (the project itself, installed editable, is skipped), against
    PyPI's vulnerability data. When the service answers for no package at all, the test says so and skips: an audit
    that audited nothing is not a pass."""
    report = tmp_path / "audit.json"
    command = [sys.executable, "-m", "pip_audit", "--progress-spinner", "off", "--skip-editable"]
    result = subprocess.run(
        [*command, "--format", "json", "--output", str(report)], capture_output=True, text=True, timeout=600
    )
    if not report.exists():
        if any(sign in result.stderr for sign in _UNREACHABLE):
            last = result.stderr.strip().splitlines()[-1]
            pytest.skip(f"pip-audit could not reach its vulnerability service: {last}")
        pytest.fail(f"pip-audit failed (exit {result.returncode}): {result.stderr[-3000:]}")
    dependencies = json.loads(report.read_text())["dependencies"]
    audited = [d for d in dependencies if "skip_reason" not in d]
    if not audited:
        pytest.skip(
            f"pip-audit audited none of the {len(dependencies)} installed packages; PyPI's vulnerability service "
            f"answered none of them, e.g. {dependencies[0]['skip_reason']!r}"
        )
    found = [
        f"{d['name']} {d['version']}: {v['id']} (fixed in {', '.join(v['fix_versions']) or 'no release yet'})"
        for d in audited
        for v in d["vulns"]
        if v["id"] not in ACCEPTED_ADVISORIES and not set(v.get("aliases", [])) & set(ACCEPTED_ADVISORIES)
    ]
    assert not found, "known vulnerabilities in installed packages:\n" + "\n".join(found)
