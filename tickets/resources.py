"""django-import-export resources generated from the column registry.

Exports use the source headers and values the pipeline reads back, so an exported sheet can be
re-imported. Import resources (the roster, and the benchmark's ModelResource comparison) convert
values with the same registry parsers as the pipeline.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Any

from django.apps import apps
from django.utils import timezone
from import_export import fields, resources, widgets

from tickets import values as v
from tickets.columns import ENTITIES, Column, Entity
from tickets.staging import derived_values

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class RegistryWidget(widgets.Widget):
    """One registry column: parse like the pipeline, render what the pipeline reads back."""

    def __init__(self, column: Column):
        super().__init__()
        self.column = column

    def clean(self, value: Any, row: Any = None, **kwargs: Any) -> Any:
        try:
            return self.column.parser(value).value
        except v.InvalidValue as exc:
            raise ValueError(f"{self.column.header}: {exc.reason}") from None

    def render(self, value: Any, obj: Any = None, **kwargs: Any) -> Any:
        if value is None:
            return ""
        if isinstance(value, bool):
            return "Yes" if value else "No"
        if isinstance(value, datetime):
            local = timezone.localtime(value, timezone.get_default_timezone())
            return local.replace(tzinfo=None).isoformat(sep=" ", timespec="seconds")
        if isinstance(value, Decimal):
            return format(value, "f")
        if isinstance(value, str):
            # A text cell like "+1+2" or "@SUM(A1)" would run as a formula in Excel (CSV and
            # XLSX alike): written with the text prefix, as the issue report does.
            return "'" + value if value.startswith(FORMULA_START) else value
        return str(value)


class PassThroughWidget(widgets.Widget):
    """A derived value already computed in before_import_row."""

    def clean(self, value: Any, row: Any = None, **kwargs: Any) -> Any:
        return value

    def render(self, value: Any, obj: Any = None, **kwargs: Any) -> Any:
        return "" if value is None else str(value)


def _model(entity: Entity):
    return apps.get_model(entity.model_name)


def _column_fields(entity: Entity) -> dict[str, fields.Field]:
    return {
        c.field: fields.Field(attribute=c.field, column_name=c.header, widget=RegistryWidget(c))
        for c in entity.columns
    }


@cache
def export_resource(entity_name: str) -> type[resources.ModelResource]:
    """Source columns only, headed like the ticket system's export."""
    entity = ENTITIES[entity_name]
    names = tuple(c.field for c in entity.columns)
    meta = type("Meta", (), {"model": _model(entity), "fields": names, "export_order": names})
    attrs: dict[str, Any] = {**_column_fields(entity), "Meta": meta}
    return type(f"{entity.name.title().replace('_', '')}ExportResource", (_Base,), attrs)


@cache
def import_resource(entity_name: str) -> type[resources.ModelResource]:
    """Upsert by natural key with the registry parsers and derived fields (roster, benchmark)."""
    entity = ENTITIES[entity_name]
    attrs: dict[str, Any] = _column_fields(entity)
    for d in entity.derived:
        attrs[d.name] = fields.Field(
            attribute=d.name, column_name=d.name, widget=PassThroughWidget()
        )
    names = tuple(attrs)
    meta = type(
        "Meta",
        (),
        {
            "model": _model(entity),
            "fields": names,
            "import_id_fields": (entity.key,),
            "skip_unchanged": True,
            "report_skipped": False,
        },
    )
    attrs.update({"Meta": meta, "entity": entity})
    return type(f"{entity.name.title().replace('_', '')}ImportResource", (_ImportBase,), attrs)


class _Base(resources.ModelResource):
    pass


class _ImportBase(resources.ModelResource):
    entity: Entity

    def before_import(self, dataset: Any, **kwargs: Any) -> None:
        """Room for the derived columns: import-export only reads keys the dataset has."""
        for d in self.entity.derived:
            if d.name not in (dataset.headers or []):
                dataset.append_col([None] * len(dataset), header=d.name)

    def before_import_row(self, row: Any, **kwargs: Any) -> None:
        """Derived fields (timesheet fingerprint, comment visibility) by the pipeline's SQL."""
        if not self.entity.derived:
            return
        typed: dict[str, Any] = {}
        for c in self.entity.columns:
            try:
                typed[c.field] = c.parser(row.get(c.header)).value
            except v.InvalidValue:
                typed[c.field] = None
        row.update(derived_values(self.entity, typed))


RosterResource = import_resource("roster")
