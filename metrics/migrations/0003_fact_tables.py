"""Facts as plain tables maintained per affected ticket (10x scale: refresh <= 5 s).

The materialised views of 0002 could only be refreshed whole (33-38 s at 10x seed scale after
every import). The facts now live in plain `mf_*` tables that `metrics.facts.refresh_facts`
rebuilds in single-pass aggregates (migrate_legacy, settings change) or updates for the tickets
an import touched. The metric SQL and the read-only Grafana role keep reading the `metric_*`
names, now plain views over the tables (the role is granted SELECT on `metric_*` views only).

New small pre-aggregates:
- mf_agent_ticket: timesheet user x linked ticket (entries, hours, first/last work day), so 3.2
  counts distinct tickets per agent, and 4.2/4.3 sum linked rows, without scanning every
  linked row (the per-day rows are read only for pairs crossing a period boundary).

`metric_settings.facts_built_at` is NULL until the first full build: `compute()` and the next
import then rebuild (the tables start empty).
Reverse restores the 0002 materialised views.
"""

import importlib

from django.db import migrations

V2 = importlib.import_module("metrics.migrations.0002_faster_facts")

DROP_V2 = r"""
DROP VIEW IF EXISTS metric_root_cause_audits;
DROP MATERIALIZED VIEW IF EXISTS metric_ticket_facts;
DROP MATERIALIZED VIEW IF EXISTS metric_linked_timesheet_facts;
DROP MATERIALIZED VIEW IF EXISTS metric_agent_day_facts;
DROP MATERIALIZED VIEW IF EXISTS metric_comment_counts;
DROP MATERIALIZED VIEW IF EXISTS metric_quality_facts;
"""

