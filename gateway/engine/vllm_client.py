"""vLLM's ``AsyncLLM`` in the gateway process, with LoRA enabled (the engine core is a child process).

One instance drives one engine life at a time: :meth:`start` builds a fresh ``AsyncLLM``
(shutting down a dead one first), so a supervisor can restart the engine through it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable
from typing import TYPE_CHECKING, TypeVar

from vllm import AsyncEngineArgs, SamplingParams
from vllm.lora.request import LoRARequest
from vllm.outputs import RequestOutput
from vllm.v1.engine.exceptions import EngineDeadError, EngineGenerateError

from gateway.engine.protocol import AdapterLoadError, EngineClient
from gateway.exceptions import EngineUnavailable, InvalidRequest
from switchyard.config import EngineSettings

try:  # vLLM 0.32; 0.26 (the GPU machine's release) has no such base and raises ValueError instead
    from vllm.exceptions import VLLMClientError
except ImportError:  # pragma: no cover - exercised on vLLM 0.26 only
    VLLMClientError = ValueError  # type: ignore[misc, assignment]

if TYPE_CHECKING:
    from vllm.v1.engine.async_llm import AsyncLLM

logger = logging.getLogger(__name__)
T = TypeVar("T")
CPU_DEFAULT_KV_CACHE_BYTES = 1 << 30
# Any valid token id will do: the warm-up request exists to load the adapter's weights.
WARM_PROMPT = [0, 0]
# A utility call whose engine dies never gets its answer (vLLM leaves the future pending), so
# calls are watched for the engine's death at this interval.
DEATH_POLL_S = 0.25
# vLLM wraps a worker's exception as "Call to add_lora method failed: Worker failed with error
# '<reason>', please check the stack trace above for the root cause"; the reason is what matters.
_WORKER_FAULT = re.compile(r"Worker failed with error '(?P<reason>.*)', please check", re.DOTALL)
_UTILITY_PREFIX = re.compile(r"^Call to \w+ method failed: ")
# Input errors vLLM raises inside generate() (and wraps in EngineGenerateError): the request's fault.
INPUT_ERRORS = (ValueError, TypeError, OverflowError)


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
        # Stats on: vLLM's PrometheusStatLogger then keeps vllm:num_requests_waiting,
        # vllm:kv_cache_usage_perc and vllm:lora_requests_info in prometheus_client's global
        # registry, which /metrics exposes (an inference-gateway endpoint picker scrapes them).
        disable_log_stats=False,
    )


def load_fault(exc: BaseException, lora: LoRARequest) -> str:
    """The engine's reason for refusing ``lora``, without the server's file paths."""
    text = str(exc)
    match = _WORKER_FAULT.search(text)
    reason = match["reason"] if match else _UTILITY_PREFIX.sub("", text)
    return reason.replace(lora.lora_path, lora.lora_name).strip() or type(exc).__name__


class VLLMEngineClient(EngineClient):
    def __init__(self, model: str, settings: EngineSettings) -> None:
        self._args = engine_args(model, settings)
        self._max_model_len = settings.max_model_len
        self._call_timeout_s = settings.adapter_call_timeout_s
        self._engine: AsyncLLM | None = None

    async def start(self) -> None:
        """Build a new engine (tens of seconds) without blocking the event loop; a previous
        (dead) one is shut down first so its processes and sockets are released."""
        from vllm.v1.engine.async_llm import AsyncLLM

        await self.shutdown()
        build = asyncio.ensure_future(asyncio.to_thread(AsyncLLM.from_engine_args, self._args))
        try:
            self._engine = await asyncio.shield(build)
        except asyncio.CancelledError:
            # The thread cannot be stopped: shut down what it builds, or its processes outlive us.
            build.add_done_callback(lambda done: done.cancelled() or done.exception() or done.result().shutdown())
            raise
        except Exception:
            logger.exception("engine failed to start")
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
        engine = self._require()
        try:
            async for output in engine.generate(
                {"prompt_token_ids": prompt_token_ids}, params, request_id, lora_request=lora
            ):
                yield output
        except (VLLMClientError, *INPUT_ERRORS) as exc:  # vLLM's validation (e.g. an unusable JSON schema)
            raise InvalidRequest(f"The engine refused the request: {exc}") from None
        except EngineGenerateError as exc:
            # generate() wraps whatever it did not expect; input errors (a seed past 64 bits
            # fails to serialize with OverflowError) are still the request's fault, not the engine's.
            if isinstance(exc.__cause__, INPUT_ERRORS) and not engine.errored:
                # Raised while sending to the core, after the request was registered for
                # outputs: vLLM does not drop it then, and it would count as unfinished forever.
                await engine.abort(request_id)
                raise InvalidRequest(f"The engine refused the request: {exc.__cause__}") from None
            logger.error("engine failed on request %s: %r", request_id, exc.__cause__ or exc)
            raise EngineUnavailable("The model engine failed while generating.") from None
        except EngineDeadError:
            logger.error("engine died during request %s", request_id)
            raise EngineUnavailable("The model engine failed while generating.") from None

    def _require(self) -> AsyncLLM:
        if self._engine is None or self._engine.errored:
            raise EngineUnavailable("The model engine is not available; it is starting or restarting.")
        return self._engine

    async def _call(self, engine: AsyncLLM, call: Awaitable[T]) -> T:
        """Await a utility call, giving up (EngineUnavailable) if the engine dies meanwhile or does
        not answer within the configured timeout (vLLM never resolves a call its dead core held)."""
        task = asyncio.ensure_future(call)
        deadline = time.monotonic() + self._call_timeout_s
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=DEATH_POLL_S)
                if done:
                    return task.result()
                if engine.errored:
                    raise EngineUnavailable("The model engine died during an adapter operation.")
                if time.monotonic() > deadline:
                    raise EngineUnavailable("The model engine did not answer an adapter operation in time.")
        finally:
            if not task.done():
                task.cancel()

    async def load_adapter(self, lora: LoRARequest, *, warm: bool = True) -> None:
        """``add_lora`` is a utility call: a failure in the worker comes back as an exception and
        leaves the engine core running, unlike a bad adapter met inside a scheduled step."""
        from vllm.sampling_params import RequestOutputKind

        engine = self._require()
        try:
            await self._call(engine, engine.add_lora(lora))
        except EngineUnavailable:
            raise
        except Exception as exc:
            if engine.errored:
                raise EngineUnavailable("The model engine died while loading an adapter.") from None
            # Drop whatever part of it the engine registered before failing, so that no later
            # step finds a half-loaded adapter.
            try:
                await self._call(engine, engine.remove_lora(lora.lora_int_id))
            except Exception as cleanup:
                logger.warning("could not clean up refused adapter %s: %s", lora.lora_name, cleanup)
            raise AdapterLoadError(load_fault(exc, lora)) from None
        if not warm:
            return
        params = SamplingParams(max_tokens=1, temperature=0.0, output_kind=RequestOutputKind.FINAL_ONLY)
        request_id = f"warm-{lora.lora_int_id}-{uuid.uuid4().hex[:8]}"
        try:
            async for _ in self.generate(WARM_PROMPT, params, request_id, lora):
                pass
        except InvalidRequest as exc:
            raise AdapterLoadError(str(exc)) from None

    async def unload_adapter(self, lora_id: int) -> None:
        engine = self._require()
        await self._call(engine, engine.remove_lora(lora_id))

    async def pin_adapter(self, lora_id: int) -> None:
        engine = self._require()
        await self._call(engine, engine.pin_lora(lora_id))

    async def abort(self, request_id: str) -> None:
        engine = self._engine
        if engine is not None and not engine.errored:
            await engine.abort(request_id)

    async def shutdown(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            # Joins the engine-core process (seconds): kept off the event loop.
            await asyncio.to_thread(engine.shutdown)
