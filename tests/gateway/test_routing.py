"""Routing on the real gateway: malformed versions are a 404 like any missing model, /ready says
how far this replica follows the registry, and /metrics carries vLLM's own gauges."""

from __future__ import annotations

import httpx
import openai
import pytest

pytestmark = pytest.mark.slow
MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.mark.parametrize(
    "model",
    [
        "support-bot@²",  # str.isdigit() says yes
        "support-bot@99999999999999999999",  # past 64 bits
        "support-bot@2147483648",  # past the version column
        "support-bot@0",
        "support-bot@01",
        "support-bot@-1",
        "support-bot@1.0",
        "support-bot@",
        "support-bot@1@1",
    ],
)
def test_malformed_versions_are_model_not_found(admin_client: openai.OpenAI, model: str) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        admin_client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=1)
    assert info.value.body["code"] == "model_not_found"


def test_ready_reports_the_registry_generation(admin_http: httpx.Client) -> None:
    body = admin_http.get("/ready").json()
    assert body["status"] == "ready" and body["registry_generation"] >= 1
    assert body["lagging"] == []
    assert admin_http.get("/health").json() == {"status": "ok", "engine": "running"}


def test_metrics_carry_the_engines_own_gauges(admin_http: httpx.Client, admin_client: openai.OpenAI) -> None:
    """What an inference-gateway endpoint picker scrapes: queue, KV cache and LoRA residency."""
    admin_client.chat.completions.create(model="support-bot", messages=MESSAGES, max_tokens=2)
    text = admin_http.get("/metrics").text
    for name in ("vllm:num_requests_waiting", "vllm:kv_cache_usage_perc", "vllm:lora_requests_info"):
        assert f"\n{name}{{" in text, name
    assert 'max_lora="2"' in text  # the session gateway's engine slots
    assert "switchyard_registry_lagging_versions 0.0" in text
    assert text.index("switchyard_requests_total") < text.index("vllm:num_requests_waiting")
