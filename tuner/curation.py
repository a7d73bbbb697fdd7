"""Curation: one adapter's logged traffic, for one tenant, becomes a dataset snapshot.

The steps, in order, each dropping rows with a reason the manifest counts:

1. selection: chat requests with content and an answer to learn (see ``tuner.selection``);
2. PII redaction in every message, before anything is written (``tuner.pii``);
3. token-length bounds with the base model's tokenizer (``tuner.lengths``);
4. exact and near-duplicate removal over the prompt, keeping a reviewer's correction, else the
   latest copy (``tuner.dedup``);
5. at most ``max_examples``, the newest;
6. the hold-out split by a hash of the redacted prompt (``tuner.split``).

Redaction comes first, so copies that differ only in an e-mail address are copies, and the split
hash never sees personal data. Length bounds come before deduplication, so a copy that is too long
never shadows one that fits. An exact prompt always lands on the same side of the split; when a
newer near copy replaces the kept one of a group, the group may change sides (the old copy leaves
the snapshot, so no near copy is ever on both sides).

The snapshot is written (``tuner.snapshots``) and described by a manifest row (``tuner.models``).
Too few examples is a normal outcome, reported as ``skipped``, not an error.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sqlmodel import Session

from switchyard.config import TunerSettings
from tuner.dedup import deduplicate
from tuner.lengths import too_long
from tuner.manifests import create_manifest, get_manifest, latest_manifest
from tuner.models import CurationManifestCreate, CurationManifestPublic
from tuner.pii import PiiRedactor
from tuner.selection import Candidate, CurationPolicy, select_candidates
from tuner.snapshots import DatasetSnapshot, snapshot_id, write_snapshot
from tuner.split import is_holdout

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = ["CurationPolicy", "CurationReport", "CurationResult", "curate_snapshot"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CurationReport:
    """What one curation saw and did, whether or not it wrote a snapshot."""

    window_start: datetime | None
    window_end: datetime
    considered: int
    dropped: dict[str, int]
    pii_counts: dict[str, int]
    """Redactions per entity type in the examples kept (not in the rows dropped later)."""
    train_count: int
    holdout_count: int
    source_request_ids: list[str]


@dataclass(frozen=True)
class CurationResult:
    status: Literal["created", "unchanged", "skipped"]
    """``created``: a new snapshot; ``unchanged``: the same content as an existing snapshot (nothing
    new to train on); ``skipped``: no snapshot, see ``reason``."""
    report: CurationReport
    reason: str | None = None
    snapshot: DatasetSnapshot | None = None
    manifest: CurationManifestPublic | None = None


def curate_snapshot(
    *,
    session: Session,
    policy: CurationPolicy,
    settings: TunerSettings,
    tokenizer: PreTrainedTokenizerBase,
    snapshot_root: Path,
) -> CurationResult:
    """Curate ``policy.adapter``'s traffic of ``policy.tenant`` into a snapshot under ``snapshot_root``."""
    since, until = _window(session, policy)
    policy = replace(policy, since=since, until=until)
    selection = select_candidates(session=session, policy=policy)
    dropped = Counter(selection.dropped)
    candidates, pii = _redacted(selection.candidates, settings)
    candidates = _within_bounds(candidates, tokenizer, settings, dropped)
    candidates = _deduplicated(candidates, settings, dropped)
    candidates = _newest(candidates, policy.max_examples, dropped)
    held_out = [is_holdout(c.prompt, settings.holdout_fraction) for c in candidates]
    train = [c for c, held in zip(candidates, held_out, strict=True) if not held]
    holdout = [c for c, held in zip(candidates, held_out, strict=True) if held]
    report = CurationReport(
        window_start=since,
        window_end=until,
        considered=selection.considered,
        dropped=dict(sorted((+dropped).items())),
        pii_counts=dict(sorted(sum((pii[c.request_id] for c in candidates), Counter()).items())),
        train_count=len(train),
        holdout_count=len(holdout),
        source_request_ids=[c.request_id for c in candidates],
    )
    if len(candidates) < settings.min_examples:
        reason = f"too few examples: {len(candidates)} after curation, {settings.min_examples} needed"
        return _skipped(policy, report, reason)
    if not train:
        return _skipped(policy, report, "every curated example fell in the hold-out split")
    return _store(session, policy, settings, tokenizer, snapshot_root, report, train, holdout)


