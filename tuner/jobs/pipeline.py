"""One fine-tuning job, start to end: data → QLoRA training → candidate → gate → verdict.

The data is the adapter's curated traffic (scheduled, admin, CLI and drift jobs) or uploaded
training files (OpenAI's fine-tuning API). Training runs in a child process
(:class:`~tuner.training.TrainingProcess`). The candidate is registered with its lineage, then
scored against the champion through the serving engine on the adapter's *trusted* evaluation
set (DESIGN.md, "Evaluation gate"), and promoted, put on a canary or rejected through the
registry's hot-swap.

The pipeline reaches the registry and the engine through :class:`CandidateRegistry` (the
gateway implements it), so this package never imports the HTTP layer. Each step records what it
produced on the job row (snapshot, parent, candidate), so a job resumed after a crash continues
where it stopped: training resumes from its last checkpoint, a registered candidate is not
trained again.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from opentelemetry import trace
from opentelemetry.trace import Span, StatusCode, Tracer
from sqlalchemy.engine import Engine
from sqlmodel import Session

from adapters.registry import ServableVersion
from switchyard.config import TunerSettings
from switchyard.db import run_in_session
from switchyard.exceptions import SwitchyardError
from tuner.curation import CurationPolicy, curate_snapshot
from tuner.exceptions import InvalidJob, TrainingFailed
from tuner.files import read_training_rows
from tuner.gate import (
    EvalRow,
    GateDecision,
    GatePolicy,
    TaskChecks,
    Verdict,
    compare,
    decide,
    load_forgetting_set,
    rows_from_examples,
)
from tuner.gate.scoring import Scorer
from tuner.jobs import crud
from tuner.jobs.models import JobOutcome, JobStage, JobStatus, TuningJob
from tuner.lengths import load_base_tokenizer
from tuner.manifests import get_manifest, latest_manifest
from tuner.policies import PresetName, get_policy, resolve_policy
from tuner.snapshots import HOLDOUT_SPLIT, DatasetSnapshot, load_snapshot, write_snapshot
from tuner.split import is_holdout
from tuner.training import Hyperparameters, TrainingConfig, TrainingEvent, TrainingProcess, TrainingStatus

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AdapterState:
    """What the pipeline needs to know of the alias it trains."""

    exists: bool
    tenant: str | None = None
    champion: ServableVersion | None = None
    """The active version; None: the base model is the champion."""
    task_checks: dict[str, Any] = field(default_factory=dict)


class CandidateRegistry(Protocol):
    """The registry and the serving engine, as the pipeline uses them."""

    async def adapter_state(self, adapter: str) -> AdapterState: ...

    async def version(self, adapter: str, number: int) -> ServableVersion:
        """A registered version (any status), ready to be loaded by the engine."""
        ...

    async def register_candidate(
        self,
        adapter: str,
        folder: Path,
        *,
        tenant: str | None,
        parent_version: int | None,
        dataset_snapshot_id: str,
        metrics: dict[str, Any],
        label: str,
    ) -> ServableVersion:
        """Register ``folder`` as a candidate (never routed) and check that the engine loads it."""
        ...

    async def record_gate(self, adapter: str, number: int, gate: dict[str, Any]) -> None: ...

    async def promote(self, adapter: str, number: int) -> None: ...

    async def start_canary(self, adapter: str, number: int, weight: float) -> None: ...

    async def reject(self, adapter: str, number: int, reason: str) -> None: ...

    def scorer(self) -> Scorer: ...


@dataclass(frozen=True)
class PipelineSettings:
    """The parts of the root settings a job needs (injected by whoever builds the pipeline)."""

    tuner: TunerSettings
    base_model: str
    snapshot_root: Path
    jobs_dir: Path
    files_dir: Path
    default_preset: PresetName


class JobCancelled(Exception):
    """The job's cancel was requested; it ends as ``cancelled``."""


