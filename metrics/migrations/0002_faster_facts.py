"""Faster facts (10x seed scale): one pass over comments, timesheets split by granularity.

- metric_quality_facts: matched by index probes (LATERAL), carries the matched comment's
  customer-facing flag, so coverage never joins all comments to the quality results.
- metric_comment_counts: comments per ticket id (loaded or not) in one pass; orphan comments are
  the rows whose ticket is not loaded (period: their first comment time; no team).
- metric_agent_day_facts: all timesheet rows per agent and work date (3.2 hours, 4.2/4.3 totals).
- metric_linked_timesheet_facts: rows linked to a loaded ticket per ticket, agent and work date.
- metric_ticket_facts: one row per ticket, reading the above.
Reverse restores the 0001 objects.
"""

import importlib

from django.db import migrations

V1 = importlib.import_module("metrics.migrations.0001_metric_views")

DROP_V1 = r"""
DROP VIEW IF EXISTS metric_root_cause_audits;
DROP MATERIALIZED VIEW IF EXISTS metric_orphan_comment_facts;
DROP MATERIALIZED VIEW IF EXISTS metric_ticket_facts;
DROP MATERIALIZED VIEW IF EXISTS metric_timesheet_facts;
DROP MATERIALIZED VIEW IF EXISTS metric_quality_facts;
DROP VIEW IF EXISTS metric_comment_flags;
"""

