"""The training input: a dataset folder of prompt-completion conversations, checked and trimmed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

TRAIN_SPLIT = "train"
HOLDOUT_SPLIT = "holdout"
COLUMNS = ("prompt", "completion")


@dataclass
class TrainingData:
    train: Any
    """A ``datasets.Dataset`` with the columns ``prompt`` and ``completion``."""
    holdout: Any | None
    dropped_too_long: int


def _conversation_length(tokenizer: Any, row: dict[str, Any]) -> int:
    ids = tokenizer.apply_chat_template(row["prompt"] + row["completion"], tokenize=True, return_dict=False)
    return len(ids)


def _checked(split: Any, name: str) -> Any:
    missing = [column for column in COLUMNS if column not in split.column_names]
    if missing:
        raise ValueError(
            f"the {name!r} split has no {missing} column: rows must be conversational prompt-completion "
            '({"prompt": [messages], "completion": [assistant message]})'
        )
    # Other columns (request ids, sources) would reach the collator; TRL wants only these.
    return split.select_columns(list(COLUMNS))


def load_training_data(folder: Path, tokenizer: Any, *, max_length: int) -> TrainingData:
    """Read the ``train`` and ``holdout`` splits and drop examples over ``max_length`` tokens.

    Loaded into memory: a snapshot folder is immutable and content-addressed, and ``datasets``
    would otherwise write its cache files for every map and filter into it.
    """
    from datasets import Dataset, DatasetDict, load_from_disk

    data = load_from_disk(str(folder), keep_in_memory=True)
    if isinstance(data, Dataset):
        data = DatasetDict({TRAIN_SPLIT: data})
    if TRAIN_SPLIT not in data:
        raise ValueError(f"the dataset has no {TRAIN_SPLIT!r} split (it has {sorted(data)})")
    dropped = 0
    splits: dict[str, Any] = {}
    for name in (TRAIN_SPLIT, HOLDOUT_SPLIT):
        if name not in data:
            continue
        split = _checked(data[name], name)
        kept = split.filter(lambda row: _conversation_length(tokenizer, row) <= max_length, keep_in_memory=True)
        dropped += len(split) - len(kept)
        splits[name] = kept
    if len(splits[TRAIN_SPLIT]) == 0:
        raise ValueError(f"no training example fits max_length={max_length} tokens")
    holdout = splits.get(HOLDOUT_SPLIT)
    return TrainingData(
        train=splits[TRAIN_SPLIT],
        holdout=holdout if holdout is not None and len(holdout) else None,
        dropped_too_long=dropped,
    )
