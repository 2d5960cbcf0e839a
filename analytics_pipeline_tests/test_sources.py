"""The database and REST API sources, against a real Postgres and a real HTTP server on loopback.

What reaches `analytics.transactions` is checked against the source itself, and every pull is all or nothing: its
rows, its rejections and its new watermark commit together.
"""

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from math import ceil
from urllib.parse import urlencode

import dagster as dg
import pytest
import sqlalchemy as sa

from analytics_pipeline import urls
from analytics_pipeline.assets.sources import PULL_ACCEPTED_CHECK, api_transactions, batch_key, database_transactions
from analytics_pipeline.ingestion.rest_api import ApiError
from analytics_pipeline.resources import DatabaseSource, RestApiSource, Warehouse
from analytics_pipeline.warehouse import server
from analytics_pipeline_tests.conftest import scratch_database
from analytics_pipeline_tests.http_server import Request, Response, serve

ORDERS = """
CREATE TABLE orders (
    id         bigint PRIMARY KEY,
    created_at text NOT NULL,  -- the legacy application writes its own timestamp strings
    updated_at timestamptz NOT NULL,
    customer   text,
    region     text,
    product    text,
    quantity   integer NOT NULL,
    amount     numeric(12, 2) NOT NULL
)
"""

ADD_ORDERS = """
INSERT INTO orders
SELECT i,
       to_char(timestamp '2026-01-01' + i * interval '37 minutes', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
       timestamptz '2026-01-01 00:05:00+00' + i * interval '37 minutes',
       'c' || i % 40, (ARRAY['north', 'south', 'east', 'west'])[1 + i % 4], 'p' || i % 12, 1 + i % 5,
       round(5 + (i % 97) * 1.37, 2)
FROM generate_series(CAST(:first AS int), CAST(:last AS int)) AS i
"""

# Moves rows past every watermark a pull has seen, as the application does when it edits an order.
TOUCH = "UPDATE orders SET updated_at = (SELECT max(updated_at) FROM orders) + interval '1 hour'"

TOKEN = "s3cret-token-never-logged"


def _rows(engine: sa.Engine, sql: str) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(sa.text(sql))]


def _scalar(engine: sa.Engine, sql: str):
    [(value,)] = _rows(engine, sql)
    return value


def _execute(engine: sa.Engine, sql: str, params: dict | None = None) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(sql), params or {})


def _fingerprint(engine: sa.Engine, table: str) -> tuple:
    """Row count and a hash of every row's full contents."""
    sql = f"SELECT count(*), md5(string_agg(t::text, '|' ORDER BY t::text)) FROM analytics.{table} AS t"
    [fingerprint] = _rows(engine, sql)
    return fingerprint


def _pull(asset, instance, **resources) -> dict:
    """Materialise one source asset; returns its materialisation metadata as plain values, and its check results."""
    result = dg.materialize([asset], instance=instance, resources={"warehouse": Warehouse(), **resources})
    assert result.success
    metadata = result.asset_materializations_for_node(asset.key.path[-1])[0].metadata
    checks = {check.check_name: check for check in result.get_asset_check_evaluations()}
    return {name: value.value for name, value in metadata.items()} | {"run_id": result.run_id, "checks": checks}


def _refusal(pulled: dict) -> tuple:
    check = pulled["checks"][PULL_ACCEPTED_CHECK]
    return pulled["status"], pulled.get("reason"), check.passed, check.severity, check.description


# The database source ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def operational_database(warehouse_url: str) -> Iterator[sa.Engine]:
    """A database of its own on the warehouse's server, standing for the business's application database."""
    with scratch_database(warehouse_url) as url:
        source = sa.create_engine(urls.psycopg2_url(url))
        yield source
        source.dispose()


@pytest.fixture
def orders(operational_database: sa.Engine) -> sa.Engine:
    """The operational database with exactly 2,500 orders."""
    _execute(operational_database, f'DROP SCHEMA IF EXISTS "Ops" CASCADE; DROP TABLE IF EXISTS orders; {ORDERS}')
    _execute(operational_database, ADD_ORDERS, {"first": 1, "last": 2500})
    return operational_database


def _database(source: sa.Engine, **config) -> DatabaseSource:
    settings = {"table": "orders", "columns": {"transaction_id": "id"}, "batch_size": 1000} | config
    return DatabaseSource(url=source.url.render_as_string(hide_password=False), **settings)


