"""Metric views and materialised per-ticket facts (SPEC §5.3).

Frozen SQL on purpose: the views are a contract with Grafana and the admin overview. Settings of
SPEC §5.1 are read from the one-row `metric_settings` table, which `metrics.facts.refresh_facts`
writes from Django settings before refreshing the materialised views (in this order:
quality -> timesheet -> ticket -> orphan comment facts).
"""

from django.db import migrations

FORWARD = r"""
CREATE TABLE metric_settings (
    id smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    closed_statuses text[] NOT NULL DEFAULT ARRAY['closed', 'resolved'],
    automation_users text[] NOT NULL DEFAULT ARRAY['brian'],
    min_team_sample integer NOT NULL DEFAULT 50,
    support_category text NOT NULL DEFAULT 'support tickets',
    time_zone text NOT NULL DEFAULT 'UTC',
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO metric_settings (id) VALUES (1);

-- One definition of "customer-facing" and "automation" (SPEC §5.1).
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

-- Quality result -> comment: id as text, else the single comment with its ticket and time.
CREATE MATERIALIZED VIEW metric_quality_facts AS
SELECT q.id AS quality_id,
       coalesce(c1.comment_id, c2.comment_id) AS comment_id,
       coalesce(c1.ticket_id, c2.ticket_id, q.ticket_id) AS ticket_id,
       coalesce(c1.created_at, c2.created_at, q.created_at) AS comment_time,
       coalesce(t.team, q.team) AS team,
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
LEFT JOIN tickets_comment c1
       ON c1.comment_id = CASE WHEN q.comment_key ~ '^[0-9]{1,18}$'
                               THEN q.comment_key::bigint END
      AND c1.comment_id::text = q.comment_key
LEFT JOIN LATERAL (
    SELECT min(c.comment_id) AS comment_id,
           min(c.ticket_id) AS ticket_id,
           min(c.created_at) AS created_at
    FROM tickets_comment c
    WHERE c1.comment_id IS NULL AND c.ticket_id = q.ticket_id AND c.created_at = q.created_at
    HAVING count(*) = 1
) c2 ON true
LEFT JOIN tickets_ticket t ON t.ticket_id = coalesce(c1.ticket_id, c2.ticket_id, q.ticket_id);
CREATE INDEX metric_quality_facts_time_idx ON metric_quality_facts (comment_time);

-- Timesheets grouped by agent, day and linked ticket: 3.2 without scanning raw rows, and the
-- per-ticket agent counts of the ticket facts.
CREATE MATERIALIZED VIEW metric_timesheet_facts AS
SELECT nullif(btrim(ts.user_full_name), '') AS agent,
       coalesce(nullif(btrim(ts.username), ''), nullif(btrim(ts.user_full_name), '')) AS identity,
       ts.work_date,
       (ts.work_date::timestamp AT TIME ZONE s.time_zone) AS work_start,
       t.ticket_id,
       t.team,
       (coalesce(ts.crm_id, 0) > 0 AND t.ticket_id IS NULL) AS orphan,
       count(*) AS entries,
       sum(ts.hours) AS hours
FROM tickets_timesheetentry ts
CROSS JOIN metric_settings s
LEFT JOIN tickets_ticket t ON t.ticket_id = ts.ticket_id
WHERE s.id = 1
GROUP BY 1, 2, 3, 4, 5, 6, 7;
CREATE INDEX metric_timesheet_facts_start_idx ON metric_timesheet_facts (work_start);

-- One row per ticket: everything the ticket metrics need, settings applied.
CREATE MATERIALIZED VIEW metric_ticket_facts AS
WITH quality_comments AS (
    SELECT DISTINCT comment_id FROM metric_quality_facts WHERE comment_id IS NOT NULL
),
comment_counts AS (
    SELECT f.ticket_id,
           count(*) AS comments,
           count(*) FILTER (WHERE NOT f.automation) AS human_comments,
           count(*) FILTER (WHERE f.customer_facing) AS cf_comments,
           count(*) FILTER (WHERE f.customer_facing AND qc.comment_id IS NOT NULL)
               AS cf_with_quality
    FROM metric_comment_flags f
    LEFT JOIN quality_comments qc ON qc.comment_id = f.comment_id
    GROUP BY f.ticket_id
),
timesheet_counts AS (
    SELECT ticket_id,
           sum(entries) AS ts_rows,
           sum(hours) AS ts_hours,
           greatest(count(DISTINCT identity), 1) AS ts_agents
    FROM metric_timesheet_facts
    WHERE ticket_id IS NOT NULL
    GROUP BY ticket_id
),
base AS (
    SELECT t.*,
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
       coalesce(c.human_comments, 0) AS human_comments,
       coalesce(c.cf_comments, 0) AS cf_comments,
       coalesce(c.cf_with_quality, 0) AS cf_with_quality,
       coalesce(ts.ts_rows, 0) AS ts_rows,
       coalesce(ts.ts_hours, 0) AS ts_hours,
       coalesce(ts.ts_agents, 0) AS ts_agents
FROM base b
LEFT JOIN comment_counts c ON c.ticket_id = b.ticket_id
LEFT JOIN timesheet_counts ts ON ts.ticket_id = b.ticket_id;
CREATE UNIQUE INDEX metric_ticket_facts_pk ON metric_ticket_facts (ticket_id);
CREATE INDEX metric_ticket_facts_created_idx ON metric_ticket_facts (created_at);

-- Comments whose ticket is not loaded, by their own time and team (4.2, 4.3).
CREATE MATERIALIZED VIEW metric_orphan_comment_facts AS
SELECT f.created_at,
       f.team,
       count(*) AS comments,
       count(*) FILTER (WHERE f.customer_facing) AS cf_comments,
       count(*) FILTER (WHERE f.customer_facing AND EXISTS (
           SELECT 1 FROM metric_quality_facts q WHERE q.comment_id = f.comment_id
       )) AS cf_with_quality
FROM metric_comment_flags f
WHERE NOT EXISTS (SELECT 1 FROM tickets_ticket t WHERE t.ticket_id = f.ticket_id)
GROUP BY 1, 2;

-- Root-cause audits with their ticket's creation time and current team (3.6).
CREATE VIEW metric_root_cause_audits AS
SELECT a.ticket_id, a.accurate, a.reviewed_at, t.created_at, t.team
FROM tickets_rootcauseaudit a
LEFT JOIN tickets_ticket t ON t.ticket_id = a.ticket_id;
"""

REVERSE = r"""
DROP VIEW IF EXISTS metric_root_cause_audits;
DROP MATERIALIZED VIEW IF EXISTS metric_orphan_comment_facts;
DROP MATERIALIZED VIEW IF EXISTS metric_ticket_facts;
DROP MATERIALIZED VIEW IF EXISTS metric_timesheet_facts;
DROP MATERIALIZED VIEW IF EXISTS metric_quality_facts;
DROP VIEW IF EXISTS metric_comment_flags;
DROP TABLE IF EXISTS metric_settings;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("tickets", "0001_initial"),
    ]

    operations = [
        migrations.RunSQL(FORWARD, REVERSE),
    ]
