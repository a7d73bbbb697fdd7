"""Admin-API helpers for registry tests."""

from __future__ import annotations

from pathlib import Path

import httpx


def import_folder(admin_http: httpx.Client, name: str, folder: Path) -> int:
    response = admin_http.post(f"/admin/adapters/{name}/versions", json={"source": str(folder)})
    assert response.status_code == 201, response.text
    return response.json()["version"]


def promote(admin_http: httpx.Client, name: str, version: int) -> dict:
    response = admin_http.post(f"/admin/adapters/{name}/promote", json={"version": version})
    assert response.status_code == 200, response.text
    return response.json()


def rollback(admin_http: httpx.Client, name: str) -> dict:
    response = admin_http.post(f"/admin/adapters/{name}/rollback")
    assert response.status_code == 200, response.text
    return response.json()


def registry_snapshot(admin_http: httpx.Client, store_root: Path) -> tuple:
    """Everything a failed import must leave untouched: registry, store files, served models."""
    adapters = admin_http.get("/admin/adapters").json()
    details = [admin_http.get(f"/admin/adapters/{a['name']}").json() for a in adapters["data"]]
    files = sorted(str(p.relative_to(store_root)) for p in store_root.rglob("*")) if store_root.exists() else []
    models = sorted(m["id"] for m in admin_http.get("/v1/models").json()["data"])
    return adapters, details, files, models
