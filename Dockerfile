# One image for the web (gunicorn), worker (celery) and beat services, and the one-shot
# `init` (migrate + read-only role) and `certs` steps of docker-compose.yml.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# postgresql-client 15 matches the db service (pg_dump/pg_restore for backups and drills);
# openssl makes the self-signed certificate on first use.
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client openssl \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# Runtime requirements only (everything above the "# Development" line).
COPY requirements.txt /tmp/requirements.txt
RUN sed '/^# Development/,$d' /tmp/requirements.txt > /tmp/runtime.txt \
    && pip install -r /tmp/runtime.txt \
    && rm /tmp/requirements.txt /tmp/runtime.txt

COPY . /app

# Group 0 owns the writable paths (OpenShift-style), and shares the TLS key with Grafana.
RUN useradd --uid 1000 --gid 0 --home-dir /app --no-create-home --shell /usr/sbin/nologin app \
    && mkdir -p /data/uploads /data/backups /data/media /data/dashboards /app/staticfiles /tls \
    && DJANGO_DEBUG=true STATIC_ROOT=/app/staticfiles python manage.py collectstatic --noinput -v0 \
    && chown -R app:0 /data /tls \
    && chmod -R g=u /data

ENV IMPORT_ARCHIVE_DIR=/data/uploads \
    GRAFANA_DASHBOARDS_DIR=/data/dashboards \
    BACKUP_DIR=/data/backups \
    MEDIA_ROOT=/data/media \
    STATIC_ROOT=/app/staticfiles

USER app
EXPOSE 8000
ENTRYPOINT ["/app/docker/entrypoint.sh"]
CMD ["web"]
