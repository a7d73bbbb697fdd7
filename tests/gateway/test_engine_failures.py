"""Engine failures become 503 (and unknown errors a bare 500) without leaking internals.

The proof is the last test: a real gateway whose real engine core is killed. The others drive
the real app with a stand-in engine whose only job is to fail in ways a real engine cannot be
made to on demand (an arbitrary exception for the last-resort handler, a start-up that never ends)
and check the log row, the metrics and both endpoints without paying for an engine start each time.
"""

from __future__ import annotations

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

BODY = {"model": "demo-base", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


class FailingEngine(EngineClient):
    def __init__(self, error: Exception, *, ready: bool = True) -> None:
        self.error = error
        self.ready = ready

    async def start(self) -> None:
        return None

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

    async def load_adapter(self, lora) -> None:  # type: ignore[no-untyped-def]
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


@pytest.mark.slow
def test_real_engine_death_is_503_and_logged(demo_model: Path, tmp_path: Path) -> None:
    """Kill vLLM's engine-core process under a running gateway: requests get 503, not a hang or a 500."""
    import signal
    import time

    import httpx
    import psutil

    from tests.utils.server import RemoteGateway

    server = RemoteGateway(tmp_path, env={"SWITCHYARD_BASE_MODEL": str(demo_model), "SWITCHYARD_MAX_MODEL_LEN": "512"})
    try:
        headers = {"Authorization": f"Bearer {server.admin_key}"}
        url = f"{server.url}/v1/chat/completions"
        assert httpx.post(url, json=BODY, headers=headers, timeout=60).status_code == 200
        children = psutil.Process(server.process.pid).children(recursive=True)
        cores = [p for p in children if "EngineCore" in " ".join(p.cmdline()) or "EngineCore" in p.name()]
        assert cores, [p.name() for p in children]
        for core in cores:
            core.send_signal(signal.SIGKILL)
        deadline = time.monotonic() + 30
        while httpx.get(f"{server.url}/ready", timeout=5).status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert httpx.get(f"{server.url}/ready", timeout=5).status_code == 503
        response = httpx.post(url, json=BODY, headers=headers, timeout=60)
        assert response.status_code == 503 and response.json()["error"]["code"] == "engine_unavailable"
        assert httpx.get(f"{server.url}/health", timeout=5).status_code == 200  # the process itself lives on
    finally:
        server.stop()
    assert sorted(logged_statuses(tmp_path)) == [200, 503]
