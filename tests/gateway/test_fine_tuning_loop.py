"""The loop end to end, on the session gateway: logged traffic reviewed by people becomes a QLoRA
candidate that the gate promotes through a hot-swap; candidates trained on shuffled or garbage
answers are rejected with reasons; a killed training fails its job and a cancelled one ends
cancelled, while the champion keeps serving. Real QLoRA on CPU (in the gateway's child process),
the real engine for the gate, the official ``openai`` client.

The tests of this module build on each other in order (they share one adapter, like a real one).
"""

from __future__ import annotations

import json
import random
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import psutil
import pytest

from tests.tuner.training.factories import TEAMS, routing_task
from tests.utils.adapters import good_adapter
from tests.utils.keys import client_for, create_key
from tests.utils.registry import promote
from tests.utils.server import RemoteGateway

pytestmark = pytest.mark.slow

ADAPTER = "ticket-router"
TENANT = "acme"
ENDED = {"succeeded", "failed", "cancelled"}
CHECKS = {"checks": [{"type": "exact_match"}], "max_tokens": 12}


@pytest.fixture(scope="module")
def keys(admin_http: httpx.Client, gateway: RemoteGateway) -> dict[str, str]:
    _, app = create_key(admin_http, "router-app", tenant=TENANT, allowed_adapters=[ADAPTER])
    _, reviewer = create_key(admin_http, "router-review", tenant=TENANT, allowed_adapters=[ADAPTER], scopes=["review"])
    _, trainer = create_key(admin_http, "router-train", tenant=TENANT, allowed_adapters=[ADAPTER], scopes=["fine_tune"])
    _, other = create_key(admin_http, "other-train", tenant="globex", allowed_adapters=["*"], scopes=["fine_tune"])
    _, no_scope = create_key(admin_http, "router-no-scope", tenant=TENANT, allowed_adapters=[ADAPTER])
    return {"app": app, "reviewer": reviewer, "trainer": trainer, "other": other, "no_scope": no_scope}


@pytest.fixture(scope="module")
def champion(admin_http: httpx.Client, demo_model: Path, tmp_path_factory: pytest.TempPathFactory) -> int:
    """``ticket-router@1``: a random adapter of tenant ``acme``, serving, that cannot route tickets."""
    folder = good_adapter(demo_model, tmp_path_factory.mktemp("ticket-router") / "v1", seed=5)
    response = admin_http.post(f"/admin/adapters/{ADAPTER}/versions", json={"source": str(folder), "tenant": TENANT})
    assert response.status_code == 201, response.text
    version = response.json()["version"]
    promote(admin_http, ADAPTER, version)
    response = admin_http.put(f"/admin/adapters/{ADAPTER}/task-checks", json=CHECKS)
    assert response.status_code == 200, response.text
    return version


@pytest.fixture(scope="module")
def task() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return routing_task(n_train=200, n_holdout=30, seed=7)


def prompt_of(example: dict[str, Any]) -> str:
    return example["prompt"][0]["content"]


def answer_of(example: dict[str, Any]) -> str:
    return example["completion"][0]["content"]


def wait_for_job(http: httpx.Client, job_id: str, *, timeout_s: float = 600, until: set[str] = ENDED) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = http.get(f"/v1/fine_tuning/jobs/{job_id}").json()
        if job["status"] in until or job.get("stage") in until:
            return job
        time.sleep(0.5)
    raise TimeoutError(f"job {job_id} did not reach {until}: {job}")


def jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps({"messages": [*row["prompt"], *row["completion"]]}) + "\n" for row in rows).encode()


def training_children(gateway: RemoteGateway) -> Iterator[psutil.Process]:
    for child in psutil.Process(gateway.process.pid).children(recursive=True):
        try:
            if "tuner.training" in " ".join(child.cmdline()):
                yield child
        except psutil.NoSuchProcess:
            continue


def served_version(gateway: RemoteGateway, key: str) -> str:
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": ADAPTER, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 1},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    return response.headers["x-switchyard-adapter-version"]


