"""The portal in a real headless browser (Debian's chromium driven by playwright)."""

import os
import shutil
from pathlib import Path
from urllib.parse import urlparse

import pytest

from jobs.choices import JobStatus
from jobs.models import Job
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


AOD = "mc11.007216.singlepart_mu18.recon.AOD.v11000303"


@pytest.fixture
def catalog_data(live_server_url):
    """Two sites in two clouds, an mc dataset complete at one of them and a user dataset."""
    from datasets.services import catalog, replicas
    from pandamon import roles

    from ..factories import UserFactory, grant_role

    ops = grant_role(UserFactory(username="ops"), roles.DATA_OPERATOR)
    for name, cloud in (("BNL", "US"), ("CERN-PROD", "CERN")):
        SiteFactory(name=name, cloud__name=cloud, storage_endpoint=f"/storage/{name}")
    files = [{"lfn": f"aod._{i:05d}.pool.root.1", "fsize": 1000 + i, "adler32": f"{i:08x}"} for i in range(3)]
    catalog.register_new_datasets(
        user=ops,
        specs=[{"name": AOD, "files": files}, {"name": "user.ops.ntuple.v1", "files": []}],
    )
    replicas.register_file_replicas(user=ops, site_name="BNL", replicas=[{"lfn": f["lfn"]} for f in files])
    return files


def test_browse_the_dataset_browser_to_a_file(live_server_url, catalog_data, browser_page):
    page = browser_page
    problems = watch(page)
    ARTIFACTS.mkdir(exist_ok=True)

    page.goto(live_server_url + "/")
    page.get_by_role("link", name="Datasets", exact=True).click()
    page.wait_for_url("**/datasets/")
    page.screenshot(path=str(ARTIFACTS / "datasets.png"), full_page=True)
    page.locator("p.categories a.chip", has_text="mc").click()  # a category
    page.wait_for_url("**/datasets/?category=mc")
    page.locator("form.residency select[name=site]").select_option("BNL")  # a site, chosen by cloud
    with page.expect_navigation():
        page.locator("form.residency button").click()
    assert "site=BNL" in page.url and "category=mc" in page.url, page.url
    assert page.locator("table.list tbody tr").count() == 1
    page.screenshot(path=str(ARTIFACTS / "datasets-mc-at-bnl.png"), full_page=True)
    page.get_by_role("link", name=AOD, exact=True).click()
    page.wait_for_url(f"**/datasets/{AOD}/")
    assert "BNL" in page.locator("body").inner_text()
    page.screenshot(path=str(ARTIFACTS / "dataset.png"), full_page=True)
    page.get_by_role("link", name=catalog_data[0]["lfn"], exact=True).click()
    page.wait_for_url("**/files/aod._00000.pool.root.1/")
    assert AOD in page.locator("body").inner_text()
    page.screenshot(path=str(ARTIFACTS / "file.png"), full_page=True)
    assert problems == {"console": [], "outside": []}


@pytest.fixture
def flow_data(live_server_url, tmp_path, settings):
    """Two datasets moved between real storage directories by the agents: one subscription done, one stuck
    (a source file is gone), and hour rows of the channels for the throughput plot."""
    from datasets.services import subscriptions
    from datasets.services.replicas import deterministic_pfn

    from ..dataflow.conftest import Grid, run_agents

    settings.PANDA = {**settings.PANDA, "TRANSFER_RETRY_SECONDS": 0, "TRANSFER_TIMEOUT_SECONDS": 10}
    (tmp_path / "storage").mkdir()
    grid = Grid(tmp_path / "storage")
    grid.dataset(AOD, grid.bnl, {f"aod._{i:05d}.pool.root.1": b"aod" * (100 + i) for i in range(3)})
    lost = {f"minbias._{i:05d}.pool.root.1": b"minbias" * (100 + i) for i in range(2)}
    grid.dataset("data10_7TeV.00152166.physics_MinBias.merge.AOD.r1297", grid.fzk, lost)
    Path(deterministic_pfn(grid.fzk, next(iter(lost)))).unlink()  # the only replica is gone from the storage
    subscriptions.create_subscription(user=grid.operator, name=AOD, site_name="MWT2")
    stuck = subscriptions.create_subscription(
        user=grid.operator, name="data10_7TeV.00152166.physics_MinBias.merge.AOD.r1297", site_name="BNL"
    )
    run_agents(rounds=settings.PANDA["TRANSFER_MAX_ATTEMPTS"] + 2)
    return stuck