FORWARD = r"""
CREATE VIEW metric_comment_flags AS
SELECT c.comment_id,
       c.ticket_id,
       c.created_at,
       c.team,
       a.automation,
       (NOT a.automation
        AND coalesce(c.visible_to_customer, lower(btrim(c.comment_type)) = 'comments', false)
       ) AS customer_facing
FROM tickets_comment c
CROSS JOIN metric_settings s
CROSS JOIN LATERAL (
    SELECT coalesce(lower(btrim(c.user_name)) = ANY (s.automation_users), false) AS automation
) a
WHERE s.id = 1;

CREATE MATERIALIZED VIEW metric_quality_facts AS
SELECT q.id AS quality_id,
       coalesce(c1.comment_id, c2.comment_id) AS comment_id,
       coalesce(c1.ticket_id, c2.ticket_id, q.ticket_id) AS ticket_id,
       coalesce(c1.created_at, c2.created_at, q.created_at) AS comment_time,
       coalesce(t.team, q.team) AS team,
       coalesce(c1.customer_facing, c2.customer_facing, false) AS customer_facing,
       q.quality_score,
       q.professionalism_score,
       q.clarity_score,
       q.empathy_score,
       q.actionability_score,
       CASE
           WHEN lower(btrim(q.quality_tier)) IN ('excellent', 'good', 'acceptable', 'poor')
               THEN lower(btrim(q.quality_tier))
           WHEN q.quality_score >= 4.5 THEN 'excellent'
           WHEN q.quality_score >= 3.5 THEN 'good'
           WHEN q.quality_score >= 2.5 THEN 'acceptable'
           WHEN q.quality_score IS NOT NULL THEN 'poor'
       END AS tier
FROM tickets_commentquality q
LEFT JOIN LATERAL (
    SELECT f.comment_id, f.ticket_id, f.created_at, f.customer_facing
    FROM metric_comment_flags f
    WHERE f.comment_id = CASE WHEN q.comment_key ~ '^[0-9]{1,18}$'
                              THEN q.comment_key::bigint END
      AND f.comment_id::text = q.comment_key
    OFFSET 0  -- keep it a per-row index probe, never a hash over all comments
) c1 ON true
LEFT JOIN LATERAL (
    SELECT min(f.comment_id) AS comment_id,
           min(f.ticket_id) AS ticket_id,
           min(f.created_at) AS created_at,
           bool_or(f.customer_facing) AS customer_facing
    FROM metric_comment_flags f
    WHERE c1.comment_id IS NULL AND f.ticket_id = q.ticket_id AND f.created_at = q.created_at
    HAVING count(*) = 1
) c2 ON true
LEFT JOIN tickets_ticket t ON t.ticket_id = coalesce(c1.ticket_id, c2.ticket_id, q.ticket_id);
CREATE INDEX metric_quality_facts_time_idx ON metric_quality_facts (comment_time);

CREATE MATERIALIZED VIEW metric_comment_counts AS
WITH per_ticket AS (
    SELECT f.ticket_id,
           count(*) AS comments,
           count(*) FILTER (WHERE f.customer_facing) AS cf_comments,
           min(f.created_at) AS first_comment_at
    FROM metric_comment_flags f
    GROUP BY f.ticket_id
), quality AS (
    SELECT ticket_id, count(DISTINCT comment_id) AS cf_with_quality
    FROM metric_quality_facts
    WHERE comment_id IS NOT NULL AND customer_facing
    GROUP BY ticket_id
)
SELECT p.ticket_id,
       p.comments,
       p.cf_comments,
       coalesce(q.cf_with_quality, 0) AS cf_with_quality,
       p.first_comment_at,
       (t.ticket_id IS NOT NULL) AS loaded
FROM per_ticket p
LEFT JOIN quality q ON q.ticket_id = p.ticket_id
LEFT JOIN tickets_ticket t ON t.ticket_id = p.ticket_id;

CREATE MATERIALIZED VIEW metric_agent_day_facts AS
WITH raw AS (
    SELECT user_full_name,
           work_date,
           count(*) AS entries,
           sum(hours) AS hours,
           count(*) FILTER (WHERE ticket_id IS NOT NULL) AS ticket_entries
    FROM tickets_timesheetentry
    GROUP BY user_full_name, work_date
)
SELECT nullif(btrim(r.user_full_name), '') AS agent,
       r.work_date,
       (r.work_date::timestamp AT TIME ZONE s.time_zone) AS work_start,
       sum(r.entries) AS entries,
       sum(r.hours) AS hours,
       sum(r.ticket_entries) AS ticket_entries
FROM raw r
CROSS JOIN metric_settings s
WHERE s.id = 1
GROUP BY 1, 2, 3;
CREATE INDEX metric_agent_day_facts_start_idx ON metric_agent_day_facts (work_start);

CREATE MATERIALIZED VIEW metric_linked_timesheet_facts AS
SELECT ts.ticket_id,
       t.team,
       nullif(btrim(ts.user_full_name), '') AS agent,
       coalesce(nullif(btrim(ts.username), ''), nullif(btrim(ts.user_full_name), '')) AS identity,
       ts.work_date,
       (ts.work_date::timestamp AT TIME ZONE s.time_zone) AS work_start,
       count(*) AS entries,
       sum(ts.hours) AS hours
FROM tickets_timesheetentry ts
JOIN tickets_ticket t ON t.ticket_id = ts.ticket_id
CROSS JOIN metric_settings s
WHERE s.id = 1
GROUP BY 1, 2, 3, 4, 5, 6;
CREATE INDEX metric_linked_timesheet_facts_start_idx
    ON metric_linked_timesheet_facts (work_start);

CREATE MATERIALIZED VIEW metric_ticket_facts AS
WITH timesheet_counts AS (
    SELECT ticket_id,
           sum(entries) AS ts_rows,
           sum(hours) AS ts_hours,
           greatest(count(DISTINCT identity), 1) AS ts_agents
    FROM metric_linked_timesheet_facts
    GROUP BY ticket_id
),
base AS (
    SELECT t.ticket_id, t.created_at, t.team, t.category, t.root_cause_category, t.status,
           t.sla_met, t.response_met, t.resolution_met, t.responded_at, t.resolved_at,
           t.closed_at,
           coalesce(lower(btrim(t.status)) = ANY (s.closed_statuses), false) AS is_closed,
           coalesce(lower(btrim(t.category)) = s.support_category, false) AS is_support,
           to_char(t.created_at AT TIME ZONE s.time_zone, 'YYYY-MM') AS created_month
    FROM tickets_ticket t
    CROSS JOIN metric_settings s
    WHERE s.id = 1
)
SELECT b.ticket_id,
       b.created_at,
       b.created_month,
       nullif(btrim(b.team), '') AS team,
       nullif(btrim(b.category), '') AS category,
       nullif(btrim(b.root_cause_category), '') AS root_cause,
       btrim(b.status) AS status,
       b.is_closed,
       b.is_support,
       b.sla_met,
       b.response_met,
       b.resolution_met,
       b.responded_at,
       b.resolved_at,
       b.closed_at,
       CASE WHEN b.is_closed AND b.resolved_at >= b.created_at
            THEN extract(epoch FROM b.resolved_at - b.created_at) / 86400 END AS resolution_days,
       coalesce(b.is_closed AND b.resolved_at < b.created_at, false) AS negative_duration,
       coalesce(c.comments, 0) AS comments,
       coalesce(c.cf_comments, 0) AS cf_comments,
       coalesce(c.cf_with_quality, 0) AS cf_with_quality,
       coalesce(ts.ts_rows, 0) AS ts_rows,
       coalesce(ts.ts_hours, 0) AS ts_hours,
       coalesce(ts.ts_agents, 0) AS ts_agents
FROM base b
LEFT JOIN metric_comment_counts c ON c.ticket_id = b.ticket_id
LEFT JOIN timesheet_counts ts ON ts.ticket_id = b.ticket_id;
CREATE UNIQUE INDEX metric_ticket_facts_pk ON metric_ticket_facts (ticket_id);
CREATE INDEX metric_ticket_facts_created_idx ON metric_ticket_facts (created_at);

CREATE VIEW metric_root_cause_audits AS
SELECT a.ticket_id, a.accurate, a.reviewed_at, t.created_at, t.team
FROM tickets_rootcauseaudit a
LEFT JOIN tickets_ticket t ON t.ticket_id = a.ticket_id;
"""

REVERSE = r"""
DROP VIEW IF EXISTS metric_root_cause_audits;
DROP MATERIALIZED VIEW IF EXISTS metric_ticket_facts;
DROP MATERIALIZED VIEW IF EXISTS metric_linked_timesheet_facts;
DROP MATERIALIZED VIEW IF EXISTS metric_agent_day_facts;
DROP MATERIALIZED VIEW IF EXISTS metric_comment_counts;
DROP MATERIALIZED VIEW IF EXISTS metric_quality_facts;
DROP VIEW IF EXISTS metric_comment_flags;
"""

# 0001 also created metric_settings; it stays (both versions use it).
V1_VIEWS = V1.FORWARD.split("-- One definition", 1)[1]


class Migration(migrations.Migration):
    dependencies = [
        ("metrics", "0001_metric_views"),
    ]

    operations = [
        migrations.RunSQL(DROP_V1 + FORWARD, REVERSE + "-- One definition" + V1_VIEWS),
    ]
