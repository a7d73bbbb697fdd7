"""Text completions: tokenize the prompt, then hand the job to the generation service."""

from __future__ import annotations

from typing import Any

from vllm.outputs import CompletionOutput

from gateway.completions.protocol import CompletionChoice, CompletionLogprobs, CompletionRequest, CompletionResponse
from gateway.generation.endpoint import ChunkFormatter, EndpointService
from gateway.generation.outputs import finish_reason, sampled_tokens
from gateway.generation.service import GenerationJob


class CompletionFormatter(ChunkFormatter):
    object_type = "text_completion"

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


class CompletionService(EndpointService[CompletionRequest]):
    id_prefix = "cmpl"
    endpoint = "completions"
    content_field = "prompt"
    formatter = CompletionFormatter()

    async def prompt_token_ids(self, request: CompletionRequest) -> list[int]:
        return await self.tokenizer.encode_async(request.prompt)

    def max_tokens(self, request: CompletionRequest) -> int | None:
        return request.max_tokens

    def logprobs(self, request: CompletionRequest) -> int | None:
        return request.logprobs
