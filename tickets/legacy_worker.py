"""Entry points of migrate_legacy's worker processes.

Kept free of Django imports at module level: a spawned process unpickles these functions
before Django is set up, and `init` is what sets it up (on the parent's database).
"""

from __future__ import annotations

import os
from typing import Any


def init(db_settings: dict[str, Any], context: dict[str, Any]) -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "servicedesk.settings")
    django.setup()
    from django.db import connections

    from tickets import legacy
    from tickets.progress import Bars

    connections["default"].settings_dict.update(db_settings)  # tests use a test database
    legacy._CHILD_CONTEXT.update(context)
    if context.get("progress"):
        legacy._CHILD_CONTEXT["progress_for"] = Bars().callback


def load(table_name: str, entity_name: str) -> Any:
    from tickets import legacy

    return legacy.load_in_child(table_name, entity_name)
