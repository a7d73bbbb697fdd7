"""vLLM's ``AsyncLLM`` in the gateway process, with LoRA enabled (the engine core is a child process)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING

from vllm import AsyncEngineArgs, SamplingParams
from vllm.lora.request import LoRARequest
from vllm.outputs import RequestOutput

from gateway.engine.protocol import EngineClient
from gateway.exceptions import EngineUnavailable, InvalidRequest
from switchyard.config import EngineSettings

if TYPE_CHECKING:
    from vllm.v1.engine.async_llm import AsyncLLM

logger = logging.getLogger(__name__)
CPU_DEFAULT_KV_CACHE_BYTES = 1 << 30
# Any valid token id will do: the warm-up request exists to load the adapter's weights.
WARM_PROMPT = [0, 0]


def engine_args(model: str, settings: EngineSettings) -> AsyncEngineArgs:
    from vllm.config import StructuredOutputsConfig
    from vllm.platforms import current_platform

    kv_cache_bytes = settings.kv_cache_memory_bytes
    if kv_cache_bytes is None and current_platform.is_cpu():
        # On CPU vLLM otherwise reserves gpu_memory_utilization of the NUMA node's RAM and
        # refuses to start when other processes hold some of it.
        kv_cache_bytes = CPU_DEFAULT_KV_CACHE_BYTES
    return AsyncEngineArgs(
        model=model,
        dtype=settings.dtype,
        seed=settings.seed,
        max_model_len=settings.max_model_len,
        max_num_seqs=settings.max_num_seqs,
        enable_lora=True,
        max_loras=settings.max_loras,
        max_cpu_loras=max(settings.max_cpu_loras, settings.max_loras),
        max_lora_rank=settings.max_lora_rank,
        kv_cache_memory_bytes=kv_cache_bytes,
        gpu_memory_utilization=settings.gpu_memory_utilization,
        tensor_parallel_size=settings.tensor_parallel_size,
        # Without this a random-weight (or weak) model can emit whitespace inside JSON until
        # max_tokens runs out; the per-request flag alone does not prevent it.
        structured_outputs_config=StructuredOutputsConfig(backend="xgrammar", disable_any_whitespace=True),
        disable_log_stats=True,
    )


class VLLMEngineClient(EngineClient):
    def __init__(self, model: str, settings: EngineSettings) -> None:
        self._args = engine_args(model, settings)
        self._max_model_len = settings.max_model_len
        self._engine: AsyncLLM | None = None

    async def start(self) -> None:
        """Build the engine (tens of seconds) without blocking the event loop."""
        from vllm.v1.engine.async_llm import AsyncLLM

        try:
            self._engine = await asyncio.to_thread(AsyncLLM.from_engine_args, self._args)
        except Exception:
            logger.exception("engine failed to start")  # /ready stays 503
            raise

    @property
    def is_ready(self) -> bool:
        engine = self._engine
        return engine is not None and not engine.errored

    @property
    def max_model_len(self) -> int:
        return self._max_model_len

    async def generate(
        self,
        prompt_token_ids: list[int],
        params: SamplingParams,
        request_id: str,
        lora: LoRARequest | None = None,
    ) -> AsyncGenerator[RequestOutput, None]:
        from vllm.v1.engine.exceptions import EngineDeadError, EngineGenerateError

        engine = self._require()
        try:
            async for output in engine.generate(
                {"prompt_token_ids": prompt_token_ids}, params, request_id, lora_request=lora
            ):
                yield output
        except ValueError as exc:  # vLLM's input validation (e.g. an unusable JSON schema)
            raise InvalidRequest(str(exc)) from None
        except (EngineDeadError, EngineGenerateError) as exc:
            logger.error("engine failed on request %s: %s", request_id, exc)
            raise EngineUnavailable("The model engine failed while generating.") from None

    def _require(self) -> AsyncLLM:
        if self._engine is None or self._engine.errored:
            raise EngineUnavailable("The model engine is not available; it is starting or has failed.")
        return self._engine

    async def load_adapter(self, lora: LoRARequest) -> None:
        from vllm.sampling_params import RequestOutputKind

        engine = self._require()
        await engine.add_lora(lora)
        warm = SamplingParams(max_tokens=1, temperature=0.0, output_kind=RequestOutputKind.FINAL_ONLY)
        request_id = f"warm-{lora.lora_int_id}-{uuid.uuid4().hex[:8]}"
        async for _ in engine.generate({"prompt_token_ids": WARM_PROMPT}, warm, request_id, lora_request=lora):
            pass

    async def unload_adapter(self, lora_id: int) -> None:
        await self._require().remove_lora(lora_id)

    async def pin_adapter(self, lora_id: int) -> None:
        await self._require().pin_lora(lora_id)

    async def abort(self, request_id: str) -> None:
        if self._engine is not None:
            await self._engine.abort(request_id)

    async def shutdown(self) -> None:
        if self._engine is not None:
            self._engine.shutdown()
            self._engine = None
