"""The dashboard in a real browser: Debian's Chromium driven by Playwright, on the real stack.

Screenshots go to `artifacts/screenshots/`. The browser is never downloaded: Playwright
drives the system's `/usr/bin/chromium`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Error,
    Page,
    Route,
    expect,
    sync_playwright,
)

from app.core.config import REPO_ROOT
from tests.utils.expected import THREE_OF_THREE
from tests.utils.stack import Stack, submit, wait_for_status

pytestmark = [pytest.mark.e2e, pytest.mark.stacks(("sqlite", "cold"))]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = REPO_ROOT / "artifacts" / "screenshots"
VIEWPORTS: dict[str, dict[str, Any]] = {
    "desktop": {"viewport": {"width": 1280, "height": 900}},
    "narrow": {"viewport": {"width": 375, "height": 812}, "is_mobile": True, "has_touch": True},
}
# Chromium logs every 4xx answer to a fetch as a console error; a test names those it expects.
FAILED_LOAD = re.compile(r"^Failed to load resource: the server responded with a status of (\d+)")


@dataclass
class Watched:
    """A page and every console error or uncaught exception it produced."""

    page: Page
    name: str
    problems: list[str] = field(default_factory=list)
    expected_failures: set[tuple[int, str]] = field(default_factory=set)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        url = message.location.get("url", "")
        failed = FAILED_LOAD.match(message.text)
        if failed:
            answer = (int(failed.group(1)), urlsplit(url).path)
            if answer in self.expected_failures:
                return
        self.problems.append(f"console error at {url}: {message.text}")

    def on_page_error(self, error: Error) -> None:
        self.problems.append(f"page error: {error.message}\n{error.stack}")

    def open(self) -> None:
        self.page.goto("/")
        expect(self.page.get_by_role("heading", name="Submit a job")).to_be_visible()
        expect(self.page.locator("#submit-form")).to_have_attribute("data-ready", "true")

    def screenshot(self, what: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(
            path=SCREENSHOTS / f"{self.name}-{what}.png", full_page=True, animations="disabled"
        )


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    expect.set_options(timeout=30_000)  # kedro runs take seconds; every wait has a deadline
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(params=list(VIEWPORTS))
def dashboard(request: pytest.FixtureRequest, stack: Stack, browser: Browser) -> Iterator[Watched]:
    """A browser page at one viewport; fails the test on any unexpected console error."""
    viewport: str = request.param
    context = browser.new_context(base_url=stack.base_url, **VIEWPORTS[viewport])
    context.set_default_timeout(30_000)
    page = context.new_page()
    test_name = request.node.originalname.removeprefix("test_dashboard_")
    watched = Watched(page, f"{test_name}-{viewport}")
    page.on("console", watched.on_console)
    page.on("pageerror", watched.on_page_error)
    with stack.client() as client:
        if client.get("/pipelines").status_code == 404:
            # A gateway without GET /pipelines yet: the form falls back to a typed name.
            watched.expected_failures.add((404, "/api/v1/pipelines"))
    try:
        yield watched
    finally:
        context.close()
    assert watched.problems == []


def choose_pipeline(page: Page, pipeline: str) -> None:
    """Pick the pipeline from the list, or type it where the API lists none."""
    expect(page.locator("#submit-form")).to_have_attribute("data-ready", "true")
    picker = page.locator("#pipeline")
    if picker.evaluate("element => element.tagName") == "SELECT":
        picker.select_option(pipeline)
    else:
        picker.fill(pipeline)


def submit_from_form(page: Page, pipeline: str, parameters: str) -> str:
    """Fill the submit form, send it and return the new job's id."""
    choose_pipeline(page, pipeline)
    page.locator("#parameters").fill(parameters)
    page.get_by_role("button", name="Submit job").click()
    link = page.locator("#submitted-job")
    expect(link).to_contain_text(pipeline)
    job_id = link.get_attribute("data-job-id")
    assert job_id
    return job_id


def fits_the_width(page: Page) -> bool:
    width: bool = page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    return width


