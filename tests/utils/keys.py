from __future__ import annotations

import httpx
import openai


def create_key(admin_http: httpx.Client, name: str, **fields: object) -> tuple[int, str]:
    response = admin_http.post("/admin/keys", json={"name": name, **fields})
    assert response.status_code == 201, response.text
    body = response.json()
    return body["id"], body["key"]


def client_for(base_url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0)
