"""The one settings object: read once at start, then handed to each package as its section.

Environment variables are prefixed ``SWITCHYARD_``; a section's field adds the section name and
a double underscore, e.g. ``SWITCHYARD_ENGINE__MAX_LORAS=8`` or ``SWITCHYARD_SERVER__PORT=9000``.
Every package receives the section it needs (injected), and none builds settings of its own.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Values that people paste from examples; refused as secrets outside development.
PLACEHOLDER_SECRETS = frozenset({"changethis", "change-me", "changeme", "secret", "admin", "password"})
MIN_SECRET_LENGTH = 16

DEMO_MODEL_DIRNAME = "demo-base"

# vLLM's LoRA kernels are compiled for these ranks only.
SUPPORTED_MAX_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


class Section(BaseModel):
    """A settings section: unknown keys are refused, so a misspelt variable fails loudly."""

    model_config = {"extra": "forbid"}


class ServerSettings(Section):
    """The HTTP server and admission control."""

    host: str = "127.0.0.1"
    """Interface ``switchyard serve`` binds to."""

    port: int = Field(default=8000, ge=1, le=65535)
    """TCP port ``switchyard serve`` listens on."""

    max_queued_requests: int = Field(default=128, ge=1, le=100_000)
    """Sequences admitted at once (running plus waiting); past it the gateway answers 429."""

    retry_after_s: int = Field(default=1, ge=1, le=3600)
    """``Retry-After`` seconds sent with a 429."""


class EngineSettings(Section):
    """vLLM engine limits. An adapter must fit them to be registered."""

    served_model_name: str | None = Field(default=None, min_length=1, max_length=256)
    """Name clients use for the base model. Default: the hub id, or the folder name of a local path."""

    max_loras: int = Field(default=4, ge=1, le=256)
    """Adapters the engine holds in its LoRA slots at once (one batch may mix them)."""

    max_cpu_loras: int = Field(default=16, ge=1, le=4096)
    """Adapters kept in the engine's CPU cache, so that re-loading one skips the disk."""

    max_lora_rank: int = Field(default=16, ge=1, le=512)
    """Largest adapter rank the engine accepts; adapters above it are refused at registration."""

    max_model_len: int = Field(default=2048, ge=32, le=1_048_576)
    """Longest prompt plus completion, in tokens."""

    max_num_seqs: int = Field(default=32, ge=1, le=4096)
    """Sequences the engine schedules in one step."""

    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    """Weights and activations dtype passed to vLLM."""

    kv_cache_memory_bytes: int | None = Field(default=None, ge=1 << 20)
    """KV cache size. Default: 1 GiB on CPU; on GPU, vLLM sizes it from ``gpu_memory_utilization``."""

    gpu_memory_utilization: float = Field(default=0.9, gt=0.0, le=1.0)
    """Fraction of GPU memory vLLM may use (GPU only)."""

    tensor_parallel_size: int = Field(default=1, ge=1, le=64)
    """GPUs one engine spans."""

    seed: int = Field(default=0, ge=0, le=2**63 - 1)
    """Engine seed, so a request's own ``seed`` reproduces across restarts."""

    restart_backoff_s: float = Field(default=2.0, gt=0.0, le=300.0)
    """First wait before restarting an engine that died (doubles per failed attempt)."""

    restart_backoff_max_s: float = Field(default=60.0, gt=0.0, le=3600.0)
    """Longest wait between engine restart attempts."""

    adapter_call_timeout_s: float = Field(default=300.0, gt=0.0, le=3600.0)
    """Longest wait for the engine to load, unload or pin an adapter; past it the call is given up
    (an engine that hangs without dying must not wedge registry changes)."""

    warm_retry_max_s: float = Field(default=30.0, gt=0.0, le=3600.0)
    """Longest wait between retries of a failed adapter warm-up (the replica reports it lags meanwhile)."""

    @field_validator("max_lora_rank")
    @classmethod
    def _supported_rank(cls, value: int) -> int:
        if value not in SUPPORTED_MAX_LORA_RANKS:
            raise ValueError(f"max_lora_rank must be one of {SUPPORTED_MAX_LORA_RANKS}")
        return value


