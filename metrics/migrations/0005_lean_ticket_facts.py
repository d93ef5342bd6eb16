"""Lean, unlogged facts; root-cause and resolution-day cubes.

A full rebuild at 10x computes ~110k ticket rows; formatting the month, the numeric days and
the end of the creation day for each of them cost about a second. The view computes
`created_month`, `resolution_days`, `negative_duration` and `day_end` when a query reads them
(the cube stores its month and day end per day). Facts must be rebuilt after this migration.

Two more small cubes, read like the ticket cube (whole days from the cube, cut days ticket by
ticket): closed tickets per creation day x team x root cause (2.2), and closed tickets per
resolution day x team (5.5).

The fact tables become UNLOGGED: they are derived data, and writing them to the WAL doubled
the cost of a full rebuild. After a crash PostgreSQL empties them; `metrics.facts` then sees
facts missing for loaded tickets and rebuilds on the next import or compute (pg_dump still
dumps their rows, so a restore needs no rebuild).
"""

from django.db import migrations

TZ = "(SELECT time_zone FROM metric_settings WHERE id = 1)"

FORWARD = rf"""
DROP VIEW metric_ticket_facts;
ALTER TABLE mf_ticket
    DROP COLUMN created_month,
    DROP COLUMN resolution_days,
    DROP COLUMN negative_duration,
    DROP COLUMN day_end;
CREATE INDEX mf_ticket_day_idx ON mf_ticket (day_start);
CREATE VIEW metric_ticket_facts AS
SELECT ticket_id, created_at,
       to_char(created_at AT TIME ZONE {TZ}, 'YYYY-MM') AS created_month,
       team, category, root_cause, status, is_closed, is_support, sla_met, response_met,
       resolution_met, responded_at, resolved_at, closed_at,
       resolution_us / 86400000000.0 AS resolution_days,
       coalesce(is_closed AND resolved_at < created_at, false) AS negative_duration,
       comments, cf_comments, cf_with_quality, ts_rows, ts_hours, ts_agents, day_start,
       ((day_start AT TIME ZONE {TZ}) + interval '1 day') AT TIME ZONE {TZ} AS day_end,
       resolution_us, response_us
FROM mf_ticket;
CREATE UNLOGGED TABLE mf_rc_cube (
    day_start timestamptz,
    day_end timestamptz,
    team text,
    root_cause text NOT NULL,
    tickets bigint NOT NULL
);
CREATE UNLOGGED TABLE mf_resolved_cube (
    day_start timestamptz NOT NULL,
    day_end timestamptz NOT NULL,
    team text,
    tickets bigint NOT NULL
);
CREATE INDEX mf_ticket_resolved_idx ON mf_ticket (resolved_at);
CREATE VIEW metric_root_cause_cube AS
SELECT day_start, day_end, team, root_cause, tickets FROM mf_rc_cube;
CREATE VIEW metric_resolved_cube AS
SELECT day_start, day_end, team, tickets FROM mf_resolved_cube;
ALTER TABLE mf_quality SET UNLOGGED;
ALTER TABLE mf_comment_count SET UNLOGGED;
ALTER TABLE mf_agent_day SET UNLOGGED;
ALTER TABLE mf_linked_ts SET UNLOGGED;
ALTER TABLE mf_agent_ticket SET UNLOGGED;
ALTER TABLE mf_ticket SET UNLOGGED;
ALTER TABLE mf_ticket_cube SET UNLOGGED;
UPDATE metric_settings SET facts_built_at = NULL;
"""

REVERSE = r"""
DROP VIEW metric_root_cause_cube;
DROP VIEW metric_resolved_cube;
DROP TABLE mf_rc_cube;
DROP TABLE mf_resolved_cube;
DROP INDEX mf_ticket_resolved_idx;
ALTER TABLE mf_quality SET LOGGED;
ALTER TABLE mf_comment_count SET LOGGED;
ALTER TABLE mf_agent_day SET LOGGED;
ALTER TABLE mf_linked_ts SET LOGGED;
ALTER TABLE mf_agent_ticket SET LOGGED;
ALTER TABLE mf_ticket SET LOGGED;
ALTER TABLE mf_ticket_cube SET LOGGED;
DROP VIEW metric_ticket_facts;
DROP INDEX IF EXISTS mf_ticket_day_idx;
ALTER TABLE mf_ticket
    ADD COLUMN created_month text,
    ADD COLUMN resolution_days numeric,
    ADD COLUMN negative_duration boolean NOT NULL DEFAULT false,
    ADD COLUMN day_end timestamptz;
CREATE VIEW metric_ticket_facts AS
SELECT ticket_id, created_at, created_month, team, category, root_cause, status, is_closed,
       is_support, sla_met, response_met, resolution_met, responded_at, resolved_at, closed_at,
       resolution_days, negative_duration, comments, cf_comments, cf_with_quality, ts_rows,
       ts_hours, ts_agents, day_start, day_end, resolution_us, response_us
FROM mf_ticket;
UPDATE metric_settings SET facts_built_at = NULL;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("metrics", "0004_ticket_cube"),
    ]

    operations = [
        migrations.RunSQL(FORWARD, REVERSE),
    ]
