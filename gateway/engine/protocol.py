"""The engine interface services depend on (vLLM's ``EngineClient`` is the model)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator

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
    ) -> AsyncGenerator[RequestOutput, None]:
        """Stream outputs for one request; raise :class:`EngineUnavailable` when it cannot."""

    @abstractmethod
    async def abort(self, request_id: str) -> None:
        """Stop a request whose client went away."""

    @abstractmethod
    async def load_adapter(self, lora: LoRARequest) -> None:
        """Load an adapter and warm it with one request, so no user request pays the load."""

    @abstractmethod
    async def unload_adapter(self, lora_id: int) -> None:
        """Drop an adapter from the engine (GPU slot and CPU cache)."""

    @abstractmethod
    async def pin_adapter(self, lora_id: int) -> None:
        """Keep an adapter resident in a GPU slot (never evicted by LRU)."""

    @abstractmethod
    async def shutdown(self) -> None:
        """Release the engine (its core runs in a child process)."""
