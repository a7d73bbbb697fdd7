"""The tuning-policy admin API on the session gateway: a round trip, refusals as 400 envelopes,
the admin key only, and the gateway's scheduler following every write in its job store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from switchyard.db import make_engine
from tests.utils.adapters import good_adapter
from tests.utils.keys import create_key
from tests.utils.registry import import_folder
from tests.utils.server import RemoteGateway
from tuner.scheduling import JOB_PREFIX, TABLE

pytestmark = pytest.mark.slow
ADAPTER = "policy-bot"
PATH = f"/admin/adapters/{ADAPTER}/tuning-policy"
MONTH_S = 30 * 86_400  # a schedule that cannot fire while the tests run


@pytest.fixture(scope="module")
def adapter(admin_http: httpx.Client, demo_model: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    import_folder(admin_http, ADAPTER, good_adapter(demo_model, tmp_path_factory.mktemp("policy-bot") / "adapter"))
    return ADAPTER


@pytest.fixture
def clean(admin_http: httpx.Client, adapter: str) -> Iterator[str]:
    """No policy before and after the test (a leftover schedule would queue real jobs)."""
    admin_http.delete(PATH)
    yield adapter
    admin_http.delete(PATH)


def scheduled(gateway: RemoteGateway) -> list[str]:
    """The refresh jobs in the gateway's persistent job store (the drift check shares it)."""
    engine = make_engine(f"sqlite:///{gateway.data_dir / 'switchyard.db'}")
    try:
        with engine.connect() as connection:
            ids = connection.execute(text(f"SELECT id FROM {TABLE}")).scalars()
            return sorted(i for i in ids if i.startswith(JOB_PREFIX))
    finally:
        engine.dispose()


def error_of(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    return error


def test_put_get_delete_round_trip_drives_the_schedule(
    gateway: RemoteGateway, admin_http: httpx.Client, clean: str
) -> None:
    error_of(admin_http.get(PATH), 404, "not_found")  # an adapter without a policy
    body = {
        "preset": "demo",
        "hyperparameters": {"n_epochs": 2, "target_modules": ["v_proj", "q_proj"]},
        "gate": {"margin": 0.05, "on_pass": "canary", "canary_weight": 0.2},
        "min_new_examples": 10,
        "schedule_interval_s": MONTH_S,
    }
    put = admin_http.put(PATH, json=body)
    assert put.status_code == 200, put.text
    stored = put.json()
    assert stored["adapter"] == ADAPTER and stored["min_new_examples"] == 10
    assert stored["hyperparameters"] == {"n_epochs": 2, "target_modules": ["q_proj", "v_proj"]}  # normalized
    assert stored["gate"] == body["gate"] and stored["enabled"] is True
    next_run = datetime.fromisoformat(stored["next_run_at"])
    assert abs(next_run - (datetime.now(UTC) + timedelta(seconds=MONTH_S))) < timedelta(minutes=5)
    assert admin_http.get(PATH).json() == stored
    assert scheduled(gateway) == [f"refresh:{ADAPTER}"]

    # PUT replaces the whole policy: a cron schedule, the rest back to defaults.
    cron = admin_http.put(PATH, json={"schedule_cron": "30 4 * * 1"})
    assert cron.status_code == 200, cron.text
    replaced = cron.json()
    assert (replaced["hyperparameters"], replaced["gate"], replaced["schedule_interval_s"]) == ({}, {}, None)
    fire = datetime.fromisoformat(replaced["next_run_at"])
    assert (fire.isoweekday(), fire.hour, fire.minute) == (1, 4, 30)  # crontab's Monday, in UTC

    disabled = admin_http.put(PATH, json={"schedule_cron": "30 4 * * 1", "enabled": False}).json()
    assert disabled["next_run_at"] is None and scheduled(gateway) == []

    assert admin_http.put(PATH, json={"schedule_interval_s": MONTH_S}).status_code == 200
    assert scheduled(gateway) == [f"refresh:{ADAPTER}"]
    deleted = admin_http.delete(PATH)
    assert deleted.status_code == 204, deleted.text
    assert scheduled(gateway) == []
    error_of(admin_http.get(PATH), 404, "not_found")
    error_of(admin_http.delete(PATH), 404, "not_found")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"schedule_cron": "every night"}, "schedule_cron"),
        ({"schedule_cron": "0 3 * * 8"}, "schedule_cron"),
        ({"schedule_cron": "0 0 31 2 *"}, "schedule_cron"),
        ({"schedule_cron": "0 3\x00 * * *"}, "schedule_cron"),
        ({"hyperparameters": {"learning_rat": 0.1}}, "hyperparameters.learning_rat"),
        ({"hyperparameters": {"r": 0}}, "hyperparameters.r"),
        ({"gate": {"margin": 1.5}}, "gate.margin"),
        ({"gate": {"on_pass": "deploy"}}, "gate.on_pass"),
        ({"schedule_interval_s": 5}, "schedule_interval_s"),
        ({"schedule_interval_s": 3600, "schedule_cron": "0 3 * * *"}, None),
        ({"preset": "huge"}, "preset"),
        ({"hyperparamters": {}}, "hyperparamters"),  # a misspelt field is not silently ignored
    ],
)
def test_bad_policies_are_400_and_change_nothing(
    gateway: RemoteGateway, admin_http: httpx.Client, clean: str, body: dict, param: str | None
) -> None:
    error = error_of(admin_http.put(PATH, json=body), 400, "invalid_value")
    assert error["param"] == param
    error_of(admin_http.get(PATH), 404, "not_found")
    assert scheduled(gateway) == []


def test_infinite_overrides_are_refused(admin_http: httpx.Client, clean: str) -> None:
    # Python's JSON (and so the request parser) reads Infinity; the JSON column must not get it.
    response = admin_http.put(
        PATH, content='{"gate": {"forgetting_tolerance": Infinity}}', headers={"Content-Type": "application/json"}
    )
    error_of(response, 400, "invalid_value")


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_an_unknown_adapter_is_404(admin_http: httpx.Client, method: str) -> None:
    response = admin_http.request(method, "/admin/adapters/no-such-bot/tuning-policy", json={})
    error_of(response, 404, "model_not_found")


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_only_the_admin_key(gateway: RemoteGateway, admin_http: httpx.Client, clean: str, method: str) -> None:
    _, key = create_key(admin_http, f"policy-{method}", allowed_adapters=["*"], scopes=["fine_tune", "review"])
    response = httpx.request(
        method,
        f"{gateway.url}{PATH}",
        json={"schedule_interval_s": MONTH_S},
        headers={"Authorization": f"Bearer {key}"},
    )
    error_of(response, 403, "insufficient_permissions")
    error_of(admin_http.get(PATH), 404, "not_found")
