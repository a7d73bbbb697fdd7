"""Zero-downtime hot-swap on the real engine: promotions under streaming load, pinned versions,
canaries, many adapters on few slots, refused imports, and promotions made by another process."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest

from tests.utils.adapters import good_adapter
from tests.utils.registry import import_folder, promote, registry_snapshot, rollback
from tests.utils.server import RemoteGateway

pytestmark = pytest.mark.slow
MESSAGES = [{"role": "user", "content": "Is track three open?"}]


def greedy(client: openai.OpenAI, model: str, max_tokens: int = 12) -> str:
    return (
        client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=max_tokens, temperature=0)
        .choices[0]
        .message.content
    )


def test_promote_rollback_cycles_under_streaming_load(
    gateway: RemoteGateway, admin_http: httpx.Client, admin_client: openai.OpenAI, demo_model: Path, tmp_path: Path
) -> None:
    name = "swap-bot"
    assert import_folder(admin_http, name, good_adapter(demo_model, tmp_path / "v1", seed=21)) == 1
    assert import_folder(admin_http, name, good_adapter(demo_model, tmp_path / "v2", seed=22)) == 2
    promote(admin_http, name, 1)
    expected = {f"{name}@{v}": greedy(admin_client, f"{name}@{v}") for v in (1, 2)}
    assert expected[f"{name}@1"] != expected[f"{name}@2"]

    changes: list[tuple[float, float, str]] = [(0.0, time.monotonic(), f"{name}@1")]  # (call start, end, version)
    results: list[tuple[float, float, str, str]] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def stream_forever() -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                with admin_client.chat.completions.with_streaming_response.create(
                    model=name, messages=MESSAGES, max_tokens=12, temperature=0, stream=True
                ) as response:
                    headers_at = time.monotonic()
                    version = response.headers["x-switchyard-adapter-version"]
                    text = "".join(c.choices[0].delta.content or "" for c in response.parse() if c.choices)
                results.append((started, headers_at, version, text))
            except BaseException as exc:
                failures.append(exc)

    clients = [threading.Thread(target=stream_forever) for _ in range(8)]
    for thread in clients:
        thread.start()
    try:
        for _ in range(20):
            for move in (lambda: promote(admin_http, name, 2), lambda: rollback(admin_http, name)):
                began = time.monotonic()
                view = move()
                changes.append((began, time.monotonic(), f"{name}@{view['active_version']}"))
                time.sleep(0.15)
    finally:
        stop.set()
        for thread in clients:
            thread.join(timeout=120)

    assert not failures, failures[:3]
    assert len(results) >= 40
    stable_checked = 0
    for started, headers_at, version, text in results:
        # No response mixes versions: each stream is exactly its version's greedy answer.
        assert text == expected[version], (version, text)
        # The version was active (or being switched to) while the request was routed.
        possible = {
            v
            for i, (_, _, v) in enumerate(changes)
            if changes[i][0] <= headers_at and (i + 1 == len(changes) or changes[i + 1][1] >= started)
        }
        assert version in possible
        # Routed entirely inside a quiet period: it must be that period's version, exactly.
        for i, (_, settled, v) in enumerate(changes):
            next_start = changes[i + 1][0] if i + 1 < len(changes) else float("inf")
            if settled <= started and headers_at <= next_start:
                assert version == v
                stable_checked += 1
    assert stable_checked >= 10
    assert {r[2] for r in results} == {f"{name}@1", f"{name}@2"}


def test_pinned_version_is_stable_across_promotions(
    admin_http: httpx.Client, admin_client: openai.OpenAI, demo_model: Path, tmp_path: Path
) -> None:
    name = "pin-bot"
    for seed in (31, 32, 33):
        import_folder(admin_http, name, good_adapter(demo_model, tmp_path / f"s{seed}", seed=seed))
    promote(admin_http, name, 1)
    before = greedy(admin_client, f"{name}@2", max_tokens=16)
    promote(admin_http, name, 3)
    promote(admin_http, name, 2)
    rollback(admin_http, name)
    assert greedy(admin_client, f"{name}@2", max_tokens=16) == before
    assert greedy(admin_client, name, max_tokens=16) == greedy(admin_client, f"{name}@3", max_tokens=16)


def test_canary_is_weighted_and_sticky_per_user(
    admin_http: httpx.Client, admin_client: openai.OpenAI, demo_model: Path, tmp_path: Path
) -> None:
    name = "canary-bot"
    for seed in (41, 42):
        import_folder(admin_http, name, good_adapter(demo_model, tmp_path / f"s{seed}", seed=seed))
    promote(admin_http, name, 1)
    response = admin_http.post(f"/admin/adapters/{name}/canary", json={"version": 2, "weight": 0.5})
    assert response.status_code == 200 and response.json()["canary_version"] == 2

    def served(user: str | None) -> str:
        raw = admin_client.chat.completions.with_raw_response.create(
            model=name, messages=MESSAGES, max_tokens=1, user=user
        )
        return raw.headers["x-switchyard-adapter-version"]

    by_user = {f"user-{i}": {served(f"user-{i}") for _ in range(3)} for i in range(16)}
    assert all(len(versions) == 1 for versions in by_user.values())  # sticky
    assert {v for versions in by_user.values() for v in versions} == {f"{name}@1", f"{name}@2"}
    assert admin_http.post(f"/admin/adapters/{name}/canary", json={"version": 2, "weight": 0}).status_code == 200
    assert {served(f"user-{i}") for i in range(8)} == {f"{name}@1"}


def test_many_adapters_on_few_slots_all_answer(
    gateway: RemoteGateway, admin_http: httpx.Client, admin_client: openai.OpenAI, demo_model: Path, tmp_path: Path
) -> None:
    """100 aliases over 10 distinct weight sets, with max_loras=2 and max_cpu_loras=4."""
    weight_sets = [good_adapter(demo_model, tmp_path / f"w{i}", seed=100 + i) for i in range(10)]
    for i in range(100):
        name = f"bulk-{i:03d}"
        import_folder(admin_http, name, weight_sets[i % 10])
        promote(admin_http, name, 1)
    # One hot adapter pinned to a slot: the other 99 share the one slot left, and still all answer.
    pinned = admin_http.post("/admin/adapters/bulk-000/pin", json={"pinned": True})
    assert pinned.status_code == 200 and pinned.json()["pinned"] is True
    reference = {i: greedy(admin_client, f"bulk-{i:03d}", max_tokens=8) for i in range(10)}
    assert len(set(reference.values())) > 1
    for i in reversed(range(100)):  # reverse order: every answer needs an eviction and a reload
        assert greedy(admin_client, f"bulk-{i:03d}", max_tokens=8) == reference[i % 10], i


@pytest.mark.parametrize(
    ("case", "request_kwargs", "message"),
    [
        ("rank too high", {"edit": {"r": 64}}, "exceeds the engine's max_lora_rank"),
        ("unsupported module", {"edit": {"target_modules": ["embed_tokens"]}}, "unsupported target modules"),
        ("bad name", {"name": "Bad Name"}, "name: String should match pattern"),
        ("missing folder", {"source": "nonexistent"}, "does not exist"),
        ("missing weights", {"drop": "adapter_model.safetensors"}, "adapter_model.safetensors is missing"),
    ],
)
def test_bad_imports_are_4xx_and_change_nothing(
    gateway: RemoteGateway,
    admin_http: httpx.Client,
    demo_model: Path,
    tmp_path: Path,
    case: str,
    request_kwargs: dict,
    message: str,
) -> None:
    import json

    folder = good_adapter(demo_model, tmp_path / "bad")
    if "edit" in request_kwargs:
        config = json.loads((folder / "adapter_config.json").read_text())
        config.update(request_kwargs["edit"])
        (folder / "adapter_config.json").write_text(json.dumps(config))
    if "drop" in request_kwargs:
        (folder / request_kwargs["drop"]).unlink()
    name = request_kwargs.get("name", "support-bot")
    before = registry_snapshot(admin_http, gateway.data_dir / "adapters")
    # A missing folder inside the import root (paths outside it are refused before any lookup).
    source = str(tmp_path / request_kwargs["source"]) if "source" in request_kwargs else str(folder)
    response = admin_http.post(f"/admin/adapters/{name}/versions", json={"source": source})
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]["message"]
    assert str(gateway.data_dir) not in response.json()["error"]["message"]
    assert registry_snapshot(admin_http, gateway.data_dir / "adapters") == before


def test_uploaded_archives(gateway: RemoteGateway, admin_http: httpx.Client, demo_model: Path, tmp_path: Path) -> None:
    import io
    import tarfile
    import zipfile

    folder = good_adapter(demo_model, tmp_path / "up")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(folder, arcname="adapter")
    good = admin_http.post(
        "/admin/adapters/upload-bot/versions/upload",
        files={"file": ("adapter.tar.gz", buffer.getvalue(), "application/gzip")},
        data={"description": "uploaded"},
    )
    assert good.status_code == 201 and good.json()["version"] == 1 and good.json()["source"] == "adapter.tar.gz"

    before = registry_snapshot(admin_http, gateway.data_dir / "adapters")
    evil = io.BytesIO()
    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr("../../../escaped.txt", "x")
    refused = admin_http.post(
        "/admin/adapters/upload-bot/versions/upload", files={"file": ("evil.zip", evil.getvalue(), "application/zip")}
    )
    assert refused.status_code == 400 and "outside its folder" in refused.json()["error"]["message"]
    assert registry_snapshot(admin_http, gateway.data_dir / "adapters") == before


def test_promotion_by_the_cli_reaches_the_running_gateway(
    gateway: RemoteGateway, admin_http: httpx.Client, admin_client: openai.OpenAI, demo_model: Path, tmp_path: Path
) -> None:
    name = "cli-bot"
    for seed in (51, 52):
        import_folder(admin_http, name, good_adapter(demo_model, tmp_path / f"s{seed}", seed=seed))
    promote(admin_http, name, 1)
    env = {**os.environ, "SWITCHYARD_DATA_DIR": str(gateway.data_dir)}
    env.pop("SWITCHYARD_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "switchyard.cli", "adapters", "promote", name, "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    changed_at = time.monotonic()
    while time.monotonic() - changed_at < 15:
        raw = admin_client.chat.completions.with_raw_response.create(model=name, messages=MESSAGES, max_tokens=1)
        if raw.headers["x-switchyard-adapter-version"] == f"{name}@2":
            break
        time.sleep(0.2)
    else:
        pytest.fail("the gateway did not pick up the CLI's promotion within 15 s")
    assert admin_http.get(f"/admin/adapters/{name}").json()["active_version"] == 2
