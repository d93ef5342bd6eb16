"""The admin is the application: warehouse browsing, exports, and imports as queued runs.

Imports: Upload -> archived by sha256 -> queued dry run (Celery) -> preview -> Confirm queues
the real run -> progress polled as JSON -> outcome and report. Logic lives in tickets.imports.
"""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Iterator
from typing import Any
from uuid import uuid4

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.db import models, transaction
from django.db.models import Q
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.text import smart_split, unescape_string_literal
from import_export.admin import ExportActionMixin, ImportExportModelAdmin
from import_export.formats import base_formats
from import_export.signals import post_export
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

from tickets import audits, imports
from tickets import values as v
from tickets.columns import ENTITIES
from tickets.models import (
    Comment,
    CommentQuality,
    CommentSentiment,
    ImportIssue,
    ImportRun,
    RootCauseAudit,
    TeamMember,
    Ticket,
    TimesheetEntry,
)
from tickets.pipeline import mark_derived_stale
from tickets.resources import FORMULA_START, RosterResource, export_resource
from tickets.staging import ISSUE_COLUMNS

IMPORT_PERMISSION = "tickets.add_importrun"
REPORT_FIELDS = ISSUE_COLUMNS  # the report shows every stored column of an issue
PREVIEW_ISSUES = 20


def can_import(request: HttpRequest) -> bool:
    return (
        request.user.is_active
        and request.user.is_staff
        and request.user.has_perm(IMPORT_PERMISSION)
    )


# --- upload ------------------------------------------------------------------------------------


class UploadForm(forms.Form):
    # Empty files are accepted here so the run reports why, like every other bad file.
    file = forms.FileField(
        allow_empty_file=True,
        help_text="The ticket system's XLSX or CSV export, or the legacy SQLite database.",
    )
    entity = forms.ChoiceField(
        required=False,
        choices=[("", "Detect from the header row")] + [(name, name) for name in ENTITIES],
        help_text="Ignored for a SQLite database (every legacy table is loaded).",
    )

    def clean_file(self) -> Any:
        uploaded = self.cleaned_data["file"]
        if uploaded.size > imports.max_upload_bytes():
            raise forms.ValidationError(imports._too_large_message(uploaded.size))
        return uploaded


# --- report ------------------------------------------------------------------------------------