@dataclass(frozen=True)
class Dataset:
    snapshot: DatasetSnapshot
    eval_rows: list[EvalRow]
    eval_source: str
    """Which rows the gate judges on, for people (the decision's numbers record it)."""
    trusted: bool


class JobRun:
    """One attempt at one job; :meth:`cancel` stops it at the next safe point."""

    def __init__(self, job: TuningJob) -> None:
        self.job = job
        self.process: TrainingProcess | None = None
        """The training child, while one runs."""
        self.cancel_requested = False
        self.stage_span: Span | None = None
        """The trace span of the stage the run is in."""

    @property
    def public_id(self) -> str:
        return self.job.public_id

    def end_stage_span(self) -> None:
        if self.stage_span is not None:
            self.stage_span.end()
            self.stage_span = None

    async def cancel(self) -> bool:
        """Ask the run to stop; a training child is stopped at its next step (SIGTERM, then
        SIGKILL after the grace period). Returns False when the run is past the point of no
        return (the gate has decided and the verdict is being applied): it then ends normally.
        Outside training the caller cancels the run's task."""
        if self.job.stage in (JobStage.registering, JobStage.promoting):
            return False
        self.cancel_requested = True
        if self.process is not None:
            await self.process.cancel()
        return True

    def checkpoint(self) -> None:
        if self.cancel_requested:
            raise JobCancelled("cancelled")

    async def interrupt(self) -> None:
        """Stop the training child for a shutdown: the job is resumed later, not cancelled."""
        if self.process is not None:
            await self.process.cancel()


