"""Synthetic demo data: a legacy SQLite database and a later, overlapping export set (SPEC §10).

The shape follows DATA_PROFILE.md (teams, categories, closure, SLA, comment mix, timesheet
orphans) and every source quirk of SPEC §3-4 appears on purpose, so the import pipeline, the
metrics and the benchmarks have something realistic to chew on.

How it stays deterministic and consistent:
- every decision comes from a ``random.Random`` seeded from ``--seed`` and a stream name; no
  global random, no clock;
- the "true" value of every row is generated once per stream (``*_rows`` functions); the legacy
  database and the exports are two *renderings* of the same stream, so re-iterating a stream for
  the exports reproduces the legacy rows exactly and only the deliberate changes differ;
- timestamps have minute resolution, so ISO text, day-first text without seconds, an Excel
  serial and a date cell all denote the same value (re-loading the overlap reports no noise).

XLSX files are written by a tiny streaming writer (inline strings, one sheet): openpyxl's
write-only mode managed ~40k cells/s on the target machine, far too slow for 2M cells.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import re
import shutil
import sqlite3
import tempfile
import zipfile
from bisect import bisect
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import accumulate
from operator import itemgetter
from pathlib import Path
from random import Random
from typing import Any

from tickets.columns import (
    BIGINT,
    DATE,
    ENTITIES,
    HOURS,
    INT,
    LEGACY_ORDER,
    SCORE,
    SCORE5,
    TIME,
    TIMESTAMP,
    UNIT,
    Column,
)
from tickets.values import EXCEL_EPOCH

# --- volumes and time frame -----------------------------------------------------------------

#: Seed-scale row counts (DATA_PROFILE.md "Volumes"); ``--scale`` multiplies them.
BASE_COUNTS = {
    "tickets": 10_939,
    "comments": 108_129,
    "timesheets": 141_062,
    "comment_quality": 1_500,
    "comment_sentiment": 109,
}
ROSTER_SIZE = 48
IMPORT_RECORDS = 16

LEGACY_START = dt.datetime(2025, 7, 1)
#: The legacy database is a snapshot taken at this moment (October is partial).
LEGACY_END = dt.datetime(2025, 10, 12)
#: The later exports cover the last five weeks of the legacy period plus two weeks beyond.
EXPORT_START = LEGACY_END - dt.timedelta(weeks=5)
EXPORT_END = LEGACY_END + dt.timedelta(weeks=2)
#: The one mistyped timesheet date: the year is off by this many years (stays in the future).
FUTURE_TYPO_YEARS = 2

#: Columns of the legacy ``import_metadata`` table (SPEC §3.2); not an entity of the registry.
IMPORT_METADATA_COLUMNS = (
    "import_id",
    "source_type",
    "import_timestamp",
    "file_name",
    "records_imported",
    "date_range_start",
    "date_range_end",
    "filter_applied",
    "notes",
)

AUTOMATION_USER = "brian"  # the automation account of the profile (settings.AUTOMATION_USERS)
TICKET_ID_BASE = 3_600_000
COMMENT_ID_BASE = 40_000_000
BATCH = 5_000

# --- profile tables (DATA_PROFILE.md) ---------------------------------------------------------

# team: (weight %, {category: weight}, mean resolution days, platform)
TEAMS: dict[str, tuple[float, dict[str, float], float, str]] = {
    "Cloud - Infrastructure": (
        35,
        {"Alert": 88, "Support Tickets": 10, "Standard": 2},
        1.2,
        "Azure",
    ),
    "Cloud - Metroid": (20, {"Support Tickets": 95, "Alert": 3, "Standard": 2}, 4.5, "AWS"),
    "Cloud - Zelda": (13, {"Support Tickets": 94, "Alert": 4, "Service Request": 2}, 4.0, "M365"),
    "Cloud - Kirby": (9, {"Support Tickets": 93, "Standard": 5, "Alert": 2}, 5.0, "Azure"),
    "Cloud - Mario": (8, {"Support Tickets": 92, "Standard": 6, "Project": 2}, 5.5, "VMware"),
    "Cloud - BAU Support": (
        5.5,
        {"Support Tickets": 91, "Standard": 7, "Service Request": 2},
        6.0,
        "M365",
    ),
    "Cloud - Security": (4, {"Support Tickets": 91, "Alert": 7, "Standard": 2}, 7.0, "Azure"),
    "Cloud - PHI/WAPHA Support": (
        3,
        {"PHI Support Tickets": 96, "Support Tickets": 4},
        6.0,
        "AWS",
    ),
    "Cloud - L3 Escalation": (
        1.3,
        {"Support Tickets": 70, "Alert": 20, "Standard": 10},
        9.0,
        "AWS",
    ),
    "Cloud - L2 Escalation": (1.2, {"Support Tickets": 93, "Alert": 5, "Project": 2}, 5.0, "Azure"),
    "Cloud - Primary Sense": (
        0.46,
        {"Support Tickets": 96, "PHI Support Tickets": 4},
        27.8,
        "AWS",
    ),
}
# Teams differ in how much they write: (comment volume factor, share of closed tickets with a
# customer-facing comment). DATA_PROFILE: comments per closed support ticket 8.5-22.8 by team,
# coverage 33 %-88 % by team, 77 % overall.
TEAM_HABITS: dict[str, tuple[float, float]] = {
    "Cloud - Infrastructure": (0.8, 0.80),
    "Cloud - Metroid": (1.0, 0.82),
    "Cloud - Zelda": (1.08, 0.78),
    "Cloud - Kirby": (0.92, 0.75),
    "Cloud - Mario": (1.15, 0.72),
    "Cloud - BAU Support": (0.82, 0.70),
    "Cloud - Security": (1.25, 0.60),
    "Cloud - PHI/WAPHA Support": (1.35, 0.88),
    "Cloud - L3 Escalation": (1.5, 0.45),
    "Cloud - L2 Escalation": (1.42, 0.55),
    "Cloud - Primary Sense": (1.45, 0.33),
}
# Resolution gets faster over the period (5.3 days in July to ~1.3 in October).
MONTH_SPEED = {7: 1.5, 8: 1.1, 9: 0.8, 10: 0.45}
MONTH_VOLUME = {7: 1.07, 8: 0.93, 9: 1.0, 10: 1.0}
WILL_CLOSE = 0.75
RESOLUTION_DATE_SHARE = 0.72  # of closed tickets: 53 % of all tickets carry one
NEGATIVE_DURATION = 0.0015

ROOT_CAUSES = {
    "Security": 37,
    "Account": 19,
    "Software": 9,
    "User Modifications": 6,
    "Hosted Service": 5,
    "Hardware": 4,
    "Network": 4,
    "Configuration": 4,
    "Third Party": 3,
    "Capacity": 3,
    "Unknown": 3,
    "--None--": 3,
}
SEVERITIES = {
    "Incident": 40,
    "Service Request": 35,
    "Accounts Enquiry": 8,
    "Provisioning": 7,
    "Problem": 5,
    "Change Request": 4,
    "Priority 1": 1,
}
OPEN_STATUSES = {
    "In Progress": 35,
    "New": 20,
    "Awaiting Customer": 20,
    "On Hold": 10,
    "Assigned": 15,
}
SOURCES = {"Email": 50, "Portal": 35, "Phone": 15}
RESOLUTION_TYPES = ("Fixed", "Workaround", "No Fault Found", "Duplicate", "Information Provided")
BREACH_REASONS = ("Awaiting third party", "Resource availability", "Complexity", "Misrouted")

# comments
PUBLIC_CLOSED = ((0, 1, 2, 3, 4, 5, 6, 8), (23, 48, 10, 9, 4, 3, 2, 1))
PUBLIC_OPEN = ((0, 1, 2, 3), (40, 40, 15, 5))


def public_comments(rng: Random, team: str, closed: bool) -> int:
    """Customer-facing comments on a ticket: a closed one has any with its team's coverage."""
    if not closed:
        return rng.choices(*PUBLIC_OPEN)[0]
    if rng.random() >= TEAM_HABITS[team][1]:
        return 0
    return rng.choices(PUBLIC_CLOSED[0][1:], PUBLIC_CLOSED[1][1:])[0]


WORKNOTES = ((0, 1, 2, 3, 4), (45, 30, 14, 7, 4))
HUMAN_SYSTEM = ((0, 1, 2, 3, 4), (30, 30, 20, 12, 8))
VISIBLE_JUNK = ("3", "12", "240", "1.5", "Arial", "Calibri", "Tahoma", "yes", "no")
VISIBLE_RATE = 0.0012

# timesheets
ADMIN_SHARE = 0.19
LINKED_SHARE = 0.09
AGENTS_PER_TICKET = ((1, 2, 3, 4, 5), (67, 20, 8, 4, 2))
HOUR_CHOICES = ((0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 8.0), (38, 24, 10, 10, 6, 5, 3, 3, 1))
ADMIN_KINDS = ("Team Meeting", "Training", "Leave", "Internal Project", "Documentation")