def test_dashboard_runs_a_job_and_cancels_another(dashboard: Watched, stack: Stack) -> None:
    page = dashboard.page
    dashboard.open()

    job_id = submit_from_form(page, "arithmetic", '{"initial_value": 7}')
    row = page.locator(f'tr[data-job-id="{job_id}"]')
    expect(row.get_by_role("progressbar")).to_have_text("3/3", timeout=90_000)
    expect(row.locator(".badge")).to_have_text("completed")
    assert fits_the_width(page)
    dashboard.screenshot("jobs")

    row.get_by_role("link", name="arithmetic").click()
    expect(page).to_have_url(re.compile(f"#/jobs/{job_id}$"))
    expect(page.locator("#job-status")).to_have_text("completed")
    expect(page.locator("#log")).to_contain_text(re.compile(r"subtract_ten: value = 14\b"))
    expect(page.locator("#log-state")).to_contain_text("complete")
    expect(page.locator("#exit-code")).to_have_text("0")
    expect(page.locator("#nodes .node-name")).to_have_text(
        ["add_five", "multiply_by_two", "subtract_ten"]
    )
    expect(page.locator("#events li")).to_have_count(3)
    assert fits_the_width(page)
    dashboard.screenshot("completed-job")

    page.get_by_role("link", name="← All jobs").click()
    slow_id = submit_from_form(page, "slow", '{"slow": {"seconds": 60}}')
    page.locator("#submitted-job").click()
    expect(page).to_have_url(re.compile(f"#/jobs/{slow_id}$"))
    expect(page.locator("#job-status")).to_have_text("running", timeout=60_000)
    expect(page.locator("#log")).to_contain_text(re.compile(r"slow: [\d.]+/60"))
    expect(page.locator("[data-running]")).to_have_text("Running now: sleep_with_progress")
    dashboard.screenshot("running-job")

    page.get_by_role("button", name="Cancel job").click()
    page.get_by_role("button", name="Yes, cancel").click()
    expect(page.locator("#job-status")).to_have_text("cancelled")
    expect(page.locator("#log-state")).to_contain_text("complete")
    expect(page.get_by_role("button", name="Cancel job")).to_have_count(0)
    assert fits_the_width(page)
    dashboard.screenshot("cancelled-job")

    with stack.client() as client:
        assert client.get(f"/jobs/{slow_id}").json()["status"] == "cancelled"
        assert client.get(f"/jobs/{job_id}").json()["progress"] == THREE_OF_THREE


def test_dashboard_shows_parameter_errors_inline(dashboard: Watched) -> None:
    page = dashboard.page
    dashboard.open()
    errors = page.locator("#parameters-error")

    page.locator("#parameters").fill('{"initial_value": ')
    expect(errors).to_contain_text("Not valid JSON")
    page.locator("#parameters").fill("[1, 2]")
    expect(errors).to_contain_text("must be a JSON object")

    # The API's own 422 (a list of {loc, msg}) lands under the field it names.
    dashboard.expected_failures.add((422, "/api/v1/jobs"))
    choose_pipeline(page, "arithmetic")
    page.locator("#parameters").fill('{"bad key <b>x</b>": 1}')
    page.get_by_role("button", name="Submit job").click()
    expect(errors).to_contain_text("invalid parameter name 'bad key <b>x</b>'")
    expect(page.locator("#parameters-error b")).to_have_count(0)
    expect(page.locator("#submitted-job")).to_have_count(0)
    dashboard.screenshot("parameter-error")


@pytest.mark.parametrize("dashboard", ["desktop"], indirect=True)
def test_dashboard_without_pipeline_list_and_with_api_key(dashboard: Watched) -> None:
    """GET /pipelines answering 404 gives a typed name; a 401 asks for the key, then it is sent."""
    page = dashboard.page
    dashboard.expected_failures |= {(404, "/api/v1/pipelines"), (401, "/api/v1/jobs")}
    sent_keys: list[str | None] = []

    def no_pipelines(route: Route) -> None:
        route.fulfill(status=404, json={"detail": "Not Found"})

    def keys_required(route: Route) -> None:
        key = route.request.headers.get("x-api-key")
        sent_keys.append(key)
        if key == "s3cret-key":
            route.continue_()
        else:
            route.fulfill(status=401, json={"detail": "missing API key"})

    page.route("**/api/v1/pipelines*", no_pipelines)
    page.route("**/api/v1/jobs?*", keys_required)
    dashboard.open()
    expect(page.locator("#pipeline")).to_have_attribute("placeholder", re.compile("arithmetic"))
    expect(page.locator("#pipeline-hint")).to_contain_text("404")
    banner = page.get_by_role("alert").filter(has_text="401")
    expect(banner).to_contain_text("missing API key")
    dashboard.screenshot("needs-key")

    page.locator("#apikey-input").fill("s3cret-key")
    page.get_by_role("button", name="Save").click()
    expect(banner).to_be_hidden()
    expect(page.locator("#apikey-state")).to_have_text("set")
    expect(page.locator("#jobs-table tbody tr").first).to_be_visible()
    assert sent_keys[0] is None and sent_keys[-1] == "s3cret-key"
    # Kept for the tab's session only, never in localStorage.
    assert page.evaluate("sessionStorage.getItem('kedro-gateway.api-key')") == "s3cret-key"
    assert page.evaluate("localStorage.length") == 0

    choose_pipeline(page, "arithmetic")
    page.locator("#parameters").fill('{"initial_value": 1}')
    page.get_by_role("button", name="Submit job").click()
    expect(page.locator("#submitted-job")).to_contain_text("arithmetic")