def test_browse_transfers_to_a_stuck_subscription(live_server_url, flow_data, browser_page):
    stuck, page = flow_data, browser_page
    problems = watch(page)
    ARTIFACTS.mkdir(exist_ok=True)

    page.goto(live_server_url + "/")
    page.get_by_role("link", name="Transfers", exact=True).first.click()
    page.wait_for_url("**/transfers/")
    page.screenshot(path=str(ARTIFACTS / "transfers.png"), full_page=True)
    page.locator("table.facets a.chip", has_text="failed").click()  # a facet of the attribute summary
    page.wait_for_url("**/transfers/?state=failed*")
    assert page.locator("table.list tbody tr").count() == 1
    assert "source file not found" in page.locator("table.list").inner_text()
    page.screenshot(path=str(ARTIFACTS / "transfers-failed.png"), full_page=True)
    page.goto(live_server_url + "/subscriptions/")
    page.screenshot(path=str(ARTIFACTS / "subscriptions.png"), full_page=True)
    page.locator("table.list").get_by_role("link", name=str(stuck.pk), exact=True).click()
    page.wait_for_url(f"**/subscriptions/{stuck.pk}/")
    body = page.locator("body").inner_text()
    assert "stuck" in body and "minbias._00000.pool.root.1" in body
    page.screenshot(path=str(ARTIFACTS / "subscription.png"), full_page=True)
    page.goto(live_server_url + "/transfers/channels/")
    page.wait_for_selector(".flow-plot .main-svg", timeout=15000)  # plotly drew the throughput plot
    page.screenshot(path=str(ARTIFACTS / "transfer-channels.png"), full_page=True)
    assert problems == {"console": [], "outside": []}


@pytest.fixture
def task_data(live_server_url):
    """alice's analysis task running: a job finished after 25 minutes, one failed with a pilot error, one running;
    and bob's task still ready."""
    from datetime import timedelta

    from django.utils import timezone

    from datasets.services import catalog
    from pandamon import roles
    from tasks.choices import TaskType
    from tasks.services import rollup
    from tasks.services.creation import submit_task

    from ..factories import UserFactory, grant_role

    ops = grant_role(UserFactory(username="ops"), roles.DATA_OPERATOR)
    files = [{"lfn": f"digit._{i:05d}.pool.root", "fsize": 1000 + i, "adler32": "0000abcd"} for i in range(6)]
    catalog.register_new_dataset(user=ops, name="mc11.007216.digit.v1", files=files)
    tasks = {}
    for owner in ("alice", "bob"):
        spec = {"input_dataset": "mc11.007216.digit.v1", "output_dataset": f"user.{owner}.reco.v1",
                "transformation": "run.sh", "job_parameters": "${IN} ${OUT}", "n_files_per_job": 2}  # fmt: skip
        tasks[owner], _ = submit_task(user=UserFactory(username=owner), spec=spec, task_type=TaskType.ANALYSIS)
    site = SiteFactory(name="BNL", tier=1)
    started = timezone.now() - timedelta(minutes=40)
    jobs = list(Job.objects.filter(task_id=tasks["alice"].task_id).order_by("pandaid"))
    for job in jobs:
        for step in (JobStatus.ACTIVATED, JobStatus.SENT, JobStatus.RUNNING):
            extra = {"computing_site": site, "start_time": started} if step == JobStatus.ACTIVATED else {}
            state.transition(job, step, actor="test", **extra)
    for step in (JobStatus.HOLDING, JobStatus.FINISHED):
        state.transition(jobs[0], step, actor="test", end_time=started + timedelta(minutes=25))
    state.transition(jobs[1], JobStatus.FAILED, actor="test", end_time=started + timedelta(minutes=3),
                     pilot_error_code=1099, pilot_error_diag="stage-in failed")  # fmt: skip
    rollup.roll_up(lag_seconds=0)
    return tasks["alice"]


def test_browse_the_task_list_to_a_task_and_its_plots(live_server_url, task_data, browser_page):
    task, page = task_data, browser_page
    problems = watch(page)
    ARTIFACTS.mkdir(exist_ok=True)

    page.goto(live_server_url + "/")
    page.get_by_role("link", name="Tasks", exact=True).click()
    page.wait_for_url("**/tasks/")
    assert page.locator("table.list tbody tr").count() == 2
    page.screenshot(path=str(ARTIFACTS / "tasks.png"), full_page=True)
    page.locator("table.facets a.chip", has_text="running").click()  # a facet of the attribute summary
    page.wait_for_url("**/tasks/?status=running*")
    assert page.locator("table.list tbody tr").count() == 1
    page.screenshot(path=str(ARTIFACTS / "tasks-running.png"), full_page=True)
    page.locator("table.list").get_by_role("link", name=str(task.task_id), exact=True).click()
    page.wait_for_url(f"**/tasks/{task.task_id}/")
    page.wait_for_selector("#plot-durations .main-svg", timeout=15000)  # plotly drew the durations
    page.wait_for_selector("#plot-failures .main-svg", timeout=15000)
    body = page.locator("body").inner_text()
    assert "stage-in failed" in body and "digit._00000.pool.root" in body
    page.screenshot(path=str(ARTIFACTS / "task.png"), full_page=True)
    assert problems == {"console": [], "outside": []}