# quality results
TIERS = (("good", 89), ("excellent", 7), ("acceptable", 3), ("poor", 1.5))
ODD_TIERS = ("Good", "GOOD ", "Excellent", "excelent", "n/a", "")
SENTIMENTS = {"neutral": 45, "positive": 35, "negative": 12, "mixed": 8}

FIRST = (
    "Olivia Liam Charlotte Noah Amelia Jack Isla William Mia Oliver Ava Leo Grace Lucas Chloe "
    "Henry Sophie Thomas Ella James Zoe Ethan Ruby Mason Lily Harrison Emily Hudson Matilda Archie "
    "Priya Arjun Mei Wei Fatima Omar Ngoc Minh Aroha Tane"
).split()
LAST = (
    "Smith Jones Williams Brown Wilson Taylor Johnson White Martin Anderson Thompson Nguyen Thomas "
    "Walker Harris Lee Ryan Robinson Kelly King Davis Wright Evans Roberts Green Hall Wood Jackson "
    "Clarke Patel Singh Chen Wang Ali Khan Tran Murphy OBrien Cooper Ward"
).split()
ORG_WORDS = (
    "Harbour Northwind Coastal Summit Redgum Banksia Southern Eastern Pioneer Golden Riverina "
    "Kestrel Ironbark Wattle Bluewater Granite Sterling Meridian Horizon Lakeside"
).split()
ORG_KINDS = (
    "Health",
    "Logistics",
    "Legal",
    "Council",
    "Medical Centre",
    "Engineering",
    "Foods",
    "Finance",
    "Schools",
    "Primary Health Network",
)
APPS = ("Outlook", "Teams", "SharePoint", "the VPN", "Citrix", "OneDrive", "the ERP", "MFA")
HOST_KINDS = ("app", "sql", "web", "dc", "fs", "rds", "k8s")
ALERT_KINDS = (
    "High CPU",
    "Disk space low",
    "Backup failed",
    "Service stopped",
    "Certificate expiring",
    "Memory pressure",
    "Heartbeat lost",
)


# --- the world: who, which accounts, which tickets ------------------------------------------


@dataclass(frozen=True)
class Volumes:
    tickets: int
    comments: int
    timesheets: int
    quality: int
    sentiment: int
    roster: int = ROSTER_SIZE
    imports: int = IMPORT_RECORDS


def volumes(scale: float) -> Volumes:
    """Legacy row counts for a scale: at 1.0 exactly the seed's counts."""

    def n(base: int) -> int:
        return max(1, round(base * scale))

    return Volumes(
        tickets=n(BASE_COUNTS["tickets"]),
        comments=n(BASE_COUNTS["comments"]),
        timesheets=n(BASE_COUNTS["timesheets"]),
        quality=n(BASE_COUNTS["comment_quality"]),
        sentiment=n(BASE_COUNTS["comment_sentiment"]),
    )


@dataclass(slots=True)
class Person:
    name: str
    username: str
    email: str
    user_id: int


@dataclass(slots=True)
class Account:
    account_id: int
    name: str
    selcom: str
    classification: str
    internal: bool


@dataclass(slots=True)
class PlannedTicket:
    """What is true about a ticket regardless of when it is looked at."""

    id: int
    created: dt.datetime
    team: str
    category: str
    account: int
    will_close: bool
    closes: dt.datetime  # closure time if it ever closes
    resolution: dt.datetime | None  # Actual Resolution Date (may precede `created`: a few do)
    legacy: bool  # created before the legacy snapshot
    # legacy comment plan: public, worknotes, human system, automation system
    comments: tuple[int, int, int, int] = (0, 0, 0, 0)

    def closed_by(self, moment: dt.datetime) -> bool:
        return self.will_close and self.closes < moment

    @property
    def first_seen(self) -> dt.datetime:
        """The snapshot in which the ticket first appears (its 'open' values are fixed there)."""
        return LEGACY_END if self.legacy else EXPORT_END


@dataclass
class World:
    seed: int
    scale: float
    volumes: Volumes
    agents: list[Person]
    contacts: list[Person]
    automation: Person
    accounts: list[Account]
    tickets: list[PlannedTicket]
    orphan_ids: list[int]
    agent_weights: list[float]
    texts: dict[str, list[str]] = field(default_factory=dict)

    def rng(self, stream: str) -> Random:
        return Random(f"{self.seed}:{stream}")

    @property
    def legacy_tickets(self) -> list[PlannedTicket]:
        return [t for t in self.tickets if t.legacy]


def _choices(rng: Random, table: dict[str, float]) -> Callable[[], str]:
    keys, cum = list(table), list(accumulate(table.values()))
    return lambda: rng.choices(keys, cum_weights=cum)[0]


