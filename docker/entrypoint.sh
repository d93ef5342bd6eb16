#!/bin/sh
# One image, several roles (docker-compose.yml): init | web | worker | beat | manage ARGS...
set -eu
cd /app

case "${1:-web}" in
  init)
    # Schema first, then the dashboards for this deployment's TIME_ZONE (months and periods are
    # cut there; the committed ones are built for UTC) into the volume Grafana reads, then the
    # read-only role's grants on the (re)created views.
    python manage.py migrate --noinput
    python manage.py build_dashboards --out "${GRAFANA_DASHBOARDS_DIR:-/data/dashboards}"
    exec python manage.py create_readonly_role
    ;;
  web)
    exec gunicorn --config docker/gunicorn.conf.py servicedesk.wsgi:application
    ;;
  worker)
    exec celery -A servicedesk worker --loglevel "${CELERY_LOG_LEVEL:-info}" \
      --concurrency "${CELERY_CONCURRENCY:-2}"
    ;;
  beat)
    exec celery -A servicedesk beat --loglevel "${CELERY_LOG_LEVEL:-info}" \
      --schedule /tmp/celerybeat-schedule --pidfile=
    ;;
  manage)
    shift
    exec python manage.py "$@"
    ;;
  *)
    exec "$@"
    ;;
esac
