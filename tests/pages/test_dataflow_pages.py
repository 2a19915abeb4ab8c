"""The data-flow pages: /subscriptions/, a subscription, /transfers/, /transfers/channels/, and the data-flow parts
of the home dashboard, the job page and the site page (HTML and their JSON twins), with data made by the real
subscription and transfer agents moving real files between temporary storage directories."""

import html
import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Count, Q, Sum
from django.test import Client
from django.utils import timezone

from datasets.choices import Activity, SubscriptionState, TransferState
from datasets.models import Dataset, Subscription, TransferChannelStat, TransferRequest
from datasets.services import subscriptions
from datasets.services.replicas import deterministic_pfn
from datasets.services.subscriptions import evaluate_subscriptions
from datasets.services.transfers import transfer_batch
from jobs.choices import JobStatus
from jobs.models import Job
from jobs.services import brokerage
from jobs.services.submission import submit_jobs
from tests.dataflow.conftest import Grid, run_agents
from tests.dataflow.test_panda_flow import job_spec, run_job_through_pilot

from ..factories import TransferChannelStatFactory, UserFactory

pytestmark = pytest.mark.django_db
EVGEN = "mc08.105200.T1_McAtNlo_Jimmy.evgen.EVNT.e357"
AOD = "mc11.007216.singlepart_mu18.recon.AOD.v11000303"
LOST = "data10_7TeV.00152166.physics_MinBias.merge.AOD.r1297"
PAGES = ["/subscriptions/", "/transfers/", "/transfers/channels/"]


def contents(prefix, n, size=1000):
    return {f"{prefix}._{i:05d}.pool.root": bytes([i % 251]) * (size + i) for i in range(1, n + 1)}


@pytest.fixture
def grid(db, tmp_path, settings):
    settings.PANDA = {**settings.PANDA, "TRANSFER_RETRY_SECONDS": 0, "TRANSFER_TIMEOUT_SECONDS": 10}
    return Grid(tmp_path)


@pytest.fixture
def flow(grid, settings):
    """EVGEN (3 files at BNL) -> MWT2 done; AOD (2 at FZK) -> BNL done; LOST (2 at FZK, one file gone from the
    storage) -> MWT2 stuck; AOD -> MWT2 suspended; EVGEN -> FZK with its 3 transfers queued."""
    grid.dataset(EVGEN, grid.bnl, contents("EVNT", 3))
    grid.dataset(AOD, grid.fzk, contents("AOD", 2))
    lost = contents("MinBias", 2)
    grid.dataset(LOST, grid.fzk, lost)
    Path(deterministic_pfn(grid.fzk, next(iter(lost)))).unlink()
    ops = grid.operator
    made = {
        "evgen_mwt2": subscriptions.create_subscription(user=ops, name=EVGEN, site_name="MWT2"),
        "aod_bnl": subscriptions.create_subscription(user=ops, name=AOD, site_name="BNL", activity="production"),
        "lost_mwt2": subscriptions.create_subscription(user=ops, name=LOST, site_name="MWT2", priority=5),
        "aod_mwt2": subscriptions.create_subscription(user=ops, name=AOD, site_name="MWT2"),
    }
    subscriptions.suspend_subscription(user=ops, pk=made["aod_mwt2"].pk, reason="storage maintenance")
    run_agents(rounds=settings.PANDA["TRANSFER_MAX_ATTEMPTS"] + 2)
    made["evgen_fzk"] = subscriptions.create_subscription(user=ops, name=EVGEN, site_name="FZK")
    evaluate_subscriptions()  # queued, not moved
    for subscription in made.values():
        subscription.refresh_from_db()
    grid.refresh()
    return made


def get(url, **params):
    response = Client().get(url, params)
    assert response.status_code == 200, response.content[:500]
    return response


def get_json(url, **params):
    return get(url, json="", **params).json()


def facets(data):
    return {name: {f["value"]: f["count"] for f in values} for name, values in data["facets"].items()}


def hrefs(page_html):
    return [html.unescape(href) for href in re.findall(r'href="([^"]+)"', page_html)]


def listed_total(href):
    """Follow a link to a list page and return how many rows it selects."""
    response = Client().get(href + ("&" if "?" in href else "?") + "json")
    assert response.status_code == 200, (href, response.content[:300])
    return response.json()["meta"]["total"]


# ---------------------------------------------------------------- every page: empty, full, its JSON twin