class TrafficLogSettings(Section):
    """The spool on the request path and the drain into the database."""

    spool_fsync: bool = False
    """fsync each append; only needed to survive a machine (not process) crash."""

    batch_size: int = Field(default=256, ge=1, le=10_000)
    """Records moved from the spool to the database per insert."""

    flush_interval_s: float = Field(default=0.5, gt=0.0, le=60.0)
    """How often the drain looks for new records."""

    retry_max_s: float = Field(default=30.0, gt=0.0, le=3600.0)
    """Longest wait between drain retries while the database is down."""

    max_field_chars: int = Field(default=1_000_000, ge=1024, le=100_000_000)
    """Longest text kept in one logged field; longer text is cut (and marked) so any row is storable."""

    read_wait_s: float = Field(default=2.0, ge=0.0, le=60.0)
    """How long an admin read or a feedback lookup waits for rows still in the spool before answering."""


class AuthSettings(Section):
    """API-key lookups."""

    cache_ttl_s: float = Field(default=10.0, ge=0.0, le=3600.0)
    """How long a key lookup is trusted; a revocation by another process takes effect within it."""

    cache_stale_s: float = Field(default=3600.0, ge=0.0, le=86_400.0)
    """While the database is down, how long a cached key keeps working."""

    cache_max_keys: int = Field(default=10_000, ge=1, le=10_000_000)
    """Valid keys kept in the cache (least recently used are dropped first). Unknown keys are never cached."""


class RegistrySettings(Section):
    """The adapter registry and its artifact store."""

    max_adapter_bytes: int = Field(default=512 * 1024 * 1024, ge=1024)
    """Largest adapter folder (or unpacked archive) accepted, in bytes."""

    artifact_store: str | None = Field(default=None, max_length=1024)
    """Where versions are stored: a folder, or an fsspec URL such as ``s3://bucket/adapters``.
    Default: ``<data_dir>/adapters``. Replicas that scale out must share it."""

    import_roots: list[Path] = Field(default_factory=list)
    """Server folders the admin API may import adapters from (``source`` paths); none by default,
    so over HTTP only uploads and ``hf://`` work until an operator names a root."""

    poll_interval_s: float = Field(default=2.0, gt=0.0, le=300.0)
    """How often a gateway re-reads the registry (changes made by other processes)."""


class DriftSettings(Section):
    """Drift monitoring: each adapter's recent traffic against its reference, with Evidently."""

    interval_s: int | None = Field(default=3600, ge=60, le=31 * 86_400)
    """Check every adapter this often (on the tuner's scheduler, so only where
    ``SWITCHYARD_TUNER__SCHEDULER_ENABLED`` is on); None: on demand only."""

    window_rows: int = Field(default=1000, ge=10, le=10_000_000)
    """The current window: the adapter's most recent this many successful requests (unless
    ``window_s`` is set)."""

    window_s: int | None = Field(default=None, ge=60, le=366 * 86_400)
    """The current window by time instead: the requests of the last this many seconds."""

    min_rows: int = Field(default=50, ge=10, le=1_000_000)
    """Fewest rows a window (and a column, counting its non-empty values) needs to be compared;
    with fewer the result (or the column) is ``insufficient_data``."""

    sample_size: int = Field(default=2000, ge=100, le=1_000_000)
    """A window with more rows is compared through a random sample of this many (reported as the
    result's ``sample_size``); it bounds a run's time whatever the traffic."""

    false_alarm_rate: float = Field(default=0.01, gt=0.0, le=0.5)
    """Most chance that a window of unchanged traffic is flagged as drifted (hourly checks at 0.01:
    about one false alarm per adapter in four days). It is split evenly over the columns that
    decide the verdict (Bonferroni), so each column's test runs at this divided by their number."""

    alert_on_performance: bool = False
    """Let drift in latency or time to first token alone make a window drifted. Off by default:
    they follow the machine's load as much as the traffic, and a refresh of the adapter cannot
    fix them; their per-column results are stored and shown either way."""

    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    """Seed of the window sampling, so a run over the same rows gives the same result."""

    webhook_url: SecretStr | None = Field(default=None, min_length=8, max_length=2048)
    """``http(s)://`` URL POSTed a JSON alert (``{"type": "drift.detected", ...}``) for every
    drifted verdict; unset: none. A secret: chat webhooks carry their token in the URL."""

    webhook_timeout_s: float = Field(default=5.0, gt=0.0, le=60.0)
    """Longest wait for the webhook per attempt."""

    webhook_attempts: int = Field(default=4, ge=1, le=20)
    """Tries per alert (with exponential backoff) before it is given up and logged."""

    workspace_dir: Path | None = None
    """Evidently workspace the snapshots go to (one project per adapter), for ``evidently ui
    --workspace``. Default: ``<data_dir>/evidently``."""

    reports_dir: Path | None = None
    """Where each result's HTML report is kept. Default: ``<data_dir>/drift-reports``."""

    reports_kept: int = Field(default=200, ge=1, le=100_000)
    """HTML reports kept per adapter; older ones are deleted (their results stay)."""

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(("http://", "https://")):
            raise ValueError("webhook_url must be an http:// or https:// URL")
        return value


