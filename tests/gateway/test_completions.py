"""Text completions through the official openai client."""

from __future__ import annotations

import openai
import pytest

pytestmark = pytest.mark.slow
PROMPT = "The yard master reads each waybill and"


def test_completion_non_stream(admin_client: openai.OpenAI) -> None:
    raw = admin_client.completions.with_raw_response.create(
        model="support-bot", prompt=PROMPT, max_tokens=8, temperature=0, logprobs=2
    )
    completion = raw.parse()
    assert raw.headers["x-switchyard-adapter-version"] == "support-bot@1"
    assert completion.id.startswith("cmpl-") and completion.object == "text_completion"
    choice = completion.choices[0]
    assert choice.text and choice.finish_reason == "length"
    assert len(choice.logprobs.tokens) == 8 == completion.usage.completion_tokens
    assert "".join(choice.logprobs.tokens) == choice.text
    assert all(len(top) >= 1 for top in choice.logprobs.top_logprobs)


def test_completion_stream_with_usage_matches_non_stream(admin_client: openai.OpenAI) -> None:
    params = {"model": "yard-json", "prompt": PROMPT, "max_tokens": 10, "temperature": 0}
    full = admin_client.completions.create(**params)
    chunks = list(admin_client.completions.create(**params, stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == full.choices[0].text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].usage.model_dump() == full.usage.model_dump()


def test_completion_json_schema(admin_client: openai.OpenAI) -> None:
    import json

    completion = admin_client.completions.create(
        model="demo-base",
        prompt=PROMPT,
        max_tokens=48,
        temperature=0,
        extra_body={
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": "a",
                    "schema": {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]},
                },
            }
        },
    )
    assert isinstance(json.loads(completion.choices[0].text)["ok"], bool)