@pytest.mark.parametrize("url", PAGES)
def test_pages_render_when_empty(url):
    response = get(url)
    assert b"<h1>" in response.content
    data = get_json(url)
    assert data["rows"] == [] and data["meta"]["total"] == 0


def test_an_unknown_subscription_is_a_404():
    assert Client().get("/subscriptions/999/").status_code == 404
    assert Client().get("/subscriptions/999/", {"json": ""}).json()["error"] == "no subscription 999"


def _twin_urls(flow):
    pk = flow["lost_mwt2"].pk
    return [*PAGES, f"/subscriptions/{pk}/", "/transfers/?state=failed|queued", "/subscriptions/?site=MWT2",
            "/transfers/channels/?measure=files&split=channel", "/"]  # fmt: skip


def test_the_json_twin_is_the_data_the_html_shows(flow, monkeypatch):
    moment = timezone.now() + timedelta(seconds=1)
    monkeypatch.setattr(timezone, "now", lambda: moment)  # both requests see the same clock (windows, ages)
    for url in _twin_urls(flow):
        client = Client()
        page = client.get(url)
        assert page.status_code == 200, (url, page.content[:300])
        twin = client.get(url, HTTP_ACCEPT="application/json")
        assert twin["Content-Type"] == "application/json"
        shown = json.loads(json.dumps(page.context["data"], cls=DjangoJSONEncoder))
        assert shown == twin.json(), url
        assert client.get(url + ("&" if "?" in url else "?") + "json").json() == twin.json(), url


def test_the_subscription_list_shows_each_subscription_with_its_progress(flow):
    page = get("/subscriptions/").content.decode()
    data = get_json("/subscriptions/")
    assert {row["id"] for row in data["rows"]} == {s.pk for s in flow.values()}
    for row in data["rows"]:
        assert f'href="/subscriptions/{row["id"]}/"' in page
        assert f'href="/datasets/{row["dataset"]}/"' in page
    stuck = next(row for row in data["rows"] if row["id"] == flow["lost_mwt2"].pk)
    assert stuck["state"] == "stuck" and stuck["state_text"] == SubscriptionState.STUCK.label
    assert stuck["progress"] == {"files_wanted": 2, "files_present": 1, "bytes_wanted": stuck["progress"]["bytes_wanted"],
                                 "bytes_present": stuck["progress"]["bytes_present"], "pct": 50.0, "complete": False}  # fmt: skip
    assert "MinBias._00001.pool.root" in stuck["reason"]
    assert f'title="{SubscriptionState.STUCK.label}"' in page  # the state explains itself
    done = next(row for row in data["rows"] if row["id"] == flow["evgen_mwt2"].pk)
    assert (done["progress"]["files_present"], done["progress"]["complete"]) == (3, True)


def test_the_transfer_list_shows_each_transfer(flow):
    data = get_json("/transfers/")
    page = get("/transfers/").content.decode()
    assert data["meta"]["total"] == TransferRequest.objects.count()
    failed = next(row for row in data["rows"] if row["state"] == "failed")
    assert failed["lfn"] == "MinBias._00001.pool.root" and failed["attempts"] == 4
    assert failed["source"] == "FZK" and failed["destination"] == "MWT2" and "source file not found" in failed["error"]
    done = next(row for row in data["rows"] if row["state"] == "done")
    assert done["tool"] == "local" and done["seconds"] is not None and done["bytes"] == done["fsize"]
    for row in data["rows"]:
        assert f'href="/files/{row["lfn"]}/"' in page


# ---------------------------------------------------------------- facets equal direct counts; the window


def by(queryset, column):
    return dict(queryset.values_list(column).annotate(n=Count("*")).order_by())


def test_subscription_facets_count_the_selection(flow):
    data = get_json("/subscriptions/")
    everything = Subscription.objects.all()
    assert data["meta"]["total"] == everything.count() == 5
    assert facets(data) == {
        "state": by(everything, "state"), "activity": by(everything, "activity"),
        "site": by(everything, "site__name"), "owner": by(everything, "owner_name"),
    }  # fmt: skip
    assert facets(data)["state"] == {"done": 2, "stuck": 1, "suspended": 1, "active": 1}


