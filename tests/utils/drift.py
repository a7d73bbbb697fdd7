"""Seeded traffic for drift tests: prompts on a topic, written through the traffic log's own insert
(or sent through the real gateway), so a check reads exactly what the gateway would have logged."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy.engine import Engine
from sqlmodel import select

from adapters.models import Adapter, AdapterVersion, VersionStatus
from monitoring.drift.columns import with_descriptors
from switchyard.db import session_scope
from switchyard.traffic.crud import insert_logs_idempotent

SHOPPING = [
    "order",
    "tracking",
    "refund",
    "delivery",
    "parcel",
    "address",
    "invoice",
    "payment",
    "card",
    "account",
    "password",
    "login",
    "shipping",
    "courier",
    "warehouse",
    "return",
    "exchange",
    "discount",
    "coupon",
    "receipt",
    "basket",
    "checkout",
    "voucher",
]
CODING = [
    "python",
    "error",
    "stack",
    "trace",
    "compile",
    "function",
    "variable",
    "import",
    "module",
    "exception",
    "debug",
    "kernel",
    "thread",
    "memory",
    "pointer",
    "syntax",
    "lambda",
    "class",
    "object",
    "method",
    "compiler",
    "runtime",
]
FILLER = [
    "please",
    "help",
    "me",
    "with",
    "my",
    "the",
    "a",
    "an",
    "is",
    "was",
    "not",
    "can",
    "you",
    "why",
    "how",
    "when",
    "where",
    "what",
]
ANSWERS = [
    "sure",
    "here",
    "steps",
    "check",
    "contact",
    "support",
    "team",
    "soon",
    "update",
    "status",
    "thanks",
    "sorry",
]
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def prompt(rng: random.Random, topic: Sequence[str], words: tuple[int, int] = (6, 16)) -> str:
    return " ".join(rng.choice(topic if rng.random() < 0.5 else FILLER) for _ in range(rng.randint(*words)))


def logged_rows(
    n: int,
    *,
    rng: random.Random,
    adapter: str = "bot",
    topic: Sequence[str] = SHOPPING,
    words: tuple[int, int] = (6, 16),
    start: datetime = T0,
    step_s: float = 1.0,
    prefix: str = "chatcmpl-",
) -> list[dict[str, Any]]:
    """``n`` served chat requests of ``adapter``, one every ``step_s`` from ``start``, as the
    gateway spools them."""
    rows = []
    for i in range(n):
        text = prompt(rng, topic, words)
        answer = prompt(rng, ANSWERS, (3, 10))
        rows.append(
            {
                "id": f"{prefix}{rng.getrandbits(64):016x}",
                "created_at": (start + timedelta(seconds=i * step_s)).isoformat(),
                "endpoint": "chat.completions",
                "model": adapter,
                "adapter": adapter,
                "adapter_version": 1,
                "request": [{"role": "system", "content": "be brief"}, {"role": "user", "content": text}],
                "output": answer,
                "params": {"temperature": 0},
                "finish_reason": rng.choice(("stop", "stop", "length")),
                "prompt_tokens": len(text) // 4 + 8,
                "completion_tokens": len(answer) // 4 + 1,
                "latency_ms": rng.gammavariate(4, 20),
                "ttft_ms": rng.gammavariate(4, 3),
                "status": 200,
            }
        )
    return rows


def log_traffic(db: Engine, n: int, **kwargs: Any) -> list[dict[str, Any]]:
    rows = logged_rows(n, **kwargs)
    insert_logs_idempotent(engine=db, records=rows)
    return rows


def frame_of(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """The frame a check reads for ``rows`` (as :func:`logged_rows` makes them, no feedback)."""
    return with_descriptors(
        pd.DataFrame(
            {
                "prompt": [row["request"][-1]["content"] for row in rows],
                "response": [row["output"] for row in rows],
                **{
                    name: [row.get(name) for row in rows]
                    for name in ("prompt_tokens", "completion_tokens", "latency_ms", "ttft_ms", "finish_reason")
                },
                "feedback_score": [None] * len(rows),
            }
        )
    )


def trained_on(db: Engine, adapter: str, snapshot_id: str) -> None:
    """Give ``adapter`` an active version trained on ``snapshot_id`` (a registry row only: the
    monitor reads lineage, never weights)."""
    with session_scope(db) as session:
        row = session.exec(select(Adapter).where(Adapter.name == adapter)).one()
        version = AdapterVersion(
            adapter_id=row.id,
            version=row.next_version,
            status=VersionStatus.active,
            artifact_uri=f"file:///store/{adapter}/{row.next_version}",
            sha256="0" * 64,
            config_sha256="1" * 64,
            weights_sha256="2" * 64,
            rank=8,
            alpha=16.0,
            base_fingerprint="f" * 16,
            size_bytes=1,
            dataset_snapshot_id=snapshot_id,
        )
        session.add(version)
        session.flush()
        row.active_version_id, row.next_version = version.id, row.next_version + 1
        session.add(row)
        session.commit()