class TuningPipeline:
    def __init__(
        self, *, db: Engine, registry: CandidateRegistry, settings: PipelineSettings, tracer: Tracer | None = None
    ) -> None:
        self._db = db
        self._registry = registry
        self._settings = settings
        self._tracer = tracer or trace.NoOpTracer()
        self._tokenizer: Any = None
        self._tokenizer_lock = asyncio.Lock()

    async def _update(self, run: JobRun, **fields: Any) -> None:
        """Set fields on the job row (and on ``run.job``)."""

        def work(session: Session) -> None:
            job = crud.get_job(session=session, public_id=run.public_id)
            for name, value in fields.items():
                setattr(job, name, value)
            session.add(job)
            session.commit()

        await run_in_session(self._db, work)
        for name, value in fields.items():
            setattr(run.job, name, value)

    async def _stage(self, run: JobRun, stage: JobStage, message: str) -> None:
        run.checkpoint()

        def work(session: Session) -> None:
            job = crud.get_job(session=session, public_id=run.public_id)
            crud.set_stage(session=session, job=job, stage=stage, message=message)

        await run_in_session(self._db, work)
        run.job.stage = stage
        run.end_stage_span()
        run.stage_span = self._tracer.start_span(
            f"{stage} {run.job.adapter}", attributes={"switchyard.job.stage": str(stage)}
        )

    async def _event(self, run: JobRun, message: str, **fields: Any) -> None:
        def work(session: Session) -> None:
            job = crud.get_job(session=session, public_id=run.public_id)
            crud.add_event(session=session, job=job, message=message, **fields)
            session.commit()

        await run_in_session(self._db, work)

    # -- the job -----------------------------------------------------------------------------

    async def run(self, run: JobRun) -> TuningJob:
        """Run the job to its end and return the finished row. Cancellation and failures end the
        job with their reason; only a shutdown (this task cancelled without a cancel request)
        propagates, leaving the job to be resumed. Traced: a span for the attempt, and a child
        span for each stage."""
        with self._tracer.start_as_current_span(
            f"fine_tuning {run.job.adapter}", attributes=_span_attributes(run.job)
        ) as span:
            try:
                finished = await self._run_to_end(run)
                _set_outcome(finished, span, run.stage_span)
            finally:
                run.end_stage_span()
            return finished

    async def _run_to_end(self, run: JobRun) -> TuningJob:
        try:
            return await self._run(run)
        except asyncio.CancelledError:
            if not run.cancel_requested:
                raise
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            await self._reject_unjudged(run, "its job was cancelled")
            return await self._finish(run, JobStatus.cancelled, "Job cancelled")
        except JobCancelled:
            await self._reject_unjudged(run, "its job was cancelled")
            return await self._finish(run, JobStatus.cancelled, "Job cancelled")
        except TrainingFailed as exc:
            return await self._fail(run, "training_failed", exc.message)
        except InvalidJob as exc:
            return await self._fail(run, "invalid_job", exc.message, exc.param)
        except SwitchyardError as exc:
            return await self._fail(run, "job_failed", exc.message, exc.param)
        except Exception as exc:
            logger.exception("fine-tuning job %s failed", run.public_id)
            return await self._fail(run, "internal_error", f"The job failed on an internal error: {type(exc).__name__}")

    async def _run(self, run: JobRun) -> TuningJob:
        job = run.job
        state = await self._registry.adapter_state(job.adapter)
        if state.exists and state.tenant != job.tenant:
            raise InvalidJob(f"Adapter '{job.adapter}' belongs to another tenant.", param="model")
        policy = await run_in_session(self._db, lambda s: get_policy(session=s, adapter=job.adapter))
        resolved = resolve_policy(policy, default_preset=self._settings.default_preset)
        hyperparameters = Hyperparameters.model_validate(job.hyperparameters or resolved.hyperparameters.model_dump())

        dataset = await self._dataset(run, min_new_examples=1 if job.force else resolved.min_new_examples)
        if dataset is None:
            return run.job  # skipped, and already finished

        if job.result_version is None:
            # Decided once, with the data: a resumed job continues from the same parent even if
            # the alias moved meanwhile (its checkpoints were trained from it).
            parent = await self._parent(job) if job.parent_resolved else state.champion
            await self._update(run, parent_version=parent.version if parent else None, parent_resolved=True)
            candidate = await self._train_and_register(run, dataset, hyperparameters, parent, state)
        else:
            candidate = await self._registry.version(job.adapter, job.result_version)
            if job.gate is not None:
                # The gate had decided before the interruption; the champion may already be this
                # candidate, so it is not scored again: its verdict is applied (idempotently).
                await self._event(run, f"Resuming: applying the gate's verdict on {candidate.qualified_name}")
                return await self._apply(run, candidate, GateDecision.model_validate(job.gate), resolved.gate)
            await self._event(run, f"Resuming at the evaluation of {candidate.qualified_name}")
        champion = state.champion
        if champion is not None and champion.version_id == candidate.version_id:
            raise InvalidJob(f"{candidate.qualified_name} already serves; there is nothing to compare it with.")
        decision = await self._gate(run, dataset, state, champion, candidate, resolved.gate)
        return await self._apply(run, candidate, decision, resolved.gate)

    async def _parent(self, job: TuningJob) -> ServableVersion | None:
        if job.parent_version is None:
            return None
        return await self._registry.version(job.adapter, job.parent_version)

    # -- data -------------------------------------------------------------------------------

    async def _base_tokenizer(self) -> Any:
        async with self._tokenizer_lock:
            if self._tokenizer is None:
                self._tokenizer = await asyncio.to_thread(load_base_tokenizer, self._settings.base_model)
        return self._tokenizer

    async def _dataset(self, run: JobRun, *, min_new_examples: int) -> Dataset | None:
        job = run.job
        if job.training_file is not None:
            await self._stage(run, JobStage.curating, f"Reading training file {job.training_file}")
            return await self._from_files(run)
        if job.snapshot_id is not None:  # resumed: the same data as the first attempt
            manifest = await run_in_session(
                self._db, lambda s: get_manifest(session=s, snapshot_id=job.snapshot_id or "")
            )
            if manifest is None:
                raise InvalidJob(f"The job's dataset snapshot {job.snapshot_id} is gone.")
            snapshot = DatasetSnapshot(
                id=manifest.snapshot_id,
                path=Path(manifest.path),
                train_count=manifest.train_count,
                holdout_count=manifest.holdout_count,
            )
            return await self._with_eval_rows(snapshot, "the hold-out split of the adapter's curated traffic", True)
        await self._stage(run, JobStage.curating, f"Curating the logged traffic of {job.adapter}")
        return await self._curate(run, min_new_examples=min_new_examples)

    async def _curate(self, run: JobRun, *, min_new_examples: int) -> Dataset | None:
        job = run.job
        tokenizer = await self._base_tokenizer()
        policy = CurationPolicy(adapter=job.adapter, tenant=job.tenant)

        def work(session: Session) -> tuple[Any, set[str]]:
            previous = latest_manifest(session=session, adapter=job.adapter, tenant=job.tenant)
            seen = set(previous.source_request_ids) if previous else set()
            result = curate_snapshot(
                session=session,
                policy=policy,
                settings=self._settings.tuner,
                tokenizer=tokenizer,
                snapshot_root=self._settings.snapshot_root,
            )
            return result, seen

        result, seen = await run_in_session(self._db, work)
        report = result.report
        summary = (
            f"Curated {report.considered} logged requests: {report.train_count} to train on, "
            f"{report.holdout_count} held out; dropped {report.dropped or 'none'}; "
            f"PII redacted {report.pii_counts or 'none'}"
        )
        await self._event(run, summary, data={"curation": _curation_data(report)})
        if result.status == "skipped":
            return await self._skip(run, result.reason or "curation found nothing to train on")
        assert result.snapshot is not None
        new = len(set(report.source_request_ids) - seen)
        if result.status == "unchanged" and not job.force:
            return await self._skip(run, f"no new examples since snapshot {result.snapshot.id}")
        if result.status == "created" and new < min_new_examples:
            return await self._skip(run, f"{new} new examples since the last snapshot, {min_new_examples} needed")
        await self._update(run, snapshot_id=result.snapshot.id)
        return await self._with_eval_rows(
            result.snapshot, "the hold-out split of the adapter's curated traffic", trusted=True
        )

    async def _from_files(self, run: JobRun) -> Dataset:
        job = run.job
        files_dir, scope = self._settings.files_dir, job.tenant

        def read(session: Session) -> tuple[list[dict[str, Any]], list[dict[str, Any]], Any]:
            train = read_training_rows(session=session, files_dir=files_dir, file_id=job.training_file, scope=scope)
            validation = (
                read_training_rows(session=session, files_dir=files_dir, file_id=job.validation_file, scope=scope)
                if job.validation_file
                else None
            )
            trusted = latest_manifest(session=session, adapter=job.adapter, tenant=job.tenant)
            return train, validation or [], trusted

        train, validation, trusted = await run_in_session(self._db, read)
        train = [_with_source(row, f"{job.training_file}#{i + 1}") for i, row in enumerate(train)]
        if validation:
            holdout = [_with_source(row, f"{job.validation_file}#{i + 1}") for i, row in enumerate(validation)]
        else:
            fraction = self._settings.tuner.holdout_fraction
            split = [is_holdout(row["prompt"], fraction) for row in train]
            holdout = [row for row, held in zip(train, split, strict=True) if held]
            train = [row for row, held in zip(train, split, strict=True) if not held]
        if not train:
            raise InvalidJob("The training file leaves no examples to train on.", param="training_file")
        snapshot = await asyncio.to_thread(
            write_snapshot,
            train=train,
            holdout=holdout,
            root=self._settings.snapshot_root,
            adapter=job.adapter,
            tenant=job.tenant,
            manifest={"source": "files", "training_file": job.training_file, "validation_file": job.validation_file},
        )
        await self._update(run, snapshot_id=snapshot.id)
        await self._event(
            run, f"Training file read: {snapshot.train_count} examples, {snapshot.holdout_count} held out"
        )
        if trusted is not None:
            # DESIGN.md: the decision rests on the adapter's fixed set, never on the job's own data.
            trusted_snapshot = DatasetSnapshot(
                id=trusted.snapshot_id,
                path=Path(trusted.path),
                train_count=trusted.train_count,
                holdout_count=trusted.holdout_count,
            )
            dataset = await self._with_eval_rows(
                trusted_snapshot, f"the adapter's trusted evaluation set (snapshot {trusted.snapshot_id})", True
            )
            return Dataset(snapshot, dataset.eval_rows, dataset.eval_source, trusted=True)
        own = "the validation file" if validation else "a hold-out split of the training file"
        dataset = await self._with_eval_rows(snapshot, f"{own} (the adapter has no curated evaluation set yet)", False)
        return dataset

    async def _with_eval_rows(self, snapshot: DatasetSnapshot, source: str, trusted: bool) -> Dataset:
        def load() -> list[EvalRow]:
            return rows_from_examples(load_snapshot(snapshot.path)[HOLDOUT_SPLIT])

        return Dataset(snapshot=snapshot, eval_rows=await asyncio.to_thread(load), eval_source=source, trusted=trusted)

    # -- training -----------------------------------------------------------------------------

    async def _train_and_register(
        self,
        run: JobRun,
        dataset: Dataset,
        hyperparameters: Hyperparameters,
        parent: ServableVersion | None,
        state: AdapterState,
    ) -> ServableVersion:
        job = run.job
        await self._stage(
            run,
            JobStage.training,
            f"Training on {dataset.snapshot.train_count} examples "
            f"(from {parent.qualified_name if parent else 'the base model'})",
        )
        config = TrainingConfig(
            base_model=self._settings.base_model,
            dataset=dataset.snapshot.data_path,
            output_dir=self._settings.jobs_dir / job.public_id,
            hyperparameters=hyperparameters.model_copy(update={"seed": job.seed}),
            parent_adapter=parent.path if parent else None,
        )
        reporter = _EventReporter(self._db, run)
        process = TrainingProcess(
            config, on_event=reporter.on_event, grace_period_s=self._settings.tuner.cancel_grace_s
        )
        run.process = process
        try:
            outcome = await process.run()
        except asyncio.CancelledError:
            await asyncio.shield(process.cancel())  # never leave a child training behind
            raise
        finally:
            run.process = None
        if outcome.status == TrainingStatus.cancelled:
            if run.cancel_requested:
                raise JobCancelled(outcome.reason or "cancelled")
            raise asyncio.CancelledError  # a shutdown stopped it: resume later
        if outcome.status == TrainingStatus.failed or outcome.result is None:
            raise TrainingFailed(outcome.reason or "training failed")
        result = outcome.result
        metrics = result.metrics
        trained_tokens = (
            int(metrics.tokens_per_s * metrics.runtime_s) if metrics.tokens_per_s and metrics.runtime_s else None
        )
        await self._stage(run, JobStage.registering, "Registering the candidate")
        candidate = await self._registry.register_candidate(
            job.adapter,
            result.adapter_dir,
            tenant=job.tenant,
            parent_version=parent.version if parent else None,
            dataset_snapshot_id=dataset.snapshot.id,
            metrics={
                "training": metrics.model_dump(mode="json"),
                "hyperparameters": result.hyperparameters.model_dump(mode="json"),
                "init": result.init,
                "init_reason": result.init_reason,
                "job": job.public_id,
            },
            label=f"fine-tuning job {job.public_id}",
        )
        await self._update(
            run,
            result_version=candidate.version,
            fine_tuned_model=candidate.qualified_name,
            trained_tokens=trained_tokens,
        )
        await self._event(run, f"Registered candidate {candidate.qualified_name}")
        return candidate

    # -- the gate -------------------------------------------------------------------------------

    async def _gate(
        self,
        run: JobRun,
        dataset: Dataset,
        state: AdapterState,
        champion: ServableVersion | None,
        candidate: ServableVersion,
        policy: GatePolicy,
    ) -> GateDecision:
        name = champion.qualified_name if champion else "the base model"
        await self._stage(
            run,
            JobStage.evaluating,
            f"Scoring {candidate.qualified_name} against {name} on {len(dataset.eval_rows)} rows of "
            f"{dataset.eval_source}",
        )
        checks = TaskChecks.from_adapter(state.task_checks)
        champion_scores, candidate_scores = await compare(
            self._registry.scorer(),
            dataset.eval_rows,
            champion=champion,
            candidate=candidate,
            checks=checks,
            forgetting=load_forgetting_set(),
        )
        decision = decide(champion_scores, candidate_scores, policy)
        reasons = list(decision.reasons)
        if not dataset.trusted:
            reasons.append(f"note: judged on {dataset.eval_source}")
        numbers = {
            **decision.numbers,
            "champion_version": champion.version if champion else None,
            "candidate_version": candidate.version,
            "evaluation_set": dataset.eval_source,
            "evaluation_set_trusted": dataset.trusted,
        }
        return decision.model_copy(update={"reasons": reasons, "numbers": numbers})

    async def _apply(
        self, run: JobRun, candidate: ServableVersion, decision: GateDecision, policy: GatePolicy
    ) -> TuningJob:
        job = run.job
        gate = decision.to_metrics()
        await self._registry.record_gate(job.adapter, candidate.version, gate)
        await self._update(run, gate=gate)
        lines = "\n".join(decision.reasons)
        await self._stage(run, JobStage.promoting, f"Gate verdict: {decision.verdict.value}\n{lines}")
        if decision.verdict == Verdict.promote:
            await self._registry.promote(job.adapter, candidate.version)
            outcome, message = JobOutcome.promoted, f"{candidate.qualified_name} promoted: it now serves {job.adapter}"
        elif decision.verdict == Verdict.canary:
            await self._registry.start_canary(job.adapter, candidate.version, policy.canary_weight)
            outcome = JobOutcome.canary
            message = f"{candidate.qualified_name} serves {policy.canary_weight:.0%} of {job.adapter} as a canary"
        else:
            failed = [line for line in decision.reasons if line.startswith("failed:")]
            await self._registry.reject(job.adapter, candidate.version, "; ".join(failed) or "rejected by the gate")
            outcome, message = JobOutcome.rejected, f"{candidate.qualified_name} rejected by the gate"
        return await self._finish(run, JobStatus.succeeded, message, outcome=outcome)

    # -- endings ---------------------------------------------------------------------------------

    async def _skip(self, run: JobRun, reason: str) -> None:
        await self._finish(run, JobStatus.succeeded, f"Skipped: {reason}", outcome=JobOutcome.skipped)
        return None

    async def _reject_unjudged(self, run: JobRun, reason: str) -> None:
        """A candidate that was registered but never judged must not stay promotable by accident."""
        candidate = run.job.result_version
        if candidate is None or run.job.gate is not None:
            return
        try:
            await self._registry.reject(run.job.adapter, candidate, reason)
        except Exception:
            logger.exception("could not reject %s@%s (%s)", run.job.adapter, candidate, reason)

    async def _fail(self, run: JobRun, code: str, message: str, param: str | None = None) -> TuningJob:
        await self._reject_unjudged(run, f"its job failed: {message[:500]}")
        return await self._finish(run, JobStatus.failed, message, level="error", error=(code, message, param))

    async def _finish(self, run: JobRun, status: JobStatus, message: str, **fields: Any) -> TuningJob:
        def work(session: Session) -> TuningJob:
            job = crud.get_job(session=session, public_id=run.public_id)
            return crud.finish_job(session=session, job=job, status=status, message=message, **fields)

        run.job = await run_in_session(self._db, work)
        logger.info("fine-tuning job %s %s: %s", run.public_id, status.value, message.splitlines()[0])
        return run.job