def test_done_subscriptions_show_by_when_they_were_done_live_ones_whatever_their_age(flow):
    month_ago = timezone.now() - timedelta(days=30)
    Subscription.objects.filter(pk=flow["evgen_mwt2"].pk).update(done_at=month_ago, created_at=month_ago)
    Subscription.objects.filter(pk=flow["lost_mwt2"].pk).update(created_at=month_ago, modified_at=month_ago)
    ids = {row["id"] for row in get_json("/subscriptions/")["rows"]}
    assert flow["evgen_mwt2"].pk not in ids and flow["lost_mwt2"].pk in ids  # old done: out; old stuck: in
    assert flow["evgen_mwt2"].pk in {row["id"] for row in get_json("/subscriptions/", days="60")["rows"]}
    assert flow["evgen_mwt2"].pk in {row["id"] for row in get_json("/subscriptions/", dataset=EVGEN)["rows"]}
    past = get_json("/subscriptions/", date_from=(month_ago - timedelta(days=1)).date().isoformat(),
                    date_to=(month_ago + timedelta(days=1)).date().isoformat())  # fmt: skip
    assert [row["id"] for row in past["rows"]] == [flow["evgen_mwt2"].pk]  # a past window: only what ended in it


def test_transfer_facets_count_the_selection(flow):
    data = get_json("/transfers/")
    everything = TransferRequest.objects.all()
    assert data["meta"]["total"] == everything.count()
    expected = {"state": by(everything, "state"), "destination": by(everything, "destination__name"),
                "source": by(everything, "source__name"), "activity": by(everything, "activity"),
                "tool": by(everything, "tool")}  # fmt: skip
    expected["source"]["Not specified"] = expected["source"].pop(None)  # the grammar's name for no value
    expected["tool"]["Not specified"] = expected["tool"].pop("")
    assert facets(data) == expected
    assert facets(data)["state"] == {"done": 6, "failed": 1, "queued": 3}


def test_queued_transfers_show_whatever_their_age_ended_ones_by_when_they_ended(flow):
    old = timezone.now() - timedelta(days=3)
    done = TransferRequest.objects.filter(state=TransferState.DONE).order_by("id")
    old_done = done.first()
    TransferRequest.objects.filter(pk=old_done.pk).update(finished_at=old, requested_at=old)
    TransferRequest.objects.filter(state=TransferState.QUEUED).update(requested_at=old)
    data = get_json("/transfers/")
    ids = {row["id"] for row in data["rows"]}
    assert old_done.pk not in ids
    assert set(TransferRequest.objects.filter(state=TransferState.QUEUED).values_list("pk", flat=True)) <= ids
    assert facets(data)["state"] == {"done": 5, "failed": 1, "queued": 3}
    assert old_done.pk in {row["id"] for row in get_json("/transfers/", days="7")["rows"]}
    assert old_done.pk in {row["id"] for row in get_json("/transfers/", lfn=old_done.file.lfn)["rows"]}


def test_channel_totals_and_facets_equal_the_hour_rows(flow):
    TransferChannelStatFactory(
        source=flow["lost_mwt2"].site,
        destination=flow["aod_bnl"].site,
        files_done=7,
        bytes_done=7000,
        files_failed=3,
        seconds=2.0,
        last_error="door down",
        hour=timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=2),
    )
    TransferChannelStatFactory(source=flow["lost_mwt2"].site, destination=flow["aod_bnl"].site, files_done=99,
                               hour=timezone.now() - timedelta(days=3))  # outside the default 24 h  # fmt: skip
    data = get_json("/transfers/channels/")
    start = (timezone.now() - timedelta(hours=24)).replace(minute=0, second=0, microsecond=0)
    stats = TransferChannelStat.objects.filter(hour__gte=start)
    channels = stats.values_list("source__name", "destination__name").distinct()
    assert data["meta"]["total"] == len(data["rows"]) == channels.count()
    for row in data["rows"]:
        cell = stats.filter(source__name=row["source"], destination__name=row["destination"])
        sums = cell.aggregate(
            files_done=Sum("files_done"), bytes_done=Sum("bytes_done"), files_failed=Sum("files_failed")
        )
        assert {name: row[name] for name in sums} == sums
    for name, column in (("source", "source__name"), ("destination", "destination__name")):
        moved = dict(stats.values_list(column).annotate(n=Sum("files_done") + Sum("files_failed")).order_by())
        assert facets(data)[name] == moved
    mwt2_bnl = next(row for row in data["rows"] if (row["source"], row["destination"]) == ("MWT2", "BNL"))
    assert (mwt2_bnl["files_done"], mwt2_bnl["failure_pct"], mwt2_bnl["last_error"]) == (7, 30.0, "door down")
    assert mwt2_bnl["bytes_per_second"] == 3500.0


