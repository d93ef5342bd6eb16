#!/usr/bin/env python3
"""Create the database named by DATABASE_URL (from the environment or .env) when missing."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import environ
import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    environ.Env.read_env(ROOT / ".env", overwrite=False)
    url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/servicedesk")
    cfg = environ.Env.db_url_config(url)
    params = {
        "host": cfg.get("HOST") or None,
        "port": cfg.get("PORT") or None,
        "user": cfg.get("USER") or None,
        "password": cfg.get("PASSWORD") or None,
    }
    try:
        with psycopg.connect(dbname="postgres", autocommit=True, **params) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", [cfg["NAME"]]
            ).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(cfg["NAME"])))
                print(f"created database {cfg['NAME']}")
    except psycopg.OperationalError as exc:
        print(
            f"cannot reach PostgreSQL at {params['host']}:{params['port']}: {exc}", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
