"""Fine-tuning jobs as the API runs them: who may create and see which job, and the OpenAI shape.

Jobs are created here and run by the tuner's worker (``tuner.jobs.worker``), which may live in
this process or in another one sharing the database: this service only writes the queue and
reads it back.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session

from adapters.exceptions import AdapterNotFound, InvalidAdapter
from adapters.models import Adapter
from adapters.registry import get_adapter
from adapters.validation import validate_name
from gateway.auth.models import Principal
from gateway.exceptions import ModelNotFound, PermissionDenied
from gateway.fine_tuning.protocol import (
    FineTuningJob,
    FineTuningJobCheckpoint,
    FineTuningJobCheckpointList,
    FineTuningJobCreate,
    FineTuningJobEvent,
    FineTuningJobEventList,
    FineTuningJobList,
    GateSummary,
    JobError,
    TuneRequest,
)
from switchyard.db import run_in_session
from tuner.exceptions import InvalidJob, TuningResourceNotFound
from tuner.files import get_file
from tuner.jobs import crud
from tuner.jobs.crud import ANY_TENANT, TenantScope
from tuner.jobs.models import JobTrigger, TuningCheckpoint, TuningJob, TuningJobBase, TuningJobEvent
from tuner.policies import PresetName, get_policy, resolve_policy
from tuner.training import Hyperparameters, OpenAIHyperparameters, from_openai, to_openai

NO_TENANT = "default"
"""``organization_id`` of jobs that belong to keys without a tenant (and to the admin)."""
FINE_TUNE_PURPOSE = "fine-tune"


def _epoch(moment: datetime | None) -> int | None:
    if moment is None:
        return None
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return int(aware.timestamp())


def render_job(job: TuningJob) -> FineTuningJob:
    """A job as OpenAI's ``fine_tuning.job`` object."""
    multiplier = job.requested_hyperparameters.get("learning_rate_multiplier", "auto")
    try:
        resolved = to_openai(Hyperparameters.model_validate(job.hyperparameters))
    except ValueError:  # stored under other bounds: show what was asked rather than fail the read
        resolved = {k: job.requested_hyperparameters.get(k, "auto") for k in ("n_epochs", "batch_size")}
    reported = {**resolved, "learning_rate_multiplier": 1.0 if multiplier == "auto" else multiplier}
    error = (
        JobError(code=job.error_code, message=job.error_message or "", param=job.error_param)
        if job.error_code
        else None
    )
    gate = GateSummary.model_validate(job.gate) if job.gate else None
    created = _epoch(job.created_at)
    assert created is not None
    return FineTuningJob(
        id=job.public_id,
        created_at=created,
        error=error,
        fine_tuned_model=job.fine_tuned_model,
        finished_at=_epoch(job.finished_at),
        hyperparameters=reported,
        model=job.model,
        organization_id=job.tenant or NO_TENANT,
        seed=job.seed,
        status=job.status.value,
        trained_tokens=job.trained_tokens,
        training_file=job.training_file,
        validation_file=job.validation_file,
        metadata=job.metadata_,
        method={"type": "supervised", "supervised": {"hyperparameters": reported}},
        user_provided_suffix=job.suffix,
        adapter=job.adapter,
        trigger=job.trigger.value,
        stage=job.stage.value if job.stage else None,
        outcome=job.outcome.value if job.outcome else None,
        gate=gate,
        dataset_snapshot_id=job.snapshot_id,
        parent_version=job.parent_version,
    )


def _render_event(event: TuningJobEvent) -> FineTuningJobEvent:
    created = _epoch(event.created_at)
    assert created is not None
    return FineTuningJobEvent(
        id=crud.event_public_id(event),
        created_at=created,
        level=event.level,
        message=event.message,
        data=event.data,
        type=event.type,
    )


def _render_checkpoint(checkpoint: TuningCheckpoint, job: TuningJob) -> FineTuningJobCheckpoint:
    created = _epoch(checkpoint.created_at)
    assert created is not None
    return FineTuningJobCheckpoint(
        id=checkpoint.public_id,
        created_at=created,
        fine_tuned_model_checkpoint=f"{job.public_id}:step-{checkpoint.step}",
        fine_tuning_job_id=job.public_id,
        step_number=checkpoint.step,
        metrics=checkpoint.metrics,
    )