def test_the_channel_table_shows_the_busiest_channels_and_the_twin_every_one(flow, monkeypatch):
    from datasets import flow_pages

    monkeypatch.setattr(flow_pages, "CHANNELS_SHOWN", 1)
    hour = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    busy = TransferChannelStatFactory(source=flow["lost_mwt2"].site, destination=flow["aod_bnl"].site,
                                      files_done=50, hour=hour)  # fmt: skip
    quiet = TransferChannelStatFactory(source=flow["aod_bnl"].site, destination=flow["lost_mwt2"].site,
                                       files_done=1, hour=hour)  # fmt: skip
    everything = get_json("/transfers/channels/")["rows"]
    assert {(row["source"], row["destination"]) for row in everything} >= {
        (busy.source.name, busy.destination.name), (quiet.source.name, quiet.destination.name)}  # fmt: skip
    page = get("/transfers/channels/").content.decode()
    assert f"{len(everything) - 1} less busy channel" in page
    assert f"?source={busy.source.name}&amp;destination={busy.destination.name}" in page
    assert f"?source={quiet.source.name}&amp;destination={quiet.destination.name}" not in page


def test_the_throughput_plot_sums_the_hour_rows(flow):
    files = get_json("/transfers/channels/", measure="files", split="channel")["plot"]
    assert files["unit"] == "files per hour" and files["bins"]["unit"] == "hour"
    total = TransferChannelStat.objects.aggregate(n=Sum("files_done"))["n"]
    assert sum(sum(series["values"]) for series in files["series"]) == total
    assert {series["name"] for series in files["series"]} == {
        f"{s} → {d}" for s, d in TransferChannelStat.objects.values_list("source__name", "destination__name")
    }
    rate = get_json("/transfers/channels/", measure="bytes")["plot"]
    moved = TransferChannelStat.objects.aggregate(n=Sum("bytes_done"))["n"]
    assert sum(sum(series["values"]) for series in rate["series"]) * 3600 == pytest.approx(moved, abs=3600)
    assert {series["name"] for series in rate["series"]} == {"MWT2", "BNL"}  # by destination (FZK's are queued)
    week = get_json("/transfers/channels/", days="7")["plot"]
    assert week["bins"]["unit"] == "day" and week["unit"] == "bytes/s"
    page = get("/transfers/channels/").content.decode()
    assert 'data-figure="throughput-figure"' in page and "plotly.min.js" in page


# ---------------------------------------------------------------- the grammar, and parameters refused


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"state": "stuck"}, {"lost_mwt2"}),
        ({"state": "!done"}, {"lost_mwt2", "aod_mwt2", "evgen_fzk"}),
        ({"site": "MWT2"}, {"evgen_mwt2", "lost_mwt2", "aod_mwt2"}),
        ({"site": "MWT*|FZK", "state": "active|suspended"}, {"aod_mwt2", "evgen_fzk"}),
        ({"dataset": "mc08.*"}, {"evgen_mwt2", "evgen_fzk"}),
        ({"dataset": "*.AOD.*", "site": "!MWT2"}, {"aod_bnl"}),
        ({"activity": "production"}, {"aod_bnl"}),
        ({"owner": "ddm*"}, {"evgen_mwt2", "aod_bnl", "lost_mwt2", "aod_mwt2", "evgen_fzk"}),
    ],
)
def test_the_subscription_list_takes_the_grammar(flow, params, expected):
    rows = get_json("/subscriptions/", **params)["rows"]
    assert {row["id"] for row in rows} == {flow[name].pk for name in expected}


def test_the_transfer_list_takes_the_grammar(flow):
    def lfns(**params):
        return sorted(row["lfn"] for row in get_json("/transfers/", **params)["rows"])

    assert lfns(state="failed") == ["MinBias._00001.pool.root"]
    assert lfns(destination="FZK") == sorted(contents("EVNT", 3))
    assert lfns(destination="MWT2", state="done", source="BNL") == sorted(contents("EVNT", 3))
    assert lfns(dataset=AOD) == sorted(contents("AOD", 2))
    assert lfns(dataset="*.AOD.*", state="done") == sorted([*contents("AOD", 2), "MinBias._00002.pool.root"])
    assert lfns(lfn="EVNT.*", state="!queued") == sorted(contents("EVNT", 3))
    assert lfns(tool="Not specified") == sorted([*contents("EVNT", 3), "MinBias._00001.pool.root"])  # never copied
    assert lfns(activity="production") == sorted(contents("AOD", 2))


