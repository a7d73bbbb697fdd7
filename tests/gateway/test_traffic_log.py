"""Log rows and feedback land, with the right token counts, and only the owner may give feedback."""

from __future__ import annotations

import httpx
import openai
import pytest

from gateway.generation.record import SAMPLING_KNOBS
from tests.utils.keys import client_for, create_key
from tests.utils.server import RemoteGateway

pytestmark = pytest.mark.slow
MESSAGES = [{"role": "user", "content": "When does the grain train leave?"}]


def test_rows_land_with_token_counts_and_feedback(gateway: RemoteGateway, admin_http: httpx.Client) -> None:
    key_id, secret = create_key(admin_http, "logged", tenant="acme", allowed_adapters=["support-bot"])
    client = client_for(gateway.url, secret)
    completion = client.chat.completions.create(model="support-bot", messages=MESSAGES, max_tokens=7, temperature=0)
    chunks = list(
        client.chat.completions.create(
            model="support-bot", messages=MESSAGES, max_tokens=5, stream=True, stream_options={"include_usage": True}
        )
    )
    # Feedback right after the answer: the row may still be in the spool, and must be found.
    feedback = client.post(
        "/feedback",
        body={"completion_id": completion.id, "score": 1, "label": "good", "corrected_completion": "Tonight."},
        cast_to=httpx.Response,
    )
    assert feedback.status_code == 201, feedback.text

    row = admin_http.get(f"/admin/requests/{completion.id}").json()
    assert row["key_id"] == key_id and row["tenant"] == "acme"
    assert row["adapter"] == "support-bot" and row["adapter_version"] == 1 and row["adapter_version_id"]
    assert row["request"] == MESSAGES and row["output"] == completion.choices[0].message.content
    assert row["prompt_tokens"] == completion.usage.prompt_tokens and row["completion_tokens"] == 7
    assert row["finish_reason"] == "length" and row["status"] == 200 and row["latency_ms"] > 0
    assert row["ttft_ms"] is not None and row["params"]["max_tokens"] == 7
    assert [(f["score"], f["label"], f["corrected_completion"]) for f in row["feedback"]] == [(1, "good", "Tonight.")]
    assert [(f["reviewer"], f["tenant"]) for f in row["feedback"]] == [(False, "acme")]  # a key without `review`

    stream_id = chunks[0].id
    stream_row = admin_http.get(f"/admin/requests/{stream_id}").json()
    assert stream_row["stream"] is True and stream_row["completion_tokens"] == chunks[-1].usage.completion_tokens == 5
    assert stream_row["output"] == "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    listed = admin_http.get("/admin/requests", params={"key_id": key_id, "limit": 1}).json()
    assert listed["count"] == 2 and len(listed["data"]) == 1
    assert admin_http.get("/admin/requests", params={"key_id": key_id, "status": 404}).json()["count"] == 0


def test_failed_requests_are_logged_with_status(gateway: RemoteGateway, admin_http: httpx.Client) -> None:
    key_id, secret = create_key(admin_http, "failing")
    with pytest.raises(openai.NotFoundError):
        client_for(gateway.url, secret).chat.completions.create(model="nope", messages=MESSAGES)
    rows = admin_http.get("/admin/requests", params={"key_id": key_id}).json()["data"]
    assert [(r["status"], r["model"]) for r in rows] == [(404, "nope")]
    assert "does not exist" in rows[0]["error"]


def test_a_nul_in_the_request_is_logged_sanitised(gateway: RemoteGateway, admin_http: httpx.Client) -> None:
    key_id, secret = create_key(admin_http, "nul")
    client = client_for(gateway.url, secret)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="x\u0000y", messages=[{"role": "user", "content": "a\u0000b"}])
    served = client.chat.completions.create(model="demo-base", messages=MESSAGES, max_tokens=2)
    rows = admin_http.get("/admin/requests", params={"key_id": key_id}).json()["data"]
    by_status = {r["status"]: r for r in rows}
    assert set(by_status) == {404, 200} and by_status[200]["id"] == served.id  # later rows are not held up
    assert by_status[404]["model"] == "x\ufffdy" and by_status[404]["request"][0]["content"] == "a\ufffdb"


def test_content_logging_opt_out(gateway: RemoteGateway, admin_http: httpx.Client) -> None:
    key_id, secret = create_key(admin_http, "private", log_content=False)
    completion = client_for(gateway.url, secret).chat.completions.create(
        model="demo-base", messages=MESSAGES, max_tokens=3
    )
    row = admin_http.get(f"/admin/requests/{completion.id}").json()
    assert row["request"] is None and row["output"] is None
    assert row["completion_tokens"] == 3 and row["key_id"] == key_id
    private = client_for(gateway.url, secret).chat.completions.create(
        model="demo-base", messages=MESSAGES, max_tokens=3, user="alice@example.com", stop=["my secret stop"]
    )
    params = admin_http.get(f"/admin/requests/{private.id}").json()["params"]
    assert params["max_tokens"] == 3 and set(params) <= SAMPLING_KNOBS  # no user, no stop strings


def test_feedback_only_by_owner_or_admin(gateway: RemoteGateway, admin_http: httpx.Client) -> None:
    _, owner_secret = create_key(admin_http, "owner")
    _, other_secret = create_key(admin_http, "other")
    completion = client_for(gateway.url, owner_secret).chat.completions.create(
        model="demo-base", messages=MESSAGES, max_tokens=2
    )
    body = {"completion_id": completion.id, "score": -0.5}
    other = httpx.post(f"{gateway.url}/v1/feedback", json=body, headers={"Authorization": f"Bearer {other_secret}"})
    assert other.status_code == 404 and other.json()["error"]["param"] == "completion_id"
    by_admin = admin_http.post("/v1/feedback", json=body)
    assert by_admin.status_code == 201 and by_admin.json()["reviewer"] is True
    assert admin_http.post("/v1/feedback", json={**body, "score": 2}).status_code == 400
    assert admin_http.post("/v1/feedback", json={**body, "completion_id": "chatcmpl-missing"}).status_code == 404
