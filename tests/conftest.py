"""Shared fixtures: one real gateway (vLLM CPU engine on the tiny demo model) per session,
the demo model built once, and storage backends (SQLite and the local PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from sqlalchemy.engine import Engine

from adapters.base_model import BaseModelSpec
from switchyard.config import DEMO_MODEL_DIRNAME
from switchyard.demo import build_demo_model
from tests.utils.db import postgres_engine, sqlite_engine
from tests.utils.server import RemoteGateway

# Small enough that a context-length test needs only a short prompt; 16 sequences in flight
# lets concurrency tests run while a burst of n=8 requests still trips admission control.
SERVER_ENV = {
    "SWITCHYARD_ENGINE__MAX_MODEL_LEN": "512",
    "SWITCHYARD_SERVER__MAX_QUEUED_REQUESTS": "16",
    "SWITCHYARD_ENGINE__MAX_LORAS": "2",
    "SWITCHYARD_ENGINE__MAX_CPU_LORAS": "4",
    "SWITCHYARD_TRAFFIC_LOG__FLUSH_INTERVAL_S": "0.2",
}


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("switchyard-data")


@pytest.fixture(scope="session")
def demo_model(data_dir: Path) -> Path:
    """The demo base model, built where the session gateway will look for it."""
    return build_demo_model(data_dir / "models" / DEMO_MODEL_DIRNAME)


@pytest.fixture(scope="session")
def base_spec(demo_model: Path) -> BaseModelSpec:
    return BaseModelSpec.load(str(demo_model))


@pytest.fixture(scope="session")
def gateway(data_dir: Path, demo_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RemoteGateway]:
    # Tests import adapter folders they build under pytest's temporary root, so that is the
    # one server folder the admin API may import from.
    import_roots = json.dumps([str(tmp_path_factory.getbasetemp())])
    server = RemoteGateway(data_dir, env={**SERVER_ENV, "SWITCHYARD_REGISTRY__IMPORT_ROOTS": import_roots})
    yield server
    server.stop()


@pytest.fixture(scope="session")
def admin_client(gateway: RemoteGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=gateway.admin_key, max_retries=0)


@pytest.fixture(scope="session")
def admin_http(gateway: RemoteGateway) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=gateway.url, headers={"Authorization": f"Bearer {gateway.admin_key}"}, timeout=120
    ) as client:
        yield client


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """Each storage test runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        with sqlite_engine(tmp_path) as engine:
            yield engine
    else:
        with postgres_engine() as engine:
            yield engine