def _safe_cell(value: Any) -> Any:
    """Raw values come from uploaded files: never let a spreadsheet run them as formulas."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def _xml_safe(value: Any) -> Any:
    """Control characters an XLSX cannot hold (a raw value may carry them) shown as \\xNN."""
    if isinstance(value, str):
        return ILLEGAL_CHARACTERS_RE.sub(lambda m: f"\\x{ord(m.group()):02x}", value)
    return value


def report_rows(run: ImportRun) -> Iterator[tuple]:
    issues = (
        ImportIssue.objects.filter(run_id__in=imports.report_run_ids(run))
        .order_by("run_id", "row_number", "id")
        .values_list(*REPORT_FIELDS)
    )
    for row in issues.iterator(chunk_size=5000):
        yield tuple(_safe_cell(value) for value in row)


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_streaming_response(
    headers: list[str], rows: Iterator, filename: str, *, bom: bool = True
) -> StreamingHttpResponse:
    """Rows written as they are read: memory stays flat whatever the number of rows."""
    writer = csv.writer(_Echo())

    def lines() -> Iterator[str]:
        yield ("\ufeff" if bom else "") + writer.writerow(headers)
        for row in rows:
            yield writer.writerow(row)

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def xlsx_file_response(
    headers: list[str], rows: Iterator, filename: str, *, sheet_name: str
) -> FileResponse:
    """openpyxl write-only mode keeps memory flat; the workbook is spooled to a temp file."""
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(sheet_name)
    sheet.append(list(headers))
    for row in rows:
        sheet.append([_xml_safe(value) for value in row])
    tmp = tempfile.TemporaryFile()
    workbook.save(tmp)
    tmp.seek(0)
    return FileResponse(
        tmp,
        as_attachment=True,
        filename=filename,
        content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    )


def report_csv_response(run: ImportRun) -> StreamingHttpResponse:
    return csv_streaming_response(
        list(REPORT_FIELDS), report_rows(run), f"import-run-{run.pk}-issues.csv"
    )


def report_xlsx_response(run: ImportRun) -> FileResponse:
    return xlsx_file_response(
        list(REPORT_FIELDS),
        report_rows(run),
        f"import-run-{run.pk}-issues.xlsx",
        sheet_name="issues",
    )


# --- ImportRun -----------------------------------------------------------------------------------


@admin.register(ImportRun)
class ImportRunAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "created_at",
        "entity",
        "file_name",
        "status_badge",
        "dry_run",
        "rows_read",
        "rows_inserted",
        "rows_updated",
        "rows_deleted",
        "rows_rejected",
        "created_by",
    )
    list_filter = ("status", "entity", "dry_run", "source_kind")
    list_select_related = ("created_by",)
    search_fields = ("=id", "file_name", "=file_sha256")
    date_hierarchy = "created_at"
    show_full_result_count = False
    change_list_template = "admin/tickets/importrun/change_list.html"

    @admin.display(description="status", ordering="status")
    def status_badge(self, run: ImportRun) -> str:
        label = f"{run.status} (preview)" if run.dry_run and run.status != "queued" else run.status
        return format_html('<span class="import-status import-{}">{}</span>', run.status, label)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # runs are records; the run page replaces the change form

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Only runs that wrote nothing: previews, failed and cancelled runs. A succeeded run is
        the lineage of the rows it loaded (inserted_run / changed_run carry no constraint, so
        deleting it left them pointing at nothing) and its issues are its report."""
        if obj is not None and not self.writes_nothing(obj):
            return False
        return super().has_delete_permission(request, obj)

    @staticmethod
    def writes_nothing(run: ImportRun) -> bool:
        return run.dry_run or run.status in (ImportRun.Status.FAILED, ImportRun.Status.CANCELLED)

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> tuple:
        """The runs and how many issues go with them: Django's page listed every issue (a
        preview with 99,750 issues: 8 s and an 11 MB page)."""
        runs = list(objs)
        refused = [r for r in runs if not self.has_delete_permission(request, r)]
        issues = ImportIssue.objects.filter(run__in=runs).count()
        listed = [str(r) for r in runs]
        if issues:
            listed.append(f"{issues} import issues of these runs")
        counts = {ImportRun._meta.verbose_name_plural: len(runs)}
        if issues:
            counts[ImportIssue._meta.verbose_name_plural] = issues
        perms_needed = {f"{ImportRun._meta.verbose_name}: {r}" for r in refused}
        return listed, counts, perms_needed, []

    def get_urls(self) -> list:
        wrap = self.admin_site.admin_view
        return [
            path("upload/", wrap(self.upload_view), name="tickets_importrun_upload"),
            path("<int:pk>/run/", wrap(self.run_view), name="tickets_importrun_run"),
            path("<int:pk>/progress/", wrap(self.progress_view), name="tickets_importrun_progress"),
            path("<int:pk>/confirm/", wrap(self.confirm_view), name="tickets_importrun_confirm"),
            path("<int:pk>/cancel/", wrap(self.cancel_view), name="tickets_importrun_cancel"),
            path("<int:pk>/retry/", wrap(self.retry_view), name="tickets_importrun_retry"),
            path(
                "<int:pk>/report.<str:fmt>",
                wrap(self.report_view),
                name="tickets_importrun_report",
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> Any:
        imports.fail_stale_runs()
        extra_context = {**(extra_context or {}), "can_import": can_import(request)}
        return super().changelist_view(request, extra_context)

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None) -> Any:
        return redirect("admin:tickets_importrun_upload")

    def change_view(self, request: HttpRequest, object_id: str, *args: Any, **kwargs: Any) -> Any:
        return redirect("admin:tickets_importrun_run", pk=object_id)

    # -- views --

    def _run(self, request: HttpRequest, pk: int) -> ImportRun:
        # Whoever may import may follow the runs (the upload lands on the run page).
        if not (self.has_view_permission(request) or can_import(request)):
            raise PermissionDenied
        return get_object_or_404(ImportRun, pk=pk)

    def _require_import(self, request: HttpRequest) -> None:
        if not can_import(request):
            raise PermissionDenied

    def upload_view(self, request: HttpRequest) -> HttpResponse:
        self._require_import(request)
        if request.method == "POST":
            form = UploadForm(request.POST, request.FILES)
            if form.is_valid():
                uploaded = form.cleaned_data["file"]
                try:
                    archived, sha = imports.archive_upload(uploaded)
                except imports.UploadTooLarge as exc:
                    form.add_error("file", str(exc))
                else:
                    run = imports.create_run(
                        archived,
                        sha,
                        uploaded.name,
                        user=request.user,
                        entity=form.cleaned_data["entity"],
                        dry_run=True,
                    )
                    messages.info(request, f"Upload archived; preview run #{run.pk} queued.")
                    return redirect("admin:tickets_importrun_run", pk=run.pk)
            status = 413 if "file" in form.errors and "upload limit" in str(form.errors) else 400
        else:
            form = UploadForm(initial={"entity": request.GET.get("entity", "")})
            status = 200
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Upload export",
            "form": form,
            "max_mb": imports.max_upload_bytes() // 2**20,
        }
        return TemplateResponse(
            request, "admin/tickets/importrun/upload.html", context, status=status
        )

    def run_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        run = self._run(request, pk)
        if imports.fail_stale_runs(run.pk):
            run.refresh_from_db()
        issues = list(
            ImportIssue.objects.filter(run_id__in=imports.report_run_ids(run)).order_by(
                "run_id", "row_number", "id"
            )[:PREVIEW_ISSUES]
        )
        confirmed = imports.confirmed_as(run)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Import run #{run.pk}",
            "run": run,
            "issues": issues,
            "children": imports.child_runs(run),
            "confirmed_as": confirmed,
            "retried_as": imports.retried_as(run),
            "kept": imports.kept_tables(run) if run.status == ImportRun.Status.FAILED else [],
            "can_import": can_import(request),
            "active": run.status in imports.ACTIVE,
            "snapshot": imports.progress_snapshot(run),
            "issue_count_capped": len(issues) >= PREVIEW_ISSUES,
        }
        return TemplateResponse(request, "admin/tickets/importrun/run.html", context)

    def progress_view(self, request: HttpRequest, pk: int) -> JsonResponse:
        run = self._run(request, pk)
        if run.status == ImportRun.Status.RUNNING and imports.fail_stale_runs(run.pk):
            run.refresh_from_db()
        return JsonResponse(imports.progress_snapshot(run))

    def _post_action(self, request: HttpRequest, pk: int) -> ImportRun:
        self._require_import(request)
        if request.method != "POST":
            raise PermissionDenied
        return get_object_or_404(ImportRun, pk=pk)

    def confirm_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        run = self._post_action(request, pk)
        try:
            real = imports.confirm_run(run, request.user)
        except (ValueError, FileNotFoundError) as exc:
            messages.error(request, str(exc))
            return redirect("admin:tickets_importrun_run", pk=run.pk)
        messages.info(request, f"Confirmed: import run #{real.pk} queued.")
        return redirect("admin:tickets_importrun_run", pk=real.pk)

    def cancel_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        run = self._post_action(request, pk)
        if imports.cancel_run(run):
            messages.info(request, f"Run #{run.pk} cancelled: nothing was loaded.")
        else:
            messages.error(request, "Only a queued run or a preview can be cancelled.")
        return redirect("admin:tickets_importrun_run", pk=run.pk)

    def retry_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        run = self._post_action(request, pk)
        try:
            new = imports.retry_run(run, request.user)
        except (ValueError, FileNotFoundError) as exc:
            messages.error(request, str(exc))
            return redirect("admin:tickets_importrun_run", pk=run.pk)
        messages.info(request, f"Retry queued as run #{new.pk}.")
        return redirect("admin:tickets_importrun_run", pk=new.pk)

    def report_view(self, request: HttpRequest, pk: int, fmt: str) -> HttpResponse:
        run = self._run(request, pk)
        if fmt == "csv":
            return report_csv_response(run)
        if fmt == "xlsx":
            return report_xlsx_response(run)
        raise PermissionDenied