class MonitoringSettings(Section):
    """Metrics, traces and alerts."""

    spool_alert_bytes: int = Field(default=64 * 1024 * 1024, ge=1)
    """Traffic-log backlog (bytes not yet in the database) above which ``switchyard_log_spool_alert`` is 1."""

    metrics_token: SecretStr | None = None
    """Read-only bearer token for ``GET /metrics`` (Prometheus). In development, when unset, one is
    generated into ``<data_dir>/metrics.key``; elsewhere it must be set."""

    drift: DriftSettings = Field(default_factory=DriftSettings)
    """Drift monitoring (``SWITCHYARD_MONITORING__DRIFT__*``)."""

    otlp_endpoint: str | None = Field(default=None, min_length=1, max_length=2048, pattern=r"^https?://")
    """Base URL of an OTLP/HTTP (protobuf) collector, e.g. ``http://otel-collector:4318``; spans go
    to ``<url>/v1/traces``. Unset: no span leaves the process. Headers and certificates come from
    the standard ``OTEL_EXPORTER_OTLP_*`` variables."""

    otlp_timeout_s: float = Field(default=10.0, gt=0.0, le=120.0)
    """Longest wait for the collector per export batch (exports run off the request path)."""

    service_name: str = Field(default="switchyard", min_length=1, max_length=128)
    """``service.name`` of this process's spans (give each deployment its own)."""

    trace_sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)
    """Share of new traces recorded; a request that arrives with a ``traceparent`` follows the
    caller's sampling decision instead."""

    gauge_cache_s: float = Field(default=5.0, ge=0.0, le=300.0)
    """How long a gauge read from the database (training jobs by status, drift share) is reused
    between scrapes."""


PiiEntity = Literal["EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IP_ADDRESS", "IBAN_CODE", "API_KEY"]
"""What curation can redact (Presidio's entity names, plus ``API_KEY`` for secrets)."""

PII_ENTITIES: tuple[PiiEntity, ...] = (
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IP_ADDRESS",
    "IBAN_CODE",
    "API_KEY",
)


