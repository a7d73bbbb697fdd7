"""Curation end to end, on SQLite and PostgreSQL: logged traffic in, a snapshot and its manifest out."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session
from transformers import PreTrainedTokenizerBase

from switchyard.config import TunerSettings
from tests.tuner.traffic import Rating, at, chat_log, good, near_copies, seed, seed_good
from tuner.curation import CurationPolicy, CurationResult, curate_snapshot
from tuner.dedup import normalize
from tuner.manifests import get_manifest, list_manifests
from tuner.snapshots import load_snapshot

WORDS = [
    "account",
    "address",
    "alarm",
    "app",
    "basket",
    "battery",
    "bill",
    "branch",
    "browser",
    "cable",
    "calendar",
    "camera",
    "cart",
    "charge",
    "chat",
    "colour",
    "contract",
    "coupon",
    "courier",
    "delivery",
    "desk",
    "device",
    "discount",
    "display",
    "driver",
    "export",
    "fee",
    "file",
    "filter",
    "firmware",
    "font",
    "form",
    "gift",
    "headset",
    "invoice",
    "item",
    "kettle",
    "keyboard",
    "label",
    "laptop",
    "licence",
    "login",
    "loyalty",
    "meter",
    "modem",
    "monitor",
    "mouse",
    "network",
    "order",
    "package",
    "parcel",
    "password",
    "payment",
    "plan",
    "plugin",
    "portal",
    "printer",
    "profile",
    "quote",
    "receipt",
    "refund",
    "report",
    "router",
    "sale",
    "scanner",
    "screen",
    "seat",
    "server",
    "session",
    "shelf",
    "shipment",
    "signal",
    "sofa",
    "speaker",
    "statement",
    "subscription",
    "table",
    "tablet",
    "ticket",
    "timer",
    "tracker",
    "update",
    "upload",
    "voucher",
    "wallet",
    "warranty",
]

PII = {
    "EMAIL_ADDRESS": ["ops@example.com", "jane.doe@example.com"],
    "PHONE_NUMBER": ["+1 415-555-0132"],
    "CREDIT_CARD": ["4111 1111 1111 1111"],
    "IP_ADDRESS": ["192.168.10.4"],
    "IBAN_CODE": ["DE89370400440532013000"],
    "API_KEY": ["sk-proj-4fX9kQ2mZ7bT1wL8rY3vN6pD"],
}
INVALID_CARD = "4111 1111 1111 1112"
PII_CONVERSATION = [
    {"role": "system", "content": "You are a support agent. Escalations go to ops@example.com."},
    {
        "role": "user",
        "content": "Call me on +1 415-555-0132. I paid with 4111 1111 1111 1111 from IBAN DE89370400440532013000, "
        "my server 192.168.10.4 uses the key sk-proj-4fX9kQ2mZ7bT1wL8rY3vN6pD. Why was I charged twice?",
    },
]
PII_ANSWER = "I have written to jane.doe@example.com about it."
CORRECTION = "Reorder it from your account page; we refund the first order."
ACME_MARKER = "acme-only-wording"

SETTINGS = TunerSettings(min_examples=20, max_prompt_tokens=256, max_completion_tokens=64)


def question(i: int) -> str:
    rng = random.Random(i)
    return f"Question about my {' and '.join(rng.sample(WORDS, 2))}: {' '.join(rng.sample(WORDS, 7))}?"


def curate(engine: Engine, tokenizer: PreTrainedTokenizerBase, root: Path, **options: object) -> CurationResult:
    settings = options.pop("settings", SETTINGS)
    policy = CurationPolicy(adapter="bot", tenant=options.pop("tenant", None), **options)  # type: ignore[arg-type]
    with Session(engine) as session:
        return curate_snapshot(
            session=session,
            policy=policy,
            settings=settings,  # type: ignore[arg-type]
            tokenizer=tokenizer,
            snapshot_root=root,
        )


@pytest.fixture
def traffic(db: Engine) -> Engine:
    """40 distinct questions, 50 near copies of one, PII, and every reason to drop a request."""
    seed_good(db, [good(f"q{i}", question(i), created_at=at(i)) for i in range(40)])
    copies = near_copies(50)
    seed(
        db,
        [chat_log(f"copy{i}", text, created_at=at(100 + i)) for i, text in enumerate(copies)],
        # The reviewer corrected one copy in the middle: that copy is the one to keep.
        [Rating(f"copy{i}", 1.0, CORRECTION if i == 20 else None) for i in range(50)],
    )
    seed_good(
        db,
        [
            good("pii", PII_CONVERSATION, output=PII_ANSWER, created_at=at(200)),
            good("invalid-card", f"Is {INVALID_CARD} a real card number?", output="No.", created_at=at(201)),
            good("long", " ".join(WORDS * 5), created_at=at(202)),
            good("acme", f"{ACME_MARKER} {question(1)}", tenant="acme", created_at=at(203)),
        ],
    )
    seed(
        db,
        [
            chat_log("bad", question(300), created_at=at(300)),
            chat_log("bad-again", question(301), created_at=at(301)),
            chat_log("unrated", question(302), created_at=at(302)),
            chat_log("failed", question(303), status=500, created_at=at(303)),
            chat_log("private", question(304), content=False, created_at=at(304)),
        ],
        [Rating("bad", -1.0), Rating("bad-again", -0.5), Rating("failed", 1.0), Rating("private", 1.0)],
    )
    return db


def snapshot_bytes(folder: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file())


def test_a_redacted_deduplicated_snapshot_and_its_manifest(
    traffic: Engine, tokenizer: PreTrainedTokenizerBase, tmp_path: Path
) -> None:
    result = curate(traffic, tokenizer, tmp_path)
    assert result.status == "created" and result.snapshot is not None and result.manifest is not None
    data = load_snapshot(result.snapshot.path)
    rows = data["train"].to_list() + data["holdout"].to_list()
    assert len(rows) == 43  # 40 questions, one of the 50 copies, the PII one, the invalid card

    # The 50 near copies are one example now: the reviewer's correction.
    [kept] = [row for row in rows if "never arrived" in normalize(row["prompt"][0]["content"])]
    assert kept["request_id"] == "copy20"
    assert kept["completion"] == [{"role": "assistant", "content": CORRECTION}]

    # PII never reaches the disk, in any message or file; an invalid card number is left alone.
    on_disk = snapshot_bytes(result.snapshot.path)
    for values in PII.values():
        for value in values:
            assert value.encode() not in on_disk, value
    assert INVALID_CARD.encode() in on_disk  # the check above can see the text in the files
    [pii] = [row for row in rows if row["request_id"] == "pii"]
    assert pii["prompt"][0]["content"] == "You are a support agent. Escalations go to <EMAIL_ADDRESS>."
    assert "<CREDIT_CARD>" in pii["prompt"][1]["content"] and "<API_KEY>" in pii["prompt"][1]["content"]
    assert pii["completion"][0]["content"] == "I have written to <EMAIL_ADDRESS> about it."

    # The manifest row holds the counts, and agrees with the snapshot.
    with Session(traffic) as session:
        manifest = get_manifest(session=session, snapshot_id=result.snapshot.id)
    assert manifest is not None
    assert manifest.dropped == {
        "duplicate": 49,
        "too_long": 1,
        "negative_feedback": 2,
        "unrated": 1,
        "error_status": 1,
        "no_content": 1,
    }
    assert manifest.pii_counts == {entity: len(values) for entity, values in PII.items()}
    assert manifest.considered == 40 + 50 + 3 + 5
    assert (manifest.train_count, manifest.holdout_count) == (data["train"].num_rows, data["holdout"].num_rows)
    assert manifest.holdout_count > 0 and manifest.train_count > manifest.holdout_count
    assert sorted(manifest.source_request_ids) == sorted(row["request_id"] for row in rows)
    assert manifest.adapter == "bot" and manifest.tenant is None and manifest.path == str(result.snapshot.path)
    assert manifest.policy["settings"]["near_duplicate_threshold"] == 0.85
    assert manifest.policy["min_score"] == 0.5 and manifest.policy["until"] is not None
    assert result.manifest.model_dump() == manifest.model_dump(exclude={"id", "created_at"}) | {
        "id": manifest.id,
        "created_at": manifest.created_at,
    }
    assert result.report.dropped == manifest.dropped


def test_tenants_never_mix(traffic: Engine, tokenizer: PreTrainedTokenizerBase, tmp_path: Path) -> None:
    seed_good(traffic, [good(f"acme{i}", f"{ACME_MARKER} {question(1000 + i)}", tenant="acme") for i in range(24)])
    acme = curate(traffic, tokenizer, tmp_path, tenant="acme")
    default = curate(traffic, tokenizer, tmp_path)
    assert acme.snapshot is not None and default.snapshot is not None and acme.manifest is not None
    assert acme.manifest.tenant == "acme" and acme.report.considered == 25
    assert set(acme.report.source_request_ids) == {"acme", *(f"acme{i}" for i in range(24))}
    assert not set(acme.report.source_request_ids) & set(default.report.source_request_ids)
    assert ACME_MARKER.encode() not in snapshot_bytes(default.snapshot.path)
    acme_rows = load_snapshot(acme.snapshot.path)
    assert all(ACME_MARKER in row["prompt"][0]["content"] for row in acme_rows["train"])


def test_too_few_examples_is_skipped(traffic: Engine, tokenizer: PreTrainedTokenizerBase, tmp_path: Path) -> None:
    result = curate(traffic, tokenizer, tmp_path, settings=SETTINGS.model_copy(update={"min_examples": 44}))
    assert result.status == "skipped" and result.snapshot is None and result.manifest is None
    assert result.reason == "too few examples: 43 after curation, 44 needed"
    assert result.report.dropped["duplicate"] == 49  # what it saw is still reported
    assert not tmp_path.joinpath("bot").exists()
    with Session(traffic) as session:
        assert list_manifests(session=session, adapter="bot", tenant=None) == ([], 0)
    # Another tenant's traffic never counts towards this one's minimum.
    assert curate(traffic, tokenizer, tmp_path, tenant="acme").reason == (
        "too few examples: 1 after curation, 20 needed"
    )


def test_the_holdout_split_is_stable_across_refreshes(
    db: Engine, tokenizer: PreTrainedTokenizerBase, tmp_path: Path
) -> None:
    seed_good(db, [good(f"q{i}", question(i), created_at=at(i)) for i in range(60)])
    first = curate(db, tokenizer, tmp_path)
    seed_good(db, [good(f"q{i}", question(i), created_at=at(i)) for i in range(60, 160)])
    second = curate(db, tokenizer, tmp_path)
    assert first.snapshot is not None and second.snapshot is not None
    assert first.status == second.status == "created" and first.snapshot.id != second.snapshot.id
    before, after = load_snapshot(first.snapshot.path), load_snapshot(second.snapshot.path)
    ids = {split: {row["request_id"] for row in after[split]} for split in ("train", "holdout")}
    assert 0 < before["holdout"].num_rows < after["holdout"].num_rows
    assert {row["request_id"] for row in before["train"]} <= ids["train"]
    assert {row["request_id"] for row in before["holdout"]} <= ids["holdout"]
    assert 0.05 < len(ids["holdout"]) / 160 < 0.3

    # Nothing new: the same snapshot, and no second manifest for it.
    third = curate(db, tokenizer, tmp_path)
    assert third.status == "unchanged" and third.snapshot == second.snapshot
    with Session(db) as session:
        assert list_manifests(session=session, adapter="bot", tenant=None)[1] == 2


def test_since_the_last_snapshot(db: Engine, tokenizer: PreTrainedTokenizerBase, tmp_path: Path) -> None:
    seed_good(db, [good(f"old{i}", question(i), created_at=at(i)) for i in range(20)])
    first = curate(db, tokenizer, tmp_path)
    seed_good(db, [good(f"new{i}", question(100 + i)) for i in range(20)])  # logged now, after that window
    second = curate(db, tokenizer, tmp_path, since_last_snapshot=True)
    assert first.manifest is not None and second.manifest is not None and second.status == "created"
    assert set(second.report.source_request_ids) == {f"new{i}" for i in range(20)}
    assert second.report.window_start == first.report.window_end
    assert second.report.considered == 20


def test_pii_redaction_can_be_turned_off(traffic: Engine, tokenizer: PreTrainedTokenizerBase, tmp_path: Path) -> None:
    settings = SETTINGS.model_copy(update={"redact_pii": False})
    result = curate(traffic, tokenizer, tmp_path, settings=settings)
    assert result.snapshot is not None and result.report.pii_counts == {}
    assert b"jane.doe@example.com" in snapshot_bytes(result.snapshot.path)


def test_max_examples_keeps_the_newest(db: Engine, tokenizer: PreTrainedTokenizerBase, tmp_path: Path) -> None:
    seed_good(db, [good(f"q{i}", question(i), created_at=at(i)) for i in range(30)])
    result = curate(db, tokenizer, tmp_path, max_examples=25)
    assert result.report.dropped == {"over_max_examples": 5}
    assert sorted(result.report.source_request_ids) == sorted(f"q{i}" for i in range(5, 30))