class _EventReporter:
    """Training events become job events (and checkpoint rows), in order, off the event loop."""

    def __init__(self, db: Engine, run: JobRun) -> None:
        self._db = db
        self._run = run

    async def on_event(self, event: TrainingEvent) -> None:
        run = self._run

        def work(session: Session) -> None:
            job = crud.get_job(session=session, public_id=run.public_id)
            if event.type == "step":
                crud.add_event(
                    session=session,
                    job=job,
                    type="metrics",
                    message=f"Step {event.step}/{event.max_steps}: training loss={_fmt(event.loss)}",
                    data=_json_safe(
                        {
                            "step": event.step,
                            "total_steps": event.max_steps,
                            "train_loss": event.loss,
                            "learning_rate": event.learning_rate,
                            "tokens_per_s": event.tokens_per_s,
                            "peak_rss_bytes": event.peak_rss_bytes,
                            "peak_gpu_bytes": event.peak_gpu_bytes,
                            "epoch": event.epoch,
                        }
                    ),
                )
            elif event.type == "eval":
                crud.add_event(
                    session=session,
                    job=job,
                    type="metrics",
                    message=f"Step {event.step}: hold-out loss={_fmt(event.eval_loss)}",
                    data=_json_safe(
                        {"step": event.step, "total_steps": event.max_steps, "valid_loss": event.eval_loss}
                    ),
                )
            elif event.type == "checkpoint" and event.checkpoint and event.step is not None:
                crud.add_checkpoint(
                    session=session,
                    job=job,
                    step=event.step,
                    metrics=_json_safe({"step": event.step, "train_loss": event.loss, "valid_loss": event.eval_loss}),
                    path=event.checkpoint,
                )
                crud.add_event(session=session, job=job, message=f"Checkpoint saved at step {event.step}")
            elif event.type == "error":
                crud.add_event(session=session, job=job, level="error", message=event.message or "training error")
            elif event.type == "result" and event.result is not None:
                m = event.result.metrics
                crud.add_event(
                    session=session,
                    job=job,
                    message=(
                        f"Training finished after {m.global_step} steps in {m.runtime_s:.0f} s: "
                        f"training loss {_fmt(m.train_loss)}, hold-out loss {_fmt(m.eval_loss)}"
                        + (" (stopped early)" if m.stopped_early else "")
                    ),
                )
            elif event.message:
                crud.add_event(session=session, job=job, message=event.message)
            session.commit()

        await run_in_session(self._db, work)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.4f}"


