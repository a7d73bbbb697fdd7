"""The engine interface services depend on (vLLM's ``EngineClient`` is the model)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator
from enum import StrEnum

from vllm import SamplingParams
from vllm.lora.request import LoRARequest
from vllm.outputs import RequestOutput


class EngineState(StrEnum):
    starting = "starting"
    """The first start is under way (``/health`` 200, ``/ready`` 503)."""
    running = "running"
    dead = "dead"
    """The engine died, or a start failed; a restart is scheduled."""
    restarting = "restarting"
    stopped = "stopped"


class AdapterLoadError(Exception):
    """The engine refused an adapter (bad weights or config) and is still alive.

    ``reason`` is the engine's own words, cleaned of local paths, fit for an admin to read."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class EngineClient(ABC):
    @abstractmethod
    async def start(self) -> None:
        """Load the model; the app serves ``/health`` meanwhile and ``/ready`` after."""

    @property
    @abstractmethod
    def is_ready(self) -> bool:
        """True once the engine can take requests."""

    @property
    def state(self) -> EngineState:
        """Where the engine is in its life; a supervisor that restarts engines knows more."""
        return EngineState.running if self.is_ready else EngineState.starting

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
    async def load_adapter(self, lora: LoRARequest, *, warm: bool = True) -> None:
        """Load an adapter (and with ``warm``, run one request on it, so no user request pays
        the load). Raise :class:`AdapterLoadError` when the engine refuses the adapter, and
        :class:`EngineUnavailable` when there is no live engine to ask."""

    @abstractmethod
    async def unload_adapter(self, lora_id: int) -> None:
        """Drop an adapter from the engine (GPU slot and CPU cache); this also unpins it."""

    @abstractmethod
    async def pin_adapter(self, lora_id: int) -> None:
        """Keep a loaded adapter resident in a GPU slot (never evicted by LRU)."""

    @abstractmethod
    async def shutdown(self) -> None:
        """Release the engine (its core runs in a child process)."""
