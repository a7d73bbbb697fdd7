"""The ops dashboard in Debian's headless Chromium (driven by Playwright's Python client), on the
session gateway: it signs in with the admin key, lists the demo adapters, plots their traffic
from the admin API, and logs no console error. A screenshot is kept in ``test-artifacts/``."""

from __future__ import annotations

import random
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from tests.utils.drift import CODING, SHOPPING, prompt
from tests.utils.keys import create_key
from tests.utils.server import RemoteGateway

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parents[2] / "test-artifacts"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[tuple[Page, list[str]]]:
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    page = context.new_page()
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type in {"error", "warning"}:
            problems.append(f"{message.type}: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    yield page, problems
    context.close()


def send_phase(admin_http: httpx.Client, topic: list[str], rng: random.Random) -> dict[str, str]:
    """50 requests on one topic to ``support-bot``; the window that holds exactly them."""
    start = datetime.now(UTC).isoformat()
    for _ in range(50):
        body = {"model": "support-bot", "messages": [{"role": "user", "content": prompt(rng, topic)}], "max_tokens": 2}
        assert admin_http.post("/v1/chat/completions", json=body).status_code == 200
    return {"start": start, "end": datetime.now(UTC).isoformat()}


def test_the_dashboard_shows_the_adapters_traffic_and_drift_report(
    gateway: RemoteGateway, admin_http: httpx.Client, page: tuple[Page, list[str]]
) -> None:
    tab, problems = page
    rng = random.Random(5)
    reference = send_phase(admin_http, SHOPPING, rng)
    current = send_phase(admin_http, CODING, rng)
    run = admin_http.post(
        "/admin/drift/run",
        json={"adapter": "support-bot", "reference_window": reference, "current_window": current},
    )
    assert run.status_code == 200 and run.json()["has_report"], run.text

    tab.goto(f"{gateway.url}/dashboard")
    assert tab.locator("#login").is_visible() and tab.locator("#app").is_hidden()
    tab.fill("#key", gateway.admin_key)
    tab.click("#login button[type=submit]")

    tab.wait_for_selector("#adapters button[data-adapter='support-bot']")
    # Waits through locators, not page scripts: the page's CSP refuses eval, Playwright's too.
    names = [button.get_attribute("data-adapter") for button in tab.locator("#adapters button").all()]
    assert {"support-bot", "yard-json"} <= set(names)
    expect(tab.locator("#status")).to_contain_text("requests in the window")
    tab.click("#adapters button[data-adapter='support-bot']")
    expect(tab.locator("#summary h2")).to_have_text("support-bot")
    expect(tab.locator("#status")).to_contain_text("support-bot: ")
    # The traffic chart has bars for the requests just sent, and the versions table the active one.
    assert tab.locator("#chart-traffic svg rect").count() >= 1
    assert "active" in tab.locator("#versions tbody").text_content()
    assert tab.locator("#chart-versions svg path").count() >= 1
    # The drift run: its verdict, its columns, and Evidently's report in a sandboxed frame.
    expect(tab.locator("#drift-note")).to_contain_text("DRIFTED")
    assert tab.locator("#chart-drift svg circle").count() >= 1
    assert tab.locator("#drift-columns tbody tr").count() >= 5
    expect(tab.locator("#report")).to_be_visible()
    report = tab.frame_locator("#report")
    expect(report.locator("body")).to_contain_text("Drift", timeout=30_000)

    ARTIFACTS.mkdir(exist_ok=True)
    tab.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000
    assert problems == []


def test_the_page_holds_no_data_and_a_wrong_key_is_refused(
    gateway: RemoteGateway, admin_http: httpx.Client, page: tuple[Page, list[str]]
) -> None:
    tab, problems = page
    html = httpx.get(f"{gateway.url}/dashboard").text
    assert (
        "support-bot" not in html
        and "script-src 'self'" in httpx.get(f"{gateway.url}/dashboard").headers["content-security-policy"]
    )
    _, app_key = create_key(admin_http, "dashboard-not-admin", allowed_adapters=["*"])

    tab.goto(f"{gateway.url}/dashboard")
    tab.fill("#key", app_key)
    tab.click("#login button[type=submit]")
    expect(tab.locator("#login-error")).to_contain_text("not the admin key")
    assert tab.locator("#app").is_hidden()
    assert tab.locator("#adapters button").count() == 0
    # The refused API calls are the only console errors (the browser logs failed fetches).
    assert all("403" in problem or "Failed to load resource" in problem for problem in problems), problems
    assert httpx.get(f"{gateway.url}/dashboard/static/../../admin.key").status_code == 404