@admin.register(ImportIssue)
class ImportIssueAdmin(admin.ModelAdmin):
    list_display = (
        "run",
        "entity",
        "row_number",
        "severity",
        "column",
        "natural_key",
        "raw_value",
        "reason",
    )
    list_filter = ("severity", "entity", "run")
    list_select_related = ("run",)
    raw_id_fields = ("run",)
    search_fields = ("=natural_key", "=run__id")
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # part of a run's report; they go with the run


# --- warehouse -----------------------------------------------------------------------------------


class FactsFollowEdits:
    """Rows the metrics read, edited or deleted here rather than imported: the metric facts
    (which Grafana reads directly) are marked stale in the same transaction, so the beat and
    the next compute rebuild them instead of serving the old numbers; the cached filter
    choices are dropped once the change commits."""

    def _changed(self) -> None:
        mark_derived_stale()
        transaction.on_commit(CachedValuesFilter.forget)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        with transaction.atomic():
            super().save_model(request, obj, form, change)  # type: ignore[misc]
            self._changed()

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        with transaction.atomic():
            super().delete_model(request, obj)  # type: ignore[misc]
            self._changed()

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        with transaction.atomic():
            super().delete_queryset(request, queryset)  # type: ignore[misc]
            self._changed()


class StreamingExportMixin(ExportActionMixin):
    """Exports of the big tables without holding them in memory.

    django-import-export builds the whole export as a tablib Dataset, then the file, in the
    web process (109k tickets: 60 s and 580 MB as CSV, 150 s and 2.7 GB as XLSX; a comments
    or timesheets export could not finish). Here the rows are read with a server-side cursor
    and rendered by the same resource fields: CSV streams as it is read, XLSX is written by
    openpyxl's write-only mode into a temp file. Registry columns are read as plain values
    (import-export's per-cell field lookup was three quarters of the time).
    """

    EXPORT_CHUNK = 2000
    XLSX_MAX_ROWS = 1_048_575  # a worksheet holds 1,048,576 rows, the header included

    def _do_file_export(self, file_format, request, queryset, export_form=None):
        if not self.has_export_permission(request):
            raise PermissionDenied
        resource = self.choose_export_resource_class(export_form, request)(
            **self.get_export_resource_kwargs(request)
        )
        selected = self.get_export_resource_fields_from_form(export_form)
        fields = resource.get_export_fields(selected)
        headers = resource.get_export_headers(selected_fields=selected)

        names = [resource.get_field_name(field) for field in fields]
        plain = all(
            field.attribute == name and not hasattr(resource, field.get_dehydrate_method(name))
            for field, name in zip(fields, names, strict=True)
        )

        def rows() -> Iterator[list]:
            if plain:  # the registry's export resources: one column per model field
                widgets = [field.widget for field in fields]
                values = queryset.values_list(*names).iterator(chunk_size=self.EXPORT_CHUNK)
                for row in values:
                    yield [w.render(v) for w, v in zip(widgets, row, strict=True)]
            else:
                for obj in queryset.iterator(chunk_size=self.EXPORT_CHUNK):
                    yield [resource.export_field(field, obj) for field in fields]

        filename = self.get_export_filename(request, queryset, file_format)
        if isinstance(file_format, base_formats.CSV):
            response = csv_streaming_response(headers, rows(), filename, bom=False)
        elif isinstance(file_format, base_formats.XLSX):
            # Past Excel's sheet size the file opens truncated (1.08M comments, 1.5M
            # timesheet rows): say so on the export page (import-export shows a ValueError).
            total = queryset.count()
            if total > self.XLSX_MAX_ROWS:
                raise ValueError(
                    f"{total:,} rows do not fit in one Excel sheet ({self.XLSX_MAX_ROWS:,} at "
                    "most): choose CSV, or filter the list first."
                )
            response = xlsx_file_response(
                headers, rows(), filename, sheet_name=str(self.opts.verbose_name_plural)[:31]
            )
        else:
            return super()._do_file_export(file_format, request, queryset, export_form)
        post_export.send(sender=None, model=self.model)
        return response

    def export_admin_action(self, request: HttpRequest, queryset: Any) -> HttpResponse:
        """ "Select all N" then Export: the export page exports the filtered change list
        itself. import-export's action listed every selected id as a hidden field (109k
        tickets: a 9 MB page after 23 s) that Django then refused on submit (more than
        DATA_UPLOAD_MAX_NUMBER_FIELDS fields)."""
        if request.POST.get("select_across") == "1":
            info = (self.opts.app_label, self.opts.model_name)
            url = reverse("admin:{}_{}_export".format(*info))
            if request.GET:
                url += "?" + request.GET.urlencode()
            return redirect(url)
        return super().export_admin_action(request, queryset)

    def get_valid_export_item_pks(self, request: HttpRequest) -> Any:
        """The posted ids that exist. import-export's default is every id of the table, loaded
        to validate a selection (50 timesheet rows: 12 s and 360 MB for 1.5M ids)."""
        posted = [pk for pk in request.POST.getlist("export_items") if pk.isdigit()]
        return self.get_queryset(request).filter(pk__in=posted).values_list("pk", flat=True)