class TunerSettings(Section):
    """Curation of logged traffic into dataset snapshots, training jobs, training files and the
    refresh schedule."""

    min_examples: int = Field(default=20, ge=1, le=10_000_000)
    """Fewest curated examples worth a snapshot; with fewer, curation is skipped (not failed)."""

    holdout_fraction: float = Field(default=0.15, ge=0.0, lt=1.0)
    """Share of prompts held out for evaluation, chosen by a hash of the prompt. Changing it moves
    prompts between the splits, so keep it fixed for an adapter."""

    near_duplicate_threshold: float = Field(default=0.85, gt=0.0, le=1.0)
    """Jaccard similarity of two prompts' character 5-gram sets (candidates found by MinHash LSH) at
    or above which they count as copies and only one is kept; 1.0 removes exact copies only. Prompts
    built from one template with a different word each stay below the default."""

    minhash_permutations: int = Field(default=128, ge=16, le=1024)
    """MinHash permutations: more estimate similarity more precisely, and cost more."""

    redact_pii: bool = True
    """Replace personal data and secrets in every message with ``<ENTITY_TYPE>`` before anything
    is written."""

    pii_entities: list[PiiEntity] = Field(default_factory=lambda: list(PII_ENTITIES), min_length=1)
    """Which kinds of personal data and secrets to redact."""

    max_prompt_tokens: int = Field(default=1536, ge=1, le=1_048_576)
    """Longest prompt kept, in base-model tokens with the chat template applied."""

    max_completion_tokens: int = Field(default=512, ge=1, le=1_048_576)
    """Longest answer kept, in base-model tokens."""

    snapshot_dir: Path | None = None
    """Where dataset snapshots are written. Default: ``<data_dir>/datasets``."""

    preset: Literal["auto", "default", "demo"] = "auto"
    """Hyperparameters of adapters without their own: ``default`` (the field's QLoRA defaults),
    ``demo`` (what makes the tiny random demo model learn), ``auto`` (``demo`` on the demo base)."""

    max_concurrent_trainings: int = Field(default=1, ge=1, le=64)
    """Training runs at once on this machine (each is a child process holding the model)."""

    worker_poll_interval_s: float = Field(default=1.0, gt=0.0, le=60.0)
    """How often the job worker looks for queued jobs and cancel requests."""

    heartbeat_stale_s: float = Field(default=60.0, ge=5.0, le=86_400.0)
    """A running job whose worker has not reported for this long is taken to be orphaned (its
    process died) and is queued again; it resumes from its last checkpoint."""

    cancel_grace_s: float = Field(default=30.0, gt=0.0, le=3600.0)
    """How long a cancelled training may take to stop at a step boundary before it is killed."""

    jobs_dir: Path | None = None
    """Where training runs write checkpoints and adapters. Default: ``<data_dir>/tuning/jobs``."""

    files_dir: Path | None = None
    """Where uploaded training files are kept. Default: ``<data_dir>/tuning/files``."""

    max_file_bytes: int = Field(default=256 * 1024 * 1024, ge=1024, le=1 << 40)
    """Largest training file accepted by ``/v1/files``."""

    max_file_lines: int = Field(default=1_000_000, ge=1, le=100_000_000)
    """Most examples in one training file."""

    scheduler_enabled: bool = True
    """Run each adapter's refresh schedule in this process (turn off on serving-only replicas)."""

    misfire_grace_s: int = Field(default=3600, ge=1, le=7 * 86_400)
    """A scheduled refresh that could not start on time (the process was down) still runs if it
    is at most this late; several missed runs coalesce into one."""


