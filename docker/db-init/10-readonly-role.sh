#!/bin/sh
# Runs once, when the `db` volume is initialised (postgres image, /docker-entrypoint-initdb.d).
# Creates Grafana's login role with no privileges at all; the compose service `init` then runs
# `manage.py create_readonly_role`, which grants SELECT on the metric and platform views only
# (after every migrate, because the views may be recreated).
set -eu
: "${GRAFANA_DB_USER:?set GRAFANA_DB_USER (make env)}"
: "${GRAFANA_DB_PASSWORD:?set GRAFANA_DB_PASSWORD (make env)}"

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" \
  --dbname "${POSTGRES_DB:-postgres}" \
  -v role="$GRAFANA_DB_USER" -v password="$GRAFANA_DB_PASSWORD" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password'
  NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
ALTER ROLE :"role" SET default_transaction_read_only = on;
ALTER ROLE :"role" SET statement_timeout = '30s';
ALTER ROLE :"role" SET jit = off;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
SQL
