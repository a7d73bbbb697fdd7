"""OpenAI's Files API through the official client: upload, list, retrieve, download, delete; the
``fine_tune`` scope, tenant boundaries, and uploads refused whole (a 400 naming the bad lines, no
row, no file)."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.utils.keys import client_for, create_key
from tests.utils.server import RemoteGateway

pytestmark = pytest.mark.slow
GOOD = (
    json.dumps({"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]})
    + "\n"
    + json.dumps(
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Capital of France? ☕"},
                {"role": "assistant", "content": "Paris", "weight": 1},
            ]
        }
    )
    + "\n"
).encode()


def tuner_for(gateway: RemoteGateway, admin_http: httpx.Client, name: str, tenant: str | None) -> openai.OpenAI:
    return client_for(gateway.url, create_key(admin_http, name, tenant=tenant, scopes=["fine_tune"])[1])


@pytest.fixture(scope="module")
def acme(gateway: RemoteGateway, admin_http: httpx.Client) -> openai.OpenAI:
    return tuner_for(gateway, admin_http, "files-acme", "acme")


@pytest.fixture(scope="module")
def globex(gateway: RemoteGateway, admin_http: httpx.Client) -> openai.OpenAI:
    return tuner_for(gateway, admin_http, "files-globex", "globex")


def upload(client: openai.OpenAI, data: bytes = GOOD, name: str = "train.jsonl", purpose: str = "fine-tune") -> str:
    return client.files.create(file=(name, data, "application/jsonl"), purpose=purpose).id  # type: ignore[arg-type]


def stored(gateway: RemoteGateway) -> list[str]:
    files_dir = gateway.data_dir / "tuning" / "files"
    return sorted(p.name for p in files_dir.iterdir()) if files_dir.exists() else []


def test_upload_list_retrieve_and_download(gateway: RemoteGateway, acme: openai.OpenAI) -> None:
    created = acme.files.create(file=("../nested/train.jsonl", GOOD), purpose="fine-tune")
    assert created.id.startswith("file-") and created.object == "file"
    assert (created.bytes, created.filename, created.purpose, created.status) == (
        len(GOOD),
        "train.jsonl",
        "fine-tune",
        "processed",
    )
    assert created.status_details is None and created.expires_at is None and created.created_at > 1_700_000_000
    assert acme.files.retrieve(created.id) == created
    assert acme.files.content(created.id).content == GOOD
    assert (gateway.data_dir / "tuning" / "files" / f"{created.id}.jsonl").read_bytes() == GOOD
    assert created.id in [f.id for f in acme.files.list(purpose="fine-tune")]
    assert acme.files.list(purpose="batch").data == []


def test_pages_follow_the_after_cursor(gateway: RemoteGateway, admin_http: httpx.Client) -> None:
    client = tuner_for(gateway, admin_http, "files-pager", "pager")
    ids = [upload(client) for _ in range(3)]
    first = client.files.list(limit=2)
    assert [f.id for f in first.data] == [ids[2], ids[1]] and first.has_more
    raw = client.files.with_raw_response.list(limit=2, after=ids[1]).http_response.json()
    assert raw["object"] == "list" and [f["id"] for f in raw["data"]] == [ids[0]] and raw["has_more"] is False
    assert (raw["first_id"], raw["last_id"]) == (ids[0], ids[0])
    assert [f.id for f in client.files.list(limit=1)] == ids[::-1]  # the SDK follows the cursor itself
    assert [f.id for f in client.files.list(order="asc", after=ids[0])] == ids[1:]


def refused(client: openai.OpenAI, data: bytes, *, purpose: str = "fine-tune") -> dict:
    with pytest.raises(openai.BadRequestError) as info:
        upload(client, data, purpose=purpose)
    assert isinstance(info.value.body, dict)
    return info.value.body


def test_bad_uploads_are_refused_whole(
    gateway: RemoteGateway, acme: openai.OpenAI, admin_client: openai.OpenAI
) -> None:
    rows, files = [f.id for f in admin_client.files.list()], stored(gateway)
    lines = [b'{"messages": [{"role": "user", "content": "hi"}]}', b"{oops", b'{"messages": []}']
    error = refused(acme, GOOD + b"\n".join(lines) + b"\n")
    assert (error["code"], error["param"], error["type"]) == ("invalid_training_file", "file", "invalid_request_error")
    assert error["message"] == (
        "Invalid file format. Line 3: the last message must be from the assistant; line 4: not valid JSON; "
        "line 5: 'messages' is empty"
    )
    assert "line 2 holds NUL bytes" in refused(acme, GOOD.replace(b"Paris", b"Pa\x00ris"))["message"]
    assert "line 1 is not UTF-8 text" in refused(acme, "é".encode("latin-1") + GOOD)["message"]
    assert refused(acme, b"")["message"].startswith("The file is empty")
    error = refused(acme, GOOD, purpose="assistants")
    assert error["param"] == "purpose" and "fine-tune" in error["message"]
    assert [f.id for f in admin_client.files.list()] == rows and stored(gateway) == files


def test_the_fine_tune_scope_is_needed(gateway: RemoteGateway, admin_http: httpx.Client, acme: openai.OpenAI) -> None:
    file_id = upload(acme)
    plain = client_for(gateway.url, create_key(admin_http, "files-no-scope", tenant="acme")[1])
    for call in (lambda: upload(plain), plain.files.list, lambda: plain.files.retrieve(file_id)):
        with pytest.raises(openai.PermissionDeniedError) as info:
            call()
        assert "fine_tune" in info.value.message
    assert acme.files.retrieve(file_id).id == file_id


def test_tenants_see_only_their_files(
    gateway: RemoteGateway, admin_http: httpx.Client, acme: openai.OpenAI, globex: openai.OpenAI
) -> None:
    mine, theirs = upload(acme), upload(globex)
    untenanted = tuner_for(gateway, admin_http, "files-untenanted", None)
    for outsider in (globex, untenanted):
        assert mine not in [f.id for f in outsider.files.list()]
        for call in (outsider.files.retrieve, outsider.files.content, outsider.files.delete):
            with pytest.raises(openai.NotFoundError) as info:
                call(mine)
            assert info.value.body == {
                "message": f"No such File object: {mine}",
                "type": "invalid_request_error",
                "param": "file_id",
                "code": "not_found",
            }
    assert acme.files.retrieve(mine).id == mine  # the failed delete left it alone
    assert theirs not in [f.id for f in acme.files.list()]


def test_the_admin_sees_every_tenants_files(
    admin_client: openai.OpenAI, acme: openai.OpenAI, globex: openai.OpenAI
) -> None:
    ids = {upload(acme), upload(globex)}
    own = upload(admin_client)
    assert ids | {own} <= {f.id for f in admin_client.files.list()}
    assert own not in {f.id for f in acme.files.list()}  # the admin's files belong to no tenant
    for file_id in ids:
        assert admin_client.files.content(file_id).content == GOOD


def test_a_deleted_file_is_gone(gateway: RemoteGateway, acme: openai.OpenAI) -> None:
    file_id = upload(acme)
    assert any(name.startswith(file_id) for name in stored(gateway))
    deleted = acme.files.delete(file_id)
    assert (deleted.id, deleted.object, deleted.deleted) == (file_id, "file", True)
    for call in (acme.files.retrieve, acme.files.content, acme.files.delete):
        with pytest.raises(openai.NotFoundError):
            call(file_id)
    assert not any(name.startswith(file_id) for name in stored(gateway))


@pytest.mark.parametrize("file_id", ["file-has-dash", "nope", "file-" + "a" * 41])
def test_a_malformed_id_is_an_envelope(admin_http: httpx.Client, file_id: str) -> None:
    for response in (admin_http.get(f"/v1/files/{file_id}"), admin_http.get(f"/v1/files/{file_id}/content")):
        assert response.status_code == 400, response.text
        assert response.json()["error"]["param"] == "file_id"
    after = admin_http.get("/v1/files", params={"after": file_id, "limit": 10_001})
    assert after.status_code == 400 and after.json()["error"]["code"] == "invalid_value"