def _json_safe(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None and not (isinstance(v, float) and not math.isfinite(v))}


def _with_source(row: dict[str, Any], source: str) -> dict[str, Any]:
    return {"prompt": row["prompt"], "completion": row["completion"], "request_id": source}


def _curation_data(report: Any) -> dict[str, Any]:
    return {
        "considered": report.considered,
        "train": report.train_count,
        "holdout": report.holdout_count,
        "dropped": report.dropped,
        "pii_counts": report.pii_counts,
    }


def _span_attributes(job: TuningJob) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "switchyard.adapter": job.adapter,
        "switchyard.job.id": job.public_id,
        "switchyard.job.trigger": str(job.trigger),
        "switchyard.job.attempt": job.attempts,
    }
    if job.tenant is not None:
        attributes["switchyard.tenant"] = job.tenant
    return attributes


def _set_outcome(job: TuningJob, *spans: Span | None) -> None:
    """The job's ending on its span and on its last stage's; a failed job is an error of both."""
    for span in spans:
        if span is None:
            continue
        span.set_attribute("switchyard.job.status", str(job.status))
        if job.outcome is not None:
            span.set_attribute("switchyard.job.outcome", str(job.outcome))
        if job.result_version is not None:
            span.set_attribute("switchyard.adapter_version", job.result_version)
        if job.status == JobStatus.failed:
            span.set_status(StatusCode.ERROR, job.error_code or "failed")
