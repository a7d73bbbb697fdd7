"""Tenant boundaries over real HTTP: a key sees and calls only its tenant's adapters and shared
ones, new keys reach the base model only, and versions that are not serving need evaluation rights."""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
import pytest

from tests.utils.adapters import good_adapter
from tests.utils.keys import client_for, create_key
from tests.utils.server import RemoteGateway

pytestmark = pytest.mark.slow
MESSAGES = [{"role": "user", "content": "hello"}]


def call(client: openai.OpenAI, model: str) -> str:
    raw = client.chat.completions.with_raw_response.create(model=model, messages=MESSAGES, max_tokens=1)
    return raw.headers["x-switchyard-adapter-version"]


def missing(client: openai.OpenAI, model: str) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=1)
    assert info.value.body["message"] == f"The model '{model}' does not exist or you do not have access to it."


@pytest.fixture(scope="module")
def acme_bot(admin_http: httpx.Client, demo_model: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """``acme-bot``: v1 active, v2 a candidate, owned by tenant acme."""
    folder = tmp_path_factory.mktemp("tenancy")
    for version, seed in ((1, 71), (2, 72)):
        response = admin_http.post(
            "/admin/adapters/acme-bot/versions",
            json={"source": str(good_adapter(demo_model, folder / f"v{version}", seed=seed)), "tenant": "acme"},
        )
        assert response.status_code == 201 and response.json()["version"] == version, response.text
    assert admin_http.post("/admin/adapters/acme-bot/promote", json={"version": 1}).status_code == 200
    return "acme-bot"


def test_a_new_key_reaches_the_base_model_only(gateway: RemoteGateway, admin_http: httpx.Client) -> None:
    client = client_for(gateway.url, create_key(admin_http, "default-allowlist", tenant="acme")[1])
    assert [m.id for m in client.models.list().data] == ["demo-base"]
    assert client.chat.completions.create(model="demo-base", messages=MESSAGES, max_tokens=1).choices
    missing(client, "support-bot")


def test_tenants_see_only_their_own_and_shared_adapters(
    gateway: RemoteGateway, admin_http: httpx.Client, acme_bot: str
) -> None:
    acme = client_for(gateway.url, create_key(admin_http, "acme-all", tenant="acme", allowed_adapters=["*"])[1])
    globex = client_for(gateway.url, create_key(admin_http, "globex-all", tenant="globex", allowed_adapters=["*"])[1])
    assert call(acme, acme_bot) == "acme-bot@1"
    assert call(acme, "acme-bot@1") == "acme-bot@1"
    assert "acme-bot" in {m.id for m in acme.models.list().data}
    for model in ("acme-bot", "acme-bot@1"):
        missing(globex, model)
    assert "acme-bot" not in {m.id for m in globex.models.list().data}
    # The demo adapters are shared: every tenant whose key allows them may call them.
    assert call(globex, "support-bot") == "support-bot@1"
    # An allowlist cannot reach across tenants either.
    named = client_for(
        gateway.url, create_key(admin_http, "globex-named", tenant="globex", allowed_adapters=[acme_bot])[1]
    )
    missing(named, acme_bot)


def test_versions_not_serving_need_evaluation_rights(
    gateway: RemoteGateway, admin_http: httpx.Client, admin_client: openai.OpenAI, acme_bot: str
) -> None:
    plain = client_for(gateway.url, create_key(admin_http, "acme-plain", tenant="acme", allowed_adapters=["*"])[1])
    evaluator = client_for(
        gateway.url,
        create_key(admin_http, "acme-eval", tenant="acme", allowed_adapters=["*"], scopes=["evaluate"])[1],
    )
    missing(plain, "acme-bot@2")  # a candidate
    assert call(evaluator, "acme-bot@2") == "acme-bot@2"
    assert call(admin_client, "acme-bot@2") == "acme-bot@2"
    assert admin_http.post("/admin/adapters/acme-bot/versions/2/reject", json={}).status_code == 200
    missing(plain, "acme-bot@2")
    assert call(evaluator, "acme-bot@2") == "acme-bot@2"
