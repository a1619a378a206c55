"""The dashboard in a real browser (Debian's chromium, headless, driven by Playwright) on a 2-node cluster: the
overview shows every node and turns a killed one DEAD by itself, the tasks page filters, the logs page shows a
task's print, the events page follows live, and nothing but the login page is shown without the password.

``RAYREDIS_DASHBOARD_SCREENSHOTS=docs/dashboard`` also saves a screenshot of each page there.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from typing import Any

import pytest

import rayredis as ray
from rayredis._private import node
from rayredis.cluster_utils import Cluster
from rayredis.util import placement_group

CHROMIUM = "/usr/bin/chromium"
try:
    from playwright.sync_api import Page, expect, sync_playwright
except ImportError:  # the test extra installs it
    sync_playwright = None

pytestmark = pytest.mark.skipif(
    sync_playwright is None or not os.path.exists(CHROMIUM),
    reason="needs the playwright package (pip install -e '.[test]') and Debian's chromium "
           "(apt-get install chromium; .ci/run installs it)")

#: Generous bound for what the page shows by itself (a killed node is declared dead after ~3 s).
LIVE_S = 30_000
SHOTS = os.environ.get("RAYREDIS_DASHBOARD_SCREENSHOTS", "")
if sync_playwright is not None:
    expect.set_options(timeout=15_000)  # Playwright's 5 s is short on a loaded 2-core machine


@ray.remote
def alpha(i: int) -> int:
    print(f"hello-from-alpha-{i}")
    return i


@ray.remote
def beta() -> int:
    return 0


@ray.remote(num_cpus=0, max_restarts=2)
class Counter:
    def add(self, k: int) -> int:
        return k


@pytest.fixture(scope="module")
def setup() -> Iterator[dict[str, Any]]:
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "num_redis_shards": 2})
    try:
        worker = c.add_node(num_cpus=1)
        c.wait_for_nodes()
        assert c.head_node is not None
        url = node.start_dashboard(c.head_node.handle, port=0)
        c.connect()
        assert ray.get([alpha.remote(i) for i in range(3)] + [beta.remote()]) == [0, 1, 2, 0]
        counter = Counter.options(name="counter").remote()
        ray.get(counter.add.remote(1))
        pg = placement_group([{"CPU": 0.1}], name="pg-demo")
        ray.get(pg.ready(), timeout=30)
        big = ray.put(b"x" * (2 * 1024 * 1024))
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            try:
                yield {"cluster": c, "worker": worker, "url": url, "browser": browser, "keep": (counter, pg, big)}
            finally:
                browser.close()
    finally:
        ray.shutdown()
        c.shutdown()


@pytest.fixture
def page(setup: dict[str, Any]) -> Iterator[Page]:
    ctx = setup["browser"].new_context(viewport={"width": 1280, "height": 760})
    ctx.set_default_timeout(LIVE_S)
    pg = ctx.new_page()
    pg.goto(f"{setup['url']}/?token={setup['cluster'].redis_password}")  # traded for the cookie at once
    assert "token=" not in pg.url
    try:
        yield pg
    finally:
        ctx.close()


def shot(page: Page, name: str) -> None:
    if SHOTS:
        os.makedirs(SHOTS, exist_ok=True)
        page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=False)


def test_unauthenticated_gets_only_the_login_page(setup: dict[str, Any]) -> None:
    ctx = setup["browser"].new_context()
    ctx.set_default_timeout(LIVE_S)
    try:
        pg = ctx.new_page()
        pg.goto(setup["url"] + "/#/tasks")
        assert pg.url.split("#")[0].endswith("/login")
        expect(pg.locator("#login-form")).to_be_visible()
        assert pg.request.get(setup["url"] + "/api/overview").status == 401
        pg.fill("#token", "wrong")
        pg.click("button[type=submit]")
        expect(pg.locator("#login-failed")).to_be_visible()
        shot(pg, "login")
        pg.fill("#token", setup["cluster"].redis_password)
        pg.click("button[type=submit]")
        expect(pg.locator("tr[data-node-id]")).to_have_count(2)
    finally:
        ctx.close()


def test_pages_tasks_filter_logs_print(setup: dict[str, Any], page: Page) -> None:
    ids = [n.node_id for n in setup["cluster"].list_all_nodes()]
    for nid in ids:
        expect(page.locator(f'tr[data-node-id="{nid}"]')).to_have_attribute("data-state", "ALIVE")
    expect(page.locator("#live")).to_have_text("live")
    shot(page, "overview")

    page.click('#nav a[data-page="tasks"]')
    expect(page.locator('tr[data-name="alpha"]')).to_have_count(3, timeout=LIVE_S)
    expect(page.locator('tr[data-name="beta"]')).to_have_count(1)
    page.fill("#filter-name", "alpha")
    expect(page.locator("tr[data-task-id]")).to_have_count(3)
    expect(page.locator('tr[data-name="beta"]')).to_have_count(0)
    assert "name=alpha" in page.url  # the filter is in the address, so it survives a reload
    shot(page, "tasks")

    page.goto(setup["url"] + "/#/actors")
    expect(page.locator("tr[data-actor-id]").filter(has_text="counter")).to_contain_text("ALIVE")
    shot(page, "actors")
    page.goto(setup["url"] + "/#/jobs")
    expect(page.locator("tr[data-job-id]").first).to_contain_text("RUNNING")
    shot(page, "jobs")
    page.goto(setup["url"] + "/#/placement-groups")
    expect(page.locator("tr[data-pg-id]").filter(has_text="pg-demo")).to_contain_text("CREATED")
    shot(page, "placement-groups")
    page.goto(setup["url"] + "/#/objects")
    expect(page.locator("tr[data-object-id]").filter(has_text="2.0 MiB")).not_to_have_count(0, timeout=LIVE_S)
    shot(page, "objects")

    # The logs page: the worker that ran alpha printed into its .out file.
    page.goto(setup["url"] + "/#/logs")
    links = page.locator('a[data-log$=".out"][data-log^="worker-"]')
    expect(links.first).to_be_visible()
    deadline = time.monotonic() + LIVE_S / 1000
    found = False
    while not found and time.monotonic() < deadline:
        for i in range(links.count()):
            links.nth(i).click()
            try:
                expect(page.locator("#log-content")).to_contain_text("hello-from-alpha", timeout=2500)
                found = True
                break
            except AssertionError:
                continue
    assert found, "no worker log showed alpha's print"
    shot(page, "logs")


def test_killed_node_turns_dead_and_the_event_appears_live(setup: dict[str, Any], page: Page) -> None:
    worker = setup["worker"]
    row = page.locator(f'tr[data-node-id="{worker.node_id}"]')
    expect(row).to_have_attribute("data-state", "ALIVE")
    events_page = page.context.new_page()
    events_page.goto(setup["url"] + "/#/events")
    expect(events_page.locator('tr[data-label="NODE_REGISTERED"]')).not_to_have_count(0)
    setup["cluster"].remove_node(worker, allow_graceful=False)  # SIGKILL its raylet and workers, no restart
    expect(row).to_have_attribute("data-state", "DEAD", timeout=LIVE_S)  # by itself: no reload
    expect(page.locator("#dead-count .v")).to_have_text("1")
    shot(page, "overview-dead-node")
    dead = events_page.locator('tr[data-label="NODE_DEAD"]').filter(has_text=worker.node_id[:12])
    expect(dead).to_have_count(1, timeout=LIVE_S)
    expect(dead).to_contain_text("missed heartbeats")
    shot(events_page, "events")


def test_chromium_is_debians() -> None:
    assert shutil.which("chromium") == CHROMIUM or os.path.exists(CHROMIUM)