def _pull_orders(instance, source: sa.Engine, **config) -> dict:
    return _pull(database_transactions, instance, database_source=_database(source, **config))


def test_first_pull_loads_every_row_in_bounded_pages(orders, engine, instance):
    pulled = _pull_orders(instance, orders)

    [(count, total, latest)] = _rows(orders, "SELECT count(*), sum(amount), max(updated_at) FROM orders")
    assert _scalar(engine, "SELECT count(*) FROM analytics.transactions") == count == 2500
    assert _scalar(engine, "SELECT sum(amount) FROM analytics.transactions") == total
    assert _scalar(engine, "SELECT count(*) FROM analytics.transactions WHERE transaction_id !~ '^[0-9]+$'") == 0
    assert pulled["pages"] == 3  # 2,500 rows fetched 1,000 at a time from the server-side cursor
    assert pulled["dagster/row_count"] == 2500 and pulled["rows_rejected"] == 0
    assert (pulled["first_day"], pulled["last_day"]) == ("2026-01-01", "2026-03-06")
    assert pulled["watermark_before"] == ""
    assert datetime.fromisoformat(pulled["watermark_after"]) == latest
    stored = _rows(engine, "SELECT source, watermark, rows_pulled FROM analytics.source_watermarks")
    assert stored == [("db_orders", pulled["watermark_after"], 2500)]


def test_a_pull_without_changes_loads_nothing_and_leaves_transactions_identical(orders, engine, instance):
    first = _pull_orders(instance, orders)
    before = _fingerprint(engine, "transactions")

    second = _pull_orders(instance, orders)
    assert second["rows_read"] == 0 and second["status"] == "no new rows"
    assert second["watermark_before"] == second["watermark_after"] == first["watermark_after"]
    assert _fingerprint(engine, "transactions") == before


def test_updated_rows_replace_their_old_values_without_duplicates(orders, engine, instance):
    first = _pull_orders(instance, orders)
    _execute(orders, f"{TOUCH}, amount = amount + 1000 WHERE id IN (10, 20, 30)")

    second = _pull_orders(instance, orders)
    assert second["rows_read"] == 3 and second["watermark_before"] == first["watermark_after"]
    assert _scalar(engine, "SELECT count(DISTINCT transaction_id) FROM analytics.transactions") == 2500
    assert _scalar(engine, "SELECT count(*) FROM analytics.transactions") == 2500
    total = _scalar(orders, "SELECT sum(amount) FROM orders")
    assert _scalar(engine, "SELECT sum(amount) FROM analytics.transactions") == total
    moved = _rows(
        engine,
        "SELECT transaction_id, amount, source FROM analytics.transactions "
        "WHERE transaction_id IN ('10', '20', '30') ORDER BY 1",
    )
    expected = _rows(orders, "SELECT id::text, amount FROM orders WHERE id IN (10, 20, 30) ORDER BY 1")
    assert [(t, a) for t, a, _ in moved] == expected and expected[0][1] > 1000
    assert {source for *_, source in moved} == {second["batch_key"]} != {first["batch_key"]}


def test_a_row_with_a_bad_value_is_rejected_with_its_reason(orders, engine, instance):
    _execute(orders, ADD_ORDERS, {"first": 2501, "last": 2501})
    _execute(orders, "UPDATE orders SET created_at = 'next tuesday' WHERE id = 2501")

    pulled = _pull_orders(instance, orders)
    assert pulled["rows_read"] == 2501 and pulled["dagster/row_count"] == 2500 and pulled["rows_rejected"] == 1
    [(file_key, raw_line, reason)] = _rows(engine, "SELECT file_key, raw_line, reason FROM analytics.rejected_rows")
    assert file_key == pulled["batch_key"]
    assert reason == "unparseable timestamp 'next tuesday'"
    assert json.loads(raw_line)["occurred_at"] == "next tuesday"


