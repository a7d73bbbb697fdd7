"""Prompt rendering: chat template and tokenization with the base model's own tokenizer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.exceptions import InvalidRequest


class PromptTokenizer:
    """Wraps the Hugging Face tokenizer that ships with the base model."""

    def __init__(self, model: str) -> None:
        from transformers import AutoTokenizer

        self._tokenizer = AutoTokenizer.from_pretrained(model)

    @property
    def eos_token_id(self) -> int | None:
        return self._tokenizer.eos_token_id

    def render_chat(self, messages: Sequence[dict[str, Any]]) -> list[int]:
        if not getattr(self._tokenizer, "chat_template", None):
            raise InvalidRequest("The base model has no chat template; use /v1/completions.", param="messages")
        try:
            text = self._tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
        except Exception as exc:  # a template may raise on roles or orders it does not accept
            raise InvalidRequest(f"The chat template rejected these messages: {exc}", param="messages") from None
        # The template writes BOS itself; adding special tokens again would double it.
        return self._tokenizer(text, add_special_tokens=False)["input_ids"]

    def encode(self, text: str) -> list[int]:
        return self._tokenizer(text, add_special_tokens=True)["input_ids"]
