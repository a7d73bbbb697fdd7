"""The registry's admin API: the full lifecycle (reject included), the audit trail, reserved
names, import roots, and hostile ids and names that must be 4xx envelopes, never a 500."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.utils.adapters import good_adapter
from tests.utils.registry import import_folder, registry_snapshot
from tests.utils.server import RemoteGateway

pytestmark = pytest.mark.slow
HUGE = "99999999999999999999"


def error_of(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    return error


def test_reject_is_final_and_audited(admin_http: httpx.Client, demo_model: Path, tmp_path: Path) -> None:
    name = "reject-bot"
    for seed in (61, 62):
        import_folder(admin_http, name, good_adapter(demo_model, tmp_path / f"s{seed}", seed=seed))
    assert admin_http.post(f"/admin/adapters/{name}/promote", json={"version": 1}).status_code == 200
    rejected = admin_http.post(f"/admin/adapters/{name}/versions/2/reject", json={"reason": "worse on held-out"})
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"

    # The API and the CLI agree: a rejected version is a conflict, not a missing model.
    for path, body in (("promote", {"version": 2}), ("canary", {"version": 2, "weight": 0.5})):
        error = error_of(admin_http.post(f"/admin/adapters/{name}/{path}", json=body), 409, "conflict")
        assert "rejected" in error["message"]
    error_of(admin_http.post(f"/admin/adapters/{name}/versions/1/reject", json={}), 409, "conflict")  # active

    events = admin_http.get(f"/admin/adapters/{name}/events").json()
    actions = [(e["action"], e["version"]) for e in events["data"]]
    assert actions == [("register", 1), ("register", 2), ("promote", 1), ("reject", 2)]
    assert events["data"][-1]["detail"]["reason"] == "worse on held-out"
    error_of(admin_http.get("/admin/adapters/no-such-bot/events"), 404, "model_not_found")


def test_an_adapter_cannot_take_the_base_models_name(
    gateway: RemoteGateway, admin_http: httpx.Client, demo_model: Path, tmp_path: Path
) -> None:
    before = registry_snapshot(admin_http, gateway.data_dir / "adapters")
    folder = good_adapter(demo_model, tmp_path / "base-name")
    error = error_of(
        admin_http.post("/admin/adapters/demo-base/versions", json={"source": str(folder)}), 400, "invalid_adapter"
    )
    assert error["param"] == "name"
    assert registry_snapshot(admin_http, gateway.data_dir / "adapters") == before
    assert [m["id"] for m in admin_http.get("/v1/models").json()["data"]].count("demo-base") == 1


def test_server_paths_outside_the_import_roots_are_refused(gateway: RemoteGateway, admin_http: httpx.Client) -> None:
    for source in ("/etc", "/proc/self/cwd", "../../etc/passwd", "/tmp/../etc"):
        error = error_of(
            admin_http.post("/admin/adapters/root-bot/versions", json={"source": source}), 400, "invalid_adapter"
        )
        assert error["param"] == "source" and "import root" in error["message"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("delete", f"/admin/keys/{HUGE}", None),
        ("post", "/admin/adapters/support-bot/promote", {"version": int(HUGE)}),
        ("post", "/admin/adapters/support-bot/canary", {"version": int(HUGE), "weight": 0.1}),
        ("post", f"/admin/adapters/support-bot/versions/{HUGE}/retire", None),
        ("post", f"/admin/adapters/support-bot/versions/{HUGE}/reject", None),
        ("delete", f"/admin/adapters/support-bot/versions/{HUGE}", None),
        ("get", f"/admin/requests?key_id={HUGE}", None),
        ("get", "/admin/adapters/bad%00name", None),
        ("get", "/admin/requests/chatcmpl-%00", None),
        ("get", "/admin/requests?adapter=x%00y", None),
        ("get", f"/admin/requests?offset={HUGE}", None),
        ("get", f"/admin/keys?offset={HUGE}", None),
        ("post", "/admin/keys", {"name": "nul\u0000name"}),
        ("post", "/admin/keys", {"name": "k", "tenant": "t\u0000"}),
        ("post", "/admin/adapters/nul-bot/versions", {"source": "/x", "description": "a\u0000b"}),
        ("post", "/admin/adapters/nan-bot/versions", b'{"source": "/x", "metrics": {"loss": NaN}}'),
        ("post", "/admin/adapters/big-bot/versions", {"source": "/x", "metrics": {"log": "x" * 200_000}}),
        ("post", "/admin/adapters/support-bot/versions/1/reject", {"reason": "bad\u0000reason"}),
    ],
)
def test_out_of_range_ids_and_nul_bytes_are_400(
    admin_http: httpx.Client, method: str, path: str, body: dict | bytes | None
) -> None:
    if isinstance(body, bytes):  # JSON that Python's encoder refuses to write (NaN)
        response = admin_http.request(method, path, content=body, headers={"Content-Type": "application/json"})
    else:
        response = admin_http.request(method, path, json=body)
    error = error_of(response, 400, "invalid_value")
    assert error["param"] is not None


def test_seed_past_64_bits_is_400(admin_http: httpx.Client) -> None:
    body = {"model": "demo-base", "messages": [{"role": "user", "content": "hi"}], "seed": 2**64, "max_tokens": 1}
    assert error_of(admin_http.post("/v1/chat/completions", json=body), 400, "invalid_value")["param"] == "seed"


@pytest.mark.parametrize("kind", ["truncated-tar", "corrupt-zip"])
def test_broken_uploads_are_400_without_server_paths(
    gateway: RemoteGateway, admin_http: httpx.Client, demo_model: Path, tmp_path: Path, kind: str
) -> None:
    folder = good_adapter(demo_model, tmp_path / "upload")
    if kind == "truncated-tar":
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            archive.add(folder, arcname="adapter")
        payload, filename = buffer.getvalue()[: len(buffer.getvalue()) // 2], "adapter.tar.gz"
    else:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for file in folder.iterdir():
                archive.write(file, arcname=file.name)
        raw = bytearray(buffer.getvalue())
        start = raw.index(b"adapter_model.safetensors") + 200  # inside that member's deflate stream
        raw[start : start + 64] = bytes(64)
        payload, filename = bytes(raw), "adapter.zip"
    before = registry_snapshot(admin_http, gateway.data_dir / "adapters")
    response = admin_http.post(
        "/admin/adapters/broken-bot/versions/upload", files={"file": (filename, payload, "application/octet-stream")}
    )
    error = error_of(response, 400, "invalid_adapter")
    assert error["param"] == "file"
    assert str(gateway.data_dir) not in error["message"] and "/tmp" not in error["message"]
    assert registry_snapshot(admin_http, gateway.data_dir / "adapters") == before
