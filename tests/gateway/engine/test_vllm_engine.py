"""The real vLLM engine, in this process: what it refuses comes back as an error and leaves it
serving, pins never take every slot, input errors are the request's fault, a refused import is
rejected with the engine's reason, and a non-stream request whose client left is aborted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from vllm import SamplingParams
from vllm.lora.request import LoRARequest
from vllm.sampling_params import RequestOutputKind

from adapters.base_model import BaseModelSpec
from adapters.registry import ServableVersion
from adapters.store import LocalArtifactStore
from adapters.validation import EngineLimits
from gateway.auth.models import ADMIN
from gateway.engine.admission import AdmissionController
from gateway.engine.protocol import AdapterLoadError
from gateway.engine.residency import AdapterResidency
from gateway.engine.vllm_client import VLLMEngineClient
from gateway.exceptions import ClientDisconnected, InvalidRequest
from gateway.generation.record import RequestRecord
from gateway.generation.service import GenerationJob, GenerationService
from gateway.registry.service import RegistryService
from gateway.routing import ModelRouter, RouteTarget
from switchyard.config import EngineSettings
from tests.gateway.engine.fakes import version
from tests.utils.adapters import edit_config, edit_weights, good_adapter
from tests.utils.db import sqlite_engine

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]
FINAL = RequestOutputKind.FINAL_ONLY


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def engine(demo_model: Path) -> AsyncIterator[VLLMEngineClient]:
    client = VLLMEngineClient(str(demo_model), EngineSettings(max_model_len=512, max_loras=2, max_cpu_loras=4))
    await client.start()
    yield client
    await client.shutdown()


@pytest.fixture(scope="module")
def folders(demo_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("engine-adapters")
    found = {f"good{seed}": good_adapter(demo_model, root / f"good{seed}", seed=seed) for seed in range(81, 86)}
    found["a-only"] = edit_weights(
        good_adapter(demo_model, root / "a-only", seed=86), lambda t: {k: v for k, v in t.items() if "lora_A" in k}
    )
    found["pissa"] = edit_config(good_adapter(demo_model, root / "pissa", seed=87), init_lora_weights="pissa")
    found["rank32"] = good_adapter(demo_model, root / "rank32", seed=88, rank=32)
    return found


def servable(version_id: int, path: Path) -> ServableVersion:
    return ServableVersion(**{**version(version_id).__dict__, "path": path})


async def answer(engine: VLLMEngineClient, lora: LoRARequest | None = None, **params: Any) -> list[int]:
    sampling = SamplingParams(max_tokens=2, temperature=0.0, output_kind=FINAL, **params)
    final = None
    async for output in engine.generate([1, 2, 3], sampling, f"t-{id(sampling)}", lora):
        final = output
    assert final is not None
    return list(final.outputs[0].token_ids)


@pytest.mark.parametrize(("case", "fault"), [("a-only", "NoneType"), ("pissa", "init_lora_weights='pissa'")])
async def test_a_refused_adapter_leaves_the_engine_serving(
    engine: VLLMEngineClient, folders: dict[str, Path], case: str, fault: str
) -> None:
    bad = LoRARequest(f"{case}@1", 900 + len(case), str(folders[case]))
    with pytest.raises(AdapterLoadError) as info:
        await engine.load_adapter(bad)
    assert fault in info.value.reason and str(folders[case]) not in info.value.reason
    assert engine.is_ready
    good = LoRARequest("good@1", 81, str(folders["good81"]))
    await engine.load_adapter(good)
    assert await answer(engine, good) and await answer(engine)


async def test_input_errors_are_the_requests_fault(engine: VLLMEngineClient) -> None:
    with pytest.raises(InvalidRequest, match="2\\*\\*64"):
        await answer(engine, seed=2**64 + 5)
    assert engine.is_ready and await answer(engine, seed=2**63)
    assert engine._engine is not None and engine._engine.get_num_unfinished_requests() == 0  # nothing leaked


async def test_pins_follow_the_desired_set_and_leave_a_slot(engine: VLLMEngineClient, folders: dict[str, Path]) -> None:
    """max_loras=2. Pinning an alias's new version without unpinning the old one would pin both
    slots, and the next other adapter would find none: vLLM's core dies ("All items are pinned")."""
    residency = AdapterResidency(engine, max_loras=2, retry_max_s=30)
    # Engine ids of their own: the database of the import test below starts again at 1.
    v = {i: servable(200 + i, folders[f"good{80 + i}"]) for i in range(1, 6)}
    assert await residency.apply_pins([v[1]]) == []
    assert await residency.apply_pins([v[2]]) == []  # the alias moved from version 1 to 2
    assert await residency.apply_pins([v[2], v[3]]) == [v[3]]  # one pin at most (a slot stays free): v3 reported
    assert residency.pinned == {202}
    for i in (3, 4, 5, 1):
        assert await answer(engine, LoRARequest(v[i].qualified_name, v[i].version_id, str(v[i].path)))
    assert engine.is_ready
    assert await residency.apply_pins([]) == [] and residency.pinned == frozenset()


