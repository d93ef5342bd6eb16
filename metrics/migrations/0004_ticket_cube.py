"""A per-day ticket cube: the ticket metrics read ~4.5k rows instead of ~110k (10x scale).

mf_ticket gains the creation day's bounds (midnight to midnight in TIME_ZONE) and exact
integer durations; mf_ticket_cube holds, per creation day x team x category x closed, the
counts and sums every ticket metric needs (counts per customer-facing comment number 0-3 and
4+, per agent number 1-3 and 4+). A metric reads the cube rows of the days wholly inside its
period and the ticket rows of the (at most two) days cut by the period bounds, so any period
stays exact. `metrics.facts` fills both.
"""

from django.db import migrations

FORWARD = r"""
ALTER TABLE mf_ticket
    ADD COLUMN day_start timestamptz,
    ADD COLUMN day_end timestamptz,
    ADD COLUMN resolution_us bigint,
    ADD COLUMN response_us bigint;

CREATE TABLE mf_ticket_cube (
    day_start timestamptz,
    day_end timestamptz,
    month text,
    team text,
    category text,
    is_closed boolean NOT NULL,
    is_support boolean NOT NULL,
    tickets bigint NOT NULL,
    sla_known bigint NOT NULL,
    sla_met bigint NOT NULL,
    res_n bigint NOT NULL,
    res_us numeric NOT NULL,
    comments numeric NOT NULL,
    cf_comments numeric NOT NULL,
    cf_with_quality numeric NOT NULL,
    ts_rows numeric NOT NULL,
    ts_hours numeric NOT NULL,
    with_ts bigint NOT NULL,
    cf0 bigint NOT NULL,
    cf1 bigint NOT NULL,
    cf2 bigint NOT NULL,
    cf3 bigint NOT NULL,
    cf4 bigint NOT NULL,
    ag1 bigint NOT NULL,
    ag2 bigint NOT NULL,
    ag3 bigint NOT NULL,
    ag4 bigint NOT NULL,
    with_rc bigint NOT NULL,
    response_known bigint NOT NULL,
    response_met bigint NOT NULL,
    resolution_known bigint NOT NULL,
    resolution_met bigint NOT NULL
);

DROP VIEW metric_ticket_facts;
CREATE VIEW metric_ticket_facts AS
SELECT ticket_id, created_at, created_month, team, category, root_cause, status, is_closed,
       is_support, sla_met, response_met, resolution_met, responded_at, resolved_at, closed_at,
       resolution_days, negative_duration, comments, cf_comments, cf_with_quality, ts_rows,
       ts_hours, ts_agents, day_start, day_end, resolution_us, response_us
FROM mf_ticket;

CREATE VIEW metric_ticket_cube AS
SELECT day_start, day_end, month, team, category, is_closed, is_support, tickets, sla_known,
       sla_met, res_n, res_us, comments, cf_comments, cf_with_quality, ts_rows, ts_hours,
       with_ts, cf0, cf1, cf2, cf3, cf4, ag1, ag2, ag3, ag4, with_rc, response_known,
       response_met, resolution_known, resolution_met
FROM mf_ticket_cube;

-- Facts must be rebuilt (new columns are empty).
UPDATE metric_settings SET facts_built_at = NULL;
"""

REVERSE = r"""
DROP VIEW IF EXISTS metric_ticket_cube;
DROP TABLE IF EXISTS mf_ticket_cube;
DROP VIEW metric_ticket_facts;
ALTER TABLE mf_ticket
    DROP COLUMN day_start,
    DROP COLUMN day_end,
    DROP COLUMN resolution_us,
    DROP COLUMN response_us;
CREATE VIEW metric_ticket_facts AS
SELECT ticket_id, created_at, created_month, team, category, root_cause, status, is_closed,
       is_support, sla_met, response_met, resolution_met, responded_at, resolved_at, closed_at,
       resolution_days, negative_duration, comments, cf_comments, cf_with_quality, ts_rows,
       ts_hours, ts_agents
FROM mf_ticket;
UPDATE metric_settings SET facts_built_at = NULL;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("metrics", "0003_fact_tables"),
    ]

    operations = [
        migrations.RunSQL(FORWARD, REVERSE),
    ]