def test_a_pull_with_mostly_bad_rows_is_refused_and_read_again_once_the_source_is_fixed(orders, engine, instance):
    _execute(orders, "UPDATE orders SET created_at = 'soon' WHERE id % 5 <> 0")  # 2,000 of the 2,500 rows

    refused = _pull_orders(instance, orders)
    reason = (
        "2000 of 2500 rows (80%) could not be loaded, more than the allowed 50%; most common: "
        "unparseable timestamp 'soon'"
    )
    assert _refusal(refused) == ("refused", reason, False, dg.AssetCheckSeverity.WARN, reason)
    assert (refused["dagster/row_count"], refused["rows_read"], refused["rows_rejected"]) == (0, 2500, 2000)
    assert (refused["watermark_before"], refused["watermark_after"], refused["first_day"]) == ("", "", "")
    # It used to load nothing, say "loaded" and move the watermark past the 500 good rows: lost for good.
    assert _rows(engine, "SELECT source, watermark, rows_pulled FROM analytics.source_watermarks") == [
        ("db_orders", None, 0)
    ]
    assert _scalar(engine, "SELECT count(*) FROM analytics.transactions") == 0
    assert _scalar(engine, "SELECT count(*) FROM analytics.rejected_rows") == 2000  # why, for whoever fixes it

    _execute(orders, """UPDATE orders SET created_at = to_char(updated_at, 'YYYY-MM-DD"T"HH24:MI')""")
    fixed = _pull_orders(instance, orders)
    assert _refusal(fixed) == ("loaded", None, True, dg.AssetCheckSeverity.WARN, None)
    assert (fixed["batch_key"], fixed["watermark_before"]) == (refused["batch_key"], "")  # the same pull, again
    assert (fixed["dagster/row_count"], fixed["rows_rejected"]) == (2500, 0)
    assert _scalar(engine, "SELECT count(*) FROM analytics.rejected_rows") == 0
    [(watermark,)] = _rows(engine, "SELECT watermark FROM analytics.source_watermarks")
    assert watermark == fixed["watermark_after"] != ""


def test_a_pull_is_one_transaction_so_a_failed_promote_moves_nothing(orders, engine, instance):
    first = _pull_orders(instance, orders)
    _execute(orders, ADD_ORDERS, {"first": 2501, "last": 2505})
    _execute(orders, f"{TOUCH}, customer = 'refused' WHERE id = 2503")
    tables = ("transactions", "rejected_rows", "raw_uploads", "source_watermarks")
    before = {table: _fingerprint(engine, table) for table in tables}

    # A real failure inside promote: the warehouse itself refuses one row of the pull while it is inserted.
    _execute(
        engine,
        """
        CREATE FUNCTION public.refuse_marked_rows() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.customer_id = 'refused' THEN RAISE EXCEPTION 'refused by the test trigger'; END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER refuse_marked_rows BEFORE INSERT OR UPDATE ON analytics.transactions
            FOR EACH ROW EXECUTE FUNCTION public.refuse_marked_rows();
        """,
    )
    try:
        with pytest.raises(Exception, match="refused by the test trigger"):
            _pull_orders(instance, orders)
        assert {table: _fingerprint(engine, table) for table in tables} == before
    finally:
        _execute(engine, "DROP FUNCTION public.refuse_marked_rows() CASCADE")

    retried = _pull_orders(instance, orders)  # starts where the last good pull ended, under the same key
    assert retried["watermark_before"] == first["watermark_after"]
    assert retried["batch_key"] == batch_key("db_orders", first["watermark_after"])
    assert retried["rows_read"] == 5
    assert _scalar(engine, "SELECT count(*) FROM analytics.transactions") == 2505


def test_a_quoted_schema_qualified_table_is_read_by_an_id_watermark(orders, engine, instance):
    _execute(
        orders,
        """
        CREATE SCHEMA "Ops";
        CREATE TABLE "Ops"."Legacy Orders" ("Order No" bigint PRIMARY KEY, "Placed" text, "Total" numeric);
        INSERT INTO "Ops"."Legacy Orders"
        VALUES (1, '2026-02-01 10:00', 10), (2, '2026-02-02', 20), (3, '2026-02-03', 30)
        """,
    )
    config = {
        "table": "Ops.Legacy Orders",
        "watermark_column": "Order No",
        "columns": {"transaction_id": "Order No", "occurred_at": "Placed", "amount": "Total"},
    }
    first = _pull_orders(instance, orders, **config)
    assert (first["dagster/row_count"], first["watermark_after"]) == (3, "3")
    _execute(orders, """INSERT INTO "Ops"."Legacy Orders" VALUES (4, '2026-02-04', 40), (5, '2026-02-05', 50)""")

    second = _pull_orders(instance, orders, **config)
    assert (second["rows_read"], second["watermark_before"], second["watermark_after"]) == (2, "3", "5")
    assert _scalar(engine, "SELECT sum(amount) FROM analytics.transactions") == 150
    sources = _rows(engine, "SELECT DISTINCT source FROM analytics.transactions")
    assert sorted(sources) == sorted([(first["batch_key"],), (second["batch_key"],)])
    assert all(key.startswith("db_ops_legacy_orders_") for (key,) in sources)


