-- The warehouse contract. Table and column names are what BI users build on: change them only with a migration.
-- Every statement is idempotent; the project applies this file before any asset writes.

CREATE SCHEMA IF NOT EXISTS analytics;

-- Casts that return NULL instead of failing, so one bad value rejects one row rather than a whole file.
-- Amounts as exports write them: "1,234.56", "1.234,56", "12,50", "$ 12.00", "EUR 3.5", "(12.50)" for -12.50.
-- Every branch is decided by a pattern before the cast, so no value ever needs an exception (a subtransaction);
-- the patterns also bound digits and exponents, so no accepted value can overflow numeric, alone or multiplied.
-- try_numeric is plain SQL so the planner inlines it: the common plain number is one pattern test and a cast
-- in the query itself; only formatted amounts pay for a PL/pgSQL call (4x slower over a million-row file). Its
-- pattern bounds length rather than repeating {1,30}: bounded repeats cost Postgres's regex engine 2x.
CREATE OR REPLACE FUNCTION analytics.try_formatted_numeric(value text) RETURNS numeric
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    cleaned text := btrim(value);
    negative boolean := false;
BEGIN
    cleaned := regexp_replace(cleaned, '^(USD|EUR|GBP|CHF|JPY)|(USD|EUR|GBP|CHF|JPY)$|[[:space:]$€£¥]', '', 'g');
    IF cleaned ~ '^\(.*\)$' THEN
        negative := true;
        cleaned := substr(cleaned, 2, length(cleaned) - 2);
    END IF;
    IF cleaned ~ '^[-+]?[0-9]{1,3}(,[0-9]{3}){1,10}(\.[0-9]{1,30})?$' THEN
        cleaned := replace(cleaned, ',', '');
    ELSIF cleaned ~ '^[-+]?[0-9]{1,3}(\.[0-9]{3}){1,10}(,[0-9]{1,30})?$' THEN
        cleaned := replace(replace(cleaned, '.', ''), ',', '.');
    ELSIF cleaned ~ '^[-+]?[0-9]{1,30},[0-9]{1,30}$' THEN
        cleaned := replace(cleaned, ',', '.');
    ELSIF cleaned !~ '^[-+]?([0-9]{1,30}\.?[0-9]{0,30}|\.[0-9]{1,30})([eE][-+]?[0-9]{1,3})?$' THEN
        RETURN NULL;
    END IF;
    RETURN CASE WHEN negative THEN -cleaned::numeric ELSE cleaned::numeric END;
END $$;

CREATE OR REPLACE FUNCTION analytics.try_numeric(value text) RETURNS numeric
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN octet_length(value) <= 40 AND value ~ '^ *[-+]?[0-9]+(\.[0-9]+)? *$' THEN value::numeric
                ELSE analytics.try_formatted_numeric(value) END
$$;

-- Timestamps in any form Postgres reads (ISO-8601 with or without zone, M/D/YYYY H:MM, YYYYMMDD, ...), in the
-- session's DateStyle and TimeZone, which the loader sets per file. A value must contain a digit: words such as
-- 'now' or 'today' are valid Postgres input but not a date a file meant (a leading digit settles it without a
-- regex). PostgreSQL 16+ checks validity without an exception; older servers fall back to catching the cast error.
DO $$
BEGIN
    IF current_setting('server_version_num')::int >= 160000 THEN
        EXECUTE $f$
            CREATE OR REPLACE FUNCTION analytics.try_timestamptz(value text) RETURNS timestamptz
            LANGUAGE sql STABLE AS
            'SELECT CASE WHEN (ascii(value) BETWEEN 48 AND 57 OR value ~ ''[0-9]'')
                              AND pg_input_is_valid(value, ''timestamptz'')
                         THEN value::timestamptz END'
        $f$;
    ELSE
        EXECUTE $f$
            CREATE OR REPLACE FUNCTION analytics.try_timestamptz(value text) RETURNS timestamptz
            LANGUAGE plpgsql STABLE AS $b$
            BEGIN
                IF value !~ '[0-9]' THEN
                    RETURN NULL;
                END IF;
                RETURN value::timestamptz;
            EXCEPTION WHEN others THEN
                RETURN NULL;
            END $b$
        $f$;
    END IF;
