"""The request flow both OpenAI endpoints share; each endpoint supplies only what differs
(how its prompt becomes tokens, which fields carry content, its wire format)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Generic, TypeVar

from gateway.auth.models import Principal
from gateway.engine.tokenizer import PromptTokenizer
from gateway.generation.protocol import SamplingRequest
from gateway.generation.record import RequestRecord
from gateway.generation.sampling import completion_budget, sampling_params
from gateway.generation.service import (
    Completion,
    Disconnected,
    Formatter,
    GenerationJob,
    GenerationService,
    GenerationStream,
)
from gateway.routing import ModelRouter

RequestT = TypeVar("RequestT", bound=SamplingRequest)


class ChunkFormatter:
    """The envelope every stream chunk shares; ``object_type`` names the endpoint's chunk."""

    object_type: ClassVar[str]

    def _base(self, job: GenerationJob) -> dict[str, Any]:
        base: dict[str, Any] = {
            "id": job.request_id,
            "object": self.object_type,
            "created": job.record.created,
            "model": job.record.served_model,
            "system_fingerprint": None,
        }
        if job.include_usage:
            base["usage"] = None  # OpenAI sends an explicit null on every chunk but the last
        return base

    def usage_chunk(self, job: GenerationJob) -> dict[str, Any]:
        return {**self._base(job), "choices": [], "usage": job.usage.model_dump()}


class EndpointService(ABC, Generic[RequestT]):
    id_prefix: ClassVar[str]
    endpoint: ClassVar[str]
    content_field: ClassVar[str]
    """The request field that holds content (logged unless the key opted out)."""
    formatter: Formatter

    def __init__(self, *, generation: GenerationService, router: ModelRouter, tokenizer: PromptTokenizer) -> None:
        self.generation = generation
        self.router = router
        self.tokenizer = tokenizer

    @abstractmethod
    async def prompt_token_ids(self, request: RequestT) -> list[int]:
        """The prompt as the engine will see it."""

    @abstractmethod
    def max_tokens(self, request: RequestT) -> int | None:
        """The completion budget the client asked for, if any."""

    @abstractmethod
    def logprobs(self, request: RequestT) -> int | None:
        """Alternatives per token to return, or None for no log-probabilities."""

    def check(self, request: RequestT) -> None:
        """Cross-field checks that the schema cannot express."""

    def _record(self, request: RequestT, principal: Principal, request_id: str) -> RequestRecord:
        content = request.model_dump(include={self.content_field}, exclude_none=True)[self.content_field]
        return RequestRecord(
            request_id=f"{self.id_prefix}-{request_id}",
            endpoint=self.endpoint,
            principal=principal,
            model=request.model,
            stream=request.stream,
            content=content,
            params=request.model_dump(exclude={self.content_field, "model", "stream"}, exclude_none=True),
        )

    async def create(
        self,
        request: RequestT,
        *,
        principal: Principal,
        request_id: str,
        disconnected: Disconnected | None = None,
    ) -> Completion | GenerationStream:
        """Run ``request``. ``disconnected`` (see :func:`gateway.generation.http.client_disconnected`)
        lets a non-stream request be aborted in the engine when its client leaves."""
        record = self._record(request, principal, request_id)

        async def prepare() -> GenerationJob:
            self.check(request)
            # From here the request counts in flight on its version, until the job is released.
            target = await self.router.resolve(request.model, principal, user=request.user)
            record.target = target
            try:
                prompt = await self.prompt_token_ids(request)
                budget = completion_budget(
                    requested=self.max_tokens(request),
                    prompt_tokens=len(prompt),
                    max_model_len=self.generation.engine.max_model_len,
                    prompt_param=self.content_field,
                )
                params = sampling_params(
                    request, max_tokens=budget, logprobs=self.logprobs(request), stream=request.stream
                )
            except BaseException:
                self.router.leave(target)
                raise
            include_usage = bool(request.stream and request.stream_options and request.stream_options.include_usage)
            return GenerationJob(record, target, prompt, params, include_usage=include_usage)

        return await self.generation.execute(
            record, prepare, self.formatter, stream=request.stream, disconnected=disconnected
        )
