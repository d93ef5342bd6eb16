"""A person's weekly import in headless Chromium: log in, upload, preview, confirm, watch, report.

Real web server (pytest-django live_server), real Celery worker subprocess, PostgreSQL and Redis.
Needs Debian's `chromium` and `chromium-driver` packages.
"""

from __future__ import annotations

import csv
import os
import shutil
import time
from pathlib import Path

import pytest

from tests import files as f
from tests.test_admin_helpers import (
    IMPORTER_PERMS,
    PASSWORD,
    Worker,
    make_user,
    purge_queue,
    wait_for,
)
from tickets.models import ImportRun, Ticket

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,1000",
)


@pytest.fixture
def browser(tmp_path):
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("install Debian's chromium and chromium-driver packages for browser tests")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    driver.downloads = downloads
    yield driver
    driver.quit()


def _shot(driver, name: str) -> None:
    """BROWSER_SCREENSHOTS=DIR keeps what the user saw, for a person to look at."""
    target = os.environ.get("BROWSER_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(target) / f"{name}.png"))


def _wait_css(driver, selector: str, timeout: float = 90.0):
    from selenium.webdriver.common.by import By

    return wait_for(
        lambda: (driver.find_elements(By.CSS_SELECTOR, selector) or [None])[0],
        timeout=timeout,
        interval=0.25,
        what=f"{selector} on {driver.current_url}",
    )


def test_upload_preview_confirm_progress_and_report(browser, live_server, tmp_path, settings):
    from selenium.webdriver.common.by import By

    settings.IMPORT_ARCHIVE_DIR = tmp_path / "archive"
    purge_queue()
    make_user("imogen", *IMPORTER_PERMS)
    rows = [f.ticket(i) for i in range(1, 3001)]
    rows[7]["created_at"] = "not a date"  # one rejected row for the report
    export = f.write_xlsx(tmp_path / "tickets.xlsx", "tickets", rows)

    with Worker(tmp_path / "worker.log", "browser", IMPORT_BATCH_ROWS="200"):
        browser.get(f"{live_server.url}/admin/login/?next=/admin/tickets/ticket/")
        browser.find_element(By.NAME, "username").send_keys("imogen")
        browser.find_element(By.NAME, "password").send_keys(PASSWORD)
        browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()

        _wait_css(browser, "#import-button").click()
        _wait_css(browser, "input[type=file]").send_keys(str(export))
        browser.find_element(By.ID, "upload-submit").click()

        # The preview appears by itself once the worker's dry run is done.
        _wait_css(browser, "#confirm-button")
        _shot(browser, "1-preview")
        assert browser.find_element(By.ID, "count-inserted").text == "2999"
        assert browser.find_element(By.ID, "count-rejected").text == "1"
        assert Ticket.objects.count() == 0
        browser.find_element(By.ID, "confirm-button").click()

        # The real run's page: progress bar polled, then the outcome.
        _wait_css(browser, "#import-run")
        saw_progress = bool(browser.find_elements(By.ID, "progress-fill"))
        _shot(browser, "2-progress")
        outcome = _wait_css(browser, "#outcome, #error-summary", timeout=120)
        assert outcome.get_attribute("id") == "outcome", outcome.text
        assert "Import succeeded" in outcome.text
        _shot(browser, "3-outcome")
        assert browser.find_element(By.ID, "count-inserted").text == "2999"
        run = ImportRun.objects.filter(dry_run=False).get()
        assert run.status == "succeeded" and Ticket.objects.count() == 2999
        assert saw_progress or run.duration_s < 1.0

        browser.find_element(By.ID, "report-csv").click()
        report = wait_for(
            lambda: [
                p for p in browser.downloads.glob("*.csv") if not p.name.endswith(".crdownload")
            ],
            timeout=30,
            what="the report download",
        )[0]
    time.sleep(0.2)
    with report.open(encoding="utf-8-sig") as fh:
        table = list(csv.DictReader(fh))
    assert [r["row_number"] for r in table if r["severity"] == "error"] == ["9"]
    assert any(r["raw_value"] == "not a date" for r in table)