END $$;

CREATE TABLE IF NOT EXISTS analytics.ingested_files (
    file_key       text PRIMARY KEY,
    file_name      text NOT NULL,
    content_hash   text NOT NULL,
    size_bytes     bigint NOT NULL,
    path           text NOT NULL,
    status         text NOT NULL,
    columns_seen   text[],
    column_mapping jsonb,
    rows_read      bigint,
    rows_loaded    bigint,
    rows_rejected  bigint,
    duplicate_rows bigint,
    first_day      date,
    last_day       date,
    reason         text,
    run_id         text,
    received_at    timestamptz NOT NULL DEFAULT now(),
    loaded_at      timestamptz
);
CREATE INDEX IF NOT EXISTS ingested_files_content_hash ON analytics.ingested_files (content_hash);

-- The run each file waiting in the folder was last requested in, written by the upload sensor before it asks Dagster
-- for the run. Several files share a run (a batch), so this is how the sensor finds a file's runs, and finds a
-- request whose run was never created (the daemon stopped in between).
CREATE TABLE IF NOT EXISTS analytics.upload_requests (
    file_key     text PRIMARY KEY,
    batch        text NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now()
);

-- The upload's rows as text, after header mapping and before any typing: what the file said, kept in Postgres.
-- Lines the parser could not split carry only raw_line and parse_error.
CREATE TABLE IF NOT EXISTS analytics.raw_uploads (
    file_key       text NOT NULL,
    line_number    bigint NOT NULL,
    transaction_id text,
    order_id       text,
    occurred_at    text,
    customer_id    text,
    company        text,
    region         text,
    product        text,
    quantity       text,
    unit_price     text,
    amount         text,
    currency       text,
    raw_line       text,
    parse_error    text
);
CREATE INDEX IF NOT EXISTS raw_uploads_file_key ON analytics.raw_uploads (file_key);

-- transactions is partitioned by source. A big file's rows are typed into a table of their own, which gets its
-- indexes after the load and is then attached as that file's partition (warehouse/canonical.py): building an index
-- once costs a fraction of maintaining it row by row, and replacing a version is dropping its table. Small loads
-- (a small file, a database or API pull) go to the shared DEFAULT partition. A transaction_id appears once across
-- all partitions: each load removes the ids it brings from the others, under a lock, before it lands.
-- Before partitioning, transactions was a plain table: it becomes the shared partition, rows and indexes kept.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_class WHERE oid = to_regclass('analytics.transactions') AND relkind = 'r') THEN
        ALTER TABLE analytics.transactions RENAME TO transactions_shared;
        ALTER INDEX IF EXISTS analytics.transactions_day RENAME TO transactions_shared_day;
        ALTER INDEX IF EXISTS analytics.transactions_source RENAME TO transactions_shared_source;
        ALTER TABLE analytics.transactions_shared ALTER COLUMN transaction_id TYPE text COLLATE "C";
    END IF;
END $$;

CREATE SCHEMA IF NOT EXISTS analytics_loads;  -- the per-file partitions and the tables being loaded into them

CREATE TABLE IF NOT EXISTS analytics.transactions (
    transaction_id  text COLLATE "C" NOT NULL,  -- ids are compared, never sorted for people: byte order, 3x faster
    order_id        text NOT NULL,
    occurred_at     timestamptz NOT NULL,
    day             date NOT NULL,
    customer_id     text,
    company         text,
    region          text,
    product         text,
    quantity        numeric NOT NULL,
    unit_price      numeric,
    amount          numeric NOT NULL,
    currency        text,
    is_cancellation boolean NOT NULL DEFAULT false,
    source          text NOT NULL,
    source_line     bigint NOT NULL
) PARTITION BY LIST (source);
DO $$
BEGIN
    IF to_regclass('analytics.transactions_shared') IS NULL THEN
        CREATE TABLE analytics.transactions_shared PARTITION OF analytics.transactions DEFAULT;
    ELSIF NOT EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = 'analytics.transactions_shared'::regclass) THEN
        ALTER TABLE analytics.transactions ATTACH PARTITION analytics.transactions_shared DEFAULT;
    END IF;
