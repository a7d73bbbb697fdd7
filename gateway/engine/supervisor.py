"""Keeps an engine alive: starts it, notices when it dies, and starts a new one.

vLLM's engine core is a child process. When it dies (killed, out of memory, a fault inside a
step) ``AsyncLLM`` never recovers: every later call raises ``EngineDeadError``. The supervisor
shuts the dead engine down and builds a new one, waiting ``backoff_s`` before the first
attempt and doubling the wait after every failed start or quick death, up to
``backoff_max_s``. Once a new engine runs, the ready callbacks (the router's) put the
adapters back: re-warm the routing table, re-apply pins.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable

from vllm import SamplingParams
from vllm.lora.request import LoRARequest
from vllm.outputs import RequestOutput

from gateway.engine.protocol import EngineClient, EngineState

logger = logging.getLogger(__name__)
ReadyCallback = Callable[[], Awaitable[None]]
WATCH_INTERVAL_S = 0.25


class SupervisedEngine(EngineClient):
    """An :class:`EngineClient` that restarts the engine it wraps whenever that one dies."""

    def __init__(self, engine: EngineClient, *, backoff_s: float, backoff_max_s: float) -> None:
        self._engine = engine
        self._backoff_s = backoff_s
        self._backoff_max_s = max(backoff_max_s, backoff_s)
        self._state = EngineState.starting
        self._on_ready: list[ReadyCallback] = []
        self._first_run = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.restarts = 0
        """Engines started after the first one (a gauge for operators, and tests)."""

    def on_ready(self, callback: ReadyCallback) -> None:
        """Run ``callback`` each time an engine has started (first start and every restart)."""
        self._on_ready.append(callback)

    async def start(self) -> None:
        """Start supervising, and return once an engine first runs (failed starts are retried)."""
        if self._task is None:
            self._task = asyncio.create_task(self._supervise(), name="engine-supervisor")
        await self._first_run.wait()

    @property
    def state(self) -> EngineState:
        if self._state is EngineState.running and not self._engine.is_ready:
            return EngineState.dead  # died since the last check: say so at once
        return self._state

    @property
    def is_ready(self) -> bool:
        return self.state is EngineState.running

    async def _supervise(self) -> None:
        delay = self._backoff_s
        while True:
            try:
                await self._engine.start()
            except Exception as exc:
                self._state = EngineState.dead
                logger.error("engine start failed (%s); next attempt in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._backoff_max_s)
                self._state = EngineState.restarting
                continue
            self._state = EngineState.running
            self._first_run.set()
            started = time.monotonic()
            await self._notify_ready()
            while self._engine.is_ready:
                await asyncio.sleep(WATCH_INTERVAL_S)
            self._state = EngineState.dead
            if time.monotonic() - started >= self._backoff_max_s:
                delay = self._backoff_s  # it had been healthy: this is not a crash loop
            logger.error("the engine died; restarting it in %.1f s", delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._backoff_max_s)
            self._state = EngineState.restarting
            self.restarts += 1

    async def _notify_ready(self) -> None:
        for callback in self._on_ready:
            try:
                await callback()
            except Exception:  # the engine serves anyway; the router reports what it lags
                logger.exception("engine ready callback failed")

    # -- everything else is the current engine's -------------------------------------------

    @property
    def max_model_len(self) -> int:
        return self._engine.max_model_len

    def generate(
        self,
        prompt_token_ids: list[int],
        params: SamplingParams,
        request_id: str,
        lora: LoRARequest | None = None,
    ) -> AsyncGenerator[RequestOutput, None]:
        return self._engine.generate(prompt_token_ids, params, request_id, lora)

    async def abort(self, request_id: str) -> None:
        await self._engine.abort(request_id)

    async def load_adapter(self, lora: LoRARequest, *, warm: bool = True) -> None:
        await self._engine.load_adapter(lora, warm=warm)

    async def unload_adapter(self, lora_id: int) -> None:
        await self._engine.unload_adapter(lora_id)

    async def pin_adapter(self, lora_id: int) -> None:
        await self._engine.pin_adapter(lora_id)

    async def shutdown(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._state = EngineState.stopped
        await self._engine.shutdown()
