"""Every admin route refuses everyone but the admin, and /metrics takes its own read-only token.

The routes come from the served contract, so a route added later is covered without editing
this file (test_openapi.py makes sure the contract lists every route)."""

from __future__ import annotations

import httpx
import pytest
import yaml

from gateway.openapi import render_openapi
from tests.utils.keys import create_key
from tests.utils.server import RemoteGateway

pytestmark = pytest.mark.slow
PLACEHOLDERS = {
    "{name}": "support-bot",
    "{version}": "1",
    "{key_id}": "1",
    "{request_id}": "chatcmpl-x",
    "{result_id}": "1",
}


def admin_routes() -> list[tuple[str, str]]:
    spec = yaml.safe_load(render_openapi())
    routes = []
    for path, operations in spec["paths"].items():
        if path.startswith("/admin") or path == "/metrics":
            for method in operations:
                for placeholder, value in PLACEHOLDERS.items():
                    path = path.replace(placeholder, value)
                routes.append((method, path))
    return routes


ROUTES = admin_routes()


@pytest.fixture(scope="module")
def plain_key(admin_http: httpx.Client) -> str:
    # Every right a key can have, and still no admin route.
    return create_key(admin_http, "no-admin", allowed_adapters=["*"], scopes=["evaluate", "review"])[1]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_admin_routes_refuse_api_keys(gateway: RemoteGateway, plain_key: str, method: str, path: str) -> None:
    response = httpx.request(method, f"{gateway.url}{path}", json={}, headers={"Authorization": f"Bearer {plain_key}"})
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "insufficient_permissions"


@pytest.mark.parametrize(("method", "path"), [r for r in ROUTES if r != ("get", "/metrics")])
def test_the_metrics_token_opens_nothing_else(gateway: RemoteGateway, method: str, path: str) -> None:
    token = (gateway.data_dir / "metrics.key").read_text().strip()
    response = httpx.request(method, f"{gateway.url}{path}", json={}, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401, response.text


def test_metrics_token_reads_metrics(gateway: RemoteGateway) -> None:
    token = (gateway.data_dir / "metrics.key").read_text().strip()
    response = httpx.get(f"{gateway.url}/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200 and "switchyard_log_spool_backlog_bytes" in response.text
    assert httpx.get(f"{gateway.url}/metrics").status_code == 401
    assert httpx.get(f"{gateway.url}/v1/models", headers={"Authorization": f"Bearer {token}"}).status_code == 401
