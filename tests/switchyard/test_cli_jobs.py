"""``switchyard tune``, ``jobs`` and ``adapters policy`` against a real SQLite database; a thread
stands in for the gateway's job worker, moving the job through the queue's real functions."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner

from switchyard.cli import app
from switchyard.db import make_engine, session_scope
from switchyard.schema import create_all_tables
from tests.utils.tuning import add_adapter
from tuner.jobs.crud import add_event, claim_next, finish_job, request_cancel, set_stage
from tuner.jobs.models import JobOutcome, JobStage, JobStatus, JobTrigger, TuningJob
from tuner.policies import TuningPolicyBase, get_policy, upsert_policy

FAST = ["--poll-s", "0.02"]


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """The database the CLI opens (the data folder's SQLite file), with adapter ``bot`` of ``acme``."""
    monkeypatch.setenv("SWITCHYARD_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("SWITCHYARD_DATABASE_URL", raising=False)
    monkeypatch.setenv("COLUMNS", "200")  # rich tables keep job ids on one line
    engine = make_engine(f"sqlite:///{tmp_path / 'switchyard.db'}")
    create_all_tables(engine)
    add_adapter(engine, "bot", tenant="acme")
    yield engine
    engine.dispose()


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def jobs(db: Engine) -> list[TuningJob]:
    with session_scope(db) as session:
        return list(session.exec(select(TuningJob).order_by(TuningJob.id)))


def queued_id(output: str) -> str:
    first = output.splitlines()[0]
    assert first.startswith("queued ftjob-"), output
    return first.split()[1].rstrip(":")


def as_worker(db: Engine, steps: Callable[[Session, TuningJob], None]) -> threading.Thread:
    """A thread that claims the first queued job, as the gateway's worker would, and runs ``steps``."""

    def run() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with session_scope(db) as session:
                job = claim_next(session=session, worker="test:1")
                if job is not None:
                    steps(session, job)
                    return
            time.sleep(0.02)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_tune_queues_a_job_with_the_adapters_tenant_and_policy(runner: CliRunner, db: Engine) -> None:
    with session_scope(db) as session:
        upsert_policy(
            session=session, adapter="bot", policy_in=TuningPolicyBase(preset="demo", hyperparameters={"n_epochs": 2})
        )
    result = runner.invoke(app, ["tune", "bot"])
    assert result.exit_code == 0, result.output
    first = queued_id(result.output)
    assert f"switchyard jobs follow {first}" in result.output
    [job] = jobs(db)
    assert (job.public_id, job.adapter, job.model, job.tenant) == (first, "bot", "bot", "acme")
    assert (job.trigger, job.status, job.force) == (JobTrigger.cli, JobStatus.queued, False)
    assert job.hyperparameters["n_epochs"] == 2 and job.hyperparameters["learning_rate"] == 3e-3  # demo preset

    forced = runner.invoke(app, ["tune", "bot", "--force"])
    assert forced.exit_code == 0, forced.output
    assert f"starts once {first} (queued)" in forced.output
    assert [j.force for j in jobs(db)] == [False, True]


def test_tune_an_unknown_adapter_exits_1(runner: CliRunner, db: Engine) -> None:
    result = runner.invoke(app, ["tune", "ghost"])
    assert result.exit_code == 1
    assert "adapter 'ghost' does not exist" in result.output
    assert jobs(db) == []


def test_jobs_list_show_cancel(runner: CliRunner, db: Engine) -> None:
    add_adapter(db, "other")
    older = queued_id(runner.invoke(app, ["tune", "bot"]).output)
    newer = queued_id(runner.invoke(app, ["tune", "other"]).output)

    listed = runner.invoke(app, ["jobs", "list"])
    assert listed.exit_code == 0, listed.output
    assert listed.output.index(newer) < listed.output.index(older)  # newest first
    only_bot = runner.invoke(app, ["jobs", "list", "--adapter", "bot"]).output
    assert older in only_bot and newer not in only_bot
    first_page = runner.invoke(app, ["jobs", "list", "--limit", "1"]).output
    assert newer in first_page and older not in first_page and "more" in first_page

    shown = runner.invoke(app, ["jobs", "show", older])
    assert shown.exit_code == 0, shown.output
    assert "acme" in shown.output and "queued" in shown.output and f"Created fine-tuning job: {older}" in shown.output

    cancelled = runner.invoke(app, ["jobs", "cancel", older])
    assert cancelled.exit_code == 0 and f"{older} cancelled" in cancelled.output
    assert "cancelled" in runner.invoke(app, ["jobs", "show", older]).output
    again = runner.invoke(app, ["jobs", "cancel", older])
    assert again.exit_code == 1 and "already cancelled" in again.output
    assert {j.public_id: j.status for j in jobs(db)} == {older: JobStatus.cancelled, newer: JobStatus.queued}

    assert runner.invoke(app, ["jobs", "show", "ftjob-nosuchjob"]).exit_code == 1
    assert runner.invoke(app, ["jobs", "show", "not-a-job"]).exit_code == 1


def test_cancelling_a_running_job_asks_its_worker(runner: CliRunner, db: Engine) -> None:
    public_id = queued_id(runner.invoke(app, ["tune", "bot"]).output)
    with session_scope(db) as session:
        assert claim_next(session=session, worker="test:1") is not None
    result = runner.invoke(app, ["jobs", "cancel", public_id])
    assert result.exit_code == 0 and "cancellation requested" in result.output
    assert jobs(db)[0].cancel_requested and jobs(db)[0].status == JobStatus.running


def test_tune_now_follows_the_job_to_its_verdict(runner: CliRunner, db: Engine) -> None:
    def steps(session: Session, job: TuningJob) -> None:
        set_stage(session=session, job=job, stage=JobStage.curating, message="Curated 40 examples")
        time.sleep(0.1)
        set_stage(session=session, job=job, stage=JobStage.training, message="Training [demo preset]")
        for step in range(1, 5):
            data = {"step": step, "total_steps": 4, "train_loss": 2.0 / step}
            add_event(session=session, job=job, type="metrics", message=f"Step {step}/4", data=data)
            session.commit()
            time.sleep(0.05)
        add_event(
            session=session,
            job=job,
            type="metrics",
            message="Step 4: hold-out loss=1.25",
            data={"step": 4, "total_steps": 4, "valid_loss": 1.25},
        )
        set_stage(session=session, job=job, stage=JobStage.evaluating, message="Scoring bot@2 against bot@1")
        finish_job(
            session=session,
            job=job,
            status=JobStatus.succeeded,
            message="Promoted bot@2",
            outcome=JobOutcome.promoted,
            fine_tuned_model="bot@2",
            gate={"verdict": "promote", "reasons": ["hold-out NLL -12.0 % (needs at most -2.0 %)"], "numbers": {}},
        )

    worker = as_worker(db, steps)
    result = runner.invoke(app, ["tune", "bot", "--now", *FAST])
    worker.join(timeout=30)
    assert result.exit_code == 0, result.output
    output = result.output
    for message in ("Curated 40 examples", "Training [demo preset]", "hold-out loss=1.25", "Promoted bot@2"):
        assert message in output
    assert "Step 2/4" not in output  # steps move the bar; they are not printed
    assert "4/4" in output  # the bar's last state
    assert ": promoted (bot@2)" in output
    assert "gate: promote" in output and "hold-out NLL -12.0 %" in output


def test_following_a_failed_job_exits_1(runner: CliRunner, db: Engine) -> None:
    public_id = queued_id(runner.invoke(app, ["tune", "bot"]).output)

    def steps(session: Session, job: TuningJob) -> None:
        set_stage(session=session, job=job, stage=JobStage.training, message="Training")
        finish_job(
            session=session,
            job=job,
            status=JobStatus.failed,
            message="Training failed",
            level="error",
            error=("training_failed", "the child ran out of memory", None),
        )

    worker = as_worker(db, steps)
    result = runner.invoke(app, ["jobs", "follow", public_id, *FAST])
    worker.join(timeout=30)
    assert result.exit_code == 1, result.output
    assert "Training failed" in result.output
    assert f"{public_id}: failed training_failed: the child ran out of memory" in result.output


def test_following_a_job_cancelled_while_queued_exits_1(runner: CliRunner, db: Engine) -> None:
    public_id = queued_id(runner.invoke(app, ["tune", "bot"]).output)

    def cancel_soon() -> None:
        time.sleep(0.3)
        with session_scope(db) as session:
            request_cancel(session=session, public_id=public_id)

    canceller = threading.Thread(target=cancel_soon, daemon=True)
    canceller.start()
    result = runner.invoke(app, ["jobs", "follow", public_id, *FAST])
    canceller.join(timeout=30)
    assert result.exit_code == 1, result.output
    assert "Job cancelled before it started" in result.output and f"{public_id}: cancelled" in result.output


def test_adapters_policy_shows_sets_and_clears(runner: CliRunner, db: Engine) -> None:
    shown = runner.invoke(app, ["adapters", "policy", "bot"])
    assert shown.exit_code == 0 and "no tuning policy" in shown.output

    gate = ["--margin", "0.05", "--on-pass", "canary"]
    overrides = ["--set", "learning_rate=1e-4", "--set", "init_from=fresh"]
    changed = runner.invoke(
        app, ["adapters", "policy", "bot", "--every", "6h", *gate, *overrides, "--min-new-examples", "30"]
    )
    assert changed.exit_code == 0, changed.output
    with session_scope(db) as session:
        row = get_policy(session=session, adapter="bot")
        assert row is not None
        assert (row.schedule_interval_s, row.schedule_cron, row.min_new_examples) == (6 * 3600, None, 30)
        assert row.gate == {"margin": 0.05, "on_pass": "canary"}
        assert row.hyperparameters == {"learning_rate": 1e-4, "init_from": "fresh"}

    # Options change what they name and keep the rest.
    runner.invoke(app, ["adapters", "policy", "bot", "--cron", "0 3 * * 1-5", "--disable", "--set", "init_from="])
    with session_scope(db) as session:
        row = get_policy(session=session, adapter="bot")
        assert row is not None and (row.schedule_interval_s, row.schedule_cron, row.enabled) == (
            None,
            "0 3 * * 1-5",
            False,
        )
        assert row.hyperparameters == {"learning_rate": 1e-4} and row.min_new_examples == 30

    assert '"schedule_cron": "0 3 * * 1-5"' in runner.invoke(app, ["adapters", "policy", "bot"]).output
    cleared = runner.invoke(app, ["adapters", "policy", "bot", "--clear"])
    assert cleared.exit_code == 0 and "policy removed" in cleared.output
    with session_scope(db) as session:
        assert get_policy(session=session, adapter="bot") is None


@pytest.mark.parametrize(
    ("args", "exit_code", "message"),
    [
        (["--cron", "0 3 * *"], 1, "not a crontab"),
        (["--set", "learning_rat=0.1"], 1, "no field 'learning_rat'"),
        (["--margin", "2"], 1, "gate.margin"),
        (["--every", "30s"], 1, "greater than or equal to 60"),
        (["--every", "soon"], 2, "not a duration"),
        (["--every", "6h", "--cron", "0 3 * * *"], 2, "one of --every"),
    ],
)
def test_adapters_policy_refuses_bad_values(
    runner: CliRunner, db: Engine, args: list[str], exit_code: int, message: str
) -> None:
    result = runner.invoke(app, ["adapters", "policy", "bot", *args])
    assert result.exit_code == exit_code, result.output
    assert message in result.output
    with session_scope(db) as session:
        assert get_policy(session=session, adapter="bot") is None


def test_adapters_policy_of_an_unknown_adapter_exits_1(runner: CliRunner, db: Engine) -> None:
    result = runner.invoke(app, ["adapters", "policy", "ghost", "--every", "1d"])
    assert result.exit_code == 1 and "does not exist" in result.output
