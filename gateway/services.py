"""The service container the app builds at start and routers read through dependencies."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from adapters.store import ArtifactStore
from gateway.admin.tuning_policy_service import TuningPolicyService
from gateway.auth.service import AuthService
from gateway.chat.service import ChatService
from gateway.completions.service import CompletionService
from gateway.drift.service import DriftService
from gateway.engine.admission import AdmissionController
from gateway.engine.protocol import EngineClient
from gateway.engine.tokenizer import PromptTokenizer
from gateway.feedback.service import FeedbackService
from gateway.files.service import FilesService
from gateway.fine_tuning.service import FineTuningService
from gateway.registry.service import RegistryService
from gateway.routing import ModelRouter
from gateway.traffic.drain import LogDrain
from gateway.traffic.service import TrafficLogService
from monitoring.metrics import GatewayMetrics
from monitoring.tracing import Tracing
from switchyard.config import Settings
from tuner.jobs.worker import JobWorker
from tuner.scheduling import RefreshScheduler


@dataclass
class Services:
    settings: Settings
    auth: AuthService
    db: Engine
    store: ArtifactStore
    engine: EngineClient
    admission: AdmissionController
    router: ModelRouter
    drain: LogDrain
    metrics: GatewayMetrics
    tracing: Tracing
    """The app's tracer provider (a no-op one unless an OTLP endpoint or an exporter is given)."""
    tokenizer: PromptTokenizer
    """Shared by the endpoint services; its thread is closed at shutdown."""
    chat: ChatService
    completions: CompletionService
    feedback: FeedbackService
    traffic: TrafficLogService
    registry: RegistryService
    fine_tuning: FineTuningService
    tuning_worker: JobWorker
    """Runs the queued fine-tuning jobs (training children, the gate, promotion)."""
    files: FilesService
    tuning_policies: TuningPolicyService
    refresh_scheduler: RefreshScheduler | None
    """Queues each adapter's scheduled refresh (None: ``SWITCHYARD_TUNER__SCHEDULER_ENABLED`` is off)."""
    drift: DriftService
    """Drift checks (on demand, and every adapter on the refresh scheduler) and their history."""
