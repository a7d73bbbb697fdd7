"""OpenAI (legacy) text completion request and response models."""

from __future__ import annotations

import time
from typing import Literal

from pydantic import BaseModel, Field

from gateway.generation.protocol import SamplingRequest, Usage


class CompletionRequest(SamplingRequest):
    prompt: str = Field(min_length=1)
    logprobs: int | None = Field(default=None, ge=0, le=5)


class CompletionLogprobs(BaseModel):
    tokens: list[str]
    token_logprobs: list[float]
    top_logprobs: list[dict[str, float]]
    text_offset: list[int]


class CompletionChoice(BaseModel):
    index: int
    text: str
    logprobs: CompletionLogprobs | None = None
    finish_reason: Literal["stop", "length", "content_filter"] | None


class CompletionResponse(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[CompletionChoice]
    usage: Usage
    system_fingerprint: str | None = None