FORWARD = r"""
ALTER TABLE metric_settings ADD COLUMN facts_built_at timestamptz;

-- Quality result matched to its comment (see metrics.facts for the matching rule).
CREATE TABLE mf_quality (
    quality_id bigint PRIMARY KEY,
    comment_id bigint,
    ticket_id bigint,
    comment_time timestamptz,
    team text,
    customer_facing boolean NOT NULL,
    quality_score numeric(4, 2),
    professionalism_score smallint,
    clarity_score smallint,
    empathy_score smallint,
    actionability_score smallint,
    tier text
);
CREATE INDEX mf_quality_time_idx ON mf_quality (comment_time);
CREATE INDEX mf_quality_ticket_idx ON mf_quality (ticket_id);
CREATE INDEX mf_quality_comment_idx ON mf_quality (comment_id);

-- Comments per ticket id named by comments (loaded or not).
CREATE TABLE mf_comment_count (
    ticket_id bigint PRIMARY KEY,
    comments bigint NOT NULL,
    cf_comments bigint NOT NULL,
    cf_with_quality bigint NOT NULL,
    first_comment_at timestamptz,
    loaded boolean NOT NULL
);
CREATE INDEX mf_comment_count_orphan_idx ON mf_comment_count (first_comment_at) WHERE NOT loaded;

-- All timesheet rows per trimmed full name and work date.
CREATE TABLE mf_agent_day (
    agent text,
    work_date date NOT NULL,
    work_start timestamptz NOT NULL,
    entries bigint NOT NULL,
    hours numeric NOT NULL,
    ticket_entries bigint NOT NULL
);
CREATE INDEX mf_agent_day_date_idx ON mf_agent_day (work_date);
CREATE INDEX mf_agent_day_start_idx ON mf_agent_day (work_start);

-- Timesheet rows linked to a loaded ticket, per ticket, agent, identity and work date.
CREATE TABLE mf_linked_ts (
    ticket_id bigint NOT NULL,
    team text,
    agent text,
    identity text,
    work_date date NOT NULL,
    work_start timestamptz NOT NULL,
    entries bigint NOT NULL,
    hours numeric NOT NULL
);
CREATE INDEX mf_linked_ts_ticket_idx ON mf_linked_ts (ticket_id);
CREATE INDEX mf_linked_ts_date_idx ON mf_linked_ts (work_date);
CREATE INDEX mf_linked_ts_start_idx ON mf_linked_ts (work_start);

-- Timesheet user (full name) x linked ticket: distinct tickets per agent in one small scan.
CREATE TABLE mf_agent_ticket (
    agent text,
    ticket_id bigint NOT NULL,
    team text,
    first_start timestamptz NOT NULL,
    last_start timestamptz NOT NULL,
    entries bigint NOT NULL,
    hours numeric NOT NULL
);
CREATE INDEX mf_agent_ticket_ticket_idx ON mf_agent_ticket (ticket_id);

-- One row per ticket.
CREATE TABLE mf_ticket (
    ticket_id bigint PRIMARY KEY,
    created_at timestamptz,
    created_month text,
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
    resolution_days numeric,
    negative_duration boolean NOT NULL,
    comments bigint NOT NULL,
    cf_comments bigint NOT NULL,
    cf_with_quality bigint NOT NULL,
    ts_rows bigint NOT NULL,
    ts_hours numeric NOT NULL,
    ts_agents bigint NOT NULL
);
CREATE INDEX mf_ticket_created_idx ON mf_ticket (created_at);

-- The names the metric SQL and the read-only role use.
CREATE VIEW metric_quality_facts AS
SELECT quality_id, comment_id, ticket_id, comment_time, team, customer_facing, quality_score,
       professionalism_score, clarity_score, empathy_score, actionability_score, tier
FROM mf_quality;
CREATE VIEW metric_comment_counts AS
SELECT ticket_id, comments, cf_comments, cf_with_quality, first_comment_at, loaded
FROM mf_comment_count;
CREATE VIEW metric_agent_day_facts AS
SELECT agent, work_date, work_start, entries, hours, ticket_entries FROM mf_agent_day;
CREATE VIEW metric_linked_timesheet_facts AS
SELECT ticket_id, team, agent, identity, work_date, work_start, entries, hours FROM mf_linked_ts;
CREATE VIEW metric_agent_ticket_facts AS
SELECT agent, ticket_id, team, first_start, last_start, entries, hours FROM mf_agent_ticket;
CREATE VIEW metric_ticket_facts AS
SELECT ticket_id, created_at, created_month, team, category, root_cause, status, is_closed,
       is_support, sla_met, response_met, resolution_met, responded_at, resolved_at, closed_at,
       resolution_days, negative_duration, comments, cf_comments, cf_with_quality, ts_rows,
       ts_hours, ts_agents
FROM mf_ticket;

CREATE VIEW metric_root_cause_audits AS
SELECT a.ticket_id, a.accurate, a.reviewed_at, t.created_at, t.team
FROM tickets_rootcauseaudit a
LEFT JOIN tickets_ticket t ON t.ticket_id = a.ticket_id;
"""

REVERSE = r"""
DROP VIEW IF EXISTS metric_root_cause_audits;
DROP VIEW IF EXISTS metric_ticket_facts;
DROP VIEW IF EXISTS metric_agent_ticket_facts;
DROP VIEW IF EXISTS metric_linked_timesheet_facts;
DROP VIEW IF EXISTS metric_agent_day_facts;
DROP VIEW IF EXISTS metric_comment_counts;
DROP VIEW IF EXISTS metric_quality_facts;
DROP TABLE IF EXISTS mf_ticket;
DROP TABLE IF EXISTS mf_agent_ticket;
DROP TABLE IF EXISTS mf_linked_ts;
DROP TABLE IF EXISTS mf_agent_day;
DROP TABLE IF EXISTS mf_comment_count;
DROP TABLE IF EXISTS mf_quality;
ALTER TABLE metric_settings DROP COLUMN IF EXISTS facts_built_at;
"""

# 0002 dropped and recreated metric_comment_flags too; reverse re-runs its whole forward SQL
# after dropping that view (its materialised views are populated on creation).
V2_FORWARD = "DROP VIEW IF EXISTS metric_comment_flags;\n" + V2.FORWARD


class Migration(migrations.Migration):
    dependencies = [
        ("metrics", "0002_faster_facts"),
    ]

    operations = [
        migrations.RunSQL(DROP_V2 + FORWARD, REVERSE + V2_FORWARD),
    ]
