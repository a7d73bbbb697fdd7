"""Engine residency follows the registry, on the real gateway: pins move with the alias and
never fill the engine's slots, a bad adapter never reaches the engine, and a deleted version's
files go only after the requests using it have finished."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest

from tests.utils.adapters import edit_config, edit_weights, good_adapter
from tests.utils.keys import client_for, create_key
from tests.utils.registry import import_folder, promote
from tests.utils.server import RemoteGateway

pytestmark = pytest.mark.slow
MESSAGES = [{"role": "user", "content": "Is track three open?"}]


def answer(client: openai.OpenAI, model: str, **params: object) -> openai.types.chat.ChatCompletion:
    return client.chat.completions.create(model=model, messages=MESSAGES, **{"max_tokens": 4, **params})  # type: ignore[arg-type]


def set_pinned(admin_http: httpx.Client, name: str, pinned: bool) -> None:
    response = admin_http.post(f"/admin/adapters/{name}/pin", json={"pinned": pinned})
    assert response.status_code == 200, response.text


@pytest.fixture
def no_other_pins(admin_http: httpx.Client) -> Iterator[None]:
    """This test needs the slots to itself (the session gateway has max_loras=2)."""
    pinned = [a["name"] for a in admin_http.get("/admin/adapters").json()["data"] if a["pinned"]]
    for name in pinned:
        set_pinned(admin_http, name, False)
    yield
    for name in pinned:
        set_pinned(admin_http, name, True)


def test_pins_follow_promotions_and_never_fill_the_slots(
    gateway: RemoteGateway,
    admin_http: httpx.Client,
    admin_client: openai.OpenAI,
    demo_model: Path,
    tmp_path: Path,
    no_other_pins: None,
) -> None:
    name = "pin-move-bot"
    for seed in (91, 92):
        import_folder(admin_http, name, good_adapter(demo_model, tmp_path / f"s{seed}", seed=seed))
    promote(admin_http, name, 1)
    set_pinned(admin_http, name, True)
    try:
        promote(admin_http, name, 2)
        # Had version 1 kept its pin, versions 1 and 2 would hold both slots, and the next other
        # adapter would find none: vLLM's engine core dies ("All items are pinned").
        for model in ("support-bot", "yard-json", f"{name}@1", name, "support-bot@1"):
            assert answer(admin_client, model).choices, model
        assert admin_http.get("/health").status_code == 200
        assert admin_http.get("/ready").json()["lagging"] == []
    finally:
        set_pinned(admin_http, name, False)
    assert answer(admin_client, "yard-json").choices


@pytest.mark.parametrize(("case", "fault"), [("a-only", "lora_B"), ("pissa", "pissa")])
def test_a_bad_adapter_is_refused_and_the_engine_keeps_serving(
    gateway: RemoteGateway,
    admin_http: httpx.Client,
    admin_client: openai.OpenAI,
    demo_model: Path,
    tmp_path: Path,
    case: str,
    fault: str,
) -> None:
    folder = good_adapter(demo_model, tmp_path / case, seed=93)
    if case == "a-only":
        edit_weights(folder, lambda tensors: {k: v for k, v in tensors.items() if "lora_A" in k})
    else:
        edit_config(folder, init_lora_weights="pissa")
    name = f"broken-{case}"
    response = admin_http.post(f"/admin/adapters/{name}/versions", json={"source": str(folder)})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_adapter" and fault in error["message"] and str(tmp_path) not in error["message"]
    plain = client_for(gateway.url, create_key(admin_http, f"plain-{case}", allowed_adapters=["*"])[1])
    with pytest.raises(openai.NotFoundError):  # never servable: refused, or at most rejected
        answer(plain, f"{name}@1")
    assert answer(admin_client, "support-bot@1").choices
    assert admin_http.get("/health").status_code == 200 and admin_http.get("/ready").status_code == 200


def test_delete_waits_for_the_requests_using_the_version(
    gateway: RemoteGateway, admin_http: httpx.Client, admin_client: openai.OpenAI, demo_model: Path, tmp_path: Path
) -> None:
    name = "delete-bot"
    for seed in (94, 95):
        import_folder(admin_http, name, good_adapter(demo_model, tmp_path / f"s{seed}", seed=seed))
    promote(admin_http, name, 1)
    files = [p for p in (gateway.data_dir / "adapters" / name).iterdir() if p.is_dir()]
    assert len(files) == 2
    answer(admin_client, f"{name}@2")  # loaded

    finished: dict[str, float] = {}

    def long_request() -> None:
        # Four sequences of 400 tokens at temperature 1: a few seconds on the CPU engine.
        answer(admin_client, f"{name}@2", max_tokens=400, n=4, temperature=1.0)
        finished["request"] = time.monotonic()

    worker = threading.Thread(target=long_request)
    worker.start()
    time.sleep(0.5)
    asked = time.monotonic()
    deleter = threading.Thread(
        target=lambda: finished.update(
            delete=time.monotonic() if admin_http.delete(f"/admin/adapters/{name}/versions/2").status_code == 204 else 0
        )
    )
    deleter.start()
    time.sleep(0.3)
    with pytest.raises(openai.NotFoundError):  # withdrawn at once: no new request may start on it
        answer(admin_client, f"{name}@2")
    worker.join(timeout=120)
    deleter.join(timeout=120)
    assert finished["delete"], "the delete failed"
    assert finished["request"] - asked > 0.5, "the request was too short to tell anything"
    # The files went only once the running request had finished with them.
    assert finished["delete"] >= finished["request"] - 0.25
    remaining = [p for p in (gateway.data_dir / "adapters" / name).iterdir() if p.is_dir()]
    assert len(remaining) == 1
    assert answer(admin_client, name).choices


def test_a_version_evicted_from_the_engines_cpu_cache_can_still_be_pinned(
    admin_http: httpx.Client, admin_client: openai.OpenAI, demo_model: Path, tmp_path: Path, no_other_pins: None
) -> None:
    """Loaded once is not loaded now: vLLM pins only what its CPU cache holds (4 in the session gateway)."""
    names = [f"evict-{i}" for i in range(6)]
    for i, name in enumerate(names):
        import_folder(admin_http, name, good_adapter(demo_model, tmp_path / name, seed=120 + i))
        promote(admin_http, name, 1)
    for name in names:  # the first one is pushed out of the CPU cache by the five after it
        assert answer(admin_client, name).choices
    set_pinned(admin_http, names[0], True)
    try:
        assert admin_http.get("/ready").json()["lagging"] == []
        for name in names:
            assert answer(admin_client, name).choices
    finally:
        set_pinned(admin_http, names[0], False)


def test_a_pin_and_several_unpinned_adapters_at_once_keep_the_engine_alive(
    gateway: RemoteGateway,
    admin_http: httpx.Client,
    admin_client: openai.OpenAI,
    demo_model: Path,
    tmp_path: Path,
    no_other_pins: None,
) -> None:
    """vLLM fills a batch with up to max_loras adapters and, to make room, evicts the oldest slot
    that is not pinned, even one the same batch needs. With one of the session gateway's two
    slots pinned, two different unpinned adapters in one batch would kill the engine core."""
    names = [f"slot-{i}" for i in range(3)]
    for i, name in enumerate(names):
        import_folder(admin_http, name, good_adapter(demo_model, tmp_path / name, seed=140 + i))
        promote(admin_http, name, 1)
    set_pinned(admin_http, names[0], True)
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            models = [names[1], names[2]] * 4 + [names[0]] * 2
            results = list(pool.map(lambda m: answer(admin_client, m, max_tokens=24, temperature=1.0), models))
        assert all(r.choices for r in results)
        assert admin_http.get("/health").json() == {"status": "ok", "engine": "running"}
        assert "switchyard_engine_restarts 0.0" in admin_http.get("/metrics").text
    finally:
        set_pinned(admin_http, names[0], False)
