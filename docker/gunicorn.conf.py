"""Gunicorn settings of the compose `web` service: HTTPS with the certificate of `make certs`.

Everything is overridable from the environment. Set TLS_CERT_FILE="" to serve plain HTTP
behind a TLS-terminating proxy (then keep SECURE_PROXY_SSL_HEADER's X-Forwarded-Proto).
"""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", min(4, multiprocessing.cpu_count() * 2 + 1)))
threads = int(os.environ.get("GUNICORN_THREADS", "2"))
# Large uploads (IMPORT_MAX_UPLOAD_MB) stream through a worker; imports themselves run in Celery.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "300"))
graceful_timeout = 30
keepalive = 5
max_requests = 1000
max_requests_jitter = 100
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None

certfile = os.environ.get("TLS_CERT_FILE", "/tls/server.crt") or None
keyfile = os.environ.get("TLS_KEY_FILE", "/tls/server.key") or None

accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