def test_keyset_pages_cover_the_selection_once(flow):
    seen, url = [], "/transfers/?limit=4"
    while url:
        data = Client().get(url + "&json").json()
        seen += [row["id"] for row in data["rows"]]
        url = "/transfers/" + data["meta"]["next"] if data["meta"]["next"] else None
    assert sorted(seen, reverse=True) == seen and len(set(seen)) == len(seen) == TransferRequest.objects.count()


@pytest.mark.parametrize(
    ("url", "params", "message"),
    [
        ("/subscriptions/", {"sate": "stuck"}, "unknown parameter sate"),
        ("/subscriptions/", {"state": "stuk"}, "state: 'stuk' is not one of"),
        ("/transfers/", {"destinaton": "BNL"}, "unknown parameter destinaton"),
        ("/transfers/", {"state": "copying"}, "is not one of"),
        ("/transfers/", {"lfn": "bad/name"}, "lfn:"),
        ("/transfers/channels/", {"measure": "speed"}, "measure"),
        ("/transfers/channels/", {"days": "90"}, "at most 31 days"),
        ("/transfers/channels/", {"tool": "http"}, "unknown parameter tool"),
        ("/subscriptions/1/", {"state": "done"}, "unknown parameter state"),
    ],
)
def test_unknown_or_bad_parameters_are_a_400_that_names_them(flow, url, params, message):
    response = Client().get(url, {**params, "json": ""})
    assert response.status_code == 400, response.content[:300]
    assert message in response.json()["error"]
    assert Client().get(url, params).status_code == 400


# ---------------------------------------------------------------- a subscription's page


def test_a_subscription_page_counts_its_transfers_and_links_to_them(flow):
    stuck = flow["lost_mwt2"]
    data = get_json(f"/subscriptions/{stuck.pk}/")
    assert data["transfers"] == {"queued": 0, "submitted": 0, "done": 1, "failed": 1}
    assert data["subscription"]["state"] == "stuck" and data["subscription"]["priority"] == 5
    (failure,) = data["recent_failures"]
    assert failure["lfn"] == "MinBias._00001.pool.root" and "source file not found" in failure["error"]
    assert failure["source"] == "FZK" and failure["state"] == "failed"
    errors = data["channel_errors"]["rows"]
    assert errors and errors[0]["source"] == "FZK" and "source file not found" in errors[0]["last_error"]
    page = get(f"/subscriptions/{stuck.pk}/").content.decode()
    links = [href for href in hrefs(page) if href.startswith("/transfers/?dataset=")]
    assert len(links) == 2  # done and failed: the states with transfers
    for href in links:
        state = re.search(r"state=(\w+)", href).group(1)
        assert listed_total(href) == data["transfers"][state], href
    assert "storage maintenance" in get(f"/subscriptions/{flow['aod_mwt2'].pk}/").content.decode()


def test_a_container_subscription_shows_its_datasets(grid):
    from datasets.services import catalog, containers

    grid.dataset(EVGEN, grid.bnl, contents("EVNT", 2))
    grid.dataset(AOD, grid.bnl, contents("AOD", 1))
    catalog.register_new_dataset(user=grid.operator, name="mc.cont", kind="container", files=[])
    containers.add_to_container(user=grid.operator, name="mc.cont", members=[EVGEN, AOD])
    subscription = subscriptions.create_subscription(user=grid.operator, name="mc.cont", site_name="MWT2")
    evaluate_subscriptions()
    transfer_batch(agent="t", batch=1)
    data = get_json(f"/subscriptions/{subscription.pk}/")
    assert data["subscription"]["progress"] is None
    assert data["transfers"] == {"queued": 2, "submitted": 0, "done": 1, "failed": 0}
    assert [m["name"] for m in data["members"]["rows"]] == sorted([EVGEN, AOD])
    assert sum(m["progress"]["files_present"] for m in data["members"]["rows"]) == 1
    page = get(f"/subscriptions/{subscription.pk}/").content.decode()
    links = [href for href in hrefs(page) if href.startswith("/transfers/?dataset=") and "state=" in href]
    assert len(links) == 2  # queued and done, over both datasets (dataset=a|b)
    for href in links:
        state = re.search(r"state=(\w+)", href).group(1)
        assert listed_total(href) == data["transfers"][state], href
    member_links = [href for href in hrefs(page) if href.startswith("/transfers/?dataset=") and "state=" not in href]
    assert sorted(listed_total(href) for href in member_links) == [1, 2]  # each dataset's transfers


