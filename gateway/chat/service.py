"""Chat completions: render the chat template, then hand the job to the generation service."""

from __future__ import annotations

from typing import Any

from vllm.outputs import CompletionOutput

from gateway.chat.protocol import (
    AssistantMessage,
    ChatChoice,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChoiceLogprobs,
    TokenLogprob,
    TopLogprob,
)
from gateway.exceptions import InvalidRequest
from gateway.generation.endpoint import ChunkFormatter, EndpointService
from gateway.generation.outputs import finish_reason, sampled_tokens
from gateway.generation.service import GenerationJob


def _template_messages(request: ChatCompletionRequest) -> list[dict[str, str]]:
    # "developer" is OpenAI's newer name for "system"; chat templates know only the latter.
    return [{"role": "system" if m.role == "developer" else m.role, "content": m.text} for m in request.messages]


class ChatFormatter(ChunkFormatter):
    object_type = "chat.completion.chunk"

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


class ChatService(EndpointService[ChatCompletionRequest]):
    id_prefix = "chatcmpl"
    endpoint = "chat.completions"
    content_field = "messages"
    formatter = ChatFormatter()

    def check(self, request: ChatCompletionRequest) -> None:
        if request.top_logprobs is not None and not request.logprobs:
            raise InvalidRequest("top_logprobs requires logprobs to be true", param="top_logprobs")

    async def prompt_token_ids(self, request: ChatCompletionRequest) -> list[int]:
        return await self.tokenizer.render_chat_async(_template_messages(request))

    def max_tokens(self, request: ChatCompletionRequest) -> int | None:
        return request.max_completion_tokens or request.max_tokens

    def logprobs(self, request: ChatCompletionRequest) -> int | None:
        return (request.top_logprobs or 0) if request.logprobs else None
