"""Adapter operations on the engine never wait forever: a hung engine gives up with a 503."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import pytest

from gateway.engine.vllm_client import VLLMEngineClient
from gateway.exceptions import EngineUnavailable
from switchyard.config import EngineSettings


async def test_an_adapter_call_that_never_answers_is_given_up(demo_model: Path) -> None:
    client = VLLMEngineClient(str(demo_model), EngineSettings(adapter_call_timeout_s=0.3))
    never = asyncio.get_running_loop().create_future()  # an engine that hangs without dying
    with pytest.raises(EngineUnavailable, match="in time"):
        await client._call(SimpleNamespace(errored=False), never)  # type: ignore[arg-type]
    assert never.cancelled()


async def test_an_adapter_call_on_a_dying_engine_is_given_up(demo_model: Path) -> None:
    client = VLLMEngineClient(str(demo_model), EngineSettings())
    never = asyncio.get_running_loop().create_future()
    with pytest.raises(EngineUnavailable, match="died"):
        await client._call(SimpleNamespace(errored=True), never)  # type: ignore[arg-type]
