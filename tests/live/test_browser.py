"""The portal in a real headless browser (Debian's chromium driven by playwright)."""

import os
import shutil
from pathlib import Path
from urllib.parse import urlparse

import pytest

from jobs.choices import JobStatus
from jobs.services import state

from ..factories import JobFactory, SiteFactory
from .conftest import ROOT

pytestmark = pytest.mark.live
ARTIFACTS = ROOT / "test-artifacts"


def chromium_path():
    return os.environ.get("PANDAMON_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def browser_page():
    sync_api = pytest.importorskip("playwright.sync_api")
    executable = chromium_path()
    if not executable:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        yield page
        browser.close()


def watch(page):
    """Collect console errors and any request that would leave localhost (which is then blocked)."""
    problems = {"console": [], "outside": []}
    page.on("console", lambda msg: msg.type == "error" and problems["console"].append(msg.text))

    def guard(route):
        host = urlparse(route.request.url).hostname
        if host not in ("127.0.0.1", "localhost"):
            problems["outside"].append(route.request.url)
            return route.abort()
        return route.continue_()

    page.route("**/*", guard)
    return problems


@pytest.fixture
def failed_job(live_server_url):
    # Created before the browser starts: playwright's event loop forbids ORM calls in its thread.
    site = SiteFactory(name="BNL", tier=1)
    job = JobFactory(computing_site=site, cloud=site.cloud.name, status=JobStatus.RUNNING, job_name="user.alice.browse")
    state.transition(
        job,
        JobStatus.FAILED,
        actor="watcher",
        job_dispatcher_error_code=100,
        job_dispatcher_error_diag="lost heartbeat",
    )
    JobFactory.create_batch(4, computing_site=site, cloud=site.cloud.name, status=JobStatus.ACTIVATED)
    return job


def test_browse_from_the_dashboard_to_a_failed_job(live_server_url, failed_job, browser_page):
    job, page = failed_job, browser_page
    problems = watch(page)
    ARTIFACTS.mkdir(exist_ok=True)

    page.goto(live_server_url + "/")
    page.screenshot(path=str(ARTIFACTS / "home.png"), full_page=True)
    page.get_by_role("link", name="Jobs", exact=True).click()
    page.wait_for_url("**/jobs/")
    page.screenshot(path=str(ARTIFACTS / "jobs.png"), full_page=True)
    page.locator("table.facets a.chip", has_text="failed").click()  # a facet of the attribute summary
    page.wait_for_url("**/jobs/?jobstatus=failed*")
    assert page.locator("table.list tbody tr").count() == 1
    page.screenshot(path=str(ARTIFACTS / "jobs-failed.png"), full_page=True)
    page.locator("table.list").get_by_role("link", name=str(job.pandaid), exact=True).click()
    page.wait_for_url(f"**/jobs/{job.pandaid}/")
    assert "lost heartbeat" in page.locator("body").inner_text()
    page.screenshot(path=str(ARTIFACTS / "job.png"), full_page=True)
    page.goto(live_server_url + "/api/docs/")
    page.wait_for_selector(".swagger-ui", timeout=15000)
    page.screenshot(path=str(ARTIFACTS / "api-docs.png"))
    assert problems == {"console": [], "outside": []}
    assert Path(ARTIFACTS / "job.png").stat().st_size > 0
