"""Hostile input on the routes of the tuning loop and of monitoring: NUL bytes, 20-digit
numbers, huge strings, unknown ids, an impossible window, a path out of the asset folder. Each
gets a 4xx in OpenAI's envelope and changes nothing (no job, no task checks, no policy)."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.slow

BIG = 10**20
CASES = [
    ("GET", "/v1/fine_tuning/jobs?after=%00", None),
    ("GET", "/v1/fine_tuning/jobs?limit=99999999999999999999", None),
    ("GET", "/v1/fine_tuning/jobs?metadata[%00]=x", None),
    ("GET", "/v1/fine_tuning/jobs?" + "&".join(f"metadata[k{i}]=v" for i in range(40)), None),
    ("GET", "/v1/fine_tuning/jobs/ftjob-%00", None),
    ("GET", "/v1/fine_tuning/jobs/ftjob-abc/events?after=ftevent-99999999999999999999", None),
    ("GET", "/v1/fine_tuning/jobs/ftjob-abc/checkpoints?after=%00", None),
    ("POST", "/v1/fine_tuning/jobs", {"model": "\u0000", "training_file": "file-x"}),
    ("POST", "/v1/fine_tuning/jobs", {"model": "support-bot", "training_file": "\u0000"}),
    ("POST", "/v1/fine_tuning/jobs", {"model": "support-bot", "training_file": "file-x", "seed": BIG}),
    ("POST", "/v1/fine_tuning/jobs", {"model": "demo-base", "training_file": "file-x", "suffix": "a\u0000"}),
    (
        "POST",
        "/v1/fine_tuning/jobs",
        {"model": "support-bot", "training_file": "file-x", "hyperparameters": {"n_epochs": BIG}},
    ),
    ("POST", "/v1/fine_tuning/jobs", {"model": "support-bot", "training_file": "file-x", "metadata": {"k" * 100: "v"}}),
    ("POST", "/v1/fine_tuning/jobs", {"model": "x" * 100000, "training_file": "file-x"}),
    ("POST", "/v1/fine_tuning/jobs/ftjob-doesnotexist/cancel", None),
    ("GET", "/v1/files?after=%00&limit=99999999999999999999&order=x", None),
    ("GET", "/v1/files?limit=99999999999999999999", None),
    ("DELETE", "/v1/files/file-99999999999999999999", None),
    ("GET", "/v1/files/file-%00/content", None),
    ("POST", "/admin/adapters/support-bot/tune", {"seed": BIG}),
    ("POST", "/admin/adapters/support-bot/tune", {"hyperparameters": {"batch_size": BIG}}),
    ("POST", "/admin/adapters/%00/tune", {}),
    ("POST", "/admin/adapters/nope/tune", {}),
    ("PUT", "/admin/adapters/support-bot/task-checks", {"checks": [{"type": "regex", "pattern": "("}]}),
    ("PUT", "/admin/adapters/support-bot/task-checks", {"checks": [{"type": "json_schema", "schema": {"type": 5}}]}),
    (
        "PUT",
        "/admin/adapters/support-bot/task-checks",
        {"checks": [{"type": "regex", "pattern": "\u0000"}], "max_tokens": BIG},
    ),
    ("PUT", "/admin/adapters/nope/task-checks", {"checks": []}),
    ("PUT", "/admin/adapters/support-bot/tuning-policy", {"schedule_cron": "\u0000"}),
    ("PUT", "/admin/adapters/support-bot/tuning-policy", {"schedule_interval_s": BIG}),
    ("PUT", "/admin/adapters/support-bot/tuning-policy", {"hyperparameters": {"r": BIG}}),
    ("PUT", "/admin/adapters/support-bot/tuning-policy", {"hyperparameters": {"\u0000": 1}}),
    ("GET", "/admin/traffic?adapter=support-bot&since=99999-01-01T00:00:00", None),
    ("GET", "/admin/traffic?adapter=support-bot&bucket_s=99999999999999999999", None),
    ("GET", "/admin/traffic?adapter=support-bot&since=0001-01-01T00:00:00&bucket_s=10", None),
    ("GET", "/admin/traffic?adapter=%00", None),
    ("GET", "/admin/traffic?adapter=support-bot&since=2026-01-01T00:00:00%2B14:00&until=2026-01-01T00:00:00", None),
    ("POST", "/admin/drift/run", {"adapter": "\u0000"}),
    (
        "POST",
        "/admin/drift/run",
        {"adapter": "support-bot", "current_window": {"start": "99999-01-01T00:00:00", "end": "99999-01-02T00:00:00"}},
    ),
    (
        "POST",
        "/admin/drift/run",
        {"adapter": "support-bot", "current_window": {"start": "0001-01-01T00:00:00", "end": "0001-01-02T00:00:00"}},
    ),
    ("POST", "/admin/drift/run", {"adapter": "nope"}),
    ("GET", "/admin/drift/99999999999999999999", None),
    ("GET", "/admin/drift?adapter=%00&limit=99999999999999999999", None),
    ("GET", "/admin/drift/1/report", None),
    ("POST", "/admin/drift/99999999999999999999/report-link", None),
    ("GET", "/dashboard/reports/%00", None),
    ("GET", "/dashboard/reports/" + "a" * 65, None),
    ("GET", "/dashboard/static/%00", None),
    ("GET", "/dashboard/static/..%2F..%2Fadmin.key", None),
]


def state(admin_http: httpx.Client) -> tuple:
    jobs = admin_http.get("/v1/fine_tuning/jobs", params={"limit": 100}).json()["data"]
    adapter = admin_http.get("/admin/adapters/support-bot").json()
    policy = admin_http.get("/admin/adapters/support-bot/tuning-policy")
    return [j["id"] for j in jobs], adapter["task_checks"], policy.status_code, policy.text


@pytest.mark.parametrize(("method", "path", "body"), CASES, ids=[f"{m} {p[:60]}" for m, p, _ in CASES])
def test_hostile_input_is_a_4xx_envelope_and_changes_nothing(
    admin_http: httpx.Client, method: str, path: str, body: object
) -> None:
    before = state(admin_http)
    response = admin_http.request(method, path, json=body)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    assert state(admin_http) == before
