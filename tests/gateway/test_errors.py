"""Every documented error case returns its status and OpenAI's error envelope, over real HTTP."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest

from tests.utils.keys import client_for
from tests.utils.server import RemoteGateway

pytestmark = pytest.mark.slow
MESSAGES = [{"role": "user", "content": "Is track three open?"}]


def assert_envelope(response: httpx.Response, status: int, code: str, param: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code and error["param"] == param
    assert "Traceback" not in error["message"] and ".py" not in error["message"]
    assert response.headers["x-request-id"]
    return error


def test_malformed_json_is_400(admin_http: httpx.Client) -> None:
    response = admin_http.post(
        "/v1/chat/completions",
        content=b'{"model": "demo-base", "messages": [',
        headers={"Content-Type": "application/json"},
    )
    assert_envelope(response, 400, "invalid_json")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "demo-base"}, "messages"),
        ({"model": "demo-base", "messages": []}, "messages"),
        ({"model": "demo-base", "messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
        ({"model": "demo-base", "messages": MESSAGES, "temperature": 3}, "temperature"),
        ({"model": "demo-base", "messages": MESSAGES, "n": 0}, "n"),
        ({"model": "demo-base", "messages": MESSAGES, "max_tokens": 0}, "max_tokens"),
        ({"model": "demo-base", "messages": MESSAGES, "tools": []}, "tools"),
    ],
)
def test_schema_violation_is_400_naming_the_param(admin_http: httpx.Client, body: dict, param: str) -> None:
    error = assert_envelope(admin_http.post("/v1/chat/completions", json=body), 400, error_code(body), param)
    assert error["type"] == "invalid_request_error"


def error_code(body: dict) -> str:
    return "missing_required_parameter" if "messages" not in body else "invalid_value"


def test_schema_violation_through_the_sdk(admin_client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        admin_client.chat.completions.create(model="demo-base", messages=MESSAGES, top_logprobs=3)
    assert info.value.code == "invalid_value" and info.value.param == "top_logprobs"


def test_prompt_over_context_is_400(admin_client: openai.OpenAI) -> None:
    long = [{"role": "user", "content": "track seven is clear " * 300}]
    with pytest.raises(openai.BadRequestError) as info:
        admin_client.chat.completions.create(model="demo-base", messages=long, max_tokens=4)
    assert info.value.code == "context_length_exceeded" and info.value.param == "messages"
    with pytest.raises(openai.BadRequestError) as info:
        admin_client.completions.create(model="demo-base", prompt="x", max_tokens=100_000)
    assert info.value.code == "context_length_exceeded" and info.value.param == "max_tokens"


def test_unknown_model_is_404(admin_client: openai.OpenAI) -> None:
    for model in ("no-such-adapter", "support-bot@999", "support-bot@x"):
        with pytest.raises(openai.NotFoundError) as info:
            admin_client.chat.completions.create(model=model, messages=MESSAGES)
        assert info.value.code == "model_not_found" and info.value.param == "model"


def test_missing_or_invalid_key_is_401(gateway: RemoteGateway) -> None:
    response = httpx.post(f"{gateway.url}/v1/chat/completions", json={"model": "demo-base", "messages": MESSAGES})
    assert_envelope(response, 401, "invalid_api_key")
    with pytest.raises(openai.AuthenticationError):
        client_for(gateway.url, "sk-sy-not-a-key").models.list()


def test_unknown_route_is_404_envelope(admin_http: httpx.Client) -> None:
    assert_envelope(admin_http.get("/v1/nothing-here"), 404, "not_found")


def test_queue_over_its_bound_is_429_with_retry_after(gateway: RemoteGateway) -> None:
    """Six n=8 requests against a bound of 16 sequences: two fit, the rest are refused at once."""

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(
            base_url=gateway.url, headers={"Authorization": f"Bearer {gateway.admin_key}"}, timeout=120
        ) as client:
            body = {"model": "demo-base", "messages": MESSAGES, "n": 8, "max_tokens": 96, "temperature": 1.0}
            return await asyncio.gather(*(client.post("/v1/chat/completions", json=body) for _ in range(6)))

    responses = asyncio.run(burst())
    statuses = sorted(r.status_code for r in responses)
    assert 200 in statuses and 429 in statuses and set(statuses) <= {200, 429}
    refused = next(r for r in responses if r.status_code == 429)
    assert_envelope(refused, 429, "queue_full")
    assert int(refused.headers["retry-after"]) >= 1