class Settings(BaseSettings):
    """Read from ``SWITCHYARD_*`` environment variables (or a ``.env`` file)."""

    model_config = SettingsConfigDict(
        env_prefix="SWITCHYARD_", env_file=".env", env_nested_delimiter="__", extra="ignore"
    )

    environment: Literal["development", "staging", "production"] = "development"
    """Deployment stage. Outside ``development`` explicit, non-placeholder secrets are required."""

    data_dir: Path = Path("data")
    """Folder for the SQLite database, the adapter store, the traffic-log spool and the demo model."""

    database_url: str | None = None
    """SQLAlchemy URL. Default: ``sqlite:///<data_dir>/switchyard.db`` (WAL mode)."""

    base_model: str | None = None
    """Local path or hub id of the base model. Default: the tiny demo model, built on first start."""

    admin_key: SecretStr | None = None
    """Admin bearer key. In development, when unset, one is generated into ``<data_dir>/admin.key``."""

    server: ServerSettings = Field(default_factory=ServerSettings)
    engine: EngineSettings = Field(default_factory=EngineSettings)
    traffic_log: TrafficLogSettings = Field(default_factory=TrafficLogSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    registry: RegistrySettings = Field(default_factory=RegistrySettings)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    tuner: TunerSettings = Field(default_factory=TunerSettings)

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Settings:
        if self.environment == "development":
            return self
        for variable, secret in (
            ("SWITCHYARD_ADMIN_KEY", self.admin_key),
            ("SWITCHYARD_MONITORING__METRICS_TOKEN", self.monitoring.metrics_token),
        ):
            value = secret.get_secret_value() if secret else ""
            if not value or value.lower() in PLACEHOLDER_SECRETS or len(value) < MIN_SECRET_LENGTH:
                raise ValueError(
                    f"{variable} must be set to a strong secret ({MIN_SECRET_LENGTH}+ characters) "
                    f"when SWITCHYARD_ENVIRONMENT={self.environment}"
                )
        return self

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir.resolve() / 'switchyard.db'}"

    @property
    def admin_key_file(self) -> Path:
        return self.data_dir / "admin.key"

    @property
    def metrics_token_file(self) -> Path:
        return self.data_dir / "metrics.key"

    @property
    def demo_model_dir(self) -> Path:
        return self.data_dir / "models" / DEMO_MODEL_DIRNAME

    @property
    def resolved_base_model(self) -> str:
        return self.base_model or str(self.demo_model_dir.resolve())

    @property
    def uses_demo_model(self) -> bool:
        return self.base_model is None

    @property
    def served_model_name(self) -> str:
        """The base model's name in the API."""
        if self.engine.served_model_name:
            return self.engine.served_model_name
        path = Path(self.resolved_base_model)
        return path.name if path.is_dir() else self.resolved_base_model

    @property
    def snapshot_dir(self) -> Path:
        """Where curation writes dataset snapshots."""
        return self.tuner.snapshot_dir or self.data_dir / "datasets"

    @property
    def jobs_dir(self) -> Path:
        """Where training runs write their checkpoints and adapters."""
        return self.tuner.jobs_dir or self.data_dir / "tuning" / "jobs"

    @property
    def files_dir(self) -> Path:
        """Where uploaded training files are kept."""
        return self.tuner.files_dir or self.data_dir / "tuning" / "files"

    @property
    def training_preset(self) -> Literal["default", "demo"]:
        """The hyperparameter preset of adapters without their own."""
        if self.tuner.preset == "auto":
            return "demo" if self.uses_demo_model else "default"
        return self.tuner.preset

    @property
    def drift_workspace_dir(self) -> Path:
        """The Evidently workspace drift snapshots go to."""
        return self.monitoring.drift.workspace_dir or self.data_dir / "evidently"

    @property
    def drift_reports_dir(self) -> Path:
        """Where drift results' HTML reports are kept."""
        return self.monitoring.drift.reports_dir or self.data_dir / "drift-reports"

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"

    @property
    def scratch_dir(self) -> Path:
        return self.data_dir / "scratch"

    def resolve_admin_key(self) -> str:
        """The admin key: configured, or (development only) read from or generated into its file."""
        return _configured_or_generated(self.admin_key, self.admin_key_file, prefix="sy-admin-")

    def resolve_metrics_token(self) -> str:
        """The ``/metrics`` token: configured, or (development only) read from or generated into its file."""
        return _configured_or_generated(self.monitoring.metrics_token, self.metrics_token_file, prefix="sy-metrics-")


def _configured_or_generated(configured: SecretStr | None, path: Path, *, prefix: str) -> str:
    if configured is not None:
        return configured.get_secret_value()
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = prefix + secrets.token_urlsafe(32)
    path.touch(mode=0o600)
    path.write_text(secret + "\n")
    return secret
