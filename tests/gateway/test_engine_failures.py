"""Engine failures become 503 (and unknown errors a bare 500) without leaking internals.

The proof is the last test: a real gateway whose real engine core is killed. The others drive
the real app with a stand-in engine whose only job is to fail in ways a real engine cannot be
made to on demand (an arbitrary exception for the last-resort handler, a start-up that never ends)
and check the log row, the metrics and both endpoints without paying for an engine start each time.
"""

from __future__ import annotations

import asyncio
import io
import tarfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from gateway.app import create_app
from gateway.engine.protocol import EngineClient
from gateway.engine.vllm_client import VLLMEngineClient
from gateway.exceptions import EngineUnavailable
from switchyard.config import EngineSettings, Settings
from switchyard.db import make_engine
from switchyard.schema import create_all_tables
from switchyard.traffic.models import RequestLog
from tests.utils.adapters import good_adapter

BODY = {"model": "demo-base", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


class FailingEngine(EngineClient):
    def __init__(self, error: Exception, *, ready: bool = True) -> None:
        self.error = error
        self.ready = ready

    async def start(self) -> None:
        if not self.ready:
            await asyncio.Event().wait()  # a first start that never ends

    @property
    def is_ready(self) -> bool:
        return self.ready

    @property
    def max_model_len(self) -> int:
        return 512

    async def generate(self, prompt_token_ids, params, request_id, lora=None) -> AsyncIterator:  # type: ignore[no-untyped-def, override]
        raise self.error
        yield  # pragma: no cover

    async def abort(self, request_id: str) -> None:
        return None

    async def load_adapter(self, lora, *, warm: bool = True) -> None:  # type: ignore[no-untyped-def]
        raise self.error

    async def unload_adapter(self, lora_id: int) -> None:
        return None

    async def pin_adapter(self, lora_id: int) -> None:
        return None

    async def shutdown(self) -> None:
        return None


@pytest.fixture
def app_with(tmp_path: Path, demo_model: Path) -> Iterator:
    def build(engine: EngineClient) -> TestClient:
        settings = Settings(
            _env_file=None, data_dir=tmp_path, base_model=str(demo_model), admin_key="test-admin-key-0123456789"
        )
        create_all_tables(make_engine(settings.resolved_database_url))
        app = create_app(settings, engine_factory=lambda *_: engine)
        return TestClient(
            app, raise_server_exceptions=False, headers={"Authorization": "Bearer test-admin-key-0123456789"}
        )

    yield build


def adapter_archive(demo_model: Path, tmp_path: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(good_adapter(demo_model, tmp_path / "adapter"), arcname="adapter")
    return buffer.getvalue()


def logged_statuses(tmp_path: Path) -> list[int]:
    db = make_engine(f"sqlite:///{tmp_path / 'switchyard.db'}")
    with Session(db) as session:
        statuses = [row.status for row in session.exec(select(RequestLog))]
    db.dispose()
    return statuses


@pytest.mark.parametrize("stream", [False, True])
def test_engine_failure_is_503_and_logged(app_with, tmp_path: Path, stream: bool) -> None:  # type: ignore[no-untyped-def]
    with app_with(FailingEngine(EngineUnavailable("The model engine failed while generating."))) as client:
        response = client.post("/v1/chat/completions", json={**BODY, "stream": stream})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "engine_unavailable"
    assert logged_statuses(tmp_path) == [503]  # flushed into the database at shutdown


def test_engine_not_ready(app_with) -> None:  # type: ignore[no-untyped-def]
    with app_with(FailingEngine(EngineUnavailable("starting"), ready=False)) as client:
        assert client.get("/health").status_code == 200
        ready = client.get("/ready")
    assert ready.status_code == 503 and ready.json()["error"]["type"] == "service_unavailable_error"


def test_no_alias_moves_while_the_engine_cannot_warm_the_version(app_with, demo_model: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with app_with(FailingEngine(EngineUnavailable("starting"), ready=False)) as client:
        upload = client.post(
            "/admin/adapters/cold-bot/versions/upload",
            files={"file": ("a.tar.gz", adapter_archive(demo_model, tmp_path), "application/gzip")},
        )
        assert upload.status_code == 201, upload.text
        promoted = client.post("/admin/adapters/cold-bot/promote", json={"version": 1})
        assert promoted.status_code == 503 and promoted.json()["error"]["code"] == "engine_unavailable"
        assert client.get("/admin/adapters/cold-bot").json()["active_version"] is None


def test_unexpected_error_is_a_bare_500(app_with) -> None:  # type: ignore[no-untyped-def]
    with app_with(FailingEngine(RuntimeError("boom in /srv/secret/module.py line 3"))) as client:
        response = client.post("/v1/chat/completions", json=BODY)
    assert response.status_code == 500
    error = response.json()["error"]
    assert error == {
        "message": "The server had an error while processing your request.",
        "type": "server_error",
        "param": None,
        "code": "internal_error",
    }


async def test_real_client_refuses_before_start(demo_model: Path) -> None:
    engine = VLLMEngineClient(str(demo_model), EngineSettings())
    assert not engine.is_ready
    with pytest.raises(EngineUnavailable):
        async for _ in engine.generate([1, 2], None, "r1"):  # type: ignore[arg-type]
            pass


def test_metrics_count_requests_and_expose_spool_backlog(app_with) -> None:  # type: ignore[no-untyped-def]
    with app_with(FailingEngine(EngineUnavailable("down"))) as client:
        client.post("/v1/chat/completions", json=BODY)
        client.post("/v1/chat/completions", json={**BODY, "model": "missing"})
        text = client.get("/metrics").text
        assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert (
        'switchyard_requests_total{adapter="",adapter_version="",endpoint="chat.completions",status="503"} 1.0' in text
    )
    assert 'status="404"} 1.0' in text
    assert "switchyard_log_spool_backlog_bytes" in text and "switchyard_log_spool_alert 0.0" in text


def _engine_cores(server_pid: int) -> list:  # type: ignore[type-arg]
    import psutil

    children = psutil.Process(server_pid).children(recursive=True)
    return [p for p in children if "EngineCore" in " ".join(p.cmdline()) or "EngineCore" in p.name()]


@pytest.mark.slow
def test_real_engine_death_is_reported_and_repaired(demo_model: Path, tmp_path: Path) -> None:
    """Kill vLLM's engine-core process under a running gateway: /health says so (503 engine_dead),
    requests get 503 rather than a hang or a 500, and the gateway brings a new engine up by itself,
    with its adapters loaded and pinned again."""
    import json
    import signal
    import time

    import httpx

    from tests.utils.adapters import good_adapter
    from tests.utils.server import RemoteGateway

    folder = good_adapter(demo_model, tmp_path / "imports" / "crash-bot")
    (tmp_path / "data").mkdir()
    server = RemoteGateway(
        tmp_path / "data",
        env={
            "SWITCHYARD_BASE_MODEL": str(demo_model),
            "SWITCHYARD_ENGINE__MAX_MODEL_LEN": "512",
            "SWITCHYARD_ENGINE__RESTART_BACKOFF_S": "0.5",
            "SWITCHYARD_REGISTRY__IMPORT_ROOTS": json.dumps([str(tmp_path / "imports")]),
        },
    )
    try:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.admin_key}"}) as admin:
            assert admin.post("/admin/adapters/crash-bot/versions", json={"source": str(folder)}).status_code == 201
            assert admin.post("/admin/adapters/crash-bot/promote", json={"version": 1}).status_code == 200
            assert admin.post("/admin/adapters/crash-bot/pin", json={"pinned": True}).status_code == 200
            adapter_body = {**BODY, "model": "crash-bot"}
            assert admin.post("/v1/chat/completions", json=BODY, timeout=60).status_code == 200
            assert admin.post("/v1/chat/completions", json=adapter_body, timeout=60).status_code == 200
            pid = server.process.pid
            cores = _engine_cores(pid)
            assert cores, "no engine-core process under the gateway"
            for core in cores:
                core.send_signal(signal.SIGKILL)

            deadline = time.monotonic() + 20
            while (health := admin.get("/health")).status_code == 200 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert health.status_code == 503 and health.json()["error"]["code"] == "engine_dead", health.text
            assert admin.get("/ready").status_code == 503
            refused = admin.post("/v1/chat/completions", json=BODY, timeout=60)
            assert refused.status_code == 503 and refused.json()["error"]["code"] == "engine_unavailable"

            deadline = time.monotonic() + 240  # backoff, then a full engine start (about 30 s here)
            while admin.get("/ready").status_code != 200:
                assert time.monotonic() < deadline, f"no new engine within 240 s:\n{server.tail()}"
                time.sleep(0.5)
            assert admin.get("/health").json() == {"status": "ok", "engine": "running"}
            assert _engine_cores(pid) and {c.pid for c in _engine_cores(pid)}.isdisjoint(c.pid for c in cores)
            assert admin.post("/v1/chat/completions", json=BODY, timeout=60).status_code == 200
            served = admin.post("/v1/chat/completions", json=adapter_body, timeout=60)
            assert served.status_code == 200 and served.headers["x-switchyard-adapter-version"] == "crash-bot@1"
            deadline = time.monotonic() + 30  # re-warming runs just after the engine is up
            while (ready := admin.get("/ready").json())["lagging"]:
                assert time.monotonic() < deadline, ready
                time.sleep(0.2)
    finally:
        server.stop()
    assert sorted(logged_statuses(tmp_path / "data")) == [200, 200, 200, 200, 503]