def test_dashboard_reruns_a_failed_job_from_its_failure(stack: Stack, dashboard: Watched) -> None:
    page = dashboard.page
    with stack.client() as client:
        failed = submit(client, pipeline_name="resumable", parameters={"resume": {"fail": True}})
        wait_for_status(client, failed["id"])
    page.goto(f"/#/jobs/{failed['id']}")
    expect(page.locator("#job-status")).to_have_text("failed")
    page.get_by_role("button", name="Rerun from failure").click()
    expect(page.locator("#rerun-of")).to_have_text(failed["id"][:8])
    expect(page).not_to_have_url(re.compile(f"#/jobs/{failed['id']}$"))
    # The fix is not in (resume.fail is still true): the rerun fails at the same node.
    expect(page.locator("#job-status")).to_have_text("failed")
    dashboard.screenshot("rerun-job")


GRAPH_BUDGET_MS = 1000


def node(page: Page, name: str) -> Any:
    return page.locator(f'#graph g.gnode[data-node="{name}"]')


@pytest.mark.parametrize("dashboard", ["desktop"], indirect=True)
def test_dashboard_draws_the_run_live(stack: Stack, dashboard: Watched) -> None:
    """The graph follows a run node by node; the timeline has a bar per completed node."""
    page = dashboard.page
    with stack.client() as client:
        slow = submit(client, pipeline_name="slow", parameters={"slow": {"seconds": 4}})
    page.goto(f"/#/jobs/{slow['id']}")
    expect(page.locator("#graph g.gnode")).to_have_count(1)
    sleeper = node(page, "sleep_with_progress")
    expect(sleeper).to_have_attribute("data-state", "running", timeout=60_000)
    expect(page.locator(".gantt-bar[data-state=running]")).to_have_count(1)
    expect(page.get_by_role("progressbar")).to_have_text("0/1")
    sleeper.click()
    expect(page.locator("#node-log")).to_contain_text(re.compile(r"slow: [\d.]+/4"))
    dashboard.screenshot("running-node")
    expect(sleeper).to_have_attribute("data-state", "completed")
    expect(page.locator("#job-status")).to_have_text("completed")
    expect(page.locator(".gantt-bar[data-state=completed]")).to_have_count(1)
    expect(page.locator("#node-state")).to_have_text("completed")
    expect(page.locator("#node-duration")).to_contain_text(re.compile(r"^[45][.\d]* s$"))

    # A run of part of a pipeline: the nodes outside its selection are skipped.
    with stack.client() as client:
        partial = submit(client, pipeline_name="arithmetic", to_nodes=["multiply_by_two"])
        wait_for_status(client, partial["id"])
    page.goto(f"/#/jobs/{partial['id']}")
    expect(page.locator("#job-status")).to_have_text("completed")
    states = {"add_five": "completed", "multiply_by_two": "completed", "subtract_ten": "skipped"}
    for name, state in states.items():
        expect(node(page, name)).to_have_attribute("data-state", state)
    expect(page.locator("#graph g.gdataset")).to_have_count(4)
    expect(page.locator(".gantt-bar[data-state=completed]")).to_have_count(2)
    expect(page.get_by_role("progressbar")).to_have_text("2/2")
    dashboard.screenshot("partial-job")


