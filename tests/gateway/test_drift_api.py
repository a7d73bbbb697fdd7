"""Drift monitoring end to end: real chat traffic through the session gateway, logged by it, then
checked through the admin API (a stationary phase is not flagged, a shifted one is), its history
and its Evidently report."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import openai
import pytest

from tests.utils.adapters import good_adapter
from tests.utils.drift import CODING, SHOPPING, prompt
from tests.utils.keys import client_for, create_key
from tests.utils.registry import import_folder, promote
from tests.utils.server import RemoteGateway

pytestmark = pytest.mark.slow
ADAPTER = "drift-bot"
PHASE = 50
"""Requests per phase: the gateway's default minimum rows for a window."""


@pytest.fixture(scope="module")
def client(
    gateway: RemoteGateway, admin_http: httpx.Client, demo_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> openai.OpenAI:
    folder = good_adapter(demo_model, tmp_path_factory.mktemp("drift-bot") / "adapter", seed=31)
    promote(admin_http, ADAPTER, import_folder(admin_http, ADAPTER, folder))
    return client_for(gateway.url, create_key(admin_http, "drift", allowed_adapters=[ADAPTER])[1])


def send_phase(client: openai.OpenAI, prompts: Sequence[str]) -> dict[str, str]:
    """Send ``prompts`` (four at a time); the window that holds exactly them."""
    start = datetime.now(UTC).isoformat()

    def ask(text: str) -> None:
        messages = [{"role": "user", "content": text}]
        client.chat.completions.create(model=ADAPTER, messages=messages, max_tokens=4, temperature=0)  # type: ignore[arg-type]

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(ask, prompts))
    return {"start": start, "end": datetime.now(UTC).isoformat()}


def run(admin_http: httpx.Client, body: dict) -> httpx.Response:
    return admin_http.post("/admin/drift/run", json=body)


def test_stationary_then_shifted_traffic(client: openai.OpenAI, admin_http: httpx.Client) -> None:
    rng = random.Random(8)
    reference = send_phase(client, [prompt(rng, SHOPPING) for _ in range(PHASE)])
    stationary = send_phase(client, [prompt(rng, SHOPPING) for _ in range(PHASE)])
    shifted = send_phase(client, [prompt(rng, CODING, (20, 36)) for _ in range(PHASE)])

    response = run(admin_http, {"adapter": ADAPTER, "reference_window": reference, "current_window": stationary})
    assert response.status_code == 200, response.text
    calm = response.json()
    assert (calm["adapter"], calm["status"], calm["drifted"]) == (ADAPTER, "ok", False), calm
    assert (calm["reference_kind"], calm["reference_rows"], calm["current_rows"]) == ("window", PHASE, PHASE)
    assert calm["sample_size"] is None and calm["drift_share"] == 0.0

    response = run(admin_http, {"adapter": ADAPTER, "reference_window": reference, "current_window": shifted})
    assert response.status_code == 200, response.text
    drifted = response.json()
    assert drifted["status"] == "ok" and drifted["drifted"] and drifted["drift_share"] > 0
    columns = {c["column"]: c for c in drifted["columns"]}
    assert columns["prompt"]["drifted"] and columns["prompt"]["method"] == "abs_text_content_drift"
    assert columns["prompt_length"]["drifted"] and columns["prompt_length"]["method"] == "ks"
    assert {"score", "threshold", "decides_verdict", "status"} <= columns["finish_reason"].keys()

    history = admin_http.get("/admin/drift", params={"adapter": ADAPTER}).json()
    assert history["count"] == 2 and [r["id"] for r in history["data"]] == [drifted["id"], calm["id"]]
    page = admin_http.get("/admin/drift", params={"adapter": ADAPTER, "offset": 1, "limit": 1}).json()
    assert [r["id"] for r in page["data"]] == [calm["id"]]
    assert admin_http.get(f"/admin/drift/{drifted['id']}").json() == drifted

    report = admin_http.get(drifted["report_url"])
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    assert report.headers["content-encoding"] == "gzip" and "<html" in report.text[:2000].lower()
    plain = admin_http.get(drifted["report_url"], headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.content == report.content

    every = run(admin_http, {"reference_window": reference, "current_window": shifted})
    assert every.status_code == 200, every.text
    results = {r["adapter"]: r for r in every.json()["data"]}
    assert results[ADAPTER]["drifted"] and results["support-bot"]["status"] == "insufficient_data"
    assert results["support-bot"]["report_url"] is None

    # The metric hook: the gauges read the newest results (cached for a few seconds between scrapes).
    wanted = [
        f'switchyard_drift_detected{{adapter="{ADAPTER}"}} 1.0',
        f'switchyard_drift_share{{adapter="{ADAPTER}"}}',
        f'switchyard_drift_alerts_total{{adapter="{ADAPTER}"}} ',  # one per drifted verdict
    ]
    deadline = time.monotonic() + 20
    while not all(line in (metrics := admin_http.get("/metrics").text) for line in wanted):
        assert time.monotonic() < deadline, [line for line in metrics.splitlines() if "drift" in line]
        time.sleep(0.5)


def error_of(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    return error


def test_bad_requests_are_openai_shaped(admin_http: httpx.Client) -> None:
    error_of(run(admin_http, {"adapter": "no-such-adapter"}), 404, "model_not_found")
    backwards = {"start": "2026-03-02T00:00:00Z", "end": "2026-03-01T00:00:00Z"}
    error = error_of(run(admin_http, {"adapter": "support-bot", "current_window": backwards}), 400, "invalid_value")
    assert error["param"] == "current_window" and "end must be after start" in error["message"]
    error = error_of(run(admin_http, {"adapter": "support-bot", "current_windw": backwards}), 400, "invalid_value")
    assert error["param"] == "current_windw"
    error_of(run(admin_http, {"adapter": "Bad Name!"}), 400, "invalid_value")
    error_of(admin_http.get("/admin/drift", params={"adapter": "no-such-adapter"}), 404, "model_not_found")
    error_of(admin_http.get("/admin/drift/2000000000"), 404, "not_found")
    error_of(admin_http.get("/admin/drift/2000000000/report"), 404, "not_found")
    error_of(admin_http.get("/admin/drift", params={"limit": 0}), 400, "invalid_value")
