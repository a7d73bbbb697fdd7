"""Prompt rendering: chat template and tokenization with the base model's own tokenizer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from gateway.exceptions import InvalidRequest

T = TypeVar("T")


class PromptTokenizer:
    """Wraps the Hugging Face tokenizer that ships with the base model.

    Tokenization runs on one thread of its own (vLLM's server does the same): a Rust fast
    tokenizer called from several threads at once can fail ("Already borrowed"), and asyncio's
    shared default pool also
    serves every ``to_thread`` of the process (database calls, file copies), so a burst of long
    prompts must not queue behind them, nor they behind it."""

    def __init__(self, model: str) -> None:
        from transformers import AutoTokenizer

        self._tokenizer = AutoTokenizer.from_pretrained(model)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenizer")

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

    async def _run(self, work: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, work, *args)

    async def render_chat_async(self, messages: Sequence[dict[str, Any]]) -> list[int]:
        """:meth:`render_chat` on the tokenizer thread."""
        return await self._run(self.render_chat, messages)

    async def encode_async(self, text: str) -> list[int]:
        """:meth:`encode` on the tokenizer thread."""
        return await self._run(self.encode, text)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
