"""OpenAI's fine-tuning job objects, as the official SDK reads them, plus Switchyard's own fields
(the adapter, the stage, and the gate's verdict with its reasons)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from switchyard.db import storable_text
from tuner.training import OpenAIHyperparameters

MAX_METADATA_PAIRS = 16


class SupervisedMethod(BaseModel):
    model_config = {"extra": "forbid"}

    hyperparameters: OpenAIHyperparameters = Field(default_factory=OpenAIHyperparameters)


class FineTuningMethod(BaseModel):
    model_config = {"extra": "forbid"}

    type: Literal["supervised"] = "supervised"
    """Only supervised fine-tuning (QLoRA on chat examples); ``dpo`` and ``reinforcement`` are not
    supported."""
    supervised: SupervisedMethod | None = None


class FineTuningJobCreate(BaseModel):
    """``POST /v1/fine_tuning/jobs``."""

    model_config = {"extra": "forbid"}

    model: str = Field(min_length=1, max_length=256)
    """An adapter alias to train a new version of, or the base model with ``suffix`` naming a new
    adapter."""
    training_file: str = Field(min_length=1, max_length=64)
    validation_file: str | None = Field(default=None, min_length=1, max_length=64)
    hyperparameters: OpenAIHyperparameters | None = None
    """Deprecated by OpenAI in favour of ``method``; accepted the same way."""
    method: FineTuningMethod | None = None
    suffix: str | None = Field(default=None, min_length=1, max_length=64)
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)
    metadata: dict[str, str] | None = None
    integrations: list[Any] | None = None

    @field_validator("metadata")
    @classmethod
    def _bounded_metadata(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is None:
            return None
        if len(value) > MAX_METADATA_PAIRS:
            raise ValueError(f"metadata holds at most {MAX_METADATA_PAIRS} pairs")
        for key, item in value.items():
            if not 1 <= len(key) <= 64 or len(item) > 512:
                raise ValueError("metadata keys are 1 to 64 characters, values at most 512")
            storable_text(key)
            storable_text(item)
        return value

    def requested_hyperparameters(self) -> OpenAIHyperparameters:
        if self.method is not None and self.method.supervised is not None:
            return self.method.supervised.hyperparameters
        return self.hyperparameters or OpenAIHyperparameters()


class TuneRequest(BaseModel):
    """``POST /admin/adapters/{name}/tune``: curate the adapter's traffic and train now."""

    model_config = {"extra": "forbid"}

    force: bool = True
    """Train even if curation finds fewer new examples than the adapter's policy asks for (a
    snapshot with nothing new is still trained on)."""
    hyperparameters: OpenAIHyperparameters | None = None
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)


class JobError(BaseModel):
    code: str
    message: str
    param: str | None = None


class GateSummary(BaseModel):
    verdict: str
    reasons: list[str]
    numbers: dict[str, Any]


class FineTuningJob(BaseModel):
    id: str
    object: Literal["fine_tuning.job"] = "fine_tuning.job"
    created_at: int
    error: JobError | None
    fine_tuned_model: str | None
    """``alias@version`` of the trained candidate (whatever the gate decided: see ``outcome``)."""
    finished_at: int | None
    hyperparameters: dict[str, Any]
    model: str
    organization_id: str
    """The tenant (``default`` for keys without one)."""
    result_files: list[str] = Field(default_factory=list)
    seed: int
    status: str
    trained_tokens: int | None
    training_file: str | None
    """The uploaded file, or None for a job that curates the adapter's logged traffic."""
    validation_file: str | None
    estimated_finish: int | None = None
    integrations: list[Any] | None = None
    metadata: dict[str, str] | None
    method: dict[str, Any]
    user_provided_suffix: str | None
    adapter: str
    trigger: str
    stage: str | None
    outcome: str | None
    """``promoted``, ``canary``, ``rejected`` or ``skipped`` once the job has succeeded."""
    gate: GateSummary | None
    dataset_snapshot_id: str | None
    parent_version: int | None


class FineTuningJobList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FineTuningJob]
    has_more: bool


class FineTuningJobEvent(BaseModel):
    id: str
    object: Literal["fine_tuning.job.event"] = "fine_tuning.job.event"
    created_at: int
    level: str
    message: str
    data: dict[str, Any] | None
    type: str


class FineTuningJobEventList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FineTuningJobEvent]
    has_more: bool


class FineTuningJobCheckpoint(BaseModel):
    id: str
    object: Literal["fine_tuning.job.checkpoint"] = "fine_tuning.job.checkpoint"
    created_at: int
    fine_tuned_model_checkpoint: str
    """The trainer checkpoint (``<job>:step-<N>``): kept to resume training, not served."""
    fine_tuning_job_id: str
    step_number: int
    metrics: dict[str, Any]


class FineTuningJobCheckpointList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FineTuningJobCheckpoint]
    has_more: bool
    first_id: str | None
    last_id: str | None
