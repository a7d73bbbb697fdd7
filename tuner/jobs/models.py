"""Fine-tuning job records: the job, its event stream and its checkpoints.

A job is the unit the scheduler, the admin API, the CLI and OpenAI's fine-tuning API all create,
and the worker runs: curate (or read the uploaded files) → train in a child process → register
the candidate → gate it against the champion → promote, start a canary, or reject. The table is
also the queue: a worker claims a ``queued`` row by an atomic update, so several processes can
share one database without running a job twice.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, Text, text
from sqlmodel import Field, SQLModel

from switchyard.db import utcnow

JOB_ID_PATTERN = r"^ftjob-[A-Za-z0-9]{1,40}$"
CHECKPOINT_ID_PATTERN = r"^ftckpt-[A-Za-z0-9]{1,40}$"


class JobStatus(StrEnum):
    """OpenAI's job statuses."""

    validating_files = "validating_files"
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


ENDED = frozenset({JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled})


class JobStage(StrEnum):
    """Where a running job is, for progress displays (OpenAI has only ``running``)."""

    curating = "curating"
    training = "training"
    registering = "registering"
    evaluating = "evaluating"
    promoting = "promoting"


class JobTrigger(StrEnum):
    api = "api"
    """OpenAI's ``POST /v1/fine_tuning/jobs``, on uploaded files."""
    admin = "admin"
    """``POST /admin/adapters/{name}/tune``: curate the adapter's traffic and train now."""
    cli = "cli"
    schedule = "schedule"
    drift = "drift"


class JobOutcome(StrEnum):
    """What became of a succeeded job's candidate (the gate's verdict, or why there was none)."""

    promoted = "promoted"
    canary = "canary"
    rejected = "rejected"
    skipped = "skipped"
    """Nothing was trained: too few (new) examples. Not a failure."""


class TuningJobBase(SQLModel):
    adapter: str = Field(max_length=64, index=True)
    """The alias the job trains a new version of (it may not exist yet: OpenAI's ``suffix``)."""
    tenant: str | None = Field(default=None, max_length=128, index=True)
    """Whose job: only this tenant's keys (and the admin) see it."""
    model: str = Field(max_length=256)
    """What the request named: the alias, or the base model (then ``suffix`` names the alias)."""
    suffix: str | None = Field(default=None, max_length=64)
    trigger: JobTrigger
    training_file: str | None = Field(default=None, max_length=64)
    """An uploaded file's id; None for a job that curates the adapter's logged traffic."""
    validation_file: str | None = Field(default=None, max_length=64)
    requested_hyperparameters: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    """OpenAI's ``hyperparameters`` as sent (``"auto"`` kept)."""
    hyperparameters: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    """The resolved :class:`~tuner.training.Hyperparameters` the run uses."""
    seed: int = Field(default=42, ge=0, le=2**31 - 1)
    metadata_: dict[str, str] | None = Field(default=None, sa_column=Column("metadata", JSON(none_as_null=True)))
    """OpenAI's ``metadata``: at most 16 string pairs, for the caller's bookkeeping."""
    force: bool = False
    """Train even when the adapter's policy asks for more new examples than there are."""


RUNNING = text("status = 'running'")


class TuningJob(TuningJobBase, table=True):
    __tablename__ = "tuning_job"
    # Never two trainings of one adapter at once, whichever workers claim them: the database
    # refuses a second running row of an adapter (a partial unique index; SQLite and PostgreSQL).
    __table_args__ = (
        Index("uq_tuning_job_running_adapter", "adapter", unique=True, sqlite_where=RUNNING, postgresql_where=RUNNING),
    )

    id: int | None = Field(default=None, primary_key=True)
    public_id: str = Field(max_length=64, unique=True, index=True)
    """``ftjob-…``, the id the API shows."""
    key_id: int | None = None
    """The API key that created it (None: the admin, the CLI or the scheduler)."""
    status: JobStatus = Field(default=JobStatus.queued, index=True)
    stage: JobStage | None = None
    outcome: JobOutcome | None = None
    snapshot_id: str | None = Field(default=None, max_length=128)
    """The dataset snapshot trained on (lineage)."""
    parent_version: int | None = None
    """The champion the candidate was trained from and compared with (None: the base model)."""
    parent_resolved: bool = False
    """Whether ``parent_version`` was decided (a resumed job keeps it, even when it is the base)."""
    result_version: int | None = None
    fine_tuned_model: str | None = Field(default=None, max_length=128)
    """``alias@version`` of the trained candidate, whatever the gate decided."""
    gate: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON(none_as_null=True)))
    """The gate's decision: verdict, reasons and numbers."""
    error_code: str | None = Field(default=None, max_length=64)
    error_message: str | None = Field(default=None, sa_column=Column(Text))
    error_param: str | None = Field(default=None, max_length=64)
    trained_tokens: int | None = None
    cancel_requested: bool = False
    worker: str | None = Field(default=None, max_length=256)
    """``host:pid`` of the process running it."""
    heartbeat_at: datetime | None = None
    attempts: int = 0
    """How many times a worker started it (more than one: it resumed after a crash)."""
    created_at: datetime = Field(default_factory=utcnow, index=True)
    started_at: datetime | None = None
    finished_at: datetime | None = None


class TuningJobEvent(SQLModel, table=True):
    """One line of a job's progress, as OpenAI's ``fine_tuning.job.event``."""

    __tablename__ = "tuning_job_event"

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="tuning_job.id", index=True)
    level: str = Field(default="info", max_length=8)
    """``info``, ``warn`` or ``error``."""
    type: str = Field(default="message", max_length=16)
    """``message``, or ``metrics`` (``data`` holds step, loss, …)."""
    message: str = Field(sa_column=Column(Text, nullable=False))
    data: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON(none_as_null=True)))
    created_at: datetime = Field(default_factory=utcnow)


class TuningCheckpoint(SQLModel, table=True):
    """A checkpoint the trainer saved (and evaluated), as OpenAI's ``fine_tuning.job.checkpoint``."""

    __tablename__ = "tuning_checkpoint"

    id: int | None = Field(default=None, primary_key=True)
    public_id: str = Field(max_length=64, unique=True, index=True)
    job_id: int = Field(foreign_key="tuning_job.id", index=True)
    step: int = Field(ge=0)
    metrics: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    path: str = Field(max_length=4096)
    created_at: datetime = Field(default_factory=utcnow)