def _window(session: Session, policy: CurationPolicy) -> tuple[datetime | None, datetime]:
    # A fixed end: rows the log drain writes while curation runs wait for the next window.
    until = policy.until or datetime.now(UTC)
    since = policy.since
    if since is None and policy.since_last_snapshot:
        last = latest_manifest(session=session, adapter=policy.adapter, tenant=policy.tenant)
        since = _aware(last.window_end) if last is not None else None
    return since, until


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _redacted(candidates: list[Candidate], settings: TunerSettings) -> tuple[list[Candidate], dict[str, Counter[str]]]:
    counts: dict[str, Counter[str]] = {c.request_id: Counter() for c in candidates}
    if not settings.redact_pii or not candidates:
        return candidates, counts
    redactor = PiiRedactor(settings.pii_entities)
    redacted = []
    for candidate in candidates:
        prompt, in_prompt = redactor.redact_messages(candidate.prompt)
        completion, in_completion = redactor.redact(candidate.completion)
        counts[candidate.request_id] = in_prompt + in_completion
        redacted.append(replace(candidate, prompt=prompt, completion=completion))
    return redacted, counts


def _within_bounds(
    candidates: list[Candidate], tokenizer: PreTrainedTokenizerBase, settings: TunerSettings, dropped: Counter[str]
) -> list[Candidate]:
    kept = []
    for candidate in candidates:
        if too_long(
            tokenizer,
            candidate.prompt,
            candidate.completion,
            max_prompt_tokens=settings.max_prompt_tokens,
            max_completion_tokens=settings.max_completion_tokens,
        ):
            dropped["too_long"] += 1
        else:
            kept.append(candidate)
    return kept


def _prompt_text(candidate: Candidate) -> str:
    return "\n".join(f"{m['role']}: {m['content']}" for m in candidate.prompt)


def _deduplicated(candidates: list[Candidate], settings: TunerSettings, dropped: Counter[str]) -> list[Candidate]:
    # The copy to keep comes first: a reviewer's correction, else the most recent answer.
    preferred = sorted(candidates, key=lambda c: (c.corrected, c.created_at, c.request_id), reverse=True)
    kept, duplicates = deduplicate(
        preferred,
        text=_prompt_text,
        threshold=settings.near_duplicate_threshold,
        num_perm=settings.minhash_permutations,
    )
    dropped["duplicate"] += len(duplicates)
    return sorted(kept, key=lambda c: (c.created_at, c.request_id))


def _newest(candidates: list[Candidate], limit: int, dropped: Counter[str]) -> list[Candidate]:
    if len(candidates) <= limit:
        return candidates
    dropped["over_max_examples"] += len(candidates) - limit
    return candidates[len(candidates) - limit :]


def _skipped(policy: CurationPolicy, report: CurationReport, reason: str) -> CurationResult:
    logger.info("curation of %s (tenant %s) skipped: %s", policy.adapter, policy.tenant, reason)
    return CurationResult(status="skipped", report=report, reason=reason)


def _recorded_policy(
    policy: CurationPolicy, settings: TunerSettings, tokenizer: PreTrainedTokenizerBase
) -> dict[str, Any]:
    return {
        **{k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(policy).items()},
        "settings": settings.model_dump(mode="json", exclude={"snapshot_dir"}),
        "tokenizer": getattr(tokenizer, "name_or_path", None),
    }


def _store(
    session: Session,
    policy: CurationPolicy,
    settings: TunerSettings,
    tokenizer: PreTrainedTokenizerBase,
    snapshot_root: Path,
    report: CurationReport,
    train: list[Candidate],
    holdout: list[Candidate],
) -> CurationResult:
    train_rows = [c.row() for c in train]
    holdout_rows = [c.row() for c in holdout]
    identifier = snapshot_id(adapter=policy.adapter, tenant=policy.tenant, train=train_rows, holdout=holdout_rows)
    manifest = get_manifest(session=session, snapshot_id=identifier)
    record: dict[str, Any] = {
        "window_start": report.window_start,
        "window_end": report.window_end,
        "considered": report.considered,
        "dropped": report.dropped,
        "pii_counts": report.pii_counts,
        "policy": _recorded_policy(policy, settings, tokenizer),
        "source_request_ids": report.source_request_ids,
    }
    snapshot = write_snapshot(
        train=train_rows,
        holdout=holdout_rows,
        root=snapshot_root,
        adapter=policy.adapter,
        tenant=policy.tenant,
        manifest=record,
    )
    if manifest is None:
        manifest = create_manifest(
            session=session,
            manifest_in=CurationManifestCreate(
                snapshot_id=snapshot.id,
                adapter=policy.adapter,
                tenant=policy.tenant,
                path=str(snapshot.path),
                train_count=snapshot.train_count,
                holdout_count=snapshot.holdout_count,
                **record,
            ),
        )
        status: Literal["created", "unchanged"] = "created"
    else:
        status = "unchanged"
    logger.info("curation of %s (tenant %s): %s snapshot %s", policy.adapter, policy.tenant, status, snapshot.id)
    return CurationResult(
        status=status, report=report, snapshot=snapshot, manifest=CurationManifestPublic.model_validate(manifest)
    )