class CachedValuesFilter(admin.AllValuesFieldListFilter):
    """The distinct values of a column of a big table, kept in the cache until the next load.

    Django's values filter reads the whole column on every page view (timesheet categories:
    0.7 s over 1.4M rows, comment teams 0.2 s). The cache key carries the newest succeeded
    import run and the generation of admin edits (`forget`), so a load or an edit that may
    change the values is seen at once; other writers (a restore, SQL) within
    FILTER_CHOICES_TTL_S. Without the cache (Redis down) the column is read.
    """

    FILTER_CHOICES_TTL_S = 600
    EDITS_KEY = "admin-choices:edits"  # bumped by admin edits and deletes: a new generation

    @classmethod
    def forget(cls) -> None:
        """Every cached choice list is stale (an admin edit or delete changed some value)."""
        try:
            cache.set(cls.EDITS_KEY, uuid4().hex, None)
        except Exception:
            pass

    @classmethod
    def _generation(cls, request: HttpRequest) -> str | None:
        """The newest succeeded load and the edits generation, read once per page view (a list
        has several such filters); None when the cache cannot be read."""
        if not hasattr(request, "_choices_generation"):
            newest = (
                ImportRun.objects.filter(status=ImportRun.Status.SUCCEEDED, dry_run=False)
                .order_by("-pk")
                .values_list("pk", flat=True)
                .first()
            )
            try:
                request._choices_generation = f"{newest}:{cache.get(cls.EDITS_KEY)}"
            except Exception:  # the cache is a convenience: never a broken page
                request._choices_generation = None
        return request._choices_generation

    def __init__(self, field, request, params, model, model_admin, field_path) -> None:
        super().__init__(field, request, params, model, model_admin, field_path)
        generation = self._generation(request)
        key = f"admin-choices:{model._meta.label_lower}:{field_path}:{generation}"
        choices = None
        try:
            choices = cache.get(key) if generation else None
        except Exception:
            generation = None
        if choices is None:
            choices = list(self.lookup_choices)
            try:
                if generation:
                    cache.set(key, choices, self.FILTER_CHOICES_TTL_S)
            except Exception:
                pass
        self.lookup_choices = choices


