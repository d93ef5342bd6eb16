"""THE column registry: source header -> model field -> parser, per entity (SPEC §3).

Everything that needs to know a column iterates this module: the models (fields are generated
from it), the readers' header matching, the pipeline's staging tables, the demo generator, the
exports and the tests. A column is named once, here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple

from django.conf import settings
from django.db import models

from tickets import values as v

# Kinds: how a column is stored. Each kind has one parser, one PostgreSQL type, one model field.
TEXT, ASSIGNEE, ID_TEXT, BIGINT, BOOL, TIMESTAMP, DATE, TIME, HOURS, SCORE, SCORE5, UNIT, INT = (
    "text",
    "assignee",
    "id_text",
    "bigint",
    "bool",
    "timestamp",
    "date",
    "time",
    "hours",
    "score",
    "score5",
    "unit",
    "int",
)


def _ranged(parser: v.Parser, lo: Decimal, hi: Decimal) -> v.Parser:
    def parse(raw: Any) -> v.Parsed:
        parsed = parser(raw)
        if parsed.value is not None and not lo <= Decimal(parsed.value) <= hi:
            raise v.InvalidValue(f"outside {lo}-{hi}")
        return parsed

    return parse


def _decimal(places: str) -> v.Parser:
    quantum = Decimal(places)
    return lambda raw: v.parse_decimal(raw, quantum)


KINDS: dict[str, tuple[v.Parser, str, Callable[[], models.Field]]] = {
    TEXT: (v.parse_text, "text", lambda: models.TextField(null=True, blank=True)),
    ASSIGNEE: (v.parse_assignee, "text", lambda: models.TextField(null=True, blank=True)),
    ID_TEXT: (v.parse_id_text, "text", lambda: models.TextField(null=True, blank=True)),
    BIGINT: (v.parse_int, "bigint", lambda: models.BigIntegerField(null=True, blank=True)),
    INT: (v.parse_int32, "integer", lambda: models.IntegerField(null=True, blank=True)),
    BOOL: (v.parse_bool, "boolean", lambda: models.BooleanField(null=True, blank=True)),
    TIMESTAMP: (
        v.parse_datetime,
        "timestamptz",
        lambda: models.DateTimeField(null=True, blank=True),
    ),
    DATE: (v.parse_date, "date", lambda: models.DateField(null=True, blank=True)),
    TIME: (v.parse_time, "time", lambda: models.TimeField(null=True, blank=True)),
    HOURS: (
        v.parse_hours,
        "numeric(8,2)",
        lambda: models.DecimalField(max_digits=8, decimal_places=2, null=True, blank=True),
    ),
    # Whole-number 1-5 dimension scores of the quality results.
    SCORE5: (
        _ranged(v.parse_int, Decimal(1), Decimal(5)),
        "smallint",
        lambda: models.SmallIntegerField(null=True, blank=True),
    ),
    # Overall quality score 1.0-5.0.
    SCORE: (
        _ranged(_decimal("0.01"), Decimal(1), Decimal(5)),
        "numeric(4,2)",
        lambda: models.DecimalField(max_digits=4, decimal_places=2, null=True, blank=True),
    ),
    # A probability 0-1 (sentiment confidence).
    UNIT: (
        _ranged(_decimal("0.0001"), Decimal(0), Decimal(1)),
        "numeric(5,4)",
        lambda: models.DecimalField(max_digits=5, decimal_places=4, null=True, blank=True),
    ),
}


@dataclass(frozen=True)
class Column:
    header: str
    field: str
    kind: str = TEXT
    required: bool = False
    aliases: tuple[str, ...] = ()  # other accepted headers (legacy SQLite snake_case names)

    @property
    def parser(self) -> v.Parser:
        return KINDS[self.kind][0]

    @property
    def pg_type(self) -> str:
        return KINDS[self.kind][1]

    def model_field(self) -> models.Field:
        f = KINDS[self.kind][2]()
        if self.required:
            f.null = False
            f.blank = False
        return f


class Derived(NamedTuple):
    """A column computed from the typed source columns, in SQL (one rule for every path)."""

    name: str
    pg_type: str
    sql: Callable[[], str]  # a function: some rules read settings (AUTOMATION_USERS)


@dataclass(frozen=True)
class Entity:
    name: str  # "tickets", "comments", ...
    model_name: str  # "tickets.Ticket"
    columns: tuple[Column, ...]
    key: str  # natural key field stored in the table (unique)
    legacy_table: str | None = None
    window_field: str | None = None  # date field defining the data window
    derived: tuple[Derived, ...] = ()
    # Set for entities where the file is the truth inside its date window (timesheets).
    window_replace: bool = False

    @property
    def fields(self) -> list[str]:
        return [c.field for c in self.columns] + [d.name for d in self.derived]

    @property
    def required_headers(self) -> list[str]:
        return [c.header for c in self.columns if c.required]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.field == name)


def _c(header: str, fld: str, kind: str = TEXT, required: bool = False, *aliases: str) -> Column:
    return Column(header, fld, kind, required, tuple(aliases))


TICKET_COLUMNS = (
    _c("TKT-Ticket ID", "ticket_id", BIGINT, True),
    _c("TKT-Parent ID", "parent_id", BIGINT),
    _c("TKT-Customer Reference", "customer_reference"),
    _c("TKT-Created Time", "created_at", TIMESTAMP, True),
    _c("TKT-Month Created", "month_created"),
    _c("TKT-SLA", "sla"),
    _c("TKT-Account Id", "account_id", BIGINT),
    _c("TKT-Account Name", "account_name"),
    _c("TKT-Site Classification", "site_classification"),
    _c("TKT-Site Status", "site_status"),
    _c("TKT-Selcom Key", "selcom_key"),
    _c("TKT-Title", "title"),
    _c("TKT-Description", "description"),
    _c("TKT-Severity", "severity"),
    _c("TKT-Status", "status", TEXT, True),
    _c("TKT-Assigned To Userid", "assigned_to_user_id", BIGINT),
    _c("TKT-Assigned To User", "assigned_to_user", ASSIGNEE),
    _c("TKT-Job#/Ref#", "job_ref"),
    _c("TKT-Team", "team"),
    _c("TKT-Modified Time", "modified_at", TIMESTAMP),
    _c("TKT-Category", "category"),
    _c("TKT-Resolution/Change Type", "resolution_type"),
    _c("TKT-Root Cause Category", "root_cause_category"),
    _c("TKT-Created By Userid", "created_by_user_id", BIGINT),
    _c("TKT-Created By User", "created_by_user"),
    _c("TKT-Client Name", "client_name"),
    _c("TKT-Ticket Source", "ticket_source"),
    _c("TKT-Related CI Ref#", "related_ci_ref", BIGINT),
    _c("TKT-Related CI", "related_ci"),
    _c("TKT-Actual Response Date", "responded_at", TIMESTAMP),
    _c("TKT-Actual Resolution Date", "resolved_at", TIMESTAMP),
    _c("TKT-Response Met", "response_met", BOOL),
    _c("TKT-Resolution Met", "resolution_met", BOOL),
    _c("TKT-SLA Met", "sla_met", BOOL),
    _c("TKT-SLA Exempt", "sla_exempt", BOOL),
    _c("TKT-Mitigated Reason", "mitigated_reason"),
    _c("TKT-SLA Clock Status", "sla_clock_status"),
    _c("TKT-SLA Breach Reason", "sla_breach_reason"),
    _c("TKT-SLA Breach Comment", "sla_breach_comment"),
    _c("TKT-QA Review Completed", "qa_review_completed", BOOL),
    _c("TKT-Closure Date", "closed_at", TIMESTAMP),
    _c("TKT-Month Closed", "month_closed"),
    _c("TKT-Solution", "solution"),
    _c("TKT-SLA Closure Date", "sla_closed_at", TIMESTAMP),
    _c("TKT-SLA Month Closed", "sla_month_closed"),
    _c("TKT-SLA Closed - This Month", "sla_closed_this_month", BOOL),
    _c("TKT-SLA Closed - Last Month", "sla_closed_last_month", BOOL),
    _c("TKT-Actual SLA Achievement", "actual_sla_achievement"),
    _c("Chg-Risk", "change_risk"),
    _c("Chg-Trigger", "change_trigger"),
    _c("Chg-Type", "change_type"),
    _c("Chg-Planned Start Date", "change_planned_start_at", TIMESTAMP),
    _c("Chg-Planned End Date", "change_planned_end_at", TIMESTAMP),
    _c("Chg-Actual Start Date", "change_actual_start_at", TIMESTAMP),
    _c("Chg-Actual End Date", "change_actual_end_at", TIMESTAMP),
    _c("Chg-Approver", "change_approver"),
    _c("Chg-Success", "change_success"),
    _c("TKT-Is Template", "is_template", BOOL),
    _c("TKT-Platform", "platform"),
    _c("TKT-Group", "group_name"),
)

COMMENT_COLUMNS = (
    _c("CT-COMMENT-ID", "comment_id", BIGINT, True),
    _c("CT-TKT-ID", "ticket_id", BIGINT, True),
    _c("CT-COMMENT", "text", TEXT, False, "comment_text"),
    _c("CT-USERID", "user_id", BIGINT),
    _c("CT-USERIDNAME", "user_name", TEXT, False, "user_name"),
    _c("CT-OWNERTYPE", "owner_type", TEXT, False, "owner_type"),
    _c("CT-DATEAMDTIME", "created_at", TIMESTAMP, True, "created_time", "CT-DATEANDTIME"),
    _c("CT-VISIBLE-CUSTOMER", "visible_to_customer", BOOL, False, "visible_to_customer"),
    _c("CT-TYPE", "comment_type", TEXT, False, "comment_type"),
    _c("CT-TKT-TEAM", "team", TEXT, False, "team"),
)

TIMESHEET_COLUMNS = (
    _c("TS-User Full Name", "user_full_name"),
    _c("TS-User Username", "username"),
    _c("TS-Title", "title"),
    _c("TS-Description", "description"),
    _c("TS-Date", "work_date", DATE, True),
    _c("TS-Time From", "time_from", TIME),
    _c("TS-Time To", "time_to", TIME),
    _c("TS-Type", "entry_type"),
    _c("TS-Category", "category"),
    _c("TS-Sub Category", "sub_category"),
    _c("TS-Category 2", "category_2"),
    _c("TS-Hours", "hours", HOURS, True),
    _c("TS-Crm ID", "crm_id", BIGINT),
    _c("TS-Ticket Project Master Code", "project_master_code"),
    _c("TS-Costcentre ID", "cost_centre_id", BIGINT),
    _c("TS-Costcentre Desc", "cost_centre_desc"),
    _c("TS-Account Selcom", "account_selcom"),
    _c("TS-Account Name", "account_name"),
    _c("TS-Account Bill State", "account_bill_state"),
    _c("TS-Account Internal", "account_internal"),
    _c("TS-Ticket Department", "ticket_department"),
)

QUALITY_COLUMNS = (
    _c("comment_id", "comment_key", ID_TEXT, True),
    _c("ticket_id", "ticket_id", BIGINT),
    _c("user_name", "user_name"),
    _c("team", "team"),
    _c("comment_type", "comment_type"),
    _c("created_time", "created_at", TIMESTAMP),
    _c("cleaned_text", "cleaned_text"),
    _c("professionalism_score", "professionalism_score", SCORE5),
    _c("clarity_score", "clarity_score", SCORE5),
    _c("empathy_score", "empathy_score", SCORE5),
    _c("actionability_score", "actionability_score", SCORE5),
    _c("quality_score", "quality_score", SCORE),
    _c("quality_tier", "quality_tier"),
    _c("content_tags", "content_tags"),
    _c("red_flags", "red_flags"),
    _c("intent_summary", "intent_summary"),
    _c("analysis_timestamp", "analysed_at", TIMESTAMP),
)

SENTIMENT_COLUMNS = (
    _c("comment_id", "comment_key", ID_TEXT, True),
    _c("ticket_id", "ticket_id", BIGINT),
    _c("user_name", "user_name"),
    _c("team", "team"),
    _c("comment_type", "comment_type"),
    _c("created_time", "created_at", TIMESTAMP),
    _c("cleaned_text", "cleaned_text"),
    _c("sentiment", "sentiment"),
    _c("confidence", "confidence", UNIT),
    _c("reasoning", "reasoning"),
    _c("model_used", "model_used"),
    _c("latency_ms", "latency_ms", INT),
    _c("analysis_timestamp", "analysed_at", TIMESTAMP),
)

ROSTER_COLUMNS = (
    _c("Name", "name"),
    _c("Email", "email"),
    _c("username", "username", TEXT, True),
    _c("Team", "team"),
)


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def customer_facing_sql() -> str:
    """Customer-facing comment: a recognised flag wins, else the public type; automation
    accounts (settings.AUTOMATION_USERS) never count."""
    users = ", ".join(_sql_text(u.strip().lower()) for u in settings.AUTOMATION_USERS) or "NULL"
    return (
        f"CASE WHEN lower(btrim(coalesce(user_name, ''))) IN ({users}) THEN false "
        "WHEN visible_to_customer IS NOT NULL THEN visible_to_customer "
        "ELSE lower(btrim(coalesce(comment_type, ''))) = 'comments' END"
    )


#: Timesheets have no source key: identity is the hash of all their normalised (typed) source
#: values. ROW(...)::text is PostgreSQL's canonical rendering of the typed values, so the same
#: entry from XLSX, CSV or SQLite hashes the same.
TIMESHEET_FINGERPRINT_SQL = (
    "encode(sha256(convert_to(ROW("
    + ", ".join(f'"{c.field}"' for c in TIMESHEET_COLUMNS)
    + ")::text, 'UTF8')), 'hex')"
)


ENTITIES: dict[str, Entity] = {
    e.name: e
    for e in (
        Entity("tickets", "tickets.Ticket", TICKET_COLUMNS, "ticket_id", "tickets", "created_at"),
        Entity(
            "comments",
            "tickets.Comment",
            COMMENT_COLUMNS,
            "comment_id",
            "comments",
            "created_at",
            derived=(Derived("is_customer_facing", "boolean", customer_facing_sql),),
        ),
        Entity(
            "timesheets",
            "tickets.TimesheetEntry",
            TIMESHEET_COLUMNS,
            "fingerprint",
            "timesheets",
            "work_date",
            derived=(
                # TS-Crm ID names the ticket; 0 marks admin time.
                Derived("ticket_id", "bigint", lambda: "CASE WHEN crm_id > 0 THEN crm_id END"),
                Derived("fingerprint", "char(64)", lambda: TIMESHEET_FINGERPRINT_SQL),
            ),
            window_replace=True,
        ),
        Entity(
            "comment_quality",
            "tickets.CommentQuality",
            QUALITY_COLUMNS,
            "comment_key",
            "comment_quality",
            "created_at",
        ),
        Entity(
            "comment_sentiment",
            "tickets.CommentSentiment",
            SENTIMENT_COLUMNS,
            "comment_key",
            "comment_sentiment",
            "created_at",
        ),
        Entity(
            "roster",
            "tickets.TeamMember",
            ROSTER_COLUMNS,
            "username",
            "cloud_team_roster",
        ),
    )
}

#: Order in which migrate_legacy loads the legacy tables.
LEGACY_ORDER = (
    "tickets",
    "comments",
    "timesheets",
    "comment_quality",
    "comment_sentiment",
    "roster",
)


def normalise_header(header: Any) -> str:
    return str(header or "").strip().lstrip("\ufeff").strip().casefold()


def header_lookup(entity: Entity) -> dict[str, Column]:
    """Normalised header (and alias) -> column."""
    lookup: dict[str, Column] = {}
    for c in entity.columns:
        for name in (c.header, c.field, *c.aliases):
            lookup.setdefault(normalise_header(name), c)
    return lookup


def detect_entity(headers: list[Any]) -> Entity | None:
    """The entity matching most of the headers (at least two), so a file missing a required
    column is still recognised and then refused with a message naming that column."""
    present = {normalise_header(h) for h in headers if normalise_header(h)}
    best, best_score = None, 1
    for entity in ENTITIES.values():
        lookup = header_lookup(entity)
        matched = len({lookup[h].field for h in present if h in lookup})
        if matched > best_score:
            best, best_score = entity, matched
    return best


def model_fields(entity_name: str) -> dict[str, models.Field]:
    """Model fields generated from the registry, so a column's type is stated once."""
    return {c.field: c.model_field() for c in ENTITIES[entity_name].columns}
