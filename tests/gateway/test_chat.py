"""Chat completions through the official openai client against the real gateway and engine."""

from __future__ import annotations

import json

import openai
import pytest

from tests.utils.server import RemoteGateway

pytestmark = pytest.mark.slow
BASE = "demo-base"
MESSAGES = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Where is car 4412?"}]


def test_non_stream_returns_text_usage_and_version_header(admin_client: openai.OpenAI) -> None:
    raw = admin_client.chat.completions.with_raw_response.create(
        model="support-bot", messages=MESSAGES, max_tokens=8, temperature=0
    )
    completion = raw.parse()
    assert raw.headers["x-switchyard-adapter-version"] == "support-bot@1"
    assert raw.headers["x-request-id"] and completion.id.startswith("chatcmpl-")
    assert completion.model == "support-bot@1"
    choice = completion.choices[0]
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason == "length"  # a random model does not stop on its own within 8 tokens
    assert completion.usage.completion_tokens == 8
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + 8


def test_base_model_response_has_no_version_header(admin_client: openai.OpenAI) -> None:
    raw = admin_client.chat.completions.with_raw_response.create(model=BASE, messages=MESSAGES, max_tokens=2)
    assert "x-switchyard-adapter-version" not in raw.headers
    assert raw.parse().model == BASE


def test_stream_with_usage_matches_non_stream(admin_client: openai.OpenAI) -> None:
    params = {"model": "support-bot", "messages": MESSAGES, "max_tokens": 12, "temperature": 0}
    full = admin_client.chat.completions.create(**params)
    chunks = list(admin_client.chat.completions.create(**params, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full.choices[0].message.content
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == ["length"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.model_dump() == full.usage.model_dump()
    assert all(c.usage is None for c in chunks[:-1])


def test_stream_sse_framing_is_exactly_openai(gateway: RemoteGateway) -> None:
    import httpx

    with httpx.stream(
        "POST",
        f"{gateway.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {gateway.admin_key}"},
        json={"model": BASE, "messages": MESSAGES, "max_tokens": 3, "stream": True},
        timeout=60,
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        body = response.read().decode()
    events = body.split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    payloads = [json.loads(e.removeprefix("data: ")) for e in events[:-2]]
    assert all(p["object"] == "chat.completion.chunk" for p in payloads)
    assert "usage" not in payloads[0]  # only present when stream_options.include_usage is set
    assert payloads[-1]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "length"}


def test_json_schema_output_parses(admin_client: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"label": {"type": "string", "enum": ["yes", "no"]}, "track": {"type": "integer"}},
        "required": ["label", "track"],
        "additionalProperties": False,
    }
    completion = admin_client.chat.completions.create(
        model="yard-json",
        messages=MESSAGES,
        max_tokens=64,
        temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}},
    )
    answer = json.loads(completion.choices[0].message.content)
    assert answer["label"] in {"yes", "no"} and isinstance(answer["track"], int)


def test_json_object_output_parses(admin_client: openai.OpenAI) -> None:
    completion = admin_client.chat.completions.create(
        model=BASE, messages=MESSAGES, max_tokens=64, temperature=0, response_format={"type": "json_object"}
    )
    assert completion.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(completion.choices[0].message.content), dict)


def test_seeded_sampling_is_deterministic(admin_client: openai.OpenAI) -> None:
    def sample(seed: int) -> str:
        completion = admin_client.chat.completions.create(
            model="support-bot", messages=MESSAGES, max_tokens=16, temperature=1.0, seed=seed
        )
        return completion.choices[0].message.content

    assert sample(7) == sample(7)
    assert len({sample(s) for s in (1, 2, 3)}) > 1  # the seed really drives sampling


def test_greedy_is_deterministic(admin_client: openai.OpenAI) -> None:
    outputs = {
        admin_client.chat.completions.create(model="yard-json", messages=MESSAGES, max_tokens=16, temperature=0)
        .choices[0]
        .message.content
        for _ in range(3)
    }
    assert len(outputs) == 1


def test_adapters_answer_differently_from_base(admin_client: openai.OpenAI) -> None:
    def greedy(model: str) -> str:
        completion = admin_client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=16, temperature=0)
        return completion.choices[0].message.content

    base, support, yard = greedy(BASE), greedy("support-bot"), greedy("yard-json")
    assert support != base and yard != base and support != yard


def test_pinned_version_serves_same_as_alias(admin_client: openai.OpenAI) -> None:
    def greedy(model: str) -> str:
        return (
            admin_client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=10, temperature=0)
            .choices[0]
            .message.content
        )

    assert greedy("support-bot@1") == greedy("support-bot")


def test_n_logprobs_stop_and_penalties(admin_client: openai.OpenAI) -> None:
    completion = admin_client.chat.completions.create(
        model="support-bot",
        messages=MESSAGES,
        max_completion_tokens=6,
        n=3,
        temperature=0.9,
        top_p=0.95,
        seed=3,
        presence_penalty=0.5,
        frequency_penalty=0.5,
        logprobs=True,
        top_logprobs=2,
        stop=["\u0000never"],
        user="tester",
    )
    assert [c.index for c in completion.choices] == [0, 1, 2]
    assert completion.usage.completion_tokens == sum(len(c.logprobs.content) for c in completion.choices) == 18
    for token in completion.choices[0].logprobs.content:
        assert token.logprob <= 0 and len(token.top_logprobs) == 2
        assert token.top_logprobs[0].logprob >= token.top_logprobs[1].logprob


def test_stop_sequence_ends_the_completion(admin_client: openai.OpenAI) -> None:
    params = {"model": BASE, "messages": MESSAGES, "max_tokens": 24, "temperature": 0}
    text = admin_client.chat.completions.create(**params).choices[0].message.content
    # A plain ASCII pair past the start, so the cut cannot fall inside a multi-byte character.
    start = next(i for i in range(3, len(text) - 1) if text[i : i + 2].isascii() and text[i : i + 2].isalpha())
    stop = text[start : start + 2]
    stopped = admin_client.chat.completions.create(**params, stop=[stop]).choices[0]
    assert stopped.finish_reason == "stop"
    assert stopped.message.content == text[: text.index(stop)]