class IdSearchMixin:
    """Search the big tables the way their indexes can answer.

    Django reads an "=" search field as `iexact`, which on an integer column is
    `UPPER(col::text) = UPPER('123')`: no index applies, so looking up a ticket's comments
    scanned all 1.08M of them (3.5 s) and its timesheet rows all 1.5M (6.4 s). Here a whole
    number (`3652948`, `3652948.0`) matches the integer columns exactly and the "=" text
    columns case-insensitively; other text matches only the text columns, so `abc` never
    casts an id and a number never runs a substring scan over a text column.
    """

    def get_search_results(
        self, request: HttpRequest, queryset: Any, search_term: str
    ) -> tuple[Any, bool]:
        fields = self.get_search_fields(request)  # type: ignore[attr-defined]
        terms = [_unquote(t) for t in smart_split(search_term) if t.strip()]
        if not fields or not terms:
            return queryset, False
        model = queryset.model
        for term in terms:
            number = _whole_number(term)
            match = Q()
            for name in fields:
                exact = name.startswith("=")
                field_name = name.removeprefix("=")
                field = model._meta.get_field(field_name)
                if isinstance(field, models.IntegerField):
                    if number is not None and (
                        isinstance(field, models.BigIntegerField) or abs(number) <= v.INT_MAX
                    ):
                        match |= Q(**{field_name: number})
                elif exact:
                    match |= Q(**{f"{field_name}__iexact": term})
                elif number is None:
                    match |= Q(**{f"{field_name}__icontains": term})
            queryset = queryset.filter(match) if match else queryset.none()
        return queryset, False

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return SearchChangeList


