"""The evaluation gate's scorer on the serving engine (``tuner.gate.Scorer``).

NLL is the sum of the reference answer tokens' log-probabilities given the prompt (chat
template, generation prompt) and the answer's earlier tokens, by teacher forcing: one request
per answer token, that token the only one allowed, its raw log-probability read back.
``prompt_logprobs`` on prompt + answer would take one request per row, but in vLLM 0.32 it kills
the engine core of a LoRA-enabled engine as soon as a batch holds two requests (the LoRA logits
path indexes prompt tokens with per-request indices: "einsum(): subscript b has size 32 ...
does not broadcast with previously seen size 38"; vLLM issues #29955, #16668), so it cannot run
beside served traffic. The answer is tokenized as training sees it: what the chat
template writes for the assistant turn after the generation prompt (the answer and its
end-of-turn marker). Checks run on greedy answers. A version is scored through its
``LoRARequest`` (its version id is the engine slot id); ``None`` is the base model.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from typing import Any

from vllm import SamplingParams
from vllm.lora.request import LoRARequest
from vllm.outputs import RequestOutput
from vllm.sampling_params import RequestOutputKind

from adapters.registry import ServableVersion
from gateway.engine.protocol import EngineClient
from gateway.engine.tokenizer import PromptTokenizer
from gateway.exceptions import InvalidRequest
from gateway.routing import ModelRouter

_ids = itertools.count()


class EvaluationTokenizer(PromptTokenizer):
    """The base model's tokenizer, with the split of a prompt and its reference answer."""

    def render_answer(self, prompt: Sequence[dict[str, Any]], answer: str) -> tuple[list[int], list[int]]:
        """(prompt token ids, answer token ids), the prompt as :meth:`render_chat` renders it."""
        prompt_text = self._tokenizer.apply_chat_template(list(prompt), tokenize=False, add_generation_prompt=True)
        full = self._tokenizer.apply_chat_template([*prompt, {"role": "assistant", "content": answer}], tokenize=False)
        # TRL's prompt-completion handling trains on exactly this continuation.
        answer_text = full[len(prompt_text) :] if full.startswith(prompt_text) else answer
        prompt_ids = self._tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
        answer_ids = self._tokenizer(answer_text, add_special_tokens=False)["input_ids"]
        return prompt_ids, answer_ids

    def decode(self, token_ids: Sequence[int]) -> str:
        return self._tokenizer.decode(list(token_ids), skip_special_tokens=True)

    async def render_answer_async(self, prompt: Sequence[dict[str, Any]], answer: str) -> tuple[list[int], list[int]]:
        """:meth:`render_answer` on the tokenizer thread."""
        return await self._run(self.render_answer, prompt, answer)

    async def decode_async(self, token_ids: Sequence[int]) -> str:
        """:meth:`decode` on the tokenizer thread."""
        return await self._run(self.decode, token_ids)


def lora_request(version: ServableVersion | None) -> LoRARequest | None:
    if version is None:
        return None
    return LoRARequest(version.qualified_name, version.version_id, str(version.path))


class EngineScorer:
    """Scores versions through ``engine``; the versions must be loadable by it (they are loaded on
    first use, like any pinned-version request).

    Its requests do not take an engine slot by themselves: beside served traffic, use
    :class:`AdmittedScorer`, which admits each scored version like a served request, so that
    vLLM never evicts an adapter a running batch needs."""

    def __init__(self, engine: EngineClient, tokenizer: EvaluationTokenizer, *, request_prefix: str = "eval") -> None:
        self._engine = engine
        self._tokenizer = tokenizer
        self._prefix = request_prefix

    async def _final(self, prompt_ids: list[int], params: SamplingParams, version: ServableVersion | None) -> Any:
        final: RequestOutput | None = None
        request_id = f"{self._prefix}-{next(_ids)}"
        async for output in self._engine.generate(prompt_ids, params, request_id, lora_request(version)):
            final = output
        if final is None:
            raise RuntimeError(f"the engine returned nothing for {request_id}")
        return final

    async def nll(
        self, prompt: list[dict[str, Any]], answer: str, adapter: ServableVersion | None
    ) -> tuple[float, int]:
        prompt_ids, answer_ids = await self._tokenizer.render_answer_async(prompt, answer)
        ids = prompt_ids + answer_ids
        if len(ids) >= self._engine.max_model_len:
            raise InvalidRequest(f"an evaluation row is {len(ids)} tokens, past the context window")
        # Teacher forcing, one request per answer token: the prefix up to it, that token the
        # only one allowed, and its raw log-probability (vLLM computes raw logprobs before the
        # allowed-token mask). Prefix caching makes the shared prefixes cheap.
        logprobs = await asyncio.gather(
            *(
                self._token_logprob(ids[:position], ids[position], adapter)
                for position in range(len(prompt_ids), len(ids))
            )
        )
        return sum(logprobs), len(answer_ids)

    async def _token_logprob(self, prefix: list[int], token: int, adapter: ServableVersion | None) -> float:
        params = SamplingParams(
            max_tokens=1,
            temperature=0.0,
            logprobs=0,
            allowed_token_ids=[token],
            output_kind=RequestOutputKind.FINAL_ONLY,
        )
        final = await self._final(prefix, params, adapter)
        sample = final.outputs[0]
        return sample.logprobs[0][token].logprob

    async def generate(self, prompt: list[dict[str, Any]], adapter: ServableVersion | None, max_tokens: int) -> str:
        prompt_ids = await self._tokenizer.render_chat_async(prompt)
        params = SamplingParams(max_tokens=max_tokens, temperature=0.0, output_kind=RequestOutputKind.FINAL_ONLY)
        final = await self._final(prompt_ids, params, adapter)
        return await self._tokenizer.decode_async(final.outputs[0].token_ids)


class AdmittedScorer:
    """An :class:`EngineScorer` whose requests are admitted by the router like served requests
    (an engine slot, the version loaded, counted in flight), for scoring beside live traffic."""

    def __init__(self, inner: EngineScorer, router: ModelRouter) -> None:
        self._inner = inner
        self._router = router

    async def nll(
        self, prompt: list[dict[str, Any]], answer: str, adapter: ServableVersion | None
    ) -> tuple[float, int]:
        async with self._router.hold(adapter):
            return await self._inner.nll(prompt, answer, adapter)

    async def generate(self, prompt: list[dict[str, Any]], adapter: ServableVersion | None, max_tokens: int) -> str:
        async with self._router.hold(adapter):
            return await self._inner.generate(prompt, adapter, max_tokens)