def test_reviewed_traffic_trains_a_candidate_that_is_promoted(
    gateway: RemoteGateway, admin_http: httpx.Client, keys: dict[str, str], champion: int, task: tuple
) -> None:
    train, holdout = task
    app = client_for(gateway.url, keys["app"])

    def serve(example: dict[str, Any]) -> str:
        response = app.chat.completions.create(model=ADAPTER, messages=example["prompt"], max_tokens=1)
        return response.id

    # The champion's answers are useless; a reviewer corrects each one with the right team.
    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(pool.map(serve, train + holdout))
    with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {keys['reviewer']}"}) as review:
        for completion_id, example in zip(ids, train + holdout, strict=True):
            body = {"completion_id": completion_id, "score": -1, "corrected_completion": answer_of(example)}
            response = review.post("/v1/feedback", json=body, timeout=30)
            assert response.status_code == 201, response.text

    response = admin_http.post(f"/admin/adapters/{ADAPTER}/tune", json={})
    assert response.status_code == 201, response.text
    job = wait_for_job(admin_http, response.json()["id"])

    assert job["status"] == "succeeded", job
    assert job["outcome"] == "promoted", job["gate"]
    assert job["fine_tuned_model"] == f"{ADAPTER}@{champion + 1}"
    assert job["parent_version"] == champion and job["dataset_snapshot_id"]
    numbers = job["gate"]["numbers"]
    assert numbers["holdout_nll_change"] <= -0.10, numbers
    rates = numbers["champion"]["holdout"]["check_pass_rates"], numbers["candidate"]["holdout"]["check_pass_rates"]
    assert rates[1]["exact_match"] >= rates[0]["exact_match"] + 0.5, rates
    assert numbers["evaluation_set_trusted"] is True
    # PII never reaches the snapshot, near copies collapse: the curation tests cover it; here the
    # manifest of this snapshot says what curation did.
    events = admin_http.get(f"/v1/fine_tuning/jobs/{job['id']}/events", params={"limit": 1000}).json()["data"]
    assert any(e["type"] == "metrics" and "train_loss" in e["data"] for e in events)
    assert any(e["message"].startswith("Curated") for e in events)

    # The hot-swap: the alias now serves the new version, and it routes tickets.
    assert served_version(gateway, keys["app"]) == f"{ADAPTER}@{champion + 1}"
    example = holdout[0]
    answer = app.chat.completions.create(model=ADAPTER, messages=example["prompt"], max_tokens=12, temperature=0)
    assert answer.choices[0].message.content.strip() in TEAMS

    detail = admin_http.get(f"/admin/adapters/{ADAPTER}").json()
    version = next(v for v in detail["versions"] if v["version"] == champion + 1)
    assert version["status"] == "active" and version["metrics"]["gate"]["verdict"] == "promote"
    assert version["parent_version"] == champion and version["dataset_snapshot_id"] == job["dataset_snapshot_id"]


def upload(client: openai.OpenAI, rows: list[dict[str, Any]], name: str) -> str:
    return client.files.create(file=(name, jsonl(rows)), purpose="fine-tune").id


@pytest.mark.parametrize("corruption", ["shuffled", "garbage"])
def test_candidates_trained_on_bad_answers_are_rejected(
    gateway: RemoteGateway, admin_http: httpx.Client, keys: dict[str, str], task: tuple, corruption: str
) -> None:
    train, _ = task
    rng = random.Random(3)
    if corruption == "shuffled":
        answers = [answer_of(row) for row in train]
        rng.shuffle(answers)
    else:
        letters = "bcdfghjklmnpqrstvwxz"
        answers = ["".join(rng.choice(letters) for _ in range(rng.randint(6, 12))) for _ in train]
    rows = [{**row, "completion": [{"role": "assistant", "content": a}]} for row, a in zip(train, answers, strict=True)]
    before = served_version(gateway, keys["app"])
    trainer = client_for(gateway.url, keys["trainer"])

    job = trainer.fine_tuning.jobs.create(
        model=ADAPTER, training_file=upload(trainer, rows, f"{corruption}.jsonl"), metadata={"case": corruption}
    )
    assert job.status == "queued" and job.model == ADAPTER
    finished = wait_for_job(admin_http, job.id)

    assert finished["status"] == "succeeded", finished
    assert finished["outcome"] == "rejected", finished["gate"]
    reasons = finished["gate"]["reasons"]
    assert any(r.startswith("failed: hold-out NLL") for r in reasons), reasons
    # Judged on the adapter's own curated hold-out, not on the uploaded file's.
    assert finished["gate"]["numbers"]["evaluation_set_trusted"] is True
    assert served_version(gateway, keys["app"]) == before
    version = int(finished["fine_tuned_model"].split("@")[1])
    detail = admin_http.get(f"/admin/adapters/{ADAPTER}").json()
    assert next(v for v in detail["versions"] if v["version"] == version)["status"] == "rejected"
    listed = trainer.fine_tuning.jobs.list(metadata={"case": corruption})
    assert [j.id for j in listed.data] == [job.id]


