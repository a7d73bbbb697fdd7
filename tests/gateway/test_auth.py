"""API keys end to end: hashed at rest, revocation, allowlists that do not leak."""

from __future__ import annotations

import hashlib

import httpx
import openai
import pytest
from sqlalchemy import text

from switchyard.db import make_engine
from tests.utils.keys import client_for, create_key
from tests.utils.server import RemoteGateway

pytestmark = pytest.mark.slow
MESSAGES = [{"role": "user", "content": "hello"}]


def test_keys_are_hashed_at_rest(gateway: RemoteGateway, admin_http: httpx.Client) -> None:
    key_id, secret = create_key(admin_http, "hash-check")
    db = make_engine(f"sqlite:///{gateway.data_dir / 'switchyard.db'}")
    with db.connect() as connection:
        rows = connection.execute(text("SELECT * FROM api_key WHERE id = :id"), {"id": key_id}).mappings().all()
    db.dispose()
    stored = dict(rows[0])
    assert stored["key_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    assert not any(secret in str(value) for value in stored.values())
    listed = admin_http.get("/admin/keys").json()
    assert secret not in str(listed) and listed["count"] >= 1


def test_revoked_key_is_refused(gateway: RemoteGateway, admin_http: httpx.Client) -> None:
    key_id, secret = create_key(admin_http, "to-revoke")
    client = client_for(gateway.url, secret)
    assert client.chat.completions.create(model="demo-base", messages=MESSAGES, max_tokens=1).choices
    assert admin_http.delete(f"/admin/keys/{key_id}").json()["revoked_at"] is not None
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="demo-base", messages=MESSAGES, max_tokens=1)
    assert admin_http.delete("/admin/keys/999999").status_code == 404


def test_allowlist_hides_other_adapters(gateway: RemoteGateway, admin_http: httpx.Client) -> None:
    _, secret = create_key(admin_http, "support-only", allowed_adapters=["support-bot"], tenant="acme")
    client = client_for(gateway.url, secret)
    assert [m.id for m in client.models.list().data] == ["demo-base", "support-bot"]
    assert client.chat.completions.create(model="support-bot", messages=MESSAGES, max_tokens=1).choices
    assert client.chat.completions.create(model="support-bot@1", messages=MESSAGES, max_tokens=1).choices
    for model in ("yard-json", "yard-json@1", "missing"):
        with pytest.raises(openai.NotFoundError) as info:
            client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=1)
        # Identical to a model that does not exist, so the allowlist leaks nothing.
        assert info.value.body["message"] == f"The model '{model}' does not exist or you do not have access to it."


def test_non_admin_key_cannot_use_admin_routes(gateway: RemoteGateway, admin_http: httpx.Client) -> None:
    _, secret = create_key(admin_http, "plain")
    response = httpx.get(f"{gateway.url}/admin/keys", headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 403 and response.json()["error"]["code"] == "insufficient_permissions"


def test_models_lists_base_and_adapters_with_parent(admin_client: openai.OpenAI) -> None:
    models = {m.id: m for m in admin_client.models.list().data}
    assert {"demo-base", "support-bot", "yard-json"} <= set(models)
    assert models["support-bot"].model_extra["parent"] == "demo-base"
    assert models["support-bot"].model_extra["root"] == "support-bot@1"
    assert models["demo-base"].model_extra["parent"] is None