def _days(start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    out, d = [], start
    while d < end:
        out.append(d)
        d += dt.timedelta(days=1)
    return out


def _ticket_day_weight(day: dt.datetime) -> float:
    return (1.0 if day.weekday() < 5 else 0.35) * MONTH_VOLUME.get(day.month, 1.0)


def _spread(rng: Random, days: list[dt.datetime], n: int) -> list[dt.datetime]:
    """n sorted creation times over the days, business hours favoured, minute resolution."""
    cum = list(accumulate(_ticket_day_weight(d) for d in days))
    out = []
    for i in rng.choices(range(len(days)), cum_weights=cum, k=n):
        minute = rng.randrange(420, 1080) if rng.random() < 0.8 else rng.randrange(1440)
        out.append(days[i] + dt.timedelta(minutes=minute))
    out.sort()
    return out


def _people(rng: Random, n: int, id_base: int, domain: str) -> list[Person]:
    names: set[str] = set()
    people = []
    while len(people) < n:
        first, last = rng.choice(FIRST), rng.choice(LAST)
        name = f"{first} {last}"
        if name in names:
            continue
        names.add(name)
        username = f"{first[0]}{last}".lower()
        if any(p.username == username for p in people):
            username += str(len(people))
        people.append(
            Person(name, username, f"{first}.{last}@{domain}".lower(), id_base + len(people) * 7)
        )
    return people


def _accounts(rng: Random, n: int) -> list[Account]:
    out = []
    for i in range(n):
        name = f"{rng.choice(ORG_WORDS)} {rng.choice(ORG_KINDS)}"
        if i % 9 == 0:
            name += " Pty Ltd"
        out.append(
            Account(
                account_id=10_000 + i * 13,
                name=name,
                selcom=f"SEL{20000 + i * 7}",
                classification=rng.choice(("Gold", "Silver", "Bronze", "Platinum")),
                internal=i == 0,
            )
        )
    return out


def build_world(seed: int, scale: float) -> World:
    """People, accounts and the planned tickets (legacy ones and those new in the exports)."""
    if scale <= 0:
        raise ValueError("scale must be positive")
    vol = volumes(scale)
    rng = Random(f"{seed}:world")
    agents = _people(rng, 150, 5_000, "cloudteam.example")
    contacts = _people(rng, 400, 900_000, "customer.example")
    automation = Person(AUTOMATION_USER, AUTOMATION_USER, "brian@cloudteam.example", 1_001)
    accounts = _accounts(rng, 160)
    agent_weights = [1.0 if i < ROSTER_SIZE else 0.8 for i in range(len(agents))]

    legacy_days = _days(LEGACY_START, LEGACY_END)
    new_days = _days(LEGACY_END, EXPORT_END)
    rate = vol.tickets / sum(_ticket_day_weight(d) for d in legacy_days)
    n_new = max(1, round(rate * sum(_ticket_day_weight(d) for d in new_days)))
    created = _spread(rng, legacy_days, vol.tickets) + _spread(rng, new_days, n_new)

    team_names = list(TEAMS)
    team_cum = list(accumulate(TEAMS[t][0] for t in team_names))
    categories = {t: _choices(rng, TEAMS[t][1]) for t in team_names}
    account_cum = list(accumulate(1.0 / (1 + i * 0.15) for i in range(len(accounts))))
    tickets: list[PlannedTicket] = []
    next_id = TICKET_ID_BASE
    for when in created:
        next_id += rng.randint(1, 4)
        team = rng.choices(team_names, cum_weights=team_cum)[0]
        category = categories[team]()
        mean_days = TEAMS[team][2] * MONTH_SPEED.get(when.month, 0.45)
        if category == "Alert":
            mean_days = min(mean_days, 1.0)
        sigma = 1.2
        days = max(mean_days * rng.lognormvariate(-sigma * sigma / 2, sigma), 0.004)
        done = when + dt.timedelta(minutes=round(days * 1440))
        resolution: dt.datetime | None = None
        closes = done
        if rng.random() < RESOLUTION_DATE_SHARE:
            resolution = done
            closes = done + dt.timedelta(minutes=rng.randrange(1, 180))
            if rng.random() < NEGATIVE_DURATION / RESOLUTION_DATE_SHARE:
                resolution = when - dt.timedelta(minutes=rng.randrange(30, 900))
        tickets.append(
            PlannedTicket(
                id=next_id,
                created=when,
                team=team,
                category=category,
                account=rng.choices(range(len(accounts)), cum_weights=account_cum)[0],
                will_close=rng.random() < WILL_CLOSE,
                closes=closes,
                resolution=resolution,
                legacy=when < LEGACY_END,
            )
        )
    world = World(
        seed=seed,
        scale=scale,
        volumes=vol,
        agents=agents,
        contacts=contacts,
        automation=automation,
        accounts=accounts,
        tickets=tickets,
        orphan_ids=[],
        agent_weights=agent_weights,
    )
    _plan_comments(world, Random(f"{seed}:comment-plan"))
    known = {t.id for t in tickets}
    orphans: set[int] = set()
    n_orphans = max(50, round(4_000 * scale))
    while len(orphans) < n_orphans:
        candidate = rng.randint(TICKET_ID_BASE - 400_000, next_id + 100_000)
        if candidate not in known:
            orphans.add(candidate)
    world.orphan_ids = sorted(orphans)
    world.texts = _text_pools(Random(f"{seed}:texts"))
    return world


def _plan_comments(world: World, rng: Random) -> None:
    """Per legacy ticket comment counts that add up to exactly the legacy comment volume."""
    legacy = world.legacy_tickets
    planned = []
    for t in legacy:
        public = public_comments(rng, t.team, t.closed_by(LEGACY_END))
        notes = rng.choices(*WORKNOTES)[0]
        system = rng.choices(*HUMAN_SYSTEM)[0]
        planned.append([public, notes, system, 0])
    remaining = world.volumes.comments - sum(sum(p) for p in planned)
    # Tiny scales: trim human comments until the automation share fits.
    i = 0
    while remaining < 0 and planned:
        p = planned[i % len(planned)]
        for k in (2, 1, 0):
            if p[k] and remaining < 0:
                p[k] -= 1
                remaining += 1
        i += 1
    weights = [
        (1.0 if t.category == "Alert" else 3.0)
        * (1.5 if t.closed_by(LEGACY_END) else 1.0)
        * TEAM_HABITS[t.team][0] ** 2
        for t in legacy
    ]
    for idx in rng.choices(range(len(legacy)), weights=weights, k=max(remaining, 0)):
        planned[idx][3] += 1
    for t, p in zip(legacy, planned, strict=True):
        t.comments = (p[0], p[1], p[2], p[3])


def _text_pools(rng: Random) -> dict[str, list[str]]:
    bodies = [
        "Hi team, the issue is still occurring for users in the Perth office, please advise.",
        "Thanks for the quick response, that's fixed it. You can close the ticket.",
        'We restarted the service as discussed; the "sync" job now completes, regards.',
        "Can you please confirm the change window, 7pm-9pm AEST, works for you?",
        "Attached are the logs, errors start at 09:14, see line 2,340.\nKind regards",
        "Password reset completed, user advised to sign in again & re-register MFA.",
        "Following up: any update on this? The backup has failed 3 nights in a row.",
        "Mailbox permissions granted (full access, send as). Please test and let us know.",
    ]
    system = [
        "Status changed from New to In Progress",
        "Ticket assigned to {team}",
        "SLA clock paused: awaiting customer",
        "Email notification sent to customer",
        "Priority recalculated by workflow",
        "Ticket created from monitoring alert",
        "Status changed to Closed",
    ]
    notes = [
        "Checked event logs on {host}; disk cleanup freed 14 GB, monitoring.",
        "Escalated to L3, see runbook RB-{n}.",
        "Called customer, no answer, left voicemail.",
        "Applied patch KB{n} and rebooted {host} in the window.",
        "Waiting on vendor case #{n}.",
    ]
    return {"public": bodies, "system": system, "notes": notes}


def _host(rng: Random, account: Account) -> str:
    return (
        f"{account.name.split()[0][:4].lower()}-{rng.choice(HOST_KINDS)}{rng.randrange(1, 30):02d}"
    )


def _fmt_month(moment: dt.datetime) -> str:
    return moment.strftime("%b-%y")


# --- tickets -----------------------------------------------------------------------------------


_TICKET_FIELDS = tuple(c.field for c in ENTITIES["tickets"].columns)


def ticket_row(world: World, t: PlannedTicket, as_of: dt.datetime) -> dict[str, Any]:
    """A ticket's row as an export taken at ``as_of`` would show it (typed values).

    All random draws happen unconditionally and in a fixed order, so two snapshots of the same
    ticket differ only where its state changed in between.
    """
    r = Random((world.seed << 32) ^ t.id)
    closed = t.closed_by(as_of)
    account = world.accounts[t.account]
    is_alert = t.category == "Alert"
    host = _host(r, account)
    u = [r.random() for _ in range(24)]
    agent = world.agents[r.randrange(ROSTER_SIZE if u[0] < 0.8 else len(world.agents))]
    contact = r.choice(world.contacts)
    severity = "Alert" if is_alert else r.choices(list(SEVERITIES), list(SEVERITIES.values()))[0]
    open_status = r.choices(list(OPEN_STATUSES), list(OPEN_STATUSES.values()))[0]
    closed_status = "Closed" if u[1] < 0.8 else "Resolved"
    root_cause = r.choices(list(ROOT_CAUSES), list(ROOT_CAUSES.values()))[0]
    app = r.choice(APPS)
    alert_kind = r.choice(ALERT_KINDS)
    resolution_type = r.choice(RESOLUTION_TYPES)
    breach_reason = r.choice(BREACH_REASONS)
    response_minutes = round(r.lognormvariate(3.3, 1.0))
    open_span = int((t.first_seen - t.created).total_seconds() // 60)
    open_modified = t.created + dt.timedelta(minutes=int(open_span * u[2]))
    n = r.randrange(1000, 99999)

    if is_alert:
        title = f"[Alert] {alert_kind} on {host}"
        description = f"<p>Monitoring alert: {alert_kind} on {host}, threshold exceeded.</p>"
        creator, source = world.automation, "Monitoring"
    else:
        title = (
            f"Unable to access {app}" if u[3] < 0.5 else f"Request: {app} change for {contact.name}"
        )
        description = (
            f"<p>From: {contact.name}<br>Subject: {title}</p><p>Hi, please help, "
            f"users at {account.name} report problems with {app}.</p>"
        )
        creator, source = contact, r.choices(list(SOURCES), list(SOURCES.values()))[0]

    pending = u[4] < (0.17 if closed else 0.60)
    assignee = "PendingAssignment" if pending else agent.name
    if not pending and u[5] < 0.04:
        assignee = " " + assignee  # leading space, as in the real exports
    responded = t.created + dt.timedelta(minutes=response_minutes)
    if u[6] >= 0.63 or responded >= as_of:
        responded = None
    sla_met = None if u[7] < 0.062 else ("yes" if u[8] < 0.96 else "no")
    resolved = t.resolution if closed else None
    closed_at = t.closes if closed else None

    row: dict[str, Any] = dict.fromkeys(_TICKET_FIELDS)
    row |= {
        "ticket_id": t.id,
        "parent_id": t.id - r.randrange(1, 5000) if u[9] < 0.02 else None,
        "customer_reference": f"PO{n}" if u[10] < 0.2 else None,
        "created_at": t.created,
        "month_created": _fmt_month(t.created),
        "sla": f"Cloud Standard - {'P2' if is_alert else 'P3'}",
        "account_id": account.account_id,
        "account_name": account.name,
        "site_classification": account.classification,
        "site_status": "Active",
        "selcom_key": account.selcom,
        "title": title,
        "description": description,
        "severity": severity,
        "status": closed_status if closed else open_status,
        "assigned_to_user_id": None if pending else agent.user_id,
        "assigned_to_user": assignee,
        "job_ref": f"JOB-{n}" if u[11] < 0.05 else None,
        "team": t.team,
        "modified_at": (t.closes + dt.timedelta(minutes=5)) if closed else open_modified,
        "category": t.category,
        "resolution_type": resolution_type if closed else None,
        "root_cause_category": root_cause if closed or u[12] < 0.88 else None,
        "created_by_user_id": creator.user_id,
        "created_by_user": creator.name,
        "client_name": account.name,
        "ticket_source": source,
        "related_ci_ref": 700_000 + n if u[13] < 0.4 else None,
        "related_ci": host if u[13] < 0.4 else None,
        "responded_at": responded,
        "resolved_at": resolved,
        "response_met": "yes" if u[14] < 0.93 else "no",
        "resolution_met": ("yes" if u[15] < 0.9 else "no") if closed else None,
        "sla_met": sla_met,
        "sla_exempt": "no" if u[16] < 0.95 else ("yes" if u[16] < 0.97 else None),
        "mitigated_reason": "Customer delay" if u[17] < 0.01 else None,
        "sla_clock_status": "Stopped" if closed else ("Paused" if u[18] < 0.2 else "Running"),
        "sla_breach_reason": breach_reason if sla_met == "no" else None,
        "sla_breach_comment": "Breached while awaiting vendor" if sla_met == "no" else None,
        "qa_review_completed": ("yes" if u[19] < 0.5 else "no") if closed else None,
        "closed_at": closed_at,
        "month_closed": _fmt_month(closed_at) if closed_at else None,
        "solution": f"{resolution_type}: see notes, {app} restored."
        if closed and u[20] < 0.88
        else None,
        "sla_closed_at": closed_at,
        "sla_month_closed": _fmt_month(closed_at) if closed_at else None,
        "sla_closed_this_month": None,
        "sla_closed_last_month": None,
        "actual_sla_achievement": ("100%" if sla_met != "no" else "0%") if closed else None,
        "is_template": "no" if u[21] < 0.7 else None,
        "platform": TEAMS[t.team][3],
        "group_name": "Cloud Services",
    }
    if closed_at is not None:
        months_back = (as_of.year - closed_at.year) * 12 + as_of.month - closed_at.month
        row["sla_closed_this_month"] = "yes" if months_back == 0 else "no"
        row["sla_closed_last_month"] = "yes" if months_back == 1 else "no"
    if t.category == "Standard" and u[22] < 0.5:
        start = t.created + dt.timedelta(days=2)
        row.update(
            change_risk="Low" if u[23] < 0.7 else "Medium",
            change_trigger="Customer request",
            change_type="Standard",
            change_planned_start_at=start,
            change_planned_end_at=start + dt.timedelta(hours=2),
            change_actual_start_at=start if closed else None,
            change_actual_end_at=start + dt.timedelta(minutes=95) if closed else None,
            change_approver=agent.name,
            change_success="Successful" if closed else None,
        )
    return row


def legacy_ticket_rows(world: World) -> Iterator[dict[str, Any]]:
    for t in world.tickets:
        if t.legacy:
            yield ticket_row(world, t, LEGACY_END)


def export_ticket_rows(world: World) -> Iterator[dict[str, Any]]:
    """Tickets created in the export window as seen at its end: some closed since, some new."""
    xr = world.rng("export-tickets")
    for t in world.tickets:
        if t.created < EXPORT_START:
            continue
        row = ticket_row(world, t, EXPORT_END)
        if t.legacy and not (t.closed_by(EXPORT_END) and not t.closed_by(LEGACY_END)):
            if xr.random() < 0.03:  # touched since the snapshot: QA review done
                row["modified_at"] = LEGACY_END + dt.timedelta(minutes=xr.randrange(60, 20000))
                row["qa_review_completed"] = "yes"
        yield row


# --- comments ----------------------------------------------------------------------------------


def _comment_times(rng: Random, start: dt.datetime, end: dt.datetime, n: int) -> list[dt.datetime]:
    span = max(int((end - start).total_seconds() // 60), n + 1)
    minutes = sorted(rng.randrange(1, span + 1) for _ in range(n))
    for i in range(1, n):
        if minutes[i] <= minutes[i - 1]:
            minutes[i] = minutes[i - 1] + 1
    return [start + dt.timedelta(minutes=m) for m in minutes]


class _CommentMaker:
    """Builds comment rows; ids are ordinal-based so legacy and new ids never collide."""

    def __init__(self, world: World, rng: Random, first_ordinal: int):
        self.world, self.rng, self.ordinal = world, rng, first_ordinal
        self.texts = world.texts

    def make(self, t: PlannedTicket, kind: str, when: dt.datetime) -> dict[str, Any]:
        w, r = self.world, self.rng
        self.ordinal += 1
        account = w.accounts[t.account]
        visible = r.choice(VISIBLE_JUNK) if r.random() < VISIBLE_RATE else None
        if kind == "auto":
            user, owner, ctype = w.automation, "User", "system"
            text = r.choice(self.texts["system"]).format(team=t.team)
        elif kind == "system":
            user, owner, ctype = r.choice(w.agents), "User", "system"
            text = r.choice(self.texts["system"]).format(team=t.team)
        elif kind == "notes":
            user, owner, ctype = r.choice(w.agents), "User", "worknotes"
            text = r.choice(self.texts["notes"]).format(
                host=_host(r, account), n=r.randrange(1000, 9999)
            )
        else:
            ctype = "comments"
            if r.random() < 0.6:
                user, owner = r.choice(w.agents), "User"
            else:
                user, owner = r.choice(w.contacts), "Contact"
            text = (
                f"<p>From: {user.name}<br>Sent: {when:%d %B %Y %H:%M}<br>To: Cloud Support<br>"
                f"Subject: RE: [TKT-{t.id}] {account.name}</p><p>{r.choice(self.texts['public'])}</p>"
            )
        return {
            "comment_id": COMMENT_ID_BASE + self.ordinal * 3 + r.randrange(3),
            "ticket_id": t.id,
            "text": text,
            "user_id": user.user_id,
            "user_name": user.name if user is not w.automation else AUTOMATION_USER,
            "owner_type": owner,
            "created_at": when,
            "visible_to_customer": visible,
            "comment_type": ctype,
            "team": t.team,
        }

    def for_ticket(
        self, t: PlannedTicket, counts: tuple[int, int, int, int], end: dt.datetime
    ) -> Iterator[dict[str, Any]]:
        public, notes, system, auto = counts
        kinds = ["public"] * public + ["notes"] * notes + ["system"] * system + ["auto"] * auto
        self.rng.shuffle(kinds)
        if auto:  # the automation account opens the thread
            kinds.remove("auto")
            kinds.insert(0, "auto")
        for kind, when in zip(
            kinds, _comment_times(self.rng, t.created, end, len(kinds)), strict=True
        ):
            yield self.make(t, kind, when)


def _comment_end(t: PlannedTicket, snapshot: dt.datetime) -> dt.datetime:
    end = t.closes if t.will_close else t.created + dt.timedelta(days=30)
    return min(end, snapshot - dt.timedelta(minutes=1))


def legacy_comment_rows(world: World) -> Iterator[dict[str, Any]]:
    maker = _CommentMaker(world, world.rng("comments"), 0)
    for t in world.tickets:
        if t.legacy:
            yield from maker.for_ticket(t, t.comments, _comment_end(t, LEGACY_END))


def export_comment_rows(world: World) -> Iterator[dict[str, Any]]:
    """Legacy comments inside the export window, then what happened after the snapshot."""
    for row in legacy_comment_rows(world):
        if row["created_at"] >= EXPORT_START:
            yield row
    xr = world.rng("export-comments")
    maker = _CommentMaker(world, xr, world.volumes.comments + 10)
    for t in world.tickets:
        if t.created < EXPORT_START:
            continue
        if t.legacy:
            if t.closed_by(EXPORT_END) and not t.closed_by(LEGACY_END):
                when = max(t.closes - dt.timedelta(minutes=30), LEGACY_END)
                if xr.random() < 0.6:
                    yield maker.make(t, "public", when)
                yield maker.make(t, "auto", max(t.closes, when + dt.timedelta(minutes=1)))
            elif not t.closed_by(LEGACY_END) and xr.random() < 0.1:
                yield maker.make(
                    t, "notes", LEGACY_END + dt.timedelta(minutes=xr.randrange(1, 9000))
                )
        else:
            counts = (
                public_comments(xr, t.team, t.closed_by(EXPORT_END)),
                xr.choices(*WORKNOTES)[0],
                xr.choices(*HUMAN_SYSTEM)[0],
                max(1, round(xr.randrange(2, 11) * TEAM_HABITS[t.team][0] ** 2)),
            )
            yield from maker.for_ticket(t, counts, _comment_end(t, EXPORT_END))


def _is_scorable(row: dict[str, Any]) -> bool:
    return row["comment_type"] in ("comments", "worknotes") and row["user_name"] != AUTOMATION_USER


# --- timesheets --------------------------------------------------------------------------------


def _linked_plan(
    world: World,
    rng: Random,
    tickets: list[tuple[PlannedTicket, dt.datetime, dt.datetime]],
    total_rows: int,
) -> dict[dt.date, list[tuple[int, int, int]]]:
    """Timesheet rows that book time on generated tickets: day -> [(ticket id, agent, account)]."""
    by_day: dict[dt.date, list[tuple[int, int, int]]] = defaultdict(list)
    chosen = []
    budget = total_rows
    for t, start, end in tickets:
        agents = rng.choices(*AGENTS_PER_TICKET)[0]
        if agents > budget:
            break
        budget -= agents
        team = rng.sample(range(len(world.agents)), agents)
        chosen.append((t, start, end, team))
    extra = rng.choices(range(len(chosen)), k=budget) if chosen else []
    rows_per = [len(c[3]) for c in chosen]
    for i in extra:
        rows_per[i] += 1
    for (t, start, end, team), n in zip(chosen, rows_per, strict=True):
        span = max((end.date() - start.date()).days, 0)
        for k in range(n):
            day = start.date() + dt.timedelta(days=rng.randint(0, span))
            by_day[day].append((t.id, team[k % len(team)], t.account))
    return by_day


def _weekday_weight(day: dt.datetime) -> float:
    return 1.0 if day.weekday() < 5 else 0.06


def _day_counts(rng: Random, days: list[dt.datetime], n: int) -> list[int]:
    counts = [0] * len(days)
    cum = list(accumulate(_weekday_weight(d) for d in days))
    for i in rng.choices(range(len(days)), cum_weights=cum, k=n):
        counts[i] += 1
    return counts


class _TimesheetMaker:
    """Timesheet rows; plain ``random()`` indexing because this runs 1.4M times at scale 10."""

    TIMES = [dt.time(m // 60, m % 60) for m in range(1440)]
    SUBS = ("Incident", "Service Request", "Change")

    def __init__(self, world: World, rng: Random):
        self.world, self.rng = world, rng
        self.agent_cum = list(accumulate(world.agent_weights))
        self.hours_cum = list(accumulate(HOUR_CHOICES[1]))
        self.taken: set[tuple[int, int]] = set()  # (agent, start minute) of the current day

    def make(
        self, day: dt.date, crm_id: int, agent: int | None, account: int | None
    ) -> dict[str, Any]:
        w, rnd = self.world, self.rng.random
        if agent is None:
            agent = bisect(self.agent_cum, rnd() * self.agent_cum[-1])
        person = w.agents[agent]
        acct = w.accounts[account if account is not None else int(rnd() * len(w.accounts))]
        hours = HOUR_CHOICES[0][bisect(self.hours_cum, rnd() * self.hours_cum[-1])]
        start = (28 + int(rnd() * 36)) * 15  # 07:00 - 15:45, on the quarter hour
        # One entry per agent and start time a day, so no two rows are identical (no accidental
        # duplicate fingerprints): a clash moves the start by a minute.
        for _ in range(1440):
            if (agent, start) not in self.taken:
                break
            start = (start + 1) % 1440
        self.taken.add((agent, start))
        end = min(start + round(hours * 60), 1439)
        admin = crm_id == 0
        kind = ADMIN_KINDS[int(rnd() * len(ADMIN_KINDS))]
        u = rnd()
        return {
            "user_full_name": person.name,
            "username": person.username,
            "title": kind if admin else f"Ticket #{crm_id}",
            "description": f"{kind}, weekly" if admin else f"Work on ticket {crm_id}, {acct.name}",
            "work_date": day,
            "time_from": self.TIMES[start],
            "time_to": self.TIMES[end],
            "entry_type": "Admin" if admin else "Ticket",
            "category": "Admin" if admin else "Support",
            "sub_category": kind if admin else self.SUBS[int(u * 3)],
            "category_2": None if u < 0.9 else "After hours",
            "hours": hours,
            "crm_id": crm_id,
            "project_master_code": "ADMIN-CLOUD" if admin else f"TKT{crm_id}",
            "cost_centre_id": 4_100 + (agent % 6),
            "cost_centre_desc": "Cloud Services",
            "account_selcom": None if admin else acct.selcom,
            "account_name": "Internal" if admin else acct.name,
            "account_bill_state": None if admin else ("Billable" if u < 0.8 else "Non-billable"),
            "account_internal": "Yes" if admin or acct.internal else "No",
            "ticket_department": "Cloud",
        }

    def days(
        self,
        days: list[dt.datetime],
        other_counts: list[int],
        linked: dict[dt.date, list[tuple[int, int, int]]],
    ) -> Iterator[dict[str, Any]]:
        rnd, orphans = self.rng.random, self.world.orphan_ids
        admin_p = ADMIN_SHARE / (1 - LINKED_SHARE)
        for day, n_other in zip(days, other_counts, strict=True):
            d = day.date()
            self.taken = set()
            for ticket_id, agent, account in linked.get(d, ()):
                yield self.make(d, ticket_id, agent, account)
            for _ in range(n_other):
                u = rnd()
                if u < admin_p:
                    yield self.make(d, 0, None, None)
                else:  # another team's ticket: an orphan reference
                    yield self.make(
                        d, orphans[int((u - admin_p) / (1 - admin_p) * len(orphans))], None, None
                    )


def _legacy_timesheet_plan(world: World):
    rng = world.rng("timesheet-plan")
    total = world.volumes.timesheets
    linked_total = round(total * LINKED_SHARE)
    candidates = []
    for t in world.tickets:
        if not t.legacy:
            continue
        closed = t.closed_by(LEGACY_END)
        if rng.random() < (0.11 if closed else 0.06):
            end = t.closes if closed else LEGACY_END - dt.timedelta(minutes=1)
            candidates.append((t, t.created, end))
    linked = _linked_plan(world, rng, candidates, linked_total)
    booked = sum(len(v) for v in linked.values())
    days = _days(LEGACY_START, LEGACY_END)
    return days, _day_counts(rng, days, total - booked), linked


def legacy_timesheet_rows(world: World) -> Iterator[dict[str, Any]]:
    days, counts, linked = _legacy_timesheet_plan(world)
    maker = _TimesheetMaker(world, world.rng("timesheets"))
    future_at = min(137, world.volumes.timesheets - 1)
    for i, row in enumerate(maker.days(days, counts, linked)):
        if i == future_at:  # a mistyped year: dated in the future
            wd = row["work_date"]
            row["work_date"] = wd.replace(year=wd.year + FUTURE_TYPO_YEARS)
        yield row


def export_timesheet_rows(world: World) -> Iterator[dict[str, Any]]:
    """The export is the truth for its dates: some legacy rows gone, some changed, new days."""
    xr = world.rng("export-timesheets")
    start, end = EXPORT_START.date(), LEGACY_END.date()
    for row in legacy_timesheet_rows(world):
        if not start <= row["work_date"] < end:
            continue
        u = xr.random()
        if u < 0.015:
            continue  # deleted in the source since the snapshot
        if u < 0.035:  # corrected hours: a new fingerprint
            row["hours"] = row["hours"] + 0.25
            t = row["time_to"]
            minutes = min(t.hour * 60 + t.minute + 15, 23 * 60 + 45)
            row["time_to"] = dt.time(minutes // 60, minutes % 60)
        yield row
    days = _days(LEGACY_END, EXPORT_END)
    legacy_days = _days(LEGACY_START, LEGACY_END)
    per_weight = world.volumes.timesheets / sum(_weekday_weight(d) for d in legacy_days)
    total = round(per_weight * sum(_weekday_weight(d) for d in days))
    candidates = []
    for t in world.tickets:
        if t.created < EXPORT_START or t.closed_by(LEGACY_END):
            continue
        if xr.random() < (0.08 if not t.legacy else 0.05):
            begin = max(t.created, LEGACY_END)
            finish = min(t.closes if t.will_close else EXPORT_END, EXPORT_END) - dt.timedelta(
                minutes=1
            )
            if finish > begin:
                candidates.append((t, begin, finish))
    linked = _linked_plan(world, xr, candidates, round(total * LINKED_SHARE))
    booked = sum(len(v) for v in linked.values())
    maker = _TimesheetMaker(world, xr)
    yield from maker.days(days, _day_counts(xr, days, max(total - booked, 0)), linked)


# --- quality, sentiment, roster, import history ------------------------------------------------


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text)).strip()


def _key(row: dict[str, Any], rng: Random) -> str:
    if rng.random() < 0.75:  # the analysis pipeline's synthetic key
        return f"{row['ticket_id']}_{row['created_at']:%Y-%m-%d %H:%M:%S}"
    return str(row["comment_id"])


def quality_rows(world: World, sources: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    r = world.rng("quality")
    names, weights = zip(*TIERS, strict=True)
    analysed = dt.datetime(2025, 10, 13, 2, 0)
    for i, c in enumerate(sources):
        tier = r.choices(names, weights)[0]
        if tier == "excellent":
            score = r.uniform(4.5, 5.0)
        elif tier == "good":
            score = min(3.0 + r.expovariate(5.0), 4.49)
        elif tier == "acceptable":
            score = r.uniform(2.5, 2.99)
        else:
            score = r.uniform(1.0, 2.49)
        dims = [min(5, max(1, round(score + r.gauss(0, 0.5)))) for _ in range(4)]
        shown_tier = r.choice(ODD_TIERS) if r.random() < 0.01 else tier
        yield {
            "comment_key": _key(c, r),
            "ticket_id": c["ticket_id"],
            "user_name": c["user_name"],
            "team": c["team"],
            "comment_type": c["comment_type"],
            "created_at": c["created_at"],
            "cleaned_text": _clean(c["text"])[:300],
            "professionalism_score": dims[0],
            "clarity_score": dims[1],
            "empathy_score": dims[2],
            "actionability_score": dims[3],
            "quality_score": round(score, 2),
            "quality_tier": shown_tier,
            "content_tags": json.dumps(
                r.sample(["update", "resolution", "question", "apology", "next_steps"], 2)
            ),
            "red_flags": "[]" if r.random() < 0.9 else json.dumps(["no_greeting"]),
            "intent_summary": "Customer update"
            if c["comment_type"] == "comments"
            else "Internal note",
            "analysed_at": analysed + dt.timedelta(minutes=i),
        }


def sentiment_rows(world: World, sources: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    r = world.rng("sentiment")
    pick = _choices(r, SENTIMENTS)
    analysed = dt.datetime(2025, 10, 14, 3, 0)
    for i, c in enumerate(sources):
        sentiment = pick()
        yield {
            "comment_key": _key(c, r),
            "ticket_id": c["ticket_id"],
            "user_name": c["user_name"],
            "team": c["team"],
            "comment_type": c["comment_type"],
            "created_at": c["created_at"],
            "cleaned_text": _clean(c["text"])[:300],
            "sentiment": sentiment,
            "confidence": round(r.uniform(0.55, 0.99), 4),
            "reasoning": f"Tone reads as {sentiment}.",
            "model_used": "claude-3-5-haiku",
            "latency_ms": r.randrange(300, 2500),
            "analysed_at": analysed + dt.timedelta(minutes=3 * i),
        }


def roster_rows(world: World) -> Iterator[dict[str, Any]]:
    for p in world.agents[:ROSTER_SIZE]:
        yield {"name": p.name, "email": p.email, "username": p.username}


def import_metadata_rows(world: World, counts: dict[str, int]) -> Iterator[tuple]:
    """Sixteen historical imports over the legacy period (they become historical runs)."""
    sources = (
        ("tickets", "tickets_xlsx", "Cloud_Tickets_{m}.xlsx"),
        ("comments", "comments_xlsx", "Cloud_Comments_{m}.xlsx"),
        ("timesheets", "timesheets_xlsx", "Timesheets_{m}.xlsx"),
    )
    months = [(2025, 7), (2025, 8), (2025, 9), (2025, 10)]
    i = 0
    for y, m in months:
        first = dt.date(y, m, 1)
        last = min(dt.date(y + m // 12, m % 12 + 1, 1), LEGACY_END.date()) - dt.timedelta(days=1)
        for entity, kind, name in sources:
            i += 1
            yield (
                i,
                kind,
                f"{last + dt.timedelta(days=1):%Y-%m-%d} 06:{i:02d}:00",
                name.format(m=f"{y}{m:02d}"),
                counts[entity] // len(months),
                f"{first:%Y-%m-%d}",
                f"{last:%Y-%m-%d}",
                "team LIKE 'Cloud - %'",
                None if i % 3 else "nan",
            )
    for kind, name, entity in (
        ("quality_analysis", "quality_results.json", "comment_quality"),
        ("sentiment_analysis", "sentiment_results.json", "comment_sentiment"),
        ("roster", "cloud_team_roster.csv", "roster"),
        ("comments_backfill", "Cloud_Comments_backfill.xlsx", "comments"),
    ):
        i += 1
        yield (
            i,
            kind,
            f"2025-10-1{i % 4} 09:00:00",
            name,
            counts.get(entity, 0) if entity != "comments" else counts["comments"] // 50,
            "2025-07-01",
            f"{LEGACY_END - dt.timedelta(days=1):%Y-%m-%d}",
            "--None--",
            "manual run",
        )


# --- legacy SQLite rendering ------------------------------------------------------------------


def legacy_columns(entity_name: str) -> list[str]:
    """Column names of an entity's legacy table (SPEC §3.2), taken from the registry."""
    entity = ENTITIES[entity_name]
    if entity_name == "comments":  # snake_case legacy names are the first aliases
        return [c.aliases[0] if c.aliases else c.field for c in entity.columns]
    if entity_name == "roster":  # lower-case names, no team column in the legacy table
        return [c.field for c in entity.columns if c.field != "team"]
    return [c.header for c in entity.columns]


def _pick(u: float, cuts: tuple[float, ...]) -> int:
    if u >= cuts[-1]:  # the common, quirk-free case
        return len(cuts)
    for i, cut in enumerate(cuts):
        if u < cut:
            return i
    return len(cuts)


@lru_cache(maxsize=4096)
def _dayfirst_date(v: dt.date) -> str:
    return f"{v:%d/%m/%Y}"


def _dayfirst(v: dt.datetime) -> str:
    return f"{v.day:02d}/{v.month:02d}/{v.year} {v.hour}:{v.minute:02d}"


Renderer = Callable[[Any, int | None], Any]


def _sqlite_renderer(
    entity_name: str, col: Column, rnd: Callable[[], float]
) -> tuple[str, Renderer | None]:
    """(declared type, value renderer or None for as-is) as pandas' ``to_sql``: the types lie.

    A renderer takes (value, force); ``force`` picks a quirk branch outright.
    """
    key = ENTITIES[entity_name].key
    if col.kind in (BIGINT, INT):
        if entity_name == "comments":  # ids stored as text, some with a ".0" tail

            def text_id(v, force):
                if v is None:
                    return None
                return str(float(v)) if force == 0 or rnd() < 0.03 else str(v)

            return "TEXT", text_id
        if (
            col.field == key
            or col.kind == INT
            or entity_name in ("comment_quality", "comment_sentiment")
        ):
            return "INTEGER", None
        return "REAL", lambda v, force: None if v is None else float(v)  # 3652948.0
    if col.kind == TIMESTAMP:

        def stamp(v, force):
            b = force if force is not None else _pick(rnd(), (0.004, 0.02))
            if v is None:
                return "" if b < 2 else None
            return _dayfirst(v) if b == 0 else v.isoformat(" ")

        return "TIMESTAMP", stamp
    if col.kind == DATE:

        def day(v, force):
            if v is None:
                return None
            b = force if force is not None else _pick(rnd(), (0.004,))
            return f"{v:%d/%m/%Y}" if b == 0 else v.isoformat() + " 00:00:00"

        return "TIMESTAMP", day
    if col.kind == TIME:
        return "TEXT", lambda v, force: None if v is None else v.isoformat()
    if col.kind in (HOURS, SCORE, UNIT):
        return "REAL", None
    if col.kind == SCORE5:
        return "INTEGER", None
    placeholders = ("nan", "None", "N/A")

    def text(v, force):
        if v is not None or col.required:
            return v
        b = force if force is not None else _pick(rnd(), (0.01, 0.014, 0.016))
        return placeholders[b] if b < 3 else None

    text.empty_only = True  # only empty values change: filled cells skip the call
    return "TEXT", text


def _legacy_columns(entity_name: str) -> tuple[Column, ...]:
    columns = ENTITIES[entity_name].columns
    if entity_name == "roster":  # the legacy roster has no team column
        columns = tuple(c for c in columns if c.field != "team")
    return columns


def _render(
    rows: Iterable[dict[str, Any]],
    fields: list[str],
    renderers: list[Renderer | None],
    forced: int,
) -> Iterator[tuple[dict[str, Any], list[Any]]]:
    """Typed rows -> cells; the first ``forced`` rows take quirk branch 0, 1, ... outright."""
    active = [
        (i, f, getattr(f, "empty_only", False)) for i, f in enumerate(renderers) if f is not None
    ]
    getter = itemgetter(*fields)
    for n, row in enumerate(rows):
        force = n if n < forced else None
        cells = list(getter(row))
        for i, f, empty_only in active:
            if not empty_only or cells[i] is None:
                cells[i] = f(cells[i], force)
        yield row, cells


def _legacy_table_rows(
    entity_name: str, rows: Iterable[dict[str, Any]], rng: Random
) -> Iterator[list[Any]]:
    columns = _legacy_columns(entity_name)
    renderers = [_sqlite_renderer(entity_name, c, rng.random)[1] for c in columns]
    for _, cells in _render(rows, [c.field for c in columns], renderers, 2):
        yield cells


def _create_table(conn: sqlite3.Connection, table: str, names: list[str], types: list[str]) -> None:
    cols = ", ".join(f'"{n}" {t}' for n, t in zip(names, types, strict=True))
    conn.execute(f'CREATE TABLE "{table}" ({cols})')


def _insert(
    conn: sqlite3.Connection,
    table: str,
    width: int,
    rows: Iterable[list[Any] | tuple],
    progress: Callable[[int], None] | None,
) -> int:
    sql = f'INSERT INTO "{table}" VALUES ({", ".join("?" * width)})'
    batch, total = [], 0
    for row in rows:
        batch.append(row)
        if len(batch) >= BATCH:
            conn.executemany(sql, batch)
            total += len(batch)
            if progress:
                progress(len(batch))
            batch = []
    if batch:
        conn.executemany(sql, batch)
        total += len(batch)
        if progress:
            progress(len(batch))
    return total


def write_legacy(
    world: World, path: Path, progress: Callable[[int], None] | None = None
) -> dict[str, int]:
    """The legacy SQLite database; returns row counts per table."""
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute("PRAGMA synchronous = OFF")
    counts: dict[str, int] = {}
    quality_sources: list[dict[str, Any]] = []
    sentiment_sources: list[dict[str, Any]] = []

    def legacy_table(entity_name: str, rows: Iterable[dict[str, Any]]) -> None:
        entity = ENTITIES[entity_name]
        types = [
            _sqlite_renderer(entity_name, c, lambda: 0.0)[0] for c in _legacy_columns(entity_name)
        ]
        names = legacy_columns(entity_name)
        _create_table(conn, entity.legacy_table, names, types)
        cells = _legacy_table_rows(entity_name, rows, world.rng(f"sqlite-{entity_name}"))
        counts[entity.legacy_table] = _insert(
            conn, entity.legacy_table, len(names), cells, progress
        )
        conn.commit()

    def comments_collecting() -> Iterator[dict[str, Any]]:
        scorable = sum(t.comments[0] + t.comments[1] for t in world.tickets if t.legacy)
        public = sum(t.comments[0] for t in world.tickets if t.legacy)
        sel = world.rng("score-selection")
        q_pick = set(sel.sample(range(scorable), min(world.volumes.quality, scorable)))
        s_pick = set(sel.sample(range(public), min(world.volumes.sentiment, public)))
        k = p = 0
        for row in legacy_comment_rows(world):
            if _is_scorable(row):
                if k in q_pick:
                    quality_sources.append(row)
                k += 1
                if row["comment_type"] == "comments":
                    if p in s_pick:
                        sentiment_sources.append(row)
                    p += 1
            yield row

    sources = {
        "tickets": lambda: legacy_ticket_rows(world),
        "comments": comments_collecting,
        "timesheets": lambda: legacy_timesheet_rows(world),
        "comment_quality": lambda: quality_rows(world, quality_sources),
        "comment_sentiment": lambda: sentiment_rows(world, sentiment_sources),
        "roster": lambda: roster_rows(world),
    }
    for name in LEGACY_ORDER:
        legacy_table(name, sources[name]())
    _create_table(
        conn,
        "import_metadata",
        list(IMPORT_METADATA_COLUMNS),
        ["INTEGER", "TEXT", "TIMESTAMP", "TEXT", "INTEGER", "TEXT", "TEXT", "TEXT", "TEXT"],
    )
    by_entity = {name: counts[ENTITIES[name].legacy_table] for name in LEGACY_ORDER}
    counts["import_metadata"] = _insert(
        conn,
        "import_metadata",
        len(IMPORT_METADATA_COLUMNS),
        import_metadata_rows(world, by_entity),
        progress,
    )
    conn.commit()
    conn.close()
    return counts


# --- XLSX writing -----------------------------------------------------------------------------


class CellError(str):
    """An Excel error cell (``#N/A`` ...): written with t="e", as Excel does."""


STYLED_EMPTY = object()  # a formatted empty cell: what makes real exports thousands of columns wide
_STYLE = {dt.datetime: 1, dt.date: 2, dt.time: 3}
_CT = "application/vnd.openxmlformats-officedocument.spreadsheetml"
_NS = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
_RNS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PARTS = {
    "[Content_Types].xml": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        f'<Override PartName="/xl/workbook.xml" ContentType="{_CT}.sheet.main+xml"/>'
        f'<Override PartName="/xl/worksheets/sheet1.xml" ContentType="{_CT}.worksheet+xml"/>'
        f'<Override PartName="/xl/styles.xml" ContentType="{_CT}.styles+xml"/>'
        "</Types>"
    ),
    "_rels/.rels": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        f'<Relationship Id="rId1" Type="{_RNS}/officeDocument" Target="xl/workbook.xml"/>'
        "</Relationships>"
    ),
    "xl/_rels/workbook.xml.rels": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        f'<Relationship Id="rId1" Type="{_RNS}/worksheet" Target="worksheets/sheet1.xml"/>'
        f'<Relationship Id="rId2" Type="{_RNS}/styles" Target="styles.xml"/>'
        "</Relationships>"
    ),
    "xl/styles.xml": (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><styleSheet {_NS}>'
        '<numFmts count="1"><numFmt numFmtId="164" formatCode="yyyy-mm-dd hh:mm:ss"/></numFmts>'
        '<fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts>'
        '<fills count="2"><fill><patternFill patternType="none"/></fill>'
        '<fill><patternFill patternType="gray125"/></fill></fills>'
        '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
        '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
        '<cellXfs count="5"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
        '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
        '<xf numFmtId="14" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
        '<xf numFmtId="21" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
        '<xf numFmtId="49" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
        '</cellXfs><cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/>'
        "</cellStyles></styleSheet>"
    ),
}


def _column_letters(n: int) -> list[str]:
    out = []
    for i in range(n):
        s, k = "", i + 1
        while k:
            k, rem = divmod(k - 1, 26)
            s = chr(65 + rem) + s
        out.append(s)
    return out


_SPACE = frozenset(" \t\r\n")


def _xml_text(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _serial(v: dt.datetime) -> float:
    return (v - EXCEL_EPOCH).total_seconds() / 86400


def _member(name: str) -> zipfile.ZipInfo:
    """A zip member with a fixed timestamp, so the same seed gives byte-identical files."""
    info = zipfile.ZipInfo(name, date_time=(2025, 10, 26, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info._compresslevel = 1  # speed over size; ZipFile(compresslevel=) ignores ZipInfo members
    return info


class XlsxWriter:
    """Streams one sheet of rows into an .xlsx: header row first, cells typed by Python type."""

    def __init__(self, path: Path, sheet: str = "Export"):
        self.zf = zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1)
        for name, xml in _PARTS.items():
            self.zf.writestr(_member(name), xml)
        self.zf.writestr(
            _member("xl/workbook.xml"),
            f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><workbook {_NS} '
            f'xmlns:r="{_RNS}"><sheets><sheet name="{sheet}" sheetId="1" r:id="rId1"/>'
            "</sheets></workbook>",
        )
        self.fh = self.zf.open(_member("xl/worksheets/sheet1.xml"), "w", force_zip64=True)
        self.fh.write(
            f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><worksheet {_NS}>'
            "<sheetData>".encode()
        )
        self.letters = _column_letters(64)
        self.row = 0
        self.buffer: list[str] = []

    def append(self, values: list[Any]) -> None:
        """One row. A cell names its position (r=) only after a gap or when it is an error
        cell (the spec makes r optional; readers place unnamed cells after the previous one)."""
        self.row += 1
        r = self.row
        if len(values) > len(self.letters):
            self.letters = _column_letters(len(values))
        letters = self.letters
        parts = [f'<row r="{r}">']
        add = parts.append
        gap = False
        for i, v in enumerate(values):
            if v is None:
                gap = True
                continue
            ref = f' r="{letters[i]}{r}"' if gap else ""
            gap = False
            t = type(v)
            if t is str:
                if "&" in v or "<" in v or ">" in v:
                    v = _xml_text(v)
                if v and (v[0] in _SPACE or v[-1] in _SPACE or "\n" in v):
                    add(f'<c{ref} t="inlineStr"><is><t xml:space="preserve">{v}</t></is></c>')
                else:
                    add(f'<c{ref} t="inlineStr"><is><t>{v}</t></is></c>')
            elif t is int or t is float:
                add(f"<c{ref}><v>{v!r}</v></c>")
            elif t is dt.datetime:
                add(f'<c{ref} s="1"><v>{_serial(v)!r}</v></c>')
            elif t is dt.date:
                add(f'<c{ref} s="2"><v>{(v - EXCEL_EPOCH.date()).days}</v></c>')
            elif t is dt.time:
                frac = (v.hour * 3600 + v.minute * 60 + v.second) / 86400
                add(f'<c{ref} s="3"><v>{frac!r}</v></c>')
            elif t is bool:
                add(f'<c{ref} t="b"><v>{int(v)}</v></c>')
            elif t is CellError:
                add(f'<c r="{letters[i]}{r}" t="e"><v>{_xml_text(v)}</v></c>')
            elif v is STYLED_EMPTY:
                add(f'<c{ref} s="4"/>')
            else:
                raise TypeError(f"cannot write {t.__name__} to XLSX")
        add("</row>")
        self.buffer.append("".join(parts))
        if len(self.buffer) >= 2000:
            self.flush()

    def flush(self) -> None:
        self.fh.write("".join(self.buffer).encode())
        self.buffer = []

    def close(self) -> None:
        self.flush()
        self.fh.write(b"</sheetData></worksheet>")
        self.fh.close()
        self.zf.close()


# --- export rendering ---------------------------------------------------------------------------

_PLACEHOLDERS = ("--None--", "nan", "N/A", "None")


def _export_renderer(col: Column, rnd: Callable[[], float]) -> Renderer:
    """Typed value -> export cell, with the quirks of real exports at low rates.

    ``force`` (0, 1, 2) selects a quirk branch outright: the first data rows use it so every
    quirk is present in every file whatever the scale.
    """

    def empty(force: int | None) -> Any:
        if col.required:
            return None
        b = force if force is not None else _pick(rnd(), (0.0004, 0.004, 0.01))
        if b == 0:
            return CellError("#N/A")
        if b == 1:
            return _PLACEHOLDERS[int(rnd() * len(_PLACEHOLDERS))]
        return "" if b == 2 else None

    if col.kind in (BIGINT, INT):

        def ident(v, force):
            if v is None or isinstance(v, str):
                return v
            b = force if force is not None else _pick(rnd(), (0.03, 0.06))
            return float(v) if b == 0 else (str(v) if b == 1 else v)

        return ident
    if col.kind == TIMESTAMP:

        def stamp(v, force):
            if v is None:
                return empty(force)
            b = force if force is not None else _pick(rnd(), (0.01, 0.02, 0.03))
            if b == 0:
                return _serial(v)
            if b == 1:
                return _dayfirst(v)
            return v.isoformat(" ") if b == 2 else v

        return stamp
    if col.kind == DATE:

        def day(v, force):
            if v is None:
                return None
            b = force if force is not None else _pick(rnd(), (0.02, 0.06))
            if b == 0:
                return (v - EXCEL_EPOCH.date()).days
            return v if b == 1 else _dayfirst_date(v)

        return day
    if col.kind == TIME:

        def clock(v, force):
            if v is None:
                return None
            b = force if force is not None else _pick(rnd(), (0.02, 0.04))
            if b == 0:
                return (v.hour * 3600 + v.minute * 60) / 86400
            if b == 1:
                return f"{(v.hour - 1) % 12 + 1}:{v.minute:02d} {'AM' if v.hour < 12 else 'PM'}"
            return v

        return clock

    def text(v, force):
        return empty(force) if v is None else v

    text.empty_only = True  # only empty values change: filled cells skip the call
    return text


def _render_export(
    entity_name: str, rows: Iterable[dict[str, Any]], rng: Random
) -> Iterator[tuple[dict[str, Any], list[Any]]]:
    columns = ENTITIES[entity_name].columns
    renderers: list[Renderer | None] = [_export_renderer(c, rng.random) for c in columns]
    return _render(rows, [c.field for c in columns], renderers, 3)


def _with_accidents(
    entity_name: str,
    rows: Iterable[dict[str, Any]],
    rng: Random,
    stale: Callable[[dict[str, Any]], dict[str, Any]] | None,
    rejects: list[Callable[[dict[str, Any]], dict[str, Any]]],
) -> Iterator[dict[str, Any]]:
    """Duplicate keys (a stale copy first, the current row last) and a few rejectable rows."""
    tail: list[dict[str, Any]] = []
    last = None
    for i, row in enumerate(rows):
        last = row
        if stale is not None and (i == 4 or rng.random() < 0.002):
            yield stale(dict(row))
            tail.append(row)
            continue
        yield row
    if last is not None:
        for make in rejects:
            yield make(dict(last))
    yield from tail


def _stale_ticket(row: dict[str, Any]) -> dict[str, Any]:
    row["status"] = "In Progress"
    row["modified_at"] = row["created_at"] + dt.timedelta(minutes=7)
    return row


def _stale_comment(row: dict[str, Any]) -> dict[str, Any]:
    row["text"] = row["text"][:40] + " [draft]"
    return row


def _set(**changes: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def apply(row: dict[str, Any]) -> dict[str, Any]:
        row.update(changes)
        return row

    return apply


def write_exports(
    world: World, folder: Path, progress: Callable[[int], None] | None = None
) -> dict[str, int]:
    """tickets.xlsx, comments.xlsx (+ comments.csv) and timesheets.xlsx; rows per file."""
    folder.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}

    def write(
        entity_name: str,
        file_name: str,
        rows: Iterable[dict[str, Any]],
        extra_header: list[Any] | None = None,
        extra_cell: Callable[[dict[str, Any]], Any] | None = None,
        csv_path: Path | None = None,
    ) -> None:
        headers = [c.header for c in ENTITIES[entity_name].columns]
        xlsx = XlsxWriter(folder / file_name)
        xlsx.append(headers + (extra_header or []))
        csv_file = csv_path.open("w", encoding="utf-8-sig", newline="") if csv_path else None
        writer = csv.writer(csv_file) if csv_file else None
        if writer:
            writer.writerow(headers)
        n = 0
        for row, cells in _render_export(entity_name, rows, world.rng(f"xlsx-{entity_name}")):
            if extra_cell:
                cells.append(extra_cell(row))
            xlsx.append(cells)
            if writer:
                writer.writerow([_csv_cell(c) for c in cells])
            n += 1
            if progress and n % BATCH == 0:
                progress(BATCH)
        if progress:
            progress(n % BATCH)
        xlsx.close()
        if csv_file:
            csv_file.close()
        counts[file_name] = n
        if csv_path:
            counts[csv_path.name] = n

    acc = world.rng("accidents")
    write(
        "tickets",
        "tickets.xlsx",
        _with_accidents(
            "tickets",
            export_ticket_rows(world),
            acc,
            _stale_ticket,
            [_set(ticket_id=None), _set(ticket_id="TKT-5503")],
        ),
    )
    trailing = [STYLED_EMPTY] * 150 + [""] * 150  # the empty column area after the headers
    write(
        "comments",
        "comments.xlsx",
        _with_accidents(
            "comments",
            export_comment_rows(world),
            acc,
            _stale_comment,
            [_set(comment_id="abc"), _set(created_at=None)],
        ),
        extra_header=trailing,
        csv_path=folder / "comments.csv",
    )
    write(
        "timesheets",
        "timesheets.xlsx",
        _with_accidents(
            "timesheets",
            export_timesheet_rows(world),
            acc,
            None,
            [_set(hours=-1.5), _set(work_date=None)],
        ),
        extra_header=["TS-Approval Status"],  # the 22nd column some exports carry
        extra_cell=lambda row: "Approved" if row["hours"] and row["hours"] > 0 else "Pending",
    )
    return counts


def _csv_cell(cell: Any) -> Any:
    if cell is None or cell is STYLED_EMPTY:
        return ""
    if isinstance(cell, dt.datetime):
        return cell.isoformat(" ")
    return cell


# --- entry point -----------------------------------------------------------------------------


@dataclass
class DemoResult:
    legacy_path: Path
    legacy_counts: dict[str, int]
    export_dir: Path | None
    export_counts: dict[str, int]


def estimated_rows(scale: float, exports: bool = True) -> int:
    """Rows the generator will write (for a progress bar)."""
    vol = volumes(scale)
    legacy = vol.tickets + vol.comments + vol.timesheets + vol.quality + vol.sentiment + 64
    return round(legacy * (1.55 if exports else 1.0))


def generate(
    out: Path,
    scale: float = 1.0,
    seed: int = 42,
    exports: bool = True,
    progress: Callable[[int], None] | None = None,
) -> DemoResult:
    """Write DIR/legacy.sqlite3 and (unless ``exports`` is false) DIR/exports/*.

    The files are written beside, then moved into place once all are complete: a run stopped
    half-way (Ctrl-C, a full disk) leaves the previous files as they were, never a truncated
    database or CSV that would load as if it were the whole data set.
    """
    out.mkdir(parents=True, exist_ok=True)
    world = build_world(seed, scale)
    partial = Path(tempfile.mkdtemp(prefix=".partial-", dir=out))
    try:
        legacy_counts = write_legacy(world, partial / "legacy.sqlite3", progress)
        export_dir, export_counts = None, {}
        if exports:
            export_counts = write_exports(world, partial / "exports", progress)
        legacy_path = out / "legacy.sqlite3"
        os.replace(partial / "legacy.sqlite3", legacy_path)
        if exports:
            export_dir = out / "exports"
            export_dir.mkdir(exist_ok=True)
            for written in sorted((partial / "exports").iterdir()):
                os.replace(written, export_dir / written.name)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return DemoResult(legacy_path, legacy_counts, export_dir, export_counts)