def test_the_base_model_with_a_suffix_becomes_a_new_adapter(
    gateway: RemoteGateway, admin_http: httpx.Client, keys: dict[str, str], champion: int, task: tuple
) -> None:
    """OpenAI's way to start an adapter: the gate compares it with the base model on the job's own
    hold-out (there is no trusted set yet), says so, and the new alias serves at once."""
    train, holdout = task
    trainer = client_for(gateway.url, keys["trainer"])
    base = gateway_base_model(admin_http)
    job = trainer.fine_tuning.jobs.create(
        model=base,
        suffix="acme-router",
        training_file=upload(trainer, train, "train.jsonl"),
        validation_file=upload(trainer, holdout, "valid.jsonl"),
        hyperparameters={"n_epochs": 5},
        seed=1234,
    )
    assert job.user_provided_suffix == "acme-router" and job.seed == 1234
    finished = wait_for_job(admin_http, job.id)
    assert finished["status"] == "succeeded" and finished["outcome"] == "promoted", finished["gate"]
    assert finished["fine_tuned_model"] == "acme-router@1" and finished["parent_version"] is None
    numbers = finished["gate"]["numbers"]
    assert numbers["champion_version"] is None and numbers["evaluation_set_trusted"] is False
    assert any("the validation file" in reason for reason in finished["gate"]["reasons"])
    assert finished["trained_tokens"] and finished["hyperparameters"]["n_epochs"] == 5

    retrieved = trainer.fine_tuning.jobs.retrieve(job.id)
    assert retrieved.status == "succeeded" and retrieved.fine_tuned_model == "acme-router@1"
    events = trainer.fine_tuning.jobs.list_events(job.id, limit=5)
    assert len(events.data) == 5 and events.has_more
    assert events.data[0].message.startswith("acme-router@1 promoted")
    checkpoints = trainer.fine_tuning.jobs.checkpoints.list(job.id)
    assert checkpoints.data and checkpoints.data[0].step_number > 0
    detail = admin_http.get("/admin/adapters/acme-router").json()
    assert detail["tenant"] == TENANT and detail["active_version"] == 1
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {gateway.admin_key}"},
        json={"model": "acme-router", "messages": holdout[1]["prompt"], "max_tokens": 12, "temperature": 0},
        timeout=60,
    )
    assert response.headers["x-switchyard-adapter-version"] == "acme-router@1"
    assert response.json()["choices"][0]["message"]["content"].strip() == answer_of(holdout[1])


def test_a_killed_training_fails_its_job_and_the_champion_keeps_serving(
    gateway: RemoteGateway, admin_http: httpx.Client, keys: dict[str, str], task: tuple
) -> None:
    train, _ = task
    trainer = client_for(gateway.url, keys["trainer"])
    before = served_version(gateway, keys["app"])
    job = trainer.fine_tuning.jobs.create(model=ADAPTER, training_file=upload(trainer, train, "kill.jsonl"))
    wait_for_job(admin_http, job.id, until={"training", *ENDED}, timeout_s=120)
    deadline = time.monotonic() + 60
    children: list[psutil.Process] = []
    while not children and time.monotonic() < deadline:
        children = list(training_children(gateway))
        time.sleep(0.2)
    assert children, "no training child appeared"
    for child in children:
        child.send_signal(signal.SIGKILL)

    finished = wait_for_job(admin_http, job.id, timeout_s=120)
    assert finished["status"] == "failed"
    assert finished["error"]["code"] == "training_failed"
    assert "SIGKILL" in finished["error"]["message"]
    assert served_version(gateway, keys["app"]) == before


def test_cancel_stops_a_running_training(
    gateway: RemoteGateway, admin_http: httpx.Client, keys: dict[str, str], task: tuple
) -> None:
    train, _ = task
    trainer = client_for(gateway.url, keys["trainer"])
    job = trainer.fine_tuning.jobs.create(model=ADAPTER, training_file=upload(trainer, train, "cancel.jsonl"))
    wait_for_job(admin_http, job.id, until={"training", *ENDED}, timeout_s=120)

    cancelled = trainer.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status in {"running", "cancelled"}
    finished = wait_for_job(admin_http, job.id, timeout_s=120)
    assert finished["status"] == "cancelled"
    assert finished["fine_tuned_model"] is None
    assert not list(training_children(gateway))
    with pytest.raises(openai.ConflictError):
        trainer.fine_tuning.jobs.cancel(job.id)


