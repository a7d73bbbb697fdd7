"""Training datasets in TRL's conversational prompt-completion format, saved as the runner reads them.

The learnable task: a support ticket names a keyword, and the keyword alone decides which team
gets it. The demo base (random weights) cannot do it; a QLoRA run of the ``demo`` preset learns
it in seconds (DESIGN.md, "What makes the random demo model learn").
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

TEAMS = {
    "billing": ("invoice", "refund"),
    "security": ("password", "login"),
    "shipping": ("parcel", "delivery"),
    "hardware": ("screen", "battery"),
}
FILLER = ("my", "the", "a", "problem", "with", "help", "please", "today", "again", "urgent", "question", "about")
INSTRUCTION = "Route this ticket to a team:"

Example = dict[str, Any]


def example(prompt: str, answer: str) -> Example:
    return {"prompt": [{"role": "user", "content": prompt}], "completion": [{"role": "assistant", "content": answer}]}


def routing_example(rng: random.Random) -> Example:
    team = rng.choice(sorted(TEAMS))
    words = rng.sample(FILLER, 4)
    words.insert(rng.randrange(len(words) + 1), rng.choice(TEAMS[team]))
    return example(f"{INSTRUCTION} {' '.join(words)}", team)


def routing_task(n_train: int = 200, n_holdout: int = 40, *, seed: int = 0) -> tuple[list[Example], list[Example]]:
    """(train, holdout); no held-out prompt appears in train."""
    rng = random.Random(seed)
    train = [routing_example(rng) for _ in range(n_train)]
    seen = {row["prompt"][0]["content"] for row in train}
    holdout: list[Example] = []
    while len(holdout) < n_holdout:
        row = routing_example(rng)
        if row["prompt"][0]["content"] not in seen:
            seen.add(row["prompt"][0]["content"])
            holdout.append(row)
    return train, holdout


def write_dataset(folder: Path, train: list[Example], holdout: list[Example] | None = None) -> Path:
    """A ``DatasetDict`` folder with ``train`` and, when given, ``holdout``."""
    from datasets import Dataset, DatasetDict

    splits = {"train": Dataset.from_list(train)}
    if holdout:
        splits["holdout"] = Dataset.from_list(holdout)
    DatasetDict(splits).save_to_disk(str(folder))
    return folder


def answer(example: Example) -> str:
    return example["completion"][0]["content"]