class SearchChangeList(ChangeList):
    """No date drill-down over a search result that fits on one page.

    The drill-down starts with MIN/MAX of the date over the result, and PostgreSQL answers
    that by walking the date index backwards until a row matches the search: for a ticket's
    14 comments it read 1.07M index entries (1.4 s; its one timesheet row: 1.5M, 2.5 s).
    """

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        drilling = any(p.startswith(f"{self.date_hierarchy}__") for p in self.params)
        if self.query and not drilling and self.result_count <= self.list_per_page:
            self.date_hierarchy = None


def _unquote(term: str) -> str:
    if len(term) > 1 and term[0] in "\"'" and term[-1] == term[0]:
        return unescape_string_literal(term)
    return term


def _whole_number(term: str) -> int | None:
    try:
        return v.parse_int(term).value
    except v.InvalidValue:
        return None


class RunLineageForRunViewers:
    """The inserted_run / changed_run fields of a change form only for staff who may open
    import runs: everyone else saw the run's name and a link that is a 403."""

    def get_exclude(self, request: HttpRequest, obj: Any = None) -> Any:
        excluded = tuple(super().get_exclude(request, obj) or ())  # type: ignore[misc]
        if request.user.has_perm("tickets.view_importrun"):
            return excluded or None
        return (*excluded, "inserted_run", "changed_run")


class WarehouseAdmin(
    RunLineageForRunViewers, FactsFollowEdits, IdSearchMixin, StreamingExportMixin, admin.ModelAdmin
):
    """Big tables: no COUNT(*) of everything, no per-row queries, an Import button."""

    import_entity = ""
    import_export_change_list_template = "admin/tickets/change_list_import_export.html"
    show_full_result_count = False
    list_select_related = ("changed_run",)
    raw_id_fields = ("inserted_run", "changed_run")
    list_per_page = 50
    formats = [base_formats.CSV, base_formats.XLSX]

    def get_export_resource_classes(self, request: HttpRequest) -> list:
        return [export_resource(self.import_entity)]

    def get_list_display(self, request: HttpRequest) -> Any:
        """The import-run column only for staff who may open import runs (the link is a 403
        to everyone else)."""
        shown = super().get_list_display(request)
        if request.user.has_perm("tickets.view_importrun"):
            return shown
        return tuple(name for name in shown if name != "changed_run")

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> Any:
        extra_context = dict(extra_context or {})
        if can_import(request):
            extra_context["import_url"] = (
                reverse("admin:tickets_importrun_upload") + f"?entity={self.import_entity}"
            )
        return super().changelist_view(request, extra_context)