def test_jobs_belong_to_their_tenant(
    gateway: RemoteGateway, admin_http: httpx.Client, keys: dict[str, str], champion: int, task: tuple
) -> None:
    train, _ = task
    trainer = client_for(gateway.url, keys["trainer"])
    other = client_for(gateway.url, keys["other"])
    job = trainer.fine_tuning.jobs.create(model=ADAPTER, training_file=upload(trainer, train[:30], "acme.jsonl"))
    trainer.fine_tuning.jobs.cancel(job.id)
    assert wait_for_job(admin_http, job.id, timeout_s=120)["status"] == "cancelled"

    with pytest.raises(openai.NotFoundError):
        other.fine_tuning.jobs.retrieve(job.id)
    with pytest.raises(openai.NotFoundError):
        other.fine_tuning.jobs.cancel(job.id)
    with pytest.raises(openai.NotFoundError):
        other.fine_tuning.jobs.list_events(job.id)
    with pytest.raises(openai.NotFoundError):
        other.fine_tuning.jobs.checkpoints.list(job.id)
    assert job.id not in {j.id for j in other.fine_tuning.jobs.list(limit=100).data}
    # Another tenant can neither train acme's adapter nor train on acme's file.
    own_file = upload(other, train[:30], "globex.jsonl")
    with pytest.raises(openai.NotFoundError) as missing:
        other.fine_tuning.jobs.create(model=ADAPTER, training_file=own_file)
    assert missing.value.body["code"] == "model_not_found"
    base = gateway_base_model(admin_http)
    with pytest.raises(openai.BadRequestError) as foreign:
        other.fine_tuning.jobs.create(model=base, suffix="globex-router", training_file=job.training_file)
    assert foreign.value.body["param"] == "training_file"
    with pytest.raises(openai.BadRequestError) as taken:
        other.fine_tuning.jobs.create(model=base, suffix=ADAPTER, training_file=own_file)
    assert taken.value.body["param"] == "suffix"
    with pytest.raises(openai.PermissionDeniedError):
        client_for(gateway.url, keys["no_scope"]).fine_tuning.jobs.list()


def test_bad_job_requests_are_refused_and_create_nothing(
    gateway: RemoteGateway, admin_http: httpx.Client, keys: dict[str, str], champion: int, task: tuple
) -> None:
    trainer = client_for(gateway.url, keys["trainer"])
    file_id = upload(trainer, task[0][:30], "ok.jsonl")
    before = len(admin_http.get("/v1/fine_tuning/jobs", params={"limit": 100}).json()["data"])
    base = gateway_base_model(admin_http)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"model": ADAPTER, "training_file": "file-doesnotexist"}, "training_file"),
        ({"model": base, "training_file": file_id}, "suffix"),
        ({"model": base, "training_file": file_id, "suffix": "Bad Name!"}, "suffix"),
        ({"model": ADAPTER, "training_file": file_id, "suffix": "x"}, "suffix"),
        ({"model": ADAPTER, "training_file": file_id, "hyperparameters": {"n_epochs": 0}}, "hyperparameters"),
        ({"model": ADAPTER, "training_file": file_id, "hyperparameters": {"n_epochs": "3"}}, "hyperparameters"),
        ({"model": ADAPTER, "training_file": file_id, "method": {"type": "dpo"}}, "method"),
        ({"model": ADAPTER, "training_file": file_id, "metadata": {"k": "v\x00"}}, "metadata"),
    ]
    with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {keys['trainer']}"}) as http:
        for body, param in cases:
            response = http.post("/v1/fine_tuning/jobs", json=body)
            assert response.status_code == 400, (body, response.text)
            error = response.json()["error"]
            assert set(error) == {"message", "type", "param", "code"}
            assert param in (error["param"] or ""), (body, error)
        assert http.get("/v1/fine_tuning/jobs/ftjob-nope").status_code == 404
        assert http.get("/v1/fine_tuning/jobs/not-a-job-id").status_code in {400, 404}
    after = len(admin_http.get("/v1/fine_tuning/jobs", params={"limit": 100}).json()["data"])
    assert after == before


def gateway_base_model(admin_http: httpx.Client) -> str:
    return admin_http.get("/v1/models").json()["data"][0]["id"]
