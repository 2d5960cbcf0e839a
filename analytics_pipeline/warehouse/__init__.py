"""The Postgres warehouse: the embedded server, connections, DDL and bulk loading."""