async def test_an_import_the_engine_refuses_is_rejected_with_its_reason(
    engine: VLLMEngineClient, folders: dict[str, Path], base_spec: BaseModelSpec, tmp_path: Path
) -> None:
    """Validation here allows rank 64 and the engine only 16 (a replica set up differently): only
    loading the adapter finds the fault, and the import must not leave a servable version."""
    with sqlite_engine(tmp_path) as db:
        store = LocalArtifactStore(tmp_path / "store")
        router = ModelRouter(
            base_model_name="demo-base",
            base_fingerprint=base_spec.fingerprint,
            db=db,
            store=store,
            engine=engine,
            max_loras=2,
            warm_retry_max_s=30,
        )
        registry = RegistryService(
            db=db,
            store=store,
            router=router,
            base=base_spec,
            limits=EngineLimits(max_lora_rank=64, max_adapter_bytes=64 << 20),
            scratch_dir=tmp_path / "scratch",
            import_roots=[folders["rank32"].parent],
            engine_ready=lambda: engine.is_ready,
        )
        with pytest.raises(Exception) as info:
            await registry.import_from("wide-bot", str(folders["rank32"]))
        assert type(info.value).__name__ == "InvalidAdapter"
        assert "wide-bot@1 was rejected" in str(info.value) and "max_lora_rank 16" in str(info.value)
        detail = await registry.show("wide-bot")
        assert [(v.version, v.status) for v in detail.versions] == [(1, "rejected")]
        events = await registry.events("wide-bot")
        assert [(e.action, e.version) for e in events.data] == [("register", 1), ("reject", 1)]
        assert "max_lora_rank 16" in events.data[-1].detail["reason"]
        assert engine.is_ready and await answer(engine)
        # The good one goes through, and is loaded already.
        good = await registry.import_from("wide-bot", str(folders["good81"]))
        assert good.version == 2 and good.status == "candidate"


class Formatter:
    def final(self, job: GenerationJob, outputs: list) -> dict:  # type: ignore[type-arg]
        return {"text": outputs[0].text}

    def chunks(self, job: GenerationJob, output: Any, *, first: bool) -> list:  # type: ignore[type-arg]
        return []

    def usage_chunk(self, job: GenerationJob) -> dict:  # type: ignore[type-arg]
        return {}


class Tracker:
    def __init__(self) -> None:
        self.left = 0

    def leave(self, target: RouteTarget) -> None:
        self.left += 1


async def test_a_non_stream_request_is_aborted_when_its_client_leaves(engine: VLLMEngineClient) -> None:
    rows: list[dict] = []  # type: ignore[type-arg]
    tracker = Tracker()
    service = GenerationService(
        engine=engine, admission=AdmissionController(8, retry_after_s=1), tracker=tracker, log=rows.append
    )
    record = RequestRecord(
        request_id="chatcmpl-gone", endpoint="chat.completions", principal=ADMIN, model="demo-base",
        stream=False, content=[], params={},
    )  # fmt: skip
    params = SamplingParams(max_tokens=500, ignore_eos=True, output_kind=FINAL)
    job = GenerationJob(record, RouteTarget(model="demo-base"), [1, 2, 3], params)

    async def client_leaves() -> None:
        await asyncio.sleep(0.05)

    started = asyncio.get_running_loop().time()
    with pytest.raises(ClientDisconnected):
        await service.complete(job, Formatter(), disconnected=client_leaves)
    assert asyncio.get_running_loop().time() - started < 5
    assert [r["status"] for r in rows] == [499] and tracker.left == 1
    assert service.admission.in_flight == 0
    assert engine._engine is not None and engine._engine.get_num_unfinished_requests() == 0