@admin.register(Ticket)
class TicketAdmin(WarehouseAdmin):
    import_entity = "tickets"
    list_display = ("ticket_id", "title", "status", "team", "category", "created_at", "changed_run")
    list_filter = (
        ("team", CachedValuesFilter),
        ("status", CachedValuesFilter),
        ("category", CachedValuesFilter),
    )
    search_fields = ("=ticket_id", "=parent_id", "=customer_reference")
    search_help_text = "A ticket id, parent id or customer reference (whole value)."
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    actions = ["sample_for_root_cause_audit"]

    @admin.action(
        description="Sample closed tickets of the selection for root-cause audit",
        permissions=["change"],
    )
    def sample_for_root_cause_audit(self, request, queryset):
        created = audits.sample_for_audit(queryset)
        self.message_user(
            request,
            f"{created} tickets sampled for root-cause review "
            f"(up to {settings.ROOT_CAUSE_AUDIT_SAMPLE} per category).",
        )


@admin.register(Comment)
class CommentAdmin(WarehouseAdmin):
    import_entity = "comments"
    list_display = (
        "comment_id",
        "ticket_id",
        "user_name",
        "comment_type",
        "is_customer_facing",
        "created_at",
        "changed_run",
    )
    list_filter = (
        ("team", CachedValuesFilter),
        ("comment_type", CachedValuesFilter),
        "is_customer_facing",
    )
    search_fields = ("=comment_id", "=ticket_id")
    search_help_text = "A comment id or ticket id."
    date_hierarchy = "created_at"
    ordering = ("-created_at",)


@admin.register(TimesheetEntry)
class TimesheetEntryAdmin(WarehouseAdmin):
    import_entity = "timesheets"
    list_display = ("id", "work_date", "user_full_name", "hours", "ticket_id", "category")
    list_filter = (("category", CachedValuesFilter), ("entry_type", CachedValuesFilter))
    # TS-Crm ID > 0 is the ticket_id (indexed); crm_id itself has no index.
    search_fields = ("=ticket_id", "username")
    search_help_text = "A ticket id (TS-Crm ID) or part of a username."
    date_hierarchy = "work_date"
    ordering = ("-work_date", "-id")


@admin.register(CommentQuality)
class CommentQualityAdmin(RunLineageForRunViewers, FactsFollowEdits, admin.ModelAdmin):
    list_display = (
        "comment_key",
        "ticket_id",
        "user_name",
        "team",
        "quality_score",
        "quality_tier",
    )
    list_filter = ("team", "quality_tier")
    search_fields = ("=comment_key", "=ticket_id")
    raw_id_fields = ("inserted_run", "changed_run")
    show_full_result_count = False


@admin.register(CommentSentiment)
class CommentSentimentAdmin(RunLineageForRunViewers, admin.ModelAdmin):
    list_display = ("comment_key", "ticket_id", "user_name", "team", "sentiment", "confidence")
    list_filter = ("team", "sentiment")
    search_fields = ("=comment_key", "=ticket_id")
    raw_id_fields = ("inserted_run", "changed_run")
    show_full_result_count = False


@admin.register(TeamMember)
class TeamMemberAdmin(RunLineageForRunViewers, ImportExportModelAdmin):
    resource_classes = [RosterResource]
    list_display = ("username", "name", "email", "team")
    list_filter = ("team",)
    search_fields = ("username", "name", "email")
    raw_id_fields = ("inserted_run", "changed_run")


@admin.register(RootCauseAudit)
class RootCauseAuditAdmin(admin.ModelAdmin):
    list_display = (
        "ticket_id",
        "category",
        "root_cause_category",
        "accurate",
        "reviewer",
        "reviewed_at",
    )
    list_filter = ("accurate", "category")
    actions = ["mark_accurate", "mark_inaccurate"]

    @admin.action(description="Mark root cause accurate", permissions=["change"])
    def mark_accurate(self, request, queryset):
        n = audits.record_verdict(queryset, True, request.user)
        self.message_user(request, f"{n} audits marked accurate.")

    @admin.action(description="Mark root cause inaccurate", permissions=["change"])
    def mark_inaccurate(self, request, queryset):
        n = audits.record_verdict(queryset, False, request.user)
        self.message_user(request, f"{n} audits marked inaccurate.")

    list_select_related = ("reviewer",)
    raw_id_fields = ("reviewer",)
    search_fields = ("=ticket_id",)
    show_full_result_count = False
