"""Curation: logged chat completions with good feedback become training examples.

An example is the logged conversation followed by the answer to learn: a reviewer's
``corrected_completion`` when there is one (whatever the score), otherwise the served output
when the mean feedback score reaches ``min_score``. Only reviewers (the admin, or keys with the
``review`` scope) can supply corrections that are trained on; anyone else's is kept for people to
read but never becomes a label. Requests whose key opted out of content logging have no content,
and so never become examples. One curation reads one tenant's traffic: a shared adapter called by
several tenants never mixes their data into one dataset.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from switchyard.traffic.models import Feedback, RequestLog

CHAT_ENDPOINT = "chat.completions"


@dataclass(frozen=True)
class CurationPolicy:
    adapter: str
    tenant: str | None
    """Whose traffic: the requests made with this tenant's keys (None: keys without a tenant)."""
    min_score: float = 0.5
    since: datetime | None = None
    max_examples: int = 10_000


def curate(*, session: Session, policy: CurationPolicy) -> list[dict[str, Any]]:
    """Training examples in chat format (``{"messages": [...], "request_id": ...}``), oldest first."""
    conditions = [
        RequestLog.adapter == policy.adapter,
        RequestLog.tenant == policy.tenant if policy.tenant is not None else col(RequestLog.tenant).is_(None),
        RequestLog.endpoint == CHAT_ENDPOINT,
        RequestLog.status == 200,
        col(RequestLog.request).is_not(None),
    ]
    if policy.since is not None:
        conditions.append(RequestLog.created_at >= policy.since)
    rows = session.exec(
        select(RequestLog, Feedback)
        .join(Feedback, col(Feedback.request_id) == RequestLog.id)
        .where(*conditions)
        .order_by(col(RequestLog.created_at), col(Feedback.id))
    ).all()
    feedback: dict[str, list[Feedback]] = defaultdict(list)
    logs: dict[str, RequestLog] = {}
    for log, item in rows:
        logs[log.id] = log
        feedback[log.id].append(item)
    examples = []
    for request_id, log in logs.items():
        answer = _answer(log, feedback[request_id], policy.min_score)
        if answer is None:
            continue
        messages = [{"role": m["role"], "content": _text(m.get("content"))} for m in log.request]
        examples.append({"messages": [*messages, {"role": "assistant", "content": answer}], "request_id": request_id})
        if len(examples) >= policy.max_examples:
            break
    return examples


def _answer(log: RequestLog, items: list[Feedback], min_score: float) -> str | None:
    corrections = [f.corrected_completion for f in items if f.corrected_completion and f.reviewer]
    if corrections:
        return corrections[-1]
    if log.output and sum(f.score for f in items) / len(items) >= min_score:
        return log.output
    return None


def _text(content: Any) -> str:
    if isinstance(content, list):  # OpenAI content parts
        return "".join(part.get("text", "") for part in content)
    return content or ""
