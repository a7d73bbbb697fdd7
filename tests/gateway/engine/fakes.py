"""A stand-in engine that records what it is asked and fails on demand: for the bookkeeping of
residency and supervision, whose real-engine behaviour the slow tests check."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from vllm.lora.request import LoRARequest

from adapters.models import VersionStatus
from adapters.registry import ServableVersion
from gateway.engine.protocol import AdapterLoadError, EngineClient
from gateway.exceptions import EngineUnavailable


def version(version_id: int, *, adapter: str = "bot", number: int | None = None) -> ServableVersion:
    return ServableVersion(
        adapter=adapter,
        version=number or version_id,
        version_id=version_id,
        path=Path(f"/store/{adapter}/v{version_id}"),
        tenant=None,
        shared=True,
        status=VersionStatus.active,
    )


class RecordingEngine(EngineClient):
    def __init__(self, *, refuse: frozenset[int] = frozenset()) -> None:
        self.refuse = set(refuse)
        self.fatal: set[int] = set()
        """Versions whose load kills the engine (as a bad adapter kills vLLM's core)."""
        self.calls: list[tuple[str, int]] = []
        self.ready = False
        self.starts = 0
        self.failed_starts = 0
        """Starts that still fail before one succeeds."""

    async def start(self) -> None:
        self.starts += 1
        if self.failed_starts:
            self.failed_starts -= 1
            raise RuntimeError("no engine today")
        self.ready = True

    @property
    def is_ready(self) -> bool:
        return self.ready

    @property
    def max_model_len(self) -> int:
        return 512

    async def generate(self, prompt_token_ids, params, request_id, lora=None) -> AsyncIterator:  # type: ignore[no-untyped-def, override]
        raise EngineUnavailable("not a real engine")
        yield  # pragma: no cover

    async def abort(self, request_id: str) -> None:
        return None

    async def load_adapter(self, lora: LoRARequest, *, warm: bool = True) -> None:
        if not self.ready:
            raise EngineUnavailable("down")
        self.calls.append(("load", lora.lora_int_id))
        if lora.lora_int_id in self.fatal:
            self.ready = False
            raise EngineUnavailable("the engine died")
        if lora.lora_int_id in self.refuse:
            raise AdapterLoadError(f"bad weights in {lora.lora_name}")

    async def unload_adapter(self, lora_id: int) -> None:
        if not self.ready:
            raise EngineUnavailable("down")
        self.calls.append(("unload", lora_id))

    async def pin_adapter(self, lora_id: int) -> None:
        self.calls.append(("pin", lora_id))

    async def shutdown(self) -> None:
        self.ready = False