# ---------------------------------------------------------------- the home dashboard's transfer block


def test_the_home_block_counts_transfers_queued_and_stuck(flow):
    now = timezone.now()
    TransferChannelStatFactory(source=flow["lost_mwt2"].site, destination=flow["aod_bnl"].site, files_done=5,
                               bytes_done=500, files_failed=9,
                               hour=now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=5))  # fmt: skip
    block = get_json("/")["transfers"]
    hour = (now - timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    day = (now - timedelta(hours=24)).replace(minute=0, second=0, microsecond=0)
    for key, start in (("last_hour", hour), ("last_day", day)):
        sums = TransferChannelStat.objects.filter(hour__gte=start).aggregate(
            files_done=Sum("files_done"), bytes_done=Sum("bytes_done"), files_failed=Sum("files_failed")
        )
        assert {name: block[key][name] for name in sums} == sums, key
    assert block["last_hour"]["files_done"] == 6  # the agents' own transfers, this hour
    assert block["queued"] == TransferRequest.objects.filter(state="queued").count() == 3
    assert block["submitted"] == 0
    assert block["stuck_subscriptions"] == 1
    assert [(c["source"], c["destination"], c["files_failed"]) for c in block["worst_channels"]] == [
        ("MWT2", "BNL", 9), ("FZK", "MWT2", 4)]  # fmt: skip
    page = get("/").content.decode()
    assert 'href="/subscriptions/?state=stuck"' in page and 'href="/transfers/?state=queued"' in page
    assert listed_total("/transfers/?state=queued") == block["queued"]
    assert listed_total("/subscriptions/?state=stuck") == block["stuck_subscriptions"]
    assert "/transfers/channels/?source=MWT2&destination=BNL&hours=24" in hrefs(page)


def test_the_home_block_is_a_few_queries(flow, django_assert_max_num_queries):
    from datasets.flow_selectors import transfer_activity

    with django_assert_max_num_queries(5):
        transfer_activity(now=timezone.now())


# ---------------------------------------------------------------- the job page's Data section


@pytest.fixture
def alice(db):
    return UserFactory(username="alice")


def test_the_job_page_shows_how_far_its_dispatch_block_is(grid, alice):
    files = contents("EVNT.in", 2)
    grid.dataset(EVGEN, grid.bnl, files)
    (pandaid,) = submit_jobs(submitter=alice, specs=[{**job_spec(grid.mwt2, files), "task_id": 42}])
    brokerage.broker_defined_jobs()
    evaluate_subscriptions()
    transfer_batch(agent="t", batch=1)  # one of the two files arrives
    data = get_json(f"/jobs/{pandaid}/")["data_flow"]
    (block,) = data["inputs"]
    subscription = Subscription.objects.get(activity=Activity.DISPATCH)
    assert block["block"] == subscription.dataset.name and block["block"].endswith(f"_dis{pandaid}")
    assert block["site"] == "MWT2" and block["job_files"] == 2
    assert (block["progress"]["files_present"], block["progress"]["files_wanted"]) == (1, 2)
    assert block["transfers"] == {"queued": 1, "submitted": 0, "failed": 0}
    assert block["subscription"] == {"id": subscription.pk, "site": "MWT2", "state": "active", "activity": "dispatch",
                                     "reason": ""}  # fmt: skip
    page = get(f"/jobs/{pandaid}/").content.decode()
    assert f'href="/subscriptions/{subscription.pk}/"' in page and "1 / 2" in page
    queued = next(href for href in hrefs(page) if href.startswith("/transfers/?dataset=") and "state=queued" in href)
    assert listed_total(queued) == 1


def test_the_job_page_shows_its_outputs_archival_at_the_tier1(grid, alice):
    files = contents("EVNT.in", 1)
    grid.dataset(EVGEN, grid.mwt2, files)  # the input is at the job's site: activated at once
    (pandaid,) = submit_jobs(submitter=alice, specs=[job_spec(grid.mwt2, files)])
    brokerage.broker_defined_jobs()
    job = Job.objects.get(pk=pandaid)
    assert run_job_through_pilot(job, grid.mwt2, {"AOD.01.pool.root": b"analysis output" * 50}) == "transferring"
    data = get_json(f"/jobs/{pandaid}/")["data_flow"]
    assert data["inputs"] == []
    (output,) = data["outputs"]
    subscription = Subscription.objects.get(activity=Activity.ARCHIVAL)
    assert output["dataset"] == f"user.alice.analysis.v1_sub{pandaid}" == subscription.dataset.name
    assert output["site"] == "BNL" and output["archival"] is True and output["job_files"] == 2  # output and log
    assert (output["progress"]["files_present"], output["progress"]["files_wanted"]) == (0, 2)
    assert output["subscription"]["id"] == subscription.pk and output["archived_at"] is None
    run_agents()
    assert Job.objects.get(pk=pandaid).status == JobStatus.FINISHED
    (output,) = get_json(f"/jobs/{pandaid}/")["data_flow"]["outputs"]
    assert output["progress"]["complete"] and output["progress"]["files_present"] == 2
    assert output["archived_at"] is not None and output["subscription"]["state"] == "done"
    page = get(f"/jobs/{pandaid}/").content.decode()
    assert f'href="/subscriptions/{subscription.pk}/"' in page and "archival Tier-1" in page


# ---------------------------------------------------------------- the site page's transfers and subscriptions


def test_the_site_page_counts_transfers_in_and_out_and_its_subscriptions(flow):
    data = get_json("/sites/MWT2/")
    since = timezone.now() - timedelta(hours=12)
    window = Q(state__in=("queued", "submitted")) | Q(finished_at__gte=since)
    into = by(TransferRequest.objects.filter(window, destination__name="MWT2"), "state")
    assert data["transfers"]["in"] == {**dict.fromkeys(TransferState.values, 0), **into}
    assert data["transfers"]["in"]["done"] == 4 and data["transfers"]["in"]["failed"] == 1
    fzk = get_json("/sites/FZK/")["transfers"]
    assert fzk["out"] == {"queued": 0, "submitted": 0, "done": 3, "failed": 1}  # AOD to BNL, MinBias to MWT2
    assert fzk["in"]["queued"] == 3
    stats = TransferChannelStat.objects.filter(destination__name="MWT2").aggregate(n=Sum("files_done"))
    assert data["transfers"]["throughput"]["in"]["files_done"] == stats["n"] == 4
    assert data["subscriptions_by_state"] == {"active": 0, "done": 1, "stuck": 1, "suspended": 1}
    page = get("/sites/MWT2/").content.decode()
    for href in hrefs(page):
        if href.startswith(("/transfers/?destination=MWT2&state=", "/subscriptions/?site=MWT2&state=")):
            state = re.search(r"state=(\w+)", href).group(1)
            counted = data["transfers"]["in"] if href.startswith("/transfers/") else data["subscriptions_by_state"]
            assert listed_total(href) == counted[state], href


# ---------------------------------------------------------------- navigation


def test_the_new_pages_are_linked_from_the_menu_and_the_plots_page():
    home = get("/").content.decode()
    for path in ("/subscriptions/", "/transfers/"):
        assert f'href="{path}"' in home
    assert 'href="/transfers/channels/"' in get("/plots/").content.decode()
    assert 'href="/transfers/channels/"' in get("/transfers/").content.decode()


def test_erased_dispatch_blocks_are_named_not_linked(grid, alice):
    files = contents("EVNT.in", 1)
    grid.dataset(EVGEN, grid.bnl, files)
    (pandaid,) = submit_jobs(submitter=alice, specs=[job_spec(grid.mwt2, files, outputs=())])
    brokerage.broker_defined_jobs()
    block = Subscription.objects.get(activity=Activity.DISPATCH).dataset
    Dataset.objects.filter(pk=block.pk).update(erased_at=timezone.now())
    (row,) = get_json(f"/jobs/{pandaid}/")["data_flow"]["inputs"]
    assert row["erased"] is True
    page = get(f"/jobs/{pandaid}/").content.decode()
    assert block.name in page and f'href="/datasets/{block.name}/"' not in page
