"""Tuning policies: CRUD, and validation of overrides and schedules when they are written."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine

from adapters.exceptions import AdapterNotFound
from switchyard.db import session_scope, utcnow
from tests.utils.tuning import add_adapter
from tuner.exceptions import InvalidPolicy
from tuner.gate import GatePolicy
from tuner.policies import (
    TuningPolicyBase,
    cron_trigger,
    delete_policy,
    get_policy,
    list_policies,
    resolve_policy,
    upsert_policy,
)


def test_upsert_creates_then_replaces_every_field(db: Engine) -> None:
    add_adapter(db, "bot")
    with session_scope(db) as session:
        created = upsert_policy(
            session=session,
            adapter="bot",
            policy_in=TuningPolicyBase(
                preset="demo",
                hyperparameters={"learning_rate": "0.001", "target_modules": ["v_proj", "q_proj"]},
                gate={"on_pass": "canary", "canary_weight": 0.25},
                schedule_cron="0 3 * * *",
                min_new_examples=50,
                refresh_on_drift=True,
            ),
        )
        # Overrides are stored as the models normalize them: a float, modules in serving order.
        assert created.hyperparameters == {"learning_rate": 0.001, "target_modules": ["q_proj", "v_proj"]}
        assert created.gate == {"on_pass": "canary", "canary_weight": 0.25} and created.refresh_on_drift
        first_update = created.updated_at

        replaced = upsert_policy(
            session=session, adapter="bot", policy_in=TuningPolicyBase(schedule_interval_s=3600, enabled=False)
        )
        assert replaced.id == created.id
        assert (replaced.preset, replaced.hyperparameters, replaced.gate) == (None, {}, {})
        assert (replaced.schedule_cron, replaced.schedule_interval_s, replaced.enabled) == (None, 3600, False)
        assert replaced.refresh_on_drift is False  # its default, like every field left out
        assert replaced.updated_at >= first_update

    with session_scope(db) as session:  # a fresh session reads what was committed
        stored = get_policy(session=session, adapter="bot")
        assert stored is not None and stored.schedule_interval_s == 3600 and stored.min_new_examples == 1
        assert [p.adapter for p in list_policies(session=session)] == ["bot"]


def test_resolved_policy_applies_the_overrides_on_the_preset(db: Engine) -> None:
    add_adapter(db, "bot")
    with session_scope(db) as session:
        row = upsert_policy(
            session=session,
            adapter="bot",
            policy_in=TuningPolicyBase(hyperparameters={"n_epochs": 2}, gate={"margin": 0.1}, min_new_examples=7),
        )
    resolved = resolve_policy(row, default_preset="demo")
    assert resolved.hyperparameters.n_epochs == 2
    assert resolved.hyperparameters.learning_rate == 3e-3  # the demo preset's, not overridden
    assert resolved.gate == GatePolicy(margin=0.1)
    assert resolved.min_new_examples == 7


def test_delete(db: Engine) -> None:
    add_adapter(db, "bot")
    with session_scope(db) as session:
        upsert_policy(session=session, adapter="bot", policy_in=TuningPolicyBase())
        assert delete_policy(session=session, adapter="bot") is True
        assert delete_policy(session=session, adapter="bot") is False
        assert get_policy(session=session, adapter="bot") is None


def test_a_policy_needs_an_existing_adapter(db: Engine) -> None:
    with session_scope(db) as session, pytest.raises(AdapterNotFound):
        upsert_policy(session=session, adapter="ghost", policy_in=TuningPolicyBase())


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"hyperparameters": {"learning_rat": 0.1}}, "hyperparameters.learning_rat"),
        ({"hyperparameters": {"r": 0}}, "hyperparameters.r"),
        ({"hyperparameters": {"target_modules": ["lm_head"]}}, "hyperparameters.target_modules.0"),
        ({"hyperparameters": {"n_epochs": "many"}}, "hyperparameters.n_epochs"),
        ({"gate": {"margin": 1.5}}, "gate.margin"),
        ({"gate": {"on_pass": "deploy"}}, "gate.on_pass"),
        ({"gate": {"threshold": 0.1}}, "gate.threshold"),
        ({"schedule_cron": "0 3 * *"}, "schedule_cron"),
        ({"schedule_cron": "61 * * * *"}, "schedule_cron"),
        ({"schedule_cron": "0 3 * * 8"}, "schedule_cron"),
        ({"schedule_cron": "0 0 31 2 *"}, "schedule_cron"),  # February 31st: never fires
    ],
)
def test_invalid_policies_are_refused_and_nothing_is_stored(db: Engine, fields: dict, param: str) -> None:
    add_adapter(db, "bot")
    with session_scope(db) as session:
        with pytest.raises(InvalidPolicy) as raised:
            upsert_policy(session=session, adapter="bot", policy_in=TuningPolicyBase.model_validate(fields))
        assert raised.value.param == param
        assert get_policy(session=session, adapter="bot") is None


def test_the_model_refuses_two_schedules_and_short_intervals() -> None:
    with pytest.raises(ValueError, match="not both"):
        TuningPolicyBase.model_validate({"schedule_cron": "0 3 * * *", "schedule_interval_s": 3600})
    with pytest.raises(ValueError):
        TuningPolicyBase.model_validate({"schedule_interval_s": 5})


@pytest.mark.parametrize(
    ("expression", "weekdays"),
    [
        ("0 3 * * 1", "mon"),  # crontab's Monday; APScheduler 3 alone would read Tuesday
        ("0 3 * * 0", "sun"),
        ("0 3 * * 7", "sun"),
        ("0 3 * * 1-5", "mon,tue,wed,thu,fri"),
        ("0 3 * * */2", "sun,tue,thu,sat"),
        ("0 3 * * sat,sun", "sat,sun"),
        ("0 3 * * *", "*"),
    ],
)
def test_cron_weekdays_mean_what_crontab_means(expression: str, weekdays: str) -> None:
    fields = {field.name: str(field) for field in cron_trigger(expression).fields}
    assert fields["day_of_week"] == weekdays


def test_a_monday_crontab_fires_on_mondays_at_the_hour_in_utc() -> None:
    fire = cron_trigger("30 3 * * 1").get_next_fire_time(None, utcnow())
    assert fire is not None and fire.isoweekday() == 1 and (fire.hour, fire.minute) == (3, 30)
    assert fire.utcoffset() == timedelta(0)