def test_a_query_source_loads_exactly_the_rows_it_selects(orders, engine, instance):
    query = "SELECT id, created_at, updated_at, customer, amount FROM orders WHERE region = 'north';"
    pulled = _pull_orders(instance, orders, table=None, query=query, name="north orders")
    assert pulled["source"] == "db_north_orders"
    north = _rows(orders, "SELECT count(*), sum(amount) FROM orders WHERE region = 'north'")
    assert _rows(engine, "SELECT count(*), sum(amount) FROM analytics.transactions") == north
    assert north[0][0] == 625


def test_unconfigured_sources_materialise_and_load_nothing(engine, instance):
    for asset, resource, variable in (
        (database_transactions, {"database_source": DatabaseSource()}, "ANALYTICS_SOURCE_DATABASE_URL"),
        (api_transactions, {"api_source": RestApiSource()}, "ANALYTICS_SOURCE_API_BASE_URL"),
    ):
        pulled = _pull(asset, instance, **resource)
        assert pulled["status"] == f"not configured (set {variable}): nothing pulled"
        assert pulled["dagster/row_count"] == 0
    for table in ("transactions", "raw_uploads", "source_watermarks"):
        assert _scalar(engine, f"SELECT count(*) FROM analytics.{table}") == 0


def test_definitions_configure_the_database_source_and_its_schedule_from_the_environment(orders, engine, warehouse_url):
    """The real definitions module in a fresh process, as the daemon loads it: variables in, rows out."""
    script = """
import json, dagster as dg
from analytics_pipeline.definitions import defs
with dg.DagsterInstance.ephemeral() as instance:
    result = defs.resolve_job_def("database_pull_job").execute_in_process(instance=instance)
metadata = result.asset_materializations_for_node("database_transactions")[0].metadata
print(json.dumps({"schedules": {s.name: s.default_status.value for s in defs.schedules},
                  "rows": metadata["dagster/row_count"].value, "pages": metadata["pages"].value}))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANALYTICS_SOURCE_")}
    env |= {
        server.DATABASE_URL_ENV: warehouse_url,
        "ANALYTICS_SOURCE_DATABASE_URL": orders.url.render_as_string(hide_password=False),
        "ANALYTICS_SOURCE_DATABASE_TABLE": "orders",
        "ANALYTICS_SOURCE_DATABASE_COLUMNS": '{"transaction_id": "id"}',
        "ANALYTICS_SOURCE_DATABASE_BATCH_SIZE": "700",
    }
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["rows"] == 2500 and report["pages"] == 4
    assert report["schedules"]["database_pull_schedule"] == "RUNNING"
    assert report["schedules"]["api_pull_schedule"] == "STOPPED"
    assert _scalar(engine, "SELECT count(DISTINCT transaction_id) FROM analytics.transactions") == 2500


# The REST API source ------------------------------------------------------------------------------------------


def _record(number: int, updated_minute: int, price: float) -> dict:
    return {
        "id": f"T{number:04d}",
        "created": f"2026-03-{number:02d}T09:30:00Z",
        "updated_at": f"2026-03-20T10:{updated_minute:02d}:00Z",
        "customer": f"c{number % 3}",
        "country": "France",
        "sku": f"p{number % 2}",
        "qty": 1 + number % 3,
        "price": price,
        "meta": {"channel": "web"},
    }


class ShopApi:
    """An orders API with three styles of the same list: next links, numbered pages with a total, a bare list.

    Records come in id order and ``updated_since`` keeps those updated strictly after it. ``fault`` may answer a
    request instead (rate limits, outages, slowness).
    """

    def __init__(self, records: list[dict], fault: Callable[[Request], Response | None] = lambda request: None):
        self.records, self.fault = records, fault

    def respond(self, request: Request) -> Response:
        answer = self.fault(request)
        if answer:
            return answer
        query = request.query
        since = query.get("updated_since")
        after = datetime.fromisoformat(since) if since else None
        rows = [r for r in self.records if after is None or datetime.fromisoformat(r["updated_at"]) > after]
        per_page = int(query.get("per_page", 100))
        if request.path == "/v1/orders":
            rows = [r for r in rows if r["id"] > query.get("after", "")]
            page = rows[:per_page]
            following = {k: v for k, v in query.items() if k != "after"} | {"after": page[-1]["id"]} if page else {}
            return _json({"data": page, "next": "/v1/orders?" + urlencode(following) if len(rows) > per_page else None})
        number = int(query.get("page", 1))
        page = rows[(number - 1) * per_page : number * per_page]
        if request.path == "/v1/orders-by-page":
            return _json({"data": page, "meta": {"total_pages": max(1, ceil(len(rows) / per_page))}})
        return _json(page)


def _json(body, status: int = 200, headers: dict | None = None) -> Response:
    return status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(body).encode()


def _records(count: int) -> list[dict]:
    return [_record(n, n, 2.5 * n) for n in range(1, count + 1)]


def _api(base_url: str, **config) -> RestApiSource:
    settings = {
        "path": "/v1/orders",
        "params": {"per_page": "3"},
        "columns": {"transaction_id": "id", "occurred_at": "created"},
        "token": TOKEN,
        "timeout_seconds": 5.0,
        "max_retries": 3,
        "backoff_seconds": 0.05,
    } | config
    return RestApiSource(base_url=base_url, **settings)


def _pull_api(instance, base_url: str, **config) -> dict:
    return _pull(api_transactions, instance, api_source=_api(base_url, **config))


def _revenue(records: list[dict]) -> float:
    return sum(r["qty"] * r["price"] for r in records)


def test_next_links_are_followed_with_the_token_which_is_never_logged(engine, instance):
    records = _records(7)
    with serve(ShopApi(records).respond) as (base_url, received):
        pulled = _pull_api(instance, base_url)

    assert [r.query.get("after") for r in received] == [None, "T0003", "T0006"]
    assert {r.headers.get("Authorization") for r in received} == {f"Bearer {TOKEN}"}
    assert pulled["pages"] == 3 and pulled["dagster/row_count"] == 7
    assert pulled["watermark_after"] == "2026-03-20T10:07:00Z"
    assert float(_scalar(engine, "SELECT sum(amount) FROM analytics.transactions")) == _revenue(records)
    assert _scalar(engine, "SELECT min(transaction_id) FROM analytics.transactions") == "T0001"
    logs = " ".join(str(entry) for entry in instance.all_logs(pulled["run_id"]))
    assert "api_v1_orders" in logs and TOKEN not in logs


def test_page_numbers_stop_at_the_last_page_the_api_names(engine, instance):
    records = _records(7)
    with serve(ShopApi(records).respond) as (base_url, received):
        pulled = _pull_api(
            instance, base_url, path="/v1/orders-by-page", pagination="page_number", last_page_field="meta.total_pages"
        )
    assert [r.query["page"] for r in received] == ["1", "2", "3"]  # never asks for a page past the last one
    assert pulled["dagster/row_count"] == 7
    assert float(_scalar(engine, "SELECT sum(amount) FROM analytics.transactions")) == _revenue(records)


def test_page_numbers_without_a_total_stop_at_the_first_empty_page(engine, instance):
    records = _records(6)
    with serve(ShopApi(records).respond) as (base_url, received):
        pulled = _pull_api(instance, base_url, path="/v1/orders-list", pagination="page_number", records_field="")
    assert [r.query["page"] for r in received] == ["1", "2", "3"]
    assert pulled["pages"] == 3 and pulled["dagster/row_count"] == 6


def test_rate_limits_and_outages_are_retried_honouring_retry_after(engine, instance):
    script = iter([_json({"error": "slow down"}, 429, {"Retry-After": "1"}), _json({"error": "down"}, 503)])
    api = ShopApi(_records(7), fault=lambda request: next(script, None))
    with serve(api.respond) as (base_url, received):
        pulled = _pull_api(instance, base_url, params={"per_page": "10"})

    assert len(received) == 3  # the 429, the 503, then the page
    assert received[1].received_at - received[0].received_at >= 1.0  # waited as Retry-After asked
    assert received[2].received_at - received[1].received_at < 1.0  # then only the short backoff
    assert pulled["dagster/row_count"] == 7


def test_a_response_slower_than_the_timeout_is_retried(engine, instance):
    slow = iter([True])

    def first_is_slow(request: Request) -> None:
        if next(slow, False):
            time.sleep(1.5)

    with serve(ShopApi(_records(4), fault=first_is_slow).respond) as (base_url, received):
        pulled = _pull_api(instance, base_url, timeout_seconds=0.5, params={"per_page": "10"})
    assert len(received) == 2
    assert pulled["dagster/row_count"] == 4


def test_an_api_that_keeps_failing_is_named_in_the_error_and_nothing_is_written(engine, instance):
    def second_page_is_down(request: Request) -> Response | None:
        return _json({"error": "boom"}, 500) if "after" in request.query else None

    with serve(ShopApi(_records(7), fault=second_page_is_down).respond) as (base_url, received):
        failure = r"GET http://127\.0\.0\.1:\d+/v1/orders\?\S*after=T0003\S* failed after 3 attempts: HTTP 500"
        with pytest.raises(ApiError, match=failure):
            _pull_api(instance, base_url, max_retries=2)
    assert len(received) == 1 + 3  # the good first page, then the second page three times
    for table in ("transactions", "raw_uploads", "rejected_rows", "source_watermarks"):
        assert _scalar(engine, f"SELECT count(*) FROM analytics.{table}") == 0  # the good first page was not kept


def test_the_next_pull_sends_the_watermark_and_loads_only_new_and_changed_records(engine, instance):
    records = _records(5)
    api = ShopApi(records)
    with serve(api.respond) as (base_url, received):
        first = _pull_api(instance, base_url)
        records[1] = _record(2, 30, 99.0)  # T0002 changed after the first pull
        records += [_record(6, 31, 15.0), _record(7, 32, 17.5)]
        calls = len(received)
        second = _pull_api(instance, base_url)

    assert received[0].query.get("updated_since") is None
    assert received[calls].query["updated_since"] == first["watermark_after"] == "2026-03-20T10:05:00Z"
    assert second["rows_read"] == 3 and second["watermark_after"] == "2026-03-20T10:32:00Z"
    assert _scalar(engine, "SELECT count(*) FROM analytics.transactions") == 7
    assert float(_scalar(engine, "SELECT sum(amount) FROM analytics.transactions")) == _revenue(records)
    changed = _rows(engine, "SELECT unit_price, source FROM analytics.transactions WHERE transaction_id = 'T0002'")
    assert changed == [(99.0, second["batch_key"])]


def test_a_poison_value_in_a_pull_rejects_only_its_row(engine, instance):
    records = _records(7)
    records[2]["price"] = 1e20  # typed, it overflowed every daily table's numeric(18, 2)
    records[4]["sku"] = "p" * 501
    with serve(ShopApi(records).respond) as (base_url, _):
        pulled = _pull_api(instance, base_url)

    assert (pulled["status"], pulled["dagster/row_count"], pulled["rows_rejected"]) == ("loaded", 5, 2)
    assert _rows(engine, "SELECT line_number, reason FROM analytics.rejected_rows ORDER BY 1") == [
        (3, "unit price '1e+20' out of range (|x| <= 1,000,000,000,000)"),
        (5, "product has 501 characters, more than the 500 allowed"),
    ]
    kept = [r for n, r in enumerate(records) if n not in (2, 4)]
    assert float(_scalar(engine, "SELECT sum(amount) FROM analytics.transactions")) == _revenue(kept)


def test_a_refused_api_pull_keeps_its_watermark_and_the_next_pull_asks_again(engine, instance):
    records = _records(7)
    for record in records[:4]:
        record["created"] = "soon"
    api = ShopApi(records)
    with serve(api.respond) as (base_url, received):
        refused = _pull_api(instance, base_url)
        for number, record in enumerate(records[:4], start=1):
            record["created"] = _record(number, number, 0)["created"]
        calls = len(received)
        fixed = _pull_api(instance, base_url)

    assert (refused["status"], refused["rows_rejected"], refused["watermark_after"]) == ("refused", 4, "")
    assert received[calls].query.get("updated_since") is None  # asks from the same watermark: nothing skipped
    assert (fixed["status"], fixed["dagster/row_count"], fixed["batch_key"]) == ("loaded", 7, refused["batch_key"])
    assert fixed["watermark_after"] == "2026-03-20T10:07:00Z"
    assert float(_scalar(engine, "SELECT sum(amount) FROM analytics.transactions")) == _revenue(records)
