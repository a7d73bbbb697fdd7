"""A gateway killed in the middle of a training (SIGKILL: the process group, engine and training
child included) resumes the job after it restarts: the job is queued again once its heartbeat is
stale, training continues from the last checkpoint, and the candidate is judged and promoted."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import SERVER_ENV
from tests.tuner.training.factories import routing_task
from tests.utils.server import RemoteGateway

pytestmark = pytest.mark.slow

ENDED = {"succeeded", "failed", "cancelled"}


def jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps({"messages": [*r["prompt"], *r["completion"]]}) + "\n" for r in rows).encode()


@pytest.fixture
def env(demo_model: Path) -> dict[str, str]:
    return {
        **SERVER_ENV,
        "SWITCHYARD_BASE_MODEL": str(demo_model),
        "SWITCHYARD_TUNER__PRESET": "demo",
        "SWITCHYARD_TUNER__HEARTBEAT_STALE_S": "5",
    }


def admin(gateway: RemoteGateway) -> httpx.Client:
    return httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {gateway.admin_key}"}, timeout=60)


def test_a_job_resumes_from_its_checkpoint_after_the_gateway_is_killed(tmp_path: Path, env: dict[str, str]) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    train, holdout = routing_task(n_train=200, n_holdout=30, seed=11)
    first = RemoteGateway(data_dir, env=env)
    try:
        with admin(first) as http:
            files = [
                http.post("/v1/files", files={"file": (name, jsonl(rows))}, data={"purpose": "fine-tune"}).json()["id"]
                for name, rows in (("train.jsonl", train), ("valid.jsonl", holdout))
            ]
            base = http.get("/v1/models").json()["data"][0]["id"]
            body = {"model": base, "suffix": "resume-bot", "training_file": files[0], "validation_file": files[1]}
            job_id = http.post("/v1/fine_tuning/jobs", json=body).json()["id"]
            deadline = time.monotonic() + 300
            while not http.get(f"/v1/fine_tuning/jobs/{job_id}/checkpoints").json()["data"]:
                assert time.monotonic() < deadline, "no checkpoint was saved"
                assert http.get(f"/v1/fine_tuning/jobs/{job_id}").json()["status"] in {"queued", "running"}
                time.sleep(0.3)
    finally:
        first.stop(sig=signal.SIGKILL)

    second = RemoteGateway(data_dir, env=env)
    try:
        with admin(second) as http:
            deadline = time.monotonic() + 600
            while (job := http.get(f"/v1/fine_tuning/jobs/{job_id}").json())["status"] not in ENDED:
                assert time.monotonic() < deadline, job
                time.sleep(0.5)
            assert job["status"] == "succeeded" and job["outcome"] == "promoted", job
            messages = [
                e["message"] for e in http.get(f"/v1/fine_tuning/jobs/{job_id}/events?limit=1000").json()["data"]
            ]
            assert any("queued to resume" in m for m in messages), messages
            assert any("resuming from step" in m for m in messages), messages
            response = http.post(
                "/v1/chat/completions",
                json={"model": "resume-bot", "messages": holdout[0]["prompt"], "max_tokens": 12, "temperature": 0},
            )
            assert response.headers["x-switchyard-adapter-version"] == "resume-bot@1"
    finally:
        second.stop()
