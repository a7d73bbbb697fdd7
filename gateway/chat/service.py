"""Chat completions: render the chat template, then hand the job to the generation service."""

from __future__ import annotations

import asyncio
from typing import Any

from vllm.outputs import CompletionOutput

from gateway.auth.models import Principal
from gateway.chat.protocol import (
    AssistantMessage,
    ChatChoice,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChoiceLogprobs,
    TokenLogprob,
    TopLogprob,
)
from gateway.engine.tokenizer import PromptTokenizer
from gateway.exceptions import InvalidRequest
from gateway.generation.outputs import finish_reason, sampled_tokens
from gateway.generation.record import RequestRecord
from gateway.generation.sampling import completion_budget, sampling_params
from gateway.generation.service import Completion, GenerationJob, GenerationService, GenerationStream
from gateway.routing import ModelRouter


def _template_messages(request: ChatCompletionRequest) -> list[dict[str, str]]:
    # "developer" is OpenAI's newer name for "system"; chat templates know only the latter.
    return [{"role": "system" if m.role == "developer" else m.role, "content": m.text} for m in request.messages]


class ChatFormatter:
    def _base(self, job: GenerationJob) -> dict[str, Any]:
        base: dict[str, Any] = {
            "id": job.request_id,
            "object": "chat.completion.chunk",
            "created": job.record.created,
            "model": job.record.served_model,
            "system_fingerprint": None,
        }
        if job.include_usage:
            base["usage"] = None
        return base

    def _logprobs(self, job: GenerationJob, output: CompletionOutput) -> ChoiceLogprobs | None:
        tokens = sampled_tokens(output, job.params.logprobs or 0)
        if tokens is None:
            return None
        content = [
            TokenLogprob(
                token=t.token,
                logprob=t.logprob,
                bytes=list(t.token.encode()),
                top_logprobs=[
                    TopLogprob(token=c.token, logprob=c.logprob, bytes=list(c.token.encode())) for c in t.top
                ],
            )
            for t in tokens
        ]
        return ChoiceLogprobs(content=content)

    def final(self, job: GenerationJob, outputs: list[CompletionOutput]) -> ChatCompletionResponse:
        choices = [
            ChatChoice(
                index=o.index,
                message=AssistantMessage(content=o.text),
                logprobs=self._logprobs(job, o),
                finish_reason=finish_reason(o),  # type: ignore[arg-type]
            )
            for o in outputs
        ]
        return ChatCompletionResponse(
            id=job.request_id,
            created=job.record.created,
            model=job.record.served_model,
            choices=choices,
            usage=job.usage,
        )

    def chunks(self, job: GenerationJob, output: CompletionOutput, *, first: bool) -> list[dict[str, Any]]:
        base = self._base(job)

        def chunk(delta: dict[str, Any], logprobs: Any = None, reason: str | None = None) -> dict[str, Any]:
            choice = {"index": output.index, "delta": delta, "logprobs": logprobs, "finish_reason": reason}
            return {**base, "choices": [choice]}

        chunks = []
        if first:
            chunks.append(chunk({"role": "assistant", "content": ""}))
        logprobs = self._logprobs(job, output)
        if output.text or (logprobs and logprobs.content):
            chunks.append(chunk({"content": output.text}, logprobs.model_dump() if logprobs else None))
        if output.finish_reason is not None:
            chunks.append(chunk({}, reason=finish_reason(output)))
        return chunks

    def usage_chunk(self, job: GenerationJob) -> dict[str, Any]:
        return {**self._base(job), "choices": [], "usage": job.usage.model_dump()}


class ChatService:
    def __init__(self, *, generation: GenerationService, router: ModelRouter, tokenizer: PromptTokenizer) -> None:
        self.generation = generation
        self.router = router
        self.tokenizer = tokenizer
        self.formatter = ChatFormatter()

    async def create(
        self, request: ChatCompletionRequest, *, principal: Principal, request_id: str
    ) -> Completion | GenerationStream:
        record = RequestRecord(
            request_id=f"chatcmpl-{request_id}",
            endpoint="chat.completions",
            principal=principal,
            model=request.model,
            stream=request.stream,
            content=[m.model_dump(exclude_none=True) for m in request.messages],
            params=request.model_dump(exclude={"messages", "model", "stream"}, exclude_none=True),
        )

        async def prepare() -> GenerationJob:
            if request.top_logprobs is not None and not request.logprobs:
                raise InvalidRequest("top_logprobs requires logprobs to be true", param="top_logprobs")
            target = await self.router.resolve(request.model, principal, user=request.user)
            record.target = target
            prompt = await asyncio.to_thread(self.tokenizer.render_chat, _template_messages(request))
            budget = completion_budget(
                requested=request.max_completion_tokens or request.max_tokens,
                prompt_tokens=len(prompt),
                max_model_len=self.generation.engine.max_model_len,
                prompt_param="messages",
            )
            logprobs = (request.top_logprobs or 0) if request.logprobs else None
            params = sampling_params(request, max_tokens=budget, logprobs=logprobs, stream=request.stream)
            include_usage = bool(request.stream and request.stream_options and request.stream_options.include_usage)
            return GenerationJob(record, target, prompt, params, include_usage=include_usage)

        return await self.generation.execute(record, prepare, self.formatter, stream=request.stream)
