-- The findings search (asset findings_index). Not in schema.sql: it needs the pgvector extension, which a configured
-- PostgreSQL may not have, and nothing else of the pipeline does. warehouse/findings.py applies this file, once it
-- has checked that the server offers the extension. Every statement is idempotent.

CREATE EXTENSION IF NOT EXISTS vector;

-- Every insight, anomaly and forecast summary the pipeline has produced, kept after its own table moved on (those
-- tables hold the latest run's results only). One row per finding and embedding model: re-finding the same thing
-- replaces its row. The vectors of different models differ in size and meaning, so a search compares one model's.
CREATE TABLE IF NOT EXISTS analytics.findings (
    kind         text NOT NULL,
    day          date NOT NULL,
    segment      text NOT NULL,
    metric       text NOT NULL,
    model        text NOT NULL,
    period_start date NOT NULL,
    period_end   date NOT NULL,
    text         text NOT NULL,
    numbers      jsonb NOT NULL,
    document     text NOT NULL,
    embedding    vector NOT NULL,
    indexed_at   timestamptz NOT NULL,
    PRIMARY KEY (kind, day, segment, metric, model)
);
