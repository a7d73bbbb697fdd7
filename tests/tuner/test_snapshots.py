"""Snapshots: immutable, content-addressed ``DatasetDict`` folders in TRL's prompt-completion format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tuner.snapshots import load_snapshot, snapshot_id, write_snapshot


def row(i: int, answer: str = "yes") -> dict:
    return {
        "prompt": [{"role": "system", "content": "be brief"}, {"role": "user", "content": f"question {i}"}],
        "completion": [{"role": "assistant", "content": answer}],
        "request_id": f"chatcmpl-{i}",
    }


TRAIN = [row(i) for i in range(5)]
HOLDOUT = [row(i) for i in range(5, 7)]


def test_round_trip_with_both_splits(tmp_path: Path) -> None:
    snapshot = write_snapshot(train=TRAIN, holdout=HOLDOUT, root=tmp_path, adapter="bot")
    assert snapshot.path == tmp_path / "bot" / snapshot.id and snapshot.id.startswith("bot-")
    assert (snapshot.train_count, snapshot.holdout_count, snapshot.count) == (5, 2, 7)
    data = load_snapshot(snapshot.path)
    assert set(data) == {"train", "holdout"}
    assert data["train"].to_list() == TRAIN and data["holdout"].to_list() == HOLDOUT
    manifest = json.loads((snapshot.path / "manifest.json").read_text())
    assert manifest["id"] == snapshot.id and manifest["holdout_count"] == 2
    # Nothing left behind by the staging folder.
    assert [p.name for p in (tmp_path / "bot").iterdir()] == [snapshot.id]


def test_the_id_is_the_content(tmp_path: Path) -> None:
    first = write_snapshot(train=TRAIN, holdout=HOLDOUT, root=tmp_path, adapter="bot")
    marker = first.path / "manifest.json"
    before = marker.read_text()
    again = write_snapshot(train=TRAIN, holdout=HOLDOUT, root=tmp_path, adapter="bot", manifest={"note": "new"})
    assert again == first and marker.read_text() == before  # never rewritten
    others = [
        snapshot_id(adapter="bot", tenant=None, train=TRAIN[:4], holdout=HOLDOUT),
        snapshot_id(adapter="bot", tenant=None, train=TRAIN[:4], holdout=[*HOLDOUT, TRAIN[4]]),  # a row moved
        snapshot_id(adapter="bot", tenant="acme", train=TRAIN, holdout=HOLDOUT),
        snapshot_id(adapter="bot", tenant=None, train=[*TRAIN[:4], row(4, "no")], holdout=HOLDOUT),
    ]
    assert len({first.id, *others}) == 5


def test_an_empty_holdout_keeps_its_columns(tmp_path: Path) -> None:
    snapshot = write_snapshot(train=TRAIN, holdout=[], root=tmp_path, adapter="bot")
    holdout = load_snapshot(snapshot.path)["holdout"]
    assert holdout.num_rows == 0 and set(holdout.column_names) == {"prompt", "completion", "request_id"}


def test_refusals(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no training examples"):
        write_snapshot(train=[], holdout=HOLDOUT, root=tmp_path, adapter="bot")
    with pytest.raises(ValueError, match="folder name"):
        write_snapshot(train=TRAIN, holdout=[], root=tmp_path, adapter="../escape")
