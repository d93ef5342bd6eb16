"""The command line (SPEC §8): every failure a one-line message, a non-zero exit, nothing half
stored and no run left 'running'."""

import pytest
from django.core.management import CommandError, call_command

from tests import files as f
from tickets import pipeline
from tickets.models import ImportRun, Ticket

pytestmark = pytest.mark.django_db


def _interrupt_after(monkeypatch, calls: int) -> None:
    """Ctrl-C inside a run's transaction, after its rows were staged, on the `calls`-th run."""
    real = pipeline.drop_superseded
    seen = []

    def drop_superseded(*args, **kwargs):
        seen.append(1)
        if len(seen) == calls:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "drop_superseded", drop_superseded)


def test_ctrl_c_in_import_file_fails_its_run_and_stores_nothing(tmp_path, monkeypatch):
    pipeline.import_file(f.write_xlsx(tmp_path / "seed.xlsx", "tickets", [f.ticket(1)]))
    before = list(Ticket.objects.values_list("ticket_id", "title"))
    _interrupt_after(monkeypatch, 1)
    rows = [f.ticket(i, title="changed") for i in range(1, 5)]
    with pytest.raises(CommandError, match=r"^interrupted \(Ctrl-C\)") as failure:
        call_command("import_file", str(f.write_xlsx(tmp_path / "t.xlsx", "tickets", rows)))
    assert failure.value.returncode == 130
    assert list(Ticket.objects.values_list("ticket_id", "title")) == before
    run = ImportRun.objects.order_by("-pk").first()
    assert run.status == "failed" and run.error_summary.startswith("interrupted")
    assert not ImportRun.objects.filter(status="running").exists()


def test_ctrl_c_in_migrate_legacy_fails_the_table_in_progress_only(tmp_path, monkeypatch):
    path = f.write_legacy(
        tmp_path / "legacy.sqlite3",
        {
            "tickets": [f.ticket(i) for i in range(1, 4)],
            "comments": [f.comment(i, 1) for i in range(1, 4)],
        },
    )
    _interrupt_after(monkeypatch, 2)  # tickets load, then Ctrl-C in comments
    with pytest.raises(CommandError, match="tables loaded before it are kept") as failure:
        call_command("migrate_legacy", str(path))
    assert failure.value.returncode == 130
    runs = dict(ImportRun.objects.values_list("entity", "status"))
    assert runs == {"tickets": "succeeded", "comments": "failed"}
    assert Ticket.objects.count() == 3
