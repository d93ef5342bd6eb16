"""Settings for servicedesk, read from the environment (and `.env`) with django-environ.

Development defaults exist only when DJANGO_DEBUG is true; with DEBUG off every secret must be
provided (directly or via a `*_FILE` variable pointing at a Docker secret).
"""

from pathlib import Path

import environ
from celery.schedules import crontab

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.FileAwareEnv(
    DJANGO_DEBUG=(bool, False),
)
# A container gets its whole environment from compose; DJANGO_READ_DOT_ENV=false makes sure a
# stray .env in the working directory cannot supply secrets the environment lacks.
if env.bool("DJANGO_READ_DOT_ENV", default=True):
    environ.FileAwareEnv.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DJANGO_DEBUG", default=False)

if DEBUG:
    SECRET_KEY = env("DJANGO_SECRET_KEY", default="dev-only-insecure-key-do-not-use-in-production")
else:
    SECRET_KEY = env("DJANGO_SECRET_KEY")  # no default: production must set it

# Stripped: "a.example, b.example" in .env must not make " b.example" (never matched).
ALLOWED_HOSTS = [
    h.strip()
    for h in env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1"] if DEBUG else [])
    if h.strip()
]
CSRF_TRUSTED_ORIGINS = [
    o.strip() for o in env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[]) if o.strip()
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "import_export",
    "health_check",  # /health/ view and its template (ops/health.py adds our checks)
    "tickets",
    "metrics",
    "ops",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Serves the admin's static files from gunicorn (no separate web server in the stack).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "servicedesk.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "servicedesk.wsgi.application"

DATABASES = {
    "default": env.db(
        "DATABASE_URL",
        default="postgres://postgres@127.0.0.1:5432/servicedesk" if DEBUG else environ.Env.NOTSET,
    )
}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/0" if DEBUG else environ.Env.NOTSET)
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-gb"
TIME_ZONE = env("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=str(BASE_DIR / "var" / "static"))
MEDIA_ROOT = env.path("MEDIA_ROOT", default=str(BASE_DIR / "var" / "media"))

# --- Security (production) ---------------------------------------------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# --- Celery ---------------------------------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = None  # ImportRun / Backup rows are the system of record
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=3 * 3600)
CELERY_TASK_SOFT_TIME_LIMIT = CELERY_TASK_TIME_LIMIT - 60
# Longer than the longest task, or Redis redelivers a running import to a second worker.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_TASK_TIME_LIMIT + 3600}
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_BEAT_SCHEDULE = {
    "daily-backup": {"task": "ops.tasks.backup_task", "schedule": crontab(hour=2, minute=0)},
    "weekly-restore-drill": {
        "task": "ops.tasks.restore_drill_task",
        "schedule": crontab(hour=3, minute=0, day_of_week=0),
    },
    "health-snapshot": {"task": "ops.tasks.health_snapshot_task", "schedule": 300.0},
    # Grafana reads the fact tables: rebuild them soon after a settings change or a crash.
    "refresh-stale-facts": {"task": "metrics.tasks.refresh_stale_facts_task", "schedule": 60.0},
    "nightly-benchmark": {
        "task": "ops.tasks.benchmark_task",
        "schedule": crontab(hour=4, minute=0),
    },
}

# --- Import ---------------------------------------------------------------------------------
SOURCE_TIME_ZONE = env("SOURCE_TIME_ZONE", default="UTC")
DATE_DAY_FIRST = env.bool("DATE_DAY_FIRST", default=True)
IMPORT_MAX_REJECT_RATE = env.float("IMPORT_MAX_REJECT_RATE", default=0.05)
IMPORT_MAX_UPLOAD_MB = env.int("IMPORT_MAX_UPLOAD_MB", default=500)
IMPORT_MAX_ROWS = env.int("IMPORT_MAX_ROWS", default=2_000_000)
# A zip member expanding beyond this many bytes is treated as a zip bomb.
IMPORT_MAX_UNCOMPRESSED_MB = env.int("IMPORT_MAX_UNCOMPRESSED_MB", default=4096)
IMPORT_BATCH_ROWS = env.int("IMPORT_BATCH_ROWS", default=5000)
# Database connections that type raw cells in parallel during one load (1 = the run's own only).
IMPORT_TYPING_CONNECTIONS = env.int("IMPORT_TYPING_CONNECTIONS", default=2)
# migrate_legacy can load comments, timesheets etc. in this many processes after the tickets.
# Default 1: on 2 cores two workers saved 1 s of 16 s at 1x and cost about 120 MB more.
LEGACY_LOAD_WORKERS = env.int("LEGACY_LOAD_WORKERS", default=1)
TIMESHEET_WINDOW_REPLACE = env.bool("TIMESHEET_WINDOW_REPLACE", default=True)
# A timesheet file that would delete more than this share of the stored entries in its window
# (one mistyped year stretches the window) is refused; 1 turns the check off.
TIMESHEET_MAX_DELETE_RATE = env.float("TIMESHEET_MAX_DELETE_RATE", default=0.5)
IMPORT_ARCHIVE_DIR = env.path("IMPORT_ARCHIVE_DIR", default=str(BASE_DIR / "var" / "uploads"))
BACKUP_BEFORE_DESTRUCTIVE_IMPORT = env.bool("BACKUP_BEFORE_DESTRUCTIVE_IMPORT", default=False)
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
# -- Admin imports as Celery tasks (tickets/imports.py, tickets/tasks.py) --
# A running import whose heartbeat is older than this is a dead worker: marked failed, retryable.
IMPORT_STALE_AFTER_S = env.int("IMPORT_STALE_AFTER_S", default=120)
IMPORT_EXPORT_ESCAPE_FORMULAE_ON_EXPORT = True  # no =CMD() injection into spreadsheets
IMPORT_EXPORT_IMPORT_PERMISSION_CODE = "add"  # roster import needs tickets.add_teammember
IMPORT_EXPORT_EXPORT_PERMISSION_CODE = "view"
IMPORT_EXPORT_SKIP_ADMIN_LOG = True  # a roster import must not write one LogEntry per row
CELERY_BEAT_SCHEDULE["fail-stale-import-runs"] = {
    "task": "tickets.tasks.fail_stale_runs_task",
    "schedule": 60.0,
}
# A run still queued after this long whose message the broker no longer holds (Redis lost it)
# is published again by beat.
IMPORT_REQUEUE_AFTER_S = env.int("IMPORT_REQUEUE_AFTER_S", default=120)
CELERY_BEAT_SCHEDULE["requeue-lost-import-runs"] = {
    "task": "tickets.tasks.requeue_lost_runs_task",
    "schedule": 60.0,
}
# -- end admin imports --

