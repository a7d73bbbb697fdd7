"""Text completions: tokenize the prompt, then hand the job to the generation service."""

from __future__ import annotations

import asyncio
from typing import Any

from vllm.outputs import CompletionOutput

from gateway.auth.models import Principal
from gateway.completions.protocol import CompletionChoice, CompletionLogprobs, CompletionRequest, CompletionResponse
from gateway.engine.tokenizer import PromptTokenizer
from gateway.generation.outputs import finish_reason, sampled_tokens
from gateway.generation.record import RequestRecord
from gateway.generation.sampling import completion_budget, sampling_params
from gateway.generation.service import Completion, GenerationJob, GenerationService, GenerationStream
from gateway.routing import ModelRouter


class CompletionFormatter:
    def _base(self, job: GenerationJob) -> dict[str, Any]:
        base: dict[str, Any] = {
            "id": job.request_id,
            "object": "text_completion",
            "created": job.record.created,
            "model": job.record.served_model,
            "system_fingerprint": None,
        }
        if job.include_usage:
            base["usage"] = None
        return base

    def _logprobs(self, job: GenerationJob, output: CompletionOutput) -> CompletionLogprobs | None:
        tokens = sampled_tokens(output, job.params.logprobs or 0)
        if tokens is None:
            return None
        offsets, position = [], 0
        for t in tokens:
            offsets.append(position)
            position += len(t.token)
        return CompletionLogprobs(
            tokens=[t.token for t in tokens],
            token_logprobs=[t.logprob for t in tokens],
            top_logprobs=[{c.token: c.logprob for c in t.top} for t in tokens],
            text_offset=offsets,
        )

    def final(self, job: GenerationJob, outputs: list[CompletionOutput]) -> CompletionResponse:
        choices = [
            CompletionChoice(
                index=o.index,
                text=o.text,
                logprobs=self._logprobs(job, o),
                finish_reason=finish_reason(o),  # type: ignore[arg-type]
            )
            for o in outputs
        ]
        return CompletionResponse(
            id=job.request_id,
            created=job.record.created,
            model=job.record.served_model,
            choices=choices,
            usage=job.usage,
        )

    def chunks(self, job: GenerationJob, output: CompletionOutput, *, first: bool) -> list[dict[str, Any]]:
        if not output.text and output.finish_reason is None:
            return []
        logprobs = self._logprobs(job, output)
        choice = {
            "index": output.index,
            "text": output.text,
            "logprobs": logprobs.model_dump() if logprobs else None,
            "finish_reason": finish_reason(output),
        }
        return [{**self._base(job), "choices": [choice]}]

    def usage_chunk(self, job: GenerationJob) -> dict[str, Any]:
        return {**self._base(job), "choices": [], "usage": job.usage.model_dump()}


class CompletionService:
    def __init__(self, *, generation: GenerationService, router: ModelRouter, tokenizer: PromptTokenizer) -> None:
        self.generation = generation
        self.router = router
        self.tokenizer = tokenizer
        self.formatter = CompletionFormatter()

    async def create(
        self, request: CompletionRequest, *, principal: Principal, request_id: str
    ) -> Completion | GenerationStream:
        record = RequestRecord(
            request_id=f"cmpl-{request_id}",
            endpoint="completions",
            principal=principal,
            model=request.model,
            stream=request.stream,
            content=request.prompt,
            params=request.model_dump(exclude={"prompt", "model", "stream"}, exclude_none=True),
        )

        async def prepare() -> GenerationJob:
            target = await self.router.resolve(request.model, principal, user=request.user)
            record.target = target
            prompt = await asyncio.to_thread(self.tokenizer.encode, request.prompt)
            budget = completion_budget(
                requested=request.max_tokens,
                prompt_tokens=len(prompt),
                max_model_len=self.generation.engine.max_model_len,
                prompt_param="prompt",
            )
            params = sampling_params(request, max_tokens=budget, logprobs=request.logprobs, stream=request.stream)
            include_usage = bool(request.stream and request.stream_options and request.stream_options.include_usage)
            return GenerationJob(record, target, prompt, params, include_usage=include_usage)

        return await self.generation.execute(record, prepare, self.formatter, stream=request.stream)