END $$;
CREATE INDEX IF NOT EXISTS transactions_id ON analytics.transactions (transaction_id);
CREATE INDEX IF NOT EXISTS transactions_day ON analytics.transactions (day);
CREATE INDEX IF NOT EXISTS transactions_shared_source ON analytics.transactions_shared (source);

CREATE TABLE IF NOT EXISTS analytics.rejected_rows (
    file_key    text NOT NULL,
    line_number bigint NOT NULL,
    raw_line    text NOT NULL,
    reason      text NOT NULL,
    rejected_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS rejected_rows_file_key ON analytics.rejected_rows (file_key);

CREATE TABLE IF NOT EXISTS analytics.daily_metrics (
    day             date PRIMARY KEY,
    revenue         numeric(18, 2) NOT NULL,
    orders          bigint NOT NULL,
    units           numeric NOT NULL,
    customers       bigint NOT NULL,
    avg_order_value numeric(18, 2)
);

CREATE TABLE IF NOT EXISTS analytics.daily_region_metrics (
    day             date NOT NULL,
    region          text NOT NULL,
    revenue         numeric(18, 2) NOT NULL,
    orders          bigint NOT NULL,
    units           numeric NOT NULL,
    customers       bigint NOT NULL,
    avg_order_value numeric(18, 2),
    PRIMARY KEY (day, region)
);

CREATE TABLE IF NOT EXISTS analytics.daily_product_metrics (
    day             date NOT NULL,
    product         text NOT NULL,
    revenue         numeric(18, 2) NOT NULL,
    orders          bigint NOT NULL,
    units           numeric NOT NULL,
    customers       bigint NOT NULL,
    avg_order_value numeric(18, 2),
    PRIMARY KEY (day, product)
);

CREATE TABLE IF NOT EXISTS analytics.daily_company_metrics (
    day             date NOT NULL,
    company         text NOT NULL,
    revenue         numeric(18, 2) NOT NULL,
    orders          bigint NOT NULL,
    units           numeric NOT NULL,
    customers       bigint NOT NULL,
    avg_order_value numeric(18, 2),
    PRIMARY KEY (day, company)
);

CREATE TABLE IF NOT EXISTS analytics.revenue_forecast (
    segment      text NOT NULL,
    day          date NOT NULL,
    predicted    numeric(18, 2) NOT NULL,
    lower_bound  numeric(18, 2) NOT NULL,
    upper_bound  numeric(18, 2) NOT NULL,
    method       text NOT NULL,
    generated_at timestamptz NOT NULL,
    PRIMARY KEY (segment, day)
);

-- Before every method was backtested side by side the table held one row per segment; it is rebuilt on every
-- forecast, so the old shape is dropped rather than migrated.
DO $$
BEGIN
    IF to_regclass('analytics.forecast_backtest') IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM information_schema.columns
        WHERE table_schema = 'analytics' AND table_name = 'forecast_backtest' AND column_name = 'horizon_week'
    ) THEN
        DROP TABLE analytics.forecast_backtest;
    END IF;
END $$;

CREATE TABLE IF NOT EXISTS analytics.forecast_backtest (
    segment      text NOT NULL,
    method       text NOT NULL,
    horizon_week integer NOT NULL,
    published    boolean NOT NULL,
    mae          double precision NOT NULL,
    smape        double precision NOT NULL,
    mase         double precision NOT NULL,
    coverage     double precision,
    n_origins    integer NOT NULL,
    n_points     integer NOT NULL,
    reason       text,
    generated_at timestamptz NOT NULL,
    PRIMARY KEY (segment, method, horizon_week)
);