class FineTuningService:
    def __init__(
        self,
        *,
        db: Engine,
        base_model_name: str,
        files_dir: Path,
        default_preset: PresetName,
        on_queue_change: Callable[[], None] = lambda: None,
    ) -> None:
        self._db = db
        self._base_model_name = base_model_name
        self._files_dir = files_dir
        self._default_preset = default_preset
        self._on_queue_change = on_queue_change
        """Called when the queue changed (a job created or cancelled): the local worker's wake-up."""

    @staticmethod
    def _scope(principal: Principal) -> TenantScope:
        if not principal.may_fine_tune:
            raise PermissionDenied("This API key may not run fine-tuning jobs (it needs the fine_tune scope).")
        return ANY_TENANT if principal.is_admin else principal.tenant

    def _hyperparameters(self, session: Session, adapter: str, requested: OpenAIHyperparameters) -> Hyperparameters:
        try:
            policy = get_policy(session=session, adapter=adapter)
            base = resolve_policy(policy, default_preset=self._default_preset).hyperparameters
        except ValueError as exc:  # a policy stored before a setting's bounds changed
            raise InvalidJob(f"The adapter's tuning policy is invalid; fix it first: {exc}", param="model") from None
        try:
            return from_openai(requested, base=base)
        except ValueError as exc:
            raise InvalidJob(f"Invalid hyperparameters: {exc}", param="hyperparameters") from None

    def _target(self, session: Session, body: FineTuningJobCreate, principal: Principal) -> tuple[str, str | None]:
        """(adapter to train, its tenant) for ``body.model`` and ``body.suffix``."""
        tenant = None if principal.is_admin else principal.tenant
        if body.model == self._base_model_name:
            if body.suffix is None:
                raise InvalidJob(
                    "Fine-tuning the base model creates a new adapter: give its name as suffix.", param="suffix"
                )
            try:
                validate_name(body.suffix)
            except InvalidAdapter as exc:
                raise InvalidJob(exc.message, param="suffix") from None
            if body.suffix.casefold() == self._base_model_name.casefold():
                raise InvalidJob("suffix must not be the base model's name.", param="suffix")
            existing = get_adapter(session=session, name=body.suffix)
            if existing is not None and not self._owns(principal, existing):
                raise InvalidJob(f"The adapter name '{body.suffix}' is taken; choose another suffix.", param="suffix")
            return body.suffix, existing.tenant if existing is not None else tenant
        if body.suffix is not None:
            raise InvalidJob(
                "suffix names a new adapter and applies only when model is the base model.", param="suffix"
            )
        adapter = get_adapter(session=session, name=body.model) if "@" not in body.model else None
        if adapter is None or not self._owns(principal, adapter):
            raise ModelNotFound(
                f"The model '{body.model}' does not exist or you do not have access to it "
                "(fine-tune an adapter alias your tenant owns, or the base model with a suffix).",
                param="model",
            )
        return adapter.name, adapter.tenant

    @staticmethod
    def _owns(principal: Principal, adapter: Adapter) -> bool:
        """Training changes what an alias serves, so only its owner tenant (or the admin) may."""
        if principal.is_admin:
            return True
        return adapter.tenant == principal.tenant and principal.may_use(
            adapter.name, tenant=adapter.tenant, shared=adapter.shared
        )

    def _check_file(self, session: Session, file_id: str, scope: TenantScope, param: str) -> None:
        try:
            row = get_file(session=session, file_id=file_id, scope=scope)
        except TuningResourceNotFound:
            raise InvalidJob(f"File '{file_id}' does not exist or you do not have access to it.", param=param) from None
        if row.purpose != FINE_TUNE_PURPOSE:
            raise InvalidJob(f"File '{file_id}' was not uploaded with purpose 'fine-tune'.", param=param)

    async def create(self, body: FineTuningJobCreate, principal: Principal) -> FineTuningJob:
        self._scope(principal)
        if body.integrations:
            raise InvalidJob("Integrations are not supported.", param="integrations")

        def work(session: Session) -> TuningJob:
            adapter, tenant = self._target(session, body, principal)
            # The job reads its files as the adapter's tenant, so they must be that tenant's
            # (an admin training a tenant's adapter uses files uploaded for that tenant).
            self._check_file(session, body.training_file, tenant, "training_file")
            if body.validation_file is not None:
                self._check_file(session, body.validation_file, tenant, "validation_file")
            requested = body.requested_hyperparameters()
            hp = self._hyperparameters(session, adapter, requested)
            job_in = TuningJobBase(
                adapter=adapter,
                tenant=tenant,
                model=body.model,
                suffix=body.suffix,
                trigger=JobTrigger.api,
                training_file=body.training_file,
                validation_file=body.validation_file,
                requested_hyperparameters=requested.model_dump(),
                hyperparameters=hp.model_dump(mode="json"),
                seed=body.seed if body.seed is not None else random.randrange(2**31),
                metadata_=body.metadata,
                force=True,
            )
            return crud.create_job(session=session, job_in=job_in, key_id=principal.key_id)

        job = await run_in_session(self._db, work)
        self._on_queue_change()
        return render_job(job)

    async def tune(self, name: str, body: TuneRequest) -> FineTuningJob:
        """The admin's "curate and train now" for ``name``."""

        def work(session: Session) -> TuningJob:
            adapter = get_adapter(session=session, name=name)
            if adapter is None:
                raise AdapterNotFound(f"adapter {name!r} does not exist", param="name")
            requested = body.hyperparameters or OpenAIHyperparameters()
            hp = self._hyperparameters(session, name, requested)
            job_in = TuningJobBase(
                adapter=name,
                tenant=adapter.tenant,
                model=name,
                trigger=JobTrigger.admin,
                requested_hyperparameters=requested.model_dump(),
                hyperparameters=hp.model_dump(mode="json"),
                seed=body.seed if body.seed is not None else hp.seed,
                force=body.force,
            )
            return crud.create_job(session=session, job_in=job_in)

        job = await run_in_session(self._db, work)
        self._on_queue_change()
        return render_job(job)

    async def list(
        self, principal: Principal, *, after: str | None, limit: int, metadata: dict[str, str] | None
    ) -> FineTuningJobList:
        scope = self._scope(principal)
        rows, has_more = await run_in_session(
            self._db, lambda s: crud.list_jobs(session=s, scope=scope, after=after, limit=limit, metadata=metadata)
        )
        return FineTuningJobList(data=[render_job(job) for job in rows], has_more=has_more)

    async def retrieve(self, principal: Principal, job_id: str) -> FineTuningJob:
        scope = self._scope(principal)
        return render_job(
            await run_in_session(self._db, lambda s: crud.get_job(session=s, public_id=job_id, scope=scope))
        )

    async def cancel(self, principal: Principal, job_id: str) -> FineTuningJob:
        scope = self._scope(principal)
        job = await run_in_session(self._db, lambda s: crud.request_cancel(session=s, public_id=job_id, scope=scope))
        self._on_queue_change()  # the worker passes a running job's cancel on at once
        return render_job(job)

    async def events(
        self, principal: Principal, job_id: str, *, after: str | None, limit: int
    ) -> FineTuningJobEventList:
        scope = self._scope(principal)

        def work(session: Session) -> tuple[list[TuningJobEvent], bool]:
            job = crud.get_job(session=session, public_id=job_id, scope=scope)
            return crud.list_events(session=session, job=job, after=after, limit=limit)

        rows, has_more = await run_in_session(self._db, work)
        return FineTuningJobEventList(data=[_render_event(e) for e in rows], has_more=has_more)

    async def checkpoints(
        self, principal: Principal, job_id: str, *, after: str | None, limit: int
    ) -> FineTuningJobCheckpointList:
        scope = self._scope(principal)

        def work(session: Session) -> tuple[TuningJob, list[TuningCheckpoint], bool]:
            job = crud.get_job(session=session, public_id=job_id, scope=scope)
            rows, has_more = crud.list_checkpoints(session=session, job=job, after=after, limit=limit)
            return job, rows, has_more

        job, rows, has_more = await run_in_session(self._db, work)
        data = [_render_checkpoint(c, job) for c in rows]
        return FineTuningJobCheckpointList(
            data=data,
            has_more=has_more,
            first_id=data[0].id if data else None,
            last_id=data[-1].id if data else None,
        )
