"""An engine that answers every request with the same few words: for tests of the gateway's own
bookkeeping (routing, logging, metrics, traces) through the real app, without a model. What the
real engine does is covered by the tests that use the session gateway."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from vllm import SamplingParams
from vllm.lora.request import LoRARequest
from vllm.outputs import CompletionOutput, RequestOutput
from vllm.sampling_params import RequestOutputKind

from gateway.engine.protocol import EngineClient

WORDS = ("Hello", " there", ",", " friend", ".")


class ScriptedEngine(EngineClient):
    def __init__(self, *, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        """Pause before each streamed delta."""
        self.fail: Exception | None = None
        """Raised by the next generations, before their first output."""
        self.fail_after_first: Exception | None = None
        """Raised by the next streams after their first delta."""
        self.last_output_ns = 0
        """``time.time_ns()`` when the latest output was handed out."""

    async def start(self) -> None:
        return None

    @property
    def is_ready(self) -> bool:
        return True

    @property
    def max_model_len(self) -> int:
        return 512

    def _output(
        self, request_id: str, prompt: list[int], params: SamplingParams, text: str, tokens: list[int], last: bool
    ) -> RequestOutput:
        cut = params.max_tokens is not None and params.max_tokens < len(WORDS)
        reason = ("length" if cut else "stop") if last else None
        choices = [CompletionOutput(i, text, tokens, None, None, finish_reason=reason) for i in range(params.n)]
        self.last_output_ns = time.time_ns()
        return RequestOutput(request_id, None, prompt, None, choices, finished=last)

    async def generate(  # type: ignore[override]
        self,
        prompt_token_ids: list[int],
        params: SamplingParams,
        request_id: str,
        lora: LoRARequest | None = None,
    ) -> AsyncIterator[RequestOutput]:
        if self.fail is not None:
            raise self.fail
        words = WORDS[: params.max_tokens or len(WORDS)]
        if params.output_kind != RequestOutputKind.DELTA:
            tokens = list(range(1, len(words) + 1))
            yield self._output(request_id, prompt_token_ids, params, "".join(words), tokens, True)
            return
        for i, word in enumerate(words):
            if i:
                if self.fail_after_first is not None:
                    raise self.fail_after_first
                await asyncio.sleep(self.delay_s)
            yield self._output(request_id, prompt_token_ids, params, word, [i + 1], i == len(words) - 1)

    async def abort(self, request_id: str) -> None:
        return None

    async def load_adapter(self, lora: LoRARequest, *, warm: bool = True) -> None:
        return None

    async def unload_adapter(self, lora_id: int) -> None:
        return None

    async def pin_adapter(self, lora_id: int) -> None:
        return None

    async def shutdown(self) -> None:
        return None
