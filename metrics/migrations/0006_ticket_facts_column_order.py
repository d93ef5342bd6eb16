"""mf_ticket with fixed-width, never-null columns first: per-ticket scans (percentiles, backlog,
the cut days of a period) deform each row only up to the columns they read.

Same columns as 0005, new physical order; the table is recreated empty and the facts are
rebuilt on the next import or compute.
"""

import importlib

from django.db import migrations

V5 = importlib.import_module("metrics.migrations.0005_lean_ticket_facts")

VIEW = V5.FORWARD[V5.FORWARD.index("CREATE VIEW metric_ticket_facts") :]
VIEW = VIEW[: VIEW.index("FROM mf_ticket;") + len("FROM mf_ticket;")]

INDEXES = """
CREATE INDEX mf_ticket_created_idx ON mf_ticket (created_at);
CREATE INDEX mf_ticket_day_idx ON mf_ticket (day_start);
CREATE INDEX mf_ticket_resolved_idx ON mf_ticket (resolved_at);
"""

FORWARD = (
    """
DROP VIEW metric_ticket_facts;
DROP TABLE mf_ticket;
CREATE UNLOGGED TABLE mf_ticket (
    ticket_id bigint PRIMARY KEY,
    created_at timestamptz,
    day_start timestamptz,
    resolution_us bigint,
    response_us bigint,
    is_closed boolean NOT NULL,
    is_support boolean NOT NULL,
    comments bigint NOT NULL,
    cf_comments bigint NOT NULL,
    cf_with_quality bigint NOT NULL,
    ts_rows bigint NOT NULL,
    ts_agents bigint NOT NULL,
    sla_met boolean,
    response_met boolean,
    resolution_met boolean,
    responded_at timestamptz,
    resolved_at timestamptz,
    closed_at timestamptz,
    ts_hours numeric NOT NULL,
    team text,
    category text,
    root_cause text,
    status text
);
"""
    + INDEXES
    + VIEW
    + "\nUPDATE metric_settings SET facts_built_at = NULL;\n"
)

REVERSE = (
    """
DROP VIEW metric_ticket_facts;
DROP TABLE mf_ticket;
CREATE UNLOGGED TABLE mf_ticket (
    ticket_id bigint PRIMARY KEY,
    created_at timestamptz,
    team text,
    category text,
    root_cause text,
    status text,
    is_closed boolean NOT NULL,
    is_support boolean NOT NULL,
    sla_met boolean,
    response_met boolean,
    resolution_met boolean,
    responded_at timestamptz,
    resolved_at timestamptz,
    closed_at timestamptz,
    comments bigint NOT NULL,
    cf_comments bigint NOT NULL,
    cf_with_quality bigint NOT NULL,
    ts_rows bigint NOT NULL,
    ts_hours numeric NOT NULL,
    ts_agents bigint NOT NULL,
    day_start timestamptz,
    resolution_us bigint,
    response_us bigint
);
"""
    + INDEXES
    + VIEW
    + "\nUPDATE metric_settings SET facts_built_at = NULL;\n"
)


class Migration(migrations.Migration):
    dependencies = [
        ("metrics", "0005_lean_ticket_facts"),
    ]

    operations = [
        migrations.RunSQL(FORWARD, REVERSE),
    ]