# --- Metrics --------------------------------------------------------------------------------
CLOSED_STATUSES = env.list("CLOSED_STATUSES", default=["Closed", "Resolved"])
AUTOMATION_USERS = env.list("AUTOMATION_USERS", default=["brian"])
MIN_TEAM_SAMPLE = env.int("MIN_TEAM_SAMPLE", default=50)
SUPPORT_CATEGORY = env("SUPPORT_CATEGORY", default="Support Tickets")
# Root-cause audits (3.6): tickets sampled per category by the ticket admin action.
ROOT_CAUSE_AUDIT_SAMPLE = env.int("ROOT_CAUSE_AUDIT_SAMPLE", default=5)

# --- Operations -----------------------------------------------------------------------------
BACKUP_DIR = env.path("BACKUP_DIR", default=str(BASE_DIR / "var" / "backups"))
BACKUP_KEEP_COUNT = env.int("BACKUP_KEEP_COUNT", default=14)
BACKUP_KEEP_DAYS = env.int("BACKUP_KEEP_DAYS", default=30)

# --- Health and freshness (ops/health.py) ----------------------------------------------------
# Age (hours) at which the last success turns a freshness check warning / critical. Imports
# arrive weekly or monthly; backups and benchmarks run nightly; drills weekly.
HEALTH_IMPORT_WARN_HOURS = env.float("HEALTH_IMPORT_WARN_HOURS", default=8 * 24)
HEALTH_IMPORT_CRIT_HOURS = env.float("HEALTH_IMPORT_CRIT_HOURS", default=35 * 24)
HEALTH_BACKUP_WARN_HOURS = env.float("HEALTH_BACKUP_WARN_HOURS", default=26)
HEALTH_BACKUP_CRIT_HOURS = env.float("HEALTH_BACKUP_CRIT_HOURS", default=50)
HEALTH_DRILL_WARN_HOURS = env.float("HEALTH_DRILL_WARN_HOURS", default=8 * 24)
HEALTH_DRILL_CRIT_HOURS = env.float("HEALTH_DRILL_CRIT_HOURS", default=15 * 24)
HEALTH_BENCHMARK_WARN_HOURS = env.float("HEALTH_BENCHMARK_WARN_HOURS", default=26)
HEALTH_BENCHMARK_CRIT_HOURS = env.float("HEALTH_BENCHMARK_CRIT_HOURS", default=74)
# p95 budget per metric (ms) of benchmark_metrics when --budget-ms is not given (the nightly
# run): SPEC §9 asks every metric p95 <= 100 ms. 0 turns the check off.
BENCHMARK_BUDGET_MS = env.float("BENCHMARK_BUDGET_MS", default=100.0)
# Free space on the BACKUP_DIR file system, percent, below which disk is warning / critical.
HEALTH_DISK_WARN_FREE_PERCENT = env.float("HEALTH_DISK_WARN_FREE_PERCENT", default=15)
HEALTH_DISK_CRIT_FREE_PERCENT = env.float("HEALTH_DISK_CRIT_FREE_PERCENT", default=5)
HEALTH_CELERY_TIMEOUT_S = env.float("HEALTH_CELERY_TIMEOUT_S", default=1.0)
HEALTH_SNAPSHOT_KEEP_DAYS = env.int("HEALTH_SNAPSHOT_KEEP_DAYS", default=90)
# Container and load-balancer probes call /health/ over plain HTTP inside the network.
SECURE_REDIRECT_EXEMPT = [r"^health/$"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="WARNING")},
}