CREATE TABLE IF NOT EXISTS analytics.forecast_totals (
    segment      text NOT NULL,
    days         integer NOT NULL,
    first_day    date NOT NULL,
    last_day     date NOT NULL,
    predicted    numeric(18, 2) NOT NULL,
    lower_bound  numeric(18, 2) NOT NULL,
    upper_bound  numeric(18, 2) NOT NULL,
    method       text NOT NULL,
    generated_at timestamptz NOT NULL,
    PRIMARY KEY (segment, days)
);

CREATE TABLE IF NOT EXISTS analytics.metric_anomalies (
    day       date NOT NULL,
    metric    text NOT NULL,
    segment   text NOT NULL,
    actual    double precision NOT NULL,
    expected  double precision NOT NULL,
    score     double precision NOT NULL,
    direction text NOT NULL,
    reason    text NOT NULL,
    PRIMARY KEY (day, metric, segment)
);

CREATE TABLE IF NOT EXISTS analytics.insights (
    insight_id   bigserial PRIMARY KEY,
    generated_at timestamptz NOT NULL,
    writer       text NOT NULL,
    narrative    text NOT NULL,
    facts        jsonb NOT NULL,
    ungrounded   text[] NOT NULL DEFAULT '{}'
);

CREATE TABLE IF NOT EXISTS analytics.charts (
    chart        text PRIMARY KEY,
    path         text NOT NULL,
    png          bytea NOT NULL,
    generated_at timestamptz NOT NULL
);

-- How far each incremental source (a database table or query, a REST API) has been read. The watermark moves in
-- the same transaction that loads the rows it covers, so a failed pull is retried from where the last good one ended.
CREATE TABLE IF NOT EXISTS analytics.source_watermarks (
    source      text PRIMARY KEY,
    watermark   text,
    rows_pulled bigint NOT NULL,
    updated_at  timestamptz NOT NULL
);

-- ==== Read-only access for BI tools ==============================================================================
-- analytics_reader reads every table of schema analytics, today's and those created later (default privileges), and
-- nothing else: no writes, no DDL, not Dagster's own tables (runs, event_logs, ... in schema public). It cannot log
-- in; a BI tool gets a login of its own in this role (README, "Read-only access for BI tools"). A role belongs to the
-- server, its grants to this database. Each step runs only when it is missing, so applying the schema again writes
-- no catalog row. A user that may not create roles or grant (a managed Postgres) skips this with a notice.
DO $$
DECLARE
    missing regclass;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'analytics_reader') THEN
        BEGIN
            CREATE ROLE analytics_reader NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- another database of the same server created it meanwhile
        END;
    END IF;
    IF NOT has_schema_privilege('analytics_reader', 'analytics', 'USAGE') THEN
        GRANT USAGE ON SCHEMA analytics TO analytics_reader;
    END IF;
    FOR missing IN
        SELECT c.oid FROM pg_class c
        WHERE c.relnamespace = 'analytics'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm')
          AND NOT has_table_privilege('analytics_reader', c.oid, 'SELECT')
    LOOP
        EXECUTE 'GRANT SELECT ON ' || missing::text || ' TO analytics_reader';
    END LOOP;
    IF NOT EXISTS (
        SELECT FROM pg_default_acl d, aclexplode(d.defaclacl) a
        WHERE d.defaclrole = current_user::regrole AND d.defaclnamespace = 'analytics'::regnamespace
          AND d.defaclobjtype = 'r' AND a.grantee = 'analytics_reader'::regrole AND a.privilege_type = 'SELECT'
    ) THEN
        ALTER DEFAULT PRIVILEGES IN SCHEMA analytics GRANT SELECT ON TABLES TO analytics_reader;
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE USING MESSAGE = 'analytics_reader not set up: ' || current_user || ' may not create roles or grant';
END $$;
-- ==== end of read-only access ====================================================================================
