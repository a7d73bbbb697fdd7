"""The engine interface services depend on (vLLM's ``EngineClient`` is the model)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator

from vllm import SamplingParams
from vllm.lora.request import LoRARequest
from vllm.outputs import RequestOutput


class EngineClient(ABC):
    @abstractmethod
    async def start(self) -> None:
        """Load the model; the app serves ``/health`` meanwhile and ``/ready`` after."""

    @property
    @abstractmethod
    def is_ready(self) -> bool:
        """True once the engine can take requests."""

    @property
    @abstractmethod
    def max_model_len(self) -> int:
        """Context window in tokens (prompt plus completion)."""

    @abstractmethod
    def generate(
        self,
        prompt_token_ids: list[int],
        params: SamplingParams,
        request_id: str,
        lora: LoRARequest | None = None,
    ) -> AsyncIterator[RequestOutput]:
        """Stream outputs for one request; raise :class:`EngineUnavailable` when it cannot."""

    @abstractmethod
    async def abort(self, request_id: str) -> None:
        """Stop a request whose client went away."""

    @abstractmethod
    async def shutdown(self) -> None:
        """Release the engine (its core runs in a child process)."""
