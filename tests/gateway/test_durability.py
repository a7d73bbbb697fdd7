"""No log row is lost: a gateway on PostgreSQL keeps serving through a database outage, is killed
with SIGKILL while rows are still spooled, and its successor replays them when the database is back.
A request PostgreSQL could not store as sent (a NUL in the model name) holds up nothing."""

from __future__ import annotations

import signal
import time
import uuid
from pathlib import Path

import httpx
import openai
import pytest
from sqlalchemy import text

from switchyard.db import make_engine
from tests.utils.db import POSTGRES_URL
from tests.utils.keys import client_for, create_key
from tests.utils.server import RemoteGateway
from tests.utils.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
MESSAGES = [{"role": "user", "content": "Is track three open?"}]


def metric(gateway: RemoteGateway, name: str) -> float:
    body = httpx.get(f"{gateway.url}/metrics", headers={"Authorization": f"Bearer {gateway.admin_key}"}).text
    line = next(line for line in body.splitlines() if line.startswith(name + " ") or line.startswith(name + "{"))
    return float(line.rsplit(" ", 1)[1])


def test_rows_survive_a_database_outage_and_sigkill(demo_model: Path, tmp_path: Path) -> None:
    schema = f"sy_dur_{uuid.uuid4().hex[:10]}"
    direct = make_engine(POSTGRES_URL)
    with direct.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    proxy = TcpProxy("127.0.0.1", int(POSTGRES_URL.rsplit(":", 1)[1].split("/")[0]))
    proxy.up()
    host_part = POSTGRES_URL.rsplit("@", 1)[0]
    env = {
        "SWITCHYARD_DATABASE_URL": f"{host_part}@127.0.0.1:{proxy.port}/test?options=-csearch_path%3D{schema}",
        "SWITCHYARD_BASE_MODEL": str(demo_model),
        "SWITCHYARD_ENGINE__MAX_MODEL_LEN": "512",
        "SWITCHYARD_TRAFFIC_LOG__FLUSH_INTERVAL_S": "0.2",
        "SWITCHYARD_TRAFFIC_LOG__RETRY_MAX_S": "1",
    }
    first = RemoteGateway(tmp_path, env=env)
    second: RemoteGateway | None = None
    try:
        with httpx.Client(base_url=first.url, headers={"Authorization": f"Bearer {first.admin_key}"}) as admin:
            _, secret = create_key(admin, "durable")
        client = client_for(first.url, secret)
        # A NUL that PostgreSQL refuses in text once held up every later row; now it lands cleaned.
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="x\u0000y", messages=MESSAGES)
        served = [client.chat.completions.create(model="demo-base", messages=MESSAGES, max_tokens=2).id]

        proxy.down()  # the database is gone
        for _ in range(5):  # serving goes on: known key from the cache, routes from memory
            served.append(client.chat.completions.create(model="demo-base", messages=MESSAGES, max_tokens=2).id)
        with pytest.raises(openai.InternalServerError) as info:  # a key never seen cannot be checked
            client_for(first.url, "sk-sy-unknown").models.list()
        assert info.value.status_code == 503
        deadline = time.monotonic() + 15
        while metric(first, "switchyard_log_drain_consecutive_failures") < 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert metric(first, "switchyard_log_spool_backlog_bytes") > 0
        assert metric(first, "switchyard_log_drain_consecutive_failures") >= 1

        first.stop(sig=signal.SIGKILL)
        proxy.up()  # the database is back; a new gateway replays the spool
        second = RemoteGateway(tmp_path, env=env)
        deadline = time.monotonic() + 30
        stored: set[str] = set()
        while time.monotonic() < deadline:
            with direct.connect() as connection:
                stored = set(connection.execute(text(f'SELECT id FROM "{schema}".request_log')).scalars())
            if stored >= set(served):
                break
            time.sleep(0.3)
        assert stored >= set(served), f"lost rows: {set(served) - stored}"
        with direct.connect() as connection:
            refused = connection.execute(text(f'SELECT model FROM "{schema}".request_log WHERE status = 404'))
            assert list(refused.scalars()) == ["x\ufffdy"]
        assert not (tmp_path / "spool" / "requests.deadletter.jsonl").exists()
    finally:
        first.stop(sig=signal.SIGKILL)
        if second is not None:
            second.stop()
        proxy.close()
        with direct.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        direct.dispose()
