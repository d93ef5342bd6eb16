"""Settings read from the environment as a user writes it in .env."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from django.conf import settings


def test_host_lists_written_with_spaces_after_commas_are_honoured() -> None:
    """ "a.example, b.example" made " b.example", which Django never matches (HTTP 400)."""
    env = {
        **os.environ,
        "DJANGO_READ_DOT_ENV": "false",
        "DJANGO_ALLOWED_HOSTS": " sd.example.com , localhost,",
        "DJANGO_CSRF_TRUSTED_ORIGINS": "https://sd.example.com, https://other.example",
    }
    code = (
        "import django, json; django.setup(); from django.conf import settings as s; "
        "print(json.dumps([s.ALLOWED_HOSTS, s.CSRF_TRUSTED_ORIGINS]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=settings.BASE_DIR,
        env={**env, "DJANGO_SETTINGS_MODULE": "servicedesk.settings"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    hosts, origins = json.loads(out)
    assert hosts == ["sd.example.com", "localhost"]
    assert origins == ["https://sd.example.com", "https://other.example"]