@pytest.mark.parametrize("dashboard", ["desktop", "narrow"], indirect=True)
def test_dashboard_marks_the_failed_node(stack: Stack, dashboard: Watched) -> None:
    page = dashboard.page
    with stack.client() as client:
        failed = submit(client, pipeline_name="resumable", parameters={"resume": {"fail": True}})
        wait_for_status(client, failed["id"])
    page.goto(f"/#/jobs/{failed['id']}")
    expect(page.locator("#job-status")).to_have_text("failed")
    states = {
        "first_step": "completed",
        "second_step": "completed",
        "third_step": "failed",
        "fourth_step": "waiting",
    }
    for name, state in states.items():
        expect(node(page, name)).to_have_attribute("data-state", state)
    expect(page.locator(".gantt-bar[data-state=completed]")).to_have_count(2)
    expect(page.locator(".gantt-bar[data-state=failed]")).to_have_count(1)
    node(page, "third_step").click()
    detail = page.locator("#node-detail")
    expect(detail).to_contain_text("Node third_step")
    expect(detail).to_contain_text("failed with error")
    expect(detail).not_to_contain_text("null")
    assert fits_the_width(page)
    dashboard.screenshot("failed-node")


@pytest.mark.parametrize("dashboard", ["desktop"], indirect=True)
def test_dashboard_pipeline_and_workers_pages(stack: Stack, dashboard: Watched) -> None:
    page = dashboard.page
    with stack.client() as client:
        for value in (1, 2):
            job = submit(client, pipeline_name="arithmetic", parameters={"initial_value": value})
            wait_for_status(client, job["id"])
        runs = client.get("/pipelines/arithmetic/stats").json()["runs"]
        workers = [w for w in client.get("/workers").json()["items"] if w["alive"]]
    page.goto("/#/pipelines/arithmetic")
    expect(page.locator("#runs-chart a.run-point")).to_have_count(len(runs))
    expect(page.locator("#runs-table tbody tr")).to_have_count(len(runs))
    expect(page.locator("#stat-runs")).to_have_text(str(len(runs)))
    expect(page.locator("#stat-p50")).not_to_have_text("—")
    expect(page.locator("#graph g.gnode")).to_have_count(3)
    dashboard.screenshot("pipeline")
    page.locator("#runs-chart a.run-point").last.click()
    expect(page).to_have_url(re.compile(f"#/jobs/{runs[0]['id']}$"))

    page.get_by_role("link", name="Workers").click()
    expect(page.locator("#workers-table tbody tr")).to_have_count(len(workers))
    row = page.locator(f'#workers-table tr[data-worker="{workers[0]["name"]}"]')
    expect(row.locator(".badge")).to_have_text("alive")
    expect(row.locator(".heartbeat")).to_contain_text("ago")
    dashboard.screenshot("workers")


@pytest.mark.parametrize("dashboard", ["desktop"], indirect=True)
def test_dashboard_graphs_render_within_a_second(stack: Stack, dashboard: Watched) -> None:
    """The example's largest pipeline and a generated 200-node one, timed in the page."""
    page = dashboard.page
    with stack.client() as client:
        pipelines = client.get("/pipelines").json()["items"]
    largest = max(pipelines, key=lambda p: len(p["nodes"] or []))
    page.goto(f"/#/pipelines/{largest['name']}")
    expect(page.locator("#graph g.gnode")).to_have_count(len(largest["nodes"]))
    timed = """async (nodes) => {
        const graph = await import("./dashboard/graph.js");
        const started = performance.now();
        const drawn = graph.renderGraph(graph.layoutPipeline(nodes));
        document.querySelector("#graph").replaceChildren(drawn.svg);
        drawn.svg.getBoundingClientRect();  // force style and layout of the drawing
        const count = drawn.svg.querySelectorAll(".gnode").length;
        return {ms: performance.now() - started, count};
    }"""
    result = page.evaluate(timed, largest["nodes"])
    assert result["count"] == len(largest["nodes"]) and result["ms"] < GRAPH_BUDGET_MS, result

    # 200 nodes in 20 layers of 10; each reads two datasets of the layer before it.
    generated = [
        {
            "name": f"node_{layer}_{i}",
            "func": "f",
            "inputs": [f"data_{layer - 1}_{i}", f"data_{layer - 1}_{(i + 3) % 10}"]
            if layer
            else ["params:seed"],
            "outputs": [f"data_{layer}_{i}"],
            "tags": [],
        }
        for layer in range(20)
        for i in range(10)
    ]
    result = page.evaluate(timed, generated)
    assert result["count"] == 200 and result["ms"] < GRAPH_BUDGET_MS, result
    dashboard.screenshot("graph-200")
