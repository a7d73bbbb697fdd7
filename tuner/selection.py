"""Which logged chat completions may become training examples, and with which answer.

An example is the logged conversation followed by the answer to learn: a reviewer's
``corrected_completion`` when there is one (whatever the score), otherwise the served output
when the mean feedback score reaches ``min_score``. Only reviewers (the admin, or keys with the
``review`` scope) can supply corrections that are trained on; anyone else's is kept for people to
read but never becomes a label. Requests whose key opted out of content logging have no content,
and so never become examples. One selection reads one tenant's traffic: a shared adapter called by
several tenants never mixes their data into one dataset.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Text, and_, cast, exists, func, not_
from sqlmodel import Session, col, select

from switchyard.traffic.models import Feedback, RequestLog

CHAT_ENDPOINT = "chat.completions"
Message = dict[str, str]


@dataclass(frozen=True)
class CurationPolicy:
    adapter: str
    tenant: str | None
    """Whose traffic: the requests made with this tenant's keys (None: keys without a tenant)."""
    min_score: float = 0.5
    """Mean feedback score an uncorrected answer needs to be learned."""
    since: datetime | None = None
    """Oldest request considered (None: from the first, or see ``since_last_snapshot``)."""
    until: datetime | None = None
    """Requests logged at or after this time are not considered (None: the time curation starts)."""
    since_last_snapshot: bool = False
    """Only requests logged after the window of this adapter and tenant's last snapshot (when
    ``since`` is not given)."""
    max_examples: int = 10_000
    """Most examples in one snapshot; past it the newest are kept."""


@dataclass(frozen=True)
class Candidate:
    """A logged request with the answer to learn, before redaction, deduplication and the split."""

    request_id: str
    created_at: datetime
    prompt: list[Message]
    """The conversation before the answer (system, user, earlier assistant turns)."""
    completion: str
    corrected: bool
    """The answer is a reviewer's correction (preferred over near copies that are not)."""

    def row(self) -> dict[str, Any]:
        """The snapshot row, in TRL's conversational prompt-completion format."""
        return {
            "prompt": self.prompt,
            "completion": [{"role": "assistant", "content": self.completion}],
            "request_id": self.request_id,
        }


@dataclass
class Selection:
    candidates: list[Candidate]
    """Oldest first."""
    considered: int
    """Chat requests of the adapter and tenant inside the window."""
    dropped: Counter[str] = field(default_factory=Counter)


def _has_content() -> ColumnElement[bool]:
    # Content that was not logged is stored as JSON ``null`` (not SQL NULL), so both are checked.
    request = col(RequestLog.request)
    return and_(request.is_not(None), cast(request, Text) != "null")


def _scope(policy: CurationPolicy) -> list[ColumnElement[bool]]:
    conditions = [
        RequestLog.adapter == policy.adapter,
        RequestLog.tenant == policy.tenant if policy.tenant is not None else col(RequestLog.tenant).is_(None),
        RequestLog.endpoint == CHAT_ENDPOINT,
    ]
    if policy.since is not None:
        conditions.append(RequestLog.created_at >= policy.since)
    if policy.until is not None:
        conditions.append(RequestLog.created_at < policy.until)
    return conditions


def _count(session: Session, *conditions: ColumnElement[bool]) -> int:
    return session.exec(select(func.count()).select_from(RequestLog).where(*conditions)).one()


def select_candidates(*, session: Session, policy: CurationPolicy) -> Selection:
    """The requests in the policy's window that have an answer to learn, and why the others don't.

    The requests that cannot qualify (failed, not logged, never rated) are only counted, in the
    database, so a busy adapter's unrated traffic is never loaded.
    """
    scope = _scope(policy)
    ok = RequestLog.status == 200
    rated = exists().where(col(Feedback.request_id) == RequestLog.id)
    selection = Selection(candidates=[], considered=_count(session, *scope))
    selection.dropped.update(
        {
            "error_status": _count(session, *scope, not_(ok)),
            "no_content": _count(session, *scope, ok, not_(_has_content())),
            "unrated": _count(session, *scope, ok, _has_content(), not_(rated)),
        }
    )
    rows = session.exec(
        select(RequestLog, Feedback)
        .join(Feedback, col(Feedback.request_id) == RequestLog.id)
        .where(*scope, ok, _has_content())
        .order_by(col(RequestLog.created_at), col(RequestLog.id), col(Feedback.id))
    ).all()
    feedback: dict[str, list[Feedback]] = defaultdict(list)
    logs: dict[str, RequestLog] = {}
    for log, item in rows:
        logs[log.id] = log
        # Defence in depth: feedback sent by another tenant's key never decides this tenant's data.
        if item.tenant is None or item.tenant == log.tenant:
            feedback[log.id].append(item)
    for request_id, log in logs.items():
        candidate, reason = _candidate(log, feedback[request_id], policy.min_score)
        if candidate is None:
            selection.dropped[reason] += 1
        else:
            selection.candidates.append(candidate)
    selection.dropped = +selection.dropped  # no zero counts
    return selection


def _candidate(log: RequestLog, items: list[Feedback], min_score: float) -> tuple[Candidate | None, str]:
    prompt = _messages(log.request)
    if not prompt:
        return None, "no_content"
    corrections = [f.corrected_completion for f in items if f.reviewer and f.corrected_completion]
    if corrections:  # the latest reviewer correction is the label, whatever the scores say
        return Candidate(log.id, log.created_at, prompt, corrections[-1], corrected=True), ""
    if not items:
        return None, "unrated"
    mean = sum(f.score for f in items) / len(items)
    if mean < 0:
        return None, "negative_feedback"
    if mean < min_score:
        return None, "low_score"
    if not log.output:
        return None, "no_content"
    return Candidate(log.id, log.created_at, prompt, log.output, corrected=False), ""


def _messages(request: Any) -> list[Message]:
    if not isinstance(request, list):
        return []
    messages = [
        {"role": str(m.get("role") or "user"), "content": _text(m.get("content"))}
        for m in request
        if isinstance(m, dict)
    ]
    return messages if any(m["content"] for m in messages) else []


def _text(content: Any) -> str:
    if isinstance(content, list):  # OpenAI content parts; images and audio are not kept
        return "".join(part.get("text") or "" for part in content if isinstance(part, dict))
    return content if isinstance(content, str) else ""
