"""Gateway settings: the engine's limits, admission control and the traffic log."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from adapters.config import AdapterSettings
from adapters.validation import EngineLimits

# vLLM's LoRA kernels are compiled for these ranks only.
SUPPORTED_MAX_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


class GatewaySettings(BaseSettings):
    """Read from ``SWITCHYARD_*`` environment variables (or a ``.env`` file)."""

    model_config = SettingsConfigDict(env_prefix="SWITCHYARD_", env_file=".env", extra="ignore")

    host: str = "127.0.0.1"
    """Interface ``switchyard serve`` binds to."""

    port: int = Field(default=8000, ge=1, le=65535)
    """TCP port ``switchyard serve`` listens on."""

    served_model_name: str | None = None
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

    max_queued_requests: int = Field(default=128, ge=1, le=100_000)
    """Sequences admitted at once (running plus waiting); past it the gateway answers 429."""

    retry_after_s: int = Field(default=1, ge=1, le=3600)
    """``Retry-After`` seconds sent with a 429."""

    dtype: str = "auto"
    """Weights and activations dtype passed to vLLM (``auto``, ``bfloat16``, ``float16``, ``float32``)."""

    kv_cache_memory_bytes: int | None = Field(default=None, ge=1 << 20)
    """KV cache size. Default: 1 GiB on CPU; on GPU, vLLM sizes it from ``gpu_memory_utilization``."""

    gpu_memory_utilization: float = Field(default=0.9, gt=0.0, le=1.0)
    """Fraction of GPU memory vLLM may use (GPU only)."""

    tensor_parallel_size: int = Field(default=1, ge=1, le=64)
    """GPUs one engine spans."""

    seed: int = 0
    """Engine seed, so a request's own ``seed`` reproduces across restarts."""

    log_spool_fsync: bool = False
    """fsync each traffic-log append; only needed to survive a machine (not process) crash."""

    log_batch_size: int = Field(default=256, ge=1, le=10_000)
    """Traffic-log records moved from the spool to the database per insert."""

    log_flush_interval_s: float = Field(default=0.5, gt=0.0, le=60.0)
    """How often the traffic-log drain looks for new records."""

    log_retry_max_s: float = Field(default=30.0, gt=0.0, le=3600.0)
    """Longest wait between drain retries while the database is down."""

    auth_cache_ttl_s: float = Field(default=10.0, ge=0.0, le=3600.0)
    """How long a key lookup is trusted; a revocation by another process takes effect within it."""

    auth_cache_stale_s: float = Field(default=3600.0, ge=0.0, le=86_400.0)
    """While the database is down, how long a cached key keeps working."""

    registry_poll_interval_s: float = Field(default=2.0, gt=0.0, le=300.0)
    """How often the router re-reads the adapter registry (changes made by other processes)."""

    def adapter_limits(self, adapter_settings: AdapterSettings) -> EngineLimits:
        """What an adapter must fit to be registered for this engine."""
        return EngineLimits(max_lora_rank=self.max_lora_rank, max_adapter_bytes=adapter_settings.max_adapter_bytes)

    @field_validator("max_lora_rank")
    @classmethod
    def _supported_rank(cls, value: int) -> int:
        if value not in SUPPORTED_MAX_LORA_RANKS:
            raise ValueError(f"max_lora_rank must be one of {SUPPORTED_MAX_LORA_RANKS}")
        return value
